/* public: the public half of a key, for checking signatures (`enclaver verify`, `run --verify-key`):
 * from a PEM public key or certificate, or from whatever sign_key_open opens (a PEM private key,
 * a KMS ARN through GetPublicKey, a PKCS#11 URI), and the check of a signature with it. */
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keys/internal.h"
#include "common/cose.h"

#define MAX_PEM_SIZE (256u * 1024)

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

/* A PEM file holding a PUBLIC KEY or a CERTIFICATE; *out NULL when the file holds neither (a
 * private key, say), -1 when it cannot be read. */
static int pem_public(const char *path, EVP_PKEY **out, struct err **err)
{
	*out = NULL;
	_cleanup_free_ char *pem = NULL;
	size_t len = 0;
	if (io_read_file(path, MAX_PEM_SIZE, &pem, &len, err) < 0)
		return -1;
	bool cert = memmem(pem, len, "-----BEGIN CERTIFICATE-----", 27) != NULL;
	bool pub = memmem(pem, len, "-----BEGIN PUBLIC KEY-----", 26) != NULL;
	if (!cert && !pub)
		return 0;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (pub) {
		*out = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	} else {
		X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		*out = x ? X509_get_pubkey(x) : NULL;
		X509_free(x);
	}
	BIO_free(bio);
	if (*out == NULL)
		return err_openssl(err, pub ? "not a valid PEM public key" : "not a valid PEM certificate");
	return 0;
}

int keys_public_open(const char *spec, EVP_PKEY **out, struct err **err)
{
	*out = NULL;
	bool file = !str_has_prefix(spec, "pkcs11:") && !keys_is_kms_arn(spec);
	if (file && pem_public(spec, out, err) < 0)
		return err_wrap(err, "key %s", spec);
	if (*out == NULL) {
		struct sign_key *k = NULL;
		if (sign_key_open(spec, &k, err) < 0)
			return err_wrap(err, "want a PEM public key or certificate, or a key keys/ can open");
		*out = public_copy(k->pkey);
		_cleanup_free_ char *name = xstrdup(k->name);
		sign_key_free(k);
		if (*out == NULL) {
			err_openssl(err, "the public half of the key");
			return err_wrap(err, "key %s", name);
		}
	}
	ERR_clear_error();
	return 0;
}

int keys_verify_signature(EVP_PKEY *key, const EVP_MD *md, const void *data, size_t len, const uint8_t *sig,
                          size_t sig_len, struct err **err)
{
	/* Ed25519 signs the message itself: no digest is named. */
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519)
		md = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int init = ctx ? EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) : 0;
	int ok = init == 1 ? EVP_DigestVerify(ctx, sig, sig_len, data, len) : -1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (init != 1)
		return err_set(err, EINVAL, "this kind of key (%s) cannot check signatures",
		               EVP_PKEY_get0_type_name(key));
	if (ok != 1)
		return err_set(err, EBADMSG, "the signature does not verify with the key");
	return 0;
}
