/* put_image: writes an image the caller made in memory (a handful of small blobs and the
 * manifest naming them) to any destination, as a copy would: the blobs go through the cache
 * (so their digests are checked and each destination gets an fd), the destination is asked
 * whether it has each one before it is sent, and the manifest goes last. A signature image
 * (a cosign `.sig` tag) is what this is for. */
#include <string.h>
#include <unistd.h>

#include "oci/internal.h"

static int put_blob(struct oci_dest *dst, const struct oci_cache *cache, const struct oci_blob *b, struct err **err)
{
	char digest[OCI_DIGEST_MAX];
	if (oci_cache_put_buf(cache, b->data, b->len, NULL, digest, err) < 0)
		return -1;
	struct oci_desc desc = {.media_type = (char *)b->media_type, .digest = digest, .size = (int64_t)b->len};
	bool has = false;
	if (dst->ops->has_blob(dst, &desc, &has, err) < 0)
		return err_wrap(err, "blob %s", digest);
	if (has)
		return 0;
	_cleanup_close_ int fd = -1;
	if (oci_cache_open_blob(cache, digest, &fd, err) < 0)
		return -1;
	if (dst->ops->put_blob(dst, &desc, fd, true, NULL, err) < 0)
		return err_wrap(err, "blob %s", digest);
	return 0;
}

int oci_put_image(const char *dst_text, const struct oci_opts *opts, const struct oci_blob *blobs, size_t n,
                  const char *manifest, size_t manifest_len, const char *media_type, char digest[OCI_DIGEST_MAX],
                  struct err **err)
{
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	_cleanup_(oci_dest_freep) struct oci_dest *dst = NULL;
	int r = oci_dest_open(dst_text, opts, &cache, &dst, err);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = put_blob(dst, &cache, &blobs[i], err);
	if (r == 0) {
		oci_digest_buf(manifest, manifest_len, digest);
		r = dst->ops->put_manifest(dst, manifest, manifest_len, media_type, digest, false, err);
	}
	if (r == 0)
		r = dst->ops->commit(dst, err);
	oci_dest_freep(&dst);
	dst = NULL;
	oci_cache_close(&cache);
	if (r < 0)
		return err_wrap(err, "write %s", dst_text);
	return 0;
}
