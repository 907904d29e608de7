/* nsm_pcr.h: DescribePCR through /dev/nsm for the end-to-end test programs (the test init and
 * the test app): a hand-written CBOR request and a scan of the answer; test fixtures only. */
#ifndef E2E_NSM_PCR_H
#define E2E_NSM_PCR_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

struct nsm_raw {
	struct iovec request;
	struct iovec response;
};
#define NSM_IOCTL _IOWR(0x0A, 0, struct nsm_raw)

/* CBOR {"DescribePCR": {"index": i}} and the 48-byte "data" of the answer. */
static int nsm_describe_pcr(int fd, unsigned index, uint8_t out[48], int *locked)
{
	uint8_t req[32], resp[0x3000];
	size_t n = 0;
	req[n++] = 0xA1;
	req[n++] = 0x60 + 11;
	memcpy(req + n, "DescribePCR", 11);
	n += 11;
	req[n++] = 0xA1;
	req[n++] = 0x60 + 5;
	memcpy(req + n, "index", 5);
	n += 5;
	req[n++] = (uint8_t)index; /* < 24: a one-byte unsigned */
	struct nsm_raw raw = {{req, n}, {resp, sizeof(resp)}};
	if (ioctl(fd, NSM_IOCTL, &raw) < 0)
		return -1;
	size_t len = raw.response.iov_len;
	static const uint8_t data_key[] = {0x64, 'd', 'a', 't', 'a', 0x58, 48};
	static const uint8_t lock_key[] = {0x64, 'l', 'o', 'c', 'k'};
	*locked = -1;
	for (size_t i = 0; i + sizeof(lock_key) < len; i++)
		if (memcmp(resp + i, lock_key, sizeof(lock_key)) == 0)
			*locked = resp[i + sizeof(lock_key)] == 0xF5;
	for (size_t i = 0; i + sizeof(data_key) + 48 <= len; i++) {
		if (memcmp(resp + i, data_key, sizeof(data_key)) == 0) {
			memcpy(out, resp + i + sizeof(data_key), 48);
			return 0;
		}
	}
	errno = EPROTO;
	return -1;
}

#endif
