/* dsse: making, reading and verifying DSSE envelopes (keys/dsse.h). The envelope is untrusted
 * input when read back: every field is checked for its type before use and named in errors. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keys/dsse.h"
#include "keys/internal.h"
#include "common/cose.h"
#include "common/json.h"

#define MAX_PUBLIC_KEY_FILE (64u * 1024)

void dsse_pae(const char *payload_type, const void *payload, size_t len, struct buf *out)
{
	buf_printf(out, "DSSEv1 %zu %s %zu ", strlen(payload_type), payload_type, len);
	buf_append(out, payload, len);
}

/* The digest of PAE with the hash the key's curve calls for. */
static int pae_digest(EVP_PKEY *key, const char *payload_type, const void *payload, size_t len, const EVP_MD **md,
                      uint8_t digest[EVP_MAX_MD_SIZE], unsigned *digest_len, struct err **err)
{
	struct cose_alg alg;
	if (cose_alg_for_key(key, &alg, err) < 0)
		return -1;
	*md = alg.md();
	_cleanup_buf_ struct buf pae = {0};
	dsse_pae(payload_type, payload, len, &pae);
	if (EVP_Digest(pae.data, pae.len, digest, digest_len, *md, NULL) != 1)
		return err_openssl(err, "PAE digest");
	return 0;
}

int dsse_envelope_make(const char *payload_type, const void *payload, size_t len, struct sign_key *key, char **json_out,
                       struct err **err)
{
	*json_out = NULL;
	_cleanup_free_ char *payload_b64 = base64_encode(payload, len);
	_cleanup_json_ json_t *sigs = json_array();
	if (key) {
		if (key->is_detached || key->pkey == NULL)
			return err_set(err, EINVAL, "%s: a detached signature cannot sign a statement: give a key",
			               key->name);
		const EVP_MD *md;
		uint8_t digest[EVP_MAX_MD_SIZE];
		unsigned dlen = 0;
		if (pae_digest(key->pkey, payload_type, payload, len, &md, digest, &dlen, err) < 0)
			return err_wrap(err, "signing key %s", key->name);
		_cleanup_buf_ struct buf der = {0};
		if (sign_key_sign_digest(key, md, digest, dlen, &der, err) < 0)
			return err_wrap(err, "signing the statement with %s", key->name);
		_cleanup_free_ char *sig_b64 = base64_encode(der.data, der.len);
		json_array_append_new(sigs, json_pack("{s:s, s:s}", "keyid", "", "sig", sig_b64));
	}
	_cleanup_json_ json_t *env =
	    json_pack("{s:s, s:s, s:O}", "payloadType", payload_type, "payload", payload_b64, "signatures", sigs);
	*json_out = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (*json_out == NULL)
		out_of_memory("DSSE envelope");
	return 0;
}

/* A required string member. */
static int get_string(const json_t *obj, const char *key, const char *where, const char **out, struct err **err)
{
	const json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return err_set(err, EINVAL, "%s%s: missing", where, key);
	if (!json_is_string(v))
		return err_set(err, EINVAL, "%s%s: not a string", where, key);
	*out = json_string_value(v);
	return 0;
}

static int get_base64(const json_t *obj, const char *key, const char *where, uint8_t **out, size_t *out_len,
                      struct err **err)
{
	const char *s;
	if (get_string(obj, key, where, &s, err) < 0)
		return -1;
	if (base64_decode(s, strlen(s), out, out_len) < 0)
		return err_set(err, EINVAL, "%s%s: not base64 (RFC 4648, padded)", where, key);
	return 0;
}

int dsse_envelope_parse(const char *text, size_t len, struct dsse_envelope *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	json_error_t je;
	_cleanup_json_ json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (doc == NULL)
		return err_set(err, EINVAL, "DSSE envelope: not JSON: %s (line %d, column %d)", je.text, je.line,
		               je.column);
	if (!json_is_object(doc))
		return err_set(err, EINVAL, "DSSE envelope: not a JSON object");
	const char *type;
	if (get_string(doc, "payloadType", "DSSE envelope: ", &type, err) < 0)
		return -1;
	out->payload_type = xstrdup(type);
	if (get_base64(doc, "payload", "DSSE envelope: ", &out->payload, &out->payload_len, err) < 0)
		return -1;
	out->payload[out->payload_len] = '\0';
	const json_t *sigs = json_object_get(doc, "signatures");
	if (sigs == NULL)
		return err_set(err, EINVAL, "DSSE envelope: signatures: missing");
	if (!json_is_array(sigs))
		return err_set(err, EINVAL, "DSSE envelope: signatures: not an array");
	size_t n = json_array_size(sigs);
	out->sigs = xcalloc(n ? n : 1, sizeof(*out->sigs));
	for (size_t i = 0; i < n; i++) {
		const json_t *s = json_array_get(sigs, i);
		char where[64];
		snprintf(where, sizeof(where), "DSSE envelope: signatures[%zu]", i);
		if (!json_is_object(s))
			return err_set(err, EINVAL, "%s: not an object", where);
		strcat(where, ".");
		struct dsse_signature *d = &out->sigs[out->n_sigs++];
		const json_t *keyid = json_object_get(s, "keyid");
		if (keyid && !json_is_string(keyid))
			return err_set(err, EINVAL, "%skeyid: not a string", where);
		d->keyid = xstrdup(keyid ? json_string_value(keyid) : "");
		if (get_base64(s, "sig", where, &d->sig, &d->sig_len, err) < 0)
			return -1;
		if (d->sig_len == 0)
			return err_set(err, EINVAL, "%ssig: empty", where);
	}
	return 0;
}

void dsse_envelope_free(struct dsse_envelope *e)
{
	free(e->payload_type);
	free(e->payload);
	for (size_t i = 0; i < e->n_sigs; i++) {
		free(e->sigs[i].keyid);
		free(e->sigs[i].sig);
	}
	free(e->sigs);
	memset(e, 0, sizeof(*e));
}

/* 1: sig is a valid signature of digest by pub; 0: it is not (or is not even DER). */
static int verify_one(EVP_PKEY *pub, const EVP_MD *md, const uint8_t *digest, size_t dlen, const uint8_t *sig,
                      size_t sig_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
	int ok = ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1 &&
	         EVP_PKEY_verify(ctx, sig, sig_len, digest, dlen) == 1;
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

int dsse_envelope_verify(const struct dsse_envelope *e, const char *want_type, EVP_PKEY *pub, size_t *which,
                         struct err **err)
{
	if (strcmp(e->payload_type, want_type) != 0)
		return err_set(err, EINVAL, "DSSE envelope: payloadType is \"%s\", not \"%s\"", e->payload_type,
		               want_type);
	if (e->n_sigs == 0)
		return err_set(err, EPERM, "DSSE envelope: UNSIGNED (no signatures)");
	const EVP_MD *md;
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	if (pae_digest(pub, e->payload_type, e->payload, e->payload_len, &md, digest, &dlen, err) < 0)
		return err_wrap(err, "public key");
	for (size_t i = 0; i < e->n_sigs; i++) {
		if (verify_one(pub, md, digest, dlen, e->sigs[i].sig, e->sigs[i].sig_len)) {
			if (which)
				*which = i;
			return 0;
		}
	}
	return err_set(err, EPERM,
	               "DSSE envelope: none of its %zu signature(s) verifies with this public key over this payload "
	               "(signed by another key, or the payload or signature was changed)",
	               e->n_sigs);
}

/* An encrypted private key is not asked a passphrase for: it is not a public key file. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return 0;
}

int keys_public_key_load(const char *path, EVP_PKEY **out, struct err **err)
{
	*out = NULL;
	_cleanup_free_ char *pem = NULL;
	size_t len = 0;
	if (io_read_file(path, MAX_PUBLIC_KEY_FILE, &pem, &len, err) < 0)
		return err_wrap(err, "public key");
	EVP_PKEY *key = NULL;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (bio)
		key = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	if (key == NULL && bio && BIO_reset(bio) == 1) {
		X509 *cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
		if (cert)
			key = X509_get_pubkey(cert);
		X509_free(cert);
	}
	if (key == NULL && bio && BIO_reset(bio) == 1)
		key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	OPENSSL_cleanse(pem, len);
	ERR_clear_error();
	if (key == NULL)
		return err_set(err, EINVAL, "public key %s: not a PEM public key, certificate or private key", path);
	struct cose_alg alg;
	if (cose_alg_for_key(key, &alg, err) < 0) {
		EVP_PKEY_free(key);
		return err_wrap(err, "public key %s", path);
	}
	*out = key;
	return 0;
}
