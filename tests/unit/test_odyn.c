/* Unit tests for odyn's pure parts: the egress policy matcher (tables of
 * patterns and hosts), tunnel frames and HTTP heads against malformed input,
 * /cmd and /env splitting, module parameters, the manifest and user lookup. */
#include <string.h>
#include <sys/stat.h>

#include "odyn/odyn.h"
#include "tests/harness.h"

static struct egress_policy policy_of(struct test_ctx *t, const char *const *allow, const char *const *deny)
{
	struct egress_policy p = {0};
	struct err *e = NULL;
	for (; allow && *allow; allow++) {
		if (egress_policy_add(&p, false, *allow, &e) < 0)
			test_fail(t, __FILE__, __LINE__, "allow %s: %s", *allow, e->msg), err_free(&e);
	}
	for (; deny && *deny; deny++) {
		if (egress_policy_add(&p, true, *deny, &e) < 0)
			test_fail(t, __FILE__, __LINE__, "deny %s: %s", *deny, e->msg), err_free(&e);
	}
	return p;
}

struct pcase {
	const char *host;
	uint16_t port;
	enum egress_verdict want;
};

static void run_cases(struct test_ctx *t, const struct egress_policy *p, const struct pcase *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum egress_verdict v = egress_policy_check(p, c[i].host, c[i].port, NULL);
		if (v != c[i].want)
			test_fail(t, __FILE__, __LINE__, "%s:%u: verdict %d, expected %d", c[i].host, c[i].port, v,
			          c[i].want);
	}
}
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define A    EGRESS_ALLOW
#define D    EGRESS_DENY_DEFAULT
#define R    EGRESS_DENY_RULE
#define B    EGRESS_BAD_HOST

TEST(policy_domains)
{
	const char *allow[] = {"example.com",      "*.one.test", "**.many.test", "a.*.mid.test", "**.x.**.y.test",
	                       "Mixed.CASE.test.", NULL};
	struct egress_policy p = policy_of(t, allow, NULL);
	static const struct pcase c[] = {
	    {"example.com", 443, A},
	    {"EXAMPLE.COM", 443, A},
	    {"example.com.", 443, A},    /* one trailing dot ignored */
	    {"example.com..", 443, B},   /* an empty label is no host */
	    {"www.example.com", 443, D}, /* exact patterns are exact */
	    {"xexample.com", 443, D},
	    {"a.one.test", 80, A}, /* * is exactly one label */
	    {"one.test", 80, D},
	    {"a.b.one.test", 80, D},
	    {"a.many.test", 80, A}, /* ** is one or more labels */
	    {"a.b.c.many.test", 80, A},
	    {"many.test", 80, D}, /* ...never zero */
	    {"a.q.mid.test", 80, A},
	    {"a.mid.test", 80, D},
	    {"b.q.mid.test", 80, D},
	    {"p.x.q.y.test", 80, A},
	    {"p.x.q.r.y.test", 80, A},
	    {"x.q.y.test", 80, D},
	    {"p.x.y.test", 80, D},
	    {"mixed.case.test", 1, A},
	    {"", 80, B},
	    {".", 80, B},
	    {"a..b", 80, B},
	    {"bad_host!.test", 80, B},
	    {"sp ace.test", 80, B},
	    {"12.34", 80, D},   /* inet_aton form: an address, no rule */
	    {"foo.123", 80, B}, /* numeric last label: refused */
	};
	run_cases(t, &p, c, N(c));
	egress_policy_free(&p);
}

TEST(policy_addresses)
{
	const char *allow[] = {"10.0.0.0/8",     "192.168.1.7",       "2001:db8::/32", "::1",
	                       "[fe80::1]:8443", "172.16.0.0/12:443", "0.0.0.0/0:9",   NULL};
	const char *deny[] = {"10.9.0.0/16", NULL};
	struct egress_policy p = policy_of(t, allow, deny);
	static const struct pcase c[] = {
	    {"10.1.2.3", 80, A},
	    {"10.9.1.1", 80, R}, /* deny wins */
	    {"11.0.0.1", 80, D},
	    {"192.168.1.7", 80, A},
	    {"192.168.1.8", 80, D},
	    {"2001:db8::1", 443, A},
	    {"[2001:db8:ffff::1]", 443, A}, /* brackets as in CONNECT */
	    {"2001:db9::1", 443, D},
	    {"::1", 80, A},
	    {"[::1]", 80, A},
	    {"::2", 80, D},
	    {"fe80::1", 8443, A},
	    {"fe80::1", 443, D}, /* port given: only that port */
	    {"172.20.0.1", 443, A},
	    {"172.20.0.1", 80, D},
	    {"::ffff:10.1.1.1", 80, A}, /* v4-mapped matches as v4 */
	    {"::ffff:10.9.1.1", 80, R},
	    {"10.1", 80, A}, /* 10.0.0.1 in legacy form */
	    {"0x0a.0.0.1", 80, A},
	    {"10.9.0.1.", 80, B}, /* not an address, last label numeric */
	    {"8.8.8.8", 9, A},
	    {"8.8.8.8", 10, D},
	    {"localhost", 80, D}, /* names never match address rules */
	};
	run_cases(t, &p, c, N(c));
	egress_policy_free(&p);
}

TEST(policy_ports_and_deny_rules)
{
	const char *allow[] = {"**.svc.test", "api.test:443", "*", NULL};
	const char *deny[] = {"bad.svc.test", "**.evil.svc.test:8080", NULL};
	struct egress_policy p = policy_of(t, allow, deny);
	static const struct pcase c[] = {
	    {"good.svc.test", 80, A},
	    {"bad.svc.test", 80, R},
	    {"BAD.svc.test.", 80, R},
	    {"a.evil.svc.test", 8080, R},
	    {"a.evil.svc.test", 8081, A},
	    {"api.test", 443, A},
	    {"api.test", 80, D},
	    {"localhost", 80, A}, /* "*" is any one-label name */
	    {"a.b", 80, D},
	};
	run_cases(t, &p, c, N(c));
	const char *rule = NULL;
	CHECK(egress_policy_check(&p, "bad.svc.test", 1, &rule) == EGRESS_DENY_RULE);
	CHECK_STR_EQ(rule, "bad.svc.test");
	CHECK(egress_policy_check(&p, "x.svc.test", 1, &rule) == EGRESS_ALLOW);
	CHECK_STR_EQ(rule, "**.svc.test");
	egress_policy_free(&p);
	struct egress_policy empty = {0};
	CHECK(egress_policy_check(&empty, "example.com", 443, NULL) == EGRESS_DENY_DEFAULT);
}

TEST(policy_bad_patterns)
{
	static const char *bad[] = {"",           ".",          "a..b",        "a*.com",       "*a.com",
	                            "***.com",    "a.com:0",    "a.com:65536", "a.com:x",      "10.0.0.0/33",
	                            "10.0.0.0/",  "10.0.0.0/x", "::1/129",     "[::1",         "[::1]x",
	                            "[::1]:0",    "[nothost]",  "1.2.3.4/8/8", "exa mple.com", "ex/ample.com",
	                            "a.com:80:80", "[1.2.3.4]:80"};
	for (size_t i = 0; i < N(bad); i++) {
		struct egress_policy p = {0};
		struct err *e = NULL;
		if (egress_policy_add(&p, false, bad[i], &e) == 0)
			test_fail(t, __FILE__, __LINE__, "pattern \"%s\" was accepted", bad[i]);
		else
			CHECK_ERR_CONTAINS(e, "is not an IP, CIDR or domain pattern: ");
		err_free(&e);
		egress_policy_free(&p);
	}
}

TEST(policy_many_wildcards_is_fast_and_right)
{
	/* 60 `**` against 120 labels: exponential without memoization. */
	struct buf pat = {0}, host = {0};
	for (int i = 0; i < 60; i++)
		buf_puts(&pat, "**.");
	buf_puts(&pat, "z");
	for (int i = 0; i < 120; i++)
		buf_puts(&host, "a.");
	buf_puts(&host, "y");
	struct egress_policy p = {0};
	struct err *e = NULL;
	REQUIRE(egress_policy_add(&p, false, pat.data, &e) == 0);
	CHECK(egress_policy_check(&p, host.data, 1, NULL) == EGRESS_DENY_DEFAULT);
	egress_policy_free(&p);
	buf_free(&pat);
	buf_free(&host);
}

TEST(host_normalize)
{
	char *s;
	CHECK_STR_EQ((s = egress_host_normalize("WWW.Example.COM.")), "www.example.com");
	free(s);
	CHECK_STR_EQ((s = egress_host_normalize("127.1")), "127.0.0.1");
	free(s);
	CHECK_STR_EQ((s = egress_host_normalize("[::FFFF:10.0.0.1]")), "10.0.0.1");
	free(s);
	CHECK_STR_EQ((s = egress_host_normalize("[2001:DB8::1]")), "2001:db8::1");
	free(s);
	CHECK(egress_host_normalize("a..b") == NULL);
}

/* ---------------------------------------------------------------- frames */

TEST(frame_roundtrip)
{
	struct buf b = {0};
	egress_frame_request(&b, "example.com", 443);
	static const char want[] = "{\"host\":\"example.com\",\"port\":443}";
	REQUIRE(b.len == 2 + strlen(want));
	CHECK_INT_EQ((uint8_t)b.data[0], strlen(want));
	CHECK_INT_EQ((uint8_t)b.data[1], 0);
	CHECK(memcmp(b.data + 2, want, strlen(want)) == 0);
	char *host = NULL;
	uint16_t port;
	struct err *e = NULL;
	for (size_t i = 0; i < b.len; i++) /* every truncation asks for more */
		CHECK(egress_frame_parse_request(b.data, i, &host, &port, &e) == 0);
	CHECK(egress_frame_parse_request(b.data, b.len, &host, &port, &e) == (ssize_t)b.len);
	CHECK_STR_EQ(host, "example.com");
	CHECK_INT_EQ(port, 443);
	free(host);
	b.len = 0;
	egress_frame_reply_ok(&b);
	CHECK(b.len == 6 && memcmp(b.data, "\x04\x00\"Ok\"", 6) == 0);
	struct egress_reply r;
	CHECK(egress_frame_parse_reply(b.data, b.len, &r, &e) == 6);
	CHECK(r.ok);
	b.len = 0;
	egress_frame_reply_err(&b, 111, "Connection \"refused\"");
	CHECK(egress_frame_parse_reply(b.data, b.len, &r, &e) == (ssize_t)b.len);
	CHECK(!r.ok);
	CHECK_INT_EQ(r.os_code, 111);
	CHECK_STR_EQ(r.message, "Connection \"refused\"");
	free(r.message);
	buf_free(&b);
}

static void frame_bad(struct test_ctx *t, const char *body, size_t len, bool reply, const char *msg)
{
	struct buf b = {0};
	uint8_t hdr[2] = {(uint8_t)(len & 0xff), (uint8_t)(len >> 8)};
	buf_append(&b, hdr, 2);
	buf_append(&b, body, len);
	struct err *e = NULL;
	ssize_t r;
	if (reply) {
		struct egress_reply rep;
		r = egress_frame_parse_reply(b.data, b.len, &rep, &e);
	} else {
		char *host = NULL;
		uint16_t port;
		r = egress_frame_parse_request(b.data, b.len, &host, &port, &e);
	}
	if (r != -1)
		test_fail(t, __FILE__, __LINE__, "frame \"%.40s\" gave %zd", body, r);
	else
		CHECK_ERR_CONTAINS(e, msg);
	err_free(&e);
	buf_free(&b);
}

TEST(frame_bad_input)
{
	frame_bad(t, "", 0, false, "empty frame");
	frame_bad(t, "{", 1, false, "bad JSON");
	frame_bad(t, "[]", 2, false, "want {\"host\"");
	frame_bad(t, "{\"host\":1,\"port\":1}", 19, false, "want {\"host\"");
	frame_bad(t, "{\"host\":\"a\",\"port\":0}", 21, false, "out of range");
	frame_bad(t, "{\"host\":\"a\",\"port\":65536}", 25, false, "out of range");
	frame_bad(t, "{\"host\":\"a\\u0000b\",\"port\":1}", 28, false, "not allowed");
	frame_bad(t, "{\"host\":\"a\",\"host\":\"b\",\"port\":1}", 32, false, "bad JSON");
	frame_bad(t, "\"Okay\"", 6, true, "want \"Ok\"");
	frame_bad(t, "{\"Err\":1}", 9, true, "want \"Ok\"");
	frame_bad(t, "{\"Err\":{\"os_code\":\"x\"}}", 23, true, "want \"Ok\"");
	frame_bad(t, "{\"Err\":{},\"Ok\":1}", 17, true, "want \"Ok\"");
	/* Oversized length: refused from the header alone. */
	uint8_t big[2] = {0xff, 0xff};
	struct egress_reply r;
	struct err *e = NULL;
	CHECK(egress_frame_parse_reply(big, 2, &r, &e) == -1);
	CHECK_ERR_CONTAINS(e, "exceeds the limit");
	err_free(&e);
}

/* ---------------------------------------------------------------- HTTP */

TEST(http_parse_requests)
{
	struct http_request r;
	struct err *e = NULL;
	const char *req = "GET http://a.test:8080/p?q=1 HTTP/1.1\r\nHost: a.test:8080\r\nProxy-Connection: "
	                  "Keep-Alive\r\nContent-Length: 5\r\n\r\nhello";
	size_t head = strlen(req) - 5;
	for (size_t i = 0; i < head; i++)
		CHECK(http_request_parse(req, i, &r, &e) == 0);
	REQUIRE(http_request_parse(req, strlen(req), &r, &e) == (ssize_t)head);
	CHECK_STR_EQ(r.method, "GET");
	CHECK_STR_EQ(r.target, "http://a.test:8080/p?q=1");
	CHECK_INT_EQ(r.minor_version, 1);
	CHECK_INT_EQ(r.n_headers, 3);
	CHECK_INT_EQ(r.content_length, 5);
	CHECK(!r.chunked && !r.connection_close);
	http_request_free(&r);

	REQUIRE(http_request_parse("CONNECT [::1]:443 HTTP/1.0\r\n\r\n", 30, &r, &e) > 0);
	CHECK(r.connection_close);
	char *host, *path;
	uint16_t port;
	REQUIRE(http_authority_split(r.target, &host, &port, &e) == 0);
	CHECK_STR_EQ(host, "::1");
	CHECK_INT_EQ(port, 443);
	free(host);
	http_request_free(&r);

	REQUIRE(http_target_split("http://[2001:db8::1]/x#frag", &host, &port, &path, &e) == 0);
	CHECK_STR_EQ(host, "2001:db8::1");
	CHECK_INT_EQ(port, 80);
	CHECK_STR_EQ(path, "/x");
	free(host), free(path);
	REQUIRE(http_target_split("HTTP://h.test?x", &host, &port, &path, &e) == 0);
	CHECK_STR_EQ(path, "/?x");
	free(host), free(path);
}

TEST(http_bad_input)
{
	static const struct {
		const char *req, *msg;
	} cases[] = {
	    {"GET\r\n\r\n", "malformed request line"},
	    {"GET  / HTTP/1.1\r\n\r\n", "malformed request line"},
	    {"GET / HTTP/1.1 x\r\n\r\n", "malformed request line"},
	    {"G(T / HTTP/1.1\r\n\r\n", "malformed request line"},
	    {"GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version"},
	    {"GET / HTTP/1.1\r\n folded\r\n\r\n", "folded header"},
	    {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", "malformed header"},
	    {"GET / HTTP/1.1\r\n: empty\r\n\r\n", "malformed header"},
	    {"GET / HTTP/1.1\r\nA b: c\r\n\r\n", "malformed header"},
	    {"GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n", "bare LF line ending at offset 20"},
	    /* Bare LF line ends are refused even before the head is complete:
	     * waiting for a CRLF CRLF that never comes left the client unanswered. */
	    {"GET / HTTP/1.1\n\n", "bare LF line ending at offset 14"},
	    {"GET / HTTP/1.1\n", "bare LF line ending at offset 14"},
	    {"\n", "bare LF line ending at offset 0"},
	    {"CONNECT a:443 HTTP/1.1\r\nHost: a\n\r\n", "bare LF line ending at offset 31"},
	    {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length"},
	    {"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "Content-Length"},
	    {"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "Content-Length"},
	    {"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "ambiguous"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct http_request r;
		struct err *e = NULL;
		if (http_request_parse(cases[i].req, strlen(cases[i].req), &r, &e) != -1)
			test_fail(t, __FILE__, __LINE__, "accepted: %s", cases[i].req), http_request_free(&r);
		else
			CHECK_ERR_CONTAINS(e, cases[i].msg);
		err_free(&e);
	}
	/* NUL inside, and a head that never ends. */
	struct http_request r;
	struct err *e = NULL;
	CHECK(http_request_parse("GET / HTTP/1.1\r\nA: \0\r\n\r\n", 24, &r, &e) == -1);
	CHECK_ERR_CONTAINS(e, "NUL");
	err_free(&e);
	char *big = malloc(HTTP_HEAD_MAX);
	memset(big, 'a', HTTP_HEAD_MAX);
	CHECK(http_request_parse(big, HTTP_HEAD_MAX, &r, &e) == -1);
	CHECK_ERR_CONTAINS(e, "larger than");
	err_free(&e);
	free(big);
	char *h, *p;
	uint16_t port;
	static const char *bad_targets[] = {"/relative",   "https://a/",   "http://u@a/",
	                                    "http://:80/", "http://a:0/",  "http://a:65536/",
	                                    "http://a:x/", "http://[::1/", "http://::1/"};
	for (size_t i = 0; i < N(bad_targets); i++) {
		if (http_target_split(bad_targets[i], &h, &port, &p, &e) == 0) {
			test_fail(t, __FILE__, __LINE__, "accepted target %s", bad_targets[i]);
			free(h), free(p);
		}
		err_free(&e);
	}
}

/* ---------------------------------------------------------------- init and config */

/* The kernel gives init the command-line words it does not know: with AWS's
 * cmdline ("reboot=k panic=30 pci=off nomodules console=ttyS0 ...") /init
 * gets argv[1] = "nomodules". As PID 1 odyn is init whatever argv holds. */
TEST(mode_pid1_is_init_whatever_the_arguments)
{
	char *aws[] = {"/init", "nomodules", NULL};
	char *bare[] = {"/init", NULL};
	char *init_word[] = {"/init", "init", NULL};
	char *help[] = {"/init", "--help", NULL};
	char *many[] = {"/init", "nomodules", "quiet", "--", "x", NULL};
	CHECK_INT_EQ(odyn_mode_choose(1, 2, aws), ODYN_MODE_INIT);
	CHECK_INT_EQ(odyn_mode_choose(1, 1, bare), ODYN_MODE_INIT);
	CHECK_INT_EQ(odyn_mode_choose(1, 2, init_word), ODYN_MODE_INIT);
	CHECK_INT_EQ(odyn_mode_choose(1, 2, help), ODYN_MODE_INIT);
	CHECK_INT_EQ(odyn_mode_choose(1, 5, many), ODYN_MODE_INIT);
	/* not PID 1: the supervisor (which reports a missing command), or help */
	char *sup[] = {"odyn", "--", "/bin/app", NULL};
	CHECK_INT_EQ(odyn_mode_choose(42, 3, sup), ODYN_MODE_SUPERVISOR);
	CHECK_INT_EQ(odyn_mode_choose(42, 1, bare), ODYN_MODE_SUPERVISOR);
	CHECK_INT_EQ(odyn_mode_choose(42, 2, aws), ODYN_MODE_SUPERVISOR);
	CHECK_INT_EQ(odyn_mode_choose(42, 2, help), ODYN_MODE_HELP);
	char *short_help[] = {"odyn", "-h", NULL};
	CHECK_INT_EQ(odyn_mode_choose(42, 2, short_help), ODYN_MODE_HELP);
}

TEST(init_split_lines)
{
	char **v = NULL;
	struct err *e = NULL;
	REQUIRE(odyn_init_split_lines("/bin/app\n--flag\r\n\nlast", 22, &v, &e) == 0);
	REQUIRE(v[0] && v[1] && v[2]);
	CHECK_STR_EQ(v[0], "/bin/app");
	CHECK_STR_EQ(v[1], "--flag");
	CHECK_STR_EQ(v[2], "last");
	CHECK(v[3] == NULL);
	odyn_strv_free(v);
	REQUIRE(odyn_init_split_lines("", 0, &v, &e) == 0);
	CHECK(v[0] == NULL);
	odyn_strv_free(v);
	CHECK(odyn_init_split_lines("a\0b", 3, &v, &e) == -1);
	CHECK_ERR_CONTAINS(e, "NUL byte at offset 1");
	err_free(&e);
}

TEST(init_module_params)
{
	char *s = odyn_init_module_params("console=ttyS0 nsm.foo=1 virtio-mmio.device=4K@0x1000 nsm.bar nsmx.no=1 "
	                                  "virtio_mmio.x=y",
	                                  "nsm");
	CHECK_STR_EQ(s, "foo=1 bar");
	free(s);
	s = odyn_init_module_params("virtio-mmio.device=4K@0x1000 virtio_mmio.x=y", "virtio_mmio");
	CHECK_STR_EQ(s, "device=4K@0x1000 x=y");
	free(s);
	s = odyn_init_module_params("", "nsm");
	CHECK_STR_EQ(s, "");
	free(s);
}

/* The heartbeat at boot (issue 14, item 1): a parent whose backlog is full, or that takes the
 * connection and never answers, costs the boot the bound, not minutes or forever. */
TEST(init_heartbeat_is_bounded)
{
	_cleanup_free_ char *path = xasprintf("%s/hb.sock", test_tmpdir(t));
	int fill[2] = {-1, -1};
	int lfd = test_full_unix_listener(path, fill);
	REQUIRE(lfd >= 0);
	struct err *e = NULL;
	struct transport_addr a;
	_cleanup_free_ char *text = xasprintf("unix:%s", path);
	REQUIRE(transport_parse(text, &a, &e) == 0);
	int64_t t0 = time_monotonic_ms();
	CHECK(odyn_init_heartbeat(&a, 300, &e) < 0);
	CHECK(time_monotonic_ms() - t0 < 5000);
	CHECK(e && e->code == ETIMEDOUT);
	CHECK_ERR_CONTAINS(e, "heartbeat");
	CHECK_ERR_CONTAINS(e, path);
	CHECK_ERR_CONTAINS(e, "not accepted within 300 ms");
	err_free(&e);
	/* Room in the backlog, but nobody answers the byte. */
	close(fill[0]);
	close(fill[1]);
	int a1 = accept(lfd, NULL, NULL), a2 = accept(lfd, NULL, NULL);
	t0 = time_monotonic_ms();
	CHECK(odyn_init_heartbeat(&a, 300, &e) < 0);
	CHECK(time_monotonic_ms() - t0 < 5000);
	CHECK(e && e->code == ETIMEDOUT);
	CHECK_ERR_CONTAINS(e, path);
	CHECK_ERR_CONTAINS(e, "no answer within 300 ms");
	err_free(&e);
	close(a1);
	close(a2);
	close(lfd);
}

static void write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");
	fputs(data, f);
	fclose(f);
}

TEST(manifest_fields)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/enclaver.yaml", test_tmpdir(t));
	write_file(
	    path,
	    "version: v1\nname: app\ntarget: app:enclave\nsources: {app: x}\n"
	    "api: {listen_port: 9000}\nkms_proxy: {listen_port: 9001, endpoints: {eu-west-1: kms.example.test}}\n"
	    "egress:\n  proxy_port: 3128\n  allow: [\"**.amazonaws.com\", 10.0.0.0/8]\n  deny: [bad.amazonaws.com]\n"
	    "ingress:\n  - listen_port: 8080\n  - listen_port: 8443\n    tls: {key_file: k, cert_file: c}\n"
	    "restart: {policy: on-failure, max_restarts: 4, backoff_ms: 250}\n");
	struct odyn_config c;
	odyn_config_init(&c);
	struct err *e = NULL;
	REQUIRE(odyn_config_load_manifest(&c, path, &e) == 0);
	CHECK(c.egress_enabled);
	CHECK_INT_EQ(c.proxy_port, 3128);
	CHECK_INT_EQ(c.policy.n_allow, 2);
	CHECK_INT_EQ(c.policy.n_deny, 1);
	CHECK(egress_policy_check(&c.policy, "kms.us-east-1.amazonaws.com", 443, NULL) == EGRESS_ALLOW);
	CHECK(egress_policy_check(&c.policy, "bad.amazonaws.com", 443, NULL) == EGRESS_DENY_RULE);
	REQUIRE(c.n_ingress == 2);
	CHECK_STR_EQ(c.ingress[0].listen.text, "vsock:any:8080");
	CHECK_STR_EQ(c.ingress[1].target.text, "tcp:127.0.0.1:8443");
	CHECK(c.ingress[0].tls_cert_file == NULL && c.ingress[0].tls_key_file == NULL);
	REQUIRE(c.ingress[1].tls_cert_file && c.ingress[1].tls_key_file);
	CHECK_STR_EQ(c.ingress[1].tls_cert_file, "c");
	CHECK_STR_EQ(c.ingress[1].tls_key_file, "k");
	CHECK(c.restart == ODYN_RESTART_ON_FAILURE);
	CHECK_INT_EQ(c.max_restarts, 4);
	CHECK_INT_EQ(c.backoff_ms, 250);
	CHECK(c.api_enabled);
	CHECK_INT_EQ(c.api_port, 9000);
	CHECK(c.kms_enabled);
	CHECK_INT_EQ(c.kms_port, 9001);
	REQUIRE(c.n_kms_endpoints == 1);
	CHECK_STR_EQ(c.kms_endpoints[0].region, "eu-west-1");
	CHECK_STR_EQ(c.kms_endpoints[0].host, "kms.example.test");
	odyn_config_free(&c);
}

/* Egress is on only when egress.allow has entries, as in Enclaver: an empty `egress:`, an empty
 * allow list or a deny list alone start no proxy (and so set no http_proxy for the app). */
TEST(manifest_egress_needs_allow_entries)
{
	static const struct {
		const char *yaml;
		bool on;
	} cases[] = {
	    {"egress:\n", false},
	    {"egress:\n  allow:\n", false},
	    {"egress:\n  allow: []\n  proxy_port: 3128\n", false},
	    {"egress:\n  deny: [bad.example]\n", false},
	    {"egress:\n  allow: [good.example]\n  deny: [bad.example]\n", true},
	};
	char path[512];
	snprintf(path, sizeof(path), "%s/enclaver.yaml", test_tmpdir(t));
	for (size_t i = 0; i < N(cases); i++) {
		_cleanup_free_ char *yaml =
		    xasprintf("version: v1\nname: app\ntarget: app:enclave\nsources: {app: x}\n%s", cases[i].yaml);
		write_file(path, yaml);
		struct odyn_config c;
		odyn_config_init(&c);
		struct err *e = NULL;
		REQUIRE(odyn_config_load_manifest(&c, path, &e) == 0);
		if (c.egress_enabled != cases[i].on)
			test_fail(t, __FILE__, __LINE__, "egress %s for:\n%s", c.egress_enabled ? "on" : "off",
			          cases[i].yaml);
		odyn_config_free(&c);
	}
}

TEST(manifest_bad_input)
{
	static const struct {
		const char *yaml, *msg;
	} cases[] = {
	    /* manifest/ reads the file (one parser, the build's): its messages name
	     * the file, line, column and field. */
	    {"egress: [1]\n", "egress: expected a mapping"},
	    {"egress: {proxy_port: 70000}\n", "egress.proxy_port"},
	    {"egress: {proxy_port: 0}\n", "egress.proxy_port"},
	    {"egress: {allow: example.com}\n", "egress.allow: expected a list"},
	    {"egress: {allow: [[x]]}\n", "egress.allow[0]: expected a string"},
	    {"egress: {deny: [ok.com, 'a..b']}\n", "egress.deny[1]"},
	    {"ingress: [{listen_port: 17000}]\n", "ingress[0]"},
	    {"ingress: [{listen_port: x}]\n", "ingress[0].listen_port"},
	    {"ingress: [{}]\n", "ingress[0]: missing required key \"listen_port\""},
	    {"ingress: [{listen_port: 443, tls: {cert_file: c}}]\n", "ingress[0].tls: needs both key_file and cert_file"},
	    {"restart: {policy: always}\n", "restart.policy"},
	    {"restart: {max_restarts: -1}\n", "restart.max_restarts"},
	    {"api: {listen_port: 10000}\negress: {allow: [a.com]}\n", "api.listen_port: port 10000 is already used"},
	    {"kms_proxy: {}\n", "kms_proxy: missing required key \"listen_port\""},
	    {"egress: {allow: [\n", "bad.yaml:6:1"},
	    {"surprise: 1\n", "surprise"},
	};
	char path[512];
	snprintf(path, sizeof(path), "%s/bad.yaml", test_tmpdir(t));
	static const char head[] = "version: v1\nname: app\ntarget: app:enclave\nsources: {app: x}\n";
	for (size_t i = 0; i < N(cases); i++) {
		_cleanup_free_ char *yaml = xasprintf("%s%s", head, cases[i].yaml);
		write_file(path, yaml);
		struct odyn_config c;
		odyn_config_init(&c);
		struct err *e = NULL;
		if (odyn_config_load_manifest(&c, path, &e) == 0)
			test_fail(t, __FILE__, __LINE__, "accepted: %s", cases[i].yaml);
		else {
			CHECK_ERR_CONTAINS(e, cases[i].msg);
			CHECK_ERR_CONTAINS(e, "bad.yaml");
		}
		err_free(&e);
		odyn_config_free(&c);
	}
}

TEST(config_user_lookup)
{
	const char *root = test_tmpdir(t);
	char p[512];
	snprintf(p, sizeof(p), "%s/etc", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/etc/passwd", root);
	write_file(p, "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbroken:x:zz:1::/:/bin/sh\n");
	snprintf(p, sizeof(p), "%s/etc/group", root);
	write_file(p, "root:x:0:\nappgrp:x:1001:\nwheel:x:10:root,app\ndocker:x:999:other,app\nstaff:x:50:\n");
	struct odyn_config c;
	odyn_config_init(&c);
	struct err *e = NULL;
	REQUIRE(odyn_config_set_user(&c, "app", root, &e) == 0);
	CHECK_INT_EQ(c.uid, 1000);
	CHECK_INT_EQ(c.gid, 1001);
	REQUIRE(c.n_groups == 3);
	CHECK_INT_EQ(c.groups[0], 1001);
	CHECK_INT_EQ(c.groups[1], 10);
	CHECK_INT_EQ(c.groups[2], 999);
	REQUIRE(odyn_config_set_user(&c, "1000:staff", root, &e) == 0);
	CHECK_INT_EQ(c.uid, 1000);
	CHECK_INT_EQ(c.gid, 50);
	REQUIRE(odyn_config_set_user(&c, "4242", root, &e) == 0);
	CHECK_INT_EQ(c.uid, 4242);
	CHECK_INT_EQ(c.gid, 0);
	CHECK_INT_EQ(c.n_groups, 1);
	REQUIRE(odyn_config_set_user(&c, "4242:77", root, &e) == 0);
	CHECK_INT_EQ(c.gid, 77);
	CHECK(odyn_config_set_user(&c, "nobody-here", root, &e) == -1);
	CHECK_ERR_CONTAINS(e, "not found in");
	err_free(&e);
	CHECK(odyn_config_set_user(&c, "app:nogroup", root, &e) == -1);
	CHECK_ERR_CONTAINS(e, "group \"nogroup\" not found");
	err_free(&e);
	CHECK(odyn_config_set_user(&c, "broken", root, &e) == -1);
	CHECK_ERR_CONTAINS(e, "bad entry");
	err_free(&e);
	CHECK(odyn_config_set_user(&c, ":1", root, &e) == -1);
	err_free(&e);
	odyn_config_free(&c);
}

