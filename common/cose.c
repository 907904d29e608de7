/* cose: COSE_Sign1 (RFC 9052) with ECDSA, as EIF signatures and Nitro
 * attestation documents use it: sign, decode (untrusted input) and verify. */
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>

#include "common/common.h"
#include "common/cose.h"

int err_openssl(struct err **err, const char *what)
{
	char msg[256] = "unknown OpenSSL error";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	return err_set(err, EINVAL, "%s: %s", what, msg);
}

int cose_alg_for_key(EVP_PKEY *key, struct cose_alg *out, struct err **err)
{
	char curve[64] = "";
	size_t len = 0;
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof(curve), &len) != 1) {
		ERR_clear_error();
		return err_set(err, EINVAL, "the key is not an EC key (P-256, P-384 or P-521 expected)");
	}
	if (strcmp(curve, "prime256v1") == 0)
		*out = (struct cose_alg){COSE_ES256, "ES256", EVP_sha256, 32};
	else if (strcmp(curve, "secp384r1") == 0)
		*out = (struct cose_alg){COSE_ES384, "ES384", EVP_sha384, 48};
	else if (strcmp(curve, "secp521r1") == 0)
		*out = (struct cose_alg){COSE_ES512, "ES512", EVP_sha512, 66};
	else
		return err_set(err, EINVAL, "unsupported EC curve %s (P-256, P-384 or P-521 expected)", curve);
	return 0;
}

void cose_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload, size_t payload_len,
			struct buf *out)
{
	/* ["Signature1", protected, external_aad = h'', payload] */
	cbor_put_head(out, CBOR_ARRAY, 4);
	cbor_put_tstr(out, "Signature1");
	cbor_put_bstr(out, prot, prot_len);
	cbor_put_bstr(out, "", 0);
	cbor_put_bstr(out, payload, payload_len);
}

static void protected_header(const struct cose_alg *alg, struct buf *prot)
{
	cbor_put_head(prot, CBOR_MAP, 1);
	cbor_put_head(prot, CBOR_UINT, 1); /* label 1: alg */
	cbor_put_head(prot, CBOR_NINT, (uint64_t)(-1 - alg->cose_id));
}

void cose_sign1_tbs(const struct cose_alg *alg, const uint8_t *payload, size_t payload_len, struct buf *tbs)
{
	_cleanup_buf_ struct buf prot = {0};
	protected_header(alg, &prot);
	cose_sig_structure((uint8_t *)prot.data, prot.len, payload, payload_len, tbs);
}

int cose_sign1_assemble(const struct cose_alg *alg, const uint8_t *payload, size_t payload_len, const uint8_t *der,
			size_t der_len, struct buf *out, struct err **err)
{
	const uint8_t *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (sig == NULL || p != der + der_len) {
		ECDSA_SIG_free(sig);
		ERR_clear_error();
		return err_set(err, EINVAL, "the signature is not a DER ECDSA-Sig-Value");
	}
	/* COSE wants r || s, each left-padded to the curve's size. */
	uint8_t raw[132];
	int ok = BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, (int)alg->coord_len) > 0 &&
		 BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + alg->coord_len, (int)alg->coord_len) > 0;
	ECDSA_SIG_free(sig);
	if (!ok)
		return err_set(err, EINVAL, "ECDSA signature does not fit the curve size");
	_cleanup_buf_ struct buf prot = {0};
	protected_header(alg, &prot);
	/* Untagged, as the EIF reference and the NSM write it. */
	cbor_put_head(out, CBOR_ARRAY, 4);
	cbor_put_bstr(out, prot.data, prot.len);
	cbor_put_head(out, CBOR_MAP, 0);
	cbor_put_bstr(out, payload, payload_len);
	cbor_put_bstr(out, raw, 2 * alg->coord_len);
	return 0;
}

int cose_sign1_sign(EVP_PKEY *key, const uint8_t *payload, size_t payload_len, struct buf *out, struct err **err)
{
	struct cose_alg alg;
	if (cose_alg_for_key(key, &alg, err) < 0)
		return -1;
	_cleanup_buf_ struct buf tbs = {0};
	cose_sign1_tbs(&alg, payload, payload_len, &tbs);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t der[160];
	size_t der_len = sizeof(der);
	int ok = ctx && EVP_DigestSignInit(ctx, NULL, alg.md(), NULL, key) == 1 &&
		 EVP_DigestSign(ctx, der, &der_len, (const uint8_t *)tbs.data, tbs.len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return err_openssl(err, "ECDSA signing failed");
	return cose_sign1_assemble(&alg, payload, payload_len, der, der_len, out, err);
}

int cose_sign1_decode(const uint8_t *data, size_t len, struct cose_sign1 *c, struct err **err)
{
	struct cbor_reader r = {.data = data, .len = len};
	uint64_t n;
	enum cbor_major m;
	memset(c, 0, sizeof(*c));
	/* The COSE_Sign1 tag (18) is optional. */
	if (len > 0 && data[0] == 0xd2)
		r.off = 1;
	if (cbor_expect(&r, CBOR_ARRAY, &n, "COSE_Sign1", err) < 0)
		return -1;
	if (n != 4)
		return err_set(err, EINVAL, "COSE_Sign1 has %llu elements, expected 4", (unsigned long long)n);
	if (cbor_read_string(&r, CBOR_BSTR, &c->prot, &c->prot_len, "COSE protected header", err) < 0)
		return -1;
	/* The unprotected header is not used by either producer; skip it. */
	if (cbor_expect(&r, CBOR_MAP, &n, "COSE unprotected header", err) < 0)
		return -1;
	for (uint64_t i = 0; i < 2 * n; i++)
		if (cbor_skip(&r, err) < 0)
			return -1;
	if (cbor_read_string(&r, CBOR_BSTR, &c->payload, &c->payload_len, "COSE payload", err) < 0 ||
	    cbor_read_string(&r, CBOR_BSTR, &c->sig, &c->sig_len, "COSE signature", err) < 0)
		return -1;
	if (r.off != r.len)
		return err_set(err, EINVAL, "offset %zu: trailing bytes after COSE_Sign1", r.off);
	/* Protected header: a map holding the algorithm (label 1). */
	struct cbor_reader p = {.data = c->prot, .len = c->prot_len};
	if (cbor_expect(&p, CBOR_MAP, &n, "COSE protected header", err) < 0)
		return -1;
	bool have_alg = false;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t label, v;
		if (cbor_read_head(&p, &m, &label, err) < 0)
			return -1;
		if (m == CBOR_UINT && label == 1 && !have_alg) {
			if (cbor_read_head(&p, &m, &v, err) < 0)
				return -1;
			if (m != CBOR_NINT || v > 1000)
				return err_set(err, EINVAL, "COSE algorithm is not a small negative integer");
			c->alg = -1 - (int64_t)v;
			have_alg = true;
		} else if (m == CBOR_UINT || m == CBOR_NINT) {
			if (cbor_skip(&p, err) < 0)
				return -1;
		} else {
			return err_set(err, EINVAL, "COSE protected header has a label that is not an integer");
		}
	}
	if (!have_alg || p.off != p.len)
		return err_set(err, EINVAL, "COSE protected header lacks the algorithm");
	return 0;
}

int cose_sign1_verify(const struct cose_sign1 *c, EVP_PKEY *key, struct err **err)
{
	struct cose_alg alg;
	if (cose_alg_for_key(key, &alg, err) < 0)
		return err_wrap(err, "signing key");
	if (c->alg != alg.cose_id)
		return err_set(err, EINVAL, "COSE algorithm %lld does not match the key (%s)", (long long)c->alg, alg.name);
	if (c->sig_len != 2 * alg.coord_len)
		return err_set(err, EINVAL, "COSE signature is %zu bytes, expected %zu for %s", c->sig_len,
			       2 * alg.coord_len, alg.name);
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *br = BN_bin2bn(c->sig, (int)alg.coord_len, NULL);
	BIGNUM *bs = BN_bin2bn(c->sig + alg.coord_len, (int)alg.coord_len, NULL);
	if (sig == NULL || br == NULL || bs == NULL || ECDSA_SIG_set0(sig, br, bs) != 1) {
		BN_free(br);
		BN_free(bs);
		ECDSA_SIG_free(sig);
		return err_openssl(err, "ECDSA signature");
	}
	uint8_t *der = NULL;
	int der_len = i2d_ECDSA_SIG(sig, &der);
	ECDSA_SIG_free(sig);
	_cleanup_buf_ struct buf tbs = {0};
	cose_sig_structure(c->prot, c->prot_len, c->payload, c->payload_len, &tbs);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = der_len > 0 && ctx && EVP_DigestVerifyInit(ctx, NULL, alg.md(), NULL, key) == 1 &&
		 EVP_DigestVerify(ctx, der, (size_t)der_len, (const uint8_t *)tbs.data, tbs.len) == 1;
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	ERR_clear_error();
	if (!ok)
		return err_set(err, EINVAL, "the COSE signature does not verify with the key");
	return 0;
}
