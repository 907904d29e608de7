/* Unit tests for wire/'s status lines: what odyn encodes is what the host decodes, byte for byte
 * the line format of enclaver-compat.md, and a line that is not a status is named, never taken. */
#include <string.h>

#include "tests/harness.h"
#include "wire/wire.h"

static void roundtrip(struct test_ctx *t, struct wire_status in, const char *want_line)
{
	_cleanup_buf_ struct buf b = {0};
	wire_status_encode(&in, &b);
	CHECK_STR_EQ(buf_str(&b), want_line);
	struct wire_status out;
	struct err *e = NULL;
	REQUIRE(wire_status_decode(b.data, b.len - 1, &out, &e) == 0);
	CHECK_INT_EQ(out.kind, in.kind);
	if (in.kind == WIRE_STATUS_EXITED || in.kind == WIRE_STATUS_SIGNALED)
		CHECK_INT_EQ(out.code, in.code);
	if (in.kind == WIRE_STATUS_FATAL)
		CHECK_STR_EQ(out.error, in.error);
	wire_status_free(&out);
}

TEST(status_lines_roundtrip_in_the_documented_format)
{
	roundtrip(t, (struct wire_status){.kind = WIRE_STATUS_RUNNING}, "{\"status\":\"running\"}\n");
	roundtrip(t, (struct wire_status){.kind = WIRE_STATUS_EXITED, .code = 3}, "{\"status\":\"exited\",\"code\":3}\n");
	roundtrip(t, (struct wire_status){.kind = WIRE_STATUS_SIGNALED, .code = 15},
	          "{\"status\":\"signaled\",\"signal\":15}\n");
	roundtrip(t, (struct wire_status){.kind = WIRE_STATUS_FATAL, .error = "exec: \"x\"\n"},
	          "{\"status\":\"fatal\",\"error\":\"exec: \\\"x\\\"\\n\"}\n");
}

TEST(status_lines_that_are_not_a_status)
{
	static const struct {
		const char *line, *why;
	} bad[] = {
	    {"", "malformed"},
	    {"{", "malformed"},
	    {"null", "malformed"},
	    {"[]", "malformed"},
	    {"{\"status\":3}", "malformed"},
	    {"{\"status\":\"running\",\"status\":\"exited\"}", "malformed"}, /* duplicate keys */
	    {"{\"status\":\"exited\"}", "unknown status"},
	    {"{\"status\":\"exited\",\"code\":\"3\"}", "unknown status"},
	    {"{\"status\":\"signaled\",\"signal\":\"SIGTERM\"}", "unknown status"},
	    {"{\"status\":\"paused\"}", "unknown status"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct wire_status st;
		struct err *e = NULL;
		CHECK(wire_status_decode(bad[i].line, strlen(bad[i].line), &st, &e) < 0);
		CHECK_ERR_CONTAINS(e, bad[i].why);
		err_free(&e);
	}
	/* A fatal line without its message still decodes, with a stand-in. */
	struct wire_status st;
	REQUIRE(wire_status_decode("{\"status\":\"fatal\"}", 18, &st, NULL) == 0);
	CHECK_STR_EQ(st.error, "fatal error");
	wire_status_free(&st);
}

TEST(counters_line_roundtrip_in_the_documented_format)
{
	struct wire_counter c[3] = {
	    {.family = WIRE_COUNTER_KMS, .label = {"Decrypt", "ok"}, .n = 2},
	    {.family = WIRE_COUNTER_EGRESS, .label = {"*.amazonaws.com:443", "allowed"}, .n = 7},
	    {.family = WIRE_COUNTER_EGRESS, .label = {"(default)", "denied"}, .n = 1},
	};
	struct wire_status in = {.kind = WIRE_STATUS_COUNTERS, .counters = c, .n_counters = 3};
	_cleanup_buf_ struct buf b = {0};
	wire_status_encode(&in, &b);
	CHECK_STR_EQ(buf_str(&b), "{\"status\":\"counters\",\"egress\":[[\"*.amazonaws.com:443\",\"allowed\",7],"
	                          "[\"(default)\",\"denied\",1]],\"kms\":[[\"Decrypt\",\"ok\",2]]}\n");
	struct wire_status out;
	struct err *e = NULL;
	REQUIRE(wire_status_decode(b.data, b.len - 1, &out, &e) == 0);
	REQUIRE(out.kind == WIRE_STATUS_COUNTERS);
	REQUIRE(out.n_counters == 3);
	CHECK_INT_EQ(out.counters[0].family, WIRE_COUNTER_EGRESS);
	CHECK_STR_EQ(out.counters[0].label[0], "*.amazonaws.com:443");
	CHECK(out.counters[0].n == 7);
	CHECK_STR_EQ(out.counters[2].label[0], "Decrypt");
	CHECK_STR_EQ(out.counters[2].label[1], "ok");
	CHECK(out.counters[2].n == 2);
	wire_status_free(&out);
	/* A family may be absent or empty. */
	REQUIRE(wire_status_decode("{\"status\":\"counters\"}", 21, &out, &e) == 0);
	CHECK(out.n_counters == 0);
	wire_status_free(&out);
}

/* The enclave may be compromised: the host refuses a counters line that could blow up the metrics
 * page (too many entries, long or unprintable labels) or that is not what odyn writes. */
TEST(counters_lines_from_a_hostile_enclave_are_refused_whole)
{
	static const struct {
		const char *line, *why;
	} bad[] = {
	    {"{\"status\":\"counters\",\"egress\":{}}", "not an array"},
	    {"{\"status\":\"counters\",\"egress\":[[\"a\",\"allowed\"]]}", "egress[0] is not"},
	    {"{\"status\":\"counters\",\"egress\":[[\"a\",\"allowed\",-1]]}", "egress[0] is not"},
	    {"{\"status\":\"counters\",\"egress\":[[\"a\",\"allowed\",1.5]]}", "egress[0] is not"},
	    {"{\"status\":\"counters\",\"egress\":[[\"a\",\"allowed\",1,2]]}", "egress[0] is not"},
	    {"{\"status\":\"counters\",\"kms\":[[\"\",\"ok\",1]]}", "kms[0] label 0"},
	    {"{\"status\":\"counters\",\"kms\":[[\"a\\nb\",\"ok\",1]]}", "kms[0] label 0"},
	    {"{\"status\":\"counters\",\"kms\":[[\"Decrypt\",\"\\u00e9\",1]]}", "kms[0] label 1"},
	    {"{\"status\":\"counters\",\"kms\":[[\"Decrypt\",3,1]]}", "kms[0] label 1"},
	    {"{\"status\":\"counters\",\"kms\":[[\"a\",\"ok\",1],[\"a\",\"ok\",2]]}", "kms[1] repeats"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct wire_status st;
		struct err *e = NULL;
		CHECK(wire_status_decode(bad[i].line, strlen(bad[i].line), &st, &e) < 0);
		CHECK_ERR_CONTAINS(e, bad[i].why);
		CHECK(st.counters == NULL);
		err_free(&e);
	}
	/* Labels: 128 bytes pass, 129 do not. */
	char label[WIRE_COUNTER_LABEL_MAX + 2];
	memset(label, 'x', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0';
	_cleanup_free_ char *long_line =
	    xasprintf("{\"status\":\"counters\",\"egress\":[[\"%s\",\"denied\",1]]}", label);
	struct wire_status st;
	struct err *e = NULL;
	CHECK(wire_status_decode(long_line, strlen(long_line), &st, &e) < 0);
	CHECK_ERR_CONTAINS(e, "egress[0] label 0");
	err_free(&e);
	label[WIRE_COUNTER_LABEL_MAX] = '\0';
	_cleanup_free_ char *max_line =
	    xasprintf("{\"status\":\"counters\",\"egress\":[[\"%s\",\"denied\",1]]}", label);
	REQUIRE(wire_status_decode(max_line, strlen(max_line), &st, &e) == 0);
	wire_status_free(&st);
	/* Entries: 64 pass, 65 do not. */
	for (int total = WIRE_COUNTERS_MAX; total <= WIRE_COUNTERS_MAX + 1; total++) {
		_cleanup_buf_ struct buf b = {0};
		buf_puts(&b, "{\"status\":\"counters\",\"egress\":[");
		for (int i = 0; i < total; i++)
			buf_printf(&b, "%s[\"r%d\",\"allowed\",%d]", i ? "," : "", i, i);
		buf_puts(&b, "]}");
		int r = wire_status_decode(b.data, b.len, &st, &e);
		if (total == WIRE_COUNTERS_MAX) {
			CHECK(r == 0);
			CHECK(st.n_counters == WIRE_COUNTERS_MAX);
			wire_status_free(&st);
		} else {
			CHECK(r < 0);
			CHECK_ERR_CONTAINS(e, "more than 64 entries");
			err_free(&e);
		}
	}
}
