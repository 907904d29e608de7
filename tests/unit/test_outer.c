/* test_outer: the outer side's parsers and bookkeeping: -p mappings, odyn's status lines, exit
 * codes, the state folder (conflicts, pruning, lookup) and --verify-before-run's JSON checks. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "runtime/outer_internal.h"
#include "tests/harness.h"

TEST(port_parse_good)
{
	static const struct {
		const char *in, *addr;
		unsigned host, enclave;
	} cases[] = {
	    {"8080:80", "127.0.0.1", 8080, 80},         {"0.0.0.0:443:8443", "0.0.0.0", 443, 8443},
	    {"[::1]:9000:9001", "::1", 9000, 9001},     {"0:80", "127.0.0.1", 0, 80},
	    {"10.1.2.3:65535:1", "10.1.2.3", 65535, 1}, {"[2001:db8::7]:1:16999", "2001:db8::7", 1, 16999},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct outer_port p;
		struct err *e = NULL;
		REQUIRE(outer_port_parse(cases[i].in, &p, &e) == 0);
		CHECK_STR_EQ(p.host_addr, cases[i].addr);
		CHECK_INT_EQ(p.host_port, cases[i].host);
		CHECK_INT_EQ(p.enclave_port, cases[i].enclave);
	}
}

TEST(port_parse_bad)
{
	static const struct {
		const char *in, *msg;
	} cases[] = {
	    {"80", "want [HOST_ADDR:]HOST_PORT:ENCLAVE_PORT"},
	    {"", "want [HOST_ADDR:]HOST_PORT:ENCLAVE_PORT"},
	    {"1:2:3:4", "want [HOST_ADDR:]HOST_PORT:ENCLAVE_PORT"},
	    {"x:80", "host port \"x\""},
	    {"80:y", "enclave port \"y\""},
	    {"65536:80", "host port \"65536\""},
	    {"80:0", "enclave port \"0\""},
	    {"80:-1", "enclave port \"-1\""},
	    {"80:17000", "one of odyn's own"},
	    {"80:17002", "one of odyn's own"},
	    {"localhost:80:80", "not a numeric IPv4 address"},
	    {"1.2.3:80:80", "not a numeric IPv4 address"},
	    {":80:80", "empty or overlong host address"},
	    {"[::1:80:80", "want [IPv6]"},
	    {"[]:80:80", "want [IPv6]"},
	    {"[1.2.3.4]:80:80", "is not an IPv6 address"},
	    {"[::1]:80", "want [HOST_ADDR:]HOST_PORT:ENCLAVE_PORT"},
	    {"123456:80", "host port"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct outer_port p;
		struct err *e = NULL;
		CHECK(outer_port_parse(cases[i].in, &p, &e) < 0);
		CHECK_ERR_CONTAINS(e, cases[i].msg);
		err_free(&e);
	}
}

TEST(exit_codes)
{
	struct outer_result r = {.outcome = OUTER_APP_EXITED, .code = 0};
	CHECK_INT_EQ(outer_exit_code(&r), 0);
	r.code = 3;
	CHECK_INT_EQ(outer_exit_code(&r), 3);
	r = (struct outer_result){.outcome = OUTER_APP_SIGNALED, .code = 9};
	CHECK_INT_EQ(outer_exit_code(&r), 107);
	r.outcome = OUTER_APP_FATAL;
	CHECK_INT_EQ(outer_exit_code(&r), 108);
	r.outcome = OUTER_ENCLAVE_GONE;
	CHECK_INT_EQ(outer_exit_code(&r), 108);
	r.outcome = OUTER_INTERRUPTED;
	CHECK_INT_EQ(outer_exit_code(&r), 109);
}

static bool line(struct outer_report *o, const char *s)
{
	return outer_report_status(o, s, strlen(s));
}

TEST(status_lines)
{
	struct outer_report o = {0};
	CHECK(line(&o, "{\"status\":\"running\"}"));
	CHECK(o.started && !o.have_final);
	line(&o, "{\"status\":\"exited\",\"code\":3}");
	CHECK(o.have_final && o.final.outcome == OUTER_APP_EXITED && o.final.code == 3);
	/* A restart: the earlier end was not the last one. */
	line(&o, "{\"status\":\"running\"}");
	CHECK(!o.have_final);
	line(&o, "{\"status\":\"signaled\",\"signal\":15}");
	CHECK(o.have_final && o.final.outcome == OUTER_APP_SIGNALED && o.final.code == 15);
	line(&o, "{\"status\":\"fatal\",\"error\":\"start \\\"x\\\"\\n: exec\"}");
	CHECK(o.final.outcome == OUTER_APP_FATAL);
	CHECK_STR_EQ(o.final.message, "odyn: start \"x\"\n: exec");
	/* Malformed or unknown lines change nothing (and do not crash). */
	const char *junk[] = {"",
	                      "{",
	                      "null",
	                      "[]",
	                      "{\"status\":3}",
	                      "{\"status\":\"exited\"}",
	                      "{\"status\":\"exited\",\"code\":\"3\"}",
	                      "{\"status\":\"signaled\",\"signal\":\"SIGTERM\"}",
	                      "{\"status\":\"paused\"}",
	                      "{\"status\":\"running\",\"status\":\"exited\"}"};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		CHECK(!line(&o, junk[i]));
	CHECK(o.have_final && o.final.outcome == OUTER_APP_FATAL);
	free(o.final.message);
}

static pid_t dead_pid(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return p;
}

TEST(state_folder)
{
	setenv("ENCLAVER_STATE_DIR", test_tmpdir(t), 1);
	struct outer_port ports[] = {{"127.0.0.1", 8080, 80}, {"0.0.0.0", 9443, 443}};
	struct outer_state a = {.id = "i-abc-enc1",
	                        .name = "alpha",
	                        .launcher = "nitro",
	                        .eif = "/x.eif",
	                        .cid = 16,
	                        .pid = getpid(),
	                        .ports = ports,
	                        .n_ports = 2,
	                        .started = 1,
	                        .cpu_count = 2,
	                        .cpu_ids = {1, 3},
	                        .memory_mib = 4096,
	                        .debug_mode = true,
	                        .measurements = json_pack("{s:s}", "PCR0", "00ff")};
	struct err *e = NULL;
	char *path = NULL;
	REQUIRE(outer_state_add(&a, &path, &e) == 0);
	free(path);
	struct outer_port other[] = {{"127.0.0.1", 8081, 80}};
	CHECK(outer_state_check("beta", 17, other, 1, &e) == 0);
	CHECK(outer_state_check("alpha", 17, other, 1, &e) < 0);
	CHECK_ERR_CONTAINS(e, "the name alpha is taken by enclave i-abc-enc1");
	err_free(&e);
	CHECK(outer_state_check("beta", 16, other, 1, &e) < 0);
	CHECK_ERR_CONTAINS(e, "CID 16 is in use by enclave i-abc-enc1");
	err_free(&e);
	struct outer_port same[] = {{"127.0.0.1", 8080, 81}};
	CHECK(outer_state_check("beta", 0, same, 1, &e) < 0);
	CHECK_ERR_CONTAINS(e, "host port 127.0.0.1:8080 is in use");
	err_free(&e);
	/* 0.0.0.0 overlaps every address of the same port. */
	struct outer_port any[] = {{"127.0.0.1", 9443, 1}};
	CHECK(outer_state_check("beta", 0, any, 1, &e) < 0);
	CHECK_ERR_CONTAINS(e, "host port 127.0.0.1:9443 is in use");
	err_free(&e);
	/* The same entry again is refused when written, not only when checked. */
	CHECK(outer_state_add(&a, &path, &e) < 0);
	err_free(&e);

	struct outer_state b = {
	    .id = "i-abc-enc2", .name = "gone", .launcher = "nitro", .eif = "/y.eif", .cid = 17, .pid = dead_pid()};
	REQUIRE(outer_state_add(&b, &path, &e) == 0);
	free(path);
	struct outer_state *v;
	size_t n;
	REQUIRE(outer_state_list(&v, &n, &e) == 0);
	CHECK_INT_EQ(n, 1); /* the dead process's entry is pruned */
	if (n == 1) {
		CHECK_STR_EQ(v[0].name, "alpha");
		/* what ps --json shows round-trips */
		CHECK_INT_EQ(v[0].cpu_count, 2);
		CHECK_INT_EQ(v[0].cpu_ids[1], 3);
		CHECK_INT_EQ(v[0].memory_mib, 4096);
		CHECK(v[0].debug_mode);
		CHECK_STR_EQ(json_string_value(json_object_get(v[0].measurements, "PCR0")), "00ff");
		CHECK_INT_EQ(v[0].n_ports, 2);
		CHECK_STR_EQ(v[0].ports[1].host_addr, "0.0.0.0");
		CHECK_INT_EQ(v[0].ports[1].enclave_port, 443);
	}
	outer_state_list_free(v, n);

	struct outer_state f;
	REQUIRE(outer_state_find("i-abc", &f, &e) == 0); /* a unique prefix */
	CHECK_STR_EQ(f.name, "alpha");
	outer_state_free(&f);
	REQUIRE(outer_state_find("alpha", &f, &e) == 0);
	outer_state_free(&f);
	CHECK(outer_state_find("gone", &f, &e) < 0);
	CHECK_ERR_CONTAINS(e, "no running enclave has the id or name \"gone\"");
	err_free(&e);
	json_decref(a.measurements);
	unsetenv("ENCLAVER_STATE_DIR");
}

/* The emulator takes the CID it is given: the run picks the lowest one no live entry has and no
 * other booting run holds (issue 15: a second `run --emulate` got CID 16 again and was refused). */
TEST(state_pick_cid)
{
	setenv("ENCLAVER_STATE_DIR", test_tmpdir(t), 1);
	struct err *e = NULL;
	char *path = NULL;
	struct outer_state a = {
	    .id = "i-x-enc10", .name = "a", .launcher = "emulator", .eif = "/a.eif", .cid = 16, .pid = getpid()};
	struct outer_state gone = {
	    .id = "i-x-enc11", .name = "g", .launcher = "emulator", .eif = "/g.eif", .cid = 17, .pid = dead_pid()};
	REQUIRE(outer_state_add(&a, &path, &e) == 0);
	free(path);
	REQUIRE(outer_state_add(&gone, &path, &e) == 0);
	free(path);
	uint64_t c1 = 0, c2 = 0, c3 = 0;
	int h1 = -1, h2 = -1, h3 = -1;
	REQUIRE(outer_state_pick_cid(16, &c1, &h1, &e) == 0);
	CHECK_INT_EQ(c1, 17); /* 16 is a live entry's; the dead process's 17 is free again */
	/* a second run while the first still boots (no entry yet): its hold keeps 17 */
	REQUIRE(outer_state_pick_cid(16, &c2, &h2, &e) == 0);
	CHECK_INT_EQ(c2, 18);
	CHECK(outer_state_check("b", c2, NULL, 0, &e) == 0);
	close(h1);
	REQUIRE(outer_state_pick_cid(16, &c3, &h3, &e) == 0);
	CHECK_INT_EQ(c3, 17); /* released when the first run ended */
	/* a run that ends gives its CID back and leaves no hold file behind */
	_cleanup_free_ char *hold18 = xasprintf("%s/cid-18.hold", test_tmpdir(t));
	CHECK(access(hold18, F_OK) == 0);
	outer_state_release_cid(c2, &h2);
	CHECK(h2 == -1);
	CHECK(access(hold18, F_OK) < 0 && errno == ENOENT);
	uint64_t c4 = 0;
	int h4 = -1;
	REQUIRE(outer_state_pick_cid(16, &c4, &h4, &e) == 0);
	CHECK_INT_EQ(c4, 18);
	outer_state_release_cid(c4, &h4);
	outer_state_release_cid(c3, &h3);
	outer_state_release_cid(c3, &h3); /* -1: nothing to do */
	/* the hold file is not a state entry: ps lists only the live enclave */
	struct outer_state *v;
	size_t n;
	REQUIRE(outer_state_list(&v, &n, &e) == 0);
	CHECK_INT_EQ(n, 1);
	outer_state_list_free(v, n);
	unsetenv("ENCLAVER_STATE_DIR");
}

TEST(state_parse_fields_and_errors)
{
	struct outer_state s;
	struct err *e = NULL;
	/* an entry from before ps --json: the new fields are optional */
	const char *old = "{\"id\":\"i-1-enc1\",\"pid\":7}";
	REQUIRE(outer_state_parse(old, strlen(old), "old.json", &s, &e) == 0);
	CHECK_INT_EQ(s.cpu_count, 0);
	CHECK(s.measurements == NULL && !s.debug_mode);
	CHECK(s.image == NULL);
	outer_state_free(&s);
	const char *img = "{\"id\":\"i-1-enc1\",\"pid\":7,\"image\":\"oci:/x:rel\"}";
	REQUIRE(outer_state_parse(img, strlen(img), "img.json", &s, &e) == 0);
	CHECK_STR_EQ(s.image, "oci:/x:rel");
	outer_state_free(&s);
	static const struct {
		const char *text, *msg;
	} bad[] = {
	    {"{\"id\":\"x\",\"pid\":1,\"cpu_ids\":3}", "f.json: field \"cpu_ids\": want an array"},
	    {"{\"id\":\"x\",\"pid\":1,\"cpu_ids\":[1,\"2\"]}", "field \"cpu_ids\"[1]: want a CPU id"},
	    {"{\"id\":\"x\",\"pid\":1,\"cpu_ids\":[-1]}", "field \"cpu_ids\"[0]: want a CPU id"},
	    {"{\"id\":\"x\",\"pid\":1,\"memory_mib\":-4}", "field \"memory_mib\": want an integer from 0"},
	    {"{\"id\":\"x\",\"pid\":1,\"memory_mib\":\"4\"}", "field \"memory_mib\""},
	    {"{\"id\":\"x\",\"pid\":1,\"debug_mode\":1}", "field \"debug_mode\": want true or false"},
	    {"{\"id\":\"x\",\"pid\":1,\"measurements\":[]}", "field \"measurements\": want an object"},
	    {"{\"id\":\"x\",\"pid\":1,\"measurements\":{\"PCR0\":1}}", "field \"measurements\".PCR0: want a string"},
	    {"{\"id\":\"x\",\"pid\":1,\"image\":5}", "field \"image\": want a string"},
	    {"{\"id\":3,\"pid\":1}", "f.json: not an enclaver state file"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(outer_state_parse(bad[i].text, strlen(bad[i].text), "f.json", &s, &e) < 0);
		CHECK_ERR_CONTAINS(e, bad[i].msg);
		err_free(&e);
	}
	/* more CPUs than a launch can have */
	_cleanup_buf_ struct buf b = {0};
	buf_puts(&b, "{\"id\":\"x\",\"pid\":1,\"cpu_ids\":[0");
	for (int i = 1; i <= LAUNCH_MAX_CPUS; i++)
		buf_printf(&b, ",%d", i);
	buf_puts(&b, "]}");
	CHECK(outer_state_parse(b.data, b.len, "f.json", &s, &e) < 0);
	CHECK_ERR_CONTAINS(e, "at most");
	err_free(&e);
}

TEST(state_folder_bad_files)
{
	setenv("ENCLAVER_STATE_DIR", test_tmpdir(t), 1);
	const char *bad[] = {
	    "", "{", "[]", "{\"id\": 3, \"pid\": 1}", "{\"id\": \"x\"}", "{\"id\":\"x\",\"pid\":1,\"ports\":3}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/bad%zu.json", test_tmpdir(t), i);
		FILE *f = fopen(path, "w");
		REQUIRE(f);
		fputs(bad[i], f);
		fclose(f);
	}
	struct outer_state *v;
	size_t n;
	struct err *e = NULL;
	REQUIRE(outer_state_list(&v, &n, &e) == 0); /* skipped with a warning, no crash */
	CHECK_INT_EQ(n, 0);
	outer_state_list_free(v, n);
	unsetenv("ENCLAVER_STATE_DIR");
}

