/* sigv4: AWS Signature Version 4 (HMAC-SHA256), for odyn's KMS proxy and KMS signing keys, written
 * from AWS's description of the signing process: canonical request, string
 * to sign, derived key, Authorization header. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/sigv4.h"

static void sha256_hex(const void *data, size_t len, char out[65])
{
	uint8_t md[32];
	unsigned n = 0;
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	hex_encode(md, 32, out);
}

static void hmac(const void *key, size_t key_len, const char *msg, uint8_t out[32])
{
	unsigned n = 32;
	HMAC(EVP_sha256(), key, (int)key_len, (const uint8_t *)msg, strlen(msg), out, &n);
}

/* A header value as SigV4 canonicalizes it: surrounding spaces trimmed,
 * runs of spaces inside collapsed to one. */
static void put_trimmed(struct buf *b, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	bool space = false;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = true;
			continue;
		}
		if (space)
			buf_putc(b, ' ');
		space = false;
		buf_putc(b, *v);
	}
}

struct lc_header {
	char *name; /* lowercase */
	const char *value;
	size_t order;
};

static int cmp_header(const void *a, const void *b)
{
	const struct lc_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

int sigv4_sign(const struct sigv4_request *r, const struct sigv4_key *k, char **authorization, struct err **err)
{
	if (strlen(r->amz_date) != 16 || r->amz_date[8] != 'T' || r->amz_date[15] != 'Z')
		return err_set(err, EINVAL, "SigV4: X-Amz-Date \"%s\" is not YYYYMMDDTHHMMSSZ", r->amz_date);
	if (!k->access_key || !*k->access_key || !k->secret_key || !*k->secret_key)
		return err_set(err, EINVAL, "SigV4: no credentials");
	struct lc_header *h = xcalloc(r->n_headers ? r->n_headers : 1, sizeof(*h));
	for (size_t i = 0; i < r->n_headers; i++) {
		h[i].name = xstrdup(r->headers[i].name);
		for (char *p = h[i].name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		h[i].value = r->headers[i].value;
		h[i].order = i;
	}
	qsort(h, r->n_headers, sizeof(*h), cmp_header);

	_cleanup_buf_ struct buf creq = {0}, signed_headers = {0};
	buf_printf(&creq, "%s\n%s\n%s\n", r->method, r->path, r->query ? r->query : "");
	/* Canonical headers: one line per name, repeated names' values joined by ','. */
	for (size_t i = 0; i < r->n_headers; i++) {
		bool first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;
		if (first) {
			if (i > 0)
				buf_putc(&creq, '\n');
			buf_printf(&creq, "%s:", h[i].name);
			if (signed_headers.len)
				buf_putc(&signed_headers, ';');
			buf_puts(&signed_headers, h[i].name);
		} else {
			buf_putc(&creq, ',');
		}
		put_trimmed(&creq, h[i].value);
	}
	for (size_t i = 0; i < r->n_headers; i++)
		free(h[i].name);
	free(h);
	char body_hash[65];
	sha256_hex(r->body ? r->body : "", r->body_len, body_hash);
	buf_printf(&creq, "\n\n%s\n%s", buf_str(&signed_headers), body_hash);

	char date[9];
	memcpy(date, r->amz_date, 8);
	date[8] = '\0';
	char creq_hash[65];
	sha256_hex(creq.data, creq.len, creq_hash);
	_cleanup_free_ char *scope = xasprintf("%s/%s/%s/aws4_request", date, k->region, k->service);
	_cleanup_free_ char *sts = xasprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date, scope, creq_hash);

	/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
	_cleanup_free_ char *k0 = xasprintf("AWS4%s", k->secret_key);
	uint8_t kd[32], kr[32], ks[32], kn[32], sig[32];
	hmac(k0, strlen(k0), date, kd);
	hmac(kd, 32, k->region, kr);
	hmac(kr, 32, k->service, ks);
	hmac(ks, 32, "aws4_request", kn);
	hmac(kn, 32, sts, sig);
	OPENSSL_cleanse(k0, strlen(k0));
	OPENSSL_cleanse(kn, sizeof(kn));
	char sig_hex[65];
	hex_encode(sig, 32, sig_hex);
	*authorization = xasprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", k->access_key,
	                           scope, buf_str(&signed_headers), sig_hex);
	return 0;
}
