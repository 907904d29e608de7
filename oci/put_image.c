/* put_image: writes an image made here to any destination, as a copy from the cache would: its
 * blobs were written once by the verifying blob writer (into the cache, or a staging folder beside
 * it) and its manifest is in memory. A build's release image and a signature image (a cosign
 * `.sig` tag) are what this is for. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "oci/internal.h"

/* The image as a copy's source: the manifest from memory, each blob from the staging folder
 * when it is there, else from the cache. Both hold only verified blobs, so a layout hard-links
 * them and nothing hashes them again. */
struct local_source {
	struct oci_source base;
	const char *manifest;
	size_t len;
	const char *media_type;
	char digest[OCI_DIGEST_MAX];
	const char *blob_dir; /* NULL: the cache only */
};

static int local_get_manifest(struct oci_source *s, const char *digest, struct buf *out, char **media_type,
                              struct err **err)
{
	struct local_source *ls = (struct local_source *)s;
	if (digest && strcmp(digest, ls->digest) != 0)
		return err_set(err, ENOENT, "manifest %s: the image is %s", digest, ls->digest);
	buf_append(out, ls->manifest, ls->len);
	*media_type = xstrdup(ls->media_type);
	return 0;
}

static int local_open_blob(struct oci_source *s, const struct oci_desc *d, int *fd, struct err **err)
{
	struct local_source *ls = (struct local_source *)s;
	if (ls->blob_dir && str_has_prefix(d->digest, "sha256:") && oci_digest_check(d->digest, NULL) == 0) {
		_cleanup_free_ char *path = xasprintf("%s/%s", ls->blob_dir, oci_digest_hex(d->digest));
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd >= 0)
			return 0;
		if (errno != ENOENT)
			return err_sys(err, "blob %s: open %s", d->digest, path);
	}
	return oci_cache_open_blob(s->cache, d->digest, fd, err);
}

static const struct oci_source_ops local_source_ops = {
    .get_manifest = local_get_manifest,
    .open_blob = local_open_blob,
    .blobs_verified = true,
};

int oci_put_local_image(const char *dst, const struct oci_opts *opts, struct oci_cache *cache, const char *blob_dir,
                        const char *manifest, size_t manifest_len, const char *media_type,
                        struct oci_copy_result *result, struct err **err)
{
	/* Not a registry: nothing is mounted from the source itself, no tag is remembered. The path
	 * names it in messages. */
	struct local_source ls = {.base = {.ops = &local_source_ops,
	                                   .ref = {.transport = OCI_TRANSPORT_OCI,
	                                           .path = (char *)(blob_dir ? blob_dir : cache->blob_dir),
	                                           .archive_index = -1},
	                                   .opts = opts,
	                                   .cache = cache},
	                          .manifest = manifest,
	                          .len = manifest_len,
	                          .media_type = media_type,
	                          .blob_dir = blob_dir};
	oci_digest_buf(manifest, manifest_len, ls.digest);
	return oci_copy_source(&ls.base, dst, opts, cache, result, err);
}

int oci_put_image(const char *dst_text, const struct oci_opts *opts, const struct oci_blob *blobs, size_t n,
                  const char *manifest, size_t manifest_len, const char *media_type, char digest[OCI_DIGEST_MAX],
                  struct err **err)
{
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = oci_cache_put_buf(&cache, blobs[i].data, blobs[i].len, NULL, NULL, err);
	struct oci_copy_result res;
	if (r == 0)
		r = oci_put_local_image(dst_text, opts, &cache, NULL, manifest, manifest_len, media_type, &res, err);
	if (r == 0) {
		snprintf(digest, OCI_DIGEST_MAX, "%s", res.manifest_digest);
		oci_copy_result_free(&res);
	}
	oci_cache_close(&cache);
	return r;
}
