/* nsm: the one NSM request init needs: GetRandom, to seed the kernel's
 * entropy pool before the app starts (the enclave has no other good source
 * this early). CBOR is encoded and decoded by hand for this single shape. */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include "odyn/internal.h"

#define NSM_IOCTL        0xC0200A00UL /* _IOWR(0x0A, 0, 32) */
#define NSM_RESPONSE_MAX 0x3000

/* Reads a CBOR head of major type `major`; returns its argument or -1. */
static int64_t cbor_head(const uint8_t *p, size_t len, size_t *pos, int major)
{
	if (*pos >= len || (p[*pos] >> 5) != major)
		return -1;
	uint8_t info = p[(*pos)++] & 0x1f;
	if (info < 24)
		return info;
	size_t n = info == 24 ? 1 : info == 25 ? 2 : info == 26 ? 4 : 0;
	if (n == 0 || len - *pos < n)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[(*pos)++];
	return v;
}

static bool cbor_text_is(const uint8_t *p, size_t len, size_t *pos, const char *want)
{
	int64_t n = cbor_head(p, len, pos, 3);
	if (n < 0 || (size_t)n != strlen(want) || len - *pos < (size_t)n || memcmp(p + *pos, want, (size_t)n) != 0)
		return false;
	*pos += (size_t)n;
	return true;
}

ssize_t odyn_nsm_random_parse(const uint8_t *resp, size_t len, uint8_t *out, size_t cap, struct err **err)
{
	size_t pos = 0;
	if (cbor_head(resp, len, &pos, 5) != 1 || !cbor_text_is(resp, len, &pos, "GetRandom") ||
	    cbor_head(resp, len, &pos, 5) != 1 || !cbor_text_is(resp, len, &pos, "random"))
		return err_set(err, EPROTO, "NSM: not a GetRandom response");
	size_t save = pos;
	int64_t n = cbor_head(resp, len, &pos, 2); /* a byte string (serde_bytes) */
	if (n >= 0) {
		if (len - pos < (size_t)n || (size_t)n > cap)
			return err_set(err, EPROTO, "NSM: GetRandom: bad length %lld", (long long)n);
		memcpy(out, resp + pos, (size_t)n);
		return (ssize_t)n;
	}
	pos = save;
	n = cbor_head(resp, len, &pos, 4); /* or an array of bytes */
	if (n < 0 || (size_t)n > cap)
		return err_set(err, EPROTO, "NSM: GetRandom: want bytes");
	for (int64_t i = 0; i < n; i++) {
		int64_t b = cbor_head(resp, len, &pos, 0);
		if (b < 0 || b > 255)
			return err_set(err, EPROTO, "NSM: GetRandom: byte %lld is not a byte", (long long)i);
		out[i] = (uint8_t)b;
	}
	return (ssize_t)n;
}

int odyn_nsm_seed_entropy(struct err **err)
{
	static const uint8_t req[] = {0x69, 'G', 'e', 't', 'R', 'a', 'n', 'd', 'o', 'm'};
	_cleanup_close_ int fd = open("/dev/nsm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, "open /dev/nsm");
	_cleanup_free_ uint8_t *resp = xmalloc(NSM_RESPONSE_MAX);
	struct {
		struct iovec request, response;
	} msg = {{(void *)req, sizeof(req)}, {resp, NSM_RESPONSE_MAX}};
	if (ioctl(fd, NSM_IOCTL, &msg) < 0)
		return err_sys(err, "NSM GetRandom");
	struct {
		struct rand_pool_info info;
		uint8_t data[512];
	} pool;
	ssize_t n = odyn_nsm_random_parse(resp, msg.response.iov_len, pool.data, sizeof(pool.data), err);
	if (n < 0)
		return -1;
	pool.info.entropy_count = (int)n * 8;
	pool.info.buf_size = (int)n;
	_cleanup_close_ int rfd = open("/dev/random", O_WRONLY | O_CLOEXEC);
	if (rfd < 0)
		return err_sys(err, "open /dev/random");
	if (ioctl(rfd, RNDADDENTROPY, &pool.info) < 0)
		return err_sys(err, "RNDADDENTROPY");
	return 0;
}
