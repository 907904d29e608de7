/* keys/internal.h: the kinds of key behind struct sign_key. */
#ifndef ENCLAVER_KEYS_INTERNAL_H
#define ENCLAVER_KEYS_INTERNAL_H

#include <openssl/provider.h>

#include "keys/keys.h"

struct kms_key;

struct sign_key {
	char *name;
	EVP_PKEY *pkey;       /* PEM and PKCS#11: the private key; KMS: its public key */
	OSSL_PROVIDER *prov;  /* the pkcs11 provider when this key loaded it */
	struct kms_key *kms;  /* KMS keys */
	struct buf detached;  /* detached: the signature (DER) */
	bool is_detached;
};

/* pkcs11.c */
int keys_pkcs11_open(const char *uri, struct sign_key *k, struct err **err);
/* kms.c */
bool keys_is_kms_arn(const char *spec);
int keys_kms_open(const char *arn, struct sign_key *k, struct err **err);
int keys_kms_sign(struct kms_key *kms, const EVP_MD *md, const uint8_t *digest, size_t digest_len, struct buf *der,
		  struct err **err);
void keys_kms_free(struct kms_key *kms);

#endif
