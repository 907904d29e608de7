/* test_kms: the KMS proxy's pieces: SigV4 against AWS's published
 * Signature Version 4 test suite, the app request check, HTTP response
 * parsing (Content-Length and chunked), and CMS decryption of an envelope made by the openssl tool. */
#include <openssl/pem.h>

#include "odyn/internal.h"
#include "tests/harness.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Vectors from AWS's "Signature Version 4 Test Suite" (formerly
 * docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html), as
 * kept in github.com/bazelbuild/bazel third_party/aws-sig-v4-test-suite/:
 * post-vanilla, post-header-key-sort, post-x-www-form-urlencoded and
 * post-sts-token/post-sts-header-before (.req and .authz files). Credentials
 * AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, us-east-1, "service". */
static const char sts_token[] =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8"
    "YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE"
    "8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICC"
    "R/oLxBA==";

TEST(sigv4_aws_test_suite)
{
	const struct sigv4_key key = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1",
	                              "service"};
	const char *date = "20150830T123600Z";
	const char *scope = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ";
	struct {
		const char *name;
		struct sigv4_header h[4];
		size_t n;
		const char *body;
		const char *want;
	} v[] = {
	    {"post-vanilla",
	     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", date}},
	     2,
	     "",
	     "SignedHeaders=host;x-amz-date, "
	     "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	    {"post-header-key-sort",
	     {{"Host", "example.amazonaws.com"}, {"My-Header1", "value1"}, {"X-Amz-Date", date}},
	     3,
	     "",
	     "SignedHeaders=host;my-header1;x-amz-date, "
	     "Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
	    {"post-x-www-form-urlencoded",
	     {{"Content-Type", "application/x-www-form-urlencoded"},
	      {"Host", "example.amazonaws.com"},
	      {"X-Amz-Date", date}},
	     3,
	     "Param1=value1",
	     "SignedHeaders=content-type;host;x-amz-date, "
	     "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
	    {"post-sts-header-before",
	     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", date}, {"X-Amz-Security-Token", sts_token}},
	     3,
	     "",
	     "SignedHeaders=host;x-amz-date;x-amz-security-token, "
	     "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
	};
	for (size_t i = 0; i < N(v); i++) {
		struct sigv4_request r = {"POST", "/", "", v[i].h, v[i].n, date, v[i].body, strlen(v[i].body)};
		char *auth = NULL;
		struct err *e = NULL;
		REQUIRE(sigv4_sign(&r, &key, &auth, &e) == 0);
		_cleanup_free_ char *want = xasprintf("%s%s", scope, v[i].want);
		if (strcmp(auth, want) != 0)
			test_fail(t, __FILE__, __LINE__, "%s:\n  got  %s\n  want %s", v[i].name, auth, want);
		free(auth);
	}
	/* Header order in the request does not matter; header value spaces are collapsed. */
	struct sigv4_header shuffled[] = {
	    {"X-Amz-Date", date}, {"my-header1", "  value1 "}, {"HOST", "example.amazonaws.com"}};
	struct sigv4_request r = {"POST", "/", "", shuffled, 3, date, "", 0};
	char *auth = NULL;
	struct err *e = NULL;
	REQUIRE(sigv4_sign(&r, &key, &auth, &e) == 0);
	CHECK(strstr(auth, "Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c") != NULL);
	free(auth);
	r.amz_date = "2015-08-30";
	CHECK(sigv4_sign(&r, &key, &auth, &e) == -1);
	CHECK_ERR_CONTAINS(e, "X-Amz-Date");
	err_free(&e);
}

static int check_req(const char *head, const char *body, char action[64], struct err **e)
{
	struct http_request req;
	_cleanup_free_ char *text = xasprintf("%s\r\n\r\n", head);
	if (http_request_parse(text, strlen(text), &req, e) <= 0)
		return -2;
	int rc = odyn_kms_check_request(&req, (const uint8_t *)body, strlen(body), action, e);
	http_request_free(&req);
	return rc;
}

TEST(kms_request_check)
{
	char action[64];
	struct err *e = NULL;
#define OK_HEAD "POST / HTTP/1.1\r\nX-Amz-Target: TrentService.Decrypt\r\nContent-Type: application/x-amz-json-1.1"
	const char *ok_head = OK_HEAD;
	REQUIRE(check_req(ok_head, "{\"CiphertextBlob\": \"AA==\"}", action, &e) == 0);
	CHECK_STR_EQ(action, "Decrypt");
	static const struct {
		const char *head, *body, *msg;
	} bad[] = {
	    {"GET / HTTP/1.1\r\nX-Amz-Target: TrentService.Decrypt\r\nContent-Type: application/x-amz-json-1.1", "{}",
	     "POST"},
	    {"POST /x HTTP/1.1\r\nX-Amz-Target: TrentService.Decrypt\r\nContent-Type: application/x-amz-json-1.1", "{}",
	     "go to /"},
	    {"POST / HTTP/1.1\r\nContent-Type: application/x-amz-json-1.1", "{}", "X-Amz-Target"},
	    {"POST / HTTP/1.1\r\nX-Amz-Target: Foo.Decrypt\r\nContent-Type: application/x-amz-json-1.1", "{}",
	     "X-Amz-Target"},
	    {"POST / HTTP/1.1\r\nX-Amz-Target: TrentService.De-crypt\r\nContent-Type: application/x-amz-json-1.1", "{}",
	     "bad action"},
	    {"POST / HTTP/1.1\r\nX-Amz-Target: TrentService.Decrypt\r\nX-Amz-Target: TrentService.Encrypt\r\n"
	     "Content-Type: application/x-amz-json-1.1",
	     "{}", "twice"},
	    {"POST / HTTP/1.1\r\nX-Amz-Target: TrentService.Decrypt\r\nContent-Type: text/plain", "{}", "Content-Type"},
	    {OK_HEAD, "{", "not JSON"},
	    {OK_HEAD, "[]", "JSON object"},
	    {OK_HEAD, "{\"a\":1,\"a\":2}", "not JSON"},
	    {OK_HEAD, "{\"Recipient\": 5}", "Recipient"},
	};
	for (size_t i = 0; i < N(bad); i++) {
		int rc = check_req(bad[i].head, bad[i].body, action, &e);
		if (rc == 0) {
			test_fail(t, __FILE__, __LINE__, "accepted case %zu", i);
		} else {
			CHECK_ERR_CONTAINS(e, bad[i].msg);
		}
		err_free(&e);
	}
}

TEST(kms_http_response)
{
	struct kms_http_response r;
	struct err *e = NULL;
	char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}extra";
	REQUIRE(kms_http_response_parse(ok, strlen(ok), &r, &e) == 0);
	CHECK_INT_EQ(r.status, 200);
	CHECK(r.body_len == 2 && memcmp(r.body, "{}", 2) == 0);
	CHECK_STR_EQ(r.content_type, "application/x-amz-json-1.1");
	/* Chunked, as KMS's load balancers may answer: decoded for the caller. */
	char ch[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\nContent-Type: application/json\r\n\r\n"
	            "4\r\n{\"a\"\r\n5;x=y\r\n:\"b\"}\r\n0\r\n\r\n";
	REQUIRE(kms_http_response_parse(ch, strlen(ch), &r, &e) == 0);
	CHECK(r.body_len == 9 && memcmp(r.body, "{\"a\":\"b\"}", 9) == 0 && r.body[9] == '\0');
	CHECK_STR_EQ(r.content_type, "application/json");
	struct {
		const char *in, *msg;
	} bad[] = {
	    {"garbage", "not an HTTP response"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "shorter than its Content-Length"},
	    {"HTTP/1.1 999 X\r\n\r\n", "bad status code"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", "Transfer-Encoding \"gzip\" is not supported"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "is not supported (only chunked)"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	     "Transfer-Encoding given twice"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
	     "both Content-Length and Transfer-Encoding"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", "ends at offset 7 in the size line"},
	};
	for (size_t i = 0; i < N(bad); i++) {
		char *copy = xstrdup(bad[i].in);
		if (kms_http_response_parse(copy, strlen(copy), &r, &e) == 0)
			test_fail(t, __FILE__, __LINE__, "accepted case %zu", i);
		else
			CHECK_ERR_CONTAINS(e, bad[i].msg);
		err_free(&e);
		free(copy);
	}
}

/* The chunked decoder on its own: what it accepts and how it names what it refuses. */
TEST(http_chunked)
{
	struct err *e = NULL;
	struct {
		const char *in, *out;
	} good[] = {
	    {"0\r\n\r\n", ""},
	    {"3\r\nabc\r\n0\r\n\r\n", "abc"},
	    {"A\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n", "0123456789x"},
	    {"000a\r\n0123456789\r\n0\r\n\r\n", "0123456789"},
	    {"2 ; name=\"v;x\"\r\nab\r\n0;last\r\n\r\n", "ab"},
	    {"2\r\nab\r\n0\r\nX-Checksum: 1234\r\nExpires: never\r\n\r\n", "ab"},
	    {"2\r\n\r\n\r\n0\r\n\r\n", "\r\n"}, /* CRLF as data */
	};
	for (size_t i = 0; i < N(good); i++) {
		char *copy = xstrdup(good[i].in);
		size_t n = 99;
		if (http_chunked_decode(copy, strlen(copy), 64, &n, &e) < 0) {
			test_fail(t, __FILE__, __LINE__, "good case %zu: %s", i, e->msg);
			err_free(&e);
		} else {
			CHECK(n == strlen(good[i].out) && memcmp(copy, good[i].out, n) == 0);
		}
		free(copy);
	}
	struct {
		const char *in, *msg;
	} bad[] = {
	    {"", "ends at offset 0 in the size line of chunk 0"},
	    {"\r\n", "offset 0: expected a hex chunk size"},
	    {"x\r\n", "offset 0: expected a hex chunk size"},
	    {"-1\r\n", "expected a hex chunk size"},
	    {"3g\r\nabc\r\n0\r\n\r\n", "offset 1: expected ';' or CRLF after the chunk size"},
	    {"3\nabc\n0\n\n", "offset 1: bad byte 0x0a in the size line of chunk 0"},
	    {"3\rabc\r\n0\r\n\r\n", "offset 1: bad byte 0x0d"},
	    {"3;a\x01\r\nabc\r\n0\r\n\r\n", "offset 3: bad byte 0x01"},
	    {"3\r\nab", "ends at offset 5 inside chunk 0 (2 of 3 bytes)"},
	    {"3\r\nabc", "ends at offset 6 after the data of chunk 0"},
	    {"3\r\nabcd\r\n0\r\n\r\n", "offset 6: chunk 0 is longer than its size (3)"},
	    {"3\r\nabc\r\n", "ends at offset 8 in the size line of chunk 1"},
	    {"3\r\nabc\r\n0\r\n", "ends at offset 11 in the trailer"},
	    {"0\r\n\r\nextra", "5 bytes after the last chunk"},
	    {"0\r\nnot a field\r\n\r\n", "offset 3: a trailer line that is not a field"},
	    {"0\r\n: empty name\r\n\r\n", "a trailer line that is not a field"},
	    {"0\r\nX-A: 1\n\r\n", "bad byte 0x0a in the trailer"},
	    {"00000000000000001\r\nx\r\n0\r\n\r\n", "more than 16 hex digits"},
	    {"ffffffffffffffff\r\nx\r\n0\r\n\r\n", "takes the body over 64 bytes"},
	    {"41\r\n", "chunk 0 of 65 bytes takes the body over 64 bytes"},
	    {"40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n1\r\nx\r\n0\r\n\r\n",
	     "chunk 1 of 1 bytes takes the body over 64 bytes"},
	};
	for (size_t i = 0; i < N(bad); i++) {
		char *copy = xstrdup(bad[i].in);
		size_t n = 0;
		if (http_chunked_decode(copy, strlen(copy), 64, &n, &e) == 0)
			test_fail(t, __FILE__, __LINE__, "accepted bad case %zu", i);
		else
			CHECK_ERR_CONTAINS(e, bad[i].msg);
		err_free(&e);
		free(copy);
	}
}

/* An envelope made by the openssl tool (RSA-OAEP SHA-256, AES-256-CBC,
 * as KMS makes CiphertextForRecipient) opens with the key; another key,
 * a corrupted envelope and non-CMS bytes fail. */
TEST(kms_cms_envelope)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *cmd = xasprintf(
	    "cd %s && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out k.pem 2>/dev/null && "
	    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other.pem 2>/dev/null && "
	    "openssl pkey -in k.pem -pubout -out pub.pem && "
	    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.pem 2>/dev/null && "
	    "openssl x509 -new -subj /CN=r -key ca.pem -force_pubkey pub.pem -days 1 -out r.crt && "
	    "printf 'key material 0123456789' >pt && "
	    "openssl cms -encrypt -in pt -binary -outform DER -aes256 -recip r.crt -keyopt rsa_padding_mode:oaep "
	    "-keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256 -out ct.der",
	    dir);
	REQUIRE(system(cmd) == 0);
	char p[512];
	snprintf(p, sizeof(p), "%s/k.pem", dir);
	FILE *f = fopen(p, "r");
	REQUIRE(f != NULL);
	EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	snprintf(p, sizeof(p), "%s/other.pem", dir);
	f = fopen(p, "r");
	REQUIRE(f != NULL);
	EVP_PKEY *other = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	snprintf(p, sizeof(p), "%s/ct.der", dir);
	_cleanup_free_ char *ct = NULL;
	size_t ct_len;
	struct err *e = NULL;
	REQUIRE(io_read_file(p, 1 << 16, &ct, &ct_len, &e) == 0);
	_cleanup_buf_ struct buf out = {0};
	REQUIRE(kms_cms_decrypt(key, (uint8_t *)ct, ct_len, &out, &e) == 0);
	CHECK(out.len == 23 && memcmp(out.data, "key material 0123456789", 23) == 0);
	out.len = 0;
	CHECK(kms_cms_decrypt(other, (uint8_t *)ct, ct_len, &out, &e) == -1);
	CHECK_ERR_CONTAINS(e, "CMS decrypt");
	err_free(&e);
	ct[ct_len - 5] ^= 1; /* inside the encrypted content */
	CHECK(kms_cms_decrypt(key, (uint8_t *)ct, ct_len, &out, &e) == -1);
	err_free(&e);
	CHECK(kms_cms_decrypt(key, (const uint8_t *)"\x30\x03\x02\x01\x00", 5, &out, &e) == -1);
	err_free(&e);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}
