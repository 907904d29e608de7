/* registry_push: a registry as an image destination: HEAD to skip what is
 * there, cross-repository mounts, monolithic or chunked (PATCH) uploads,
 * and the manifest PUT by tag or digest, checked against what we sent. */
#include <string.h>
#include <sys/stat.h>

#include "oci/registry.h"

#define DEFAULT_CHUNK (64LL * 1024 * 1024)

struct reg_dest {
	struct oci_dest base;
	struct registry *reg;
	char *scope;
};

static int reg_has_blob(struct oci_dest *d, const struct oci_desc *desc, bool *has, struct err **err)
{
	struct reg_dest *rd = (struct reg_dest *)d;
	_cleanup_free_ char *path = xasprintf("/v2/%s/blobs/%s", d->ref.repository, desc->digest);
	struct reg_req req = {.method = "HEAD", .url = path, .scope = rd->scope};
	struct reg_resp resp;
	if (registry_do(rd->reg, &req, &resp, err) < 0)
		return -1;
	int r = 0;
	if (resp.status == 200)
		*has = true;
	else if (resp.status == 404)
		*has = false;
	else {
		_cleanup_free_ char *what = xasprintf("HEAD blob %s", desc->digest);
		r = registry_status_error(rd->reg, what, &resp, err);
	}
	reg_resp_free(&resp);
	return r;
}

/* "Location" plus a query parameter, whether or not it has a query already. */
static char *url_with(struct registry *reg, const char *location, const char *param)
{
	_cleanup_free_ char *abs = registry_url(reg, location);
	return xasprintf("%s%s%s", abs, strchr(abs, '?') ? "&" : "?", param);
}

static int reg_try_mount(struct oci_dest *d, const struct oci_desc *desc, const struct oci_ref *from, struct err **err)
{
	struct reg_dest *rd = (struct reg_dest *)d;
	if (strcmp(from->registry, d->ref.registry) != 0 || strcmp(from->repository, d->ref.repository) == 0)
		return 0;
	_cleanup_free_ char *scope = xasprintf("%s repository:%s:pull", rd->scope, from->repository);
	_cleanup_free_ char *path =
	    xasprintf("/v2/%s/blobs/uploads/?mount=%s&from=%s", d->ref.repository, desc->digest, from->repository);
	struct reg_req req = {.method = "POST", .url = path, .scope = scope, .no_retry = true};
	struct reg_resp resp;
	if (registry_do(rd->reg, &req, &resp, err) < 0)
		return -1;
	int r = 0;
	if (resp.status == 201)
		r = 1;
	else if (resp.status == 202 && resp.location) {
		/* Not mounted; the registry opened an upload instead. Close it. */
		_cleanup_free_ char *url = registry_url(rd->reg, resp.location);
		struct reg_req del = {.method = "DELETE", .url = url, .scope = rd->scope, .no_retry = true};
		struct reg_resp dresp;
		_cleanup_err_ struct err *ignored = NULL;
		if (registry_do(rd->reg, &del, &dresp, &ignored) == 0)
			reg_resp_free(&dresp);
	}
	reg_resp_free(&resp);
	return r;
}

static int start_upload(struct reg_dest *rd, char **location, struct err **err)
{
	_cleanup_free_ char *path = xasprintf("/v2/%s/blobs/uploads/", rd->base.ref.repository);
	struct reg_req req = {.method = "POST", .url = path, .scope = rd->scope};
	struct reg_resp resp;
	if (registry_do(rd->reg, &req, &resp, err) < 0)
		return -1;
	int r = 0;
	if (resp.status != 202 || resp.location == NULL)
		r = registry_status_error(rd->reg, "start a blob upload", &resp, err);
	else
		*location = steal_pointer(&resp.location);
	reg_resp_free(&resp);
	return r;
}

/* One upload attempt: monolithic PUT, or PATCH chunks then PUT. */
static int upload_once(struct reg_dest *rd, const struct oci_desc *desc, int fd, int64_t *sent, struct err **err)
{
	if (sent)
		__atomic_store_n(sent, 0, __ATOMIC_RELAXED);
	_cleanup_free_ char *location = NULL;
	if (start_upload(rd, &location, err) < 0)
		return -1;
	int64_t chunk = rd->base.opts->chunk_size > 0 ? rd->base.opts->chunk_size : DEFAULT_CHUNK;
	_cleanup_free_ char *digest_param = xasprintf("digest=%s", desc->digest);
	if (desc->size <= chunk) {
		_cleanup_free_ char *url = url_with(rd->reg, location, digest_param);
		struct reg_req req = {.method = "PUT",
		                      .url = url,
		                      .scope = rd->scope,
		                      .content_type = "application/octet-stream",
		                      .body_from_fd = true,
		                      .body_fd = fd,
		                      .body_off = 0,
		                      .body_fd_len = desc->size,
		                      .no_retry = true,
		                      .progress = sent};
		struct reg_resp resp;
		if (registry_do(rd->reg, &req, &resp, err) < 0)
			return -1;
		int r = resp.status == 201 ? 0 : registry_status_error(rd->reg, "upload", &resp, err);
		reg_resp_free(&resp);
		return r;
	}
	for (int64_t off = 0; off < desc->size; off += chunk) {
		int64_t len = desc->size - off < chunk ? desc->size - off : chunk;
		char range[64];
		snprintf(range, sizeof(range), "%lld-%lld", (long long)off, (long long)(off + len - 1));
		_cleanup_free_ char *url = registry_url(rd->reg, location);
		struct reg_req req = {.method = "PATCH",
		                      .url = url,
		                      .scope = rd->scope,
		                      .content_type = "application/octet-stream",
		                      .content_range = range,
		                      .body_from_fd = true,
		                      .body_fd = fd,
		                      .body_off = off,
		                      .body_fd_len = len,
		                      .no_retry = true,
		                      .progress = sent};
		struct reg_resp resp;
		if (registry_do(rd->reg, &req, &resp, err) < 0)
			return -1;
		if (resp.status != 202 || resp.location == NULL) {
			_cleanup_free_ char *what = xasprintf("upload chunk %s", range);
			int r = registry_status_error(rd->reg, what, &resp, err);
			reg_resp_free(&resp);
			return r;
		}
		free(location);
		location = steal_pointer(&resp.location);
		reg_resp_free(&resp);
	}
	_cleanup_free_ char *url = url_with(rd->reg, location, digest_param);
	struct reg_req req = {.method = "PUT", .url = url, .scope = rd->scope, .no_retry = true};
	struct reg_resp resp;
	if (registry_do(rd->reg, &req, &resp, err) < 0)
		return -1;
	int r = resp.status == 201 ? 0 : registry_status_error(rd->reg, "finish the chunked upload", &resp, err);
	reg_resp_free(&resp);
	return r;
}

static int reg_put_blob(struct oci_dest *d, const struct oci_desc *desc, int fd, bool verified, int64_t *sent,
                        struct err **err)
{
	(void)verified; /* the registry checks the digest itself */
	struct reg_dest *rd = (struct reg_dest *)d;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(err, "stat blob %s", desc->digest);
	if (st.st_size != desc->size)
		return err_set(err, EBADMSG, "blob %s: %lld bytes on disk, the manifest says %lld", desc->digest,
		               (long long)st.st_size, (long long)desc->size);
	/* An upload is not idempotent halfway: on a network error start it over. */
	for (int attempt = 1;; attempt++) {
		struct err *e = NULL;
		if (upload_once(rd, desc, fd, sent, &e) == 0)
			return 0;
		bool network = e->code == EHOSTUNREACH || e->code == EAGAIN;
		if (!network || attempt >= 3) {
			*err = e;
			return -1;
		}
		log_debug("blob %s: %s; uploading again", desc->digest, e->msg);
		err_free(&e);
		registry_backoff(attempt);
	}
}

static int reg_put_manifest(struct oci_dest *d, const char *data, size_t len, const char *media_type,
                            const char *digest, bool child, struct err **err)
{
	struct reg_dest *rd = (struct reg_dest *)d;
	if (!child && d->ref.digest && strcmp(d->ref.digest, digest) != 0)
		return err_set(err, EINVAL, "destination names digest %s but the manifest is %s", d->ref.digest,
		               digest);
	const char *target = d->ref.tag && !child ? d->ref.tag : digest;
	_cleanup_free_ char *path = xasprintf("/v2/%s/manifests/%s", d->ref.repository, target);
	struct reg_req req = {.method = "PUT",
	                      .url = path,
	                      .scope = rd->scope,
	                      .content_type = media_type,
	                      .body = data,
	                      .body_len = len};
	struct reg_resp resp;
	if (registry_do(rd->reg, &req, &resp, err) < 0)
		return -1;
	int r = 0;
	if (resp.status != 201) {
		_cleanup_free_ char *what = xasprintf("PUT manifest %s:%s", d->ref.repository, target);
		r = registry_status_error(rd->reg, what, &resp, err);
	} else if (resp.docker_digest && strcmp(resp.docker_digest, digest) != 0) {
		r = err_set(err, EBADMSG, "manifest PUT: the registry stored %s, we sent %s", resp.docker_digest,
		            digest);
	}
	reg_resp_free(&resp);
	if (r == 0)
		oci_progress(d->opts, "manifest %.19s: written to %s/%s:%s", digest, d->ref.registry, d->ref.repository,
		             target);
	return r;
}

static int reg_commit(struct oci_dest *d, struct err **err)
{
	(void)d, (void)err;
	return 0;
}

static void reg_dest_free(struct oci_dest *d)
{
	struct reg_dest *rd = (struct reg_dest *)d;
	registry_free(rd->reg);
	free(rd->scope);
	oci_ref_free(&d->ref);
	free(rd);
}

static const struct oci_dest_ops reg_dest_ops = {
    .concurrent = true,
    .has_blob = reg_has_blob,
    .try_mount = reg_try_mount,
    .put_blob = reg_put_blob,
    .put_manifest = reg_put_manifest,
    .commit = reg_commit,
    .free = reg_dest_free,
};

int oci_registry_dest_open(const struct oci_ref *ref, const struct oci_opts *opts, bool insecure, struct oci_dest **out,
                           struct err **err)
{
	if (opts->offline)
		return err_set(err, EINVAL, "--offline: cannot push to a registry");
	struct reg_dest *rd = xcalloc(1, sizeof(*rd));
	if (registry_new(ref->registry, opts, insecure, &rd->reg, err) < 0) {
		free(rd);
		return -1;
	}
	rd->scope = xasprintf("repository:%s:pull,push", ref->repository);
	rd->base.ops = &reg_dest_ops;
	rd->base.opts = opts;
	*out = &rd->base;
	return 0;
}
