/* release_read: the other direction of release.c, for `enclaver run IMAGE`: fetch a release image
 * through any oci/ transport and copy /enclave/application.eif and /enclave/enclaver.yaml out of its
 * flattened layers (whiteouts respected, streamed through the tree's content store). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"

#define RELEASE_EIF_PATH      "enclave/application.eif"
#define RELEASE_MANIFEST_PATH "enclave/enclaver.yaml"

/* Copies a regular file of the tree to out_path (atomically). */
static int tree_extract(struct bld_tree *t, const char *ref, const char *path, const char *out_path, struct err **err)
{
	struct bld_node *n = bld_tree_lookup(t, path);
	if (!n)
		return err_set(err, ENOENT, "%s: the image has no /%s: is it a release image from enclaver build?", ref,
		               path);
	if ((n->mode & S_IFMT) != S_IFREG)
		return err_set(err, EINVAL, "%s: /%s is not a regular file", ref, path);
	struct atomic_file af;
	if (atomic_file_open(&af, out_path, 0600, err) < 0)
		return -1;
	int src = bld_tree_content_fd(t);
	static char chunk[1 << 16];
	for (uint64_t off = 0; off < n->size;) {
		size_t want = n->size - off < sizeof(chunk) ? (size_t)(n->size - off) : sizeof(chunk);
		ssize_t got = io_pread_full(src, chunk, want, (off_t)(n->content_off + off), err);
		if (got < 0 || (size_t)got != want || io_write_full(af.fd, chunk, want, err) < 0) {
			if (got >= 0 && (size_t)got != want)
				err_set(err, EIO, "content store: short read");
			atomic_file_abort(&af);
			return err_wrap(err, "%s: /%s", ref, path);
		}
		off += want;
	}
	if (atomic_file_commit(&af, err) < 0) {
		atomic_file_abort(&af);
		return -1;
	}
	return 0;
}

int bld_release_extract(const char *ref, const struct oci_opts *opts, const char *dir, char **eif_path,
                        char **manifest_path, struct err **err)
{
	struct oci_copy_result pulled = {0};
	struct oci_cache cache;
	struct oci_manifest m;
	bool have_m = false;
	struct bld_tree *tree = NULL;
	struct buf text = {0};
	char *eif = NULL, *yaml = NULL;
	int r = -1;
	if (oci_cache_open(opts->cache_dir, &cache, err) < 0)
		return -1;
	if (oci_copy(ref, NULL, opts, &pulled, err) < 0) {
		err_wrap(err, "release image %s", ref);
		goto out;
	}
	if (oci_cache_read_manifest(&cache, pulled.manifest_digest, &text, err) < 0 ||
	    oci_manifest_parse(text.data, text.len, pulled.media_type, &m, err) < 0) {
		err_wrap(err, "release image %s", ref);
		goto out;
	}
	have_m = true;
	if (m.kind != OCI_KIND_IMAGE) {
		err_set(err, EINVAL, "release image %s: %s is an index, not an image", ref, pulled.manifest_digest);
		goto out;
	}
	if (bld_tree_new(dir, &tree, err) < 0)
		goto out;
	for (size_t i = 0; i < m.n_layers; i++) {
		_cleanup_free_ char *blob = oci_cache_blob_path(&cache, m.layers[i].digest);
		if (bld_tree_apply_layer(tree, blob, m.layers[i].media_type, err) < 0) {
			err_wrap(err, "release image %s: layer %zu (%s)", ref, i + 1, m.layers[i].digest);
			goto out;
		}
	}
	eif = xasprintf("%s/application.eif", dir);
	yaml = xasprintf("%s/enclaver.yaml", dir);
	if (tree_extract(tree, ref, RELEASE_EIF_PATH, eif, err) < 0 ||
	    tree_extract(tree, ref, RELEASE_MANIFEST_PATH, yaml, err) < 0)
		goto out;
	*eif_path = steal_pointer(&eif);
	*manifest_path = steal_pointer(&yaml);
	r = 0;
out:
	bld_tree_free(tree);
	buf_free(&text);
	free(eif);
	free(yaml);
	if (have_m)
		oci_manifest_free(&m);
	oci_copy_result_free(&pulled);
	oci_cache_close(&cache);
	return r;
}
