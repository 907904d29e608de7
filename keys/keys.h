/* keys: signing keys where users keep them. A key is named by one string: a PEM file, a
 * PKCS#11 URI (RFC 7512, through OpenSSL 3's pkcs11 provider), or an AWS KMS key ARN (Sign over
 * SigV4). A signature made elsewhere (detached signing) is opened as a key that gives it back.
 * Every kind signs a digest and answers a DER ECDSA-Sig-Value; PINs, key bytes and AWS
 * credentials stay inside and never reach a message. */
#ifndef ENCLAVER_KEYS_H
#define ENCLAVER_KEYS_H

#include <openssl/evp.h>

#include "common/common.h"
#include "eif/eif.h"

struct sign_key;
/* spec: "pkcs11:..." (the PIN from ?pin-value=, ?pin-source=file:PATH or ENCLAVER_PKCS11_PIN),
 * "arn:aws:kms:REGION:ACCOUNT:key/ID" (credentials from AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; endpoint AWS_ENDPOINT_URL_KMS or
 * AWS_ENDPOINT_URL, else the region's), or a PEM private key file. */
int sign_key_open(const char *spec, struct sign_key **out, struct err **err);
/* A signature file (DER ECDSA-Sig-Value, or raw r || s) made by an external signer. */
int sign_key_detached(const char *sig_path, struct sign_key **out, struct err **err);
void sign_key_free(struct sign_key *k);
/* Signs digest (made with md) into der. k is a struct sign_key (the eif_sign_fn shape). */
int sign_key_sign_digest(void *k, const EVP_MD *md, const uint8_t *digest, size_t digest_len, struct buf *der,
			 struct err **err);

/* An EIF signer from a certificate and a key spec (sign_key_open) or, with key_spec NULL, a
 * detached signature file; close it (also after a failed open) with keys_eif_signer_close. */
struct keys_eif_signer {
	struct sign_key *key;
	struct eif_signer *eif;
};
int keys_eif_signer_open(const char *cert_path, const char *key_spec, const char *signature_path,
			 struct keys_eif_signer *out, struct err **err);
void keys_eif_signer_close(struct keys_eif_signer *s);

/* keys/public.c: the public key that checks signatures: a PEM file as keys_public_key_load
 * reads it (keys/dsse.h: public key, certificate, private key), or the public half of a KMS ARN
 * (GetPublicKey) or a PKCS#11 URI (the token's public object: no PIN). Free with EVP_PKEY_free. */
int keys_public_open(const char *spec, EVP_PKEY **out, struct err **err);
/* True when sig (DER ECDSA) is pub's signature of digest, made with md. */
bool keys_verify_digest(EVP_PKEY *pub, const EVP_MD *md, const uint8_t *digest, size_t len, const uint8_t *sig,
                        size_t sig_len);

#endif
