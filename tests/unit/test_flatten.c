/* test_flatten: layers made here with libarchive applied to the tree: every
 * entry type, every whiteout case, hardlinks across layers, compressions,
 * and hostile or corrupt layers refused with the layer and entry named. */
#include <fcntl.h>
#include <sys/stat.h>
#include <zlib.h>

#include "builder/builder.h"
#include "tests/harness.h"
#include "tests/unit/layer_fixture.h"

#define MT_TAR "application/vnd.oci.image.layer.v1.tar"
#define MT_GZ  "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_ZST "application/vnd.oci.image.layer.v1.tar+zstd"
#define N(a)   (sizeof(a) / sizeof((a)[0]))

static char *layer_path(struct test_ctx *t, const char *name)
{
	return xasprintf("%s/%s", test_tmpdir(t), name);
}

/* Reads a regular file's bytes back from the content store. */
static char *content(struct bld_tree *tree, const struct bld_node *n)
{
	char *s = xcalloc(1, n->size + 1);
	if (io_pread_full(bld_tree_content_fd(tree), s, n->size, (off_t)n->content_off, NULL) != (ssize_t)n->size) {
		free(s);
		return NULL;
	}
	return s;
}

#define CHECK_FILE(tree, path, want)                                                                                   \
	do {                                                                                                           \
		struct bld_node *_n = bld_tree_lookup(tree, path);                                                     \
		if (!_n || !S_ISREG(_n->mode)) {                                                                       \
			test_fail(t, __FILE__, __LINE__, "%s is not a regular file", path);                            \
			break;                                                                                         \
		}                                                                                                      \
		_cleanup_free_ char *_c = content(tree, _n);                                                           \
		CHECK_STR_EQ(_c, want);                                                                                \
	} while (0)

static struct bld_tree *tree_new(struct test_ctx *t)
{
	struct bld_tree *tree = NULL;
	struct err *e = NULL;
	if (bld_tree_new(test_tmpdir(t), &tree, &e) < 0) {
		test_fail(t, __FILE__, __LINE__, "%s", e->msg);
		err_free(&e);
	}
	return tree;
}

TEST(flatten_entry_types)
{
	static const struct fx_entry l1[] = {
	    {'d', "etc/", .mode = 0750, .uid = 1, .gid = 2, .mtime = 1234},
	    {'f', "etc/passwd", "root:x:0:0\n", .mode = 0600, .uid = 0, .gid = 42},
	    {'l', "etc/link", "/etc/passwd"},
	    {'h', "etc/hard", "etc/passwd"},
	    {'c', "dev/null", .mode = 0666, .rmaj = 1, .rmin = 3},
	    {'b', "dev/sda", .rmaj = 8, .rmin = 0},
	    {'p', "run/fifo"},
	    {'f', "bin/cap", "x", .xattr_name = "security.capability", .xattr_value = "\x01\x02"},
	    {'f', "empty", ""},
	};
	_cleanup_free_ char *p = layer_path(t, "types.tar");
	REQUIRE(fx_layer(p, FX_NONE, l1, N(l1)) == 0);
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	struct err *e = NULL;
	REQUIRE(bld_tree_apply_layer(tree, p, MT_TAR, &e) == 0);
	struct bld_node *n = bld_tree_lookup(tree, "etc");
	REQUIRE(n && S_ISDIR(n->mode));
	CHECK_INT_EQ(n->mode & 07777, 0750);
	CHECK_INT_EQ(n->uid, 1);
	CHECK_INT_EQ(n->gid, 2);
	CHECK_INT_EQ(n->mtime, 1234);
	CHECK_FILE(tree, "etc/passwd", "root:x:0:0\n");
	n = bld_tree_lookup(tree, "etc/passwd");
	CHECK_INT_EQ(n->mode, S_IFREG | 0600);
	CHECK_INT_EQ(n->gid, 42);
	n = bld_tree_lookup(tree, "etc/link");
	REQUIRE(n && S_ISLNK(n->mode));
	CHECK_STR_EQ(n->link_target, "/etc/passwd");
	struct bld_node *h = bld_tree_lookup(tree, "etc/hard"), *orig = bld_tree_lookup(tree, "etc/passwd");
	REQUIRE(h);
	CHECK(h->link_group != 0 && h->link_group == orig->link_group);
	CHECK_FILE(tree, "etc/hard", "root:x:0:0\n");
	n = bld_tree_lookup(tree, "dev/null");
	REQUIRE(n && S_ISCHR(n->mode));
	CHECK_INT_EQ(n->rdev_major, 1);
	CHECK_INT_EQ(n->rdev_minor, 3);
	n = bld_tree_lookup(tree, "dev/sda");
	REQUIRE(n && S_ISBLK(n->mode));
	CHECK_INT_EQ(n->rdev_major, 8);
	n = bld_tree_lookup(tree, "run/fifo");
	CHECK(n && S_ISFIFO(n->mode));
	n = bld_tree_lookup(tree, "dev");
	REQUIRE(n && S_ISDIR(n->mode)); /* made because dev/null needed it */
	CHECK_INT_EQ(n->mode & 07777, 0755);
	n = bld_tree_lookup(tree, "bin/cap");
	REQUIRE(n && n->n_xattrs == 1);
	CHECK_STR_EQ(n->xattrs[0].name, "security.capability");
	CHECK(n->xattrs[0].size == 2 && memcmp(n->xattrs[0].value, "\x01\x02", 2) == 0);
	CHECK_FILE(tree, "empty", "");
	bld_tree_free(tree);
}

TEST(flatten_whiteouts_and_replacements)
{
	static const struct fx_entry l1[] = {
	    {'f', "a/x", "ax"},    {'f', "a/y", "ay"},    {'f', "b/z", "bz"},          {'f', "c", "file c"},
	    {'f', "d/k", "dk"},    {'d', "d/sub/"},       {'f', "d/sub/deep", "deep"}, {'f', "e/inner", "ei"},
	    {'f', "keep", "keep"}, {'f', "g/old", "old"},
	};
	static const struct fx_entry l2ok[] = {
	    {'f', "a/.wh.x"},
	    {'f', ".wh.b"},
	    {'d', "c/"}, /* directory replaces file */
	    {'f', "c/q", "cq"},
	    {'f', "d/.wh..wh..opq"}, /* d's lower children go */
	    {'f', "d/new", "dn"},
	    {'f', "e", "e is a file"}, /* file replaces directory */
	    {'f', "f", "same layer"},
	    {'f', ".wh.f"}, /* same-layer whiteout: f stays */
	    {'f', "g/new", "gn"},
	    {'f', "g/.wh..wh..opq"}, /* opaque after a same-layer child: g/new stays */
	    {'f', ".wh.never-existed"},
	    {'f', "a/.wh..wh.plnk"}, /* AUFS metadata: skipped */
	    {'f', "keep", "keep v2"},
	};
	static const struct fx_entry l3[] = {
	    {'f', ".wh.f"}, /* now f goes */
	    {'d', "b/"},    /* b comes back, empty */
	};
	_cleanup_free_ char *p1 = layer_path(t, "w1.tar.gz"), *p2 = layer_path(t, "w2.tar.zst"),
	                    *p3 = layer_path(t, "w3.tar");
	REQUIRE(fx_layer(p1, FX_GZIP, l1, N(l1)) == 0);
	REQUIRE(fx_layer(p2, FX_ZSTD, l2ok, N(l2ok)) == 0);
	REQUIRE(fx_layer(p3, FX_NONE, l3, N(l3)) == 0);
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	struct err *e = NULL;
	REQUIRE(bld_tree_apply_layer(tree, p1, MT_GZ, &e) == 0);
	REQUIRE(bld_tree_apply_layer(tree, p2, MT_ZST, &e) == 0);
	CHECK(bld_tree_lookup(tree, "a/x") == NULL);
	CHECK_FILE(tree, "a/y", "ay");
	CHECK(bld_tree_lookup(tree, "b") == NULL);
	CHECK(bld_tree_lookup(tree, "b/z") == NULL);
	struct bld_node *c = bld_tree_lookup(tree, "c");
	CHECK(c && S_ISDIR(c->mode));
	CHECK_FILE(tree, "c/q", "cq");
	CHECK(bld_tree_lookup(tree, "d/k") == NULL);
	CHECK(bld_tree_lookup(tree, "d/sub") == NULL);
	CHECK_FILE(tree, "d/new", "dn");
	CHECK_FILE(tree, "e", "e is a file");
	CHECK(bld_tree_lookup(tree, "e/inner") == NULL);
	CHECK_FILE(tree, "f", "same layer");
	CHECK_FILE(tree, "g/new", "gn");
	CHECK(bld_tree_lookup(tree, "g/old") == NULL);
	CHECK_FILE(tree, "keep", "keep v2");
	CHECK(bld_tree_lookup(tree, ".wh.never-existed") == NULL);
	CHECK(bld_tree_lookup(tree, "a/.wh..wh.plnk") == NULL);
	REQUIRE(bld_tree_apply_layer(tree, p3, MT_TAR, &e) == 0);
	CHECK(bld_tree_lookup(tree, "f") == NULL);
	struct bld_node *b = bld_tree_lookup(tree, "b");
	CHECK(b && S_ISDIR(b->mode) && b->n_children == 0);
	bld_tree_free(tree);
}

TEST(flatten_hardlink_to_earlier_layer_and_replaced_target)
{
	static const struct fx_entry l1[] = {{'f', "bin/busybox", "BB", .mode = 0755}};
	static const struct fx_entry l2[] = {{'h', "bin/sh", "bin/busybox"}, {'h', "/usr/bin/ls", "./bin/busybox"}};
	static const struct fx_entry l3[] = {{'f', "bin/busybox", "BB2"}};
	_cleanup_free_ char *p1 = layer_path(t, "h1.tar"), *p2 = layer_path(t, "h2.tar"), *p3 = layer_path(t, "h3.tar");
	REQUIRE(fx_layer(p1, FX_NONE, l1, 1) == 0 && fx_layer(p2, FX_NONE, l2, 2) == 0 &&
	        fx_layer(p3, FX_NONE, l3, 1) == 0);
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	struct err *e = NULL;
	REQUIRE(bld_tree_apply_layer(tree, p1, MT_TAR, &e) == 0);
	REQUIRE(bld_tree_apply_layer(tree, p2, MT_TAR, &e) == 0);
	struct bld_node *sh = bld_tree_lookup(tree, "bin/sh"), *ls = bld_tree_lookup(tree, "usr/bin/ls");
	REQUIRE(sh && ls);
	CHECK(sh->link_group && sh->link_group == ls->link_group);
	CHECK_INT_EQ(sh->mode, S_IFREG | 0755);
	REQUIRE(bld_tree_apply_layer(tree, p3, MT_TAR, &e) == 0);
	CHECK_FILE(tree, "bin/busybox", "BB2");
	CHECK_FILE(tree, "bin/sh", "BB");
	CHECK(bld_tree_lookup(tree, "bin/busybox")->link_group == 0);
	bld_tree_free(tree);
}

TEST(flatten_names_cleaned_and_symlinks_stay_inside)
{
	static const struct fx_entry l1[] = {
	    {'f', "/abs/file", "abs"},     {'f', "./a/./b//c", "abc"},
	    {'f', "x/../y", "y"},          {'l', "esc", "/../../etc"}, /* absolute target with ".." above the root */
	    {'f', "esc/passwd", "inside"},                             /* lands at etc/passwd of the tree */
	    {'l', "rel", "../../../usr"},  {'f', "rel/file", "usr file"},
	    {'d', "./", .mode = 0700}, /* the root's own metadata */
	};
	_cleanup_free_ char *p = layer_path(t, "names.tar");
	REQUIRE(fx_layer(p, FX_NONE, l1, N(l1)) == 0);
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	struct err *e = NULL;
	REQUIRE(bld_tree_apply_layer(tree, p, MT_TAR, &e) == 0);
	CHECK_FILE(tree, "abs/file", "abs");
	CHECK_FILE(tree, "a/b/c", "abc");
	CHECK_FILE(tree, "y", "y");
	CHECK_FILE(tree, "etc/passwd", "inside");
	CHECK_FILE(tree, "usr/file", "usr file");
	CHECK(S_ISLNK(bld_tree_lookup(tree, "esc")->mode));
	CHECK_INT_EQ(bld_tree_root(tree)->mode, S_IFDIR | 0700);
	bld_tree_free(tree);
}

/* One-layer trees that must be refused, with the message naming the entry. */
static void refused(struct test_ctx *t, const char *file, const struct fx_entry *ents, size_t n, const char *needle)
{
	_cleanup_free_ char *p = layer_path(t, file);
	if (fx_layer(p, FX_NONE, ents, n) < 0) {
		test_fail(t, __FILE__, __LINE__, "could not write %s", file);
		return;
	}
	struct bld_tree *tree = tree_new(t);
	if (!tree)
		return;
	struct err *e = NULL;
	CHECK(bld_tree_apply_layer(tree, p, MT_TAR, &e) < 0);
	CHECK_ERR_CONTAINS(e, needle);
	CHECK_ERR_CONTAINS(e, "layer 1");
	err_free(&e);
	bld_tree_free(tree);
}

TEST(flatten_hostile_layers_refused)
{
	static const struct fx_entry dotdot[] = {{'f', "../evil", "x"}};
	refused(t, "h1.tar", dotdot, 1, "entry 0 (../evil): \"../evil\" leaves the root");
	static const struct fx_entry deep[] = {{'f', "a/../../evil", "x"}};
	refused(t, "h2.tar", deep, 1, "leaves the root");
	static const struct fx_entry hl_escape[] = {{'h', "x", "../../etc/shadow"}};
	refused(t, "h3.tar", hl_escape, 1, "hardlink target: \"../../etc/shadow\" leaves the root");
	static const struct fx_entry hl_missing[] = {{'h', "x", "nothing/here"}};
	refused(t, "h4.tar", hl_missing, 1, "no earlier entry made");
	static const struct fx_entry hl_dir[] = {{'d', "d/"}, {'h', "x", "d"}};
	refused(t, "h5.tar", hl_dir, 2, "hardlink to the directory");
	static const struct fx_entry wh_empty[] = {{'f', "a/.wh."}};
	refused(t, "h6.tar", wh_empty, 1, "names nothing");
	static const struct fx_entry wh_dots[] = {{'f', ".wh..."}};
	refused(t, "h7.tar", wh_dots, 1, "names nothing");
	static const struct fx_entry notdir[] = {{'f', "f", "x"}, {'f', "f/g", "y"}};
	refused(t, "h8.tar", notdir, 2, "entry 1 (f/g): \"f\" is not a directory");
	static const struct fx_entry loop[] = {{'l', "a", "b"}, {'l', "b", "a"}, {'f', "a/x", "y"}};
	refused(t, "h9.tar", loop, 3, "too many symlinks");
	static const struct fx_entry root_file[] = {{'f', "/", "x"}};
	/* libarchive reads a "/" file as the old-style directory form, then the
	 * data block as a broken header: refused either way. */
	refused(t, "h10.tar", root_file, 1, "entry 1");
	char longname[300];
	memset(longname, 'n', 299);
	longname[299] = '\0';
	struct fx_entry toolong[] = {{'f', longname, "x"}};
	refused(t, "h11.tar", toolong, 1, "over 255 bytes");
}

TEST(flatten_bad_blobs_refused)
{
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	static const struct fx_entry one[] = {{'f', "a", "hello world, a little text to compress"}};
	_cleanup_free_ char *gz = layer_path(t, "b.tar.gz"), *plain = layer_path(t, "b.tar");
	REQUIRE(fx_layer(gz, FX_GZIP, one, 1) == 0 && fx_layer(plain, FX_NONE, one, 1) == 0);
	struct err *e = NULL;
	CHECK(bld_tree_apply_layer(tree, gz, MT_TAR, &e) < 0);
	CHECK_ERR_CONTAINS(e, "media type says uncompressed but the data is gzip");
	err_free(&e);
	CHECK(bld_tree_apply_layer(tree, plain, MT_ZST, &e) < 0);
	CHECK_ERR_CONTAINS(e, "says zstd but the data is uncompressed");
	err_free(&e);
	CHECK(bld_tree_apply_layer(tree, plain, "application/x-rar", &e) < 0);
	CHECK_ERR_CONTAINS(e, "unsupported layer media type");
	err_free(&e);
	/* docker-archive layers are plain tars under the gzip media type. */
	CHECK(bld_tree_apply_layer(tree, plain, "application/vnd.docker.image.rootfs.diff.tar.gzip", &e) == 0);
	_cleanup_free_ char *missing = layer_path(t, "absent.tar");
	CHECK(bld_tree_apply_layer(tree, missing, MT_TAR, &e) < 0);
	CHECK_ERR_CONTAINS(e, "absent.tar");
	err_free(&e);
	/* Corrupt the gzip stream in the middle, then cut it short. */
	size_t len = 0;
	char *data = NULL;
	REQUIRE(io_read_file(gz, 1 << 20, &data, &len, NULL) == 0);
	_cleanup_free_ char *bad = layer_path(t, "corrupt.tar.gz");
	for (size_t i = 12; i < len - 8; i++)
		data[i] ^= 0x5a;
	int fd = open(bad, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	io_write_full(fd, data, len, NULL);
	close(fd);
	CHECK(bld_tree_apply_layer(tree, bad, MT_GZ, &e) < 0);
	CHECK(e != NULL);
	err_free(&e);
	free(data);
	REQUIRE(io_read_file(plain, 1 << 20, &data, &len, NULL) == 0);
	_cleanup_free_ char *cut = layer_path(t, "cut.tar");
	fd = open(cut, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	io_write_full(fd, data, 600, NULL); /* header and part of the data */
	close(fd);
	free(data);
	CHECK(bld_tree_apply_layer(tree, cut, MT_TAR, &e) < 0);
	CHECK_ERR_CONTAINS(e, "cut.tar");
	err_free(&e);
	bld_tree_free(tree);
}

/* Writes `len` bytes as gzip members (zlib's, independent of the ISA-L reader), a new member
 * starting at each offset of `splits` (ascending, 0-terminated), then `tail` bytes as they are. */
static int gzip_members(const char *path, const char *data, size_t len, const size_t *splits, const char *tail,
                        size_t tail_len)
{
	FILE *out = fopen(path, "wb");
	if (!out)
		return -1;
	size_t start = 0;
	for (size_t i = 0; start < len; i++) {
		size_t end = splits && splits[i] ? splits[i] : len;
		z_stream z = {0};
		if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return fclose(out), -1;
		unsigned char chunk[65536];
		z.next_in = (unsigned char *)data + start;
		z.avail_in = (uInt)(end - start);
		int r;
		do {
			z.next_out = chunk;
			z.avail_out = sizeof(chunk);
			r = deflate(&z, Z_FINISH);
			fwrite(chunk, 1, sizeof(chunk) - z.avail_out, out);
		} while (r == Z_OK);
		deflateEnd(&z);
		if (r != Z_STREAM_END)
			return fclose(out), -1;
		start = end;
	}
	if (tail_len)
		fwrite(tail, 1, tail_len, out);
	return fclose(out) == 0 ? 0 : -1;
}

/* A layer big enough to take the gzip reader through several of its buffers: a 3 MiB file of
 * pseudo-random letters (compressible, not trivially) and a small one after it. */
static char *big_layer(struct test_ctx *t, char **big, size_t *len)
{
	size_t n = 3 << 20;
	*big = xmalloc(n + 1);
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		(*big)[i] = (char)('a' + (x >> 16) % 16);
	}
	(*big)[n] = '\0';
	struct fx_entry e[] = {{'f', "big", *big}, {'f', "small", "after the big one"}};
	char *plain = layer_path(t, "big.tar");
	char *data = NULL;
	if (fx_layer(plain, FX_NONE, e, N(e)) < 0 || io_read_file(plain, 8 << 20, &data, len, NULL) < 0) {
		free(plain);
		return NULL;
	}
	free(plain);
	return data;
}

static void gzip_layer_reads(struct test_ctx *t, const char *path, const char *big)
{
	struct bld_tree *tree = tree_new(t);
	if (!tree)
		return;
	struct err *e = NULL;
	CHECK(bld_tree_apply_layer(tree, path, MT_GZ, &e) == 0);
	if (e)
		test_fail(t, __FILE__, __LINE__, "%s: %s", path, e->msg);
	err_free(&e);
	CHECK_FILE(tree, "big", big);
	CHECK_FILE(tree, "small", "after the big one");
	bld_tree_free(tree);
}

TEST(flatten_gzip_members_and_trailing_bytes)
{
	_cleanup_free_ char *big = NULL;
	size_t len = 0;
	_cleanup_free_ char *tar = big_layer(t, &big, &len);
	REQUIRE(tar);
	_cleanup_free_ char *one = layer_path(t, "one.tar.gz"), *two = layer_path(t, "two.tar.gz"),
	                    *tail = layer_path(t, "tail.tar.gz"), *lib = layer_path(t, "lib.tar.gz");
	REQUIRE(gzip_members(one, tar, len, NULL, NULL, 0) == 0);
	gzip_layer_reads(t, one, big);
	/* Members may split the tar anywhere, as `cat a.gz b.gz` does. */
	const size_t splits[] = {(1 << 20) + 123, (1 << 20) + 124, 2 << 20, 0};
	REQUIRE(gzip_members(two, tar, len, splits, NULL, 0) == 0);
	gzip_layer_reads(t, two, big);
	/* Bytes after the last member that start no other one are ignored, as libarchive's filter does. */
	REQUIRE(gzip_members(tail, tar, len, NULL, "\0\0junk\n", 7) == 0);
	gzip_layer_reads(t, tail, big);
	/* libarchive's own gzip writer (the other fixtures') reads the same. */
	struct fx_entry e[] = {{'f', "big", big}, {'f', "small", "after the big one"}};
	REQUIRE(fx_layer(lib, FX_GZIP, e, N(e)) == 0);
	gzip_layer_reads(t, lib, big);
}

/* Writes `len` bytes of data to path. */
static int write_bytes(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		return -1;
	int r = io_write_full(fd, data, len, NULL);
	close(fd);
	return r;
}

static void gzip_refused(struct test_ctx *t, const char *path, const char *want)
{
	struct bld_tree *tree = tree_new(t);
	if (!tree)
		return;
	struct err *e = NULL;
	CHECK(bld_tree_apply_layer(tree, path, MT_GZ, &e) < 0);
	CHECK_ERR_CONTAINS(e, want);
	CHECK_ERR_CONTAINS(e, path);
	err_free(&e);
	bld_tree_free(tree);
}

TEST(flatten_gzip_damage_refused)
{
	_cleanup_free_ char *big = NULL;
	size_t len = 0;
	_cleanup_free_ char *tar = big_layer(t, &big, &len);
	REQUIRE(tar);
	_cleanup_free_ char *good = layer_path(t, "good.tar.gz");
	REQUIRE(gzip_members(good, tar, len, NULL, NULL, 0) == 0);
	_cleanup_free_ char *gz = NULL;
	size_t gz_len = 0;
	REQUIRE(io_read_file(good, 8 << 20, &gz, &gz_len, NULL) == 0 && gz_len > 1000);

	/* Cut short: in the middle of the big file's data, then inside the 8-byte trailer. */
	_cleanup_free_ char *cut = layer_path(t, "cut.tar.gz"), *cut_trailer = layer_path(t, "cut-trailer.tar.gz");
	REQUIRE(write_bytes(cut, gz, gz_len / 2) == 0);
	gzip_refused(t, cut, "gzip: the data stops inside the stream, at compressed byte");
	REQUIRE(write_bytes(cut_trailer, gz, gz_len - 3) == 0);
	gzip_refused(t, cut_trailer, "gzip: the data stops inside the stream");

	/* A wrong CRC32 in the trailer: the data inflates but is not what was compressed. libarchive's
	 * filter never checked it; the reader does, even though the tar ended before the trailer. */
	_cleanup_free_ char *crc = layer_path(t, "crc.tar.gz");
	gz[gz_len - 8] ^= 0x01;
	REQUIRE(write_bytes(crc, gz, gz_len) == 0);
	gz[gz_len - 8] ^= 0x01;
	gzip_refused(t, crc, "the CRC32 or length in the trailer does not match the data");

	/* Damage in the deflate data: refused whatever the damage decodes to (an invalid code, a tar
	 * reader error, or the CRC), and always with the layer named. */
	_cleanup_free_ char *bad = layer_path(t, "bad.tar.gz");
	for (size_t i = gz_len / 3; i < gz_len / 3 + 64; i++)
		gz[i] ^= 0x5a;
	REQUIRE(write_bytes(bad, gz, gz_len) == 0);
	gzip_refused(t, bad, "bad.tar.gz");

	/* The header names an unknown compression method: libarchive's filter does not take such
	 * data as gzip either, so it says what it always said. */
	_cleanup_free_ char *method = layer_path(t, "method.tar.gz");
	memcpy(gz, "\x1f\x8b\x07", 3);
	REQUIRE(write_bytes(method, gz, gz_len) == 0);
	gzip_refused(t, method, "method.tar.gz");
}

static int count_visit(struct bld_node *n, const char *path, void *ctx, struct err **err)
{
	(void)n, (void)err;
	struct buf *b = ctx;
	buf_puts(b, path);
	buf_putc(b, ';');
	return 0;
}

TEST(flatten_walk_order_and_builder_entries)
{
	static const struct fx_entry l1[] = {
	    {'f', "b/2", "x"}, {'f', "a", "y"}, {'f', "b/1", "z"}, {'l', "sbin", "usr/sbin"}};
	_cleanup_free_ char *p = layer_path(t, "walk.tar");
	REQUIRE(fx_layer(p, FX_NONE, l1, N(l1)) == 0);
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	struct err *e = NULL;
	REQUIRE(bld_tree_apply_layer(tree, p, MT_TAR, &e) == 0);
	REQUIRE(bld_tree_add_data(tree, "sbin/odyn", "ODYN", 4, 0755, 5, &e) == 0);
	REQUIRE(bld_tree_add_dir(tree, "b", 0700, 5, &e) == 0); /* exists: kept as is */
	REQUIRE(bld_tree_add_dir(tree, "tmp", 01777, 5, &e) == 0);
	_cleanup_buf_ struct buf order = {0};
	REQUIRE(bld_tree_walk(tree, count_visit, &order, &e) == 0);
	CHECK_STR_EQ(buf_str(&order), "a;b;b/1;b/2;sbin;tmp;usr;usr/sbin;usr/sbin/odyn;");
	CHECK_FILE(tree, "usr/sbin/odyn", "ODYN");
	CHECK_INT_EQ(bld_tree_lookup(tree, "b")->mode & 07777, 0755);
	CHECK_INT_EQ(bld_tree_lookup(tree, "tmp")->mode & 07777, 01777);
	bld_tree_free(tree);
}

/* Issue 14 item 2: an image symlink must not carry enclaver's own files into what the init mounts
 * over at boot (procfs there turns /proc/self/root/... back into the image's own files). */
TEST(flatten_builder_entries_stay_out_of_runtime_mounts)
{
	static const struct fx_entry l1[] = {{'l', "etc/enclaver", "/proc/self/root/app/conf"},
	                                     {'f', "app/conf/enclaver.yaml", "allow: '**'\n"},
	                                     {'l', "tmp", "etc"},
	                                     {'l', "sbin", "../run/x/../sbin"},
	                                     {'l', "opt", "/tmp"}};
	_cleanup_free_ char *p = layer_path(t, "hostile.tar");
	REQUIRE(fx_layer(p, FX_NONE, l1, N(l1)) == 0);
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	struct err *e = NULL;
	REQUIRE(bld_tree_apply_layer(tree, p, MT_TAR, &e) == 0);
	/* A symlink where a mount goes is replaced by a real directory (tmpfs there would hide /etc). */
	REQUIRE(bld_tree_add_dir(tree, "tmp", 01777, 5, &e) == 0);
	REQUIRE(bld_tree_lookup(tree, "tmp") && S_ISDIR(bld_tree_lookup(tree, "tmp")->mode));
	CHECK(bld_tree_lookup(tree, "etc") && S_ISDIR(bld_tree_lookup(tree, "etc")->mode));
	/* Through /proc, /run or a link to /tmp: refused, and nothing made on the way. */
	CHECK(bld_tree_add_data(tree, "etc/enclaver/enclaver.yaml", "M", 1, 0644, 5, &e) < 0);
	CHECK_ERR_CONTAINS(e, "/proc");
	err_free(&e);
	CHECK(bld_tree_lookup(tree, "proc") == NULL);
	CHECK_FILE(tree, "app/conf/enclaver.yaml", "allow: '**'\n");
	CHECK(bld_tree_add_data(tree, "sbin/odyn", "ODYN", 4, 0755, 5, &e) < 0);
	CHECK_ERR_CONTAINS(e, "/run");
	err_free(&e);
	CHECK(bld_tree_add_data(tree, "opt/x", "X", 1, 0644, 5, &e) < 0);
	CHECK_ERR_CONTAINS(e, "/tmp");
	err_free(&e);
	CHECK(bld_tree_add_data(tree, "proc", "X", 1, 0644, 5, &e) < 0);
	err_free(&e);
	/* A layer's own entries may still live there (they are the image's business). */
	CHECK(bld_tree_lookup(tree, "run") == NULL);
	bld_tree_free(tree);
}

/* Issue 14 item 3: 40 chained symlinks, each 2046 levels deep, made a 20 KB layer into an
 * 81,840-level tree whose recursive walk overflowed the stack. No node may sit at a path over
 * 4095 bytes (PATH_MAX: nothing in the enclave could name it), which also bounds the depth. */
TEST(flatten_symlink_chain_depth_bounded)
{
	_cleanup_buf_ struct buf deep = {0};
	for (int i = 0; i < 2046; i++)
		buf_puts(&deep, i ? "/d" : "d");
	struct fx_entry l1[41];
	char *names[41];
	_cleanup_buf_ struct buf name = {0};
	for (int i = 0; i < 40; i++) {
		if (i)
			buf_putc(&name, '/');
		buf_printf(&name, "s%d", i);
		names[i] = xstrdup(buf_str(&name));
		l1[i] = (struct fx_entry){'l', names[i], buf_str(&deep)};
	}
	buf_puts(&name, "/f");
	names[40] = xstrdup(buf_str(&name));
	l1[40] = (struct fx_entry){'f', names[40], "x"};
	_cleanup_free_ char *p = layer_path(t, "chain.tar.gz");
	int made = fx_layer(p, FX_GZIP, l1, N(l1));
	for (int i = 0; i < 41; i++)
		free(names[i]);
	REQUIRE(made == 0);
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	struct err *e = NULL;
	CHECK(bld_tree_apply_layer(tree, p, MT_GZ, &e) < 0);
	CHECK_ERR_CONTAINS(e, "over 4095 bytes");
	CHECK_ERR_CONTAINS(e, "entry 2 (s0/s1/s2)");
	err_free(&e);
	/* Whatever was made before the refusal walks and frees without recursion trouble. */
	_cleanup_buf_ struct buf order = {0};
	CHECK(bld_tree_walk(tree, count_visit, &order, &e) == 0);
	bld_tree_free(tree);

	/* Exactly at the limit is fine (a 4095-byte path made through a symlink), a byte more is not. */
	_cleanup_buf_ struct buf edge = {0};
	for (int i = 0; i < 2046; i++)
		buf_puts(&edge, i ? "/d" : "d");
	const struct fx_entry l2[] = {{'l', "s", buf_str(&edge)}, {'f', "s/fff", "y"}, {'f', "s/ffff", "z"}};
	const struct fx_entry l3[] = {l2[0], l2[2]};
	_cleanup_free_ char *p2 = layer_path(t, "edge.tar");
	REQUIRE(fx_layer(p2, FX_NONE, l2, 2) == 0);
	tree = tree_new(t);
	REQUIRE(tree);
	CHECK(bld_tree_apply_layer(tree, p2, MT_TAR, &e) == 0);
	err_free(&e);
	bld_tree_free(tree);
	_cleanup_free_ char *p3 = layer_path(t, "over.tar");
	REQUIRE(fx_layer(p3, FX_NONE, l3, 2) == 0);
	tree = tree_new(t);
	REQUIRE(tree);
	CHECK(bld_tree_apply_layer(tree, p3, MT_TAR, &e) < 0);
	CHECK_ERR_CONTAINS(e, "over 4095 bytes");
	err_free(&e);
	bld_tree_free(tree);
}

/* A sparse entry is a few bytes in the layer however large it claims to be; the claim is checked
 * against newc's 4 GiB per file before anything is written (issue 14, item 5), and a claim within
 * it is expanded with its hole as zeros. */
TEST(flatten_sparse_claims_checked_first)
{
	static const struct fx_entry huge[] = {{'f', "before", "b"}, {'s', "app/huge", "data", .sparse_size = 10000000000LL}};
	_cleanup_free_ char *p = layer_path(t, "sparse.tar");
	REQUIRE(fx_layer(p, FX_NONE, huge, N(huge)) == 0);
	struct stat st;
	REQUIRE(stat(p, &st) == 0);
	CHECK(st.st_size < 64 * 1024); /* the fixture itself stays small */
	struct bld_tree *tree = tree_new(t);
	REQUIRE(tree);
	struct err *e = NULL;
	CHECK(bld_tree_apply_layer(tree, p, MT_TAR, &e) < 0);
	CHECK_ERR_CONTAINS(e, "entry 1 (app/huge)");
	CHECK_ERR_CONTAINS(e, "10000000000 bytes (sparse) is over the ramdisk's 4 GiB limit per file");
	err_free(&e);
	/* Nothing of it reached the content store: only the one byte before it. */
	CHECK_INT_EQ(bld_tree_content_size(tree), 1);
	REQUIRE(fstat(bld_tree_content_fd(tree), &st) == 0);
	CHECK(st.st_blocks * 512 < 1024 * 1024);
	bld_tree_free(tree);

	/* One byte over the limit is refused, the limit itself is not refused for its size. */
	static const struct fx_entry over[] = {{'s', "over", "x", .sparse_size = 4294967296LL}};
	refused(t, "sparse-over.tar", over, 1, "4294967296 bytes (sparse) is over");

	/* A cap on the whole store is checked the same way: the second file's claim passes it. */
	static const struct fx_entry two[] = {{'s', "one", "1", .sparse_size = 600000},
	                                      {'s', "two", "2", .sparse_size = 600000}};
	_cleanup_free_ char *pc = layer_path(t, "sparse-cap.tar");
	REQUIRE(fx_layer(pc, FX_NONE, two, N(two)) == 0);
	tree = tree_new(t);
	REQUIRE(tree);
	bld_tree_set_content_max(tree, 1000000);
	CHECK(bld_tree_apply_layer(tree, pc, MT_TAR, &e) < 0);
	CHECK_ERR_CONTAINS(e, "entry 1 (two): a file of 600000 bytes (sparse) takes the image's files over 1000000 bytes");
	err_free(&e);
	CHECK_INT_EQ(bld_tree_content_size(tree), 600000);
	bld_tree_free(tree);

	/* Within the limit: the hole comes back as zeros. */
	static const struct fx_entry small[] = {{'s', "small", "abc", .sparse_size = 8}};
	_cleanup_free_ char *p2 = layer_path(t, "sparse-small.tar");
	REQUIRE(fx_layer(p2, FX_NONE, small, N(small)) == 0);
	tree = tree_new(t);
	REQUIRE(tree);
	CHECK(bld_tree_apply_layer(tree, p2, MT_TAR, &e) == 0);
	err_free(&e);
	struct bld_node *n = bld_tree_lookup(tree, "small");
	REQUIRE(n && S_ISREG(n->mode));
	CHECK_INT_EQ(n->size, 8);
	_cleanup_free_ char *c = content(tree, n);
	CHECK(c && memcmp(c, "abc\0\0\0\0\0", 8) == 0);
	bld_tree_free(tree);
}
