/* fuzz_flatten: one layer of arbitrary bytes (as tar, gzip or zstd by the
 * first byte) applied to a tree, then walked: clean failure or success only. */
#include <fcntl.h>

#include "builder/builder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int visit(struct bld_node *n, const char *path, void *ctx, struct err **err)
{
	(void)path, (void)err;
	*(size_t *)ctx += n->size;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {"application/vnd.oci.image.layer.v1.tar",
	                                    "application/vnd.oci.image.layer.v1.tar+gzip",
	                                    "application/vnd.oci.image.layer.v1.tar+zstd"};
	if (size < 1)
		return 0;
	log_set_level(LOG_ERROR);
	char path[] = "/tmp/fuzz-layer-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	io_write_full(fd, data + 1, size - 1, NULL);
	close(fd);
	struct bld_tree *t = NULL;
	struct err *e = NULL;
	if (bld_tree_new("/tmp", &t, &e) == 0) {
		/* A sparse entry of a few bytes may claim up to 4 GiB: keep each run small. */
		bld_tree_set_content_max(t, 16 << 20);
		if (bld_tree_apply_layer(t, path, types[data[0] % 3], &e) < 0)
			err_free(&e);
		size_t total = 0;
		bld_tree_walk(t, visit, &total, &e);
		bld_tree_free(t);
	} else {
		err_free(&e);
	}
	unlink(path);
	return 0;
}
