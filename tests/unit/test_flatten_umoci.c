/* test_flatten_umoci: the same layers flattened by us and unpacked by umoci
 * (`umoci unpack --rootless`, the daemonless peer): names, types, modes,
 * owners, link targets, sizes and contents must agree. */
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <openssl/evp.h>

#include "builder/builder.h"
#include "tests/harness.h"
#include "tests/unit/layer_fixture.h"

static const struct fx_entry layer1[] = {
    {'d', "etc/", .mode = 0755},
    {'f', "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", .mode = 0644},
    {'f', "etc/secret", "s3cret\n", .mode = 0600, .uid = 1000, .gid = 1000},
    {'d', "usr/", .mode = 0755},
    {'d', "usr/bin/", .mode = 0755},
    {'f', "usr/bin/busybox", "BUSYBOX-BINARY", .mode = 0755},
    {'h', "usr/bin/sh", "usr/bin/busybox"},
    {'l', "bin", "usr/bin"},
    {'d', "var/", .mode = 0755},
    {'d', "var/cache/", .mode = 0700},
    {'f', "var/cache/a", "a"},
    {'f', "var/cache/b", "b"},
    {'d', "opt/", .mode = 0755},
    {'f', "opt/old", "old"},
    {'d', "tmp/", .mode = 01777},
    {'f', "replaced-by-dir", "file"},
    {'d', "replaced-by-file/"},
    {'f', "replaced-by-file/x", "x"},
    {'p', "run-fifo", .mode = 0644},
    {'f', "home/user/.profile", "export PS1='$ '\n", .mode = 0640, .uid = 1000, .gid = 1001, .mtime = 1650000000},
};
static const struct fx_entry layer2[] = {
    {'f', "etc/.wh.secret"},
    {'f', "var/cache/.wh..wh..opq"},
    {'f', "var/cache/c", "c"},
    {'f', ".wh.opt"},
    {'d', "replaced-by-dir/", .mode = 0711},
    {'f', "replaced-by-dir/inner", "inner"},
    {'f', "replaced-by-file", "now a file"},
    {'h', "usr/bin/ls", "usr/bin/busybox"},
    {'f', "etc/passwd", "root:x:0:0:root:/root:/bin/ash\nuser:x:1000:1000::/home/user:/bin/sh\n", .mode = 0644},
    {'f', "bin/extra", "through the symlink"},
    {'f', "srv/deep/file", "implicit parents", .uid = 7, .gid = 8},
};

static void sha256_file(const char *path, char hex[65])
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	io_read_file(path, 64 << 20, &data, &len, NULL);
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL);
	hex_encode(md, 32, hex);
}

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	io_write_full(fd, text, strlen(text), NULL);
	close(fd);
}

/* Moves a file into the layout's blob store under its digest. */
static void to_blob(const char *layout, const char *path, char hex[65])
{
	sha256_file(path, hex);
	_cleanup_free_ char *dst = xasprintf("%s/blobs/sha256/%s", layout, hex);
	rename(path, dst);
}

static long long file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* A two-layer OCI image layout tagged "test": layer 1 gzip, layer 2 plain. */
static int make_layout(const char *dir, const char *layout)
{
	_cleanup_free_ char *blobs = xasprintf("%s/blobs/sha256", layout), *b1 = xasprintf("%s/blobs", layout);
	mkdir(layout, 0755);
	mkdir(b1, 0755);
	mkdir(blobs, 0755);
	_cleanup_free_ char *l1 = xasprintf("%s/l1.tar", dir), *l1gz = xasprintf("%s/l1.tar.gz", dir),
	                    *l2 = xasprintf("%s/l2.tar", dir);
	if (fx_layer(l1, FX_NONE, layer1, sizeof(layer1) / sizeof(layer1[0])) < 0 ||
	    fx_layer(l1gz, FX_GZIP, layer1, sizeof(layer1) / sizeof(layer1[0])) < 0 ||
	    fx_layer(l2, FX_NONE, layer2, sizeof(layer2) / sizeof(layer2[0])) < 0)
		return -1;
	char diff1[65], dig1[65], dig2[65], cfg[65], man[65];
	sha256_file(l1, diff1);
	long long s1 = file_size(l1gz), s2 = file_size(l2);
	to_blob(layout, l1gz, dig1);
	to_blob(layout, l2, dig2);
	_cleanup_free_ char *cfg_path = xasprintf("%s/config.json", dir);
	_cleanup_free_ char *cfg_text =
	    xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/bin/sh\"]},"
	              "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:%s\",\"sha256:%s\"]}}",
	              diff1, dig2);
	write_text(cfg_path, cfg_text);
	long long scfg = file_size(cfg_path);
	to_blob(layout, cfg_path, cfg);
	_cleanup_free_ char *man_path = xasprintf("%s/manifest.json", dir);
	_cleanup_free_ char *man_text = xasprintf(
	    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	    "\"config\":{\"mediaType\":\"application/"
	    "vnd.oci.image.config.v1+json\",\"digest\":\"sha256:%s\",\"size\":%lld},"
	    "\"layers\":[{\"mediaType\":\"application/"
	    "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:%s\",\"size\":%lld},"
	    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:%s\",\"size\":%lld}]}",
	    cfg, scfg, dig1, s1, dig2, s2);
	write_text(man_path, man_text);
	long long sman = file_size(man_path);
	to_blob(layout, man_path, man);
	_cleanup_free_ char *index = xasprintf(
	    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	    "\"digest\":\"sha256:%s\",\"size\":%lld,\"annotations\":{\"org.opencontainers.image.ref.name\":\"test\"}}]"
	    "}",
	    man, sman);
	_cleanup_free_ char *ip = xasprintf("%s/index.json", layout), *op = xasprintf("%s/oci-layout", layout);
	write_text(ip, index);
	write_text(op, "{\"imageLayoutVersion\":\"1.0.0\"}");
	return 0;
}

/* One line per entry, "path type perm uid:gid size target-or-content", sorted:
 * built from umoci's rootfs and from our tree, then compared as text. */
static struct buf *g_listing;
static size_t g_prefix;

static void describe(struct buf *b, const char *path, mode_t mode, unsigned uid, unsigned gid, long long nlink,
                     long long mtime, long long size, const char *extra)
{
	char type = S_ISDIR(mode) ? 'd' : S_ISREG(mode) ? 'f' : S_ISLNK(mode) ? 'l' : S_ISFIFO(mode) ? 'p' : '?';
	buf_printf(b, "%s %c %04o %u:%u nlink=%lld mtime=%lld %lld %s\n", path, type, (unsigned)(mode & 07777), uid,
	           gid, nlink, S_ISREG(mode) ? mtime : 0, S_ISDIR(mode) ? 0 : size, extra);
}

/* Rootless umoci cannot chown: it records the image's owner in the
 * user.rootlesscontainers xattr (protobuf {uint32 uid = 1; uint32 gid = 2},
 * 0xffffffff meaning "unchanged"); without the xattr the owner is 0:0. */
static void rootless_owner(const char *path, unsigned *uid, unsigned *gid)
{
	unsigned char v[64];
	*uid = *gid = 0;
	ssize_t n = lgetxattr(path, "user.rootlesscontainers", v, sizeof(v));
	for (ssize_t i = 0; i < n;) {
		unsigned field = v[i++] >> 3;
		uint64_t val = 0;
		for (int shift = 0; i < n; shift += 7) {
			unsigned char b = v[i++];
			val |= (uint64_t)(b & 0x7f) << shift;
			if (!(b & 0x80))
				break;
		}
		if (val == 0xffffffffu)
			continue;
		if (field == 1)
			*uid = (unsigned)val;
		else if (field == 2)
			*gid = (unsigned)val;
	}
}

static int host_visit(const char *fpath, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag, (void)ftw;
	if (strlen(fpath) <= g_prefix)
		return 0;
	const char *rel = fpath + g_prefix + 1;
	char extra[256] = "";
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlink(fpath, extra, sizeof(extra) - 1);
		extra[n > 0 ? n : 0] = '\0';
	} else if (S_ISREG(st->st_mode)) {
		int fd = open(fpath, O_RDONLY);
		ssize_t n = read(fd, extra, sizeof(extra) - 1);
		close(fd);
		extra[n > 0 ? n : 0] = '\0';
		for (char *p = extra; *p; p++)
			if (*p == '\n')
				*p = '|';
	}
	unsigned uid, gid;
	rootless_owner(fpath, &uid, &gid);
	describe(g_listing, rel, st->st_mode, uid, gid, S_ISREG(st->st_mode) ? (long long)st->st_nlink : 0,
	         (long long)st->st_mtime, (long long)st->st_size, extra);
	return 0;
}

struct tree_ctx {
	struct bld_tree *tree;
	struct buf *b;
	unsigned group_size[64]; /* members per hardlink group */
};

static int count_groups(struct bld_node *n, const char *path, void *vctx, struct err **err)
{
	(void)path, (void)err;
	struct tree_ctx *c = vctx;
	if (n->link_group && n->link_group < 64)
		c->group_size[n->link_group]++;
	return 0;
}

static int tree_visit(struct bld_node *n, const char *path, void *vctx, struct err **err)
{
	(void)err;
	struct tree_ctx *c = vctx;
	char extra[256] = "";
	if (S_ISLNK(n->mode)) {
		snprintf(extra, sizeof(extra), "%s", n->link_target);
	} else if (S_ISREG(n->mode)) {
		size_t want = n->size < sizeof(extra) - 1 ? n->size : sizeof(extra) - 1;
		io_pread_full(bld_tree_content_fd(c->tree), extra, want, (off_t)n->content_off, NULL);
		extra[want] = '\0';
		for (char *p = extra; *p; p++)
			if (*p == '\n')
				*p = '|';
	}
	long long nlink = !S_ISREG(n->mode) ? 0 : n->link_group ? c->group_size[n->link_group] : 1;
	describe(c->b, path, n->mode, n->uid, n->gid, nlink, (long long)n->mtime, (long long)n->size, extra);
	return 0;
}

static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the lines of a listing (nftw's order is the file system's). */
static char *sorted(struct buf *b)
{
	char *copy = xstrdup(buf_str(b));
	char **lines = NULL;
	size_t n = 0;
	char *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		lines = xrealloc(lines, (n + 1) * sizeof(char *));
		lines[n++] = l;
	}
	qsort(lines, n, sizeof(char *), line_cmp);
	struct buf out = {0};
	for (size_t i = 0; i < n; i++)
		buf_printf(&out, "%s\n", lines[i]);
	free(lines);
	free(copy);
	return out.data ? out.data : xstrdup("");
}

static int run(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(flatten_agrees_with_umoci_unpack)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *layout = xasprintf("%s/layout", dir), *bundle = xasprintf("%s/bundle", dir);
	REQUIRE(make_layout(dir, layout) == 0);
	_cleanup_free_ char *cmd =
	    xasprintf("umoci unpack --rootless --image %s:test %s >%s/umoci.log 2>&1", layout, bundle, dir);
	int rc = run(cmd);
	if (rc != 0) {
		_cleanup_free_ char *log = xasprintf("%s/umoci.log", dir), *text = NULL;
		size_t len;
		io_read_file(log, 1 << 16, &text, &len, NULL);
		test_fail(t, __FILE__, __LINE__, "umoci unpack failed (%d): %s", rc, text ? text : "");
		return;
	}
	/* umoci's side. */
	_cleanup_free_ char *rootfs = xasprintf("%s/rootfs", bundle);
	struct buf theirs = {0};
	g_listing = &theirs;
	g_prefix = strlen(rootfs);
	REQUIRE(nftw(rootfs, host_visit, 16, FTW_PHYS) == 0);

	/* Ours, from the same blobs in the manifest's order. */
	struct bld_tree *tree = NULL;
	struct err *e = NULL;
	REQUIRE(bld_tree_new(dir, &tree, &e) == 0);
	_cleanup_free_ char *man = NULL;
	/* Find the layer blobs again by their media types in the manifest. */
	_cleanup_free_ char *idx_path = xasprintf("%s/index.json", layout), *idx = NULL;
	size_t len;
	REQUIRE(io_read_file(idx_path, 1 << 16, &idx, &len, NULL) == 0);
	json_t *ij = json_loads(idx, 0, NULL);
	REQUIRE(ij);
	const char *mdig =
	    json_string_value(json_object_get(json_array_get(json_object_get(ij, "manifests"), 0), "digest"));
	_cleanup_free_ char *mpath = xasprintf("%s/blobs/sha256/%s", layout, mdig + 7);
	json_decref(ij);
	REQUIRE(io_read_file(mpath, 1 << 16, &man, &len, NULL) == 0);
	json_t *mj = json_loads(man, 0, NULL);
	REQUIRE(mj);
	json_t *layers = json_object_get(mj, "layers");
	for (size_t i = 0; i < json_array_size(layers); i++) {
		json_t *l = json_array_get(layers, i);
		_cleanup_free_ char *p =
		    xasprintf("%s/blobs/sha256/%s", layout, json_string_value(json_object_get(l, "digest")) + 7);
		if (bld_tree_apply_layer(tree, p, json_string_value(json_object_get(l, "mediaType")), &e) < 0) {
			test_fail(t, __FILE__, __LINE__, "%s", e->msg);
			err_free(&e);
		}
	}
	json_decref(mj);
	struct buf ours = {0};
	struct tree_ctx c = {.tree = tree, .b = &ours};
	REQUIRE(bld_tree_walk(tree, count_groups, &c, &e) == 0);
	REQUIRE(bld_tree_walk(tree, tree_visit, &c, &e) == 0);
	bld_tree_free(tree);

	_cleanup_free_ char *a = sorted(&ours), *b = sorted(&theirs);
	if (strcmp(a, b) != 0)
		test_fail(t, __FILE__, __LINE__, "our tree differs from umoci's rootfs\n--- ours\n%s--- umoci\n%s", a,
		          b);
	buf_free(&ours);
	buf_free(&theirs);
}
