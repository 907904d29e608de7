/* ne_net: the launcher's sockets to and from the enclave: AF_VSOCK on a Nitro host, or unix sockets
 * named "<dir>/<cid>-<port>.sock" standing in for vsock so tests run the whole launcher. */
#include <linux/vm_sockets.h>
#include <string.h>
#include <sys/time.h>

#include "runtime/ne.h"

int ne_net_addr(const struct ne_net *net, bool listen, uint64_t cid, uint32_t port, struct transport_addr *out,
                struct err **err)
{
	char text[4200];
	if (net->unix_dir)
		snprintf(text, sizeof(text), "unix:%s/%llu-%u.sock", net->unix_dir,
		         (unsigned long long)(listen ? NE_PARENT_CID : cid), port);
	else if (listen)
		snprintf(text, sizeof(text), "vsock:any:%u", port);
	else
		snprintf(text, sizeof(text), "vsock:%llu:%u", (unsigned long long)cid, port);
	return transport_parse(text, out, err);
}

/* What a failing AF_VSOCK socket usually means here. */
static int vsock_hint(struct err **err)
{
	if ((*err)->code == EAFNOSUPPORT || (*err)->code == ENODEV)
		return err_wrap(err, "AF_VSOCK is not available (on a Nitro parent instance the vsock transport "
		                     "comes with enclave support: check that the instance has it enabled)");
	return -1;
}

int ne_net_listen(const struct ne_net *net, uint32_t port, struct err **err)
{
	struct transport_addr a;
	if (ne_net_addr(net, true, 0, port, &a, err) < 0)
		return -1;
	int fd = transport_listen(&a, 16, err);
	if (fd < 0) {
		if ((*err)->code == EADDRINUSE)
			return err_wrap(err,
			                "port %u is taken (another enclave starting, or nitro-cli run-enclave, "
			                "holds it): retry when it is done",
			                port);
		return a.family == AF_VSOCK ? vsock_hint(err) : -1;
	}
	return fd;
}

int ne_vsock_socket(uint64_t connect_timeout_ms, struct err **err)
{
	_cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(err, "AF_VSOCK socket");
	struct timeval tv = {.tv_sec = (time_t)(connect_timeout_ms / 1000),
	                     .tv_usec = (suseconds_t)(connect_timeout_ms % 1000) * 1000};
	if (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof(tv)) < 0)
		return err_sys(err, "AF_VSOCK socket: set the connect timeout to %llu ms",
		               (unsigned long long)connect_timeout_ms);
	return steal_fd(&fd);
}

static int connect_with(const struct ne_net *net, uint64_t cid, uint32_t port, uint64_t timeout_ms, struct err **err)
{
	struct transport_addr a;
	if (ne_net_addr(net, false, cid, port, &a, err) < 0)
		return -1;
	if (net->unix_dir && net->before_connect)
		net->before_connect(net->hook_ctx, cid, port);
	int fd;
	if (a.family == AF_VSOCK && timeout_ms > 0) {
		fd = ne_vsock_socket(timeout_ms, err);
		if (fd >= 0) {
			int r;
			do
				r = connect(fd, (const struct sockaddr *)&a.sa, a.len);
			while (r < 0 && errno == EINTR);
			if (r < 0) {
				err_sys(err, "connect to %s", a.text);
				close(fd);
				fd = -1;
			}
		}
	} else {
		fd = transport_connect(&a, false, err);
	}
	if (fd < 0) {
		/* A unix stand-in that nobody created yet is vsock's "nothing listens there". */
		if (a.family == AF_UNIX && (*err)->code == ENOENT)
			(*err)->code = ECONNREFUSED;
		return a.family == AF_VSOCK ? vsock_hint(err) : -1;
	}
	return fd;
}

int ne_net_connect(const struct ne_net *net, uint64_t cid, uint32_t port, struct err **err)
{
	return connect_with(net, cid, port, 0, err);
}

int ne_net_connect_timeout(const struct ne_net *net, uint64_t cid, uint32_t port, uint64_t timeout_ms, struct err **err)
{
	return connect_with(net, cid, port, timeout_ms, err);
}

int ne_net_connect_start(const struct ne_net *net, uint64_t cid, uint32_t port, bool *in_progress, struct err **err)
{
	struct transport_addr a;
	if (ne_net_addr(net, false, cid, port, &a, err) < 0)
		return -1;
	if (net->unix_dir && net->before_connect)
		net->before_connect(net->hook_ctx, cid, port);
	int fd = transport_connect_start(&a, in_progress, err);
	if (fd < 0) {
		if (a.family == AF_UNIX && (*err)->code == ENOENT)
			(*err)->code = ECONNREFUSED;
		return a.family == AF_VSOCK ? vsock_hint(err) : -1;
	}
	return fd;
}
