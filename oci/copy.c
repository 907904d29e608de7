/* copy: moves one image between any two transports (registry, OCI layout,
 * archives, the cache), skipping blobs the destination has; and inspect. */
#include <string.h>

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

static int cache_put_blob(struct oci_dest *d, const struct oci_desc *desc, int fd, bool verified, struct err **err)
{
	(void)verified; /* a blob from elsewhere is hashed on its way in */
	/* A registry source already streamed it here (verified). */
	if (oci_cache_has(d->cache, desc->digest, desc->size))
		return 0;
	struct oci_blob_writer *w;
	if (oci_blob_writer_open(d->cache->blob_dir, desc->digest, desc->size, &w, err) < 0)
		return -1;
	if (oci_blob_writer_copy_fd(w, fd, err) < 0) {
		oci_blob_writer_abort(w);
		return -1;
	}
	return oci_blob_writer_commit(w, NULL, err);
}

static int cache_put_manifest(struct oci_dest *d, const char *data, size_t len, const char *media_type,
                              const char *digest, struct err **err)
{
	(void)media_type;
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
static int source_open(const char *text, const struct oci_opts *opts, struct oci_cache *cache, struct oci_source **out,
                       struct err **err)
{
	struct oci_ref ref;
	if (oci_ref_parse(text, &ref, err) < 0)
		return -1;
	int r;
	switch (ref.transport) {
	case OCI_TRANSPORT_DOCKER: r = oci_registry_source_open(&ref, opts, cache, out, err); break;
	case OCI_TRANSPORT_OCI: r = oci_layout_source_open(&ref, out, err); break;
	case OCI_TRANSPORT_DOCKER_ARCHIVE: r = oci_docker_archive_source_open(&ref, cache, out, err); break;
	case OCI_TRANSPORT_OCI_ARCHIVE: r = oci_archive_source_open(&ref, cache, out, err); break;
	default: r = err_set(err, ENOTSUP, "%s: unknown transport", text);
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

static int dest_open(const char *text, const struct oci_opts *opts, struct oci_cache *cache, struct oci_dest **out,
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
		case OCI_TRANSPORT_DOCKER: r = oci_registry_dest_open(&ref, opts, out, err); break;
		case OCI_TRANSPORT_OCI:
		case OCI_TRANSPORT_OCI_ARCHIVE: r = oci_layout_dest_open(&ref, out, err); break;
		default:
			r = err_set(
			    err, ENOTSUP,
			    "%s: writing docker-archive is not supported (use oci:DIR, oci-archive:FILE or a registry)",
			    text);
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

static void dest_freep(struct oci_dest **d)
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

static int resolve(struct oci_source *src, const struct oci_opts *opts, struct resolved *res, struct err **err)
{
	_cleanup_free_ char *name = oci_ref_format(&src->ref);
	if (src->ops->get_manifest(src, NULL, &res->top, &res->top_type, err) < 0)
		return err_wrap(err, "%s", name);
	oci_digest_buf(res->top.data, res->top.len, res->top_digest);
	if (oci_manifest_parse(res->top.data, res->top.len, res->top_type, &res->top_parsed, err) < 0)
		return err_wrap(err, "%s: manifest %s", name, res->top_digest);
	if (res->top_parsed.kind == OCI_KIND_IMAGE) {
		buf_append(&res->image, res->top.data, res->top.len);
		memcpy(res->image_digest, res->top_digest, sizeof(res->image_digest));
		res->image_type = xstrdup(res->top_parsed.media_type);
		return oci_manifest_parse(res->image.data, res->image.len, res->image_type, &res->manifest, err);
	}
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

static const char *oci_layer_type(const char *docker)
{
	if (strcmp(docker, DOCKER_MT_LAYER) == 0)
		return OCI_MT_LAYER;
	if (strcmp(docker, DOCKER_MT_LAYER_GZIP) == 0)
		return OCI_MT_LAYER_GZIP;
	if (str_has_prefix(docker, "application/vnd.oci.image.layer."))
		return docker;
	return NULL;
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
		const char *t = oci_layer_type(m->layers[i].media_type);
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

/* Phase one for a blob: 1 when the destination has it or mounted it, 0 when
 * it must travel. */
static int blob_present(struct oci_source *src, struct oci_dest *dst, const struct oci_desc *d, const char *what,
                        struct oci_copy_result *result, struct err **err)
{
	bool has = false;
	if (dst->ops->has_blob(dst, d, &has, err) < 0)
		return -1;
	if (has) {
		result->blobs_skipped++;
		if (dst->ops != &cache_dest_ops)
			oci_progress(dst->opts, "%s %.19s: already present", what, d->digest);
		return 1;
	}
	if (dst->ops->try_mount && src->ref.transport == OCI_TRANSPORT_DOCKER) {
		int m = dst->ops->try_mount(dst, d, &src->ref, err);
		if (m < 0)
			return -1;
		if (m == 1) {
			result->blobs_mounted++;
			oci_progress(dst->opts, "%s %.19s: mounted from %s", what, d->digest, src->ref.repository);
			return 1;
		}
	}
	return 0;
}

static int blob_send(struct oci_source *src, struct oci_dest *dst, const struct oci_desc *d, const char *what,
                     struct oci_copy_result *result, struct err **err)
{
	_cleanup_close_ int fd = -1;
	if (src->ops->open_blob(src, d, &fd, err) < 0)
		return -1;
	if (dst->ops->put_blob(dst, d, fd, src->ops->blobs_verified, err) < 0)
		return err_wrap(err, "%s %s", what, d->digest);
	result->blobs_sent++;
	result->bytes_sent += d->size;
	char size[32];
	oci_human_size(d->size, size);
	if (dst->ops != &cache_dest_ops)
		oci_progress(dst->opts, "%s %.19s: copied %s", what, d->digest, size);
	return 0;
}

int oci_copy(const char *src_text, const char *dst_text, const struct oci_opts *opts, struct oci_copy_result *result,
             struct err **err)
{
	memset(result, 0, sizeof(*result));
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	_cleanup_(source_freep) struct oci_source *src = NULL;
	_cleanup_(dest_freep) struct oci_dest *dst = NULL;
	struct resolved res = {0};
	int r = source_open(src_text, opts, &cache, &src, err);
	if (r == 0)
		r = dest_open(dst_text, opts, &cache, &dst, err);
	if (r == 0)
		r = resolve(src, opts, &res, err);
	size_t n = res.manifest.n_layers + 1, n_missing = 0;
	struct oci_desc *blobs = NULL, *missing = NULL;
	char **names = NULL;
	if (r == 0) {
		/* Shallow copies of the manifest's descriptors. */
		blobs = xcalloc(n, sizeof(*blobs));
		missing = xcalloc(n, sizeof(*missing));
		names = xcalloc(n, sizeof(*names));
		blobs[0] = res.manifest.config;
		for (size_t i = 1; i < n; i++)
			blobs[i] = res.manifest.layers[i - 1];
	}
	/* What the destination lacks, then fetch only that (in parallel), then send. */
	for (size_t i = 0; r == 0 && i < n; i++) {
		_cleanup_free_ char *what = i == 0 ? xstrdup("config") : xasprintf("layer %zu/%zu", i, n - 1);
		int p = blob_present(src, dst, &blobs[i], what, result, err);
		if (p < 0)
			r = -1;
		else if (p == 0) {
			names[n_missing] = steal_pointer(&what);
			missing[n_missing++] = blobs[i];
		}
	}
	if (r == 0 && n_missing && src->ops->prepare_blobs)
		r = src->ops->prepare_blobs(src, missing, n_missing, err);
	for (size_t i = 0; r == 0 && i < n_missing; i++)
		r = blob_send(src, dst, &missing[i], names[i], result, err);
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	free(missing);
	free(blobs);
	if (r == 0 && dst->ops->oci_only)
		r = manifest_to_oci(&res, err);
	if (r == 0)
		r = dst->ops->put_manifest(dst, res.image.data, res.image.len, res.image_type, res.image_digest, err);
	if (r == 0)
		r = dst->ops->commit(dst, err);
	if (r == 0) {
		result->manifest_digest = xstrdup(res.image_digest);
		result->media_type = xstrdup(res.image_type);
		/* Remember what a registry tag resolved to, for --offline. */
		if (src->ref.transport == OCI_TRANSPORT_DOCKER && src->ref.digest == NULL && !opts->offline)
			r = oci_cache_put_buf(&cache, res.top.data, res.top.len, res.top_digest, NULL, err) < 0 ||
			            oci_cache_tag_set(&cache, &src->ref, res.top_digest, err) < 0
			        ? -1
			        : 0;
	}
	if (r < 0 && dst_text) {
		_cleanup_free_ char *d = xstrdup(dst_text);
		err_wrap(err, "copy to %s", d);
	}
	resolved_free(&res);
	source_freep(&src);
	src = NULL;
	dest_freep(&dst);
	dst = NULL;
	oci_cache_close(&cache);
	if (r < 0)
		oci_copy_result_free(result);
	return r;
}

/* ---------------------------------------------------------------- inspect */
static int read_config(struct oci_source *src, const struct oci_desc *d, json_t **out, struct err **err)
{
	if (d->size > 16 * 1024 * 1024)
		return err_set(err, EFBIG, "config %s: %lld bytes is over the 16 MiB limit", d->digest,
		               (long long)d->size);
	if (src->ops->prepare_blobs && src->ops->prepare_blobs(src, d, 1, err) < 0)
		return -1;
	_cleanup_close_ int fd = -1;
	if (src->ops->open_blob(src, d, &fd, err) < 0)
		return -1;
	_cleanup_free_ char *text = xmalloc((size_t)d->size + 1);
	ssize_t n = io_read_full(fd, text, (size_t)d->size, err);
	if (n < 0)
		return err_wrap(err, "config %s", d->digest);
	if (oci_digest_verify_buf(text, (size_t)n, d->digest, err) < 0)
		return err_wrap(err, "config");
	json_error_t je;
	*out = json_loadb(text, (size_t)n, 0, &je);
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
	int r = source_open(text, opts, &cache, &src, err);
	if (r == 0)
		r = resolve(src, opts, &res, err);
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
