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
	EVP_PKEY *cert_key; /* the certificate's public key: every signature is checked with it */
	struct cose_alg alg;
	struct eif_sign_fn fn;
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

/* The certificate file: its PEM, DER and public key (which chooses the algorithm). */
static int load_certificate(const char *cert_path, struct eif_signer *s, struct err **err)
{
	char *pem = NULL;
	if (io_read_file(cert_path, MAX_PEM_SIZE, &pem, &s->cert_pem_len, err) < 0)
		return -1;
	s->cert_pem = (uint8_t *)pem;
	if (eif_cert_pem_to_der(s->cert_pem, s->cert_pem_len, &s->cert_der, &s->cert_der_len, err) < 0)
		return -1;
	const uint8_t *p = s->cert_der;
	X509 *cert = d2i_X509(NULL, &p, (long)s->cert_der_len);
	s->cert_key = cert ? X509_get_pubkey(cert) : NULL;
	X509_free(cert);
	if (s->cert_key == NULL)
		return err_openssl(err, "certificate public key");
	return cose_alg_for_key(s->cert_key, &s->alg, err);
}

int eif_signer_new(const char *cert_path, const struct eif_sign_fn *fn, struct eif_signer **out, struct err **err)
{
	struct eif_signer *s = xcalloc(1, sizeof(*s));
	s->fn = *fn;
	if (load_certificate(cert_path, s, err) < 0) {
		err_wrap(err, "signing certificate %s", cert_path);
		goto fail;
	}
	/* A key that does not match the certificate would make images whose
	 * signature never verifies: refuse it here, before any work. */
	if (fn->pub != NULL) {
		int match = EVP_PKEY_eq(s->cert_key, fn->pub);
		ERR_clear_error();
		if (match != 1) {
			err_set(err, EINVAL, "the key %s does not match certificate %s", fn->name, cert_path);
			goto fail;
		}
	}
	*out = s;
	return 0;
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
	EVP_PKEY_free(s->cert_key);
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

/* The payload, the Sig_structure over it and the structure's digest: what the key signs. */
static void signing_input(const struct cose_alg *alg, const uint8_t pcr0[48], struct buf *payload, struct buf *tbs,
			  uint8_t digest[EVP_MAX_MD_SIZE], unsigned *digest_len)
{
	encode_pcr_info(pcr0, payload);
	cose_sign1_tbs(alg, (uint8_t *)payload->data, payload->len, tbs);
	EVP_Digest(tbs->data, tbs->len, digest, digest_len, alg->md(), NULL);
}

int eif_signature_section_encode(const struct eif_signer *s, const uint8_t pcr0[48], struct buf *out,
				 struct err **err)
{
	_cleanup_buf_ struct buf payload = {0}, tbs = {0}, der = {0}, cose = {0};
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned digest_len = 0;
	signing_input(&s->alg, pcr0, &payload, &tbs, digest, &digest_len);
	if (s->fn.sign(s->fn.ctx, s->alg.md(), digest, digest_len, &der, err) < 0)
		return err_wrap(err, "sign with %s", s->fn.name);
	if (cose_sign1_assemble(&s->alg, (uint8_t *)payload.data, payload.len, (uint8_t *)der.data, der.len, &cose,
				err) < 0)
		return err_wrap(err, "signature from %s", s->fn.name);
	/* Whatever made the signature (a KMS, a token, a file from elsewhere), an image whose
	 * signature does not verify with its own certificate is never written. */
	struct cose_sign1 c;
	if (cose_sign1_decode((uint8_t *)cose.data, cose.len, &c, err) < 0 || cose_sign1_verify(&c, s->cert_key, err) < 0)
		return err_wrap(err, "the signature from %s is not one of this image's PCR0 by the certificate's key",
				s->fn.name);
	/* Vec<PcrSignature> with one element, struct fields as text keys. */
	cbor_put_head(out, CBOR_ARRAY, 1);
	cbor_put_head(out, CBOR_MAP, 2);
	cbor_put_tstr(out, "signing_certificate");
	cbor_put_byte_array(out, s->cert_pem, s->cert_pem_len);
	cbor_put_tstr(out, "signature");
	cbor_put_byte_array(out, (uint8_t *)cose.data, cose.len);
	return 0;
}

int eif_to_sign_of_file(const char *eif_path, const char *cert_path, struct eif_to_sign *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	struct eif_signer s = {0};
	struct eif_image *img = NULL;
	_cleanup_buf_ struct buf payload = {0};
	int r = -1;
	if (load_certificate(cert_path, &s, err) < 0) {
		err_wrap(err, "signing certificate %s", cert_path);
		goto done;
	}
	if (eif_image_read(eif_path, &img, err) < 0)
		goto done;
	if (img->crc_stored != img->crc_computed) {
		err_set(err, EINVAL, "%s: CRC mismatch (stored %08x, computed %08x): refusing to sign a damaged image",
			eif_path, img->crc_stored, img->crc_computed);
		goto done;
	}
	memcpy(out->pcr0, img->measurements.pcr0, 48);
	unsigned n = 0;
	signing_input(&s.alg, out->pcr0, &payload, &out->tbs, out->digest, &n);
	out->digest_len = n;
	out->cose_alg = s.alg.name;
	out->digest_name = OBJ_nid2sn(EVP_MD_get_type(s.alg.md()));
	r = 0;
done:
	eif_image_free(img);
	free(s.cert_pem);
	OPENSSL_free(s.cert_der);
	EVP_PKEY_free(s.cert_key);
	return r;
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
