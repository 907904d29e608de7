/* key: opening a signing key by its name (PEM file, PKCS#11 URI, KMS ARN) or a detached
 * signature, and signing a digest with whichever it is. */
#include <errno.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "keys/internal.h"
#include "common/cose.h"

#define MAX_PEM_SIZE (256u * 1024)
#define MAX_SIGNATURE_SIZE 256

static int pem_open(const char *path, struct sign_key *k, struct err **err)
{
	char *pem = NULL;
	size_t len = 0;
	if (io_read_file(path, MAX_PEM_SIZE, &pem, &len, err) < 0)
		return -1;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	k->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	OPENSSL_cleanse(pem, len);
	free(pem);
	if (k->pkey == NULL)
		return err_openssl(err, "not a PEM private key");
	return 0;
}

int sign_key_open(const char *spec, struct sign_key **out, struct err **err)
{
	struct sign_key *k = xcalloc(1, sizeof(*k));
	int r;
	if (str_has_prefix(spec, "pkcs11:"))
		r = keys_pkcs11_open(spec, false, k, err); /* sets k->name, without the PIN */
	else if (keys_is_kms_arn(spec))
		r = keys_kms_open(spec, k, err);
	else
		r = pem_open(spec, k, err);
	if (k->name == NULL)
		k->name = xstrdup(spec);
	if (r == 0 && k->pkey != NULL) {
		struct cose_alg alg;
		r = cose_alg_for_key(k->pkey, &alg, err);
	}
	if (r < 0) {
		err_wrap(err, "signing key %s", k->name);
		sign_key_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

int keys_detached_parse(const uint8_t *data, size_t len, struct buf *der, struct err **err)
{
	/* DER as OpenSSL, KMS and HSMs give it; otherwise raw r || s (COSE's form) of a P-256,
	 * P-384 or P-521 signature, turned into DER here. */
	const uint8_t *p = data;
	ECDSA_SIG *sig = len ? d2i_ECDSA_SIG(NULL, &p, (long)len) : NULL;
	if (sig != NULL && p == data + len) {
		buf_append(der, data, len);
	} else if (len == 64 || len == 96 || len == 132) {
		ECDSA_SIG_free(sig);
		sig = ECDSA_SIG_new();
		BIGNUM *r = BN_bin2bn(data, (int)len / 2, NULL);
		BIGNUM *s = BN_bin2bn(data + len / 2, (int)len / 2, NULL);
		uint8_t *out = NULL;
		int n = -1;
		if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
			n = i2d_ECDSA_SIG(sig, &out);
		} else {
			BN_free(r);
			BN_free(s);
		}
		if (n > 0)
			buf_append(der, out, (size_t)n);
		OPENSSL_free(out);
	}
	ECDSA_SIG_free(sig);
	ERR_clear_error();
	if (der->len == 0)
		return err_set(err, EINVAL,
			       "%zu bytes that are neither a DER ECDSA signature nor raw r || s (64, 96 or 132 bytes)", len);
	return 0;
}

int sign_key_detached(const char *sig_path, struct sign_key **out, struct err **err)
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	if (io_read_file(sig_path, MAX_SIGNATURE_SIZE, &data, &len, err) < 0)
		return err_wrap(err, "--signature");
	struct sign_key *k = xcalloc(1, sizeof(*k));
	k->name = xasprintf("the signature in %s", sig_path);
	k->is_detached = true;
	if (keys_detached_parse((uint8_t *)data, len, &k->detached, err) < 0) {
		err_wrap(err, "--signature %s", sig_path);
		sign_key_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

void sign_key_free(struct sign_key *k)
{
	if (k == NULL)
		return;
	if (k->kms)
		keys_kms_free(k->kms);
	/* The key first: the provider it came from is unloaded after. */
	EVP_PKEY_free(k->pkey);
	for (size_t i = 0; i < 2; i++)
		if (k->prov[i])
			OSSL_PROVIDER_unload(k->prov[i]);
	OSSL_LIB_CTX_free(k->libctx);
	buf_free(&k->detached);
	free(k->name);
	free(k);
}

static int evp_sign_digest(OSSL_LIB_CTX *libctx, EVP_PKEY *key, const EVP_MD *md, const uint8_t *digest, size_t digest_len,
			   struct buf *der, struct err **err)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(libctx, key, NULL);
	size_t len = 0;
	int ok = ctx && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1 &&
		 EVP_PKEY_sign(ctx, NULL, &len, digest, digest_len) == 1;
	if (ok) {
		uint8_t *out = xmalloc(len);
		ok = EVP_PKEY_sign(ctx, out, &len, digest, digest_len) == 1;
		if (ok)
			buf_append(der, out, len);
		free(out);
	}
	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		return err_openssl(err, "ECDSA signing failed");
	return 0;
}

int sign_key_sign_digest(void *key, const EVP_MD *md, const uint8_t *digest, size_t digest_len, struct buf *der,
			 struct err **err)
{
	struct sign_key *k = key;
	if (k->is_detached) {
		/* Made over this digest or not: the caller verifies it with the certificate. */
		buf_append(der, k->detached.data, k->detached.len);
		return 0;
	}
	if (k->kms)
		return keys_kms_sign(k->kms, md, digest, digest_len, der, err);
	return evp_sign_digest(k->libctx, k->pkey, md, digest, digest_len, der, err);
}

int keys_eif_signer_open(const char *cert_path, const char *key_spec, const char *signature_path,
			 struct keys_eif_signer *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	if ((key_spec ? sign_key_open(key_spec, &out->key, err) : sign_key_detached(signature_path, &out->key, err)) < 0)
		return -1;
	struct eif_sign_fn fn = {sign_key_sign_digest, out->key, out->key->pkey, out->key->name};
	return eif_signer_new(cert_path, &fn, &out->eif, err);
}

void keys_eif_signer_close(struct keys_eif_signer *s)
{
	eif_signer_free(s->eif);
	sign_key_free(s->key);
	memset(s, 0, sizeof(*s));
}
