/* pull: an image pulled for use (oci.h, oci_pull_image): the copy into the cache, then its
 * manifest and config read back from there once, checked and parsed, for every caller (the build's
 * app and sleeve, image-file extraction). */
#include <errno.h>
#include <string.h>

#include "oci/internal.h"

void oci_image_free(struct oci_image *img)
{
	if (img->manifest_parsed)
		oci_manifest_free(&img->manifest);
	json_decref(img->config);
	free(img->media_type);
	oci_copy_result_free(&img->pulled);
	memset(img, 0, sizeof(*img));
}

/* The pulled image's manifest and config from the cache, checked against their digests. */
static int read_back(struct oci_cache *cache, struct oci_image *img, struct err **err)
{
	_cleanup_buf_ struct buf mtext = {0}, ctext = {0};
	if (oci_cache_read_manifest(cache, img->digest, &mtext, err) < 0 ||
	    oci_manifest_parse(mtext.data, mtext.len, img->media_type, &img->manifest, err) < 0)
		return err_wrap(err, "manifest %s", img->digest);
	img->manifest_parsed = true;
	if (img->manifest.kind != OCI_KIND_IMAGE)
		return err_set(err, EINVAL, "%s is an index, not an image", img->digest);
	const struct oci_desc *c = &img->manifest.config;
	if (oci_cache_read_blob(cache, c->digest, c->size, OCI_CONFIG_MAX, &ctext, err) < 0)
		return err_wrap(err, "config");
	json_error_t je;
	img->config = json_loadb(ctext.data, ctext.len, 0, &je);
	if (!img->config || !json_is_object(img->config))
		return err_set(err, EINVAL, "config %s: not a JSON object (%s)", c->digest, img->config ? "" : je.text);
	return 0;
}

int oci_pull_image(const char *ref, const struct oci_opts *opts, struct oci_cache *cache, struct oci_image *out,
                   struct err **err)
{
	memset(out, 0, sizeof(*out));
	for (int attempt = 1;; attempt++) {
		if (oci_copy_cached(ref, NULL, opts, cache, &out->pulled, err) < 0)
			return -1;
		snprintf(out->digest, sizeof(out->digest), "%s", out->pulled.manifest_digest);
		out->media_type = xstrdup(out->pulled.media_type);
		if (read_back(cache, out, err) == 0)
			return 0;
		/* A copy that changed in the cache (EBADMSG) was quarantined: the pull fetches it anew. */
		if (attempt == 2 || (*err)->code != EBADMSG) {
			oci_image_free(out);
			return -1;
		}
		log_warn("%s: %s; pulling again", ref, (*err)->msg);
		err_free(err);
		oci_image_free(out);
	}
}
