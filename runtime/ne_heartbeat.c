/* ne_heartbeat: the boot handshake nitro-cli expects: the enclave's init connects to the parent's
 * vsock port 9000 and writes 0xB7, the parent writes it back; and nitro-cli's timeout for it. */
#include <poll.h>
#include <time.h>

#include "runtime/ne.h"
#include "runtime/runtime.h"

#define HEARTBEAT_STEP_MS (90 * 1000ULL)

uint64_t ne_heartbeat_timeout_ms(uint64_t eif_size, uint64_t memory_bytes)
{
	/* eif_loader: 90 s per started 6 GiB of image, plus 90 s per started 100 GiB of memory. */
	uint64_t a = eif_size ? (eif_size - 1) / (6 * NE_GIB) + 1 : 1;
	uint64_t b = memory_bytes ? (memory_bytes - 1) / (100 * NE_GIB) + 1 : 1;
	return (a + b) * HEARTBEAT_STEP_MS;
}

/* Polls fd for `events` until the deadline, watching the enclave fd for POLLHUP as well.
 * Returns 1 ready, 0 timed out, -1 with *err (the enclave stopped, or poll failed). */
static int wait_for(int fd, short events, int enclave_fd, uint64_t deadline, struct err **err)
{
	for (;;) {
		uint64_t now = (uint64_t)time_monotonic_ms();
		if (now >= deadline)
			return 0;
		uint64_t left = deadline - now;
		struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = enclave_fd, .events = POLLIN}};
		int r = poll(p, enclave_fd >= 0 ? 2 : 1, left > 60000 ? 60000 : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, "heartbeat: poll");
		}
		if (enclave_fd >= 0 && (p[1].revents & (POLLHUP | POLLERR)))
			return err_set(err, ECHILD,
			               "the enclave stopped before its heartbeat: it failed to boot (start it with "
			               "debug mode to read its console)");
		if (p[0].revents)
			return 1;
	}
}

int ne_heartbeat_wait(int listen_fd, int enclave_fd, uint64_t timeout_ms, struct err **err)
{
	uint64_t deadline = (uint64_t)time_monotonic_ms() + timeout_ms;
	int conn = -1;
	while (conn < 0) {
		int r = wait_for(listen_fd, POLLIN, enclave_fd, deadline, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return err_set(
			    err, ETIMEDOUT,
			    "no heartbeat from the enclave within %g s (nothing connected to vsock port %d): "
			    "its init did not come up; start it with debug mode to read its console",
			    (double)timeout_ms / 1000, WIRE_HEARTBEAT_PORT);
		conn = transport_accept(listen_fd, NULL, err);
		if (conn < 0 && *err)
			return err_wrap(err, "heartbeat: accept");
	}
	_cleanup_close_ int c = conn;
	int r = wait_for(c, POLLIN, enclave_fd, deadline, err);
	if (r < 0)
		return -1;
	if (r == 0)
		return err_set(err, ETIMEDOUT, "the enclave connected to port %d but sent no heartbeat within %g s",
		               WIRE_HEARTBEAT_PORT, (double)timeout_ms / 1000);
	uint8_t byte;
	ssize_t n;
	do
		n = read(c, &byte, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return err_sys(err, "heartbeat: read");
	if (n == 0)
		return err_set(err, EPROTO, "heartbeat: the enclave closed the connection without sending 0x%02x",
		               WIRE_HEARTBEAT_BYTE);
	if (byte != WIRE_HEARTBEAT_BYTE)
		return err_set(err, EPROTO,
		               "heartbeat: the enclave sent 0x%02x, expected 0x%02x (is its init nitro's?)", byte,
		               WIRE_HEARTBEAT_BYTE);
	/* The accepted socket is non-blocking; one byte always fits in a fresh socket's buffer. */
	if (io_write_full(c, &byte, 1, err) < 0)
		return err_wrap(err, "heartbeat: reply");
	return 0;
}
