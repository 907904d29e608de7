/* keys/internal.h: the kinds of key behind struct sign_key. */
#ifndef ENCLAVER_KEYS_INTERNAL_H
#define ENCLAVER_KEYS_INTERNAL_H

#include <openssl/provider.h>

#include "keys/keys.h"

struct kms_key;

struct sign_key {
	char *name; /* for messages: the PEM path, the PKCS#11 URI without its PIN, the ARN */
	EVP_PKEY *pkey;       /* PEM and PKCS#11: the private key; KMS: its public key */
	/* PKCS#11: a library context of the key's own, freed (the token's sessions closed) with
	 * the key, before exit: SoftHSM2's destructors run before OpenSSL's exit handler. */
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *prov[2];
	struct kms_key *kms;  /* KMS keys */
	struct buf detached;  /* detached: the signature (DER) */
	bool is_detached;
};

/* key.c: a detached signature's bytes (DER, or raw r || s) as DER. */
int keys_detached_parse(const uint8_t *data, size_t len, struct buf *der, struct err **err);
/* pkcs11.c */
/* public_half: the object's public key (type=public, no login) instead of its private key. */
int keys_pkcs11_open(const char *uri, bool public_half, struct sign_key *k, struct err **err);
/* kms.c */
bool keys_is_kms_arn(const char *spec);
int keys_kms_open(const char *arn, struct sign_key *k, struct err **err);
int keys_kms_sign(struct kms_key *kms, const EVP_MD *md, const uint8_t *digest, size_t digest_len, struct buf *der,
		  struct err **err);
void keys_kms_free(struct kms_key *kms);

#endif
