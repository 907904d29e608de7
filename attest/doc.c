/* doc: parses an attestation document's payload (a CBOR map) into struct
 * attest_doc, enforcing the field types and size limits AWS documents for
 * the NSM, so later checks can trust what they read. */
#include <string.h>

#include "attest/attest.h"
#include "common/cose.h"

typedef unsigned long long ull;

static int read_bytes(struct cbor_reader *r, const char *field, size_t min, size_t max, uint8_t **out, size_t *len,
		      struct err **err)
{
	const uint8_t *p;
	if (cbor_read_string(r, CBOR_BSTR, &p, len, field, err) < 0)
		return -1;
	if (*len < min || *len > max)
		return err_set(err, EINVAL, "%s: %zu bytes, expected %zu to %zu", field, *len, min, max);
	*out = xmalloc(*len ? *len : 1);
	memcpy(*out, p, *len);
	return 0;
}

static int read_text(struct cbor_reader *r, const char *field, char **out, struct err **err)
{
	const uint8_t *p;
	size_t len;
	if (cbor_read_string(r, CBOR_TSTR, &p, &len, field, err) < 0)
		return -1;
	if (len == 0 || len > 256 || memchr(p, 0, len))
		return err_set(err, EINVAL, "%s: empty, too long or holding a NUL", field);
	*out = xmalloc(len + 1);
	memcpy(*out, p, len);
	(*out)[len] = 0;
	return 0;
}

/* An optional byte field: a byte string, or null for "absent". */
static int read_optional_bytes(struct cbor_reader *r, const char *field, size_t min, size_t max, uint8_t **out,
			       size_t *len, struct err **err)
{
	if (r->off < r->len && r->data[r->off] == 0xf6) { /* null */
		r->off++;
		return 0;
	}
	return read_bytes(r, field, min, max, out, len, err);
}

static int read_pcrs(struct cbor_reader *r, struct attest_doc *doc, struct err **err)
{
	uint64_t n;
	if (cbor_expect(r, CBOR_MAP, &n, "pcrs", err) < 0)
		return -1;
	if (n == 0 || n > ATTEST_MAX_PCRS)
		return err_set(err, EINVAL, "pcrs: %llu entries, expected 1 to %d", (ull)n, ATTEST_MAX_PCRS);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t index;
		const uint8_t *p;
		size_t len;
		if (cbor_expect(r, CBOR_UINT, &index, "pcrs index", err) < 0)
			return -1;
		if (index >= ATTEST_MAX_PCRS || doc->pcr_present[index])
			return err_set(err, EINVAL, "pcrs: index %llu out of range or repeated", (ull)index);
		if (cbor_read_string(r, CBOR_BSTR, &p, &len, "pcrs value", err) < 0)
			return -1;
		if (len != 32 && len != 48 && len != 64)
			return err_set(err, EINVAL, "pcrs: PCR%llu is %zu bytes, expected 32, 48 or 64", (ull)index, len);
		doc->pcr_present[index] = true;
		memcpy(doc->pcr[index], p, len);
		doc->pcr_len[index] = len;
	}
	return 0;
}

static int read_cabundle(struct cbor_reader *r, struct attest_doc *doc, struct err **err)
{
	uint64_t n;
	if (cbor_expect(r, CBOR_ARRAY, &n, "cabundle", err) < 0)
		return -1;
	if (n == 0 || n > 16)
		return err_set(err, EINVAL, "cabundle: %llu certificates, expected 1 to 16", (ull)n);
	doc->cabundle = xcalloc((size_t)n, sizeof(*doc->cabundle));
	doc->cabundle_len = xcalloc((size_t)n, sizeof(*doc->cabundle_len));
	for (uint64_t i = 0; i < n; i++) {
		if (read_bytes(r, "cabundle entry", 1, 1024, &doc->cabundle[i], &doc->cabundle_len[i], err) < 0)
			return -1;
		doc->n_cabundle++;
	}
	return 0;
}

int attest_doc_parse(const uint8_t *data, size_t len, struct attest_doc **out, struct err **err)
{
	struct attest_doc *doc = xcalloc(1, sizeof(*doc));
	struct cbor_reader r = {.data = data, .len = len};
	uint64_t n;
	bool seen_ts = false, seen_pcrs = false;
	if (cbor_expect(&r, CBOR_MAP, &n, "attestation document", err) < 0)
		goto fail;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *key;
		size_t key_len;
		char name[32];
		if (cbor_read_string(&r, CBOR_TSTR, &key, &key_len, "document key", err) < 0)
			goto fail;
		snprintf(name, sizeof(name), "%.*s", (int)(key_len < 31 ? key_len : 31), key);
		int rc;
#define IS(k) (key_len == strlen(k) && memcmp(key, k, key_len) == 0)
		if (IS("module_id") && !doc->module_id) {
			rc = read_text(&r, "module_id", &doc->module_id, err);
		} else if (IS("digest") && !doc->digest) {
			rc = read_text(&r, "digest", &doc->digest, err);
		} else if (IS("timestamp") && !seen_ts) {
			rc = cbor_expect(&r, CBOR_UINT, &doc->timestamp_ms, "timestamp", err);
			seen_ts = true;
		} else if (IS("pcrs") && !seen_pcrs) {
			rc = read_pcrs(&r, doc, err);
			seen_pcrs = true;
		} else if (IS("certificate") && !doc->certificate) {
			rc = read_bytes(&r, "certificate", 1, 1024, &doc->certificate, &doc->certificate_len, err);
		} else if (IS("cabundle") && !doc->cabundle) {
			rc = read_cabundle(&r, doc, err);
		} else if (IS("public_key") && !doc->public_key) {
			rc = read_optional_bytes(&r, "public_key", 1, 1024, &doc->public_key, &doc->public_key_len, err);
		} else if (IS("user_data") && !doc->user_data) {
			rc = read_optional_bytes(&r, "user_data", 0, 512, &doc->user_data, &doc->user_data_len, err);
		} else if (IS("nonce") && !doc->nonce) {
			rc = read_optional_bytes(&r, "nonce", 0, 512, &doc->nonce, &doc->nonce_len, err);
		} else {
			rc = err_set(err, EINVAL, "unknown or repeated field \"%s\"", name);
		}
#undef IS
		if (rc < 0)
			goto fail;
	}
	if (r.off != r.len) {
		err_set(err, EINVAL, "trailing bytes after the document");
		goto fail;
	}
	if (!doc->module_id || !doc->digest || !seen_ts || !seen_pcrs || !doc->certificate || !doc->cabundle) {
		err_set(err, EINVAL, "missing a mandatory field (module_id, digest, timestamp, pcrs, certificate, cabundle)");
		goto fail;
	}
	if (strcmp(doc->digest, "SHA384") != 0) {
		err_set(err, EINVAL, "digest is \"%s\", expected \"SHA384\"", doc->digest);
		goto fail;
	}
	if (doc->timestamp_ms == 0) {
		err_set(err, EINVAL, "timestamp is 0");
		goto fail;
	}
	*out = doc;
	return 0;
fail:
	attest_doc_free(doc);
	return err_wrap(err, "attestation document");
}

void attest_doc_free(struct attest_doc *doc)
{
	if (doc == NULL)
		return;
	free(doc->module_id);
	free(doc->digest);
	free(doc->certificate);
	for (size_t i = 0; i < doc->n_cabundle; i++)
		free(doc->cabundle[i]);
	free(doc->cabundle);
	free(doc->cabundle_len);
	free(doc->public_key);
	free(doc->user_data);
	free(doc->nonce);
	free(doc);
}
