/* copy: moves an image (or a whole index) between any two transports, blobs
 * checked and sent in parallel, skipping what the destination has; and inspect. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "oci/internal.h"

void oci_copy_result_free(struct oci_copy_result *r)
{
	if (r == NULL)
		return;
	free(r->manifest_digest);
	free(r->media_type);
	memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------- the cache as a destination */
static int cache_has_blob(struct oci_dest *d, const struct oci_desc *desc, bool *has, struct err **err)
{
	(void)err;
	*has = oci_cache_has(d->cache, desc->digest, desc->size);
	return 0;
}

static int cache_put_blob(struct oci_dest *d, const struct oci_desc *desc, int fd, bool verified, int64_t *sent,
                          struct err **err)
{
	(void)sent;
	(void)verified; /* a blob from elsewhere is hashed on its way in */
	return oci_cache_put_fd(d->cache, desc, fd, false, err);
}

static int cache_put_manifest(struct oci_dest *d, const char *data, size_t len, const char *media_type,
                              const char *digest, bool child, struct err **err)
{
	(void)media_type, (void)child;
	return oci_cache_put_buf(d->cache, data, len, digest, NULL, err);
}

static int cache_commit(struct oci_dest *d, struct err **err)
{
	(void)d, (void)err;
	return 0;
}

static void cache_dest_free(struct oci_dest *d)
{
	oci_ref_free(&d->ref);
	free(d);
}

static const struct oci_dest_ops cache_dest_ops = {
    .has_blob = cache_has_blob,
    .put_blob = cache_put_blob,
    .put_manifest = cache_put_manifest,
    .commit = cache_commit,
    .free = cache_dest_free,
};

/* ---------------------------------------------------------------- opening */
/* Opens the source *ref names; the source takes ref over (it is freed on failure). */
static int source_open(struct oci_ref *refp, const struct oci_opts *opts, bool insecure, struct oci_cache *cache,
                       struct oci_source **out, struct err **err)
{
	struct oci_ref ref = *refp;
	memset(refp, 0, sizeof(*refp));
	int r;
	switch (ref.transport) {
	case OCI_TRANSPORT_DOCKER: r = oci_registry_source_open(&ref, opts, insecure, cache, out, err); break;
	case OCI_TRANSPORT_OCI: r = oci_layout_source_open(&ref, out, err); break;
	case OCI_TRANSPORT_DOCKER_ARCHIVE: r = oci_docker_archive_source_open(&ref, cache, out, err); break;
	case OCI_TRANSPORT_OCI_ARCHIVE: r = oci_archive_source_open(&ref, cache, out, err); break;
	default: r = err_set(err, ENOTSUP, "unknown transport %d", (int)ref.transport);
	}
	if (r < 0) {
		oci_ref_free(&ref);
		return -1;
	}
	(*out)->ref = ref;
	(*out)->opts = opts;
	(*out)->cache = cache;
	return 0;
}

int oci_dest_open(const char *text, const struct oci_opts *opts, struct oci_cache *cache, struct oci_dest **out,
                  struct err **err)
{
	struct oci_ref ref = {.archive_index = -1};
	int r;
	if (text == NULL) {
		*out = xcalloc(1, sizeof(**out));
		(*out)->ops = &cache_dest_ops;
		r = 0;
	} else {
		if (oci_ref_parse(text, &ref, err) < 0)
			return -1;
		switch (ref.transport) {
		case OCI_TRANSPORT_DOCKER: {
			/* registries.conf may mark the registry insecure; its mirrors and
			 * locations are for pulls only, as in podman. */
			struct oci_registries conf;
			r = oci_registries_load(&conf, err);
			if (r == 0) {
				_cleanup_free_ char *name = oci_ref_name(&ref);
				bool insecure = opts->insecure || oci_registries_insecure(&conf, name);
				r = oci_registry_dest_open(&ref, opts, insecure, out, err);
			}
			oci_registries_free(&conf);
			break;
		}
		case OCI_TRANSPORT_OCI:
		case OCI_TRANSPORT_OCI_ARCHIVE: r = oci_layout_dest_open(&ref, out, err); break;
		case OCI_TRANSPORT_DOCKER_ARCHIVE: r = oci_docker_archive_dest_open(&ref, out, err); break;
		default: r = err_set(err, ENOTSUP, "unknown transport %d", (int)ref.transport);
		}
	}
	if (r < 0) {
		oci_ref_free(&ref);
		return -1;
	}
	(*out)->ref = ref;
	(*out)->opts = opts;
	(*out)->cache = cache;
	return 0;
}

static void source_freep(struct oci_source **s)
{
	if (*s)
		(*s)->ops->free(*s);
}

void oci_dest_freep(struct oci_dest **d)
{
	if (*d)
		(*d)->ops->free(*d);
}

/* ---------------------------------------------------------------- resolving */
struct resolved {
	struct buf top; /* the manifest the reference names */
	char top_digest[OCI_DIGEST_MAX];
	char *top_type;
	struct oci_manifest top_parsed;
	struct buf image; /* the platform's image manifest (== top for a single image) */
	char image_digest[OCI_DIGEST_MAX];
	char *image_type;
	struct oci_manifest manifest;
};

static void resolved_free(struct resolved *r)
{
	buf_free(&r->top);
	free(r->top_type);
	oci_manifest_free(&r->top_parsed);
	buf_free(&r->image);
	free(r->image_type);
	oci_manifest_free(&r->manifest);
}

/* The manifest the reference names. */
static int resolve_top(struct oci_source *src, struct resolved *res, struct err **err)
{
	_cleanup_free_ char *name = oci_ref_format(&src->ref);
	if (src->ops->get_manifest(src, NULL, &res->top, &res->top_type, err) < 0)
		return err_wrap(err, "%s", name);
	oci_digest_buf(res->top.data, res->top.len, res->top_digest);
	if (oci_manifest_parse(res->top.data, res->top.len, res->top_type, &res->top_parsed, err) < 0)
		return err_wrap(err, "%s: manifest %s", name, res->top_digest);
	return 0;
}

/* An image manifest an index names, checked against its descriptor. */
static int resolve_child(struct oci_source *src, const struct oci_desc *pick, const char *name, struct resolved *res,
                         struct err **err)
{
	_cleanup_free_ char *child_type = NULL;
	if (src->ops->get_manifest(src, pick->digest, &res->image, &child_type, err) < 0)
		return err_wrap(err, "%s", name);
	if ((int64_t)res->image.len != pick->size)
		return err_set(err, EBADMSG, "%s: manifest %s: %zu bytes, the index says %lld", name, pick->digest,
		               res->image.len, (long long)pick->size);
	memcpy(res->image_digest, pick->digest, strlen(pick->digest) + 1);
	res->image_type = xstrdup(pick->media_type);
	if (oci_manifest_parse(res->image.data, res->image.len, res->image_type, &res->manifest, err) < 0)
		return err_wrap(err, "%s: manifest %s", name, pick->digest);
	if (res->manifest.kind != OCI_KIND_IMAGE)
		return err_set(err, ENOTSUP, "%s: manifest %s: an index inside an index is not supported", name,
		               pick->digest);
	return 0;
}

/* The image to copy: the top manifest, or the platform's entry of an index. */
static int resolve_image(struct oci_source *src, const struct oci_opts *opts, struct resolved *res, struct err **err)
{
	if (res->top_parsed.kind == OCI_KIND_IMAGE) {
		buf_append(&res->image, res->top.data, res->top.len);
		memcpy(res->image_digest, res->top_digest, sizeof(res->image_digest));
		res->image_type = xstrdup(res->top_parsed.media_type);
		return oci_manifest_parse(res->image.data, res->image.len, res->image_type, &res->manifest, err);
	}
	_cleanup_free_ char *name = oci_ref_format(&src->ref);
	struct oci_platform want;
	if (opts->platform) {
		if (oci_platform_parse(opts->platform, &want, err) < 0)
			return -1;
	} else {
		oci_platform_host(&want);
	}
	const struct oci_desc *pick;
	int r = oci_index_select(&res->top_parsed, &want, &pick, err);
	oci_platform_free(&want);
	if (r < 0)
		return err_wrap(err, "%s", name);
	return resolve_child(src, pick, name, res, err);
}

/* The places a registry reference may be pulled from, in order, per
 * registries.conf: the names it may mean (a short name's alias, or its
 * unqualified-search registries; see oci_registries_resolve), and for each
 * name its [[registry]] mirrors, then its location (offline: the name). */
static int registry_candidates(const struct oci_registries *conf, const struct oci_ref *ref, bool offline,
                               struct oci_endpoint **out, size_t *n_out, char **why, struct err **err)
{
	*out = NULL;
	*n_out = 0;
	char **names;
	size_t n_names;
	if (oci_registries_resolve(conf, ref, &names, &n_names, why, err) < 0)
		return -1;
	int r = 0;
	for (size_t i = 0; i < n_names && r == 0; i++) {
		struct oci_endpoint *eps;
		size_t n;
		if (offline) {
			eps = xcalloc(1, sizeof(*eps));
			eps->name = xstrdup(names[i]);
			n = 1;
		} else if (oci_registries_endpoints(conf, names[i], ref->digest != NULL, &eps, &n, err) < 0) {
			r = -1;
			break;
		}
		*out = xrealloc(*out, (*n_out + n) * sizeof(**out));
		memcpy(*out + *n_out, eps, n * sizeof(*eps));
		*n_out += n;
		free(eps);
	}
	oci_names_free(names, n_names);
	if (r < 0) {
		oci_endpoints_free(*out, *n_out);
		*out = NULL;
		*n_out = 0;
	}
	return r;
}

/* Opens the source and reads the manifest its reference names; for a
 * registry, from the first candidate place that has it. */
static int source_open_top(const char *text, const struct oci_opts *opts, struct oci_cache *cache,
                           struct oci_source **out, struct resolved *res, struct err **err)
{
	struct oci_ref ref;
	if (oci_ref_parse(text, &ref, err) < 0)
		return -1;
	if (ref.transport != OCI_TRANSPORT_DOCKER) {
		if (source_open(&ref, opts, opts->insecure, cache, out, err) < 0)
			return -1;
		return resolve_top(*out, res, err);
	}
	struct oci_registries conf;
	struct oci_endpoint *eps = NULL;
	size_t n = 0;
	_cleanup_free_ char *why = NULL;
	int r = oci_registries_load(&conf, err);
	if (r == 0)
		r = registry_candidates(&conf, &ref, opts->offline, &eps, &n, &why, err);
	if (r == 0 && why)
		oci_progress(opts, "%s", why);
	struct err *last = NULL;
	bool found = false;
	for (size_t i = 0; r == 0 && i < n && !found; i++) {
		/* Each candidate (a mirror, the registry itself) names the image its own way. */
		_cleanup_free_ char *t = xasprintf("docker://%s", eps[i].name);
		struct oci_source *s = NULL;
		struct resolved tried = {0};
		struct oci_ref cand;
		err_free(&last);
		int q = oci_ref_parse(t, &cand, &last);
		if (q == 0)
			q = source_open(&cand, opts, opts->insecure || eps[i].insecure, cache, &s, &last);
		if (q == 0)
			q = resolve_top(s, &tried, &last);
		if (q == 0) {
			found = true;
			*out = s;
			*res = tried;
			if (n > 1 || why)
				oci_progress(opts, "pulling %s from %s", text, eps[i].name);
			break;
		}
		if (s)
			s->ops->free(s);
		resolved_free(&tried);
		if (i + 1 < n)
			log_info("%s: %s; trying the next place", eps[i].name, last->msg);
	}
	if (r == 0 && !found) {
		*err = steal_pointer(&last);
		r = n > 1 ? err_wrap(err, "%s: tried %zu places (registries.conf), the last", text, n) : -1;
	}
	err_free(&last);
	oci_endpoints_free(eps, n);
	oci_registries_free(&conf);
	oci_ref_free(&ref);
	return r;
}

/* Docker schema 2 to an OCI manifest for destinations that take only OCI
 * (skopeo does the same): the blobs stay byte for byte, the media types
 * change, so the manifest gets a new digest. */
static int manifest_to_oci(struct resolved *res, struct err **err)
{
	if (strcmp(res->image_type, DOCKER_MT_MANIFEST) != 0)
		return 0;
	const struct oci_manifest *m = &res->manifest;
	_cleanup_json_ json_t *doc = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[]}", "schemaVersion", 2, "mediaType",
	                                       OCI_MT_MANIFEST, "config", "mediaType", OCI_MT_CONFIG, "digest",
	                                       m->config.digest, "size", (json_int_t)m->config.size, "layers");
	json_t *layers = json_object_get(doc, "layers");
	for (size_t i = 0; i < m->n_layers; i++) {
		const char *t = oci_layer_media_type_oci(m->layers[i].media_type);
		if (t == NULL)
			return err_set(err, ENOTSUP, "layer %zu: media type %s has no OCI equivalent", i + 1,
			               m->layers[i].media_type);
		json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", t, "digest",
		                                        m->layers[i].digest, "size", (json_int_t)m->layers[i].size));
	}
	struct buf out = {0};
	if (json_serde_write(&out, doc, 0, err) < 0) {
		buf_free(&out);
		return -1;
	}
	buf_free(&res->image);
	res->image = out;
	oci_digest_buf(res->image.data, res->image.len, res->image_digest);
	free(res->image_type);
	res->image_type = xstrdup(OCI_MT_MANIFEST);
	return 0;
}

/* ---------------------------------------------------------------- blobs */
enum blob_state { BLOB_MISSING, BLOB_PRESENT, BLOB_MOUNTED, BLOB_DUPLICATE };

/* One image's blobs on their way: checked, then sent, each phase on up to
 * opts->parallel threads when the destination allows it. */
struct blob_batch {
	struct oci_source *src;
	struct oci_dest *dst;
	const struct oci_desc *blobs; /* config, then the layers */
	size_t n;
	const char *label;                /* "" or "linux/arm64 " (copying an index whole) */
	const struct oci_ref *mount_from; /* opts->mount_from parsed, when a registry reference */
	enum blob_state *state;
	size_t *jobs; /* the phase's work: indexes into blobs */
	struct oci_copy_result *result;
	pthread_mutex_t lock; /* result, and the source's open_blob */
	/* Per blob, for the status line: bytes sent (atomic), 1 when done. */
	int64_t *sent;
	int *finished;
};

static char *blob_name(const struct blob_batch *b, size_t i)
{
	if (i == 0)
		return xasprintf("%sconfig", b->label);
	return xasprintf("%slayer %zu/%zu", b->label, i, b->n - 1);
}

static int blob_check(void *ctx, size_t k, struct err **err)
{
	struct blob_batch *b = ctx;
	size_t i = b->jobs[k];
	const struct oci_desc *d = &b->blobs[i];
	struct oci_dest *dst = b->dst;
	bool has = false;
	if (dst->ops->has_blob(dst, d, &has, err) < 0)
		return -1;
	_cleanup_free_ char *what = blob_name(b, i);
	if (has) {
		b->state[i] = BLOB_PRESENT;
		if (dst->ops != &cache_dest_ops)
			oci_progress(dst->opts, "%s %.19s: already present", what, d->digest);
		return 0;
	}
	const struct oci_ref *from = b->src->ref.transport == OCI_TRANSPORT_DOCKER ? &b->src->ref : b->mount_from;
	if (dst->ops->try_mount && from) {
		int m = dst->ops->try_mount(dst, d, from, err);
		if (m < 0)
			return -1;
		if (m == 1) {
			b->state[i] = BLOB_MOUNTED;
			oci_progress(dst->opts, "%s %.19s: mounted from %s", what, d->digest, from->repository);
			return 0;
		}
	}
	b->state[i] = BLOB_MISSING;
	return 0;
}

static int blob_send(void *ctx, size_t k, struct err **err)
{
	struct blob_batch *b = ctx;
	size_t i = b->jobs[k];
	const struct oci_desc *d = &b->blobs[i];
	_cleanup_free_ char *what = blob_name(b, i);
	_cleanup_close_ int fd = -1;
	/* Sources are not made for threads; opening is quick, sending is not. */
	pthread_mutex_lock(&b->lock);
	int r = b->src->ops->open_blob(b->src, d, &fd, err);
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		return err_wrap(err, "%s", what);
	if (b->dst->ops->put_blob(b->dst, d, fd, b->src->ops->blobs_verified, &b->sent[i], err) < 0)
		return err_wrap(err, "%s %s", what, d->digest);
	__atomic_store_n(&b->finished[i], 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&b->lock);
	b->result->blobs_sent++;
	b->result->bytes_sent += d->size;
	pthread_mutex_unlock(&b->lock);
	char size[32];
	oci_human_size(d->size, size);
	if (b->dst->ops != &cache_dest_ops)
		oci_progress(b->dst->opts, "%s %.19s: copied %s", what, d->digest, size);
	return 0;
}

/* The uploads' status line on a terminal (oci_status_thread). */
static size_t upload_status(void *ctx, struct oci_status_item *items, size_t n)
{
	const struct blob_batch *b = ctx;
	size_t finished = 0;
	for (size_t k = 0; k < n; k++) {
		size_t i = b->jobs[k];
		bool fin = __atomic_load_n(&b->finished[i], __ATOMIC_RELAXED);
		items[k].digest = b->blobs[i].digest;
		items[k].size = b->blobs[i].size;
		items[k].done = fin ? b->blobs[i].size : __atomic_load_n(&b->sent[i], __ATOMIC_RELAXED);
		items[k].active = !fin && items[k].done > 0;
		finished += fin;
	}
	return finished;
}

/* What the destination lacks (HEAD, or a mount), then fetch only that (a
 * registry source downloads in parallel), then send it. */
static int copy_blobs(struct oci_source *src, struct oci_dest *dst, const struct oci_manifest *m, const char *label,
                      struct oci_copy_result *result, struct err **err)
{
	size_t n = m->n_layers + 1;
	struct oci_desc *blobs = xcalloc(n, sizeof(*blobs)); /* shallow copies */
	blobs[0] = m->config;
	for (size_t i = 1; i < n; i++)
		blobs[i] = m->layers[i - 1];
	struct blob_batch b = {.src = src,
	                       .dst = dst,
	                       .blobs = blobs,
	                       .n = n,
	                       .label = label,
	                       .state = xcalloc(n, sizeof(*b.state)),
	                       .jobs = xcalloc(n, sizeof(*b.jobs)),
	                       .result = result,
	                       .sent = xcalloc(n, sizeof(*b.sent)),
	                       .finished = xcalloc(n, sizeof(*b.finished))};
	struct oci_ref hint = {0};
	struct err *bad = NULL;
	if (dst->opts->mount_from && oci_ref_parse(dst->opts->mount_from, &hint, &bad) == 0 &&
	    hint.transport == OCI_TRANSPORT_DOCKER)
		b.mount_from = &hint;
	err_free(&bad);
	pthread_mutex_init(&b.lock, NULL);
	int threads = !dst->ops->concurrent ? 1 : dst->opts->parallel > 0 ? dst->opts->parallel : 6;
	/* A layer repeated in one image travels once. */
	size_t n_jobs = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(blobs[j].digest, blobs[i].digest) == 0;
		if (dup)
			b.state[i] = BLOB_DUPLICATE;
		else
			b.jobs[n_jobs++] = i;
	}
	int r = oci_parallel_run(n_jobs, threads, blob_check, &b, NULL, err);
	struct oci_desc *missing = xcalloc(n, sizeof(*missing));
	n_jobs = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		switch (b.state[i]) {
		case BLOB_PRESENT:
		case BLOB_DUPLICATE: result->blobs_skipped++; break;
		case BLOB_MOUNTED: result->blobs_mounted++; break;
		case BLOB_MISSING:
			missing[n_jobs] = blobs[i];
			b.jobs[n_jobs++] = i;
			break;
		}
	}
	if (r == 0 && n_jobs && src->ops->prepare_blobs)
		r = src->ops->prepare_blobs(src, missing, n_jobs, err);
	/* A registry destination shows the uploads on a terminal. */
	struct oci_status_thread st;
	bool status = r == 0 && n_jobs && dst->ops->concurrent && dst->ops->try_mount /* only a registry mounts */ &&
	              oci_status_wanted(dst->opts) && oci_status_thread_start(&st, dst->opts, "pushing", n_jobs, upload_status, &b);
	if (r == 0)
		r = oci_parallel_run(n_jobs, threads, blob_send, &b, NULL, err);
	if (status)
		oci_status_thread_stop(&st);
	pthread_mutex_destroy(&b.lock);
	free(missing);
	free(b.state);
	free(b.jobs);
	free(b.sent);
	free(b.finished);
	free(blobs);
	oci_ref_free(&hint);
	return r;
}
/* One image: its blobs, then its manifest (converted first for a
 * destination that takes OCI only). res->image* may change. */
static int copy_image(struct oci_source *src, struct oci_dest *dst, struct resolved *res, const char *label, bool child,
                      struct oci_copy_result *result, struct err **err)
{
	if (copy_blobs(src, dst, &res->manifest, label, result, err) < 0)
		return -1;
	if (dst->ops->oci_only && manifest_to_oci(res, err) < 0)
		return -1;
	return dst->ops->put_manifest(dst, res->image.data, res->image.len, res->image_type, res->image_digest, child,
	                              err);
}

/* --all: every image of the index, then the index itself, unchanged when
 * the destination takes it as it is (so its digest stays); for an OCI-only
 * destination a Docker manifest list becomes an OCI index of the converted
 * images, with a new digest. */
static int copy_index(struct oci_source *src, struct oci_dest *dst, struct resolved *res,
                      struct oci_copy_result *result, struct err **err)
{
	const struct oci_manifest *index = &res->top_parsed;
	_cleanup_free_ char *name = oci_ref_format(&src->ref);
	/* A Docker list, or an index with a Docker image in it, changes. */
	bool convert = dst->ops->oci_only && strcmp(index->media_type, DOCKER_MT_LIST) == 0;
	_cleanup_json_ json_t *doc = dst->ops->oci_only ? json_deep_copy(index->json) : NULL;
	for (size_t i = 0; i < index->n_manifests; i++) {
		const struct oci_desc *d = &index->manifests[i];
		struct resolved child = {0};
		_cleanup_free_ char *plat = d->platform.os ? oci_platform_format(&d->platform) : xasprintf("#%zu", i);
		_cleanup_free_ char *label = xasprintf("%s ", plat);
		int r = resolve_child(src, d, name, &child, err);
		if (r == 0)
			r = copy_image(src, dst, &child, label, true, result, err);
		if (r == 0 && doc) {
			convert = convert || strcmp(child.image_digest, d->digest) != 0;
			json_t *e = json_array_get(json_object_get(doc, "manifests"), i);
			json_object_set_new(e, "mediaType", json_string(child.image_type));
			json_object_set_new(e, "digest", json_string(child.image_digest));
			json_object_set_new(e, "size", json_integer((json_int_t)child.image.len));
		}
		resolved_free(&child);
		if (r < 0)
			return err_wrap(err, "%s", plat);
	}
	if (convert) {
		json_object_set_new(doc, "mediaType", json_string(OCI_MT_INDEX));
		struct buf out = {0};
		if (json_serde_write(&out, doc, 0, err) < 0) {
			buf_free(&out);
			return -1;
		}
		buf_free(&res->top);
		res->top = out;
		oci_digest_buf(res->top.data, res->top.len, res->top_digest);
		free(res->top_type);
		res->top_type = xstrdup(OCI_MT_INDEX);
	}
	const char *type = convert ? OCI_MT_INDEX : index->media_type;
	if (dst->ops->put_manifest(dst, res->top.data, res->top.len, type, res->top_digest, false, err) < 0)
		return -1;
	/* What the command reports. */
	buf_append(&res->image, res->top.data, res->top.len);
	memcpy(res->image_digest, res->top_digest, sizeof(res->image_digest));
	res->image_type = xstrdup(type);
	return 0;
}

int oci_copy(const char *src_text, const char *dst_text, const struct oci_opts *opts, struct oci_copy_result *result,
             struct err **err)
{
	memset(result, 0, sizeof(*result));
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	int r = oci_copy_cached(src_text, dst_text, opts, &cache, result, err);
	oci_cache_close(&cache);
	return r;
}

/* The rest of a copy once the source is open and its top manifest read: the destination opened,
 * the image (or with opts->all the whole index) sent, committed. A destination that fails is
 * rolled back by its free (a layout as it was). */
static int copy_resolved(struct oci_source *src, struct resolved *res, const char *dst_text,
                         const struct oci_opts *opts, struct oci_cache *cache, struct oci_copy_result *result,
                         struct err **err)
{
	_cleanup_(oci_dest_freep) struct oci_dest *dst = NULL;
	int r = oci_dest_open(dst_text, opts, cache, &dst, err);
	bool whole = false;
	if (r == 0) {
		whole = opts->all && res->top_parsed.kind == OCI_KIND_INDEX;
		if (!whole)
			r = resolve_image(src, opts, res, err);
	}
	if (r == 0)
		r = whole ? copy_index(src, dst, res, result, err) : copy_image(src, dst, res, "", false, result, err);
	if (r == 0)
		r = dst->ops->commit(dst, err);
	if (r == 0) {
		result->manifest_digest = xstrdup(res->image_digest);
		result->media_type = xstrdup(res->image_type);
		/* Remember what a registry tag resolved to, for --offline. */
		if (src->ref.transport == OCI_TRANSPORT_DOCKER && src->ref.digest == NULL && !opts->offline)
			r = oci_cache_put_buf(cache, res->top.data, res->top.len, res->top_digest, NULL, err) < 0 ||
			            oci_cache_tag_set(cache, &src->ref, res->top_digest, err) < 0
			        ? -1
			        : 0;
	}
	oci_dest_freep(&dst);
	dst = NULL;
	return r;
}

/* A failed copy says where it went and reports nothing. */
static int copy_failed(const char *dst_text, struct oci_copy_result *result, struct err **err)
{
	if (dst_text) {
		_cleanup_free_ char *d = xstrdup(dst_text);
		err_wrap(err, "copy to %s", d);
	}
	oci_copy_result_free(result);
	return -1;
}

int oci_copy_cached(const char *src_text, const char *dst_text, const struct oci_opts *opts, struct oci_cache *cache,
                    struct oci_copy_result *result, struct err **err)
{
	memset(result, 0, sizeof(*result));
	_cleanup_(source_freep) struct oci_source *src = NULL;
	struct resolved res = {0};
	/* The source first: a bad one leaves no destination folder behind. */
	int r = source_open_top(src_text, opts, cache, &src, &res, err);
	if (r == 0)
		r = copy_resolved(src, &res, dst_text, opts, cache, result, err);
	resolved_free(&res);
	source_freep(&src);
	src = NULL;
	return r < 0 ? copy_failed(dst_text, result, err) : 0;
}

int oci_copy_source(struct oci_source *src, const char *dst_text, const struct oci_opts *opts, struct oci_cache *cache,
                    struct oci_copy_result *result, struct err **err)
{
	memset(result, 0, sizeof(*result));
	struct resolved res = {0};
	int r = resolve_top(src, &res, err);
	if (r == 0)
		r = copy_resolved(src, &res, dst_text, opts, cache, result, err);
	resolved_free(&res);
	return r < 0 ? copy_failed(dst_text, result, err) : 0;
}

int oci_resolve_digest(const char *text, const struct oci_opts *opts, char digest[OCI_DIGEST_MAX], struct err **err)
{
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	_cleanup_(source_freep) struct oci_source *src = NULL;
	struct resolved res = {0};
	int r = source_open_top(text, opts, &cache, &src, &res, err);
	if (r == 0)
		memcpy(digest, res.top_digest, OCI_DIGEST_MAX);
	resolved_free(&res);
	source_freep(&src);
	src = NULL;
	oci_cache_close(&cache);
	return r;
}

int oci_source_open_manifest(const char *text, const struct oci_opts *opts, struct oci_cache *cache,
                             struct oci_source **src, struct oci_manifest *m, char digest[OCI_DIGEST_MAX],
                             struct err **err)
{
	struct resolved res = {0};
	int r = source_open_top(text, opts, cache, src, &res, err);
	if (r == 0) {
		*m = res.top_parsed;
		memset(&res.top_parsed, 0, sizeof(res.top_parsed));
		memcpy(digest, res.top_digest, OCI_DIGEST_MAX);
	}
	resolved_free(&res);
	return r;
}

/* ---------------------------------------------------------------- inspect */
int oci_source_read_blob(struct oci_source *src, const struct oci_desc *d, struct buf *out, struct err **err)
{
	if (src->ops->prepare_blobs && src->ops->prepare_blobs(src, d, 1, err) < 0)
		return -1;
	_cleanup_close_ int fd = -1;
	if (src->ops->open_blob(src, d, &fd, err) < 0)
		return -1;
	_cleanup_free_ char *data = xmalloc((size_t)d->size + 1);
	ssize_t n = io_read_full(fd, data, (size_t)d->size, err);
	if (n < 0)
		return -1;
	buf_append(out, data, (size_t)n);
	return oci_digest_verify_buf(out->data ? out->data : "", out->len, d->digest, err);
}

static int read_config(struct oci_source *src, const struct oci_desc *d, json_t **out, struct err **err)
{
	if (d->size > OCI_CONFIG_MAX)
		return err_set(err, EFBIG, "config %s: %lld bytes is over the %d-byte limit", d->digest, (long long)d->size,
		               OCI_CONFIG_MAX);
	_cleanup_buf_ struct buf text = {0};
	if (oci_source_read_blob(src, d, &text, err) < 0)
		return err_wrap(err, "config %s", d->digest);
	json_error_t je;
	*out = json_loadb(text.data ? text.data : "", text.len, 0, &je);
	if (*out == NULL)
		return err_set(err, EBADMSG, "config %s: line %d, column %d: %s", d->digest, je.line, je.column,
		               je.text);
	return 0;
}

static json_t *desc_json(const struct oci_desc *d)
{
	return json_pack("{s:s, s:s, s:I}", "mediaType", d->media_type, "digest", d->digest, "size",
	                 (json_int_t)d->size);
}

int oci_inspect(const char *text, const struct oci_opts *opts, json_t **out, struct err **err)
{
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	_cleanup_(source_freep) struct oci_source *src = NULL;
	struct resolved res = {0};
	_cleanup_json_ json_t *config = NULL;
	int r = source_open_top(text, opts, &cache, &src, &res, err);
	if (r == 0)
		r = resolve_image(src, opts, &res, err);
	if (r == 0)
		r = read_config(src, &res.manifest.config, &config, err);
	if (r == 0) {
		_cleanup_free_ char *name = oci_ref_format(&src->ref);
		json_t *doc = json_pack("{s:s, s:s, s:s}", "name", name, "digest", res.top_digest, "mediaType",
		                        res.top_parsed.media_type);
		if (res.top_parsed.kind == OCI_KIND_INDEX) {
			json_t *plats = json_array();
			for (size_t i = 0; i < res.top_parsed.n_manifests; i++) {
				const struct oci_desc *d = &res.top_parsed.manifests[i];
				json_t *e = desc_json(d);
				if (d->platform.os) {
					_cleanup_free_ char *p = oci_platform_format(&d->platform);
					json_object_set_new(e, "platform", json_string(p));
				}
				json_array_append_new(plats, e);
			}
			json_object_set_new(doc, "manifests", plats);
		}
		json_object_set_new(doc, "manifestDigest", json_string(res.image_digest));
		json_object_set(doc, "manifest", res.manifest.json);
		json_object_set(doc, "config", config);
		json_t *layers = json_array();
		int64_t total = 0;
		for (size_t i = 0; i < res.manifest.n_layers; i++) {
			json_array_append_new(layers, desc_json(&res.manifest.layers[i]));
			total += res.manifest.layers[i].size;
		}
		json_object_set_new(doc, "layers", layers);
		json_object_set_new(doc, "layersSize", json_integer(total));
		*out = doc;
	}
	resolved_free(&res);
	source_freep(&src);
	src = NULL;
	oci_cache_close(&cache);
	return r;
}
