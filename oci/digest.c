/* digest: content digests ("sha256:<hex>"): syntax checks and streaming
 * hashing through OpenSSL, so blobs are verified as they pass by. */
#include <string.h>

#include <openssl/evp.h>

#include "oci/oci.h"

struct oci_digester {
	EVP_MD_CTX *ctx;
	const char *algorithm;
};

static const EVP_MD *md_for(const char *algorithm, size_t *hex_len)
{
	if (strcmp(algorithm, "sha256") == 0) {
		*hex_len = 64;
		return EVP_sha256();
	}
	if (strcmp(algorithm, "sha512") == 0) {
		*hex_len = 128;
		return EVP_sha512();
	}
	return NULL;
}

int oci_digest_check(const char *digest, struct err **err)
{
	const char *colon = strchr(digest, ':');
	if (colon == NULL)
		return err_set(err, EINVAL, "digest \"%s\" lacks the algorithm prefix (sha256:...)", digest);
	_cleanup_free_ char *algo = xstrndup(digest, (size_t)(colon - digest));
	size_t hex_len;
	if (md_for(algo, &hex_len) == NULL)
		return err_set(err, EINVAL, "digest \"%s\": unsupported algorithm \"%s\" (sha256 or sha512)", digest,
		               algo);
	const char *hex = colon + 1;
	if (strlen(hex) != hex_len)
		return err_set(err, EINVAL, "digest \"%s\": %s needs %zu hex digits, got %zu", digest, algo, hex_len,
		               strlen(hex));
	for (const char *p = hex; *p; p++) {
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return err_set(err, EINVAL, "digest \"%s\": '%c' is not a lowercase hex digit", digest, *p);
	}
	return 0;
}

const char *oci_digest_hex(const char *digest)
{
	const char *colon = strchr(digest, ':');
	return colon ? colon + 1 : digest;
}

struct oci_digester *oci_digester_new(const char *algorithm)
{
	size_t hex_len;
	const EVP_MD *md = md_for(algorithm, &hex_len);
	if (md == NULL)
		return NULL;
	struct oci_digester *d = xcalloc(1, sizeof(*d));
	d->ctx = EVP_MD_CTX_new();
	if (d->ctx == NULL || EVP_DigestInit_ex(d->ctx, md, NULL) != 1)
		abort(); /* out of memory inside OpenSSL */
	d->algorithm = strcmp(algorithm, "sha256") == 0 ? "sha256" : "sha512";
	return d;
}

void oci_digester_update(struct oci_digester *d, const void *data, size_t len)
{
	if (EVP_DigestUpdate(d->ctx, data, len) != 1)
		abort();
}

void oci_digester_final(struct oci_digester *d, char out[OCI_DIGEST_MAX])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (EVP_DigestFinal_ex(d->ctx, md, &n) != 1)
		abort();
	size_t off = (size_t)snprintf(out, OCI_DIGEST_MAX, "%s:", d->algorithm);
	hex_encode(md, n, out + off);
}

void oci_digester_free(struct oci_digester *d)
{
	if (d == NULL)
		return;
	EVP_MD_CTX_free(d->ctx);
	free(d);
}

void oci_digest_buf(const void *data, size_t len, char out[OCI_DIGEST_MAX])
{
	struct oci_digester *d = oci_digester_new("sha256");
	oci_digester_update(d, data, len);
	oci_digester_final(d, out);
	oci_digester_free(d);
}

int oci_digest_verify_buf(const void *data, size_t len, const char *expected, struct err **err)
{
	if (oci_digest_check(expected, err) < 0)
		return -1;
	_cleanup_free_ char *algo = xstrndup(expected, (size_t)(strchr(expected, ':') - expected));
	struct oci_digester *d = oci_digester_new(algo);
	char got[OCI_DIGEST_MAX];
	oci_digester_update(d, data, len);
	oci_digester_final(d, got);
	oci_digester_free(d);
	if (strcmp(got, expected) != 0)
		return err_set(err, EBADMSG, "digest mismatch: expected %s, got %s", expected, got);
	return 0;
}

int oci_digest_fd(int fd, const char *algorithm, char out[OCI_DIGEST_MAX], int64_t *size, struct err **err)
{
	struct oci_digester *d = oci_digester_new(algorithm);
	if (d == NULL)
		return err_set(err, ENOTSUP, "digest algorithm \"%s\" is not supported", algorithm);
	_cleanup_free_ char *chunk = xmalloc(1 << 16);
	int64_t total = 0;
	for (off_t off = 0;; off += 1 << 16) {
		ssize_t n = io_pread_full(fd, chunk, 1 << 16, off, err);
		if (n < 0) {
			oci_digester_free(d);
			return -1;
		}
		oci_digester_update(d, chunk, (size_t)n);
		total += n;
		if (n < (1 << 16))
			break;
	}
	oci_digester_final(d, out);
	oci_digester_free(d);
	if (size)
		*size = total;
	return 0;
}
