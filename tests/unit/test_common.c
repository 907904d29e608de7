/* test_common: errors, buffers, atomic files and serde-compatible JSON. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "common/common.h"
#include "wire/logstream.h"
#include "tests/harness.h"
#include "common/json.h"
#include "common/cose.h"

TEST(err_chain_reads_outermost_first)
{
	struct err *e = NULL;
	CHECK_INT_EQ(err_set(&e, EIO, "read %s", "x"), -1);
	err_wrap(&e, "ramdisk %d", 2);
	err_wrap(&e, "write %s", "out.eif");
	REQUIRE(e != NULL);
	CHECK_STR_EQ(e->msg, "write out.eif: ramdisk 2: read x");
	CHECK_INT_EQ(e->code, EIO);
	err_free(&e);
	CHECK(e == NULL);
	/* A NULL err pointer is allowed: callers that do not care. */
	CHECK_INT_EQ(err_set(NULL, EIO, "ignored"), -1);
}

TEST(err_sys_appends_strerror)
{
	struct err *e = NULL;
	errno = ENOENT;
	err_sys(&e, "open %s", "/nope");
	REQUIRE(e != NULL);
	CHECK_STR_EQ(e->msg, "open /nope: No such file or directory");
	CHECK_INT_EQ(e->code, ENOENT);
	err_free(&e);
}

TEST(buf_grows_and_stays_terminated)
{
	_cleanup_buf_ struct buf b = {0};
	CHECK_STR_EQ(buf_str(&b), "");
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	CHECK(b.len > 1000);
	CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
	CHECK_INT_EQ(strlen(b.data), b.len);
}

static char *serde(const char *json, unsigned flags)
{
	json_error_t je;
	_cleanup_json_ json_t *v = json_loads(json, JSON_DECODE_ANY, &je);
	if (v == NULL)
		return xstrdup("(parse error)");
	struct buf b = {0};
	struct err *e = NULL;
	if (json_serde_write(&b, v, flags, &e) < 0) {
		err_free(&e);
		buf_free(&b);
		return xstrdup("(write error)");
	}
	return (char *)buf_str(&b);
}

TEST(serde_strings_escape_like_serde_json)
{
	_cleanup_free_ char *s = serde("\"a\\\"b\\\\c/d\\u0001\\u001f\\b\\f\\n\\r\\t\\u00e9\\u2603\"", 0);
	/* '/' and non-ASCII stay as they are; control bytes get lowercase \u00xx. */
	CHECK_STR_EQ(s, "\"a\\\"b\\\\c/d\\u0001\\u001f\\b\\f\\n\\r\\t\xc3\xa9\xe2\x98\x83\"");
}

TEST(serde_floats_are_shortest_roundtrip_like_ryu)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"1.0", "1.0"},       {"0.1", "0.1"},         {"100.0", "100.0"},       {"1e2", "100.0"},
		{"1.5e-5", "0.000015"}, {"1.5e-6", "1.5e-6"}, {"0.0001", "0.0001"},   {"1e16", "1e16"},         {"1e15", "1000000000000000.0"},
		{"-2.5", "-2.5"},     {"123456.789", "123456.789"}, {"1e-7", "1e-7"}, {"1.2345e20", "1.2345e20"},
		{"0.0", "0.0"},       {"5e-324", "5e-324"},   {"1.7976931348623157e308", "1.7976931348623157e308"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		_cleanup_free_ char *s = serde(cases[i].in, 0);
		CHECK_STR_EQ(s, cases[i].out);
	}
}

TEST(serde_objects_sorted_or_in_order_and_pretty)
{
	_cleanup_free_ char *a = serde("{\"golden\":\"case2\",\"n\":7,\"list\":[1,2,3]}", JSON_SERDE_SORT_KEYS);
	CHECK_STR_EQ(a, "{\"golden\":\"case2\",\"list\":[1,2,3],\"n\":7}");
	_cleanup_free_ char *b = serde("{\"b\":1,\"a\":{}}", 0);
	CHECK_STR_EQ(b, "{\"b\":1,\"a\":{}}");
	_cleanup_free_ char *c = serde("{\"k\":[1,{\"x\":null}],\"e\":[]}", JSON_SERDE_PRETTY);
	CHECK_STR_EQ(c, "{\n  \"k\": [\n    1,\n    {\n      \"x\": null\n    }\n  ],\n  \"e\": []\n}");
}

TEST(json_sorted_copy_sorts_nested_objects)
{
	json_error_t je;
	_cleanup_json_ json_t *v = json_loads("{\"z\":[{\"b\":1,\"a\":2}],\"y\":true}", 0, &je);
	_cleanup_json_ json_t *s = json_sorted_copy(v);
	_cleanup_buf_ struct buf b = {0};
	REQUIRE(json_serde_write(&b, s, 0, NULL) == 0);
	CHECK_STR_EQ(buf_str(&b), "{\"y\":true,\"z\":[{\"a\":2,\"b\":1}]}");
}

TEST(atomic_file_commit_and_abort)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *path = xasprintf("%s/out", dir);
	struct atomic_file af;
	REQUIRE(atomic_file_open(&af, path, 0644, NULL) == 0);
	REQUIRE(io_write_full(af.fd, "hello", 5, NULL) == 0);
	CHECK(access(path, F_OK) != 0); /* nothing visible before commit */
	REQUIRE(atomic_file_commit(&af, NULL) == 0);
	_cleanup_free_ char *got = NULL;
	size_t len;
	REQUIRE(io_read_file(path, 100, &got, &len, NULL) == 0);
	CHECK_STR_EQ(got, "hello");

	struct atomic_file af2;
	REQUIRE(atomic_file_open(&af2, path, 0644, NULL) == 0);
	_cleanup_free_ char *tmp = xstrdup(af2.tmp_path);
	io_write_full(af2.fd, "partial", 7, NULL);
	atomic_file_abort(&af2);
	atomic_file_abort(&af2); /* twice is fine */
	CHECK(access(tmp, F_OK) != 0);
	free(got);
	got = NULL;
	REQUIRE(io_read_file(path, 100, &got, &len, NULL) == 0);
	CHECK_STR_EQ(got, "hello"); /* the old file is untouched */
}

/* Keep mode: writes `n` pieces (offset, text) through atomic_file_open_keep in the given order,
 * commits, and says whether the existing file was left as it was. */
struct piece {
	uint64_t off;
	const char *text;
};
static int keep_write(const char *path, const struct piece *p, size_t n, bool commit, bool *unchanged)
{
	struct atomic_file af;
	if (atomic_file_open_keep(&af, path, 0644, NULL) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (atomic_file_pwrite(&af, p[i].text, strlen(p[i].text), p[i].off, NULL) < 0) {
			atomic_file_abort(&af);
			return -1;
		}
	if (!commit) {
		atomic_file_abort(&af);
		return 0;
	}
	int r = atomic_file_commit(&af, NULL);
	*unchanged = af.unchanged;
	atomic_file_abort(&af);
	return r;
}

static char *slurp(const char *path)
{
	char *got = NULL;
	size_t len;
	return io_read_file(path, 1000, &got, &len, NULL) == 0 ? got : NULL;
}

static int entries(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

TEST(atomic_file_keep_leaves_identical_files_alone)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *path = xasprintf("%s/out", dir);
	bool unchanged = false;
	/* No file yet: written as usual. The header goes last, as the EIF writer does. */
	const struct piece first[] = {{4, "body-of-the-file"}, {0, "HEAD"}};
	REQUIRE(keep_write(path, first, 2, true, &unchanged) == 0);
	CHECK(!unchanged);
	_cleanup_free_ char *a = slurp(path);
	CHECK_STR_EQ(a, "HEADbody-of-the-file");
	struct stat before, after;
	REQUIRE(stat(path, &before) == 0);

	/* The same bytes again: the file is not replaced (same inode, same mtime). */
	REQUIRE(keep_write(path, first, 2, true, &unchanged) == 0);
	CHECK(unchanged);
	REQUIRE(stat(path, &after) == 0);
	CHECK(before.st_ino == after.st_ino);
	CHECK(before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
	CHECK_INT_EQ(entries(dir), 1);
}

TEST(atomic_file_keep_replaces_on_any_difference)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *path = xasprintf("%s/out", dir);
	bool unchanged = true;
	const struct piece orig[] = {{4, "body-of-the-file"}, {0, "HEAD"}};
	REQUIRE(keep_write(path, orig, 2, true, &unchanged) == 0);
	struct {
		const char *name;
		struct piece p[4];
		size_t n;
		const char *want;
	} cases[] = {
		{"differs in the middle", {{4, "body-"}, {9, "XX"}, {11, "-the-file"}, {0, "HEAD"}}, 4, "HEADbody-XX-the-file"},
		{"differs only in the header written last", {{4, "body-of-the-file"}, {0, "head"}}, 2, "headbody-of-the-file"},
		{"longer", {{4, "body-of-the-file-and-more"}, {0, "HEAD"}}, 2, "HEADbody-of-the-file-and-more"},
		{"shorter (a prefix of the old)", {{4, "body"}, {0, "HEAD"}}, 2, "HEADbody"},
		{"back to the original", {{4, "body-of-the-file"}, {0, "HEAD"}}, 2, "HEADbody-of-the-file"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		REQUIRE(keep_write(path, cases[i].p, cases[i].n, true, &unchanged) == 0);
		_cleanup_free_ char *got = slurp(path);
		if (!got || strcmp(got, cases[i].want) != 0 || unchanged)
			test_fail(t, __FILE__, __LINE__, "%s: got \"%s\"%s", cases[i].name, got ? got : "(null)",
			          unchanged ? " (reported unchanged)" : "");
	}
	CHECK_INT_EQ(entries(dir), 1);
}

TEST(atomic_file_keep_abort_and_odd_targets)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *path = xasprintf("%s/out", dir);
	bool unchanged = false;
	const struct piece orig[] = {{0, "original"}};
	REQUIRE(keep_write(path, orig, 1, true, &unchanged) == 0);
	/* Aborted after diverging: the old file stays, no temporary file is left. */
	const struct piece other[] = {{0, "changed!"}};
	REQUIRE(keep_write(path, other, 1, false, &unchanged) == 0);
	_cleanup_free_ char *got = slurp(path);
	CHECK_STR_EQ(got, "original");
	CHECK_INT_EQ(entries(dir), 1);
	/* A different mode is a difference: the file is replaced with the mode asked for. */
	REQUIRE(chmod(path, 0600) == 0);
	REQUIRE(keep_write(path, orig, 1, true, &unchanged) == 0);
	CHECK(!unchanged);
	struct stat st;
	REQUIRE(stat(path, &st) == 0);
	mode_t mask = umask(0);
	umask(mask);
	CHECK_INT_EQ(st.st_mode & 0777, 0644 & ~mask);
	/* A symlink at the path is replaced, never compared through or written through. */
	_cleanup_free_ char *target = xasprintf("%s/target", dir);
	_cleanup_free_ char *link = xasprintf("%s/link", dir);
	REQUIRE(keep_write(target, orig, 1, true, &unchanged) == 0);
	REQUIRE(symlink(target, link) == 0);
	REQUIRE(keep_write(link, orig, 1, true, &unchanged) == 0);
	CHECK(!unchanged);
	REQUIRE(lstat(link, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
}

TEST(read_file_enforces_limit)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *path = xasprintf("%s/f", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	io_write_full(fd, "0123456789", 10, NULL);
	close(fd);
	char *data = NULL;
	size_t len = 0;
	struct err *e = NULL;
	CHECK(io_read_file(path, 9, &data, &len, &e) < 0);
	CHECK_ERR_CONTAINS(e, "larger than the limit of 9 bytes");
	err_free(&e);
	REQUIRE(io_read_file(path, 10, &data, &len, NULL) == 0);
	CHECK_INT_EQ(len, 10);
	free(data);
	CHECK(io_read_file(dir, 10, &data, &len, &e) < 0);
	CHECK_ERR_CONTAINS(e, "is a directory");
	err_free(&e);
}

TEST(source_date_epoch)
{
	int64_t v;
	struct err *e = NULL;
	setenv("SOURCE_DATE_EPOCH", "1704067200", 1);
	REQUIRE(time_source_date_epoch(&v, NULL) == 0);
	CHECK_INT_EQ(v, 1704067200);
	char s[32];
	time_format_rfc3339(v, s);
	CHECK_STR_EQ(s, "2024-01-01T00:00:00+00:00");
	setenv("SOURCE_DATE_EPOCH", "12abc", 1);
	CHECK(time_source_date_epoch(&v, &e) < 0);
	CHECK_ERR_CONTAINS(e, "SOURCE_DATE_EPOCH=12abc");
	err_free(&e);
	unsetenv("SOURCE_DATE_EPOCH");
}

TEST(hex_roundtrip)
{
	uint8_t in[3] = {0x00, 0xab, 0xff}, out[3];
	char h[7];
	hex_encode(in, 3, h);
	CHECK_STR_EQ(h, "00abff");
	CHECK(hex_decode("00ABff", out, 3) == 0 && memcmp(in, out, 3) == 0);
	CHECK(hex_decode("00abf", out, 3) < 0);
	CHECK(hex_decode("00abfg", out, 3) < 0);
}

/* xstrndup copies at most n bytes and never reads past them: the buffer
 * below has no NUL after its last byte (ASan would see a read beyond it). */
TEST(xstrndup_reads_no_further_than_n)
{
	char *raw = xmalloc(5);
	memcpy(raw, "abcde", 5);
	char *a = xstrndup(raw, 5), *b = xstrndup(raw, 2), *c = xstrndup("x\0yz", 4), *d = xstrndup(raw, 0);
	CHECK_STR_EQ(a, "abcde");
	CHECK_STR_EQ(b, "ab");
	CHECK_STR_EQ(c, "x");
	CHECK_STR_EQ(d, "");
	free(a);
	free(b);
	free(c);
	free(d);
	free(raw);
}

TEST(cbor_skip_counts_nesting_not_containers)
{
	struct err *e = NULL;
	_cleanup_buf_ struct buf b = {0};
	/* [ [1], [2], ... 40 small arrays ], then a marker: flat, so it skips */
	cbor_put_head(&b, CBOR_ARRAY, 40);
	for (int i = 0; i < 40; i++) {
		cbor_put_head(&b, CBOR_ARRAY, 1);
		cbor_put_head(&b, CBOR_UINT, (uint64_t)i);
	}
	/* a map with a tagged, nested value and an empty map */
	cbor_put_head(&b, CBOR_MAP, 2);
	cbor_put_tstr(&b, "a");
	cbor_put_head(&b, CBOR_TAG, 18);
	cbor_put_head(&b, CBOR_ARRAY, 2);
	cbor_put_bstr(&b, "xy", 2);
	cbor_put_head(&b, CBOR_MAP, 0);
	cbor_put_tstr(&b, "b");
	cbor_put_head(&b, CBOR_SIMPLE, CBOR_SIMPLE_NULL);
	size_t marker = b.len;
	cbor_put_head(&b, CBOR_UINT, 7);
	struct cbor_reader r = {.data = (const uint8_t *)b.data, .len = b.len};
	REQUIRE(cbor_skip(&r, &e) == 0);
	REQUIRE(cbor_skip(&r, &e) == 0);
	CHECK_INT_EQ(r.off, marker);

	/* 16 levels skip, 17 do not, and the message names the offset */
	for (int levels = 16; levels <= 17; levels++) {
		b.len = 0;
		for (int i = 0; i < levels; i++)
			cbor_put_head(&b, CBOR_ARRAY, 1);
		cbor_put_head(&b, CBOR_UINT, 1);
		struct cbor_reader d = {.data = (const uint8_t *)b.data, .len = b.len, .base = 100};
		if (levels == 16) {
			CHECK(cbor_skip(&d, &e) == 0);
			CHECK_INT_EQ(d.off, b.len);
		} else {
			CHECK(cbor_skip(&d, &e) == -1);
			CHECK_ERR_CONTAINS(e, "offset 116: nested more than 16 levels deep");
			err_free(&e);
		}
	}
	/* a map claiming more entries than bytes left; a string past the end */
	static const uint8_t big_map[] = {0xa3, 0x01, 0x02};
	struct cbor_reader m = {.data = big_map, .len = sizeof(big_map)};
	CHECK(cbor_skip(&m, &e) == -1);
	CHECK_ERR_CONTAINS(e, "offset 0: map of 3 entries cannot fit");
	err_free(&e);
	static const uint8_t long_str[] = {0x82, 0x01, 0x45, 'a'};
	struct cbor_reader s = {.data = long_str, .len = sizeof(long_str)};
	CHECK(cbor_skip(&s, &e) == -1);
	CHECK_ERR_CONTAINS(e, "offset 2: string of 5 bytes runs past the end");
	err_free(&e);
}

/* ---------------------------------------------------------------- logstream */

struct ls_out {
	struct buf b; /* "A:line|" and "R:tag:text|" in order */
};
static void ls_app(void *arg, const char *line, size_t len)
{
	struct ls_out *o = arg;
	buf_puts(&o->b, "A:");
	buf_append(&o->b, line, len);
	buf_putc(&o->b, '|');
}
static void ls_rec(void *arg, const char *tag, size_t tag_len, const char *text, size_t len)
{
	struct ls_out *o = arg;
	buf_puts(&o->b, "R:");
	buf_append(&o->b, tag, tag_len);
	buf_putc(&o->b, ':');
	buf_append(&o->b, text, len);
	buf_putc(&o->b, '|');
}

/* Feeds `data` one byte at a time when `bytewise`, else whole; returns what the sink saw. */
static char *ls_decode(const char *data, size_t len, bool bytewise, size_t line_max)
{
	struct ls_out o = {0};
	struct logstream_reader r = {0};
	const struct logstream_sink sink = {.app_line = ls_app, .record = ls_rec, .arg = &o, .app_line_max = line_max};
	if (bytewise)
		for (size_t i = 0; i < len; i++)
			logstream_reader_feed(&r, data + i, 1, false, &sink);
	else
		logstream_reader_feed(&r, data, len, false, &sink);
	logstream_reader_feed(&r, "", 0, true, &sink);
	logstream_reader_free(&r);
	char *s = xstrdup(buf_str(&o.b));
	buf_free(&o.b);
	return s;
}

TEST(logstream_records_and_app_lines_split_anywhere)
{
	struct buf b = {0};
	buf_puts(&b, "hello\npart");
	logstream_record_append(&b, LOGSTREAM_TAG_ODYN, "warning: egress:\tdenied\nx");
	buf_puts(&b, "ial\n\nlast");
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		_cleanup_free_ char *s = ls_decode(b.data, b.len, bytewise, 65536);
		CHECK_STR_EQ(s, "A:hello|R:odyn:warning: egress: denied x|A:partial|A:|A:last|");
	}
	buf_free(&b);
	/* long app lines come in pieces; a malformed tag is still a record, never app output */
	_cleanup_free_ char *p = ls_decode("abcdefg\n", 8, false, 3);
	CHECK_STR_EQ(p, "A:abc|A:def|A:g|");
	_cleanup_free_ char *m = ls_decode("\x1eNOT-lower text\n", 16, false, 100);
	CHECK_STR_EQ(m, "R::NOT-lower text|");
	/* an oversized record is cut, and the rest up to LF does not leak into the app's lines */
	struct buf big = {0};
	buf_putc(&big, LOGSTREAM_RS);
	buf_puts(&big, "odyn ");
	for (int i = 0; i < 3000; i++)
		buf_putc(&big, 'x');
	buf_puts(&big, "\nafter\n");
	_cleanup_free_ char *g = ls_decode(big.data, big.len, false, 65536);
	CHECK(strstr(g, "|A:after|") != NULL);
	CHECK(strlen(g) < LOGSTREAM_RECORD_MAX + 20);
	buf_free(&big);
	/* the app cannot forge a record */
	char app[] = "x\x1eodyn fake\n";
	logstream_app_sanitize(app, strlen(app));
	_cleanup_free_ char *f = ls_decode(app, strlen(app), false, 100);
	CHECK_STR_EQ(f, "A:x\x1aodyn fake|");
}
