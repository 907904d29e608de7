/* describe: the document `nitro-cli describe-eif` prints for an image, field
 * for field, so scripts written against nitro-cli read ours unchanged. */
#include <errno.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "eif/internal.h"

/* "Nov 22 18:56:36 2026 GMT": OpenSSL's ASN1_TIME_print form. */
static json_t *asn1_time_json(const ASN1_TIME *t)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	ASN1_TIME_print(bio, t);
	long n = BIO_get_mem_data(bio, &data);
	json_t *s = json_stringn(data, (size_t)(n > 0 ? n : 0));
	BIO_free(bio);
	return s ? s : json_string("");
}

static json_t *certificate_json(const char *pem, size_t len, struct err **err)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (cert == NULL) {
		ERR_clear_error();
		err_set(err, EINVAL, "signing certificate is not valid PEM");
		return NULL;
	}
	/* IssuerName is a map of OpenSSL long names to values (sorted; a repeated
	 * name keeps its last value, as the reference's BTreeMap does). */
	json_t *issuer = json_object();
	const X509_NAME *name = X509_get_issuer_name(cert);
	for (int i = 0; i < X509_NAME_entry_count(name); i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
		char key[128];
		OBJ_obj2txt(key, sizeof(key), X509_NAME_ENTRY_get_object(e), 0);
		unsigned char *utf8 = NULL;
		int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
		if (n >= 0) {
			json_t *v = json_stringn((const char *)utf8, (size_t)n);
			if (v)
				json_object_set_new(issuer, key, v);
		}
		OPENSSL_free(utf8);
	}
	json_t *sorted = json_sorted_copy(issuer);
	json_decref(issuer);

	const ASN1_BIT_STRING *sig = NULL;
	X509_get0_signature(&sig, NULL, cert);
	struct buf hex = {0};
	for (int i = 0; sig && i < ASN1_STRING_length(sig); i++)
		buf_printf(&hex, "%s%02X", i ? ":" : "", ASN1_STRING_get0_data(sig)[i]);
	char alg[128];
	OBJ_obj2txt(alg, sizeof(alg), OBJ_nid2obj(X509_get_signature_nid(cert)), 0);

	json_t *o = json_object();
	json_object_set_new(o, "IssuerName", sorted);
	json_object_set_new(o, "Algorithm", json_string(alg));
	json_object_set_new(o, "NotBefore", asn1_time_json(X509_get0_notBefore(cert)));
	json_object_set_new(o, "NotAfter", asn1_time_json(X509_get0_notAfter(cert)));
	json_object_set_new(o, "Signature", json_string(buf_str(&hex)));
	buf_free(&hex);
	X509_free(cert);
	return o;
}

int eif_image_describe(const struct eif_image *img, json_t **out, struct err **err)
{
	_cleanup_json_ json_t *doc = json_object();
	json_object_set_new(doc, "EifVersion", json_integer(img->version));
	json_object_set_new(doc, "Measurements", eif_measurements_json(&img->measurements));
	json_object_set_new(doc, "IsSigned", json_boolean(img->is_signed));
	if (img->is_signed) {
		json_t *cert = certificate_json(img->cert_pem, img->cert_pem_len, err);
		if (cert == NULL)
			return -1;
		json_object_set_new(doc, "SigningCertificate", cert);
	}
	json_object_set_new(doc, "CheckCRC", json_boolean(img->crc_stored == img->crc_computed));
	if (img->is_signed)
		json_object_set_new(doc, "SignatureCheck", json_boolean(img->signature_ok));
	const json_t *m = img->metadata;
	if (m != NULL) {
		const json_t *b = json_object_get(m, "BuildMetadata");
		json_object_set(doc, "ImageName", json_object_get(m, "ImageName"));
		json_object_set(doc, "ImageVersion", json_object_get(m, "ImageVersion"));
		json_t *md = json_object();
		static const char *const keys[] = {"BuildTime", "BuildTool", "BuildToolVersion", "OperatingSystem",
						   "KernelVersion"};
		for (size_t i = 0; i < 5; i++)
			json_object_set(md, keys[i], json_object_get(b, keys[i]));
		json_object_set_new(md, "DockerInfo", json_sorted_copy(json_object_get(m, "DockerInfo")));
		/* CustomMetadata is flattened into Metadata when it is an object
		 * and left out when null; any other value stays under its name. */
		const json_t *custom = json_object_get(m, "CustomMetadata");
		if (json_is_object(custom)) {
			json_t *sorted = json_sorted_copy(custom);
			const char *k;
			json_t *v;
			json_object_foreach(sorted, k, v) json_object_set(md, k, v);
			json_decref(sorted);
		} else if (custom != NULL && !json_is_null(custom)) {
			json_object_set_new(md, "CustomMetadata", json_sorted_copy(custom));
		}
		json_object_set_new(doc, "Metadata", md);
	}
	*out = steal_pointer(&doc);
	return 0;
}
