/* verify: checks an attestation document the way AWS documents it: the
 * COSE_Sign1 structure, the payload's fields, the certificate chain from the
 * trusted root through the cabundle to the signing certificate (valid at the
 * document's time), the ES384 signature, then the caller's expected PCRs and
 * nonce. Every check is run and reported; the first failure is explained. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include "attest/attest.h"
#include "common/cose.h"

static void fail(struct attest_verdict *v, bool *check, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct attest_verdict *v, bool *check, const char *fmt, ...)
{
	*check = false;
	if (v->problem != NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&v->problem, fmt, ap) < 0)
		abort();
	va_end(ap);
}

static X509 *load_root(const char *path, struct err **err)
{
	_cleanup_free_ char *pem = NULL;
	size_t len;
	if (path == NULL)
		len = strlen(attest_aws_nitro_root_pem);
	else if (io_read_file(path, 1u << 20, &pem, &len, err) < 0)
		return NULL;
	BIO *bio = BIO_new_mem_buf(path ? pem : attest_aws_nitro_root_pem, (int)len);
	X509 *root = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (root == NULL) {
		err_openssl(err, "root certificate");
		err_wrap(err, "%s", path ? path : "built-in AWS root");
	}
	return root;
}

static X509 *der_to_x509(const uint8_t *der, size_t len)
{
	const uint8_t *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (x != NULL && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	ERR_clear_error();
	return x;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* QEMU's emulated NSM (hw/virtio/virtio-nsm.c) signs nothing: the certificate,
 * every cabundle entry and the signature are zero bytes. Named as such, since
 * "not a certificate" alone would send the reader looking for corruption. */
#define UNSIGNED_HINT "the document is unsigned, as an emulated NSM (QEMU's nitro-enclave machine) writes it"

/* cabundle[0] must be the trusted root; cabundle[1..] are intermediates. */
static void check_chain(struct attest_verdict *v, const struct attest_doc *doc, X509 *root, int64_t at)
{
	if (all_zero(doc->certificate, doc->certificate_len)) {
		fail(v, &v->chain, "certificate chain: the signing certificate is %zu zero bytes: " UNSIGNED_HINT,
		     doc->certificate_len);
		return;
	}
	uint8_t *root_der = NULL;
	int root_len = i2d_X509(root, &root_der);
	bool same_root = root_len > 0 && (size_t)root_len == doc->cabundle_len[0] &&
			 memcmp(root_der, doc->cabundle[0], (size_t)root_len) == 0;
	OPENSSL_free(root_der);
	if (!same_root) {
		fail(v, &v->chain, "certificate chain: the cabundle starts with a root other than the trusted one");
		return;
	}
	X509 *leaf = der_to_x509(doc->certificate, doc->certificate_len);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	bool ok = leaf && store && ctx && untrusted && X509_STORE_add_cert(store, root) == 1;
	for (size_t i = 1; ok && i < doc->n_cabundle; i++) {
		X509 *c = der_to_x509(doc->cabundle[i], doc->cabundle_len[i]);
		if (c == NULL || !sk_X509_push(untrusted, c)) {
			X509_free(c);
			ok = false;
		}
	}
	if (!ok) {
		fail(v, &v->chain, "certificate chain: a certificate in the document is not valid DER");
	} else if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		fail(v, &v->chain, "certificate chain: cannot set up verification");
	} else {
		X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)at);
		if (X509_verify_cert(ctx) != 1) {
			int e = X509_STORE_CTX_get_error(ctx);
			fail(v, &v->chain, "certificate chain: %s (depth %d)", X509_verify_cert_error_string(e),
			     X509_STORE_CTX_get_error_depth(ctx));
		}
	}
	ERR_clear_error();
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
}

static void check_signature(struct attest_verdict *v, const struct cose_sign1 *c, const struct attest_doc *doc)
{
	if (all_zero(c->sig, c->sig_len)) {
		fail(v, &v->signature, "signature: %zu zero bytes (algorithm %lld): " UNSIGNED_HINT, c->sig_len,
		     (long long)c->alg);
		return;
	}
	if (c->alg != COSE_ES384) {
		fail(v, &v->signature, "signature: algorithm %lld, expected ES384 (-35)", (long long)c->alg);
		return;
	}
	X509 *leaf = der_to_x509(doc->certificate, doc->certificate_len);
	EVP_PKEY *key = leaf ? X509_get_pubkey(leaf) : NULL;
	X509_free(leaf);
	struct err *e = NULL;
	if (key == NULL)
		fail(v, &v->signature, "signature: the signing certificate has no usable public key");
	else if (cose_sign1_verify(c, key, &e) < 0)
		fail(v, &v->signature, "signature: %s", e->msg);
	err_free(&e);
	EVP_PKEY_free(key);
	ERR_clear_error();
}

int attest_verify(const uint8_t *data, size_t len, const struct attest_expect *expect, struct attest_verdict *v,
		  struct err **err)
{
	memset(v, 0, sizeof(*v));
	v->structure = v->chain = v->signature = v->pcrs = v->nonce = true;
	X509 *root = load_root(expect->root_pem_path, err);
	if (root == NULL)
		return -1;
	struct cose_sign1 c;
	struct err *e = NULL;
	if (cose_sign1_decode(data, len, &c, &e) < 0 || attest_doc_parse(c.payload, c.payload_len, &v->doc, &e) < 0) {
		fail(v, &v->structure, "structure: %s", e->msg);
		err_free(&e);
		v->chain = v->signature = v->pcrs = v->nonce = false;
		X509_free(root);
		return 0;
	}
	const struct attest_doc *doc = v->doc;
	if (expect->skip_signature) {
		v->skipped = true;
		v->chain = v->signature = false;
	} else {
		check_signature(v, &c, doc);
		check_chain(v, doc, root, expect->at_time ? expect->at_time : (int64_t)(doc->timestamp_ms / 1000));
	}
	X509_free(root);

	char want[129], got[129];
	for (int i = 0; i < ATTEST_MAX_PCRS; i++) {
		if (expect->pcr[i] == NULL)
			continue;
		hex_encode(expect->pcr[i], expect->pcr_len[i], want);
		if (!doc->pcr_present[i]) {
			fail(v, &v->pcrs, "PCR%d: expected %s, the document has none", i, want);
			continue;
		}
		hex_encode(doc->pcr[i], doc->pcr_len[i], got);
		if (strcmp(want, got) != 0)
			fail(v, &v->pcrs, "PCR%d: expected %s, the document has %s", i, want, got);
	}
	if (expect->nonce != NULL &&
	    (doc->nonce == NULL || doc->nonce_len != expect->nonce_len ||
	     memcmp(doc->nonce, expect->nonce, expect->nonce_len) != 0))
		fail(v, &v->nonce, "nonce: the document's nonce is not the expected one");
	v->valid = v->structure && (v->skipped || (v->chain && v->signature)) && v->pcrs && v->nonce;
	return 0;
}

void attest_verdict_free(struct attest_verdict *v)
{
	free(v->problem);
	attest_doc_free(v->doc);
	memset(v, 0, sizeof(*v));
}

static json_t *b64_or_null(const uint8_t *data, size_t len)
{
	if (data == NULL)
		return json_null();
	_cleanup_free_ char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return json_string(out);
}

json_t *attest_verdict_json(const struct attest_verdict *v)
{
	json_t *checks = json_object();
	json_object_set_new(checks, "Structure", json_boolean(v->structure));
	/* null: not checked (--insecure-skip-signature) */
	json_object_set_new(checks, "CertificateChain", v->skipped ? json_null() : json_boolean(v->chain));
	json_object_set_new(checks, "Signature", v->skipped ? json_null() : json_boolean(v->signature));
	json_object_set_new(checks, "PCRs", json_boolean(v->pcrs));
	json_object_set_new(checks, "Nonce", json_boolean(v->nonce));
	json_t *o = json_object();
	/* Without the signature nothing says who made the document: never "Valid": true. */
	json_object_set_new(o, "Valid", v->skipped ? json_null() : json_boolean(v->valid));
	if (v->skipped)
		json_object_set_new(o, "Unverified", json_string("certificate chain and signature were not checked "
		                                                  "(--insecure-skip-signature): anyone could have made "
		                                                  "this document"));
	json_object_set_new(o, "Checks", checks);
	json_object_set_new(o, "Problem", v->problem ? json_string(v->problem) : json_null());
	const struct attest_doc *d = v->doc;
	if (d != NULL) {
		json_t *doc = json_object();
		json_object_set_new(doc, "ModuleId", json_string(d->module_id));
		json_object_set_new(doc, "Digest", json_string(d->digest));
		json_object_set_new(doc, "Timestamp", json_integer((json_int_t)d->timestamp_ms));
		json_t *pcrs = json_object();
		char name[16], hex[129];
		for (int i = 0; i < ATTEST_MAX_PCRS; i++) {
			if (!d->pcr_present[i])
				continue;
			snprintf(name, sizeof(name), "PCR%d", i);
			hex_encode(d->pcr[i], d->pcr_len[i], hex);
			json_object_set_new(pcrs, name, json_string(hex));
		}
		json_object_set_new(doc, "PCRs", pcrs);
		json_object_set_new(doc, "PublicKey", b64_or_null(d->public_key, d->public_key_len));
		json_object_set_new(doc, "UserData", b64_or_null(d->user_data, d->user_data_len));
		json_object_set_new(doc, "Nonce", b64_or_null(d->nonce, d->nonce_len));
		json_object_set_new(o, "Document", doc);
	}
	return o;
}
