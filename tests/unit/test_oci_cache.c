/* test_oci_cache: the verifying blob writer and the content-addressed cache:
 * a blob appears complete and verified, or nothing is left at all. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "oci/oci.h"
#include "tests/harness.h"

#define ABC_SHA256   "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY_SHA256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."));
	closedir(d);
	return n;
}

TEST(cache_put_and_read_back)
{
	char *dir = xasprintf("%s/cache", test_tmpdir(t));
	struct oci_cache c;
	struct err *e = NULL;
	REQUIRE(oci_cache_open(dir, &c, &e) == 0);
	char got[OCI_DIGEST_MAX];
	REQUIRE(oci_cache_put_buf(&c, "abc", 3, ABC_SHA256, got, &e) == 0);
	CHECK_STR_EQ(got, ABC_SHA256);
	CHECK(oci_cache_has(&c, ABC_SHA256, 3));
	CHECK(oci_cache_has(&c, ABC_SHA256, -1));
	CHECK(!oci_cache_has(&c, ABC_SHA256, 4));
	CHECK(!oci_cache_has(&c, EMPTY_SHA256, -1));
	int fd;
	REQUIRE(oci_cache_open_blob(&c, ABC_SHA256, &fd, &e) == 0);
	char buf[8] = {0};
	CHECK_INT_EQ(read(fd, buf, sizeof(buf)), 3);
	CHECK_STR_EQ(buf, "abc");
	close(fd);
	/* Unnamed: stored under what it hashes to. */
	REQUIRE(oci_cache_put_buf(&c, "", 0, NULL, got, &e) == 0);
	CHECK_STR_EQ(got, EMPTY_SHA256);
	CHECK_INT_EQ(count_entries(c.blob_dir), 2);
	oci_cache_close(&c);
	free(dir);
}

TEST(cache_mismatch_keeps_nothing)
{
	char *dir = xasprintf("%s/cache", test_tmpdir(t));
	struct oci_cache c;
	struct err *e = NULL;
	REQUIRE(oci_cache_open(dir, &c, &e) == 0);
	CHECK(oci_cache_put_buf(&c, "abd", 3, ABC_SHA256, NULL, &e) < 0);
	CHECK_ERR_CONTAINS(e, "digest mismatch: expected " ABC_SHA256);
	err_free(&e);
	CHECK(!oci_cache_has(&c, ABC_SHA256, -1));
	CHECK_INT_EQ(count_entries(c.blob_dir), 0);

	/* Size checks: too much data is refused at once, too little at commit. */
	struct oci_blob_writer *w;
	REQUIRE(oci_blob_writer_open(c.blob_dir, ABC_SHA256, 3, &w, &e) == 0);
	CHECK(oci_blob_writer_write(w, "abcd", 4, &e) < 0);
	CHECK_ERR_CONTAINS(e, "more data than the expected 3 bytes");
	err_free(&e);
	oci_blob_writer_abort(w);
	REQUIRE(oci_blob_writer_open(c.blob_dir, ABC_SHA256, 3, &w, &e) == 0);
	REQUIRE(oci_blob_writer_write(w, "ab", 2, &e) == 0);
	CHECK(oci_blob_writer_commit(w, NULL, &e) < 0);
	CHECK_ERR_CONTAINS(e, "size mismatch: expected 3 bytes, got 2");
	err_free(&e);
	CHECK_INT_EQ(count_entries(c.blob_dir), 0);

	/* A bad expected digest is refused before anything is created. */
	CHECK(oci_blob_writer_open(c.blob_dir, "sha256:xyz", -1, &w, &e) < 0);
	CHECK_ERR_CONTAINS(e, "needs 64 hex digits");
	err_free(&e);
	CHECK_INT_EQ(count_entries(c.blob_dir), 0);
	oci_cache_close(&c);
	free(dir);
}

TEST(cache_streams_from_fd)
{
	const char *tmp = test_tmpdir(t);
	char *dir = xasprintf("%s/cache", tmp);
	char *src = xasprintf("%s/src", tmp);
	/* 3 MiB: more than one read chunk. */
	int fd = open(src, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	REQUIRE(fd >= 0);
	char *block = xcalloc(1, 1 << 20);
	struct oci_digester *d = oci_digester_new("sha256");
	for (int i = 0; i < 3; i++) {
		memset(block, 'a' + i, 1 << 20);
		CHECK_INT_EQ(write(fd, block, 1 << 20), 1 << 20);
		oci_digester_update(d, block, 1 << 20);
	}
	close(fd);
	char want[OCI_DIGEST_MAX], got[OCI_DIGEST_MAX];
	oci_digester_final(d, want);
	oci_digester_free(d);
	struct oci_cache c;
	struct err *e = NULL;
	REQUIRE(oci_cache_open(dir, &c, &e) == 0);
	struct oci_blob_writer *w;
	REQUIRE(oci_blob_writer_open(c.blob_dir, want, 3 << 20, &w, &e) == 0);
	fd = open(src, O_RDONLY);
	CHECK(oci_blob_writer_copy_fd(w, fd, &e) == 0);
	close(fd);
	REQUIRE(oci_blob_writer_commit(w, got, &e) == 0);
	CHECK_STR_EQ(got, want);
	CHECK(oci_cache_has(&c, want, 3 << 20));
	struct stat st;
	char *path = oci_cache_blob_path(&c, want);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0444); /* read-only content */
	free(path);
	oci_cache_close(&c);
	free(block);
	free(dir);
	free(src);
}

TEST(cache_tags_for_offline)
{
	char *dir = xasprintf("%s/cache", test_tmpdir(t));
	struct oci_cache c;
	struct oci_ref r;
	struct err *e = NULL;
	REQUIRE(oci_cache_open(dir, &c, &e) == 0);
	REQUIRE(oci_ref_parse("127.0.0.1:5000/a/b:v1", &r, &e) == 0);
	char *got = NULL;
	CHECK(oci_cache_tag_get(&c, &r, &got, &e) < 0);
	CHECK(e && e->code == ENOENT);
	err_free(&e);
	REQUIRE(oci_cache_tag_set(&c, &r, ABC_SHA256, &e) == 0);
	REQUIRE(oci_cache_tag_get(&c, &r, &got, &e) == 0);
	CHECK_STR_EQ(got, ABC_SHA256);
	free(got);
	oci_ref_free(&r);
	oci_cache_close(&c);
	free(dir);
}

TEST(cache_default_location)
{
	struct oci_cache c;
	struct err *e = NULL;
	const char *tmp = test_tmpdir(t);
	char *old_xdg = getenv("XDG_CACHE_HOME") ? xstrdup(getenv("XDG_CACHE_HOME")) : NULL;
	char *old_env = getenv("ENCLAVER_CACHE_DIR") ? xstrdup(getenv("ENCLAVER_CACHE_DIR")) : NULL;
	unsetenv("ENCLAVER_CACHE_DIR");
	setenv("XDG_CACHE_HOME", tmp, 1);
	REQUIRE(oci_cache_open(NULL, &c, &e) == 0);
	char *want = xasprintf("%s/enclaver", tmp);
	CHECK_STR_EQ(c.dir, want);
	free(want);
	oci_cache_close(&c);
	if (old_xdg)
		setenv("XDG_CACHE_HOME", old_xdg, 1);
	else
		unsetenv("XDG_CACHE_HOME");
	if (old_env)
		setenv("ENCLAVER_CACHE_DIR", old_env, 1);
	free(old_xdg);
	free(old_env);
}

TEST(cache_sweeps_day_old_temporaries)
{
	char *dir = xasprintf("%s/cache", test_tmpdir(t));
	struct oci_cache c;
	struct err *e = NULL;
	REQUIRE(oci_cache_open(dir, &c, &e) == 0);
	char *old = xasprintf("%s/.tmp-old", c.blob_dir);
	char *fresh = xasprintf("%s/.tmp-fresh", c.blob_dir);
	close(open(old, O_CREAT | O_WRONLY, 0600));
	close(open(fresh, O_CREAT | O_WRONLY, 0600));
	struct timespec times[2] = {{.tv_sec = time(NULL) - 2 * 86400}, {.tv_sec = time(NULL) - 2 * 86400}};
	utimensat(AT_FDCWD, old, times, 0);
	oci_cache_close(&c);
	REQUIRE(oci_cache_open(dir, &c, &e) == 0);
	CHECK(access(old, F_OK) != 0);   /* a killed pull's leftovers */
	CHECK(access(fresh, F_OK) == 0); /* maybe a pull running now */
	oci_cache_close(&c);
	free(old);
	free(fresh);
	free(dir);
}

/* A cached blob changed in place (same size) is caught by every reader that checks, moved to
 * quarantine/, and counted by the whole-cache walk (issue 14, item 6). */
TEST(cache_corruption_quarantined)
{
	_cleanup_free_ char *dir = xasprintf("%s/cache", test_tmpdir(t));
	struct oci_cache c;
	struct err *e = NULL;
	REQUIRE(oci_cache_open(dir, &c, &e) == 0);
	REQUIRE(oci_cache_put_buf(&c, "abc", 3, ABC_SHA256, NULL, &e) == 0);
	REQUIRE(oci_cache_put_buf(&c, "", 0, EMPTY_SHA256, NULL, &e) == 0);
	CHECK(oci_cache_verify_blob(&c, ABC_SHA256, 3, &e) == 0);
	_cleanup_buf_ struct buf out = {0};
	CHECK(oci_cache_read_blob(&c, ABC_SHA256, 4, 100, &out, &e) < 0); /* the descriptor's size counts */
	CHECK_ERR_CONTAINS(e, "3 bytes, the descriptor says 4");
	err_free(&e);
	CHECK(oci_cache_read_blob(&c, EMPTY_SHA256, 200, 100, &out, &e) < 0); /* over the cap: not read */
	CHECK_ERR_CONTAINS(e, "over the 100-byte limit");
	err_free(&e);

	REQUIRE(oci_cache_put_buf(&c, "abc", 3, ABC_SHA256, NULL, &e) == 0);
	_cleanup_free_ char *path = oci_cache_blob_path(&c, ABC_SHA256);
	int fd = open(path, O_WRONLY);
	REQUIRE(fd >= 0 && pwrite(fd, "x", 1, 1) == 1);
	close(fd);
	CHECK(oci_cache_read_manifest(&c, ABC_SHA256, &out, &e) < 0);
	CHECK_ERR_CONTAINS(e, "cached blob " ABC_SHA256 " is corrupt (its bytes hash to sha256:");
	CHECK_ERR_CONTAINS(e, "quarantine/sha256-ba7816bf");
	CHECK_INT_EQ(e->code, EBADMSG);
	err_free(&e);
	CHECK_INT_EQ(out.len, 0);
	CHECK(!oci_cache_has(&c, ABC_SHA256, -1));
	_cleanup_free_ char *q = xasprintf("%s/quarantine/sha256-%s", dir, oci_digest_hex(ABC_SHA256));
	CHECK(access(q, F_OK) == 0);

	/* The walk: one sound blob, one changed, a pull's temporary and a stray name left alone. */
	REQUIRE(oci_cache_put_buf(&c, "abc", 3, ABC_SHA256, NULL, &e) == 0);
	fd = open(path, O_WRONLY);
	REQUIRE(fd >= 0 && pwrite(fd, "y", 1, 0) == 1);
	close(fd);
	_cleanup_free_ char *tmp = xasprintf("%s/blobs/sha256/.partial-x", dir);
	_cleanup_free_ char *stray = xasprintf("%s/blobs/sha256/notes", dir);
	for (int i = 0; i < 2; i++) {
		fd = open(i ? stray : tmp, O_CREAT | O_WRONLY, 0644);
		REQUIRE(fd >= 0 && write(fd, "z", 1) == 1);
		close(fd);
	}
	size_t checked, bad;
	CHECK(oci_cache_verify_all(&c, &checked, &bad, &e) == 0);
	CHECK_INT_EQ(checked, 2);
	CHECK_INT_EQ(bad, 1);
	CHECK(access(path, F_OK) < 0 && access(tmp, F_OK) == 0 && access(stray, F_OK) == 0);
	CHECK(oci_cache_verify_all(&c, &checked, &bad, &e) == 0);
	CHECK_INT_EQ(checked, 1);
	CHECK_INT_EQ(bad, 0);
	oci_cache_close(&c);
}
