/* measure: PCR0/1/2/8 as the Nitro hypervisor and nitro-cli compute them:
 * PCR = H(zeros(len) || H(section payloads)), streamed, SHA-384 by default. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "eif/internal.h"

int eif_hash_alg_parse(const char *name)
{
	if (strcmp(name, "sha384") == 0)
		return EIF_HASH_SHA384;
	if (strcmp(name, "sha256") == 0)
		return EIF_HASH_SHA256;
	if (strcmp(name, "sha512") == 0)
		return EIF_HASH_SHA512;
	return -1;
}

size_t eif_hash_len(enum eif_hash_alg alg)
{
	return alg == EIF_HASH_SHA256 ? 32 : alg == EIF_HASH_SHA512 ? 64 : 48;
}

const EVP_MD *eif_hash_md(enum eif_hash_alg alg)
{
	return alg == EIF_HASH_SHA256 ? EVP_sha256() : alg == EIF_HASH_SHA512 ? EVP_sha512() : EVP_sha384();
}

/* The reference prints Rust's Debug form of its sha2 (0.9) hasher. */
static const char *hash_debug_name(enum eif_hash_alg alg)
{
	return alg == EIF_HASH_SHA256 ? "Sha256 { ... }" : alg == EIF_HASH_SHA512 ? "Sha512 { ... }" : "Sha384 { ... }";
}

static EVP_MD_CTX *new_ctx(enum eif_hash_alg alg, struct err **err)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (c == NULL || EVP_DigestInit_ex(c, eif_hash_md(alg), NULL) != 1) {
		EVP_MD_CTX_free(c);
		err_set(err, ENOMEM, "initialise hash");
		return NULL;
	}
	return c;
}

int eif_pcr_init(struct eif_pcr_state *s, enum eif_hash_alg alg, struct err **err)
{
	memset(s, 0, sizeof(*s));
	s->alg = alg;
	s->image = new_ctx(alg, err);
	s->app = s->image ? new_ctx(alg, err) : NULL;
	if (s->app == NULL) {
		eif_pcr_free(s);
		return -1;
	}
	return 0;
}

static int update(EVP_MD_CTX *c, const void *data, size_t len, struct err **err)
{
	if (EVP_DigestUpdate(c, data, len) != 1)
		return err_set(err, EIO, "hash update failed");
	return 0;
}

int eif_pcr_feed_boot(struct eif_pcr_state *s, const void *data, size_t len, struct err **err)
{
	return update(s->image, data, len, err);
}

int eif_pcr_end_boot(struct eif_pcr_state *s, struct err **err)
{
	s->boot = EVP_MD_CTX_new();
	if (s->boot == NULL || EVP_MD_CTX_copy_ex(s->boot, s->image) != 1)
		return err_set(err, ENOMEM, "copy hash state");
	return 0;
}

int eif_pcr_feed_app(struct eif_pcr_state *s, const void *data, size_t len, struct err **err)
{
	if (eif_pcr_feed_app_image(s, data, len, err) < 0)
		return -1;
	return eif_pcr_feed_app_pcr2(s, data, len, err);
}

int eif_pcr_feed_app_image(struct eif_pcr_state *s, const void *data, size_t len, struct err **err)
{
	return update(s->image, data, len, err);
}

int eif_pcr_feed_app_pcr2(struct eif_pcr_state *s, const void *data, size_t len, struct err **err)
{
	return update(s->app, data, len, err);
}

/* PCR = H(zeros || inner), the extend of one measurement into a fresh PCR. */
static int extend_from_zero(enum eif_hash_alg alg, const uint8_t *inner, uint8_t *out, struct err **err)
{
	uint8_t buf[2 * EIF_PCR_MAX] = {0};
	size_t n = eif_hash_len(alg);
	memcpy(buf + n, inner, n);
	if (EVP_Digest(buf, 2 * n, out, NULL, eif_hash_md(alg), NULL) != 1)
		return err_set(err, EIO, "hash failed");
	return 0;
}

static int finalize_extend(EVP_MD_CTX *c, enum eif_hash_alg alg, uint8_t *out, struct err **err)
{
	uint8_t inner[EIF_PCR_MAX];
	if (EVP_DigestFinal_ex(c, inner, NULL) != 1)
		return err_set(err, EIO, "hash final failed");
	return extend_from_zero(alg, inner, out, err);
}

int eif_pcr_of_bytes(enum eif_hash_alg alg, const void *data, size_t len, uint8_t *out, struct err **err)
{
	uint8_t inner[EIF_PCR_MAX];
	if (EVP_Digest(data, len, inner, NULL, eif_hash_md(alg), NULL) != 1)
		return err_set(err, EIO, "hash failed");
	return extend_from_zero(alg, inner, out, err);
}

int eif_pcr_finish(struct eif_pcr_state *s, const uint8_t *cert_der, size_t cert_len, struct eif_measurements *out,
		   struct err **err)
{
	int r = -1;
	memset(out, 0, sizeof(*out));
	out->alg = s->alg;
	/* An image whose boot part never ended (no ramdisk) measures PCR1 = PCR0. */
	if (s->boot == NULL && eif_pcr_end_boot(s, err) < 0)
		goto done;
	if (finalize_extend(s->image, s->alg, out->pcr0, err) < 0 || finalize_extend(s->boot, s->alg, out->pcr1, err) < 0 ||
	    finalize_extend(s->app, s->alg, out->pcr2, err) < 0)
		goto done;
	if (cert_der != NULL) {
		if (eif_pcr_of_bytes(s->alg, cert_der, cert_len, out->pcr8, err) < 0)
			goto done;
		out->has_pcr8 = true;
	}
	r = 0;
done:
	eif_pcr_free(s);
	return r;
}

void eif_pcr_free(struct eif_pcr_state *s)
{
	EVP_MD_CTX_free(s->image);
	EVP_MD_CTX_free(s->boot);
	EVP_MD_CTX_free(s->app);
	s->image = s->boot = s->app = NULL;
}

json_t *eif_measurements_json(const struct eif_measurements *m)
{
	char hex[2 * EIF_PCR_MAX + 1];
	size_t n = eif_hash_len(m->alg);
	json_t *o = json_object();
	json_object_set_new(o, "HashAlgorithm", json_string(hash_debug_name(m->alg)));
	hex_encode(m->pcr0, n, hex);
	json_object_set_new(o, "PCR0", json_string(hex));
	hex_encode(m->pcr1, n, hex);
	json_object_set_new(o, "PCR1", json_string(hex));
	hex_encode(m->pcr2, n, hex);
	json_object_set_new(o, "PCR2", json_string(hex));
	if (m->has_pcr8) {
		hex_encode(m->pcr8, n, hex);
		json_object_set_new(o, "PCR8", json_string(hex));
	}
	return o;
}

int eif_pcr_of_file(enum eif_hash_alg alg, const char *path, uint8_t *out, struct err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, "open %s", path);
	EVP_MD_CTX *c = new_ctx(alg, err);
	if (c == NULL)
		return -1;
	_cleanup_free_ uint8_t *chunk = xmalloc(EIF_IO_CHUNK);
	int r = -1;
	for (;;) {
		ssize_t n = io_read_full(fd, chunk, EIF_IO_CHUNK, err);
		if (n < 0) {
			err_wrap(err, "%s", path);
			goto done;
		}
		if (update(c, chunk, (size_t)n, err) < 0)
			goto done;
		if (n < (ssize_t)EIF_IO_CHUNK)
			break;
	}
	r = finalize_extend(c, alg, out, err);
done:
	EVP_MD_CTX_free(c);
	return r;
}
