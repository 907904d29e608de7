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

int bld_image_files_extract(const char *ref, const struct oci_opts *opts, struct bld_image_file *files, size_t n,
                            const char *tmp_dir, char digest_out[OCI_DIGEST_MAX], struct err **err)
{
	struct oci_cache cache;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	struct oci_copy_result pulled = {0};
	struct oci_manifest image = {0};
	bool parsed = false;
	struct bld_tree *tree = NULL;
	struct bld_layer *layers = NULL;
	_cleanup_buf_ struct buf mtext = {0};
	int r = -1;
	if (oci_copy(ref, NULL, opts, &pulled, err) < 0)
		goto out;
	if (oci_cache_read_manifest(&cache, pulled.manifest_digest, &mtext, err) < 0 ||
	    oci_manifest_parse(mtext.data, mtext.len, pulled.media_type, &image, err) < 0) {
		err_wrap(err, "manifest %s", pulled.manifest_digest);
		goto out;
	}
	parsed = true;
	if (image.kind != OCI_KIND_IMAGE) {
		err_set(err, EINVAL, "%s is an index, not an image", pulled.manifest_digest);
		goto out;
	}
	if (bld_tree_new(tmp_dir, &tree, err) < 0)
		goto out;
	layers = xcalloc(image.n_layers + 1, sizeof(*layers));
	for (size_t i = 0; i < image.n_layers; i++)
		layers[i] = (struct bld_layer){.path = oci_cache_blob_path(&cache, image.layers[i].digest),
		                               .media_type = image.layers[i].media_type,
		                               .digest = image.layers[i].digest};
	if (bld_tree_apply_layers(tree, layers, image.n_layers, NULL, NULL, err) < 0)
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
		snprintf(digest_out, OCI_DIGEST_MAX, "%s", pulled.manifest_digest);
	r = 0;
out:
	if (r < 0)
		err_wrap(err, "%s", ref);
	bld_tree_free(tree);
	for (size_t i = 0; layers && i < image.n_layers; i++)
		free((char *)layers[i].path);
	free(layers);
	if (parsed)
		oci_manifest_free(&image);
	oci_copy_result_free(&pulled);
	oci_cache_close(&cache);
	return r;
}
