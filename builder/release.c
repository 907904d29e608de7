/* release: the release image `enclaver build` ships: the sleeve's layers (when there is one,
 * from the cache), the runtime layer, the EIF layer and a config built on the sleeve's, written
 * once into a blob folder, and its manifest in memory, for oci_put_local_image to put anywhere. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "builder/builder.h"

#define RELEASE_ENTRYPOINT "/usr/local/bin/enclaver-run"

struct tar_sink {
	struct oci_blob_writer *w;
	struct err **err;
	int failed;
};

static la_ssize_t sink_write(struct archive *a, void *ctx, const void *data, size_t len)
{
	(void)a;
	struct tar_sink *s = ctx;
	if (oci_blob_writer_write(s->w, data, len, s->err) < 0) {
		s->failed = 1;
		return -1;
	}
	return (la_ssize_t)len;
}

/* One entry with normalised metadata: root-owned, no user/group names, the build's mtime. */
static struct archive_entry *tar_entry(const char *name, mode_t type, mode_t perm, int64_t size, int64_t mtime)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_size(e, size);
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	return e;
}

static int tar_fail(struct archive *a, struct tar_sink *s, const char *what, struct err **err)
{
	if (s->failed)
		return err_wrap(err, "release layer: %s", what);
	return err_set(err, EIO, "release layer: %s: %s", what, archive_error_string(a));
}

/* One entry of a release layer: a directory, or a file whose bytes come from a host file (path)
 * or from memory (data). */
struct layer_entry {
	const char *name;
	mode_t type, perm;
	const char *path;
	const void *data;
	size_t len;
};

/* Streams a host file's bytes into the archive entry just written. */
static int copy_file_data(struct archive *a, struct tar_sink *sink, const char *name, const char *path, int fd,
                          uint64_t size, struct err **err)
{
	static char chunk[1 << 16];
	for (uint64_t done = 0; done < size;) {
		size_t want = size - done < sizeof(chunk) ? (size_t)(size - done) : sizeof(chunk);
		ssize_t n = io_read_full(fd, chunk, want, err);
		if (n < 0)
			return err_wrap(err, "%s", path);
		if ((size_t)n != want)
			return err_set(err, EIO, "%s: shrank while being read", path);
		if (archive_write_data(a, chunk, want) != (la_ssize_t)want)
			return tar_fail(a, sink, name, err);
		done += want;
	}
	return 0;
}

/* Streams one deterministic uncompressed tar layer into the blob folder; gives its digest (which
 * is also its diff_id) and size. */
static int layer_write(const char *blob_dir, const struct layer_entry *entries, size_t n, int64_t mtime,
                       char digest[OCI_DIGEST_MAX], int64_t *size, struct err **err)
{
	struct oci_blob_writer *w = NULL;
	if (oci_blob_writer_open(blob_dir, NULL, -1, &w, err) < 0)
		return -1;
	struct tar_sink sink = {.w = w, .err = err};
	struct archive *a = archive_write_new();
	/* pax-restricted writes plain ustar headers unless an entry needs more
	 * (an EIF over 8 GiB), and never the time or pid based pax names. */
	archive_write_set_format_pax_restricted(a);
	archive_write_set_bytes_in_last_block(a, 1);
	int r = 0;
	if (archive_write_open2(a, &sink, NULL, sink_write, NULL, NULL) != ARCHIVE_OK)
		r = tar_fail(a, &sink, "open", err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		const struct layer_entry *le = &entries[i];
		uint64_t fsize = le->len;
		_cleanup_close_ int fd = -1;
		if (le->path && (fd = io_open_regular(le->path, &fsize, err)) < 0) {
			r = -1;
			break;
		}
		struct archive_entry *e = tar_entry(le->name, le->type, le->perm, (int64_t)fsize, mtime);
		if (archive_write_header(a, e) != ARCHIVE_OK)
			r = tar_fail(a, &sink, le->name, err);
		archive_entry_free(e);
		if (r == 0 && le->path)
			r = copy_file_data(a, &sink, le->name, le->path, fd, fsize, err);
		else if (r == 0 && le->len && archive_write_data(a, le->data, le->len) != (la_ssize_t)le->len)
			r = tar_fail(a, &sink, le->name, err);
	}
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = tar_fail(a, &sink, "close", err);
	archive_write_free(a);
	if (r < 0) {
		oci_blob_writer_abort(w);
		return -1;
	}
	*size = oci_blob_writer_written(w);
	return oci_blob_writer_commit(w, digest, err);
}

/* A small JSON document as a blob: compact, keys sorted, so its digest is stable. */
static int json_blob_write(const char *blob_dir, const json_t *doc, char digest[OCI_DIGEST_MAX], int64_t *size,
                           struct err **err)
{
	_cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return err_set(err, ENOMEM, "encoding JSON");
	*size = (int64_t)strlen(text);
	return oci_blob_write_buf(blob_dir, NULL, text, strlen(text), digest, err);
}

/* The sleeve's rootfs.diff_ids and history, checked against its layers. The history gets one
 * entry per layer when the sleeve has none, so ours stays consistent with diff_ids. */
static int sleeve_rootfs(const struct bld_release_sleeve *sl, json_t **diff_ids, json_t **history, struct err **err)
{
	const json_t *ids = json_object_get(json_object_get(sl->config, "rootfs"), "diff_ids");
	if (!json_is_array(ids) || json_array_size(ids) != sl->n_layers)
		return err_set(err, EINVAL, "%s: config rootfs.diff_ids has %zu entries for %zu layers", sl->ref,
		               json_is_array(ids) ? json_array_size(ids) : 0, sl->n_layers);
	for (size_t i = 0; i < sl->n_layers; i++) {
		const char *id = json_string_value(json_array_get(ids, i));
		struct err *bad = NULL;
		if (!id || oci_digest_check(id, &bad) < 0) {
			err_free(&bad);
			return err_set(err, EINVAL, "%s: config rootfs.diff_ids[%zu] is not a digest", sl->ref, i);
		}
	}
	const json_t *h = json_object_get(sl->config, "history");
	if (h && !json_is_null(h) && !json_is_array(h))
		return err_set(err, EINVAL, "%s: config history is not an array", sl->ref);
	*diff_ids = json_deep_copy(ids);
	if (json_array_size(h)) {
		*history = json_deep_copy(h);
		return 0;
	}
	*history = json_array();
	const char *created = json_string_value(json_object_get(sl->config, "created"));
	for (size_t i = 0; i < sl->n_layers; i++) {
		json_t *e = json_pack("{s:s}", "created_by", "sources.sleeve layer (no history in its config)");
		if (created)
			json_object_set_new(e, "created", json_string(created));
		json_array_append_new(*history, e);
	}
	return 0;
}

/* The image config: the sleeve's (when there is one) with our platform, time, Entrypoint and
 * labels, Cmd dropped, diff_ids and history extended; else a fresh one. Takes diff_ids, history. */
static json_t *config_make(const struct bld_release_spec *spec, const char *created, json_t *diff_ids, json_t *history,
                           const json_t *labels)
{
	json_t *config = spec->sleeve ? json_deep_copy(spec->sleeve->config) : json_object();
	json_object_set_new(config, "created", json_string(created));
	json_object_set_new(config, "architecture", json_string(spec->platform->architecture));
	json_object_set_new(config, "os", json_string(spec->platform->os));
	if (spec->platform->variant)
		json_object_set_new(config, "variant", json_string(spec->platform->variant));
	json_t *run = json_object_get(config, "config");
	if (!json_is_object(run)) {
		run = json_object();
		json_object_set_new(config, "config", run);
	}
	/* The sleeve's Cmd would become enclaver-run's arguments. */
	json_object_del(run, "Cmd");
	json_object_set_new(run, "Entrypoint", json_pack("[s]", RELEASE_ENTRYPOINT));
	json_t *all = json_object_get(run, "Labels");
	if (!json_is_object(all)) {
		all = json_object();
		json_object_set_new(run, "Labels", all);
	}
	json_object_update(all, (json_t *)labels);
	json_object_set_new(config, "rootfs", json_pack("{s:s, s:o}", "type", "layers", "diff_ids", diff_ids));
	json_object_set_new(config, "history", history);
	return config;
}

void bld_release_image_free(struct bld_release_image *img)
{
	free(img->manifest);
	memset(img, 0, sizeof(*img));
}

int bld_release_write(const char *blob_dir, const struct bld_release_spec *spec, struct bld_release_image *out,
                      struct err **err)
{
	memset(out, 0, sizeof(*out));
	/* Layers, bottom first: the runtime (when given), then the EIF and the manifest. */
	const struct layer_entry runtime[] = {
	    {"usr/", AE_IFDIR, 0755, NULL, NULL, 0},
	    {"usr/local/", AE_IFDIR, 0755, NULL, NULL, 0},
	    {"usr/local/bin/", AE_IFDIR, 0755, NULL, NULL, 0},
	    {"usr/local/bin/enclaver-run", AE_IFREG, 0755, spec->runtime_path, NULL, 0},
	};
	const struct layer_entry enclave[] = {
	    {"enclave/", AE_IFDIR, 0755, NULL, NULL, 0},
	    {"enclave/application.eif", AE_IFREG, 0644, spec->eif_path, NULL, 0},
	    {"enclave/enclaver.yaml", AE_IFREG, 0644, NULL, spec->manifest_data, spec->manifest_len},
	};
	const struct bld_release_sleeve *sl = spec->sleeve;
	json_t *diff_ids = NULL, *history = NULL, *layers = json_array();
	if (sl && sleeve_rootfs(sl, &diff_ids, &history, err) < 0) {
		json_decref(layers);
		return err_wrap(err, "sources.sleeve");
	}
	if (!sl) {
		diff_ids = json_array();
		history = json_array();
	}
	/* The sleeve's blobs stay where the pull put them: each destination takes them from the cache. */
	for (size_t i = 0; sl && i < sl->n_layers; i++) {
		const struct oci_desc *d = &sl->layers[i];
		const char *mt = oci_layer_media_type_oci(d->media_type);
		int r = !mt ? err_set(err, ENOTSUP, "media type %s has no OCI equivalent", d->media_type)
		        : !oci_cache_has(sl->cache, d->digest, d->size)
		            ? err_set(err, ENOENT, "not in the cache (%s) with %lld bytes", sl->cache->dir,
		                      (long long)d->size)
		            : 0;
		if (r < 0) {
			json_decref(diff_ids), json_decref(history), json_decref(layers);
			return err_wrap(err, "sources.sleeve %s: layer %zu (%s)", sl->ref, i + 1, d->digest);
		}
		json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", d->digest, "size",
		                                        (json_int_t)d->size));
	}
	char layer_digest[2][OCI_DIGEST_MAX], config_digest[OCI_DIGEST_MAX];
	int64_t layer_size[2], config_size = 0;
	size_t n_layers = 0;
	const char *failed = NULL;
	if (spec->runtime_path && layer_write(blob_dir, runtime, sizeof(runtime) / sizeof(runtime[0]), spec->created,
	                                      layer_digest[n_layers++], &layer_size[0], err) < 0)
		failed = "runtime layer";
	else if (layer_write(blob_dir, enclave, sizeof(enclave) / sizeof(enclave[0]), spec->created,
	                     layer_digest[n_layers], &layer_size[n_layers], err) < 0)
		failed = "EIF layer";
	if (failed) {
		json_decref(diff_ids), json_decref(history), json_decref(layers);
		return err_wrap(err, "release image: %s", failed);
	}
	n_layers++;

	char created[32];
	time_format_rfc3339(spec->created, created);
	json_t *labels = json_object();
	for (size_t i = 0; i < spec->n_labels; i++)
		json_object_set_new(labels, spec->label_keys[i], json_string(spec->label_values[i]));
	for (size_t i = 0; i < n_layers; i++) {
		bool is_runtime = spec->runtime_path && i == 0;
		json_array_append_new(diff_ids, json_string(layer_digest[i]));
		json_array_append_new(history,
		                      json_pack("{s:s, s:s}", "created", created, "created_by",
		                                is_runtime ? "enclaver build: /usr/local/bin/enclaver-run"
		                                           : "enclaver build: /enclave/application.eif, /enclave/enclaver.yaml"));
		json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", OCI_MT_LAYER, "digest",
		                                        layer_digest[i], "size", (json_int_t)layer_size[i]));
	}
	_cleanup_json_ json_t *config = config_make(spec, created, diff_ids, history, labels);
	/* The manifest names its base image with the OCI annotations for that. */
	if (sl) {
		json_object_set_new(labels, "org.opencontainers.image.base.name", json_string(sl->ref));
		json_object_set_new(labels, "org.opencontainers.image.base.digest", json_string(sl->digest));
	}
	if (json_blob_write(blob_dir, config, config_digest, &config_size, err) < 0) {
		json_decref(labels);
		json_decref(layers);
		return err_wrap(err, "release image config");
	}

	/* Compact with sorted keys, as the config: the same inputs give the same digest. */
	_cleanup_json_ json_t *manifest = json_pack(
	    "{s:i, s:s, s:{s:s, s:s, s:I}, s:o, s:o}", "schemaVersion", 2, "mediaType", OCI_MT_MANIFEST, "config",
	    "mediaType", OCI_MT_CONFIG, "digest", config_digest, "size", (json_int_t)config_size, "layers", layers,
	    "annotations", labels);
	out->manifest = json_dumps(manifest, JSON_COMPACT | JSON_SORT_KEYS);
	if (!out->manifest)
		return err_set(err, ENOMEM, "release image manifest: encoding JSON");
	out->manifest_len = strlen(out->manifest);
	oci_digest_buf(out->manifest, out->manifest_len, out->digest);
	out->n_layers = (sl ? sl->n_layers : 0) + n_layers;
	return 0;
}
