/* docker_archive_write: a `docker save` tarball as a destination: the
 * config as <hex>.json, each layer uncompressed as <diff_id hex>.tar (what
 * `docker load` checks against the config's diff_ids), manifest.json and
 * repositories; deterministic bytes, renamed into place whole. */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>

#include "oci/internal.h"

#define CHUNK      (1 << 20)

struct da_dest {
	struct oci_dest base;
	struct buf manifest; /* the image's, put before commit */
	char *manifest_type;
};

static int da_has_blob(struct oci_dest *d, const struct oci_desc *desc, bool *has, struct err **err)
{
	(void)d, (void)desc, (void)err;
	*has = false; /* a new archive holds nothing yet */
	return 0;
}

/* Blobs wait in the cache until commit writes the tar. */
static int da_put_blob(struct oci_dest *d, const struct oci_desc *desc, int fd, bool verified, int64_t *sent,
                       struct err **err)
{
	(void)sent;
	return oci_cache_put_fd(d->cache, desc, fd, verified, err);
}

static int da_put_manifest(struct oci_dest *d, const char *data, size_t len, const char *media_type, const char *digest,
                           bool child, struct err **err)
{
	(void)digest;
	struct da_dest *dd = (struct da_dest *)d;
	if (child || oci_media_type_is_index(media_type))
		return err_set(err, ENOTSUP, "a docker-archive holds single images: copy one platform (drop --all)");
	dd->manifest.len = 0;
	buf_append(&dd->manifest, data, len);
	free(dd->manifest_type);
	dd->manifest_type = xstrdup(media_type);
	return 0;
}

/* The layer's tar: a reader that undoes gzip or zstd (or passes plain tar). */
static int layer_reader_open(struct oci_cache *cache, const char *digest, struct archive **out, int *fd,
                             struct err **err)
{
	if (oci_cache_open_blob(cache, digest, fd, err) < 0)
		return -1;
	struct archive *a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_none(a);
	archive_read_support_format_raw(a);
	struct archive_entry *e;
	if (archive_read_open_fd(a, *fd, CHUNK) != ARCHIVE_OK || archive_read_next_header(a, &e) != ARCHIVE_OK) {
		int r = err_set(err, EBADMSG, "layer %s: %s", digest, archive_error_string(a));
		archive_read_free(a);
		close(*fd);
		return r;
	}
	*out = a;
	return 0;
}

/* Streams the uncompressed layer to `a_out` (NULL: only counts and hashes). */
static int layer_stream(struct oci_cache *cache, const char *digest, struct archive *a_out, int64_t *size,
                        char diff_id[OCI_DIGEST_MAX], struct err **err)
{
	struct archive *a = NULL;
	int fd = -1;
	if (layer_reader_open(cache, digest, &a, &fd, err) < 0)
		return -1;
	struct oci_digester *dg = oci_digester_new("sha256");
	char *chunk = xmalloc(CHUNK);
	int64_t total = 0;
	int r = 0;
	for (;;) {
		la_ssize_t n = archive_read_data(a, chunk, CHUNK);
		if (n < 0) {
			r = err_set(err, EBADMSG, "layer %s: %s", digest, archive_error_string(a));
			break;
		}
		if (n == 0)
			break;
		oci_digester_update(dg, chunk, (size_t)n);
		total += n;
		if (a_out && archive_write_data(a_out, chunk, (size_t)n) != n) {
			r = err_set(err, EIO, "layer %s: %s", digest, archive_error_string(a_out));
			break;
		}
	}
	free(chunk);
	archive_read_free(a);
	close(fd);
	if (diff_id)
		oci_digester_final(dg, diff_id);
	oci_digester_free(dg);
	*size = total;
	return r;
}

static int add_header(struct archive *a, const char *name, int64_t size, int64_t mtime, struct err **err)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, size);
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	int r = archive_write_header(a, e) == ARCHIVE_OK
	            ? 0
	            : err_set(err, EIO, "tar %s: %s", name, archive_error_string(a));
	archive_entry_free(e);
	return r;
}

static int add_buf(struct archive *a, const char *name, const void *data, size_t len, int64_t mtime, struct err **err)
{
	if (add_header(a, name, (int64_t)len, mtime, err) < 0)
		return -1;
	if (len && archive_write_data(a, data, len) != (la_ssize_t)len)
		return err_set(err, EIO, "tar %s: %s", name, archive_error_string(a));
	return 0;
}

static int read_config(struct oci_cache *cache, const struct oci_desc *d, struct buf *out, json_t **doc,
                       struct err **err)
{
	if (oci_cache_read_blob(cache, d->digest, d->size, OCI_CONFIG_MAX, out, err) < 0)
		return err_wrap(err, "config");
	json_error_t je;
	*doc = json_loadb(out->data, out->len, 0, &je);
	if (*doc == NULL)
		return err_set(err, EBADMSG, "config %s: line %d, column %d: %s", d->digest, je.line, je.column,
		               je.text);
	return 0;
}

/* "docker.io/library/app:v1" as docker save writes it: "app:v1". */
static const char *familiar_name(const char *name)
{
	if (str_has_prefix(name, "docker.io/"))
		name += strlen("docker.io/");
	if (str_has_prefix(name, "library/") && strchr(name + strlen("library/"), '/') == NULL)
		name += strlen("library/");
	return name;
}

/* The layers: one entry per distinct diff_id, in the image's order. */
static int write_layers(struct oci_dest *d, struct archive *a, const struct oci_manifest *m, json_t *diff_ids,
                        json_t *names, int64_t mtime, struct err **err)
{
	for (size_t i = 0; i < m->n_layers; i++) {
		const struct oci_desc *l = &m->layers[i];
		const char *want = json_string_value(json_array_get(diff_ids, i));
		if (want == NULL || oci_digest_check(want, NULL) < 0 || !str_has_prefix(want, "sha256:"))
			return err_set(err, EBADMSG, "config: rootfs.diff_ids[%zu] is not a sha256 digest", i);
		_cleanup_free_ char *name = xasprintf("%s.tar", oci_digest_hex(want));
		bool seen = false;
		for (size_t j = 0; j < json_array_size(names) && !seen; j++)
			seen = strcmp(json_string_value(json_array_get(names, j)), name) == 0;
		json_array_append_new(names, json_string(name));
		if (seen)
			continue;
		/* The tar header needs the size first: a compressed layer is read
		 * twice, once to measure (and check its diff_id), once to write. */
		int64_t size = l->size;
		if (strcmp(l->digest, want) != 0) {
			char got[OCI_DIGEST_MAX];
			if (layer_stream(d->cache, l->digest, NULL, &size, got, err) < 0)
				return -1;
			if (strcmp(got, want) != 0)
				return err_set(err, EBADMSG,
				               "layer %zu (%s) uncompresses to %s, but the config's diff_ids say %s",
				               i + 1, l->digest, got, want);
		}
		if (add_header(a, name, size, mtime, err) < 0)
			return -1;
		int64_t wrote;
		char got[OCI_DIGEST_MAX];
		if (layer_stream(d->cache, l->digest, a, &wrote, got, err) < 0)
			return -1;
		if (wrote != size || strcmp(got, want) != 0)
			return err_set(err, EBADMSG, "layer %zu (%s) changed while it was written", i + 1, l->digest);
		oci_progress(d->opts, "layer %zu/%zu %.19s: written as %.19s", i + 1, m->n_layers, l->digest, want);
	}
	return 0;
}

static int da_commit(struct oci_dest *d, struct err **err)
{
	struct da_dest *dd = (struct da_dest *)d;
	const char *file = d->ref.path;
	if (dd->manifest.len == 0)
		return err_set(err, EINVAL, "%s: no image to write", file);
	/* Reproducible: every entry is dated SOURCE_DATE_EPOCH, or 0 without it. */
	int64_t mtime = 0;
	if (getenv("SOURCE_DATE_EPOCH") && time_source_date_epoch(&mtime, err) < 0)
		return -1;
	struct oci_manifest m;
	if (oci_manifest_parse(dd->manifest.data, dd->manifest.len, dd->manifest_type, &m, err) < 0)
		return -1;
	_cleanup_buf_ struct buf config = {0};
	_cleanup_json_ json_t *cdoc = NULL;
	int r = read_config(d->cache, &m.config, &config, &cdoc, err);
	json_t *diff_ids = json_object_get(json_object_get(cdoc, "rootfs"), "diff_ids");
	if (r == 0 && json_array_size(diff_ids) != m.n_layers)
		r = err_set(err, EBADMSG, "config %s: %zu diff_ids for %zu layers", m.config.digest,
		            json_array_size(diff_ids), m.n_layers);
	_cleanup_atomic_file_ struct atomic_file af = {.fd = -1};
	if (r == 0)
		r = atomic_file_open(&af, file, 0644, err);
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	if (r == 0 && archive_write_open_fd(a, af.fd) != ARCHIVE_OK)
		r = err_set(err, EIO, "%s: %s", file, archive_error_string(a));
	_cleanup_free_ char *config_name = xasprintf("%s.json", oci_digest_hex(m.config.digest));
	if (r == 0)
		r = add_buf(a, config_name, config.data, config.len, mtime, err);
	_cleanup_json_ json_t *names = json_array();
	if (r == 0)
		r = write_layers(d, a, &m, diff_ids, names, mtime, err);
	const char *tag = d->ref.local_tag ? familiar_name(d->ref.local_tag) : NULL;
	_cleanup_json_ json_t *list =
	    json_pack("[{s:s, s:[], s:O}]", "Config", config_name, "RepoTags", "Layers", names);
	if (tag)
		json_array_append_new(json_object_get(json_array_get(list, 0), "RepoTags"), json_string(tag));
	_cleanup_buf_ struct buf text = {0};
	if (r == 0)
		r = json_serde_write(&text, list, 0, err);
	if (r == 0)
		r = add_buf(a, "manifest.json", text.data, text.len, mtime, err);
	/* The pre-1.10 index of names: repository -> tag -> top layer id. */
	if (r == 0 && tag && json_array_size(names)) {
		const char *colon = strrchr(tag, ':');
		_cleanup_free_ char *repo = xstrndup(tag, (size_t)(colon - tag));
		const char *top = json_string_value(json_array_get(names, json_array_size(names) - 1));
		_cleanup_free_ char *top_id = xstrndup(top, strlen(top) - strlen(".tar"));
		_cleanup_json_ json_t *repos = json_pack("{s:{s:s}}", repo, colon + 1, top_id);
		text.len = 0;
		r = json_serde_write(&text, repos, 0, err);
		if (r == 0)
			r = add_buf(a, "repositories", text.data, text.len, mtime, err);
	}
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = err_set(err, EIO, "%s: %s", file, archive_error_string(a));
	archive_write_free(a);
	oci_manifest_free(&m);
	if (r == 0)
		r = atomic_file_commit(&af, err);
	return r < 0 ? err_wrap(err, "write %s", file) : 0;
}

static void da_dest_free(struct oci_dest *d)
{
	struct da_dest *dd = (struct da_dest *)d;
	buf_free(&dd->manifest);
	free(dd->manifest_type);
	oci_ref_free(&d->ref);
	free(dd);
}

static const struct oci_dest_ops da_dest_ops = {
    .has_blob = da_has_blob,
    .put_blob = da_put_blob,
    .put_manifest = da_put_manifest,
    .commit = da_commit,
    .free = da_dest_free,
};

int oci_docker_archive_dest_open(const struct oci_ref *ref, struct oci_dest **out, struct err **err)
{
	if (ref->archive_index >= 0)
		return err_set(err, EINVAL, "docker-archive:%s:@%d: name the image to write by NAME:TAG, not @N",
		               ref->path, ref->archive_index);
	struct da_dest *dd = xcalloc(1, sizeof(*dd));
	dd->base.ops = &da_dest_ops;
	*out = &dd->base;
	return 0;
}
