/* sign: the EIF signature section: a COSE_Sign1 (RFC 9052) over
 * PcrInfo{register_index: 0, register_value: PCR0}, with the certificate,
 * all encoded as the reference's serde_cbor does (docs/eif-format.md §4). */
#include <errno.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "eif/internal.h"

#define MAX_PEM_SIZE (256u * 1024)

struct eif_signer {
	uint8_t *cert_pem; /* the certificate file, verbatim: it goes into the section */
	size_t cert_pem_len;
	uint8_t *cert_der;
	size_t cert_der_len;
	EVP_PKEY *key;
};

/* COSE algorithm for an EC key's curve: ES256 (-7), ES384 (-35), ES512 (-36). */
struct cose_alg {
	int cose_id;
	const char *name;
	const EVP_MD *(*md)(void);
	size_t coord_len; /* bytes of r and of s in the signature */
};

static int cose_alg_for_key(EVP_PKEY *key, struct cose_alg *out, struct err **err)
{
	char curve[64] = "";
	size_t len = 0;
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof(curve), &len) != 1)
		return err_set(err, EINVAL, "the key is not an EC key (P-256, P-384 or P-521 expected)");
	if (strcmp(curve, "prime256v1") == 0)
		*out = (struct cose_alg){-7, "ES256", EVP_sha256, 32};
	else if (strcmp(curve, "secp384r1") == 0)
		*out = (struct cose_alg){-35, "ES384", EVP_sha384, 48};
	else if (strcmp(curve, "secp521r1") == 0)
		*out = (struct cose_alg){-36, "ES512", EVP_sha512, 66};
	else
		return err_set(err, EINVAL, "unsupported EC curve %s (P-256, P-384 or P-521 expected)", curve);
	return 0;
}

static int openssl_err(struct err **err, const char *what)
{
	char msg[256] = "unknown OpenSSL error";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	return err_set(err, EINVAL, "%s: %s", what, msg);
}

int eif_cert_pem_to_der(const uint8_t *pem, size_t len, uint8_t **der, size_t *der_len, struct err **err)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (cert == NULL)
		return openssl_err(err, "not a PEM certificate");
	*der = NULL;
	int n = i2d_X509(cert, der);
	X509_free(cert);
	if (n <= 0)
		return openssl_err(err, "encode certificate");
	*der_len = (size_t)n;
	return 0;
}

int eif_signer_load(const char *cert_path, const char *key_path, struct eif_signer **out, struct err **err)
{
	struct eif_signer *s = xcalloc(1, sizeof(*s));
	char *pem = NULL, *key_pem = NULL;
	size_t key_len = 0;
	if (io_read_file(cert_path, MAX_PEM_SIZE, &pem, &s->cert_pem_len, err) < 0)
		goto fail_wrap_cert;
	s->cert_pem = (uint8_t *)pem;
	if (eif_cert_pem_to_der(s->cert_pem, s->cert_pem_len, &s->cert_der, &s->cert_der_len, err) < 0)
		goto fail_wrap_cert;
	if (io_read_file(key_path, MAX_PEM_SIZE, &key_pem, &key_len, err) < 0)
		goto fail_wrap_key;
	BIO *bio = BIO_new_mem_buf(key_pem, (int)key_len);
	s->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	OPENSSL_cleanse(key_pem, key_len);
	free(key_pem);
	if (s->key == NULL) {
		openssl_err(err, "not a PEM private key");
		goto fail_wrap_key;
	}
	struct cose_alg alg;
	if (cose_alg_for_key(s->key, &alg, err) < 0)
		goto fail_wrap_key;
	/* A key that does not match the certificate would make images whose
	 * signature never verifies: refuse it here. */
	const uint8_t *p = s->cert_der;
	X509 *cert = d2i_X509(NULL, &p, (long)s->cert_der_len);
	int match = cert ? X509_check_private_key(cert, s->key) : 0;
	X509_free(cert);
	ERR_clear_error();
	if (match != 1) {
		err_set(err, EINVAL, "private key %s does not match certificate %s", key_path, cert_path);
		goto fail;
	}
	*out = s;
	return 0;
fail_wrap_cert:
	err_wrap(err, "signing certificate");
	goto fail;
fail_wrap_key:
	err_wrap(err, "private key %s", key_path);
fail:
	eif_signer_free(s);
	return -1;
}

void eif_signer_free(struct eif_signer *s)
{
	if (s == NULL)
		return;
	free(s->cert_pem);
	OPENSSL_free(s->cert_der);
	EVP_PKEY_free(s->key);
	free(s);
}

void eif_signer_cert_der(const struct eif_signer *s, const uint8_t **der, size_t *len)
{
	*der = s->cert_der;
	*len = s->cert_der_len;
}

int eif_pcr8_of_certificate_file(const char *pem_path, uint8_t out[48], struct err **err)
{
	_cleanup_free_ char *pem = NULL;
	size_t len;
	uint8_t *der = NULL;
	size_t der_len;
	if (io_read_file(pem_path, MAX_PEM_SIZE, &pem, &len, err) < 0 ||
	    eif_cert_pem_to_der((uint8_t *)pem, len, &der, &der_len, err) < 0)
		return err_wrap(err, "signing certificate %s", pem_path);
	int r = eif_pcr_of_bytes(EIF_HASH_SHA384, der, der_len, out, err);
	OPENSSL_free(der);
	return r;
}

/* serde_cbor's PcrInfo{register_index: 0, register_value: pcr0}. */
static void encode_pcr_info(const uint8_t pcr0[48], struct buf *out)
{
	cbor_put_head(out, CBOR_MAP, 2);
	cbor_put_tstr(out, "register_index");
	cbor_put_head(out, CBOR_UINT, 0);
	cbor_put_tstr(out, "register_value");
	cbor_put_byte_array(out, pcr0, 48);
}

/* Sig_structure = ["Signature1", protected, external_aad = h'', payload]. */
static void encode_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload, size_t payload_len,
				 struct buf *out)
{
	cbor_put_head(out, CBOR_ARRAY, 4);
	cbor_put_tstr(out, "Signature1");
	cbor_put_bstr(out, prot, prot_len);
	cbor_put_bstr(out, "", 0);
	cbor_put_bstr(out, payload, payload_len);
}

static void encode_protected(const struct cose_alg *alg, struct buf *out)
{
	cbor_put_head(out, CBOR_MAP, 1);
	cbor_put_head(out, CBOR_UINT, 1); /* label 1: alg */
	cbor_put_head(out, CBOR_NINT, (uint64_t)(-1 - alg->cose_id));
}

static int ecdsa_sign_raw(EVP_PKEY *key, const struct cose_alg *alg, const struct buf *tbs, uint8_t *sig_out,
			  struct err **err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t der[160];
	size_t der_len = sizeof(der);
	int ok = ctx && EVP_DigestSignInit(ctx, NULL, alg->md(), NULL, key) == 1 &&
		 EVP_DigestSign(ctx, der, &der_len, (const uint8_t *)tbs->data, tbs->len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return openssl_err(err, "ECDSA signing failed");
	const uint8_t *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (sig == NULL)
		return openssl_err(err, "decode ECDSA signature");
	/* COSE wants r || s, each left-padded to the curve's size. */
	ok = BN_bn2binpad(ECDSA_SIG_get0_r(sig), sig_out, (int)alg->coord_len) > 0 &&
	     BN_bn2binpad(ECDSA_SIG_get0_s(sig), sig_out + alg->coord_len, (int)alg->coord_len) > 0;
	ECDSA_SIG_free(sig);
	if (!ok)
		return err_set(err, EINVAL, "ECDSA signature does not fit the curve size");
	return 0;
}

int eif_signature_section_encode(const struct eif_signer *s, const uint8_t pcr0[48], struct buf *out,
				 struct err **err)
{
	struct cose_alg alg;
	if (cose_alg_for_key(s->key, &alg, err) < 0)
		return -1;
	_cleanup_buf_ struct buf prot = {0}, payload = {0}, tbs = {0}, cose = {0};
	encode_protected(&alg, &prot);
	encode_pcr_info(pcr0, &payload);
	encode_sig_structure((uint8_t *)prot.data, prot.len, (uint8_t *)payload.data, payload.len, &tbs);
	uint8_t sig[132];
	if (ecdsa_sign_raw(s->key, &alg, &tbs, sig, err) < 0)
		return -1;
	/* COSE_Sign1 without the CBOR tag 18, as the reference writes it. */
	cbor_put_head(&cose, CBOR_ARRAY, 4);
	cbor_put_bstr(&cose, prot.data, prot.len);
	cbor_put_head(&cose, CBOR_MAP, 0);
	cbor_put_bstr(&cose, payload.data, payload.len);
	cbor_put_bstr(&cose, sig, 2 * alg.coord_len);
	/* Vec<PcrSignature> with one element, struct fields as text keys. */
	cbor_put_head(out, CBOR_ARRAY, 1);
	cbor_put_head(out, CBOR_MAP, 2);
	cbor_put_tstr(out, "signing_certificate");
	cbor_put_byte_array(out, s->cert_pem, s->cert_pem_len);
	cbor_put_tstr(out, "signature");
	cbor_put_byte_array(out, (uint8_t *)cose.data, cose.len);
	return 0;
}

int eif_signature_section_decode(const uint8_t *data, size_t len, uint64_t file_off, struct eif_signature_section *out,
				 struct err **err)
{
	memset(out, 0, sizeof(*out));
	struct cbor_reader r = {.data = data, .len = len, .base = file_off};
	uint64_t n;
	if (cbor_expect(&r, CBOR_ARRAY, &n, "signature list", err) < 0)
		return -1;
	if (n != 1)
		return err_set(err, EINVAL, "offset %llu: signature list has %llu entries, expected 1",
			       (unsigned long long)file_off, (unsigned long long)n);
	if (cbor_expect(&r, CBOR_MAP, &n, "signature entry", err) < 0)
		goto fail;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *key;
		size_t key_len;
		uint64_t at = r.base + r.off;
		if (cbor_read_string(&r, CBOR_TSTR, &key, &key_len, "signature entry key", err) < 0)
			goto fail;
		if (key_len == 19 && memcmp(key, "signing_certificate", 19) == 0 && out->cert_pem == NULL) {
			if (cbor_read_byte_array(&r, &out->cert_pem, &out->cert_pem_len, "signing_certificate", err) < 0)
				goto fail;
		} else if (key_len == 9 && memcmp(key, "signature", 9) == 0 && out->cose == NULL) {
			if (cbor_read_byte_array(&r, &out->cose, &out->cose_len, "signature", err) < 0)
				goto fail;
		} else {
			err_set(err, EINVAL, "offset %llu: unexpected or repeated key \"%.*s\" in the signature entry",
				(unsigned long long)at, (int)(key_len > 40 ? 40 : key_len), key);
			goto fail;
		}
	}
	if (out->cert_pem == NULL || out->cose == NULL) {
		err_set(err, EINVAL, "offset %llu: signature entry lacks %s", (unsigned long long)file_off,
			out->cert_pem ? "\"signature\"" : "\"signing_certificate\"");
		goto fail;
	}
	if (r.off != r.len) {
		err_set(err, EINVAL, "offset %llu: %zu bytes of trailing data after the signature list",
			(unsigned long long)(file_off + r.off), r.len - r.off);
		goto fail;
	}
	if (eif_cert_pem_to_der(out->cert_pem, out->cert_pem_len, &out->cert_der, &out->cert_der_len, err) < 0) {
		err_wrap(err, "offset %llu: signing_certificate", (unsigned long long)file_off);
		goto fail;
	}
	return 0;
fail:
	eif_signature_section_free(out);
	return -1;
}

void eif_signature_section_free(struct eif_signature_section *s)
{
	free(s->cert_pem);
	free(s->cose);
	OPENSSL_free(s->cert_der);
	memset(s, 0, sizeof(*s));
}

/* Reads the COSE_Sign1 and the algorithm in its protected header. */
struct cose_sign1 {
	const uint8_t *prot, *payload, *sig;
	size_t prot_len, payload_len, sig_len;
	int64_t alg;
};

static int cose_decode(const uint8_t *data, size_t len, struct cose_sign1 *c, struct err **err)
{
	struct cbor_reader r = {.data = data, .len = len};
	uint64_t n;
	enum cbor_major m;
	/* An optional tag 18 is not produced by the reference; not accepted. */
	if (cbor_expect(&r, CBOR_ARRAY, &n, "COSE_Sign1", err) < 0)
		return -1;
	if (n != 4)
		return err_set(err, EINVAL, "COSE_Sign1 has %llu elements, expected 4", (unsigned long long)n);
	if (cbor_read_string(&r, CBOR_BSTR, &c->prot, &c->prot_len, "COSE protected header", err) < 0)
		return -1;
	if (cbor_expect(&r, CBOR_MAP, &n, "COSE unprotected header", err) < 0)
		return -1;
	if (n != 0)
		return err_set(err, EINVAL, "COSE unprotected header is not empty");
	if (cbor_read_string(&r, CBOR_BSTR, &c->payload, &c->payload_len, "COSE payload", err) < 0 ||
	    cbor_read_string(&r, CBOR_BSTR, &c->sig, &c->sig_len, "COSE signature", err) < 0)
		return -1;
	if (r.off != r.len)
		return err_set(err, EINVAL, "trailing bytes after COSE_Sign1");
	struct cbor_reader p = {.data = c->prot, .len = c->prot_len};
	uint64_t label, v;
	if (cbor_expect(&p, CBOR_MAP, &n, "COSE protected header", err) < 0)
		return -1;
	if (n != 1 || cbor_expect(&p, CBOR_UINT, &label, "COSE protected header label", err) < 0 || label != 1)
		return err_set(err, EINVAL, "COSE protected header must hold only the algorithm");
	if (cbor_read_head(&p, &m, &v, err) < 0)
		return -1;
	if (m != CBOR_NINT || v > 1000 || p.off != p.len)
		return err_set(err, EINVAL, "COSE algorithm is not a small negative integer");
	c->alg = -1 - (int64_t)v;
	return 0;
}

int eif_signature_verify(const struct eif_signature_section *s, const uint8_t pcr0[48], struct err **err)
{
	struct cose_sign1 c;
	if (cose_decode(s->cose, s->cose_len, &c, err) < 0)
		return err_wrap(err, "signature");
	const uint8_t *p = s->cert_der;
	X509 *cert = d2i_X509(NULL, &p, (long)s->cert_der_len);
	EVP_PKEY *key = cert ? X509_get_pubkey(cert) : NULL;
	X509_free(cert);
	if (key == NULL)
		return openssl_err(err, "certificate public key");
	struct cose_alg alg;
	int r = -1;
	ECDSA_SIG *sig = NULL;
	uint8_t *der = NULL;
	EVP_MD_CTX *ctx = NULL;
	_cleanup_buf_ struct buf tbs = {0}, expected = {0};
	if (cose_alg_for_key(key, &alg, err) < 0) {
		err_wrap(err, "certificate");
		goto done;
	}
	if (c.alg != alg.cose_id) {
		err_set(err, EINVAL, "COSE algorithm %lld does not match the certificate's key (%s)", (long long)c.alg,
			alg.name);
		goto done;
	}
	if (c.sig_len != 2 * alg.coord_len) {
		err_set(err, EINVAL, "COSE signature is %zu bytes, expected %zu for %s", c.sig_len, 2 * alg.coord_len,
			alg.name);
		goto done;
	}
	sig = ECDSA_SIG_new();
	BIGNUM *br = BN_bin2bn(c.sig, (int)alg.coord_len, NULL);
	BIGNUM *bs = BN_bin2bn(c.sig + alg.coord_len, (int)alg.coord_len, NULL);
	if (sig == NULL || br == NULL || bs == NULL || ECDSA_SIG_set0(sig, br, bs) != 1) {
		BN_free(br);
		BN_free(bs);
		openssl_err(err, "ECDSA signature");
		goto done;
	}
	int der_len = i2d_ECDSA_SIG(sig, &der);
	encode_sig_structure(c.prot, c.prot_len, c.payload, c.payload_len, &tbs);
	ctx = EVP_MD_CTX_new();
	if (der_len <= 0 || ctx == NULL || EVP_DigestVerifyInit(ctx, NULL, alg.md(), NULL, key) != 1 ||
	    EVP_DigestVerify(ctx, der, (size_t)der_len, (const uint8_t *)tbs.data, tbs.len) != 1) {
		ERR_clear_error();
		err_set(err, EINVAL, "the COSE signature does not verify with the certificate's key");
		goto done;
	}
	encode_pcr_info(pcr0, &expected);
	if (c.payload_len != expected.len || memcmp(c.payload, expected.data, expected.len) != 0) {
		err_set(err, EINVAL, "the signature is valid but signs a different PCR0 than this image's");
		goto done;
	}
	r = 0;
done:
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	EVP_PKEY_free(key);
	return r;
}
