/* stream: a broadcast byte stream served on a listening socket: the last
 * `cap` bytes are kept in a ring, replayed to each new reader, then live.
 * Used for the app log (port 17001) and the status lines (port 17000). */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "odyn/internal.h"

struct stream_client {
	struct ev_handler h;
	struct stream *s;
	int fd;
	uint64_t off; /* absolute stream offset of the next byte to send */
	bool want_out;
	bool dead;
	uint64_t progress_ms; /* when it last took bytes (or connected) */
	char cmd[16];         /* a command line being received (stream_set_command_cb) */
	size_t cmd_len;
	struct stream_client *next;
};

struct stream {
	struct listener l; /* first: on_listen gets &l.h */
	struct evloop *loop;
	char *ring;
	size_t cap;
	uint64_t head; /* bytes ever written */
	struct stream_client *clients;
	size_t n_clients;
	uint64_t n_accepted;
	void (*on_drain)(void *arg);
	void *drain_arg;
	void (*on_command)(void *arg, const char *line);
	void *command_arg;
};

static void client_free(void *p)
{
	free(p);
}

static void client_drop(struct stream_client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	evloop_del(c->s->loop, c->fd);
	close(c->fd);
	struct stream_client **pp = &c->s->clients;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	c->s->n_clients--;
	evloop_defer_free(c->s->loop, c, client_free);
}

/* Sends what the client has not seen; drops it on a write error. */
static void client_flush(struct stream_client *c)
{
	struct stream *s = c->s;
	if (s->head - c->off > s->cap)
		c->off = s->head - s->cap; /* too slow: the oldest bytes are gone */
	while (c->off < s->head) {
		size_t pos = (size_t)(c->off % s->cap);
		size_t n = (size_t)(s->head - c->off);
		if (n > s->cap - pos)
			n = s->cap - pos;
		ssize_t w = send(c->fd, s->ring + pos, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			client_drop(c);
			return;
		}
		c->off += (uint64_t)w;
		c->progress_ms = (uint64_t)time_monotonic_ms();
	}
	bool want = c->off < s->head;
	if (want != c->want_out) {
		uint32_t ev = EPOLLIN | (want ? EPOLLOUT : 0);
		if (evloop_mod(s->loop, c->fd, ev, &c->h, NULL) < 0) {
			client_drop(c);
			return;
		}
		c->want_out = want;
	}
}

static void on_client(struct ev_handler *h, uint32_t events)
{
	struct stream_client *c = (struct stream_client *)h;
	if (c->dead)
		return;
	if (events & EPOLLIN) {
		/* Readers send nothing, or short command lines where a callback takes them; EOF or an
		 * error ends them. */
		char b[256];
		ssize_t n = recv(c->fd, b, sizeof(b), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			client_drop(c);
			return;
		}
		for (ssize_t i = 0; i < n && c->s->on_command; i++) {
			if (b[i] != '\n') {
				if (c->cmd_len < sizeof(c->cmd) - 1)
					c->cmd[c->cmd_len++] = b[i];
				continue;
			}
			c->cmd[c->cmd_len] = '\0';
			c->cmd_len = 0;
			c->s->on_command(c->s->command_arg, c->cmd);
			if (c->dead)
				return;
		}
	}
	if (events & (EPOLLERR | EPOLLHUP)) {
		client_drop(c);
		return;
	}
	if (events & EPOLLOUT) {
		client_flush(c);
		if (c->s->on_drain)
			c->s->on_drain(c->s->drain_arg);
	}
}

static void on_listen(struct ev_handler *h, uint32_t events)
{
	struct stream *s = (struct stream *)h;
	(void)events;
	for (;;) {
		_cleanup_err_ struct err *e = NULL;
		int fd = listener_accept(&s->l, &e);
		if (fd < 0) {
			if (e)
				log_warn("stream: %s", e->msg);
			return;
		}
		struct stream_client *c = xcalloc(1, sizeof(*c));
		c->h.fn = on_client;
		c->s = s;
		c->fd = fd;
		c->off = s->head > s->cap ? s->head - s->cap : 0;
		c->progress_ms = (uint64_t)time_monotonic_ms();
		if (evloop_add(s->loop, fd, EPOLLIN, &c->h, &e) < 0) {
			log_warn("stream: %s", e->msg);
			close(fd);
			free(c);
			continue;
		}
		c->next = s->clients;
		s->clients = c;
		s->n_clients++;
		s->n_accepted++;
		client_flush(c);
	}
}

int stream_new(struct evloop *loop, const struct transport_addr *addr, size_t cap, struct stream **out,
               struct err **err)
{
	struct stream *s = xcalloc(1, sizeof(*s));
	if (listener_open(&s->l, loop, addr, 64, on_listen, err) < 0) {
		free(s);
		return -1;
	}
	s->loop = loop;
	s->cap = cap;
	s->ring = xmalloc(cap);
	*out = s;
	return 0;
}

void stream_write(struct stream *s, const void *data, size_t len)
{
	const char *p = data;
	if (len > s->cap) { /* only the tail can be kept */
		s->head += len - s->cap;
		p += len - s->cap;
		len = s->cap;
	}
	while (len > 0) {
		size_t pos = (size_t)(s->head % s->cap);
		size_t n = len < s->cap - pos ? len : s->cap - pos;
		memcpy(s->ring + pos, p, n);
		s->head += n;
		p += n;
		len -= n;
	}
	for (struct stream_client *c = s->clients, *next; c != NULL; c = next) {
		next = c->next;
		client_flush(c);
	}
}

bool stream_at_line_start(const struct stream *s)
{
	return s->head == 0 || s->ring[(s->head - 1) % s->cap] == '\n';
}

bool stream_flushed(const struct stream *s)
{
	for (const struct stream_client *c = s->clients; c != NULL; c = c->next)
		if (c->off < s->head)
			return false;
	return true;
}

uint64_t stream_max_lag(const struct stream *s)
{
	uint64_t lag = 0;
	for (const struct stream_client *c = s->clients; c != NULL; c = c->next)
		if (s->head - c->off > lag)
			lag = s->head - c->off;
	return lag;
}

size_t stream_capacity(const struct stream *s)
{
	return s->cap;
}

void stream_set_drain_cb(struct stream *s, void (*fn)(void *arg), void *arg)
{
	s->on_drain = fn;
	s->drain_arg = arg;
}

void stream_set_command_cb(struct stream *s, void (*fn)(void *arg, const char *line), void *arg)
{
	s->on_command = fn;
	s->command_arg = arg;
}

void stream_drop_stalled(struct stream *s, uint64_t lag, unsigned stall_ms)
{
	uint64_t now = (uint64_t)time_monotonic_ms();
	for (struct stream_client *c = s->clients, *next; c != NULL; c = next) {
		next = c->next;
		if (s->head - c->off > lag && now - c->progress_ms >= stall_ms) {
			log_warn("log reader stalled for %u ms: disconnected", stall_ms);
			client_drop(c);
		}
	}
}

uint64_t stream_readers_served(const struct stream *s)
{
	return s->n_accepted;
}

void stream_free(struct stream *s)
{
	if (s == NULL)
		return;
	while (s->clients)
		client_drop(s->clients);
	listener_close(&s->l);
	free(s->ring);
	free(s);
}
