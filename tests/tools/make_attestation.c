/* make_attestation: writes a test PKI and Nitro-style attestation documents
 * signed by it, for the verify-attestation tests: a root and an intermediate
 * CA and a short-lived leaf (all P-384, as AWS's), and documents that are
 * valid, tampered, expired, truncated, or name another root, and one
 * unsigned as QEMU's emulated NSM writes them.
 * Usage: make_attestation DIR PCR0_HEX NONCE_HEX [PCR1_HEX PCR2_HEX]
 * (PCR1 and PCR2 default to bytes of 1 and 2, PCR3 and PCR4 are bytes of 3 and 4). */
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <time.h>

#include "common/common.h"
#include "common/cose.h"

static EVP_PKEY *new_key(void)
{
	return EVP_EC_gen("secp384r1");
}

static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long not_before,
		      long not_after, bool ca, long serial)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), not_before);
	X509_gmtime_adj(X509_getm_notAfter(x), not_after);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, bc, -1);
	X509_EXTENSION_free(bc);
	X509_EXTENSION *ku = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	X509_add_ext(x, ku, -1);
	X509_EXTENSION_free(ku);
	X509_sign(x, issuer_key, EVP_sha384());
	return x;
}

static void put_der(struct buf *b, X509 *x)
{
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);
	cbor_put_bstr(b, der, (size_t)n);
	OPENSSL_free(der);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void write_pem(const char *dir, const char *name, X509 *x)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	PEM_write_X509(f, x);
	fclose(f);
}

/* PCR1 and PCR2 when given (a build's, for `verify-attestation --image`). */
static uint8_t pcr12[2][48];
static bool have_pcr12;

/* The payload's fields before the certificates: module_id, digest, timestamp, 16 PCRs. */
static void payload_head(struct buf *p, uint64_t ts_ms, const uint8_t *pcr0)
{
	cbor_put_head(p, CBOR_MAP, 9);
	cbor_put_tstr(p, "module_id");
	cbor_put_tstr(p, "i-0123456789abcdef0-enc0123456789abcdef");
	cbor_put_tstr(p, "digest");
	cbor_put_tstr(p, "SHA384");
	cbor_put_tstr(p, "timestamp");
	cbor_put_head(p, CBOR_UINT, ts_ms);
	cbor_put_tstr(p, "pcrs");
	cbor_put_head(p, CBOR_MAP, 16);
	for (int i = 0; i < 16; i++) {
		uint8_t v[48] = {0};
		if (i == 0)
			memcpy(v, pcr0, 48);
		else if ((i == 1 || i == 2) && have_pcr12)
			memcpy(v, pcr12[i - 1], 48);
		else if (i < 5)
			memset(v, i, 48);
		cbor_put_head(p, CBOR_UINT, (uint64_t)i);
		cbor_put_bstr(p, v, 48);
	}
}

/* The fields after the certificates: public_key (null), user_data "hello", nonce. */
static void payload_tail(struct buf *p, const uint8_t *nonce, size_t nonce_len)
{
	cbor_put_tstr(p, "public_key");
	buf_putc(p, (char)0xf6); /* null, as the NSM writes an absent field */
	cbor_put_tstr(p, "user_data");
	cbor_put_bstr(p, "hello", 5);
	cbor_put_tstr(p, "nonce");
	cbor_put_bstr(p, nonce, nonce_len);
}

/* The document payload and its COSE_Sign1, signed by leaf_key. */
static void make_doc(struct buf *out, EVP_PKEY *leaf_key, X509 *leaf, X509 *root, X509 *inter, uint64_t ts_ms,
		     const uint8_t *pcr0, const uint8_t *nonce, size_t nonce_len)
{
	_cleanup_buf_ struct buf p = {0};
	payload_head(&p, ts_ms, pcr0);
	cbor_put_tstr(&p, "certificate");
	put_der(&p, leaf);
	cbor_put_tstr(&p, "cabundle");
	cbor_put_head(&p, CBOR_ARRAY, 2);
	put_der(&p, root);
	put_der(&p, inter);
	payload_tail(&p, nonce, nonce_len);
	if (cose_sign1_sign(leaf_key, (uint8_t *)p.data, p.len, out, NULL) < 0) {
		fputs("signing failed\n", stderr);
		exit(1);
	}
}

/* A document shaped as QEMU's emulated NSM writes one (hw/virtio/virtio-nsm.c
 * in QEMU 10.0): protected header {1: -1}, an empty unprotected header, the
 * certificate and the one cabundle entry 64 zero bytes, the signature 64 zero
 * bytes. The e2e test checks the real one (tests/e2e/odyn.sh). */
static void make_emulated_doc(struct buf *out, uint64_t ts_ms, const uint8_t *pcr0, const uint8_t *nonce,
			      size_t nonce_len)
{
	static const uint8_t zero[64];
	static const uint8_t prot[] = {0xa1, 0x01, 0x20};
	_cleanup_buf_ struct buf p = {0};
	payload_head(&p, ts_ms, pcr0);
	cbor_put_tstr(&p, "certificate");
	cbor_put_bstr(&p, zero, sizeof(zero));
	cbor_put_tstr(&p, "cabundle");
	cbor_put_head(&p, CBOR_ARRAY, 1);
	cbor_put_bstr(&p, zero, sizeof(zero));
	payload_tail(&p, nonce, nonce_len);
	cbor_put_head(out, CBOR_ARRAY, 4);
	cbor_put_bstr(out, prot, sizeof(prot));
	cbor_put_head(out, CBOR_MAP, 0);
	cbor_put_bstr(out, p.data, p.len);
	cbor_put_bstr(out, zero, sizeof(zero));
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 6) {
		fputs("usage: make_attestation DIR PCR0_HEX NONCE_HEX [PCR1_HEX PCR2_HEX]\n", stderr);
		return 2;
	}
	const char *dir = argv[1];
	uint8_t pcr0[48], nonce[64];
	size_t nonce_len = strlen(argv[3]) / 2;
	if (hex_decode(argv[2], pcr0, 48) < 0 || nonce_len > sizeof(nonce) || hex_decode(argv[3], nonce, nonce_len) < 0) {
		fputs("bad hex\n", stderr);
		return 2;
	}
	if (argc == 6) {
		if (hex_decode(argv[4], pcr12[0], 48) < 0 || hex_decode(argv[5], pcr12[1], 48) < 0) {
			fputs("bad hex\n", stderr);
			return 2;
		}
		have_pcr12 = true;
	}
	const long day = 86400;
	EVP_PKEY *root_key = new_key(), *inter_key = new_key(), *leaf_key = new_key(), *other_key = new_key();
	X509 *root = new_cert(root_key, "test-nitro-root", NULL, root_key, -day, 3650 * day, true, 1);
	X509 *inter = new_cert(inter_key, "test-nitro-intermediate", root, root_key, -day, 30 * day, true, 2);
	/* NSM leaf certificates live for hours. */
	X509 *leaf = new_cert(leaf_key, "test-nitro-leaf", inter, inter_key, -3600, 3 * 3600, false, 3);
	X509 *other = new_cert(other_key, "test-other-root", NULL, other_key, -day, 3650 * day, true, 4);
	write_pem(dir, "root.pem", root);
	write_pem(dir, "other-root.pem", other);
	write_pem(dir, "intermediate.pem", inter);
	write_pem(dir, "leaf.pem", leaf);

	uint64_t now_ms = (uint64_t)time(NULL) * 1000;
	_cleanup_buf_ struct buf valid = {0}, expired = {0};
	make_doc(&valid, leaf_key, leaf, root, inter, now_ms, pcr0, nonce, nonce_len);
	write_file(dir, "valid.cbor", valid.data, valid.len);
	/* Tampered: the last byte of the signature. */
	valid.data[valid.len - 1] ^= 0x01;
	write_file(dir, "tampered.cbor", valid.data, valid.len);
	valid.data[valid.len - 1] ^= 0x01;
	write_file(dir, "truncated.cbor", valid.data, valid.len - 40);
	/* Expired: dated two days on, after the leaf's validity. */
	make_doc(&expired, leaf_key, leaf, root, inter, now_ms + 2 * day * 1000, pcr0, nonce, nonce_len);
	write_file(dir, "expired.cbor", expired.data, expired.len);
	/* Signed by a key other than the certificate's. */
	_cleanup_buf_ struct buf wrongkey = {0};
	make_doc(&wrongkey, other_key, leaf, root, inter, now_ms, pcr0, nonce, nonce_len);
	write_file(dir, "wrong-key.cbor", wrongkey.data, wrongkey.len);
	_cleanup_buf_ struct buf emulated = {0};
	make_emulated_doc(&emulated, now_ms, pcr0, nonce, nonce_len);
	write_file(dir, "emulated.cbor", emulated.data, emulated.len);

	X509_free(root);
	X509_free(inter);
	X509_free(leaf);
	X509_free(other);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(inter_key);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(other_key);
	return 0;
}
