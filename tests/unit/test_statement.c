/* test_statement: DSSE envelopes (keys/dsse.c) made with P-256 and P-384 keys and verified,
 * bad envelopes refused with the field named; the build statement (builder/statement.c) made
 * deterministically and read back, bad statements refused with the field named. */
#include <openssl/ec.h>
#include <openssl/pem.h>

#include "builder/builder.h"
#include "builder/statement.h"
#include "keys/dsse.h"
#include "keys/keys.h"
#include "tests/harness.h"

/* A new EC key on curve written as PEM (private, and its public half) in dir. */
static void make_key(const char *dir, const char *name, const char *curve)
{
	EVP_PKEY *k = EVP_EC_gen(curve);
	_cleanup_free_ char *priv = xasprintf("%s/%s.pem", dir, name), *pub = xasprintf("%s/%s.pub", dir, name);
	FILE *f = fopen(priv, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	f = fopen(pub, "w");
	PEM_write_PUBKEY(f, k);
	fclose(f);
	EVP_PKEY_free(k);
}

static struct sign_key *open_key(const char *dir, const char *name)
{
	_cleanup_free_ char *p = xasprintf("%s/%s.pem", dir, name);
	struct sign_key *k = NULL;
	struct err *e = NULL;
	if (sign_key_open(p, &k, &e) < 0)
		err_free(&e);
	return k;
}

static EVP_PKEY *open_pub(const char *dir, const char *name)
{
	_cleanup_free_ char *p = xasprintf("%s/%s.pub", dir, name);
	EVP_PKEY *k = NULL;
	struct err *e = NULL;
	if (keys_public_key_load(p, &k, &e) < 0)
		err_free(&e);
	return k;
}

/* Parses then verifies text; the error (NULL on success) for the caller to check. */
static struct err *parse_verify(const char *text, EVP_PKEY *pub)
{
	struct dsse_envelope env;
	struct err *e = NULL;
	if (dsse_envelope_parse(text, strlen(text), &env, &e) == 0)
		dsse_envelope_verify(&env, DSSE_PAYLOAD_TYPE_INTOTO, pub, NULL, &e);
	dsse_envelope_free(&env);
	return e;
}

TEST(dsse_pae_matches_the_spec)
{
	/* The DSSE protocol's own example. */
	_cleanup_buf_ struct buf b = {0};
	dsse_pae("http://example.com/HelloWorld", "hello world", 11, &b);
	CHECK_STR_EQ(buf_str(&b), "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
}

TEST(dsse_sign_and_verify_p256_p384)
{
	const char *dir = test_tmpdir(t);
	make_key(dir, "a", "P-256");
	make_key(dir, "b", "P-384");
	make_key(dir, "other", "P-256");
	const char *names[] = {"a", "b"};
	for (size_t i = 0; i < 2; i++) {
		struct sign_key *k = open_key(dir, names[i]);
		EVP_PKEY *pub = open_pub(dir, names[i]), *other = open_pub(dir, "other");
		REQUIRE(k && pub && other);
		char *env = NULL;
		struct err *e = NULL;
		REQUIRE(dsse_envelope_make(DSSE_PAYLOAD_TYPE_INTOTO, "{\"x\":1}", 7, k, &env, &e) == 0);
		struct err *ok = parse_verify(env, pub);
		CHECK(ok == NULL);
		err_free(&ok);
		/* Another key's public half: refused. */
		struct err *bad = parse_verify(env, other);
		CHECK_ERR_CONTAINS(bad, "none of its 1 signature(s) verifies");
		err_free(&bad);
		/* The private key file verifies too (its public half). */
		_cleanup_free_ char *priv = xasprintf("%s/%s.pem", dir, names[i]);
		EVP_PKEY *pp = NULL;
		CHECK(keys_public_key_load(priv, &pp, &e) == 0);
		EVP_PKEY_free(pp);
		free(env);
		sign_key_free(k);
		EVP_PKEY_free(pub);
		EVP_PKEY_free(other);
	}
}

TEST(dsse_bad_envelopes)
{
	const char *dir = test_tmpdir(t);
	make_key(dir, "a", "P-256");
	struct sign_key *k = open_key(dir, "a");
	EVP_PKEY *pub = open_pub(dir, "a");
	REQUIRE(k && pub);
	const char *payload = "{\"predicateType\":\"x\"}";
	char *env = NULL;
	struct err *e = NULL;
	REQUIRE(dsse_envelope_make(DSSE_PAYLOAD_TYPE_INTOTO, payload, strlen(payload), k, &env, &e) == 0);
	json_t *doc = json_loads(env, 0, NULL);
	REQUIRE(doc);
	const char *sig =
	    json_string_value(json_object_get(json_array_get(json_object_get(doc, "signatures"), 0), "sig"));
	const char *p64 = json_string_value(json_object_get(doc, "payload"));
	_cleanup_free_ char *other_payload = base64_encode("{\"predicateType\":\"y\"}", strlen(payload));
	struct {
		const char *text;
		const char *want;
	} cases[] = {
	    {"not json", "DSSE envelope: not JSON"},
	    {"[]", "not a JSON object"},
	    {"{\"payload\":\"e30=\",\"signatures\":[]}", "payloadType: missing"},
	    {"{\"payloadType\":7,\"payload\":\"e30=\",\"signatures\":[]}", "payloadType: not a string"},
	    {"{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30\",\"signatures\":[]}",
	     "payload: not base64"},
	    {"{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\"}", "signatures: missing"},
	    {"{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\",\"signatures\":{}}",
	     "signatures: not an array"},
	    {"{\"payloadType\":\"application/"
	     "vnd.in-toto+json\",\"payload\":\"e30=\",\"signatures\":[{\"sig\":\"!!\"}]}",
	     "signatures[0].sig: not base64"},
	    {"{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\",\"signatures\":[{\"sig\":\"\"}]}",
	     "signatures[0].sig: empty"},
	    {"{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\",\"signatures\":[{\"keyid\":1,"
	     "\"sig\":\"AA==\"}]}",
	     "signatures[0].keyid: not a string"},
	    {"{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\",\"payload\":\"e30=\","
	     "\"signatures\":[]}",
	     "duplicate"},
	    {"{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\",\"signatures\":[]}",
	     "UNSIGNED (no signatures)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct err *bad = parse_verify(cases[i].text, pub);
		CHECK_ERR_CONTAINS(bad, cases[i].want);
		err_free(&bad);
	}
	/* The right signature over a changed payload; the right payload under another type. */
	_cleanup_free_ char *tampered = xasprintf(
	    "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"%s\",\"signatures\":[{\"sig\":\"%s\"}]}",
	    other_payload, sig);
	struct err *bad = parse_verify(tampered, pub);
	CHECK_ERR_CONTAINS(bad, "none of its 1 signature(s) verifies");
	err_free(&bad);
	_cleanup_free_ char *retyped = xasprintf(
	    "{\"payloadType\":\"text/plain\",\"payload\":\"%s\",\"signatures\":[{\"sig\":\"%s\"}]}", p64, sig);
	bad = parse_verify(retyped, pub);
	CHECK_ERR_CONTAINS(bad, "payloadType is \"text/plain\"");
	err_free(&bad);
	/* The unsigned envelope a build without a key writes parses, and is refused as UNSIGNED. */
	char *unsigned_env = NULL;
	REQUIRE(dsse_envelope_make(DSSE_PAYLOAD_TYPE_INTOTO, payload, strlen(payload), NULL, &unsigned_env, &e) == 0);
	CHECK(strstr(unsigned_env, "\"signatures\":[]") != NULL);
	bad = parse_verify(unsigned_env, pub);
	CHECK_ERR_CONTAINS(bad, "UNSIGNED");
	err_free(&bad);
	/* Not a key at all. */
	_cleanup_free_ char *junk = xasprintf("%s/junk.pub", dir);
	test_write_text(dir, "junk.pub", "hello\n");
	EVP_PKEY *jk = NULL;
	CHECK(keys_public_key_load(junk, &jk, &e) < 0);
	CHECK_ERR_CONTAINS(e, "not a PEM public key, certificate or private key");
	err_free(&e);
	free(unsigned_env);
	free(env);
	json_decref(doc);
	sign_key_free(k);
	EVP_PKEY_free(pub);
}

/* A statement spec with fixed inputs. */
static char *sample_statement(bool pcr8, int64_t sde)
{
	struct eif_measurements m = {.alg = EIF_HASH_SHA384, .has_pcr8 = pcr8};
	memset(m.pcr0, 0x11, 48);
	memset(m.pcr1, 0x22, 48);
	memset(m.pcr2, 0x33, 48);
	memset(m.pcr8, 0x88, 48);
	json_t *files = json_pack("{s:s}", "bzImage",
	                          "sha256:"
	                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	const char *d = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
	struct bld_statement_spec s = {
	    .subject_name = "127.0.0.1:5000/app",
	    .subject_digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111",
	    .platform = "linux/amd64",
	    .app_ref = "docker://127.0.0.1:5000/src:1",
	    .app_digest = d,
	    .app_config_digest = d,
	    .odyn_source = BLD_ODYN_FILE,
	    .odyn_digest = d,
	    .kernel_digest = d,
	    .kernel_files = files,
	    .kernel_dir = "/k",
	    .kernel_version = "6.12",
	    .manifest_data = "version: v1\nname: x\n",
	    .manifest_len = 20,
	    .source_date_epoch = sde,
	    .eif_sha256 = d,
	    .eif_sha384 =
	        "sha384:"
	        "222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222",
	    .measurements = &m,
	};
	char *out = NULL;
	struct err *e = NULL;
	if (bld_statement_make(&s, &out, &e) < 0)
		err_free(&e);
	json_decref(files);
	return out;
}

TEST(statement_round_trip_and_determinism)
{
	_cleanup_free_ char *a = sample_statement(true, 1700000000), *b = sample_statement(true, 1700000000);
	REQUIRE(a && b);
	CHECK_STR_EQ(a, b);
	CHECK(strstr(a, "\"startedOn\":\"2023-11-14T22:13:20Z\"") != NULL);
	struct bld_statement s;
	struct err *e = NULL;
	REQUIRE(bld_statement_parse(a, strlen(a), &s, &e) == 0);
	CHECK_STR_EQ(s.subject_name, "127.0.0.1:5000/app");
	CHECK_STR_EQ(s.subject_digest, "sha256:1111111111111111111111111111111111111111111111111111111111111111");
	CHECK_STR_EQ(s.platform, "linux/amd64");
	CHECK_INT_EQ(s.source_date_epoch, 1700000000);
	REQUIRE(s.app && s.odyn && s.kernel && s.manifest);
	CHECK(s.sleeve == NULL && s.runtime == NULL);
	CHECK_STR_EQ(s.app->uri, "docker://127.0.0.1:5000/src:1");
	CHECK_INT_EQ(s.manifest->content_len, 20);
	CHECK(memcmp(s.manifest->content, "version: v1\nname: x\n", 20) == 0);
	CHECK(s.measurements.has_pcr8);
	CHECK(s.measurements.pcr0[0] == 0x11 && s.measurements.pcr8[47] == 0x88);
	CHECK(str_has_prefix(s.eif_sha384, "sha384:2222"));
	bld_statement_free(&s);
	/* Unsigned EIF, no SOURCE_DATE_EPOCH: no pcr8, null epoch, no startedOn. */
	_cleanup_free_ char *c = sample_statement(false, -1);
	REQUIRE(c);
	CHECK(strstr(c, "pcr8") == NULL && strstr(c, "startedOn") == NULL);
	REQUIRE(bld_statement_parse(c, strlen(c), &s, &e) == 0);
	CHECK(!s.measurements.has_pcr8);
	CHECK_INT_EQ(s.source_date_epoch, -1);
	bld_statement_free(&s);
}

/* The sample statement with `from` replaced by `to` (once). */
static char *edited(const char *text, const char *from, const char *to)
{
	const char *p = strstr(text, from);
	if (!p)
		return NULL;
	return xasprintf("%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
}

TEST(statement_bad_fields_are_named)
{
	_cleanup_free_ char *a = sample_statement(true, 5);
	REQUIRE(a);
	struct {
		const char *from, *to, *want;
	} cases[] = {
	    {"\"_type\":\"https://in-toto.io/Statement/v1\"", "\"_type\":\"https://in-toto.io/Statement/v0.1\"",
	     "_type: \"https://in-toto.io/Statement/v0.1\", not"},
	    {"\"predicateType\":\"https://slsa.dev/provenance/v1\"", "\"predicateType\":7",
	     "predicateType: not a string"},
	    {"\"sha256\":\"1111", "\"sha256\":\"X111", "subject[0].digest.sha256: not 64 lowercase hex digits"},
	    {"\"buildType\":\"urn", "\"buildType\":\"xurn", "predicate.buildDefinition.buildType:"},
	    {"\"name\":\"enclaver.yaml\"", "\"name\":\"other\"", "resolvedDependencies: no \"enclaver.yaml\""},
	    {"\"name\":\"odyn\"", "\"name\":\"app\"", "resolvedDependencies[1].name: a second \"app\""},
	    {"\"content\":\"dmVy", "\"content\":\"dmVz", "resolvedDependencies[3].content: its digest is"},
	    {"\"content\":\"dmVy", "\"content\":\"?mVy", "resolvedDependencies[3].content: not base64"},
	    {"\"pcr0\":\"1111", "\"pcr0\":\"111", "byproducts[0].annotations.pcr0: not a SHA-384 PCR"},
	    {"\"pcr1\":", "\"pcrX\":", "byproducts[0].annotations.pcr1: missing"},
	    {"\"SOURCE_DATE_EPOCH\":5", "\"SOURCE_DATE_EPOCH\":\"5\"",
	     "internalParameters.SOURCE_DATE_EPOCH: not an integer"},
	    {"\"SOURCE_DATE_EPOCH\":5", "\"SOURCE_DATE_EPOCH\":-5", "SOURCE_DATE_EPOCH: negative"},
	    {"\"name\":\"application.eif\"", "\"name\":\"x.eif\"", "byproducts: no \"application.eif\""},
	    {"\"sha384\":\"2222", "\"sha384\":\"222", "byproducts[0].digest.sha384: not 96"},
	    {"{\"_type\"", "[{\"_type\"", "not JSON"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		_cleanup_free_ char *bad = edited(a, cases[i].from, cases[i].to);
		if (bad == NULL) {
			test_fail(t, __FILE__, __LINE__, "case %zu: \"%s\" not in the sample", i, cases[i].from);
			continue;
		}
		struct bld_statement s;
		struct err *e = NULL;
		CHECK(bld_statement_parse(bad, strlen(bad), &s, &e) < 0);
		CHECK_ERR_CONTAINS(e, cases[i].want);
		err_free(&e);
		bld_statement_free(&s);
	}
}

TEST(statement_open_verifies_then_parses)
{
	const char *dir = test_tmpdir(t);
	make_key(dir, "a", "P-256");
	make_key(dir, "b", "P-256");
	struct sign_key *k = open_key(dir, "a");
	EVP_PKEY *pub = open_pub(dir, "a"), *other = open_pub(dir, "b");
	_cleanup_free_ char *stmt = sample_statement(true, 5);
	REQUIRE(k && pub && other && stmt);
	char *signed_env = NULL, *unsigned_env = NULL;
	struct err *e = NULL;
	REQUIRE(bld_statement_envelope(stmt, k, &signed_env, &e) == 0);
	REQUIRE(bld_statement_envelope(stmt, NULL, &unsigned_env, &e) == 0);
	struct bld_statement s;
	CHECK(bld_statement_open(signed_env, strlen(signed_env), pub, &s, &e) == 0);
	CHECK_STR_EQ(s.subject_name, "127.0.0.1:5000/app");
	bld_statement_free(&s);
	CHECK(bld_statement_open(signed_env, strlen(signed_env), other, &s, &e) < 0);
	CHECK_ERR_CONTAINS(e, "none of its 1 signature(s) verifies");
	err_free(&e);
	bld_statement_free(&s);
	/* Unsigned: read without a key (nothing in it trusted), refused with one. */
	CHECK(bld_statement_open(unsigned_env, strlen(unsigned_env), NULL, &s, &e) == 0);
	CHECK(s.measurements.has_pcr8);
	bld_statement_free(&s);
	CHECK(bld_statement_open(unsigned_env, strlen(unsigned_env), pub, &s, &e) < 0);
	CHECK_ERR_CONTAINS(e, "UNSIGNED");
	err_free(&e);
	bld_statement_free(&s);
	/* A signed envelope whose statement is not ours: the statement's field is named. */
	char *odd = NULL;
	REQUIRE(dsse_envelope_make(DSSE_PAYLOAD_TYPE_INTOTO, "{\"_type\":1}", 11, k, &odd, &e) == 0);
	CHECK(bld_statement_open(odd, strlen(odd), pub, &s, &e) < 0);
	CHECK_ERR_CONTAINS(e, "statement: _type: not a string");
	err_free(&e);
	bld_statement_free(&s);
	free(odd);
	free(signed_env);
	free(unsigned_env);
	sign_key_free(k);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(other);
}
