/* test_manifest: enclaver.yaml parsing: a full manifest read back field by
 * field, old key names, bad input naming file, line and column, Enclaver's
 * semantics (empty values, egress only with allow entries, spire refused) and
 * every manifest from Enclaver's repository (testdata/upstream-manifests/). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "manifest/manifest.h"
#include "tests/harness.h"

static const char full[] = "version: v1\n"
                           "name: \"example\"\n"
                           "target: \"registry.example/app:enclave\"\n"
                           "sources:\n"
                           "  app: \"app:latest\"\n"
                           "  odyn: odyn:1\n"
                           "  sleeve: sleeve:1\n"
                           "signature:\n"
                           "  certificate: keys/cert.pem\n"
                           "  key: /abs/key.pem\n"
                           "defaults:\n"
                           "  cpu_count: 4\n"
                           "  memory_mb: 2048\n"
                           "ingress:\n"
                           "  - listen_port: 8080\n"
                           "  - listen_port: 443\n"
                           "    tls:\n"
                           "      key_file: /etc/tls/key.pem\n"
                           "      cert_file: /etc/tls/cert.pem\n"
                           "egress:\n"
                           "  proxy_port: 10001\n"
                           "  allow:\n"
                           "    - \"*.amazonaws.com\"\n"
                           "    - \"**.example.org:443\"\n"
                           "    - 169.254.169.254\n"
                           "    - 10.0.0.0/8\n"
                           "    - \"[::1]:80\"\n"
                           "    - fd00::/8\n"
                           "  deny:\n"
                           "    - bad.example.org\n"
                           "kms_proxy:\n"
                           "  listen_port: 9999\n"
                           "  endpoints:\n"
                           "    us-east-1: kms.us-east-1.amazonaws.com\n"
                           "api:\n"
                           "  listen_port: 9000\n";

static int parse(const char *text, struct manifest **m, struct err **e)
{
	return manifest_parse("enclaver.yaml", "/proj", text, strlen(text), m, e);
}

TEST(manifest_full_reads_every_field)
{
	struct manifest *m = NULL;
	struct err *e = NULL;
	REQUIRE(parse(full, &m, &e) == 0);
	CHECK_STR_EQ(m->version, "v1");
	CHECK_STR_EQ(m->name, "example");
	CHECK_STR_EQ(m->target, "registry.example/app:enclave");
	CHECK_STR_EQ(m->source_app, "app:latest");
	CHECK_STR_EQ(m->source_odyn, "odyn:1");
	CHECK_STR_EQ(m->source_sleeve, "sleeve:1");
	CHECK_STR_EQ(m->signature_certificate, "/proj/keys/cert.pem");
	CHECK_STR_EQ(m->signature_key, "/abs/key.pem");
	CHECK_INT_EQ(m->cpu_count, 4);
	CHECK_INT_EQ(m->memory_mb, 2048);
	REQUIRE(m->n_ingress == 2);
	CHECK_INT_EQ(m->ingress[0].listen_port, 8080);
	CHECK(m->ingress[0].tls_key_file == NULL);
	CHECK_INT_EQ(m->ingress[1].listen_port, 443);
	CHECK_STR_EQ(m->ingress[1].tls_cert_file, "/etc/tls/cert.pem");
	CHECK(m->has_egress);
	CHECK_INT_EQ(m->egress_proxy_port, 10001);
	REQUIRE(m->n_egress_allow == 6);
	CHECK_STR_EQ(m->egress_allow[1], "**.example.org:443");
	REQUIRE(m->n_egress_deny == 1);
	CHECK(m->has_kms_proxy);
	CHECK_INT_EQ(m->kms_listen_port, 9999);
	REQUIRE(m->n_kms_endpoints == 1);
	CHECK_STR_EQ(m->kms_endpoints[0].region, "us-east-1");
	CHECK(m->has_api);
	CHECK_INT_EQ(m->api_listen_port, 9000);
	CHECK_INT_EQ(m->raw_len, strlen(full));
	manifest_free(m);
}

TEST(manifest_minimal_and_defaults)
{
	struct manifest *m = NULL;
	struct err *e = NULL;
	REQUIRE(parse("version: v1\nname: a\ntarget: t\nsources:\n  app: x\negress: {}\n", &m, &e) == 0);
	CHECK_INT_EQ(m->cpu_count, 0);
	CHECK(m->has_egress);
	CHECK(!manifest_egress_on(m));
	CHECK_INT_EQ(m->egress_proxy_port, 10000);
	CHECK(!m->has_api && !m->has_kms_proxy && m->n_ingress == 0);
	CHECK(m->signature_certificate == NULL);
	manifest_free(m);
}

TEST(manifest_restart_policy)
{
	struct manifest *m = NULL;
	struct err *e = NULL;
	static const char text[] = "version: v1\nname: a\ntarget: t\nsources:\n  app: x\n"
	                           "restart:\n  policy: on-failure\n  max_restarts: 5\n  backoff_ms: 250\n";
	REQUIRE(parse(text, &m, &e) == 0);
	CHECK_STR_EQ(m->restart_policy, "on-failure");
	CHECK_INT_EQ(m->restart_max, 5);
	CHECK_INT_EQ(m->restart_backoff_ms, 250);
	manifest_free(m);
}

TEST(manifest_old_names_accepted)
{
	struct manifest *m = NULL;
	struct err *e = NULL;
	REQUIRE(parse("version: v1\nname: a\ntarget: t\nsources:\n  app: x\n  supervisor: s\n  wrapper: w\n", &m, &e) ==
	        0);
	CHECK_STR_EQ(m->source_odyn, "s");
	CHECK_STR_EQ(m->source_sleeve, "w");
	manifest_free(m);
	CHECK(parse("version: v1\nname: a\ntarget: t\nsources:\n  app: x\n  supervisor: s\n  odyn: o\n", &m, &e) < 0);
	CHECK_ERR_CONTAINS(e, "given twice");
	err_free(&e);
}

/* Each bad manifest must fail with a message containing every needle. */
static void bad(struct test_ctx *t, const char *text, const char *needle1, const char *needle2)
{
	struct manifest *m = NULL;
	struct err *e = NULL;
	if (parse(text, &m, &e) == 0) {
		test_fail(t, __FILE__, __LINE__, "accepted:\n%s", text);
		manifest_free(m);
		return;
	}
	CHECK(m == NULL);
	CHECK_ERR_CONTAINS(e, needle1);
	if (needle2)
		CHECK_ERR_CONTAINS(e, needle2);
	err_free(&e);
}

#define HEAD "version: v1\nname: a\ntarget: t\nsources:\n  app: x\n"

TEST(manifest_bad_input)
{
	bad(t, "", "manifest is empty", NULL);
	bad(t, "- a\n- b\n", "enclaver.yaml:1:1", "expected a mapping");
	bad(t, "version: v1\nname: [\n", "enclaver.yaml:", NULL);
	bad(t, HEAD "colour: blue\n", "enclaver.yaml:6:1", "unknown key \"colour\"");
	bad(t, HEAD "version: v1\n", "enclaver.yaml:6:1", "duplicate key \"version\"");
	bad(t, "version: v2\nname: a\ntarget: t\nsources:\n  app: x\n", "enclaver.yaml:1:10", "unsupported version");
	bad(t, "name: a\ntarget: t\nsources:\n  app: x\n", "missing required key \"version\"", NULL);
	bad(t, "version: v1\nname: a\nsources:\n  app: x\n", "missing required key \"target\"", NULL);
	bad(t, "version: v1\nname: a\ntarget: t\nsources:\n  odyn: x\n", "enclaver.yaml:5:3",
	    "sources: missing required key \"app\"");
	bad(t, "version: v1\nname: a\ntarget: t\nsources: app\n", "enclaver.yaml:4:10", "sources: expected a mapping");
	bad(t, "version: v1\nname:\ntarget: t\nsources:\n  app: x\n", "name: expected a string, got null", NULL);
	bad(t, "version: v1\nname: [a]\ntarget: t\nsources:\n  app: x\n", "name: expected a string, got a list", NULL);
	bad(t, HEAD "sources2: {}\n", "unknown key \"sources2\"", NULL);
	bad(t, HEAD "defaults:\n  cpu_count: 0\n", "enclaver.yaml:7:14", "defaults.cpu_count: 0 is out of range 1..");
	bad(t, HEAD "defaults:\n  memory_mb: 63\n", "defaults.memory_mb: 63 is out of range 64..", NULL);
	bad(t, HEAD "defaults:\n  memory_mb: \"128\"\n", "defaults.memory_mb: expected an integer, got a string", NULL);
	bad(t, HEAD "defaults:\n  memory_mb: 12x\n", "expected an integer, got \"12x\"", NULL);
	bad(t, HEAD "defaults:\n  memory_mb: 99999999999999999999999\n", "out of range", NULL);
	bad(t, HEAD "defaults:\n  cpus: 2\n", "defaults: unknown key \"cpus\"", NULL);
	bad(t, HEAD "restart:\n  policy: always\n", "restart.policy: \"always\" is not never or on-failure", NULL);
	bad(t, HEAD "restart:\n  max_restarts: -1\n", "restart.max_restarts: -1 is out of range", NULL);
	bad(t, HEAD "restart:\n  backoff: 5\n", "restart: unknown key \"backoff\"", NULL);
	bad(t, HEAD "ingress:\n  listen_port: 80\n", "ingress: expected a list, got a mapping", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: 0\n", "ingress[0].listen_port: 0 is out of range 1..65535", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: 65536\n", "out of range 1..65535", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: -5\n", "out of range", NULL);
	bad(t, HEAD "ingress:\n  - tls: {key_file: a, cert_file: b}\n",
	    "ingress[0]: missing required key \"listen_port\"", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: 80\n    tls: {key_file: a}\n", "ingress[0].tls: needs both", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: 80\n    tls: {key_file: a, cert_file: b, ca: c}\n",
	    "unknown key \"ca\"", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: 17001\n",
	    "enclaver.yaml:7:18: ingress[0].listen_port: port 17001 is reserved", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: 80\n  - listen_port: 80\n",
	    "enclaver.yaml:8:18: ingress[1].listen_port: port 80 is already used by ingress[0].listen_port", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: 10000\negress: {allow: [a.com]}\n",
	    "enclaver.yaml:8:9: egress.proxy_port: port 10000 is already used", NULL);
	bad(t, HEAD "ingress:\n  - listen_port: 3128\negress:\n  allow: [a.com]\n  proxy_port: 3128\n",
	    "enclaver.yaml:10:15: egress.proxy_port: port 3128 is already used", NULL);
	bad(t, HEAD "api:\n  listen_port: 17000\n", "enclaver.yaml:7:16: api.listen_port: port 17000 is reserved",
	    NULL);
	bad(t, HEAD "kms_proxy:\n  listen_port: 17002\n", "enclaver.yaml:7:16: kms_proxy.listen_port: port 17002",
	    NULL);
	bad(t, HEAD "api: {}\n", "api: missing required key \"listen_port\"", NULL);
	bad(t, HEAD "kms_proxy:\n  listen_port: 80\n  endpoints:\n    us-east-1: \"bad host\"\n",
	    "kms_proxy.endpoints.us-east-1", "not a host name");
	bad(t, HEAD "kms_proxy:\n  endpoints: {}\n", "kms_proxy: missing required key \"listen_port\"", NULL);
	bad(t, HEAD "egress:\n  allow: \"*.com\"\n", "egress.allow: expected a list", NULL);
	bad(t, HEAD "egress:\n  allow:\n    - \"foo*.com\"\n", "enclaver.yaml:8:7",
	    "egress.allow[0]: \"foo*.com\" is not an IP, CIDR or domain pattern");
	bad(t, HEAD "egress:\n  deny:\n    - \"a..b\"\n", "egress.deny[0]", "empty label");
	bad(t, HEAD "egress:\n  deny:\n    - 10.0.0.0/33\n", "bad CIDR prefix", NULL);
	bad(t, HEAD "egress:\n  deny:\n    - example.com:0\n", "bad port", NULL);
	bad(t, HEAD "egress:\n  deny:\n    - [1, 2]\n", "egress.deny[0]: expected a string, got a list", NULL);
	bad(t, HEAD "signature:\n  certificate: c.pem\n", "signature: needs both certificate and key", NULL);
	bad(t, HEAD "---\nversion: v1\n", "second YAML document", NULL);
	bad(t, HEAD "? [a]\n: b\n", "a key must be a string", NULL);
	bad(t, HEAD "\"\": ~\n", "enclaver.yaml:6:1: unknown key \"\"", NULL); /* an empty key is no optional key */
	bad(t, HEAD "egres:\n", "unknown key \"egres\"", NULL);                /* nor a part of one */
}

TEST(manifest_nul_and_size_limits)
{
	struct manifest *m = NULL;
	struct err *e = NULL;
	CHECK(manifest_parse("x.yaml", ".", "version: v1\0", 12, &m, &e) < 0);
	CHECK_ERR_CONTAINS(e, "NUL byte at offset 11");
	err_free(&e);
	size_t big = MANIFEST_MAX_BYTES + 1;
	char *data = xcalloc(1, big);
	memset(data, '#', big);
	CHECK(manifest_parse("x.yaml", ".", data, big, &m, &e) < 0);
	CHECK_ERR_CONTAINS(e, "over");
	err_free(&e);
	free(data);
}

TEST(manifest_load_from_file_resolves_signature_paths)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *path = xasprintf("%s/enclaver.yaml", dir);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	REQUIRE(fd >= 0);
	const char *text = HEAD "signature:\n  certificate: c.pem\n  key: sub/k.pem\n";
	io_write_full(fd, text, strlen(text), NULL);
	close(fd);
	struct manifest *m = NULL;
	struct err *e = NULL;
	REQUIRE(manifest_load(path, &m, &e) == 0);
	_cleanup_free_ char *want = xasprintf("%s/sub/k.pem", dir);
	CHECK_STR_EQ(m->signature_key, want);
	manifest_free(m);
	_cleanup_free_ char *missing = xasprintf("%s/none.yaml", dir);
	CHECK(manifest_load(missing, &m, &e) < 0);
	CHECK_ERR_CONTAINS(e, "none.yaml");
	err_free(&e);
}

/* signature.key may name a key that is no file (docs/cli.md#signing-keys): kept as written. */
TEST(manifest_keeps_signature_key_uris)
{
	const char *dir = test_tmpdir(t);
	const char *keys[] = {"pkcs11:token=release;object=eif-signer;type=private",
			      "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"};
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *path = xasprintf("%s/enclaver.yaml", dir);
		_cleanup_free_ char *text = xasprintf(HEAD "signature:\n  certificate: c.pem\n  key: \"%s\"\n", keys[i]);
		int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		REQUIRE(fd >= 0);
		io_write_full(fd, text, strlen(text), NULL);
		close(fd);
		struct manifest *m = NULL;
		REQUIRE(manifest_load(path, &m, NULL) == 0);
		CHECK_STR_EQ(m->signature_key, keys[i]);
		_cleanup_free_ char *cert = xasprintf("%s/c.pem", dir);
		CHECK_STR_EQ(m->signature_certificate, cert);
		manifest_free(m);
	}
}

/* One parser for egress patterns: the manifest compiles them with the policy
 * code odyn and the host enforce with, so the build accepts exactly what they
 * accept, and a refusal names file, line and column. */
TEST(egress_patterns_build_accepts_what_odyn_enforces)
{
	static const char *const good[] = {"example.com", "*.example.com", "**.example.com",  "a.*.b",        "**",
	                                   "*",           "1.2.3.4",       "1.2.3.4:443",     "10.0.0.0/8",   "::1",
	                                   "fd00::/8",    "[::1]:8443",    "x_y-z.example:1", "example.com.", NULL};
	static const char *const badp[] = {
	    "",        "a..b", ".a",          "f*o.com", "***.com",   "1.2.3.4/40", "a.com:", "a.com:99999",  "a.com:0",
	    "a.com:x", "[::1", "[nothost]:1", "a b.com", "1.2.3.4/x", "a/8",        "[::1]x", "[1.2.3.4]:80", NULL};
	for (int refused = 0; refused < 2; refused++)
		for (const char *const *pat = refused ? badp : good; *pat; pat++) {
			struct egress_policy p = {0};
			struct err *pe = NULL, *me = NULL;
			bool enforcer_ok = egress_policy_add(&p, false, *pat, &pe) == 0;
			egress_policy_free(&p);
			_cleanup_free_ char *text = xasprintf(HEAD "egress:\n  allow:\n    - '%s'\n", *pat);
			struct manifest *m = NULL;
			bool build_ok = parse(text, &m, &me) == 0;
			if (enforcer_ok == (bool)refused || build_ok != enforcer_ok)
				test_fail(t, __FILE__, __LINE__, "\"%s\": odyn %s it, the build %s it", *pat,
				          enforcer_ok ? "accepts" : "refuses", build_ok ? "accepts" : "refuses");
			else if (refused) {
				CHECK_ERR_CONTAINS(me, "enclaver.yaml:8:7: egress.allow[0]: ");
				CHECK_ERR_CONTAINS(me, pe->msg); /* the enforcer's own reason */
			}
			manifest_free(m);
			err_free(&pe);
			err_free(&me);
		}
}

/* Enclaver reads an empty value of an optional key as "not set" (serde's Option). */
TEST(manifest_empty_values_are_not_set)
{
	static const char *const texts[] = {
	    HEAD "egress:\n",
	    HEAD "egress: ~\n",
	    HEAD "egress:\n  allow:\n",
	    HEAD "egress:\n  allow:\n  deny: ~\n  proxy_port:\n",
	    HEAD "ingress: ~\n",
	    HEAD "ingress:\n",
	    HEAD "defaults:\n",
	    HEAD "defaults:\n  cpu_count:\n  memory_mb: ~\n",
	    HEAD "signature:\n",
	    HEAD "kms_proxy: ~\n",
	    HEAD "kms_proxy:\n  listen_port: 9999\n  endpoints:\n",
	    HEAD "api:\n",
	    HEAD "restart:\n",
	    HEAD "spire:\n",
	    HEAD "  odyn:\n  sleeve: ~\n",
	    HEAD "ingress:\n  - listen_port: 443\n    tls:\n",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct manifest *m = NULL;
		struct err *e = NULL;
		if (parse(texts[i], &m, &e) < 0) {
			test_fail(t, __FILE__, __LINE__, "refused:\n%s\n%s", texts[i], e->msg);
			err_free(&e);
			continue;
		}
		CHECK(!manifest_egress_on(m));
		CHECK(m->n_egress_allow == 0 && m->n_egress_deny == 0 && m->egress_proxy_port == 10000);
		CHECK(m->cpu_count == 0 && m->memory_mb == 0);
		CHECK(m->signature_certificate == NULL && m->source_odyn == NULL && m->source_sleeve == NULL);
		CHECK(!m->has_api && m->n_kms_endpoints == 0 && m->restart_policy == NULL);
		CHECK(m->n_ingress == 0 || (m->n_ingress == 1 && m->ingress[0].tls_cert_file == NULL));
		manifest_free(m);
	}
	/* A required key stays required: empty is not a value for it. */
	bad(t, HEAD "ingress:\n  - listen_port:\n", "enclaver.yaml:7:17",
	    "ingress[0].listen_port: expected an integer, got null");
	bad(t, HEAD "api:\n  listen_port: ~\n", "api.listen_port: expected an integer, got null", NULL);
	bad(t, "version: v1\nname: a\ntarget: t\nsources:\n", "sources: expected a mapping, got null", NULL);
	bad(t, HEAD "signature:\n  certificate:\n  key: k\n", "signature.certificate: expected a string, got null",
	    NULL);
}

/* Egress is on only when allow has entries (Enclaver's odyn starts no proxy and sets no
 * http_proxy otherwise, even with a deny list); the deny list is still checked. */
TEST(manifest_egress_on_only_with_allow_entries)
{
	static const struct {
		const char *text;
		bool on;
	} cases[] = {
	    {HEAD "egress:\n  deny: [bad.example]\n", false},
	    {HEAD "egress:\n  allow: []\n  deny: [bad.example]\n", false},
	    {HEAD "egress:\n  proxy_port: 3128\n", false},
	    {HEAD "egress:\n  allow: [good.example]\n", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct manifest *m = NULL;
		struct err *e = NULL;
		REQUIRE(parse(cases[i].text, &m, &e) == 0);
		CHECK(manifest_egress_on(m) == cases[i].on);
		manifest_free(m);
	}
	/* Off: its proxy port is not taken, so an ingress port may use it. */
	struct manifest *m = NULL;
	struct err *e = NULL;
	CHECK(parse(HEAD "ingress: [{listen_port: 10000}]\negress: {deny: [x.example]}\n", &m, &e) == 0);
	manifest_free(m);
	err_free(&e);
	bad(t, HEAD "egress:\n  deny: ['a..b']\n", "enclaver.yaml:7:10: egress.deny[0]", "empty label");
}

TEST(manifest_spire_refused)
{
	bad(t,
	    HEAD "spire:\n  server_addr: spire:8081\n  ca_cert: ca.pem\n  trust_domain: example.org\n"
	         "  svid_dir: /run/svid\n",
	    "enclaver.yaml:7:3: spire: SPIFFE workload identity via `spire` is not supported yet", NULL);
}

/* Every manifest in Enclaver's repository and docs (testdata/upstream-manifests/SOURCES.md says
 * where each came from) parses, but those with a spire section, refused with that reason. */
TEST(manifest_upstream_manifests)
{
	const char *dir = test_data("upstream-manifests");
	DIR *d = opendir(dir);
	REQUIRE(d != NULL);
	size_t n = 0, spire = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 5, ".yaml") != 0)
			continue;
		n++;
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
		struct manifest *m = NULL;
		struct err *e = NULL;
		int rc = manifest_load(path, &m, &e);
		if (strstr(de->d_name, "spire")) {
			spire++;
			if (rc == 0)
				test_fail(t, __FILE__, __LINE__, "%s: spire section accepted", path);
			else
				CHECK_ERR_CONTAINS(e, "SPIFFE workload identity via `spire` is not supported yet");
		} else if (rc < 0) {
			test_fail(t, __FILE__, __LINE__, "%s", e->msg);
		}
		manifest_free(m);
		err_free(&e);
	}
	closedir(d);
	CHECK(n >= 8);
	CHECK(spire >= 2);
}

TEST(manifest_load_from_stdin)
{
	int p[2];
	REQUIRE(pipe(p) == 0);
	const char *text = HEAD "signature:\n  certificate: c.pem\n  key: k.pem\n";
	io_write_full(p[1], text, strlen(text), NULL);
	close(p[1]);
	int saved = dup(STDIN_FILENO);
	dup2(p[0], STDIN_FILENO);
	close(p[0]);
	struct manifest *m = NULL;
	struct err *e = NULL;
	int rc = manifest_load("-", &m, &e);
	dup2(saved, STDIN_FILENO);
	close(saved);
	REQUIRE(rc == 0);
	CHECK_STR_EQ(m->path, "<stdin>");
	CHECK_STR_EQ(m->signature_certificate, "./c.pem");
	manifest_free(m);
}

/* Issue 14 item 4: libyaml's time grows with the square of flow nesting (100,000 `[` took 27 s):
 * nesting past MANIFEST_MAX_FLOW_DEPTH is refused, naming file, line and column, before
 * libyaml parses it; brackets inside quoted scalars, comments and block plain scalars are not
 * nesting, and a `]` inside a quoted scalar closes nothing. */
static char *nested(const char *prefix, const char *open, const char *close, size_t n)
{
	struct buf b = {0};
	buf_puts(&b, HEAD);
	buf_puts(&b, prefix);
	for (size_t i = 0; i < n; i++)
		buf_puts(&b, open);
	for (size_t i = 0; i < n; i++)
		buf_puts(&b, close);
	buf_putc(&b, '\n');
	buf_str(&b);
	return b.data;
}

TEST(manifest_flow_nesting_capped)
{
	_cleanup_free_ char *at_limit = nested("egress:\n  allow: ", "[", "]", MANIFEST_MAX_FLOW_DEPTH);
	bad(t, at_limit, "enclaver.yaml:7:", "expected a string, got a list"); /* the schema's error, not the cap */
	_cleanup_free_ char *over = nested("egress:\n  allow: ", "[", "]", MANIFEST_MAX_FLOW_DEPTH + 1);
	bad(t, over, "enclaver.yaml:7:74: flow collections ([...] or {...}) nested deeper than 64", NULL);
	_cleanup_free_ char *maps = nested("egress: ", "{a: ", "}", 100000);
	bad(t, maps, "enclaver.yaml:6:", "nested deeper than 64");
	_cleanup_free_ char *quoted = nested("egress:\n  allow: ", "[\"]\", ", "]", 100000);
	bad(t, quoted, "enclaver.yaml:7:", "nested deeper than 64");
	_cleanup_free_ char *seqs = nested("egress:\n  allow: ", "[", "]", 100000);
	bad(t, seqs, "enclaver.yaml:7:", "nested deeper than 64");

	/* Not nesting: brackets in a quoted name, a comment and a block plain scalar. */
	_cleanup_buf_ struct buf ok = {0};
	buf_puts(&ok, "version: v1\nname: '");
	for (int i = 0; i < 100; i++)
		buf_puts(&ok, "[{");
	buf_puts(&ok, "'\ntarget: t[[[[[[\nsources: # ");
	for (int i = 0; i < 100; i++)
		buf_putc(&ok, '[');
	buf_puts(&ok, "\n  app: x\n");
	struct manifest *m = NULL;
	struct err *e = NULL;
	CHECK(parse(buf_str(&ok), &m, &e) == 0);
	if (e)
		test_fail(t, __FILE__, __LINE__, "%s", e->msg);
	err_free(&e);
	manifest_free(m);
}
