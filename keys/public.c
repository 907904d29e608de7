/* public: the public half of a key, for checking signatures (`enclaver verify`, `run --verify-key`,
 * DSSE envelopes): a PEM file through keys_public_key_load (dsse.c: public key, certificate or
 * private key), or the public half of a KMS ARN (GetPublicKey) or a PKCS#11 URI as sign_key_open
 * opens them; and the check of a signature over a digest with it. */
#include <errno.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "keys/dsse.h"
#include "keys/internal.h"
#include "common/cose.h"

/* A copy in the default library context: the key outlives the provider (PKCS#11) it came from. */
static EVP_PKEY *public_copy(EVP_PKEY *key)
{
	uint8_t *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	const uint8_t *p = der;
	EVP_PKEY *out = n > 0 ? d2i_PUBKEY(NULL, &p, n) : NULL;
	OPENSSL_free(der);
	return out;
}

int keys_public_open(const char *spec, EVP_PKEY **out, struct err **err)
{
	*out = NULL;
	if (!str_has_prefix(spec, "pkcs11:") && !keys_is_kms_arn(spec))
		return keys_public_key_load(spec, out, err);
	struct sign_key *k = NULL;
	if (str_has_prefix(spec, "pkcs11:")) {
		/* The token's public object: no PIN needed to check a signature. */
		k = xcalloc(1, sizeof(*k));
		if (keys_pkcs11_open(spec, true, k, err) < 0) {
			err_wrap(err, "public key %s", k->name ? k->name : "pkcs11:...");
			sign_key_free(k);
			return -1;
		}
	} else if (sign_key_open(spec, &k, err) < 0) {
		return -1;
	}
	*out = public_copy(k->pkey);
	_cleanup_free_ char *name = xstrdup(k->name); /* the URI without its PIN */
	sign_key_free(k);
	if (*out == NULL) {
		err_openssl(err, "the public half of the key");
		return err_wrap(err, "key %s", name);
	}
	return 0;
}

bool keys_verify_digest(EVP_PKEY *pub, const EVP_MD *md, const uint8_t *digest, size_t len, const uint8_t *sig,
                        size_t sig_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
	bool ok = ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1 &&
	          EVP_PKEY_verify(ctx, sig, sig_len, digest, len) == 1;
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}
