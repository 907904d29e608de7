/* kms: an AWS KMS asymmetric key as eif_build takes it (arn:aws:kms:REGION:ACCOUNT:key/ID):
 * GetPublicKey once (the certificate must match it), then Sign with MessageType DIGEST and
 * ECDSA_SHA_256/384/512, each request signed with SigV4 (common/sigv4.c) from the environment's
 * credentials. The secret key stays in this file's struct and is wiped when freed. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/x509.h>

#include "keys/internal.h"
#include "common/cose.h"
#include "common/json.h"
#include "common/sigv4.h"

#define KMS_RESPONSE_MAX (64u * 1024)

struct kms_key {
	char *arn, *region, *endpoint, *host; /* endpoint: scheme://host[:port]; host: host[:port] */
	char *access_key, *secret_key, *token;
};

/* arn:PARTITION:kms:REGION:ACCOUNT(12 digits):key/ID or key:ID, as eif_build matches it. */
static bool parse_arn(const char *s, char **region)
{
	const char *parts[] = {"arn:aws:kms:", "arn:aws-cn:kms:", "arn:aws-us-gov:kms:"};
	const char *p = NULL;
	for (size_t i = 0; i < 3 && p == NULL; i++)
		if (str_has_prefix(s, parts[i]))
			p = s + strlen(parts[i]);
	if (p == NULL)
		return false;
	size_t rlen = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-");
	if (rlen == 0 || p[rlen] != ':')
		return false;
	const char *acct = p + rlen + 1;
	if (strspn(acct, "0123456789") != 12 || acct[12] != ':' || !str_has_prefix(acct + 13, "key") ||
	    (acct[16] != '/' && acct[16] != ':'))
		return false;
	const char *id = acct + 17;
	size_t idlen = strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
	if (idlen == 0 || id[idlen] != '\0')
		return false;
	if (region)
		*region = xstrndup(p, rlen);
	return true;
}

bool keys_is_kms_arn(const char *spec)
{
	return str_has_prefix(spec, "arn:");
}

void keys_kms_free(struct kms_key *kms)
{
	if (kms->secret_key)
		OPENSSL_cleanse(kms->secret_key, strlen(kms->secret_key));
	if (kms->token)
		OPENSSL_cleanse(kms->token, strlen(kms->token));
	free(kms->arn);
	free(kms->region);
	free(kms->endpoint);
	free(kms->host);
	free(kms->access_key);
	free(kms->secret_key);
	free(kms->token);
	free(kms);
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
	struct buf *b = user;
	if (b->len + size * n > KMS_RESPONSE_MAX)
		return 0;
	buf_append(b, data, size * n);
	return size * n;
}

/* One KMS action: the JSON request in, the JSON answer out; an AWS error body becomes the
 * message ("HTTP 400 NotFoundException: ..."). */
static int kms_call(struct kms_key *kms, const char *action, json_t *req, json_t **out, struct err **err)
{
	_cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
	char date[17];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	_cleanup_free_ char *target = xasprintf("TrentService.%s", action);
	struct sigv4_header hdrs[5] = {
	    {"Content-Type", "application/x-amz-json-1.1"},
	    {"Host", kms->host},
	    {"X-Amz-Date", date},
	    {"X-Amz-Target", target},
	    {"X-Amz-Security-Token", kms->token},
	};
	size_t nh = kms->token ? 5 : 4;
	struct sigv4_request sr = {"POST", "/", "", hdrs, nh, date, body, strlen(body)};
	struct sigv4_key key = {kms->access_key, kms->secret_key, kms->region, "kms"};
	_cleanup_free_ char *auth = NULL;
	if (sigv4_sign(&sr, &key, &auth, err) < 0)
		return -1;
	struct curl_slist *list = NULL;
	for (size_t i = 0; i < nh; i++) {
		_cleanup_free_ char *line = xasprintf("%s: %s", hdrs[i].name, hdrs[i].value);
		list = curl_slist_append(list, line);
	}
	_cleanup_free_ char *auth_line = xasprintf("Authorization: %s", auth);
	list = curl_slist_append(list, auth_line);
	list = curl_slist_append(list, "Expect:");
	_cleanup_buf_ struct buf resp = {0};
	CURL *h = curl_easy_init();
	_cleanup_free_ char *url = xasprintf("%s/", kms->endpoint);
	char curl_err[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc = CURLE_FAILED_INIT;
	if (h != NULL && list != NULL) {
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "enclaver/" ENCLAVER_VERSION);
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	}
	curl_easy_cleanup(h);
	/* The Authorization header is no secret once sent (it signs one request), but wipe it. */
	OPENSSL_cleanse(auth_line, strlen(auth_line));
	curl_slist_free_all(list);
	if (rc != CURLE_OK)
		return err_set(err, EIO, "KMS %s at %s: %s", action, kms->endpoint,
			       curl_err[0] ? curl_err : curl_easy_strerror(rc));
	json_error_t je;
	json_t *doc = json_loadb(resp.data ? resp.data : "", resp.len, 0, &je);
	if (status != 200) {
		const char *type = doc ? json_string_value(json_object_get(doc, "__type")) : NULL;
		const char *msg = doc ? json_string_value(json_object_get(doc, "message")) : NULL;
		if (msg == NULL && doc)
			msg = json_string_value(json_object_get(doc, "Message"));
		err_set(err, EIO, "KMS %s: HTTP %ld %s%s%s", action, status, type ? type : "(no error type)",
			msg ? ": " : "", msg ? msg : "");
		json_decref(doc);
		return -1;
	}
	if (doc == NULL || !json_is_object(doc)) {
		json_decref(doc);
		return err_set(err, EINVAL, "KMS %s: the answer is not a JSON object", action);
	}
	*out = doc;
	return 0;
}

static int b64_field(json_t *doc, const char *action, const char *field, uint8_t **out, size_t *len,
		     struct err **err)
{
	const char *v = json_string_value(json_object_get(doc, field));
	if (v == NULL || base64_decode(v, strlen(v), out, len) < 0)
		return err_set(err, EINVAL, "KMS %s: no base64 \"%s\" in the answer", action, field);
	return 0;
}

static char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? xstrdup(v) : NULL;
}

int keys_kms_open(const char *arn, struct sign_key *k, struct err **err)
{
	struct kms_key *kms = k->kms = xcalloc(1, sizeof(*kms));
	kms->arn = xstrdup(arn);
	if (!parse_arn(arn, &kms->region))
		return err_set(err, EINVAL, "not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)");
	kms->access_key = env_nonempty("AWS_ACCESS_KEY_ID");
	kms->secret_key = env_nonempty("AWS_SECRET_ACCESS_KEY");
	kms->token = env_nonempty("AWS_SESSION_TOKEN");
	if (kms->access_key == NULL || kms->secret_key == NULL)
		return err_set(err, EINVAL, "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
					    "(and AWS_SESSION_TOKEN for temporary ones)");
	kms->endpoint = env_nonempty("AWS_ENDPOINT_URL_KMS");
	if (kms->endpoint == NULL)
		kms->endpoint = env_nonempty("AWS_ENDPOINT_URL");
	if (kms->endpoint == NULL)
		kms->endpoint = xasprintf("https://kms.%s.amazonaws.com%s", kms->region,
					  str_has_prefix(arn, "arn:aws-cn:") ? ".cn" : "");
	size_t n = strlen(kms->endpoint);
	while (n > 0 && kms->endpoint[n - 1] == '/')
		kms->endpoint[--n] = '\0';
	const char *sep = strstr(kms->endpoint, "://");
	if (sep == NULL || !(str_has_prefix(kms->endpoint, "https://") || str_has_prefix(kms->endpoint, "http://")) ||
	    sep[3] == '\0' || strchr(sep + 3, '/') != NULL)
		return err_set(err, EINVAL, "KMS endpoint \"%s\": expected http(s)://HOST[:PORT]", kms->endpoint);
	kms->host = xstrdup(sep + 3);
	_cleanup_json_ json_t *req = json_pack("{s:s}", "KeyId", kms->arn), *resp = NULL;
	if (kms_call(kms, "GetPublicKey", req, &resp, err) < 0)
		return -1;
	_cleanup_free_ uint8_t *spki = NULL;
	size_t spki_len = 0;
	if (b64_field(resp, "GetPublicKey", "PublicKey", &spki, &spki_len, err) < 0)
		return -1;
	const uint8_t *p = spki;
	k->pkey = d2i_PUBKEY(NULL, &p, (long)spki_len);
	if (k->pkey == NULL)
		return err_openssl(err, "KMS GetPublicKey: PublicKey is not a DER SubjectPublicKeyInfo");
	return 0;
}

int keys_kms_sign(struct kms_key *kms, const EVP_MD *md, const uint8_t *digest, size_t digest_len, struct buf *der,
		  struct err **err)
{
	const char *alg = NULL;
	switch (EVP_MD_get_type(md)) {
	case NID_sha256: alg = "ECDSA_SHA_256"; break;
	case NID_sha384: alg = "ECDSA_SHA_384"; break;
	case NID_sha512: alg = "ECDSA_SHA_512"; break;
	default: return err_set(err, EINVAL, "KMS signs ECDSA with SHA-256, SHA-384 or SHA-512 only");
	}
	_cleanup_free_ char *msg = base64_encode(digest, digest_len);
	_cleanup_json_ json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "KeyId", kms->arn, "Message", msg,
					       "MessageType", "DIGEST", "SigningAlgorithm", alg),
			      *resp = NULL;
	if (kms_call(kms, "Sign", req, &resp, err) < 0)
		return -1;
	_cleanup_free_ uint8_t *sig = NULL;
	size_t sig_len = 0;
	if (b64_field(resp, "Sign", "Signature", &sig, &sig_len, err) < 0)
		return -1;
	buf_append(der, sig, sig_len);
	return 0;
}
