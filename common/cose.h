/* cose: CBOR (common/cbor.c) and COSE_Sign1 with ECDSA (common/cose.c), what EIF signatures, NSM
 * messages and attestation documents are made of; and OpenSSL's errors in our error chain. Apart
 * from common.h so that code without them does not pull OpenSSL in. */
#ifndef ENCLAVER_COMMON_COSE_H
#define ENCLAVER_COMMON_COSE_H

#include <openssl/evp.h>

#include "common/common.h"

/* ---------------------------------------------------------------- CBOR
 * The subset of CBOR (RFC 8949) that EIF signatures, COSE and Nitro
 * attestation documents use: definite lengths, integers, strings, arrays,
 * maps, tags, and the simple values false/true/null; minimal heads on
 * output. The reader takes untrusted bytes: every length is checked against
 * what is left before use, and errors name the offset (base + position). */
enum cbor_major {
	CBOR_UINT = 0,
	CBOR_NINT = 1,
	CBOR_BSTR = 2,
	CBOR_TSTR = 3,
	CBOR_ARRAY = 4,
	CBOR_MAP = 5,
	CBOR_TAG = 6,
	CBOR_SIMPLE = 7, /* value: 20 false, 21 true, 22 null, 23 undefined */
};
#define CBOR_SIMPLE_FALSE 20
#define CBOR_SIMPLE_TRUE 21
#define CBOR_SIMPLE_NULL 22
void cbor_put_head(struct buf *b, enum cbor_major major, uint64_t value);
void cbor_put_bstr(struct buf *b, const void *data, size_t len);
void cbor_put_tstr(struct buf *b, const char *s);
/* serde_cbor's encoding of a Vec<u8>: an array of one uint per byte. */
void cbor_put_byte_array(struct buf *b, const uint8_t *data, size_t len);

struct cbor_reader {
	const uint8_t *data;
	size_t len;
	size_t off;
	uint64_t base; /* file offset of data[0], for messages */
};
int cbor_read_head(struct cbor_reader *r, enum cbor_major *major, uint64_t *value, struct err **err);
/* Reads a head and requires the given major type. */
int cbor_expect(struct cbor_reader *r, enum cbor_major major, uint64_t *value, const char *what, struct err **err);
/* A bstr or tstr: points into the input. */
int cbor_read_string(struct cbor_reader *r, enum cbor_major major, const uint8_t **data, size_t *len, const char *what,
		     struct err **err);
/* An array of uints each < 256 (serde_cbor's Vec<u8>); caller frees *out. */
int cbor_read_byte_array(struct cbor_reader *r, uint8_t **out, size_t *len, const char *what, struct err **err);
/* Skips one whole item, nested ones included (at most 16 levels deep). */
int cbor_skip(struct cbor_reader *r, struct err **err);

/* ---------------------------------------------------------------- COSE
 * COSE_Sign1 with ECDSA (ES256/ES384/ES512, chosen by the key's curve). */
enum { COSE_ES256 = -7, COSE_ES384 = -35, COSE_ES512 = -36 };
struct cose_alg {
	int cose_id;
	const char *name;
	const EVP_MD *(*md)(void);
	size_t coord_len; /* bytes of r and of s in the signature */
};
int cose_alg_for_key(EVP_PKEY *key, struct cose_alg *out, struct err **err);
/* The Sig_structure that is signed: ["Signature1", protected, h'', payload]. */
void cose_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload, size_t payload_len,
			struct buf *out);
/* The bytes an ECDSA signer signs for a COSE_Sign1 of payload with protected header {1: alg}
 * (the Sig_structure; the signer hashes it with alg->md). */
void cose_sign1_tbs(const struct cose_alg *alg, const uint8_t *payload, size_t payload_len, struct buf *tbs);
/* Appends that untagged COSE_Sign1 given the signer's DER ECDSA-Sig-Value over the tbs. */
int cose_sign1_assemble(const struct cose_alg *alg, const uint8_t *payload, size_t payload_len, const uint8_t *der,
			size_t der_len, struct buf *out, struct err **err);
/* Appends an untagged COSE_Sign1 of payload, protected header {1: alg}. */
int cose_sign1_sign(EVP_PKEY *key, const uint8_t *payload, size_t payload_len, struct buf *out, struct err **err);
/* A decoded COSE_Sign1; the pointers point into the input. */
struct cose_sign1 {
	const uint8_t *prot, *payload, *sig;
	size_t prot_len, payload_len, sig_len;
	int64_t alg;
};
int cose_sign1_decode(const uint8_t *data, size_t len, struct cose_sign1 *c, struct err **err);
/* 0 when the signature is valid for key (whose curve must match the alg). */
int cose_sign1_verify(const struct cose_sign1 *c, EVP_PKEY *key, struct err **err);
/* err_set with OpenSSL's first queued error appended (and the queue cleared). */
int err_openssl(struct err **err, const char *what);

#endif
