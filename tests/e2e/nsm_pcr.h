/* nsm_pcr.h: DescribePCR through /dev/nsm for the end-to-end test programs (the test init and
 * the test app): a hand-written CBOR request and a scan of the answer; test fixtures only. */
#ifndef E2E_NSM_PCR_H
#define E2E_NSM_PCR_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

/* The same with a bound: the driver waits up to 2 minutes for each NSM answer, uninterruptibly,
 * so the call runs on a thread of its own and the caller gives up after `timeout_s` (errno
 * ETIMEDOUT; the thread is left behind, the enclave stops soon after). A lost NSM answer then
 * costs the test seconds, and callers stop asking after the first one. */
struct nsm_call {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fd;
	unsigned index;
	uint8_t out[48];
	int locked, rc, err;
	int done, abandoned;
};

static void *nsm_call_thread(void *arg)
{
	struct nsm_call *c = arg;
	int rc = nsm_describe_pcr(c->fd, c->index, c->out, &c->locked);
	pthread_mutex_lock(&c->lock);
	c->rc = rc;
	c->err = errno;
	c->done = 1;
	int abandoned = c->abandoned;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (abandoned)
		free(c);
	return NULL;
}

static int nsm_describe_pcr_bounded(int fd, unsigned index, uint8_t out[48], int *locked, unsigned timeout_s)
{
	struct nsm_call *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->fd = fd;
	c->index = index;
	pthread_t t;
	if (pthread_create(&t, NULL, nsm_call_thread, c) != 0) {
		free(c);
		return nsm_describe_pcr(fd, index, out, locked);
	}
	pthread_detach(t);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_s;
	pthread_mutex_lock(&c->lock);
	while (!c->done)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT)
			break;
	if (!c->done) {
		c->abandoned = 1; /* the thread frees it if the answer ever comes */
		pthread_mutex_unlock(&c->lock);
		errno = ETIMEDOUT;
		return -1;
	}
	pthread_mutex_unlock(&c->lock);
	int rc = c->rc;
	memcpy(out, c->out, 48);
	*locked = c->locked;
	errno = c->err;
	free(c);
	return rc;
}

/* The virtio lines of /proc/interrupts, for the console when NSM does not answer: whether the
 * device's interrupt count moved tells a lost request from a lost interrupt. */
static void nsm_print_virtio_interrupts(void (*say)(const char *fmt, ...))
{
	FILE *f = fopen("/proc/interrupts", "r");
	if (!f) {
		mkdir("/proc", 0555); /* the raw test init does not mount it */
		mount("proc", "/proc", "proc", 0, NULL);
		f = fopen("/proc/interrupts", "r");
	}
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "virtio")) {
			line[strcspn(line, "\n")] = '\0';
			say("interrupts:%s", line);
		}
	fclose(f);
}

#endif
