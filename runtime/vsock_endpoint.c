/* vsock_endpoint: the host side of forwarded vsock ports: unix sockets, or TCP on 127.0.0.1 only
 * (the emulator never exposes a guest port beyond this machine). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "runtime/internal.h"

const char *vsock_endpoint_name(const struct vsock_endpoint *ep, char *out, size_t out_len)
{
	if (ep->unix_path)
		snprintf(out, out_len, "unix:%s", ep->unix_path);
	else
		snprintf(out, out_len, "tcp:127.0.0.1:%u", ep->tcp_port);
	return out;
}

static int endpoint_addr(const struct vsock_endpoint *ep, struct sockaddr_storage *ss, socklen_t *len, struct err **err)
{
	memset(ss, 0, sizeof(*ss));
	if (ep->unix_path) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		if (strlen(ep->unix_path) >= sizeof(un->sun_path))
			return err_set(err, ENAMETOOLONG, "unix socket path %s is longer than %zu bytes", ep->unix_path,
			               sizeof(un->sun_path) - 1);
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, ep->unix_path);
		*len = sizeof(*un);
		return AF_UNIX;
	}
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	in->sin_family = AF_INET;
	in->sin_port = htons(ep->tcp_port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof(*in);
	return AF_INET;
}

int vsock_endpoint_connect(const struct vsock_endpoint *ep, bool *pending, struct err **err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int family = endpoint_addr(ep, &ss, &len, err);
	if (family < 0)
		return -1;
	_cleanup_close_ int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_sys(err, "socket");
	if (vsock_endpoint_connect_again(ep, fd, pending, err) < 0)
		return -1;
	return steal_fd(&fd);
}

int vsock_endpoint_connect_again(const struct vsock_endpoint *ep, int fd, bool *pending, struct err **err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char name[160];
	if (endpoint_addr(ep, &ss, &len, err) < 0)
		return -1;
	*pending = false;
	int r;
	do
		r = connect(fd, (struct sockaddr *)&ss, len);
	while (r < 0 && errno == EINTR);
	if (r == 0 || errno == EISCONN)
		return 0;
	/* TCP still connecting, or a unix listener whose backlog is full (EAGAIN: nothing is
	 * under way, the next call tries again). */
	if (errno == EINPROGRESS || errno == EALREADY || errno == EAGAIN) {
		*pending = true;
		return 0;
	}
	return err_sys(err, "connect %s", vsock_endpoint_name(ep, name, sizeof(name)));
}

int vsock_endpoint_listen(const struct vsock_endpoint *ep, struct err **err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char name[160];
	int family = endpoint_addr(ep, &ss, &len, err);
	if (family < 0)
		return -1;
	_cleanup_close_ int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_sys(err, "socket");
	if (family == AF_UNIX) {
		struct stat st;
		if (lstat(ep->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(ep->unix_path);
	} else {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		return err_sys(err, "bind %s", vsock_endpoint_name(ep, name, sizeof(name)));
	if (listen(fd, 64) < 0)
		return err_sys(err, "listen %s", vsock_endpoint_name(ep, name, sizeof(name)));
	return steal_fd(&fd);
}
