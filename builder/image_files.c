/* image_files: reads files out of an image on any oci/ transport without extracting it: pulls it
 * through the blob cache, applies its layers to a flatten tree (whiteouts and all) and copies the
 * wanted regular files out atomically. Release images (/enclave/...) and sources.odyn use it. */
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"

/* Copies a regular file's bytes out of the tree's content store into `out`, atomically. */
static int copy_out(struct bld_tree *t, const struct bld_node *node, const char *out, struct err **err)
{
	_cleanup_atomic_file_ struct atomic_file af = {.fd = -1};
	if (atomic_file_open(&af, out, (node->mode & 0777) | 0600, err) < 0)
		return -1;
	static _Thread_local char chunk[1 << 16];
	for (uint64_t done = 0; done < node->size;) {
		size_t want = node->size - done < sizeof(chunk) ? (size_t)(node->size - done) : sizeof(chunk);
		ssize_t n = io_pread_full(bld_tree_content_fd(t), chunk, want, (off_t)(node->content_off + done), err);
		if (n < 0)
			return -1;
		if ((size_t)n != want)
			return err_set(err, EIO, "the flatten content store ended early");
		if (io_write_full(af.fd, chunk, want, err) < 0)
			return -1;
		done += want;
	}
	return atomic_file_commit(&af, err);
}

int bld_image_files_extract(const char *ref, const struct oci_opts *opts, struct oci_cache *cache,
                            struct bld_image_file *files, size_t n, const char *tmp_dir,
                            char digest_out[OCI_DIGEST_MAX], struct err **err)
{
	struct oci_cache own;
	if (!cache) {
		if (oci_cache_open(opts->cache_dir, &own, err) < 0)
			return -1;
		cache = &own;
	}
	struct oci_image img;
	bool pulled = false;
	struct bld_tree *tree = NULL;
	struct bld_layer *layers = NULL;
	int r = -1;
	if (oci_pull_image(ref, opts, cache, &img, err) < 0)
		goto out;
	pulled = true;
	if (bld_tree_new(tmp_dir, &tree, err) < 0 || bld_layers_from_cache(cache, &img.manifest, &layers, err) < 0 ||
	    bld_tree_apply_layers(tree, layers, img.manifest.n_layers, NULL, NULL, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *clean = NULL;
		if (bld_path_clean(files[i].path, &clean, err) < 0)
			goto out;
		const struct bld_node *node = bld_tree_lookup(tree, clean);
		files[i].found = node != NULL;
		if (!node && files[i].optional)
			continue;
		if (!node) {
			err_set(err, ENOENT, "the image has no %s", files[i].path);
			goto out;
		}
		if ((node->mode & S_IFMT) != S_IFREG) {
			err_set(err, EINVAL, "%s in the image is not a regular file%s", files[i].path,
			        (node->mode & S_IFMT) == S_IFLNK ? " (a symlink; links are not followed)" : "");
			goto out;
		}
		if (copy_out(tree, node, files[i].out, err) < 0) {
			err_wrap(err, "%s", files[i].path);
			goto out;
		}
	}
	if (digest_out)
		snprintf(digest_out, OCI_DIGEST_MAX, "%s", img.digest);
	r = 0;
out:
	if (r < 0)
		err_wrap(err, "%s", ref);
	bld_tree_free(tree);
	if (pulled) {
		bld_layers_free(layers, img.manifest.n_layers);
		oci_image_free(&img);
	}
	if (cache == &own)
		oci_cache_close(&own);
	return r;
}
