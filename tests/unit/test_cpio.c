/* test_cpio: the newc writer against linuxkit's golden bootstrap ramdisk,
 * byte for byte, and the writer's own rules (padding, trailer, misuse). */
#include <fcntl.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "tests/harness.h"

/* The golden inputs' generator (shared/golden/README.md): xorshift32, the low
 * byte of the state after each three-step update. */
static void xorshift_file(const char *path, uint32_t seed, size_t n)
{
	uint8_t *data = xmalloc(n);
	uint32_t x = seed;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		data[i] = x & 0xff;
	}
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	io_write_full(fd, data, n, NULL);
	close(fd);
	free(data);
}

static char *slurp(const char *path, size_t *len)
{
	char *data = NULL;
	if (io_read_file(path, 64u << 20, &data, len, NULL) < 0)
		return NULL;
	return data;
}

TEST(bootstrap_matches_linuxkit_golden)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *init = xasprintf("%s/init", dir), *nsm = xasprintf("%s/nsm.ko", dir);
	_cleanup_free_ char *out = xasprintf("%s/bootstrap.cpio", dir);
	xorshift_file(init, 0x1111, 12345);
	xorshift_file(nsm, 0x2222, 2001);
	struct bld_bootstrap_spec spec = {.init_path = init, .nsm_path = nsm};
	struct err *e = NULL;
	REQUIRE(bld_bootstrap_write(out, &spec, &e) == 0);
	size_t got_len = 0, want_len = 0;
	_cleanup_free_ char *got = slurp(out, &got_len);
	_cleanup_free_ char *want = slurp(test_data("cpio/bootstrap-synthetic.img"), &want_len);
	REQUIRE(got && want);
	CHECK_INT_EQ(got_len, want_len);
	CHECK_INT_EQ(got_len, 14848);
	if (got_len == want_len) {
		size_t i = 0;
		while (i < got_len && got[i] == want[i])
			i++;
		if (i != got_len)
			test_fail(t, __FILE__, __LINE__, "first difference at byte %zu", i);
	}
}

TEST(bootstrap_missing_init_fails_without_output)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *out = xasprintf("%s/b2.cpio", dir), *missing = xasprintf("%s/nope", dir);
	struct bld_bootstrap_spec spec = {.init_path = missing};
	struct err *e = NULL;
	CHECK(bld_bootstrap_write(out, &spec, &e) < 0);
	CHECK_ERR_CONTAINS(e, "nope");
	err_free(&e);
	CHECK(access(out, F_OK) != 0);
}

TEST(bootstrap_with_modules_adds_dir_and_files)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *init = xasprintf("%s/i3", dir), *mod = xasprintf("%s/vsock.ko", dir);
	_cleanup_free_ char *out = xasprintf("%s/b3.cpio", dir);
	xorshift_file(init, 7, 10);
	xorshift_file(mod, 8, 5);
	const char *mods[] = {mod};
	struct bld_bootstrap_spec spec = {.init_path = init, .module_paths = mods, .n_modules = 1};
	struct err *e = NULL;
	REQUIRE(bld_bootstrap_write(out, &spec, &e) == 0);
	size_t len = 0;
	_cleanup_free_ char *got = slurp(out, &len);
	REQUIRE(got);
	CHECK(len % 512 == 0);
	CHECK(memmem(got, len, "modules/vsock.ko", 17) != NULL);
	/* The list odyn's init reads, after the modules. */
	char *list = memmem(got, len, "odyn-modules", 13);
	CHECK(list != NULL && memmem(list, len - (size_t)(list - got), "/modules/vsock.ko\n", 18) != NULL);
	/* "modules" dir follows init (no nsm.ko): ino 721 dev, 722 init, 723 modules. */
	CHECK(memmem(got, len, "070701000002d3000041ed", 22) != NULL);
}

TEST(cpio_entry_layout_and_padding)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *out = xasprintf("%s/x.cpio", dir);
	int fd = open(out, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	REQUIRE(fd >= 0);
	struct bld_cpio *c = bld_cpio_new(fd);
	struct err *e = NULL;
	struct bld_cpio_entry ln = {
	    .name = "a/link", .mode = S_IFLNK | 0777, .uid = 5, .gid = 6, .mtime = 77, .size = 3};
	CHECK(bld_cpio_header(c, &ln, &e) == 0);
	CHECK(bld_cpio_data(c, "tgt", 3, &e) == 0);
	struct bld_cpio_entry dev = {.name = "null", .mode = S_IFCHR | 0666, .rdev_major = 1, .rdev_minor = 3};
	CHECK(bld_cpio_header(c, &dev, &e) == 0);
	CHECK(bld_cpio_finish(c, &e) == 0);
	CHECK(e == NULL);
	bld_cpio_free(c);
	close(fd);
	size_t len = 0;
	_cleanup_free_ char *got = slurp(out, &len);
	REQUIRE(got && len == 512);
	/* Header 110 + "a/link\0" = 117 -> pad to 120, data 3 -> pad to 124. */
	CHECK(memcmp(got, "070701000002d1", 14) == 0);
	CHECK(memcmp(got + 14, "0000a1ff0000000500000006000000010000004d00000003", 48) == 0);
	CHECK(memcmp(got + 110, "a/link\0\0\0\0tgt\0", 14) == 0);
	CHECK(memcmp(got + 124, "070701000002d2000021b6", 22) == 0);
	/* rdevmajor 1, rdevminor 3 at field offsets 78 and 86 of the header. */
	CHECK(memcmp(got + 124 + 78, "0000000100000003", 16) == 0);
	/* The trailer carries the third inode number, mode 0, nlink 1. */
	CHECK(memmem(got, len,
	             "070701000002d3"
	             "00000000"
	             "00000000"
	             "00000000"
	             "00000001",
	             46) != NULL);
	CHECK(memmem(got, len, "TRAILER!!!", 11) != NULL);
}

TEST(cpio_rejects_misuse)
{
	struct bld_cpio *c = bld_cpio_new(-1);
	struct err *e = NULL;
	struct bld_cpio_entry f = {.name = "f", .mode = S_IFREG | 0644, .size = 4};
	CHECK(bld_cpio_header(c, &f, &e) == 0);
	CHECK(bld_cpio_data(c, "toolong", 7, &e) < 0);
	CHECK_ERR_CONTAINS(e, "declared");
	err_free(&e);
	CHECK(bld_cpio_header(c, &f, &e) < 0);
	CHECK_ERR_CONTAINS(e, "missing");
	err_free(&e);
	struct bld_cpio_entry big = {.name = "g", .mode = S_IFREG | 0644, .size = 1ull << 33};
	CHECK(bld_cpio_finish(c, &e) < 0);
	err_free(&e);
	bld_cpio_free(c);
	c = bld_cpio_new(-1);
	CHECK(bld_cpio_header(c, &big, &e) < 0);
	CHECK_ERR_CONTAINS(e, "4 GiB");
	err_free(&e);
	char *long_name = xmalloc(5000);
	memset(long_name, 'a', 4999);
	long_name[4999] = '\0';
	struct bld_cpio_entry longe = {.name = long_name, .mode = S_IFREG | 0644};
	CHECK(bld_cpio_header(c, &longe, &e) < 0);
	CHECK_ERR_CONTAINS(e, "at most 4095");
	err_free(&e);
	free(long_name);
	bld_cpio_free(c);
}
