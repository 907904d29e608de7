/* dsse: Dead Simple Signing Envelopes (the DSSE v1 protocol in-toto attestations travel in):
 * {"payloadType", "payload" (base64), "signatures": [{"keyid", "sig" (base64)}]}. A signature is
 * ECDSA (DER) over the digest of PAE(payloadType, payload) =
 * "DSSEv1" SP len(type) SP type SP len(payload) SP payload, with the hash the key's curve calls
 * for (P-256: SHA-256, P-384: SHA-384, P-521: SHA-512), as cosign signs and verifies it. An
 * envelope with no signatures is what an unsigned build writes: parse accepts it, verify refuses. */
#ifndef ENCLAVER_KEYS_DSSE_H
#define ENCLAVER_KEYS_DSSE_H

#include <openssl/evp.h>

#include "common/common.h"

#define DSSE_PAYLOAD_TYPE_INTOTO "application/vnd.in-toto+json"
/* The media type of an envelope stored as a blob (cosign's `.att` layers). */
#define DSSE_MEDIA_TYPE "application/vnd.dsse.envelope.v1+json"

struct sign_key;

struct dsse_signature {
	char *keyid; /* "" when the envelope gave none */
	uint8_t *sig;
	size_t sig_len;
};

struct dsse_envelope {
	char *payload_type;
	uint8_t *payload; /* decoded; NUL-terminated for convenience (payload_len excludes it) */
	size_t payload_len;
	struct dsse_signature *sigs;
	size_t n_sigs;
};

/* PAE(type, payload), the bytes that are signed. */
void dsse_pae(const char *payload_type, const void *payload, size_t len, struct buf *out);

/* The envelope as one line of compact JSON (no newline), fields in the order above; key NULL:
 * no signatures (an unsigned statement). The key signs with keys/' sign_key_sign_digest (PEM,
 * PKCS#11 or KMS); a detached signature cannot sign an envelope. */
int dsse_envelope_make(const char *payload_type, const void *payload, size_t len, struct sign_key *key, char **json_out,
                       struct err **err);

/* Parses untrusted envelope JSON; every error names the field ("signatures[1].sig: not base64").
 * Free with dsse_envelope_free (also after a failed parse). */
int dsse_envelope_parse(const char *text, size_t len, struct dsse_envelope *out, struct err **err);
void dsse_envelope_free(struct dsse_envelope *e);

/* 0 when payloadType is want_type and at least one signature verifies with pub; otherwise an
 * error saying which: no signatures (unsigned), wrong payloadType, or no signature made by this key
 * over this payload. *which (may be NULL) gets the index of the signature that verified. */
int dsse_envelope_verify(const struct dsse_envelope *e, const char *want_type, EVP_PKEY *pub, size_t *which,
                         struct err **err);

/* A public key to verify with, from a PEM file holding a public key (SubjectPublicKeyInfo, as
 * `cosign generate-key-pair` and `openssl ec -pubout` write it), a certificate, or a private key
 * (its public half). Only EC keys on P-256, P-384 and P-521. */
int keys_public_key_load(const char *path, EVP_PKEY **out, struct err **err);

#endif
