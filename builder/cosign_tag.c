/* cosign_tag: writes the image cosign keeps at sha256-<hex>.sig / .att (builder/cosign_tag.h),
 * the shape cosign gives it: a config whose rootfs.diff_ids are the layers' digests, its fixed
 * "created" times, and a manifest naming the layers with their annotations. */
#include <string.h>

#include "builder/cosign_tag.h"

int bld_cosign_subject(const char *image, const char *digest, const char *what, const struct oci_opts *opts,
                       struct oci_ref *ref, char digest_out[OCI_DIGEST_MAX], struct err **err)
{
	if (oci_ref_parse(image, ref, err) < 0)
		return -1;
	int r = 0;
	if (ref->transport != OCI_TRANSPORT_DOCKER)
		r = err_set(err, EINVAL, "%s: only images in a registry can be %s (a docker:// reference)", image,
		            what);
	else if (digest == NULL)
		r = oci_resolve_digest(image, opts, digest_out, err);
	else
		snprintf(digest_out, OCI_DIGEST_MAX, "%s", digest);
	if (r == 0 && ref->digest && strcmp(ref->digest, digest_out) != 0)
		r = err_set(err, EINVAL, "%s names %s but the registry holds %s", image, ref->digest, digest_out);
	if (r == 0)
		r = oci_digest_check(digest_out, err);
	if (r < 0)
		oci_ref_free(ref);
	return r;
}

char *bld_cosign_tag_ref(const struct oci_ref *ref, const char *digest, const char *suffix)
{
	return xasprintf("docker://%s/%s:sha256-%s.%s", ref->registry, ref->repository, oci_digest_hex(digest), suffix);
}

/* The layers of media type mt already at the tag (other keys' signatures, earlier attestations):
 * kept, as cosign keeps them, so that each signer's verifier still finds its own. None when the
 * tag is not there yet. */
static int earlier_layers(const char *tag_ref, const char *mt, const struct oci_opts *opts, json_t *layers,
                          struct err **err)
{
	struct oci_opts quiet = *opts;
	quiet.progress = NULL;
	_cleanup_json_ json_t *doc = NULL;
	struct err *e = NULL;
	if (oci_inspect(tag_ref, &quiet, &doc, &e) < 0) {
		if (e->code == ENOENT) {
			err_free(&e);
			return 0;
		}
		*err = e;
		return err_wrap(err, "what is already at %s", tag_ref);
	}
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(json_object_get(doc, "manifest"), "layers"), i, l)
	{
		const char *lmt = json_string_value(json_object_get(l, "mediaType"));
		if (lmt && strcmp(lmt, mt) == 0)
			json_array_append(layers, l);
	}
	return 0;
}

/* A layer with this blob and these annotations is there already (the same unsigned statement
 * attached again). Signatures of one payload by two keys share the blob but not the annotation:
 * both stay. */
static bool has_layer(const json_t *layers, const char *digest, const json_t *annotations)
{
	size_t i;
	json_t *l;
	json_array_foreach(layers, i, l)
	{
		const char *d = json_string_value(json_object_get(l, "digest"));
		if (d && strcmp(d, digest) == 0 && json_equal(json_object_get(l, "annotations"), annotations))
			return true;
	}
	return false;
}

int bld_cosign_tag_push(const struct oci_ref *ref, const char *digest, const char *suffix,
                        const struct bld_cosign_layer *layer, const struct oci_opts *opts, char **tag_ref,
                        struct err **err)
{
	char layer_digest[OCI_DIGEST_MAX], config_digest[OCI_DIGEST_MAX], manifest_digest[OCI_DIGEST_MAX];
	oci_digest_buf(layer->data, layer->len, layer_digest);
	_cleanup_free_ char *ref_text = bld_cosign_tag_ref(ref, digest, suffix);
	_cleanup_json_ json_t *layers = json_array();
	if (earlier_layers(ref_text, layer->media_type, opts, layers, err) < 0)
		return -1;
	if (!has_layer(layers, layer_digest, layer->annotations)) {
		json_t *ours =
		    json_pack("{s:s, s:I, s:s, s:O}", "mediaType", layer->media_type, "size", (json_int_t)layer->len,
		              "digest", layer_digest, "annotations", layer->annotations);
		json_array_append_new(layers, ours);
	}
	json_t *diff_ids = json_array();
	size_t i;
	json_t *l;
	json_array_foreach(layers, i, l) json_array_append(diff_ids, json_object_get(l, "digest"));
	_cleanup_json_ json_t *config_doc =
	    json_pack("{s:s, s:{}, s:s, s:[{s:s}], s:s, s:{s:s, s:o}}", "architecture", "", "config", "created",
	              "0001-01-01T00:00:00Z", "history", "created", "0001-01-01T00:00:00Z", "os", "", "rootfs", "type",
	              "layers", "diff_ids", diff_ids);
	_cleanup_free_ char *config = json_dumps(config_doc, JSON_COMPACT | JSON_SORT_KEYS);
	oci_digest_buf(config, strlen(config), config_digest);
	_cleanup_json_ json_t *manifest_doc = json_pack(
	    "{s:i, s:s, s:{s:s, s:I, s:s}, s:O}", "schemaVersion", 2, "mediaType", OCI_MT_MANIFEST, "config",
	    "mediaType", OCI_MT_CONFIG, "size", (json_int_t)strlen(config), "digest", config_digest, "layers", layers);
	_cleanup_free_ char *manifest = json_dumps(manifest_doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	/* The earlier layers' blobs are in the repository already: only the new ones go up. */
	struct oci_blob blobs[] = {{config, strlen(config)}, {layer->data, layer->len}};
	if (oci_put_image(ref_text, opts, blobs, 2, manifest, strlen(manifest), OCI_MT_MANIFEST, manifest_digest, err) <
	    0)
		return -1;
	if (tag_ref)
		*tag_ref = steal_pointer(&ref_text);
	return 0;
}
