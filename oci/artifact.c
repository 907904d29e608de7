/* artifact: the small images cosign attaches beside an image in its repository (signatures at
 * sha256-<hex>.sig, attestations at sha256-<hex>.att): the layers of one media type, read whole into
 * memory with their annotations, each checked against its digest. Sizes are capped before anything
 * is fetched: what a registry serves there is outside data a verifier reads before trusting it. */
#include <errno.h>
#include <string.h>

#include "oci/internal.h"

/* Beyond this many layers of the media type the rest are skipped (and counted). */
#define ARTIFACT_MAX_LAYERS 256

static void source_close(struct oci_source **s)
{
	if (*s)
		(*s)->ops->free(*s);
}

int oci_artifact_read(const char *ref, const struct oci_opts *opts, const char *media_type, size_t max_size,
                      struct oci_artifact *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	_cleanup_(source_close) struct oci_source *src = NULL;
	struct oci_manifest m = {0};
	int r = oci_source_open_manifest(ref, opts, &cache, &src, &m, out->digest, err);
	if (r == 0 && m.kind != OCI_KIND_IMAGE)
		r = err_set(err, EINVAL, "%s: an index, not the image of an attached artifact", ref);
	json_t *descs = r == 0 ? json_object_get(m.json, "layers") : NULL;
	for (size_t i = 0; r == 0 && i < m.n_layers; i++) {
		const struct oci_desc *d = &m.layers[i];
		if (strcmp(d->media_type, media_type) != 0)
			continue;
		if (d->size < 0 || (uint64_t)d->size > max_size || out->n_layers == ARTIFACT_MAX_LAYERS) {
			out->n_skipped++;
			continue;
		}
		out->layers = xrealloc(out->layers, (out->n_layers + 1) * sizeof(*out->layers));
		struct oci_artifact_layer *l = &out->layers[out->n_layers++];
		memset(l, 0, sizeof(*l));
		l->digest = xstrdup(d->digest);
		json_t *ann = json_object_get(json_array_get(descs, i), "annotations");
		l->annotations = json_is_object(ann) ? json_incref(ann) : NULL;
		if (oci_source_read_blob(src, d, &l->data, err) < 0)
			r = err_wrap(err, "%s: layer %zu (%s)", ref, i, d->digest);
	}
	oci_manifest_free(&m);
	source_close(&src);
	src = NULL;
	oci_cache_close(&cache);
	if (r < 0)
		oci_artifact_free(out);
	return r;
}

void oci_artifact_free(struct oci_artifact *a)
{
	for (size_t i = 0; i < a->n_layers; i++) {
		free(a->layers[i].digest);
		json_decref(a->layers[i].annotations);
		buf_free(&a->layers[i].data);
	}
	free(a->layers);
	memset(a, 0, sizeof(*a));
}
