/* transport: parse "vsock:", "unix:" and "tcp:" endpoint addresses and open
 * listening or connected sockets for them. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "wire/transport.h"

static int parse_u32(const char *s, uint32_t *out)
{
	if (*s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end != '\0' || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_vsock(const char *rest, struct transport_addr *out, struct err **err)
{
	const char *colon = strchr(rest, ':');
	if (colon == NULL)
		return err_set(err, EINVAL, "expected vsock:CID:PORT");
	_cleanup_free_ char *cid_s = xstrndup(rest, (size_t)(colon - rest));
	uint32_t cid, port;
	if (strcmp(cid_s, "any") == 0)
		cid = VMADDR_CID_ANY;
	else if (parse_u32(cid_s, &cid) < 0)
		return err_set(err, EINVAL, "bad vsock CID \"%s\"", cid_s);
	if (parse_u32(colon + 1, &port) < 0)
		return err_set(err, EINVAL, "bad vsock port \"%s\"", colon + 1);
	struct sockaddr_vm *vm = (struct sockaddr_vm *)&out->sa;
	vm->svm_family = AF_VSOCK;
	vm->svm_cid = cid;
	vm->svm_port = port;
	out->len = sizeof(*vm);
	out->family = AF_VSOCK;
	if (cid == VMADDR_CID_ANY)
		snprintf(out->text, sizeof(out->text), "vsock:any:%u", port);
	else
		snprintf(out->text, sizeof(out->text), "vsock:%u:%u", cid, port);
	return 0;
}

static int parse_unix(const char *path, struct transport_addr *out, struct err **err)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&out->sa;
	size_t n = strlen(path);
	if (n == 0)
		return err_set(err, EINVAL, "empty unix socket path");
	if (n >= sizeof(un->sun_path))
		return err_set(err, ENAMETOOLONG, "unix socket path longer than %zu bytes", sizeof(un->sun_path) - 1);
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, n + 1);
	out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	out->family = AF_UNIX;
	snprintf(out->text, sizeof(out->text), "unix:%.120s", path);
	return 0;
}

static int parse_tcp(const char *rest, struct transport_addr *out, struct err **err)
{
	const char *colon = strrchr(rest, ':');
	if (colon == NULL)
		return err_set(err, EINVAL, "expected tcp:HOST:PORT");
	_cleanup_free_ char *host = xstrndup(rest, (size_t)(colon - rest));
	uint32_t port;
	if (parse_u32(colon + 1, &port) < 0 || port > 65535)
		return err_set(err, EINVAL, "bad tcp port \"%s\"", colon + 1);
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			return err_set(err, EINVAL, "bad IPv6 address \"%s\"", host + 1);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*in6);
		out->family = AF_INET6;
		snprintf(out->text, sizeof(out->text), "tcp:[%s]:%u", host + 1, port);
		return 0;
	}
	struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;
	const char *numeric = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
	if (inet_pton(AF_INET, numeric, &in->sin_addr) != 1)
		return err_set(err, EINVAL, "bad IPv4 address \"%s\" (names are not resolved)", host);
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	out->len = sizeof(*in);
	out->family = AF_INET;
	snprintf(out->text, sizeof(out->text), "tcp:%s:%u", numeric, port);
	return 0;
}

int transport_parse(const char *text, struct transport_addr *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	int r;
	if (str_has_prefix(text, "vsock:"))
		r = parse_vsock(text + 6, out, err);
	else if (str_has_prefix(text, "unix:"))
		r = parse_unix(text + 5, out, err);
	else if (str_has_prefix(text, "tcp:"))
		r = parse_tcp(text + 4, out, err);
	else
		r = err_set(err, EINVAL, "unknown transport (want vsock:CID:PORT, unix:PATH or tcp:HOST:PORT)");
	if (r < 0)
		return err_wrap(err, "address \"%s\"", text);
	return 0;
}

static int set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

int transport_listen(const struct transport_addr *addr, int backlog, struct err **err)
{
	_cleanup_close_ int fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(err, "listen on %s: socket", addr->text);
	if (addr->family == AF_INET || addr->family == AF_INET6) {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	} else if (addr->family == AF_UNIX) {
		const char *path = ((const struct sockaddr_un *)&addr->sa)->sun_path;
		struct stat st;
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
	}
	if (bind(fd, (const struct sockaddr *)&addr->sa, addr->len) < 0)
		return err_sys(err, "listen on %s: bind", addr->text);
	if (listen(fd, backlog) < 0)
		return err_sys(err, "listen on %s", addr->text);
	return steal_fd(&fd);
}

void transport_unlink(const struct transport_addr *addr)
{
	if (addr->family == AF_UNIX)
		unlink(((const struct sockaddr_un *)&addr->sa)->sun_path);
}

int transport_connect_start(const struct transport_addr *addr, bool *in_progress, struct err **err)
{
	*in_progress = false;
	_cleanup_close_ int fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(err, "connect to %s: socket", addr->text);
	if (connect(fd, (const struct sockaddr *)&addr->sa, addr->len) < 0) {
		if (errno != EINPROGRESS)
			return err_sys(err, "connect to %s", addr->text);
		*in_progress = true;
	}
	return steal_fd(&fd);
}

int transport_connect_finish(int fd, const struct transport_addr *addr, struct err **err)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return err_sys(err, "connect to %s: getsockopt", addr->text);
	if (soerr != 0) {
		errno = soerr;
		return err_sys(err, "connect to %s", addr->text);
	}
	return 0;
}

int transport_connect_step(int fd, uint32_t events, struct err **err)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr == 0 && !(events & EPOLLERR) && (events & EPOLLOUT))
		return 0;
	soerr = soerr ? soerr : ECONNREFUSED;
	return err_set(err, soerr, "%s", strerror(soerr));
}

int transport_connect(const struct transport_addr *addr, bool nonblock, struct err **err)
{
	_cleanup_close_ int fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(err, "connect to %s: socket", addr->text);
	int r;
	do
		r = connect(fd, (const struct sockaddr *)&addr->sa, addr->len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return err_sys(err, "connect to %s", addr->text);
	if (nonblock && set_nonblock(fd, true) < 0)
		return err_sys(err, "connect to %s: fcntl", addr->text);
	return steal_fd(&fd);
}

int transport_connect_timed(const struct transport_addr *addr, int timeout_ms, struct err **err)
{
	_cleanup_close_ int fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(err, "connect to %s: socket", addr->text);
	/* Linux bounds a blocking connect by SO_SNDTIMEO (EINPROGRESS when it passes). */
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return err_sys(err, "connect to %s: SO_SNDTIMEO", addr->text);
	/* vsock bounds its connect by its own option (2 s by default), not SO_SNDTIMEO. */
	if (addr->family == AF_VSOCK && setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof(tv)) < 0)
		return err_sys(err, "connect to %s: SO_VM_SOCKETS_CONNECT_TIMEOUT", addr->text);
	int r;
	do
		r = connect(fd, (const struct sockaddr *)&addr->sa, addr->len);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EINPROGRESS || errno == EAGAIN || (addr->family == AF_VSOCK && errno == ETIMEDOUT)))
		return err_set(err, ETIMEDOUT, "connect to %s: not accepted within %d ms", addr->text, timeout_ms);
	if (r < 0)
		return err_sys(err, "connect to %s", addr->text);
	return steal_fd(&fd);
}

int transport_reserve_fd(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int transport_accept(int listen_fd, int *reserve_fd, struct err **err)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		switch (errno) {
		case EINTR:
		case ECONNABORTED: continue;
		case EAGAIN: return -1;
		case EMFILE:
		case ENFILE:
			if (reserve_fd && *reserve_fd >= 0) {
				close(*reserve_fd);
				fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
				*reserve_fd = transport_reserve_fd();
				errno = EMFILE;
				return err_sys(err, "accept: connection refused for want of descriptors");
			}
			return err_sys(err, "accept");
		default: return err_sys(err, "accept");
		}
	}
}

int transport_local_port(int fd, uint32_t *port, struct err **err)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return err_sys(err, "getsockname");
	switch (ss.ss_family) {
	case AF_INET: *port = ntohs(((struct sockaddr_in *)&ss)->sin_port); return 0;
	case AF_INET6: *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port); return 0;
	case AF_VSOCK: *port = ((struct sockaddr_vm *)&ss)->svm_port; return 0;
	default: return err_set(err, EINVAL, "socket has no port");
	}
}

int listener_open(struct listener *l, struct evloop *loop, const struct transport_addr *addr, int backlog,
                  void (*on_accept)(struct ev_handler *h, uint32_t events), struct err **err)
{
	int fd = transport_listen(addr, backlog, err);
	if (fd < 0)
		return -1;
	*l = (struct listener){.h.fn = on_accept,
	                       .loop = loop,
	                       .fd = fd,
	                       .reserve_fd = transport_reserve_fd(),
	                       .open = true,
	                       .addr = *addr};
	if (evloop_add(loop, fd, EPOLLIN, &l->h, err) < 0) {
		close(fd);
		if (l->reserve_fd >= 0)
			close(l->reserve_fd);
		l->open = false;
		return -1;
	}
	return 0;
}

int listener_accept(struct listener *l, struct err **err)
{
	return transport_accept(l->fd, &l->reserve_fd, err);
}

void listener_close(struct listener *l)
{
	if (!l->open)
		return;
	evloop_del(l->loop, l->fd);
	close(l->fd);
	if (l->reserve_fd >= 0)
		close(l->reserve_fd);
	transport_unlink(&l->addr);
	l->open = false;
}
