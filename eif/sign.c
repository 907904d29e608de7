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
#include "common/cose.h"

#define MAX_PEM_SIZE (256u * 1024)

struct eif_signer {
	uint8_t *cert_pem; /* the certificate file, verbatim: it goes into the section */
	size_t cert_pem_len;
	uint8_t *cert_der;
	size_t cert_der_len;
	EVP_PKEY *key;
};

int eif_cert_pem_to_der(const uint8_t *pem, size_t len, uint8_t **der, size_t *der_len, struct err **err)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (cert == NULL)
		return err_openssl(err, "not a PEM certificate");
	*der = NULL;
	int n = i2d_X509(cert, der);
	X509_free(cert);
	if (n <= 0)
		return err_openssl(err, "encode certificate");
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
		err_openssl(err, "not a PEM private key");
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

int eif_signature_section_encode(const struct eif_signer *s, const uint8_t pcr0[48], struct buf *out,
				 struct err **err)
{
	_cleanup_buf_ struct buf payload = {0}, cose = {0};
	encode_pcr_info(pcr0, &payload);
	if (cose_sign1_sign(s->key, (uint8_t *)payload.data, payload.len, &cose, err) < 0)
		return -1;
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

int eif_signature_verify(const struct eif_signature_section *s, const uint8_t pcr0[48], struct err **err)
{
	struct cose_sign1 c;
	if (cose_sign1_decode(s->cose, s->cose_len, &c, err) < 0)
		return err_wrap(err, "signature");
	const uint8_t *p = s->cert_der;
	X509 *cert = d2i_X509(NULL, &p, (long)s->cert_der_len);
	EVP_PKEY *key = cert ? X509_get_pubkey(cert) : NULL;
	X509_free(cert);
	if (key == NULL)
		return err_openssl(err, "certificate public key");
	int r = cose_sign1_verify(&c, key, err);
	EVP_PKEY_free(key);
	if (r < 0)
		return err_wrap(err, "signature");
	_cleanup_buf_ struct buf expected = {0};
	encode_pcr_info(pcr0, &expected);
	if (c.payload_len != expected.len || memcmp(c.payload, expected.data, expected.len) != 0)
		return err_set(err, EINVAL, "the signature is valid but signs a different PCR0 than this image's");
	return 0;
}
