/* api: the app's attestation endpoint on 127.0.0.1:api.listen_port.
 * POST /v1/attestation with JSON {nonce?, user_data? (base64), public_key?
 * (PEM)} answers the NSM's attestation document as application/cbor. */
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "odyn/internal.h"
#include "common/json.h"
#include "common/cose.h"

/* A request body can hold the three fields at their limits, base64'd or PEM'd. */
#define API_BODY_MAX (16 * 1024)

struct odyn_api {
	struct httpd *srv;
	char *nsm_path;
};

/* A base64 field of at most max bytes; absent or null leaves *out NULL. */
static int get_b64(json_t *obj, const char *key, size_t max, uint8_t **out, size_t *len, struct err **err)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return err_set(err, EINVAL, "%s: expected a base64 string", key);
	const char *s = json_string_value(v);
	if (base64_decode(s, json_string_length(v), out, len) < 0)
		return err_set(err, EINVAL, "%s: not valid base64", key);
	if (*len > max) {
		free(*out);
		*out = NULL;
		return err_set(err, E2BIG, "%s: %zu bytes, at most %zu", key, *len, max);
	}
	return 0;
}

/* PEM public key -> SubjectPublicKeyInfo DER, which the NSM puts in the document. */
static int get_pem_key(json_t *obj, uint8_t **out, size_t *len, struct err **err)
{
	json_t *v = json_object_get(obj, "public_key");
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return err_set(err, EINVAL, "public_key: expected a PEM string");
	BIO *bio = BIO_new_mem_buf(json_string_value(v), (int)json_string_length(v));
	EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	ERR_clear_error();
	if (key == NULL)
		return err_set(err, EINVAL, "public_key: not a PEM public key (-----BEGIN PUBLIC KEY-----)");
	uint8_t *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	EVP_PKEY_free(key);
	if (n <= 0)
		return err_openssl(err, "public_key");
	if ((size_t)n > NSM_PUBLIC_KEY_MAX) {
		OPENSSL_free(der);
		return err_set(err, E2BIG, "public_key: %d bytes of DER, at most %d", n, NSM_PUBLIC_KEY_MAX);
	}
	*out = xmalloc((size_t)n);
	memcpy(*out, der, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(der);
	return 0;
}

int odyn_api_parse_request(const uint8_t *body, size_t len, struct odyn_api_request *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	json_error_t je;
	_cleanup_json_ json_t *obj = NULL;
	if (len > 0) {
		obj = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
		if (obj == NULL)
			return err_set(err, EINVAL, "body: not JSON (%s at position %d)", je.text, je.position);
		if (!json_is_object(obj))
			return err_set(err, EINVAL, "body: expected a JSON object");
	} else {
		obj = json_object(); /* no body: a document without extra fields */
	}
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		if (strcmp(key, "nonce") != 0 && strcmp(key, "user_data") != 0 && strcmp(key, "public_key") != 0)
			return err_set(err, EINVAL, "body: unknown field \"%s\" (nonce, user_data, public_key)", key);
	}
	if (get_b64(obj, "nonce", NSM_NONCE_MAX, &out->nonce, &out->nonce_len, err) < 0 ||
	    get_b64(obj, "user_data", NSM_USER_DATA_MAX, &out->user_data, &out->user_data_len, err) < 0 ||
	    get_pem_key(obj, &out->public_key, &out->public_key_len, err) < 0) {
		odyn_api_request_free(out);
		return -1;
	}
	return 0;
}

void odyn_api_request_free(struct odyn_api_request *r)
{
	free(r->nonce);
	free(r->user_data);
	free(r->public_key);
	memset(r, 0, sizeof(*r));
}

static void on_request(void *arg, struct httpd_conn *c, const struct http_request *req, const uint8_t *body, size_t len)
{
	struct odyn_api *api = arg;
	if (strcmp(req->target, "/v1/attestation") != 0) {
		httpd_respond_text(c, 404, "Not Found", "no such endpoint: POST /v1/attestation is the one");
		return;
	}
	if (strcmp(req->method, "POST") != 0) {
		httpd_respond_text(c, 405, "Method Not Allowed", "use POST");
		return;
	}
	_cleanup_err_ struct err *e = NULL;
	struct odyn_api_request r;
	if (odyn_api_parse_request(body, len, &r, &e) < 0) {
		httpd_respond_text(c, 400, "Bad Request", "%s", e->msg);
		return;
	}
	struct nsm_attest_req nr = {r.user_data, r.nonce, r.public_key, r.user_data_len, r.nonce_len, r.public_key_len};
	_cleanup_buf_ struct buf doc = {0};
	struct nsm *d = NULL;
	int rc = nsm_open(api->nsm_path, &d, &e);
	if (rc == 0)
		rc = nsm_attest(d, &nr, &doc, &e);
	nsm_close(d);
	odyn_api_request_free(&r);
	if (rc < 0) {
		log_warn("api: %s", e->msg);
		httpd_respond_text(c, 500, "Internal Server Error", "attestation failed: %s", e->msg);
		return;
	}
	log_debug("api: attestation document of %zu bytes", doc.len);
	httpd_respond(c, 200, "OK", "application/cbor", doc.data, doc.len);
}

int odyn_api_start(struct evloop *loop, const struct transport_addr *addr, const char *nsm_path, struct odyn_api **out,
                   struct err **err)
{
	struct odyn_api *api = xcalloc(1, sizeof(*api));
	api->nsm_path = xstrdup(nsm_path);
	if (httpd_start(loop, addr, "attestation API", &(struct httpd_limits){.body_max = API_BODY_MAX}, on_request,
	                api, &api->srv, err) < 0) {
		free(api->nsm_path);
		free(api);
		return -1;
	}
	*out = api;
	return 0;
}

void odyn_api_free(struct odyn_api *api)
{
	if (api == NULL)
		return;
	httpd_free(api->srv);
	free(api->nsm_path);
	free(api);
}
