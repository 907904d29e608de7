/* nsm: the Nitro Secure Module client: CBOR requests (GetRandom, DescribePCR,
 * DescribeNSM, Attestation) as nsm-api's serde encoding writes them, the
 * /dev/nsm ioctl, and a decoder of the responses (untrusted bytes): strict on
 * the fields it knows, skipping fields a newer NSM adds. */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "odyn/internal.h"
#include "common/cose.h"

#define NSM_IOCTL 0xC0200A00UL /* _IOWR(0x0A, 0, 32) */

/* ---------------------------------------------------------------- requests
 * nsm-api's Request is a serde enum: unit variants are a bare text string,
 * struct variants a one-entry map {"Name": {fields}}; Option<ByteBuf> is a
 * byte string or null. */

void nsm_request_get_random(struct buf *out)
{
	cbor_put_tstr(out, "GetRandom");
}

void nsm_request_describe_nsm(struct buf *out)
{
	cbor_put_tstr(out, "DescribeNSM");
}

void nsm_request_describe_pcr(struct buf *out, uint16_t index)
{
	cbor_put_head(out, CBOR_MAP, 1);
	cbor_put_tstr(out, "DescribePCR");
	cbor_put_head(out, CBOR_MAP, 1);
	cbor_put_tstr(out, "index");
	cbor_put_head(out, CBOR_UINT, index);
}

static void put_opt_bytes(struct buf *out, const char *name, const uint8_t *data, size_t len)
{
	cbor_put_tstr(out, name);
	if (data)
		cbor_put_bstr(out, data, len);
	else
		cbor_put_head(out, CBOR_SIMPLE, CBOR_SIMPLE_NULL);
}

int nsm_request_attestation(struct buf *out, const struct nsm_attest_req *req, struct err **err)
{
	if (req->user_data && req->user_data_len > NSM_USER_DATA_MAX)
		return err_set(err, E2BIG, "user_data: %zu bytes, at most %d", req->user_data_len, NSM_USER_DATA_MAX);
	if (req->nonce && req->nonce_len > NSM_NONCE_MAX)
		return err_set(err, E2BIG, "nonce: %zu bytes, at most %d", req->nonce_len, NSM_NONCE_MAX);
	if (req->public_key && req->public_key_len > NSM_PUBLIC_KEY_MAX)
		return err_set(err, E2BIG, "public_key: %zu bytes, at most %d", req->public_key_len,
		               NSM_PUBLIC_KEY_MAX);
	cbor_put_head(out, CBOR_MAP, 1);
	cbor_put_tstr(out, "Attestation");
	cbor_put_head(out, CBOR_MAP, 3);
	put_opt_bytes(out, "user_data", req->user_data, req->user_data_len);
	put_opt_bytes(out, "nonce", req->nonce, req->nonce_len);
	put_opt_bytes(out, "public_key", req->public_key, req->public_key_len);
	return 0;
}

/* ---------------------------------------------------------------- responses */

static int read_text(struct cbor_reader *r, const char *what, char *out, size_t cap, struct err **err)
{
	const uint8_t *p;
	size_t n;
	if (cbor_read_string(r, CBOR_TSTR, &p, &n, what, err) < 0)
		return -1;
	if (n >= cap || memchr(p, 0, n))
		return err_set(err, EPROTO, "%s: %zu bytes of text, at most %zu without NUL", what, n, cap - 1);
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int read_u16(struct cbor_reader *r, const char *what, uint16_t *out, struct err **err)
{
	uint64_t v;
	if (cbor_expect(r, CBOR_UINT, &v, what, err) < 0)
		return -1;
	if (v > 0xffff)
		return err_set(err, EPROTO, "%s: %llu does not fit 16 bits", what, (unsigned long long)v);
	*out = (uint16_t)v;
	return 0;
}

static int read_bytes(struct cbor_reader *r, const char *what, size_t max, const uint8_t **p, size_t *n,
                      struct err **err)
{
	if (cbor_read_string(r, CBOR_BSTR, p, n, what, err) < 0)
		return -1;
	if (*n > max)
		return err_set(err, EPROTO, "%s: %zu bytes, at most %zu", what, *n, max);
	return 0;
}

/* The fields of a struct variant we know; each at most once. nsm-api's
 * Response is #[non_exhaustive] and a newer NSM may add fields: those are
 * skipped whole (nested values included), while the known ones stay strict. */
struct fields {
	const char *const *names;
	size_t n;
	unsigned seen;
};

/* Reads a field name into *which (an index into f->names); an unknown
 * field's value is skipped and *which is -1. */
static int next_field(struct cbor_reader *r, struct fields *f, const char *variant, int *which, struct err **err)
{
	const uint8_t *name;
	size_t len;
	uint64_t at = r->base + r->off;
	if (cbor_read_string(r, CBOR_TSTR, &name, &len, "field name", err) < 0)
		return err_wrap(err, "%s", variant);
	for (size_t i = 0; i < f->n; i++) {
		if (strlen(f->names[i]) != len || memcmp(f->names[i], name, len) != 0)
			continue;
		if (f->seen & (1u << i))
			return err_set(err, EPROTO, "offset %llu: %s: field %s repeated", (unsigned long long)at,
			               variant, f->names[i]);
		f->seen |= 1u << i;
		*which = (int)i;
		return 0;
	}
	*which = -1;
	if (cbor_skip(r, err) < 0)
		return err_wrap(err, "%s: unknown field \"%.*s\" at offset %llu", variant, (int)(len > 64 ? 64 : len),
		                (const char *)name, (unsigned long long)at);
	return 0;
}

static int fields_complete(const struct fields *f, const char *variant, struct err **err)
{
	for (size_t i = 0; i < f->n; i++)
		if (!(f->seen & (1u << i)))
			return err_set(err, EPROTO, "%s: field %s missing", variant, f->names[i]);
	return 0;
}

static int parse_describe_nsm(struct cbor_reader *r, uint64_t n, struct nsm_response *out, struct err **err)
{
	static const char *const names[] = {"version_major", "version_minor", "version_patch", "module_id",
	                                    "max_pcrs",      "locked_pcrs",   "digest"};
	struct fields f = {names, 7, 0};
	struct nsm_description *d = &out->describe;
	for (uint64_t i = 0; i < n; i++) {
		int w;
		if (next_field(r, &f, "DescribeNSM", &w, err) < 0)
			return -1;
		int rc = 0;
		switch (w) {
		case 0: rc = read_u16(r, "DescribeNSM.version_major", &d->version_major, err); break;
		case 1: rc = read_u16(r, "DescribeNSM.version_minor", &d->version_minor, err); break;
		case 2: rc = read_u16(r, "DescribeNSM.version_patch", &d->version_patch, err); break;
		case 3: rc = read_text(r, "DescribeNSM.module_id", d->module_id, sizeof(d->module_id), err); break;
		case 4: rc = read_u16(r, "DescribeNSM.max_pcrs", &d->max_pcrs, err); break;
		case 5: {
			uint64_t k;
			if (cbor_expect(r, CBOR_ARRAY, &k, "DescribeNSM.locked_pcrs", err) < 0)
				return -1;
			if (k > NSM_MAX_PCRS)
				return err_set(err, EPROTO, "DescribeNSM.locked_pcrs: %llu entries, at most %d",
				               (unsigned long long)k, NSM_MAX_PCRS);
			d->n_locked = (size_t)k;
			for (size_t j = 0; rc == 0 && j < d->n_locked; j++)
				rc = read_u16(r, "DescribeNSM.locked_pcrs", &d->locked_pcrs[j], err);
			break;
		}
		case 6:
			rc = read_text(r, "DescribeNSM.digest", d->digest, sizeof(d->digest), err);
			if (rc == 0 && strcmp(d->digest, "SHA256") != 0 && strcmp(d->digest, "SHA384") != 0 &&
			    strcmp(d->digest, "SHA512") != 0)
				rc = err_set(err, EPROTO, "DescribeNSM.digest: unknown digest \"%s\"", d->digest);
			break;
		}
		if (rc < 0)
			return -1;
	}
	return fields_complete(&f, "DescribeNSM", err);
}

int nsm_response_parse(const uint8_t *data, size_t len, struct nsm_response *out, struct err **err)
{
	struct cbor_reader r = {.data = data, .len = len};
	enum cbor_major m;
	uint64_t n;
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return err_set(err, EPROTO, "NSM response: empty");
	if (cbor_read_head(&r, &m, &n, err) < 0)
		return err_wrap(err, "NSM response");
	if (m == CBOR_TSTR) {
		/* Unit variants: LockPCR, LockPCRs. Nothing we send asks for them. */
		return err_set(err, EPROTO, "NSM response: unexpected bare variant");
	}
	if (m != CBOR_MAP || n != 1)
		return err_set(err, EPROTO, "NSM response: expected a map of one variant");
	char variant[16];
	if (read_text(&r, "NSM response variant", variant, sizeof(variant), err) < 0)
		return -1;
	if (strcmp(variant, "Error") == 0) {
		out->kind = NSM_RESP_ERROR;
		if (read_text(&r, "Error", out->error, sizeof(out->error), err) < 0)
			return -1;
	} else {
		if (cbor_expect(&r, CBOR_MAP, &n, variant, err) < 0)
			return err_wrap(err, "NSM response");
		if (strcmp(variant, "GetRandom") == 0) {
			static const char *const names[] = {"random"};
			struct fields f = {names, 1, 0};
			int w;
			out->kind = NSM_RESP_GET_RANDOM;
			for (uint64_t i = 0; i < n; i++)
				if (next_field(&r, &f, "GetRandom", &w, err) < 0 ||
				    (w == 0 && read_bytes(&r, "GetRandom.random", NSM_RESPONSE_MAX, &out->data,
				                          &out->len, err) < 0))
					return -1;
			if (fields_complete(&f, "GetRandom", err) < 0)
				return -1;
		} else if (strcmp(variant, "DescribePCR") == 0) {
			static const char *const names[] = {"lock", "data"};
			struct fields f = {names, 2, 0};
			out->kind = NSM_RESP_DESCRIBE_PCR;
			for (uint64_t i = 0; i < n; i++) {
				int w;
				if (next_field(&r, &f, "DescribePCR", &w, err) < 0)
					return -1;
				if (w == 0) {
					uint64_t v;
					if (cbor_expect(&r, CBOR_SIMPLE, &v, "DescribePCR.lock", err) < 0)
						return -1;
					if (v != CBOR_SIMPLE_TRUE && v != CBOR_SIMPLE_FALSE)
						return err_set(err, EPROTO, "DescribePCR.lock: not a boolean");
					out->lock = v == CBOR_SIMPLE_TRUE;
				} else if (w == 1 &&
				           read_bytes(&r, "DescribePCR.data", 64, &out->data, &out->len, err) < 0) {
					return -1;
				}
			}
			if (fields_complete(&f, "DescribePCR", err) < 0)
				return -1;
			if (out->len != 32 && out->len != 48 && out->len != 64)
				return err_set(err, EPROTO, "DescribePCR.data: %zu bytes, expected 32, 48 or 64",
				               out->len);
		} else if (strcmp(variant, "DescribeNSM") == 0) {
			out->kind = NSM_RESP_DESCRIBE_NSM;
			if (parse_describe_nsm(&r, n, out, err) < 0)
				return -1;
		} else if (strcmp(variant, "Attestation") == 0) {
			static const char *const names[] = {"document"};
			struct fields f = {names, 1, 0};
			int w;
			out->kind = NSM_RESP_ATTESTATION;
			for (uint64_t i = 0; i < n; i++)
				if (next_field(&r, &f, "Attestation", &w, err) < 0 ||
				    (w == 0 && read_bytes(&r, "Attestation.document", NSM_RESPONSE_MAX, &out->data,
				                          &out->len, err) < 0))
					return -1;
			if (fields_complete(&f, "Attestation", err) < 0)
				return -1;
			if (out->len == 0)
				return err_set(err, EPROTO, "Attestation.document: empty");
		} else {
			return err_set(err, EPROTO, "NSM response: unknown variant \"%s\"", variant);
		}
	}
	if (r.off != r.len)
		return err_set(err, EPROTO, "NSM response: %zu trailing bytes after offset %zu", r.len - r.off, r.off);
	return 0;
}

/* ---------------------------------------------------------------- the device
 * On Nitro (and QEMU's nitro-enclave machine) the NSM is /dev/nsm and one
 * ioctl carries a request and its response. Outside an enclave there is no
 * NSM: tests give "unix:PATH", a stand-in that gets each request as a u32
 * big-endian length then the CBOR, and answers the same way (the seam
 * documented in docs/odyn.md; tests/helpers/nsm-standin.c). */
struct nsm {
	int fd;
	bool is_socket;
};

int nsm_open(const char *where, struct nsm **out, struct err **err)
{
	struct nsm *d = xcalloc(1, sizeof(*d));
	if (str_has_prefix(where, "unix:")) {
		struct transport_addr a;
		if (transport_parse(where, &a, err) < 0) {
			free(d);
			return err_wrap(err, "NSM stand-in");
		}
		d->fd = transport_connect(&a, false, err);
		d->is_socket = true;
	} else {
		d->fd = open(where, O_RDWR | O_CLOEXEC);
		if (d->fd < 0)
			err_sys(err, "open %s", where);
	}
	if (d->fd < 0) {
		free(d);
		return -1;
	}
	*out = d;
	return 0;
}

void nsm_close(struct nsm *d)
{
	if (d == NULL)
		return;
	close(d->fd);
	free(d);
}

static int socket_call(struct nsm *d, const struct buf *req, uint8_t *resp, size_t *resp_len, struct err **err)
{
	uint8_t h[4] = {(uint8_t)(req->len >> 24), (uint8_t)(req->len >> 16), (uint8_t)(req->len >> 8),
	                (uint8_t)req->len};
	if (io_write_full(d->fd, h, 4, err) < 0 || io_write_full(d->fd, req->data, req->len, err) < 0)
		return err_wrap(err, "NSM stand-in: send");
	ssize_t n = io_read_full(d->fd, h, 4, err);
	if (n < 0)
		return err_wrap(err, "NSM stand-in: receive");
	if (n < 4)
		return err_set(err, EPROTO, "NSM stand-in: closed the connection");
	size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	if (len > *resp_len)
		return err_set(err, EPROTO, "NSM stand-in: response of %zu bytes exceeds %zu", len, *resp_len);
	n = io_read_full(d->fd, resp, len, err);
	if (n < 0)
		return err_wrap(err, "NSM stand-in: receive");
	if ((size_t)n < len)
		return err_set(err, EPROTO, "NSM stand-in: response cut short");
	*resp_len = len;
	return 0;
}

int nsm_call(struct nsm *d, const struct buf *req, uint8_t *resp, size_t *resp_len, struct err **err)
{
	if (req->len > NSM_REQUEST_MAX)
		return err_set(err, E2BIG, "NSM request of %zu bytes exceeds %d", req->len, NSM_REQUEST_MAX);
	if (d->is_socket)
		return socket_call(d, req, resp, resp_len, err);
	struct {
		struct iovec request, response;
	} msg = {{req->data, req->len}, {resp, *resp_len}};
	int r;
	do
		r = ioctl(d->fd, NSM_IOCTL, &msg);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return err_sys(err, "NSM ioctl");
	if (msg.response.iov_len > *resp_len)
		return err_set(err, EPROTO, "NSM: response length %zu exceeds the buffer", msg.response.iov_len);
	*resp_len = msg.response.iov_len;
	return 0;
}

/* One request, one parsed response of the wanted kind; resp backs out's pointers. */
static int transact(struct nsm *d, const struct buf *req, enum nsm_resp_kind want, const char *what, uint8_t *resp,
                    struct nsm_response *out, struct err **err)
{
	size_t n = NSM_RESPONSE_MAX;
	if (nsm_call(d, req, resp, &n, err) < 0 || nsm_response_parse(resp, n, out, err) < 0)
		return err_wrap(err, "NSM %s", what);
	if (out->kind == NSM_RESP_ERROR)
		return err_set(err, EIO, "NSM %s: the module answered %s", what, out->error);
	if (out->kind != want)
		return err_set(err, EPROTO, "NSM %s: the answer is for another request", what);
	return 0;
}

int nsm_get_random(struct nsm *d, uint8_t *out, size_t cap, size_t *n, struct err **err)
{
	_cleanup_buf_ struct buf req = {0};
	_cleanup_free_ uint8_t *resp = xmalloc(NSM_RESPONSE_MAX);
	struct nsm_response r;
	nsm_request_get_random(&req);
	if (transact(d, &req, NSM_RESP_GET_RANDOM, "GetRandom", resp, &r, err) < 0)
		return -1;
	*n = r.len < cap ? r.len : cap;
	memcpy(out, r.data, *n);
	return 0;
}

int nsm_describe_pcr(struct nsm *d, uint16_t index, bool *lock, uint8_t out[64], size_t *len, struct err **err)
{
	_cleanup_buf_ struct buf req = {0};
	_cleanup_free_ uint8_t *resp = xmalloc(NSM_RESPONSE_MAX);
	struct nsm_response r;
	nsm_request_describe_pcr(&req, index);
	if (transact(d, &req, NSM_RESP_DESCRIBE_PCR, "DescribePCR", resp, &r, err) < 0)
		return err_wrap(err, "PCR%u", index);
	*lock = r.lock;
	memcpy(out, r.data, r.len);
	*len = r.len;
	return 0;
}

int nsm_describe(struct nsm *d, struct nsm_description *out, struct err **err)
{
	_cleanup_buf_ struct buf req = {0};
	_cleanup_free_ uint8_t *resp = xmalloc(NSM_RESPONSE_MAX);
	struct nsm_response r;
	nsm_request_describe_nsm(&req);
	if (transact(d, &req, NSM_RESP_DESCRIBE_NSM, "DescribeNSM", resp, &r, err) < 0)
		return -1;
	*out = r.describe;
	return 0;
}

int nsm_attest(struct nsm *d, const struct nsm_attest_req *a, struct buf *doc, struct err **err)
{
	_cleanup_buf_ struct buf req = {0};
	_cleanup_free_ uint8_t *resp = xmalloc(NSM_RESPONSE_MAX);
	struct nsm_response r;
	if (nsm_request_attestation(&req, a, err) < 0)
		return err_wrap(err, "NSM Attestation");
	if (transact(d, &req, NSM_RESP_ATTESTATION, "Attestation", resp, &r, err) < 0)
		return -1;
	buf_append(doc, r.data, r.len);
	return 0;
}

/* ---------------------------------------------------------------- init's use */

int odyn_nsm_seed_entropy(struct err **err)
{
	struct nsm *d;
	if (nsm_open("/dev/nsm", &d, err) < 0)
		return -1;
	/* rand_pool_info ends in a flexible array: room for 512 bytes after it. */
	_Alignas(struct rand_pool_info) uint8_t raw[sizeof(struct rand_pool_info) + 512];
	struct rand_pool_info *info = (struct rand_pool_info *)raw;
	size_t n;
	int r = nsm_get_random(d, (uint8_t *)info->buf, 512, &n, err);
	nsm_close(d);
	if (r < 0)
		return -1;
	info->entropy_count = (int)n * 8;
	info->buf_size = (int)n;
	_cleanup_close_ int rfd = open("/dev/random", O_WRONLY | O_CLOEXEC);
	if (rfd < 0)
		return err_sys(err, "open /dev/random");
	if (ioctl(rfd, RNDADDENTROPY, info) < 0)
		return err_sys(err, "RNDADDENTROPY");
	return 0;
}
