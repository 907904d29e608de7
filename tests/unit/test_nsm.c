/* test_nsm: the NSM client's CBOR: requests byte for byte (the expected
 * bytes are written out by hand from RFC 8949 and nsm-api's serde shapes),
 * responses of every kind, bad responses with errors naming the field; the
 * attestation API's request body; strict base64. */
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "odyn/odyn.h"
#include "tests/harness.h"
#include "common/json.h"
#include "common/cose.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static bool buf_is(const struct buf *b, const uint8_t *want, size_t n)
{
	return b->len == n && memcmp(b->data, want, n) == 0;
}

TEST(nsm_requests)
{
	_cleanup_buf_ struct buf b = {0};
	nsm_request_get_random(&b);
	static const uint8_t get_random[] = {0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm'};
	CHECK(buf_is(&b, get_random, sizeof(get_random)));

	b.len = 0;
	nsm_request_describe_nsm(&b);
	static const uint8_t describe[] = {0x6b, 'D', 'e', 's', 'c', 'r', 'i', 'b', 'e', 'N', 'S', 'M'};
	CHECK(buf_is(&b, describe, sizeof(describe)));

	/* {"DescribePCR": {"index": 300}}: 300 needs a two-byte argument (0x19 01 2c) */
	b.len = 0;
	nsm_request_describe_pcr(&b, 300);
	static const uint8_t pcr[] = {0xa1, 0x6b, 'D',  'e', 's', 'c', 'r', 'i', 'b',  'e',  'P', 'C',
	                              'R',  0xa1, 0x65, 'i', 'n', 'd', 'e', 'x', 0x19, 0x01, 0x2c};
	CHECK(buf_is(&b, pcr, sizeof(pcr)));

	/* {"Attestation": {"user_data": h'0102', "nonce": null, "public_key": null}} */
	b.len = 0;
	struct err *e = NULL;
	static const uint8_t ud[] = {1, 2};
	struct nsm_attest_req req = {.user_data = ud, .user_data_len = 2};
	REQUIRE(nsm_request_attestation(&b, &req, &e) == 0);
	static const uint8_t att[] = {0xa1, 0x6b, 'A',  't',  't', 'e', 's', 't', 'a', 't',  'i',  'o',
	                              'n',  0xa3, 0x69, 'u',  's', 'e', 'r', '_', 'd', 'a',  't',  'a',
	                              0x42, 0x01, 0x02, 0x65, 'n', 'o', 'n', 'c', 'e', 0xf6, 0x6a, 'p',
	                              'u',  'b',  'l',  'i',  'c', '_', 'k', 'e', 'y', 0xf6};
	CHECK(buf_is(&b, att, sizeof(att)));

	/* the limits: 512 / 512 / 1024 pass, one more byte each fails naming the field */
	static uint8_t big[1025];
	struct nsm_attest_req ok = {big, big, big, 512, 512, 1024};
	b.len = 0;
	CHECK(nsm_request_attestation(&b, &ok, &e) == 0);
	CHECK(b.len < NSM_REQUEST_MAX);
	const char *fields[] = {"user_data", "nonce", "public_key"};
	for (int i = 0; i < 3; i++) {
		struct nsm_attest_req r = ok;
		if (i == 0)
			r.user_data_len++;
		else if (i == 1)
			r.nonce_len++;
		else
			r.public_key_len++;
		b.len = 0;
		CHECK(nsm_request_attestation(&b, &r, &e) == -1);
		CHECK_ERR_CONTAINS(e, fields[i]);
		err_free(&e);
	}
}

/* Builds responses with the encoder (its heads are checked above). */
static void variant(struct buf *b, const char *name, size_t n_fields)
{
	cbor_put_head(b, CBOR_MAP, 1);
	cbor_put_tstr(b, name);
	cbor_put_head(b, CBOR_MAP, n_fields);
}

TEST(nsm_responses)
{
	struct err *e = NULL;
	struct nsm_response r;
	/* {"GetRandom": {"random": h'0102ff'}} by hand */
	static const uint8_t rnd[] = {0xa1, 0x69, 'G', 'e', 't', 'R', 'a', 'n',  'd',  'o',  'm', 0xa1,
	                              0x66, 'r',  'a', 'n', 'd', 'o', 'm', 0x43, 0x01, 0x02, 0xff};
	REQUIRE(nsm_response_parse(rnd, sizeof(rnd), &r, &e) == 0);
	CHECK(r.kind == NSM_RESP_GET_RANDOM);
	CHECK(r.len == 3 && r.data[0] == 1 && r.data[2] == 0xff);
	/* every truncation is refused */
	for (size_t i = 0; i < sizeof(rnd); i++) {
		CHECK(nsm_response_parse(rnd, i, &r, &e) == -1);
		err_free(&e);
	}
	/* trailing bytes */
	uint8_t longer[sizeof(rnd) + 1];
	memcpy(longer, rnd, sizeof(rnd));
	longer[sizeof(rnd)] = 0;
	CHECK(nsm_response_parse(longer, sizeof(longer), &r, &e) == -1);
	CHECK_ERR_CONTAINS(e, "trailing");
	err_free(&e);

	/* {"Error": "InvalidIndex"} */
	_cleanup_buf_ struct buf b = {0};
	cbor_put_head(&b, CBOR_MAP, 1);
	cbor_put_tstr(&b, "Error");
	cbor_put_tstr(&b, "InvalidIndex");
	REQUIRE(nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == 0);
	CHECK(r.kind == NSM_RESP_ERROR);
	CHECK_STR_EQ(r.error, "InvalidIndex");

	/* DescribePCR, fields in either order */
	uint8_t pcr[48];
	memset(pcr, 0xab, sizeof(pcr));
	b.len = 0;
	variant(&b, "DescribePCR", 2);
	cbor_put_tstr(&b, "data");
	cbor_put_bstr(&b, pcr, 48);
	cbor_put_tstr(&b, "lock");
	cbor_put_head(&b, CBOR_SIMPLE, CBOR_SIMPLE_TRUE);
	REQUIRE(nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == 0);
	CHECK(r.kind == NSM_RESP_DESCRIBE_PCR && r.lock && r.len == 48 && r.data[47] == 0xab);

	/* DescribeNSM */
	b.len = 0;
	variant(&b, "DescribeNSM", 7);
	cbor_put_tstr(&b, "version_major");
	cbor_put_head(&b, CBOR_UINT, 1);
	cbor_put_tstr(&b, "version_minor");
	cbor_put_head(&b, CBOR_UINT, 0);
	cbor_put_tstr(&b, "version_patch");
	cbor_put_head(&b, CBOR_UINT, 2);
	cbor_put_tstr(&b, "module_id");
	cbor_put_tstr(&b, "i-0abc-enc0def");
	cbor_put_tstr(&b, "max_pcrs");
	cbor_put_head(&b, CBOR_UINT, 32);
	cbor_put_tstr(&b, "locked_pcrs");
	cbor_put_head(&b, CBOR_ARRAY, 3);
	for (int i = 0; i < 3; i++)
		cbor_put_head(&b, CBOR_UINT, (uint64_t)i);
	cbor_put_tstr(&b, "digest");
	cbor_put_tstr(&b, "SHA384");
	REQUIRE(nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == 0);
	CHECK(r.kind == NSM_RESP_DESCRIBE_NSM);
	CHECK_INT_EQ(r.describe.version_major, 1);
	CHECK_INT_EQ(r.describe.version_patch, 2);
	CHECK_STR_EQ(r.describe.module_id, "i-0abc-enc0def");
	CHECK_INT_EQ(r.describe.max_pcrs, 32);
	CHECK_INT_EQ(r.describe.n_locked, 3);
	CHECK_STR_EQ(r.describe.digest, "SHA384");

	/* A newer NSM (nsm-api's Response is #[non_exhaustive]) may add fields:
	 * DescribeNSM with unknown keys before, between and after the known ones,
	 * holding nested maps, arrays, tags, long names and null, still parses. */
	b.len = 0;
	variant(&b, "DescribeNSM", 10);
	cbor_put_tstr(&b, "a_field_name_longer_than_thirty_two_bytes_from_the_future");
	cbor_put_head(&b, CBOR_MAP, 2);
	cbor_put_tstr(&b, "nested");
	cbor_put_head(&b, CBOR_ARRAY, 3);
	cbor_put_head(&b, CBOR_UINT, 1);
	cbor_put_head(&b, CBOR_MAP, 0);
	cbor_put_head(&b, CBOR_TAG, 24);
	cbor_put_bstr(&b, "\xa0", 1);
	cbor_put_tstr(&b, "neg");
	cbor_put_head(&b, CBOR_NINT, 4);
	cbor_put_tstr(&b, "version_major");
	cbor_put_head(&b, CBOR_UINT, 2);
	cbor_put_tstr(&b, "version_minor");
	cbor_put_head(&b, CBOR_UINT, 1);
	cbor_put_tstr(&b, "version_patch");
	cbor_put_head(&b, CBOR_UINT, 0);
	cbor_put_tstr(&b, "features");
	cbor_put_head(&b, CBOR_ARRAY, 20);
	for (int i = 0; i < 20; i++) {
		cbor_put_head(&b, CBOR_ARRAY, 1);
		cbor_put_tstr(&b, "x");
	}
	cbor_put_tstr(&b, "module_id");
	cbor_put_tstr(&b, "i-0abc-enc0def");
	cbor_put_tstr(&b, "max_pcrs");
	cbor_put_head(&b, CBOR_UINT, 32);
	cbor_put_tstr(&b, "locked_pcrs");
	cbor_put_head(&b, CBOR_ARRAY, 0);
	cbor_put_tstr(&b, "digest");
	cbor_put_tstr(&b, "SHA384");
	cbor_put_tstr(&b, "null_field");
	cbor_put_head(&b, CBOR_SIMPLE, CBOR_SIMPLE_NULL);
	REQUIRE(nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == 0);
	CHECK(r.kind == NSM_RESP_DESCRIBE_NSM);
	CHECK_INT_EQ(r.describe.version_major, 2);
	CHECK_STR_EQ(r.describe.module_id, "i-0abc-enc0def");
	CHECK_INT_EQ(r.describe.n_locked, 0);
	/* ... and every truncation of it is still refused */
	for (size_t i = 0; i < b.len; i++) {
		CHECK(nsm_response_parse((uint8_t *)b.data, i, &r, &e) == -1);
		err_free(&e);
	}
	/* unknown fields in the other variants too; a known field missing is still an error */
	b.len = 0;
	variant(&b, "GetRandom", 2);
	cbor_put_tstr(&b, "source");
	cbor_put_tstr(&b, "hw");
	cbor_put_tstr(&b, "random");
	cbor_put_bstr(&b, "\x05\x06", 2);
	REQUIRE(nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == 0);
	CHECK(r.kind == NSM_RESP_GET_RANDOM && r.len == 2 && r.data[1] == 6);
	b.len = 0;
	variant(&b, "DescribePCR", 3);
	cbor_put_tstr(&b, "lock");
	cbor_put_head(&b, CBOR_SIMPLE, CBOR_SIMPLE_FALSE);
	cbor_put_tstr(&b, "algorithm");
	cbor_put_tstr(&b, "SHA384");
	cbor_put_tstr(&b, "data");
	cbor_put_bstr(&b, pcr, 48);
	REQUIRE(nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == 0);
	CHECK(r.kind == NSM_RESP_DESCRIBE_PCR && !r.lock && r.len == 48);
	b.len = 0;
	variant(&b, "Attestation", 1);
	cbor_put_tstr(&b, "documents");
	cbor_put_bstr(&b, "\x84", 1);
	CHECK(nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == -1);
	CHECK_ERR_CONTAINS(e, "Attestation: field document missing");
	err_free(&e);

	/* Attestation */
	b.len = 0;
	variant(&b, "Attestation", 1);
	cbor_put_tstr(&b, "document");
	cbor_put_bstr(&b, "\x84\x40\xa0\x40\x40", 5);
	REQUIRE(nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == 0);
	CHECK(r.kind == NSM_RESP_ATTESTATION && r.len == 5 && r.data[0] == 0x84);
}

TEST(nsm_bad_responses)
{
	static const struct {
		const char *what, *msg;
	} cases[] = {
	    {"array", "expected a map of one variant"},
	    {"unknown variant", "unknown variant \"Frobnicate\""},
	    {"unknown field cut short",
	     "GetRandom: unknown field \"entropy\" at offset 12: offset 20: string of 5 bytes runs past the end"},
	    {"unknown field too deep",
	     "DescribeNSM: unknown field \"future\" at offset 14: offset 37: nested more than 16"},
	    {"field name not text",
	     "DescribePCR: offset 14: field name: expected a CBOR text string, found a unsigned integer"},
	    {"known field still strict",
	     "offset 30: Attestation.document: expected a CBOR byte string, found a text string"},
	    {"repeated field", "field random repeated"},
	    {"missing field", "DescribePCR: field lock missing"},
	    {"lock not bool", "DescribePCR.lock"},
	    {"pcr size", "DescribePCR.data: 5 bytes"},
	    {"u16 overflow", "DescribeNSM.max_pcrs: 70000 does not fit"},
	    {"digest", "DescribeNSM.digest: unknown digest"},
	    {"random as text", "GetRandom.random: expected a CBOR byte string"},
	    {"error not text", "Error: expected a CBOR text string"},
	    {"empty document", "Attestation.document: empty"},
	    {"bare variant", "unexpected bare variant"},
	    {"indefinite", "indefinite"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		_cleanup_buf_ struct buf b = {0};
		const char *w = cases[i].what;
		if (!strcmp(w, "array")) {
			cbor_put_head(&b, CBOR_ARRAY, 0);
		} else if (!strcmp(w, "unknown variant")) {
			variant(&b, "Frobnicate", 0);
		} else if (!strcmp(w, "unknown field cut short")) {
			variant(&b, "GetRandom", 1);
			cbor_put_tstr(&b, "entropy");
			buf_append(&b, "\x45xy", 3);
		} else if (!strcmp(w, "unknown field too deep")) {
			variant(&b, "DescribeNSM", 1);
			cbor_put_tstr(&b, "future");
			for (int k = 0; k < 17; k++)
				cbor_put_head(&b, CBOR_ARRAY, 1);
			cbor_put_head(&b, CBOR_UINT, 0);
		} else if (!strcmp(w, "field name not text")) {
			variant(&b, "DescribePCR", 1);
			cbor_put_head(&b, CBOR_UINT, 1);
			cbor_put_head(&b, CBOR_UINT, 1);
		} else if (!strcmp(w, "known field still strict")) {
			variant(&b, "Attestation", 2);
			cbor_put_tstr(&b, "extra");
			cbor_put_head(&b, CBOR_UINT, 1);
			cbor_put_tstr(&b, "document");
			cbor_put_tstr(&b, "abc");
		} else if (!strcmp(w, "repeated field")) {
			variant(&b, "GetRandom", 2);
			cbor_put_tstr(&b, "random");
			cbor_put_bstr(&b, "x", 1);
			cbor_put_tstr(&b, "random");
			cbor_put_bstr(&b, "x", 1);
		} else if (!strcmp(w, "missing field")) {
			variant(&b, "DescribePCR", 1);
			cbor_put_tstr(&b, "data");
			cbor_put_bstr(&b, "0123456789abcdef0123456789abcdef", 32);
		} else if (!strcmp(w, "lock not bool")) {
			variant(&b, "DescribePCR", 1);
			cbor_put_tstr(&b, "lock");
			cbor_put_head(&b, CBOR_UINT, 1);
		} else if (!strcmp(w, "pcr size")) {
			variant(&b, "DescribePCR", 2);
			cbor_put_tstr(&b, "lock");
			cbor_put_head(&b, CBOR_SIMPLE, CBOR_SIMPLE_FALSE);
			cbor_put_tstr(&b, "data");
			cbor_put_bstr(&b, "12345", 5);
		} else if (!strcmp(w, "u16 overflow")) {
			variant(&b, "DescribeNSM", 1);
			cbor_put_tstr(&b, "max_pcrs");
			cbor_put_head(&b, CBOR_UINT, 70000);
		} else if (!strcmp(w, "digest")) {
			variant(&b, "DescribeNSM", 1);
			cbor_put_tstr(&b, "digest");
			cbor_put_tstr(&b, "MD5");
		} else if (!strcmp(w, "random as text")) {
			variant(&b, "GetRandom", 1);
			cbor_put_tstr(&b, "random");
			cbor_put_tstr(&b, "xyz");
		} else if (!strcmp(w, "error not text")) {
			cbor_put_head(&b, CBOR_MAP, 1);
			cbor_put_tstr(&b, "Error");
			cbor_put_head(&b, CBOR_UINT, 3);
		} else if (!strcmp(w, "empty document")) {
			variant(&b, "Attestation", 1);
			cbor_put_tstr(&b, "document");
			cbor_put_bstr(&b, "", 0);
		} else if (!strcmp(w, "bare variant")) {
			cbor_put_tstr(&b, "LockPCRs");
		} else {
			buf_append(&b, "\xbf\x69GetRandom", 11);
		}
		struct nsm_response r;
		struct err *e = NULL;
		if (nsm_response_parse((uint8_t *)b.data, b.len, &r, &e) == 0) {
			test_fail(t, __FILE__, __LINE__, "accepted: %s", w);
		} else {
			CHECK_ERR_CONTAINS(e, cases[i].msg);
		}
		err_free(&e);
	}
}

TEST(nsm_open_missing)
{
	struct nsm *d = NULL;
	struct err *e = NULL;
	CHECK(nsm_open("/nonexistent/nsm", &d, &e) == -1);
	CHECK_ERR_CONTAINS(e, "/nonexistent/nsm");
	err_free(&e);
	CHECK(nsm_open("unix:/nonexistent/nsm.sock", &d, &e) == -1);
	err_free(&e);
}

/* ---------------------------------------------------------------- the API's request body */

static const char test_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                               "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE";

TEST(api_request_parse)
{
	struct odyn_api_request r;
	struct err *e = NULL;
	/* empty body and {} are a request with nothing extra */
	REQUIRE(odyn_api_parse_request((const uint8_t *)"", 0, &r, &e) == 0);
	CHECK(r.nonce == NULL && r.user_data == NULL && r.public_key == NULL);
	odyn_api_request_free(&r);
	const char *body = "{\"nonce\": \"AAEC\", \"user_data\": \"aGVsbG8=\", \"public_key\": null}";
	REQUIRE(odyn_api_parse_request((const uint8_t *)body, strlen(body), &r, &e) == 0);
	CHECK(r.nonce_len == 3 && r.nonce[0] == 0 && r.nonce[2] == 2);
	CHECK(r.user_data_len == 5 && memcmp(r.user_data, "hello", 5) == 0);
	CHECK(r.public_key == NULL);
	odyn_api_request_free(&r);

	/* a real PEM key becomes its SPKI DER: made here with OpenSSL, compared to i2d_PUBKEY */
	EVP_PKEY *key = EVP_EC_gen("prime256v1");
	REQUIRE(key != NULL);
	BIO *bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(bio, key);
	char *pem;
	long pem_len = BIO_get_mem_data(bio, &pem);
	json_t *j = json_pack("{s:s%}", "public_key", pem, (size_t)pem_len);
	char *jtext = json_dumps(j, 0);
	uint8_t *der = NULL;
	int der_len = i2d_PUBKEY(key, &der);
	REQUIRE(odyn_api_parse_request((const uint8_t *)jtext, strlen(jtext), &r, &e) == 0);
	CHECK(r.public_key_len == (size_t)der_len && memcmp(r.public_key, der, (size_t)der_len) == 0);
	odyn_api_request_free(&r);
	OPENSSL_free(der);
	free(jtext);
	json_decref(j);
	BIO_free(bio);
	EVP_PKEY_free(key);

	_cleanup_free_ char *big_nonce = NULL, *ok_nonce = NULL;
	{
		uint8_t raw[513] = {0};
		_cleanup_free_ char *b513 = base64_encode(raw, 513), *b512 = base64_encode(raw, 512);
		big_nonce = xasprintf("{\"nonce\": \"%s\"}", b513);
		ok_nonce = xasprintf("{\"user_data\": \"%s\", \"nonce\": \"%s\"}", b512, b512);
	}
	REQUIRE(odyn_api_parse_request((const uint8_t *)ok_nonce, strlen(ok_nonce), &r, &e) == 0);
	CHECK(r.nonce_len == 512 && r.user_data_len == 512);
	odyn_api_request_free(&r);
	/* a PEM armour around a truncated key */
	json_t *jb = json_pack("{s:s}", "public_key", test_pem);
	_cleanup_free_ char *bad_pem = json_dumps(jb, 0);
	json_decref(jb);

	static const struct {
		const char *body, *msg;
	} bad[] = {
	    {"{", "body: not JSON"},
	    {"[1]", "expected a JSON object"},
	    {"{\"nonce\": 5}", "nonce: expected a base64 string"},
	    {"{\"nonce\": \"!!!!\"}", "nonce: not valid base64"},
	    {"{\"user_data\": \"aGVsbG8\"}", "user_data: not valid base64"},
	    {"{\"nonce\": \"AA==\", \"nonce\": \"AA==\"}", "duplicate"},
	    {"{\"userdata\": \"AA==\"}", "unknown field \"userdata\""},
	    {"{\"public_key\": \"not a key\"}", "public_key: not a PEM public key"},
	    {"{\"public_key\": 1}", "public_key: expected a PEM string"},
	};
	for (size_t i = 0; i < N(bad); i++) {
		if (odyn_api_parse_request((const uint8_t *)bad[i].body, strlen(bad[i].body), &r, &e) == 0) {
			test_fail(t, __FILE__, __LINE__, "accepted: %s", bad[i].body);
			odyn_api_request_free(&r);
		} else {
			CHECK_ERR_CONTAINS(e, bad[i].msg);
		}
		err_free(&e);
	}
	CHECK(odyn_api_parse_request((const uint8_t *)big_nonce, strlen(big_nonce), &r, &e) == -1);
	CHECK_ERR_CONTAINS(e, "nonce: 513 bytes, at most 512");
	err_free(&e);
	CHECK(odyn_api_parse_request((const uint8_t *)bad_pem, strlen(bad_pem), &r, &e) == -1);
	CHECK_ERR_CONTAINS(e, "public_key");
	err_free(&e);
}

TEST(base64_strict)
{
	/* RFC 4648 section 10 test vectors */
	static const char *const vec[][2] = {{"", ""},
	                                     {"f", "Zg=="},
	                                     {"fo", "Zm8="},
	                                     {"foo", "Zm9v"},
	                                     {"foob", "Zm9vYg=="},
	                                     {"fooba", "Zm9vYmE="},
	                                     {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < N(vec); i++) {
		_cleanup_free_ char *enc = base64_encode(vec[i][0], strlen(vec[i][0]));
		CHECK_STR_EQ(enc, vec[i][1]);
		uint8_t *dec = NULL;
		size_t n;
		REQUIRE(base64_decode(vec[i][1], strlen(vec[i][1]), &dec, &n) == 0);
		CHECK(n == strlen(vec[i][0]) && memcmp(dec, vec[i][0], n) == 0);
		free(dec);
	}
	static const char *const bad[] = {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zg==Zg==", "Zm 9v", "Zm9v\n", "=Zg="};
	for (size_t i = 0; i < N(bad); i++) {
		uint8_t *dec = NULL;
		size_t n;
		if (base64_decode(bad[i], strlen(bad[i]), &dec, &n) == 0) {
			test_fail(t, __FILE__, __LINE__, "accepted \"%s\"", bad[i]);
			free(dec);
		}
	}
}
