/* test_logfmt: the run's log formatter (common/logfmt.c): JSON lines that any JSON reader takes
 * whatever bytes the enclave sent (escapes, ill-formed UTF-8, control bytes, long lines, a newline
 * that must not forge a second object), the time's format, and the text mode's escapes. */
#include <jansson.h>
#include <time.h>

#include "common/common.h"
#include "tests/harness.h"

/* One line of log_json_line for msg, parsed back with jansson (which refuses ill-formed UTF-8). */
static json_t *line_of(struct test_ctx *t, const char *msg, size_t len, struct buf *b)
{
	const struct timespec ts = {.tv_sec = 1700000000, .tv_nsec = 123999999};
	b->len = 0;
	log_json_line(b, &ts, "app", NULL, "info", msg, len);
	json_error_t je;
	CHECK(b->len > 0 && b->data[b->len - 1] == '\n');
	CHECK(memchr(b->data, '\n', b->len) == b->data + b->len - 1); /* one line, whatever msg held */
	for (size_t i = 0; i + 1 < b->len; i++)
		if ((unsigned char)b->data[i] < 0x20) {
			CHECK(!"a raw control byte in the line");
			break;
		}
	json_t *doc = json_loadb(b->data, b->len, JSON_ALLOW_NUL, &je); /* an escaped NUL is valid JSON */
	if (!doc)
		test_fail(t, __FILE__, __LINE__, "not JSON (%s): %.*s", je.text, (int)(b->len > 200 ? 200 : b->len), b->data);
	return doc;
}

static const char *message_of(json_t *doc)
{
	return json_string_value(json_object_get(doc, "message"));
}

TEST(json_line_fields_in_order_and_time_in_rfc3339_utc_ms)
{
	_cleanup_buf_ struct buf b = {0};
	const struct timespec ts = {.tv_sec = 1700000000, .tv_nsec = 123999999};
	log_json_line(&b, &ts, "app", "stdout", "info", "hello", 5);
	CHECK_STR_EQ(b.data, "{\"time\":\"2023-11-14T22:13:20.123Z\",\"source\":\"app\",\"stream\":\"stdout\","
	                  "\"level\":\"info\",\"message\":\"hello\"}\n");
	b.len = 0;
	const struct timespec t0 = {.tv_sec = 0, .tv_nsec = 0};
	log_json_line(&b, &t0, "host", NULL, "warn", "", 0);
	CHECK_STR_EQ(b.data, "{\"time\":\"1970-01-01T00:00:00.000Z\",\"source\":\"host\",\"level\":\"warn\",\"message\":\"\"}\n");
}

TEST(json_escapes_quotes_backslashes_and_control_bytes)
{
	_cleanup_buf_ struct buf b = {0};
	const char msg[] = "q\"b\\n\nr\rt\tz\0e\x1b[31mx\x7f\x01";
	log_json_escape(&b, msg, sizeof(msg) - 1);
	CHECK_STR_EQ(b.data, "q\\\"b\\\\n\\nr\\rt\\tz\\u0000e\\u001b[31mx\\u007f\\u0001");
	json_t *doc = line_of(t, msg, sizeof(msg) - 1, &b);
	REQUIRE(doc);
	CHECK(json_string_length(json_object_get(doc, "message")) == sizeof(msg) - 1);
	CHECK(memcmp(message_of(doc), msg, sizeof(msg) - 1) == 0); /* the bytes round-trip exactly */
	json_decref(doc);
}

TEST(json_newline_in_app_output_cannot_forge_a_second_object)
{
	_cleanup_buf_ struct buf b = {0};
	const char *msg = "ok\n{\"time\":\"2023-11-14T22:13:20.123Z\",\"source\":\"host\",\"level\":\"error\","
	                  "\"message\":\"forged\"}\r\n";
	json_t *doc = line_of(t, msg, strlen(msg), &b);
	REQUIRE(doc);
	CHECK_STR_EQ(json_string_value(json_object_get(doc, "source")), "app");
	CHECK_STR_EQ(message_of(doc), msg);
	json_decref(doc);
}

TEST(json_ill_formed_utf8_becomes_replacement_characters)
{
	static const struct {
		const char *in, *want; /* want: the escaped text */
	} cases[] = {
	    {"\xff\xfe", "\\ufffd\\ufffd"},
	    {"\xc0\xaf", "\\ufffd\\ufffd"},                   /* overlong '/' */
	    {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"},        /* overlong, 3 bytes */
	    {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},        /* a UTF-16 surrogate */
	    {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* past U+10FFFF */
	    {"a\xe2\x82", "a\\ufffd\\ufffd"},                 /* cut short at the end */
	    {"\xe2\x82z", "\\ufffd\\ufffdz"},                 /* cut short before ASCII */
	    {"\x80x", "\\ufffdx"},                            /* a lone continuation byte */
	    {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}, /* well-formed: as is */
	    {"\xe2\x80\xa8|\xe2\x80\xa9", "\\u2028|\\u2029"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		_cleanup_buf_ struct buf b = {0};
		log_json_escape(&b, cases[i].in, strlen(cases[i].in));
		if (strcmp(b.data ? b.data : "", cases[i].want) != 0)
			test_fail(t, __FILE__, __LINE__, "case %zu: got %s want %s", i, b.data, cases[i].want);
		json_t *doc = line_of(t, cases[i].in, strlen(cases[i].in), &b);
		CHECK(doc != NULL);
		json_decref(doc);
	}
}

TEST(json_long_lines_and_random_bytes_stay_one_valid_line)
{
	_cleanup_buf_ struct buf b = {0};
	/* 1 MiB of every byte value, the worst case for the escapes (6 bytes out for 1 in). */
	size_t n = 1 << 20;
	_cleanup_free_ char *big = xmalloc(n);
	unsigned seed = 12345;
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		big[i] = (char)(seed >> 16);
	}
	json_t *doc = line_of(t, big, n, &b);
	REQUIRE(doc);
	CHECK(b.len < 6 * n + 200);
	json_decref(doc);
	/* Many short random strings: every one parses. */
	for (int k = 0; k < 2000; k++) {
		char s[64];
		size_t len = (size_t)k % sizeof(s);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			s[i] = (char)(seed >> 16);
		}
		json_t *d = line_of(t, s, len, &b);
		if (!d)
			break;
		json_decref(d);
	}
}

TEST(text_escapes_control_bytes_and_prefixes_every_line)
{
	_cleanup_buf_ struct buf b = {0};
	const char msg[] = "a\rb\x1b[2K\tc\x7f\x00\xff";
	log_text_escape(&b, msg, sizeof(msg) - 1);
	CHECK_STR_EQ(b.data, "a\\x0db\\x1b[2K\tc\\x7f\\x00\xff"); /* other bytes as is: text mode is bytes */
	b.len = 0;
	log_line_format(&b, LOG_FORMAT_TEXT, "[app] ", "app", "info", "x\ny", 3);
	CHECK_STR_EQ(b.data, "[app] x\n[app] y\n"); /* each part under its own prefix */
	b.len = 0;
	const char forged[] = "egress: evil\nenclaver: error: forged\r\n\nz\n";
	log_text_lines(&b, "enclaver: info: ", forged, sizeof(forged) - 1);
	CHECK_STR_EQ(b.data, "enclaver: info: egress: evil\nenclaver: info: enclaver: error: forged\\x0d\n"
	                     "enclaver: info: \nenclaver: info: z\n");
	b.len = 0;
	log_text_lines(&b, "p ", "", 0);
	CHECK_STR_EQ(b.data, "p \n");
	b.len = 0;
	log_line_format(&b, LOG_FORMAT_JSON, "[app] ", "odyn", "warn", "w", 1);
	json_error_t je;
	json_t *doc = json_loadb(b.data, b.len, 0, &je);
	REQUIRE(doc);
	CHECK_STR_EQ(json_string_value(json_object_get(doc, "source")), "odyn");
	CHECK_STR_EQ(json_string_value(json_object_get(doc, "level")), "warn");
	const char *time = json_string_value(json_object_get(doc, "time"));
	CHECK(time && strlen(time) == 24 && time[10] == 'T' && time[19] == '.' && time[23] == 'Z');
	json_decref(doc);
}

TEST(log_format_parse_takes_text_and_json_only)
{
	enum log_format f = LOG_FORMAT_TEXT;
	CHECK(log_format_parse("json", &f) == 0 && f == LOG_FORMAT_JSON);
	CHECK(log_format_parse("text", &f) == 0 && f == LOG_FORMAT_TEXT);
	CHECK(log_format_parse("JSON", &f) < 0);
	CHECK(log_format_parse("", &f) < 0);
}
