/* odyn-peer: the outside of odyn for tests: reads a stream socket, plays the
 * host's egress endpoint (every name resolves to 127.0.0.1), runs a TCP echo
 * server, sends bytes. Not a test itself; tests/cli/test_odyn*.sh drive it. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "odyn/internal.h"

static int die(struct err *e)
{
	fprintf(stderr, "odyn-peer: %s\n", e ? e->msg : "failed");
	err_free(&e);
	return 1;
}

/* Connects, retrying while the socket is not there yet (odyn starting). */
static int connect_retry(const char *text, struct err **err)
{
	struct transport_addr a;
	if (transport_parse(text, &a, err) < 0)
		return -1;
	for (int i = 0;; i++) {
		int fd = transport_connect(&a, false, err);
		if (fd >= 0 || i == 500)
			return fd;
		err_free(err);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* read ADDR: copies everything the socket sends to stdout until EOF. */
static int cmd_read(const char *addr)
{
	struct err *e = NULL;
	int fd = connect_retry(addr, &e);
	if (fd < 0)
		return die(e);
	fputs("connected\n", stderr); /* tests wait for this before going on */
	char b[65536];
	ssize_t n;
	while ((n = read(fd, b, sizeof(b))) > 0)
		if (io_write_full(1, b, (size_t)n, &e) < 0)
			return die(e);
	close(fd);
	return 0;
}

/* send ADDR: connects, sends stdin while printing what comes back (both
 * at once, or an echoing peer would deadlock), half-closes at the end of
 * stdin, and stops at the peer's EOF. */
static int cmd_send(const char *addr)
{
	struct err *e = NULL;
	int fd = connect_retry(addr, &e);
	if (fd < 0)
		return die(e);
	static char b[65536], out[65536];
	size_t out_len = 0, out_off = 0;
	bool in_open = true;
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN | (out_len ? POLLOUT : 0)},
		                      {.fd = in_open && !out_len ? 0 : -1, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, b, sizeof(b));
			if (n <= 0)
				break;
			if (io_write_full(1, b, (size_t)n, &e) < 0)
				return die(e);
		}
		if (out_len && (p[0].revents & POLLOUT)) {
			ssize_t n = send(fd, out + out_off, out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return 1;
			if (n > 0) {
				out_off += (size_t)n;
				out_len -= (size_t)n;
			}
			if (out_len == 0 && !in_open)
				shutdown(fd, SHUT_WR);
		}
		if (in_open && !out_len && p[1].revents) {
			ssize_t n = read(0, out, sizeof(out));
			if (n <= 0) {
				in_open = false;
				shutdown(fd, SHUT_WR);
			} else {
				out_len = (size_t)n;
				out_off = 0;
			}
		}
	}
	close(fd);
	return 0;
}

/* ---------------------------------------------------------------- egress host */

struct ehost {
	struct ev_handler h;
	struct evloop *loop;
	int lfd;
	struct relay_list relays;
};

struct pending {
	struct ev_handler h;
	struct ehost *eh;
	int fd;
	struct buf in;
	bool dead;
};

static void pending_free(void *p)
{
	struct pending *pd = p;
	buf_free(&pd->in);
	free(pd);
}

static void pending_done(struct pending *pd, bool close_fd)
{
	pd->dead = true;
	evloop_del(pd->eh->loop, pd->fd);
	if (close_fd)
		close(pd->fd);
	evloop_defer_free(pd->eh->loop, pd, pending_free);
}

static void reply(int fd, struct buf *b)
{
	io_write_full(fd, b->data, b->len, NULL);
}

static void on_pending(struct ev_handler *h, uint32_t events)
{
	struct pending *pd = (struct pending *)h;
	(void)events;
	if (pd->dead)
		return;
	char b[4096];
	ssize_t n = recv(pd->fd, b, sizeof(b), 0);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		pending_done(pd, true);
		return;
	}
	buf_append(&pd->in, b, (size_t)n);
	struct err *e = NULL;
	_cleanup_free_ char *host = NULL;
	uint16_t port;
	ssize_t fl = egress_frame_parse_request(pd->in.data, pd->in.len, &host, &port, &e);
	if (fl == 0)
		return;
	_cleanup_buf_ struct buf out = {0};
	if (fl < 0) {
		fprintf(stderr, "odyn-peer: bad frame: %s\n", e->msg);
		err_free(&e);
		pending_done(pd, true);
		return;
	}
	fprintf(stderr, "odyn-peer: tunnel to %s:%u\n", host, port);
	char target[64];
	snprintf(target, sizeof(target), "tcp:127.0.0.1:%u", port); /* the test's resolver */
	struct transport_addr a;
	transport_parse(target, &a, NULL);
	int up = transport_connect(&a, true, &e);
	if (up < 0) {
		egress_frame_reply_err(&out, e->code, e->msg);
		err_free(&e);
		reply(pd->fd, &out);
		pending_done(pd, true);
		return;
	}
	egress_frame_reply_ok(&out);
	reply(pd->fd, &out);
	int fd = pd->fd;
	size_t rest = pd->in.len - (size_t)fl;
	pending_done(pd, false);
	if (relay_start(pd->eh->loop, fd, up, pd->in.data + fl, rest, NULL, 0, &pd->eh->relays, &e) < 0)
		die(e);
}

static void on_ehost(struct ev_handler *h, uint32_t events)
{
	struct ehost *eh = (struct ehost *)h;
	(void)events;
	int fd;
	while ((fd = transport_accept(eh->lfd, NULL, NULL)) >= 0) {
		struct pending *pd = xcalloc(1, sizeof(*pd));
		pd->h.fn = on_pending;
		pd->eh = eh;
		pd->fd = fd;
		evloop_add(eh->loop, fd, EPOLLIN, &pd->h, NULL);
	}
}

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int serve(const char *addr, void (*fn)(struct ev_handler *, uint32_t))
{
	struct err *e = NULL;
	struct transport_addr a;
	struct ehost eh = {.h.fn = fn};
	if (transport_parse(addr, &a, &e) < 0 || (eh.lfd = transport_listen(&a, 128, &e)) < 0 ||
	    evloop_new(&eh.loop, &e) < 0 || evloop_add(eh.loop, eh.lfd, EPOLLIN, &eh.h, &e) < 0)
		return die(e);
	uint32_t port = 0;
	if (a.family != AF_UNIX)
		transport_local_port(eh.lfd, &port, NULL);
	printf("%u\n", port);
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	while (!stop)
		if (evloop_run_once(eh.loop, 200, &e) < 0)
			return die(e);
	relay_list_close_all(&eh.relays);
	evloop_free(eh.loop);
	close(eh.lfd);
	return 0;
}

/* echo: every connection gets its bytes back (a relay of a socketpair end
 * to itself would not half-close; so echo by hand). */
struct echo {
	struct ev_handler h;
	struct ehost *eh;
	int fd;
};

static void echo_free(void *p)
{
	free(p);
}

static void on_echo(struct ev_handler *h, uint32_t events)
{
	struct echo *ec = (struct echo *)h;
	(void)events;
	if (ec->fd < 0)
		return;
	char b[65536];
	ssize_t n = recv(ec->fd, b, sizeof(b), 0);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n > 0) {
		/* Blocking write-back keeps the helper simple; the test client reads. */
		int fl = 0;
		(void)fl;
		size_t off = 0;
		while (off < (size_t)n) {
			ssize_t w = send(ec->fd, b + off, (size_t)n - off, MSG_NOSIGNAL);
			if (w < 0 && errno == EAGAIN) {
				struct timespec ts = {0, 1000000};
				nanosleep(&ts, NULL);
				continue;
			}
			if (w < 0)
				break;
			off += (size_t)w;
		}
		return;
	}
	evloop_del(ec->eh->loop, ec->fd);
	close(ec->fd);
	ec->fd = -1;
	evloop_defer_free(ec->eh->loop, ec, echo_free);
}

static void on_echo_accept(struct ev_handler *h, uint32_t events)
{
	struct ehost *eh = (struct ehost *)h;
	(void)events;
	int fd;
	while ((fd = transport_accept(eh->lfd, NULL, NULL)) >= 0) {
		struct echo *ec = xcalloc(1, sizeof(*ec));
		ec->h.fn = on_echo;
		ec->eh = eh;
		ec->fd = fd;
		evloop_add(eh->loop, fd, EPOLLIN, &ec->h, NULL);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "read") == 0)
		return cmd_read(argv[2]);
	if (argc == 3 && strcmp(argv[1], "send") == 0)
		return cmd_send(argv[2]);
	if (argc == 3 && strcmp(argv[1], "egress-host") == 0)
		return serve(argv[2], on_ehost);
	if (argc == 3 && strcmp(argv[1], "echo") == 0)
		return serve(argv[2], on_echo_accept);
	fputs("usage: odyn-peer read|send|egress-host|echo ADDR\n", stderr);
	return 2;
}
