/* test_initramfs: /cmd and /env contents, the customer ramdisk read back with
 * libarchive's (independent) cpio reader, and byte-identical repeat builds. */
#include <fcntl.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "tests/harness.h"
#include "tests/unit/layer_fixture.h"

#define MT_TAR "application/vnd.oci.image.layer.v1.tar"

/* bld_initramfs_write_to into a file of its own, committed only when it succeeds. */
static int initramfs_write(const char *out_path, const struct bld_initramfs_spec *spec, struct err **err)
{
	_cleanup_atomic_file_ struct atomic_file af = {.fd = -1};
	if (atomic_file_open(&af, out_path, 0644, err) < 0 || bld_initramfs_write_to(&af, spec, err) < 0)
		return -1;
	return atomic_file_commit(&af, err);
}

TEST(cmd_env_joins_entrypoint_and_cmd)
{
	const char *ep[] = {"/bin/app", "--serve"}, *cmd[] = {"--port", "8080"}, *env[] = {"PATH=/bin", "A=b=c"};
	struct bld_app_config cfg = {.entrypoint = ep,
	                             .n_entrypoint = 2,
	                             .cmd = cmd,
	                             .n_cmd = 2,
	                             .env = env,
	                             .n_env = 2,
	                             .working_dir = "/srv",
	                             .user = "1000:1000"};
	_cleanup_buf_ struct buf c = {0}, e = {0};
	struct err *err = NULL;
	REQUIRE(bld_initramfs_cmd_env(&cfg, &c, &e, &err) == 0);
	CHECK_STR_EQ(buf_str(&c), "/sbin/odyn\n--config-dir\n/etc/enclaver\n--ramdisk-marker\n/etc/enclaver/"
	                          ".ramdisk-complete\n--workdir\n/srv\n--user\n1000:1000\n--\n"
	                          "/bin/app\n--serve\n--port\n8080\n");
	CHECK_STR_EQ(buf_str(&e), "PATH=/bin\nA=b=c\n");
}

TEST(cmd_env_cmd_only_and_bad_input)
{
	const char *cmd[] = {"sh"};
	struct bld_app_config cfg = {.cmd = cmd, .n_cmd = 1};
	_cleanup_buf_ struct buf c = {0}, e = {0};
	struct err *err = NULL;
	REQUIRE(bld_initramfs_cmd_env(&cfg, &c, &e, &err) == 0);
	CHECK_STR_EQ(
	    buf_str(&c),
	    "/sbin/odyn\n--config-dir\n/etc/enclaver\n--ramdisk-marker\n/etc/enclaver/.ramdisk-complete\n--\nsh\n");
	CHECK(e.len == 0);
	struct bld_app_config none = {0};
	CHECK(bld_initramfs_cmd_env(&none, &c, &e, &err) < 0);
	CHECK_ERR_CONTAINS(err, "neither Entrypoint nor Cmd");
	err_free(&err);
	const char *nl[] = {"echo", "a\nb"};
	struct bld_app_config bad = {.cmd = nl, .n_cmd = 2};
	CHECK(bld_initramfs_cmd_env(&bad, &c, &e, &err) < 0);
	CHECK_ERR_CONTAINS(err, "newline");
	err_free(&err);
	const char *badenv[] = {"NOEQUALS"};
	struct bld_app_config be = {.cmd = cmd, .n_cmd = 1, .env = badenv, .n_env = 1};
	CHECK(bld_initramfs_cmd_env(&be, &c, &e, &err) < 0);
	CHECK_ERR_CONTAINS(err, "not KEY=VALUE");
	err_free(&err);
}

static const struct fx_entry image[] = {
    {'d', "usr/", .mtime = 1700000000},
    {'d', "usr/bin/", .mtime = 1700000000},
    {'f', "usr/bin/app", "#!/bin/sh\necho hi\n", .mode = 0755, .uid = 10, .gid = 20, .mtime = 1700000001},
    {'h', "usr/bin/app2", "usr/bin/app"},
    {'l', "bin", "usr/bin"},
    {'d', "tmp/", .mode = 01777},
    {'c', "dev/null", .mode = 0666, .rmaj = 1, .rmin = 3},
    {'f', "etc/os-release", "ID=test\n", .mtime = 1000},
};

/* Flattens the fixture image and writes a customer ramdisk from it. */
static int build(struct test_ctx *t, const char *sub, int64_t sde, char **out_path, struct err **err)
{
	_cleanup_free_ char *dir = xasprintf("%s/%s", test_tmpdir(t), sub);
	mkdir(dir, 0755);
	_cleanup_free_ char *layer = xasprintf("%s/layer.tar", dir), *odyn = xasprintf("%s/odyn", dir);
	if (fx_layer(layer, FX_NONE, image, sizeof(image) / sizeof(image[0])) < 0)
		return err_set(err, EIO, "fixture");
	int fd = open(odyn, O_CREAT | O_TRUNC | O_WRONLY, 0755);
	io_write_full(fd, "ODYN-BINARY", 11, NULL);
	close(fd);
	struct bld_tree *tree = NULL;
	if (bld_tree_new(dir, &tree, err) < 0)
		return -1;
	int rc = bld_tree_apply_layer(tree, layer, MT_TAR, err);
	const char *ep[] = {"/usr/bin/app"}, *env[] = {"PATH=/usr/bin"};
	struct bld_app_config cfg = {.entrypoint = ep, .n_entrypoint = 1, .env = env, .n_env = 1};
	static const char manifest[] = "version: v1\n";
	struct bld_initramfs_spec spec = {.tree = tree,
	                                  .odyn_path = odyn,
	                                  .manifest_data = manifest,
	                                  .manifest_len = sizeof(manifest) - 1,
	                                  .config = &cfg,
	                                  .source_date_epoch = sde};
	*out_path = xasprintf("%s/customer.cpio", dir);
	if (rc == 0)
		rc = initramfs_write(*out_path, &spec, err);
	bld_tree_free(tree);
	return rc;
}

static bool same_bytes(const char *a, const char *b)
{
	_cleanup_free_ char *da = NULL, *db = NULL;
	size_t la, lb;
	if (io_read_file(a, 64 << 20, &da, &la, NULL) < 0 || io_read_file(b, 64 << 20, &db, &lb, NULL) < 0)
		return false;
	return la == lb && memcmp(da, db, la) == 0;
}

TEST(customer_ramdisk_is_deterministic)
{
	_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
	struct err *e = NULL;
	REQUIRE(build(t, "run1", -1, &a, &e) == 0);
	REQUIRE(build(t, "run2", -1, &b, &e) == 0);
	CHECK(same_bytes(a, b));
	REQUIRE(build(t, "run3", 1500000000, &c, &e) == 0);
	CHECK(!same_bytes(a, c));
}

struct seen {
	char name[64];
	mode_t type;
	unsigned perm;
	int64_t mtime, ino, nlink, size;
	char data[128];
};

static int read_back(const char *path, struct seen *out, int max)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_cpio(a);
	if (archive_read_open_filename(a, path, 10240) != ARCHIVE_OK)
		return -1;
	struct archive_entry *ae;
	int n = 0;
	while (n < max && archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		struct seen *s = &out[n++];
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", archive_entry_pathname(ae));
		s->type = archive_entry_filetype(ae);
		s->perm = archive_entry_perm(ae);
		s->mtime = archive_entry_mtime(ae);
		s->ino = archive_entry_ino64(ae);
		s->nlink = archive_entry_nlink(ae);
		s->size = archive_entry_size(ae);
		if (s->type == AE_IFLNK)
			snprintf(s->data, sizeof(s->data), "%s", archive_entry_symlink(ae));
		else
			archive_read_data(a, s->data, sizeof(s->data) - 1);
	}
	archive_read_free(a);
	return n;
}

static const struct seen *find(const struct seen *s, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s[i].name, name))
			return &s[i];
	return NULL;
}

TEST(customer_ramdisk_contents)
{
	_cleanup_free_ char *p = NULL;
	struct err *e = NULL;
	REQUIRE(build(t, "contents", 1600000000, &p, &e) == 0);
	struct seen s[64];
	int n = read_back(p, s, 64);
	REQUIRE(n > 0);
	static const char *const order[] = {"cmd",
	                                    "env",
	                                    "rootfs",
	                                    "rootfs/bin",
	                                    "rootfs/dev",
	                                    "rootfs/dev/null",
	                                    "rootfs/etc",
	                                    "rootfs/etc/enclaver",
	                                    "rootfs/etc/enclaver/enclaver.yaml",
	                                    "rootfs/etc/os-release",
	                                    "rootfs/proc",
	                                    "rootfs/run",
	                                    "rootfs/sbin",
	                                    "rootfs/sbin/odyn",
	                                    "rootfs/sys",
	                                    "rootfs/tmp",
	                                    "rootfs/usr",
	                                    "rootfs/usr/bin",
	                                    "rootfs/usr/bin/app",
	                                    "rootfs/usr/bin/app2",
	                                    "rootfs/var",
	                                    "rootfs/etc/enclaver/.ramdisk-complete"}; /* last, always */
	CHECK_INT_EQ(n, sizeof(order) / sizeof(order[0]));
	for (int i = 0; i < n && i < (int)(sizeof(order) / sizeof(order[0])); i++)
		CHECK_STR_EQ(s[i].name, order[i]);
	const struct seen *x = find(s, n, "cmd");
	REQUIRE(x);
	CHECK_STR_EQ(x->data, "/sbin/odyn\n--config-dir\n/etc/enclaver\n--ramdisk-marker\n/etc/enclaver/"
	                      ".ramdisk-complete\n--\n/usr/bin/app\n");
	CHECK_INT_EQ(x->mtime, 1600000000);
	CHECK_STR_EQ(find(s, n, "env")->data, "PATH=/usr/bin\n");
	x = find(s, n, "rootfs/etc/enclaver/.ramdisk-complete");
	CHECK(x && x->type == AE_IFREG && x->perm == 0444);
	x = find(s, n, "rootfs/sbin/odyn");
	REQUIRE(x);
	CHECK_STR_EQ(x->data, "ODYN-BINARY");
	CHECK_INT_EQ(x->perm, 0755);
	CHECK_STR_EQ(find(s, n, "rootfs/etc/enclaver/enclaver.yaml")->data, "version: v1\n");
	x = find(s, n, "rootfs/tmp");
	CHECK(x && x->perm == 01777); /* the image's own /tmp is kept */
	x = find(s, n, "rootfs/proc");
	CHECK(x && x->type == AE_IFDIR && x->perm == 0755);
	x = find(s, n, "rootfs/etc/os-release");
	CHECK(x && x->mtime == 1000); /* older than SOURCE_DATE_EPOCH: kept */
	x = find(s, n, "rootfs/usr");
	CHECK(x && x->mtime == 1600000000); /* newer: clamped */
	x = find(s, n, "rootfs/bin");
	CHECK(x && x->type == AE_IFLNK && !strcmp(x->data, "usr/bin"));
	x = find(s, n, "rootfs/dev/null");
	CHECK(x && x->type == AE_IFCHR);
	const struct seen *h1 = find(s, n, "rootfs/usr/bin/app"), *h2 = find(s, n, "rootfs/usr/bin/app2");
	REQUIRE(h1 && h2);
	CHECK(h1->ino == h2->ino);
	CHECK_INT_EQ(h1->nlink, 2);
	CHECK_INT_EQ(h2->nlink, 2);
	CHECK_STR_EQ(h1->data, "#!/bin/sh\necho hi\n");
	CHECK_INT_EQ(h2->size, 0);
}

TEST(customer_ramdisk_missing_odyn_leaves_nothing)
{
	struct bld_tree *tree = NULL;
	struct err *e = NULL;
	REQUIRE(bld_tree_new(test_tmpdir(t), &tree, &e) == 0);
	const char *cmd[] = {"sh"};
	struct bld_app_config cfg = {.cmd = cmd, .n_cmd = 1};
	_cleanup_free_ char *out = xasprintf("%s/nope.cpio", test_tmpdir(t));
	struct bld_initramfs_spec spec = {.tree = tree,
	                                  .odyn_path = "/nonexistent/odyn",
	                                  .manifest_data = "",
	                                  .config = &cfg,
	                                  .source_date_epoch = -1};
	CHECK(initramfs_write(out, &spec, &e) < 0);
	CHECK_ERR_CONTAINS(e, "/nonexistent/odyn");
	err_free(&e);
	CHECK(access(out, F_OK) != 0);
	bld_tree_free(tree);
}

/* The manifest goes to /etc/enclaver/enclaver.yaml under real directories: an image symlink there
 * (here to a file of the app's own) is refused, and no ramdisk is written. */
TEST(customer_ramdisk_manifest_symlink_refused)
{
	static const char *const links[][2] = {{"etc/enclaver", "/app/conf"}, {"etc", "app"}};
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *dir = xasprintf("%s/m%zu", test_tmpdir(t), i);
		mkdir(dir, 0755);
		_cleanup_free_ char *layer = xasprintf("%s/layer.tar", dir), *out = xasprintf("%s/c.cpio", dir);
		_cleanup_free_ char *odyn = xasprintf("%s/odyn", dir);
		int fd = open(odyn, O_CREAT | O_TRUNC | O_WRONLY, 0755);
		REQUIRE(fd >= 0);
		close(fd);
		const struct fx_entry img[] = {{'l', links[i][0], links[i][1]}, {'f', "app/conf/enclaver.yaml", "x"}};
		REQUIRE(fx_layer(layer, FX_NONE, img, 2) == 0);
		struct bld_tree *tree = NULL;
		struct err *e = NULL;
		REQUIRE(bld_tree_new(dir, &tree, &e) == 0);
		REQUIRE(bld_tree_apply_layer(tree, layer, MT_TAR, &e) == 0);
		const char *cmd[] = {"sh"};
		struct bld_app_config cfg = {.cmd = cmd, .n_cmd = 1};
		struct bld_initramfs_spec spec = {.tree = tree,
		                                  .odyn_path = odyn,
		                                  .manifest_data = "version: v1\n",
		                                  .manifest_len = 12,
		                                  .config = &cfg,
		                                  .source_date_epoch = -1};
		CHECK(initramfs_write(out, &spec, &e) < 0);
		CHECK_ERR_CONTAINS(e, "is a symlink");
		err_free(&e);
		CHECK(access(out, F_OK) != 0);
		bld_tree_free(tree);
	}
}
