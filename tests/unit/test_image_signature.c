/* test_image_signature: what `enclaver verify` reads from a registry before trusting it: the
 * simple-signing payload (containers/image's strict rules, each refusal naming the field) and
 * the signature check with a public key opened from a PEM public key, certificate or private key. */
#include <errno.h>

#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "builder/builder.h"
#include "keys/keys.h"
#include "tests/harness.h"

#define D64 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Parses text; returns the error message (caller frees), or NULL when it parsed. */
static char *parse_error(const char *text, struct bld_simple_signing *p)
{
	struct err *e = NULL;
	if (bld_simple_signing_parse(text, strlen(text), p, &e) == 0)
		return NULL;
	char *msg = xstrdup(e->msg);
	err_free(&e);
	return msg;
}

TEST(payload_round_trip)
{
	_cleanup_free_ char *text = bld_simple_signing_payload("127.0.0.1:5000/team/app", D64);
	struct bld_simple_signing p;
	_cleanup_free_ char *msg = parse_error(text, &p);
	REQUIRE(msg == NULL);
	CHECK(strcmp(p.digest, D64) == 0);
	CHECK(strcmp(p.reference, "127.0.0.1:5000/team/app") == 0);
	bld_simple_signing_free(&p);
}

TEST(payload_optional_as_other_signers_write_it)
{
	/* containers/image writes creator and timestamp; cosign -a adds annotations of its own. */
	static const char *const ok_cases[] = {
	    "{\"critical\":{\"identity\":{\"docker-reference\":\"r/a\"},\"image\":{\"docker-manifest-digest\":\"" D64
	    "\"},\"type\":\"cosign container image signature\"},\"optional\":{\"creator\":\"containers/image 5\","
	    "\"timestamp\":1700000000,\"team\":\"x\"}}",
	    "{\"optional\":{\"timestamp\":1.7e9},\"critical\":{\"type\":\"cosign container image signature\","
	    "\"image\":{\"docker-manifest-digest\":\"" D64 "\"},\"identity\":{\"docker-reference\":\"r/a:v1\"}}}",
	};
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		struct bld_simple_signing p;
		_cleanup_free_ char *msg = parse_error(ok_cases[i], &p);
		if (msg) {
			test_fail(t, __FILE__, __LINE__, "case %zu: %s", i, msg);
			continue;
		}
		CHECK(strcmp(p.digest, D64) == 0);
		bld_simple_signing_free(&p);
	}
}

#define CRIT(type, image, identity)                                                                                    \
	"{\"critical\":{\"type\":" type ",\"image\":" image ",\"identity\":" identity "},\"optional\":null}"
#define GOOD_TYPE  "\"cosign container image signature\""
#define GOOD_IMAGE "{\"docker-manifest-digest\":\"" D64 "\"}"
#define GOOD_ID    "{\"docker-reference\":\"r/a\"}"

TEST(payload_refusals_name_the_field)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"", "simple-signing payload: byte 0"},
	    {"{\"critical\":", "simple-signing payload: byte"},
	    {"[1]", "the payload: not a JSON object"},
	    {"{\"optional\":null}", "the payload: no \"critical\""},
	    {"{\"critical\":{}}", "the payload: no \"optional\""},
	    {"{\"critical\":{},\"optional\":null,\"extra\":1}", "the payload: unknown field \"extra\""},
	    {"{\"critical\":{},\"critical\":{},\"optional\":null}", "duplicate"},
	    {"{\"critical\":[],\"optional\":null}", "critical: not a JSON object"},
	    {"{\"critical\":{},\"optional\":7}", "optional: neither null nor an object"},
	    {"{\"critical\":{},\"optional\":{\"creator\":1}}", "optional.creator: not a string"},
	    {"{\"critical\":{},\"optional\":{\"timestamp\":1.5}}", "optional.timestamp: not an integer"},
	    {"{\"critical\":{},\"optional\":{\"timestamp\":1e300}}", "optional.timestamp: not an integer"},
	    {CRIT(GOOD_TYPE, GOOD_IMAGE, GOOD_ID) "x", "simple-signing payload: byte"},
	    {"{\"critical\":{\"type\":" GOOD_TYPE ",\"image\":" GOOD_IMAGE "},\"optional\":null}",
	     "critical: no \"identity\""},
	    {CRIT("\"atomic container signature\"", GOOD_IMAGE, GOOD_ID),
	     "critical.type \"atomic container signature\""},
	    {CRIT("3", GOOD_IMAGE, GOOD_ID), "critical.type: not a string"},
	    {CRIT(GOOD_TYPE, "{}", GOOD_ID), "critical.image: no \"docker-manifest-digest\""},
	    {CRIT(GOOD_TYPE, "{\"docker-manifest-digest\":\"" D64 "\",\"x\":1}", GOOD_ID),
	     "critical.image: unknown field \"x\""},
	    {CRIT(GOOD_TYPE, "{\"docker-manifest-digest\":\"sha256:abc\"}", GOOD_ID),
	     "critical.image.docker-manifest-digest"},
	    {CRIT(GOOD_TYPE, "{\"docker-manifest-digest\":null}", GOOD_ID),
	     "critical.image.docker-manifest-digest: not a string"},
	    {CRIT(GOOD_TYPE, GOOD_IMAGE, "{\"docker-reference\":[]}"),
	     "critical.identity.docker-reference: not a string"},
	    {CRIT(GOOD_TYPE, GOOD_IMAGE, "\"r/a\""), "critical.identity: not a JSON object"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bld_simple_signing p;
		_cleanup_free_ char *msg = parse_error(cases[i].in, &p);
		if (!msg) {
			test_fail(t, __FILE__, __LINE__, "case %zu parsed: %s", i, cases[i].in);
			bld_simple_signing_free(&p);
		} else if (!strstr(msg, cases[i].want)) {
			test_fail(t, __FILE__, __LINE__, "case %zu: \"%s\" lacks \"%s\"", i, msg, cases[i].want);
		} else {
			CHECK(p.digest == NULL && p.reference == NULL);
		}
	}
}

/* ---------------------------------------------------------------- keys */
static EVP_PKEY *ec_key(void)
{
	return EVP_EC_gen("P-256");
}

static void write_pem(const char *path, EVP_PKEY *k, bool private_key, bool cert)
{
	FILE *f = fopen(path, "w");
	if (cert) {
		X509 *x = X509_new();
		X509_set_version(x, 2);
		ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
		X509_gmtime_adj(X509_getm_notBefore(x), 0);
		X509_gmtime_adj(X509_getm_notAfter(x), 3600);
		X509_set_pubkey(x, k);
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"t", -1,
		                           -1, 0);
		X509_set_issuer_name(x, X509_get_subject_name(x));
		X509_sign(x, k, EVP_sha256());
		PEM_write_X509(f, x);
		X509_free(x);
	} else if (private_key) {
		PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	} else {
		PEM_write_PUBKEY(f, k);
	}
	fclose(f);
}

static void sign(EVP_PKEY *k, const char *msg, struct buf *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t len = 0;
	EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k);
	EVP_DigestSign(ctx, NULL, &len, (const uint8_t *)msg, strlen(msg));
	uint8_t *out = xmalloc(len);
	EVP_DigestSign(ctx, out, &len, (const uint8_t *)msg, strlen(msg));
	buf_append(sig, out, len);
	free(out);
	EVP_MD_CTX_free(ctx);
}

/* True when sig verifies over msg (SHA-256) with the key at path (keys_public_open). */
static bool verify_with(const char *path, const char *msg, const struct buf *sig)
{
	EVP_PKEY *pub = NULL;
	struct err *e = NULL;
	uint8_t md[32];
	SHA256((const uint8_t *)msg, strlen(msg), md);
	bool ok = keys_public_open(path, &pub, &e) == 0 &&
	          keys_verify_digest(pub, EVP_sha256(), md, sizeof(md), (const uint8_t *)sig->data, sig->len);
	err_free(&e);
	EVP_PKEY_free(pub);
	return ok;
}

TEST(signature_checks_with_each_kind_of_public_key)
{
	const char *dir = test_tmpdir(t);
	EVP_PKEY *k = ec_key(), *other = ec_key();
	REQUIRE(k && other);
	_cleanup_free_ char *pub = xasprintf("%s/k.pub", dir), *priv = xasprintf("%s/k.pem", dir),
	                    *crt = xasprintf("%s/k.crt", dir), *opub = xasprintf("%s/o.pub", dir);
	write_pem(pub, k, false, false);
	write_pem(priv, k, true, false);
	write_pem(crt, k, false, true);
	write_pem(opub, other, false, false);
	_cleanup_buf_ struct buf sig = {0};
	sign(k, "payload", &sig);
	CHECK(verify_with(pub, "payload", &sig));
	CHECK(verify_with(priv, "payload", &sig));
	CHECK(verify_with(crt, "payload", &sig));
	CHECK(!verify_with(pub, "payloaD", &sig));
	CHECK(!verify_with(opub, "payload", &sig));
	struct buf junk = {0};
	buf_append(&junk, "\x30\x03\x02\x01", 4);
	CHECK(!verify_with(pub, "payload", &junk));
	buf_free(&junk);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

TEST(public_key_refusals_name_the_file)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *junk = xasprintf("%s/junk.pem", dir), *bad = xasprintf("%s/bad.pub", dir),
	                    *none = xasprintf("%s/none.pub", dir);
	test_write_text(dir, "junk.pem", "not a key\n");
	test_write_text(dir, "bad.pub", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
	const char *paths[] = {junk, bad, none};
	for (size_t i = 0; i < 3; i++) {
		EVP_PKEY *k = NULL;
		struct err *e = NULL;
		CHECK(keys_public_open(paths[i], &k, &e) < 0);
		CHECK(k == NULL);
		if (e && !strstr(e->msg, paths[i]))
			test_fail(t, __FILE__, __LINE__, "\"%s\" does not name %s", e->msg, paths[i]);
		err_free(&e);
	}
}
