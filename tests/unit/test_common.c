/* test_common: errors, buffers, atomic files and serde-compatible JSON. */
#include <fcntl.h>
#include <sys/stat.h>

#include "common/common.h"
#include "tests/harness.h"

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
