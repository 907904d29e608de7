/* image_file: one file out of an image's layers (any oci/ transport): pull
 * into the blob cache, flatten with the whiteout rules, stream the file's
 * bytes to a local path. `enclaver trust IMAGE` reads the release image's EIF this way. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"

int bld_image_file_extract(const char *ref, const struct oci_opts *opts, const char *path_in_image,
                           const char *out_path, struct err **err)
{
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	struct oci_copy_result pulled = {0};
	struct oci_manifest image = {0};
	bool parsed = false;
	struct bld_tree *tree = NULL;
	int rc = -1;
	_cleanup_free_ char *clean = NULL;
	if (bld_path_clean(path_in_image, &clean, err) < 0)
		goto out;
	if (oci_copy(ref, NULL, opts, &pulled, err) < 0)
		goto out;
	{
		_cleanup_buf_ struct buf m = {0};
		if (oci_cache_read_manifest(&cache, pulled.manifest_digest, &m, err) < 0 ||
		    oci_manifest_parse(m.data, m.len, pulled.media_type, &image, err) < 0) {
			err_wrap(err, "manifest %s", pulled.manifest_digest);
			goto out;
		}
		parsed = true;
	}
	if (image.kind != OCI_KIND_IMAGE) {
		err_set(err, EINVAL, "%s is an index, not an image", pulled.manifest_digest);
		goto out;
	}
	if (bld_tree_new(NULL, &tree, err) < 0)
		goto out;
	for (size_t i = 0; i < image.n_layers; i++) {
		const struct oci_desc *d = &image.layers[i];
		_cleanup_free_ char *lpath = oci_cache_blob_path(&cache, d->digest);
		if (bld_tree_apply_layer(tree, lpath, d->media_type, err) < 0) {
			err_wrap(err, "layer %zu (%s)", i + 1, d->digest);
			goto out;
		}
	}
	struct bld_node *n = bld_tree_lookup(tree, clean);
	if (n == NULL) {
		err_set(err, ENOENT, "the image has no /%s (not an enclaver release image?)", clean);
		goto out;
	}
	if (!S_ISREG(n->mode)) {
		err_set(err, EINVAL, "/%s in the image is not a regular file", clean);
		goto out;
	}
	{
		struct atomic_file af = {.fd = -1};
		if (atomic_file_open(&af, out_path, 0644, err) < 0)
			goto out;
		int src = bld_tree_content_fd(tree);
		char chunk[1 << 16];
		uint64_t done = 0;
		while (done < n->size) {
			size_t want = n->size - done < sizeof(chunk) ? (size_t)(n->size - done) : sizeof(chunk);
			ssize_t got = io_pread_full(src, chunk, want, (off_t)(n->content_off + done), err);
			if (got < 0 || (size_t)got != want || io_write_full(af.fd, chunk, want, err) < 0) {
				if (got >= 0 && (size_t)got != want && *err == NULL)
					err_set(err, EIO, "the content store ends early");
				atomic_file_abort(&af);
				goto out;
			}
			done += want;
		}
		if (atomic_file_commit(&af, err) < 0) {
			atomic_file_abort(&af);
			goto out;
		}
	}
	rc = 0;
out:
	if (rc < 0)
		err_wrap(err, "%s", ref);
	bld_tree_free(tree);
	if (parsed)
		oci_manifest_free(&image);
	oci_copy_result_free(&pulled);
	oci_cache_close(&cache);
	return rc;
}
