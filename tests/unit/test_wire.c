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
