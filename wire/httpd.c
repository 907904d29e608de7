/* httpd: a small HTTP/1.1 server for local endpoints (odyn's attestation API and KMS proxy, the
 * host's metrics): one request per connection, heads parsed by http.c, bodies by Content-Length
 * up to a limit, connections capped in number and lifetime; the handler answers now or later. */
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "wire/http.h"

struct httpd {
	struct listener l; /* first: on_accept gets &l.h */
	struct evloop *loop;
	struct httpd_limits lim;
	size_t n_conns;
	httpd_handler_fn handler;
	void *arg;
	char *name;
	struct httpd_conn *conns;
};

struct httpd_conn {
	struct ev_handler h;
	struct httpd *srv;
	struct ev_deadline deadline; /* lim.conn_timeout_ms */
	int fd;
	bool dead, handled, responded, draining;
	size_t drained;
	struct buf in;
	size_t head_len;
	struct http_request req;
	bool have_req;
	struct buf out;
	size_t out_off;
	void *user;                      /* the handler's pending work */
	void (*user_cancel)(void *user); /* called when the connection ends first */
	struct httpd_conn *next, **pprev;
};

static void conn_free(void *p)
{
	struct httpd_conn *c = p;
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->have_req)
		http_request_free(&c->req);
	free(c);
}

static void conn_close(struct httpd_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->user_cancel)
		c->user_cancel(c->user);
	ev_deadline_stop(&c->deadline);
	c->srv->n_conns--;
	evloop_del(c->srv->loop, c->fd);
	close(c->fd);
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	evloop_defer_free(c->srv->loop, c, conn_free);
}

static void conn_flush(struct httpd_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			evloop_mod(c->srv->loop, c->fd, EPOLLOUT, &c->h, NULL);
			return;
		}
		if (n <= 0)
			break;
		c->out_off += (size_t)n;
	}
	if (c->out_off < c->out.len) {
		conn_close(c); /* the peer is gone */
		return;
	}
	/* Sent: one request per connection. Closing with unread input would
	 * reset the connection and could destroy the response in flight, so
	 * half-close and discard what the client still sends until its EOF. */
	shutdown(c->fd, SHUT_WR);
	c->draining = true;
	evloop_mod(c->srv->loop, c->fd, EPOLLIN, &c->h, NULL);
}

/* The one answer a connection gets; `allow` (NULL: none) names the methods of a 405. */
static void respond(struct httpd_conn *c, int code, const char *reason, const char *allow, const char *content_type,
                    const void *body, size_t len)
{
	if (c->dead || c->responded)
		return;
	c->responded = true;
	c->user_cancel = NULL;
	buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", code, reason);
	if (allow)
		buf_printf(&c->out, "Allow: %s\r\n", allow);
	buf_printf(&c->out, "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", content_type, len);
	buf_append(&c->out, body, len);
	conn_flush(c);
}

void httpd_respond(struct httpd_conn *c, int code, const char *reason, const char *content_type, const void *body,
                   size_t len)
{
	respond(c, code, reason, NULL, content_type, body, len);
}

void httpd_respond_not_allowed(struct httpd_conn *c, const char *allow)
{
	static const char body[] = "method not allowed\n";
	respond(c, 405, "Method Not Allowed", allow, "text/plain", body, sizeof(body) - 1);
}

void httpd_respond_text(struct httpd_conn *c, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	_cleanup_free_ char *body = xasprintf("%s\n", msg);
	httpd_respond(c, code, reason, "text/plain", body, strlen(body));
}

void httpd_set_pending(struct httpd_conn *c, void *user, void (*cancel)(void *user))
{
	c->user = user;
	c->user_cancel = cancel;
}

/* The whole request is in: hand it to the handler once. */
static void conn_dispatch(struct httpd_conn *c)
{
	c->handled = true;
	/* No more reading: the response ends the connection. */
	evloop_mod(c->srv->loop, c->fd, 0, &c->h, NULL);
	const uint8_t *body = (const uint8_t *)c->in.data + c->head_len;
	size_t body_len = c->req.content_length > 0 ? (size_t)c->req.content_length : 0;
	c->srv->handler(c->srv->arg, c, &c->req, body, body_len);
}

static void conn_process(struct httpd_conn *c)
{
	if (!c->have_req) {
		_cleanup_err_ struct err *e = NULL;
		ssize_t n = http_request_parse(c->in.data, c->in.len, &c->req, &e);
		if (n == 0)
			return;
		if (n < 0) {
			c->handled = true;
			if (e->code == E2BIG)
				httpd_respond_text(c, 431, "Request Header Fields Too Large", "bad request: %s",
				                   e->msg);
			else
				httpd_respond_text(c, 400, "Bad Request", "bad request: %s", e->msg);
			return;
		}
		c->have_req = true;
		c->head_len = (size_t)n;
		if (c->req.chunked) {
			c->handled = true;
			httpd_respond_text(c, 411, "Length Required", "send the body with a Content-Length");
			return;
		}
		if (c->req.content_length > (int64_t)c->srv->lim.body_max) {
			c->handled = true;
			httpd_respond_text(c, 413, "Content Too Large", "the body is over %zu bytes",
			                   c->srv->lim.body_max);
			return;
		}
	}
	size_t want = c->head_len + (c->req.content_length > 0 ? (size_t)c->req.content_length : 0);
	if (c->in.len >= want)
		conn_dispatch(c);
}

static void on_conn(struct ev_handler *h, uint32_t events)
{
	struct httpd_conn *c = (struct httpd_conn *)h;
	if (c->dead)
		return;
	if (c->draining) {
		char junk[4096];
		ssize_t n = recv(c->fd, junk, sizeof(junk), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		c->drained += n > 0 ? (size_t)n : 0;
		if (n <= 0 || c->drained > (1u << 20))
			conn_close(c);
		return;
	}
	if (c->responded) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_flush(c);
		return;
	}
	if (c->handled) {
		/* Waiting on the handler; a peer that hangs up cancels it. */
		if (events & (EPOLLERR | EPOLLHUP))
			conn_close(c);
		return;
	}
	char b[16384];
	ssize_t n = recv(c->fd, b, sizeof(b), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	buf_append(&c->in, b, (size_t)n);
	if (c->in.len > HTTP_HEAD_MAX + c->srv->lim.body_max && !c->have_req) {
		c->handled = true;
		httpd_respond_text(c, 431, "Request Header Fields Too Large", "request head too large");
		return;
	}
	conn_process(c);
}

static void on_timeout(struct ev_handler *h, uint32_t events)
{
	struct httpd_conn *c = (struct httpd_conn *)((char *)h - offsetof(struct httpd_conn, deadline));
	(void)events;
	conn_close(c); /* slow head, slow reader: either way it has had its time */
}

static void on_accept(struct ev_handler *h, uint32_t events)
{
	struct httpd *s = (struct httpd *)h;
	(void)events;
	for (;;) {
		_cleanup_err_ struct err *e = NULL;
		int fd = listener_accept(&s->l, &e);
		if (fd < 0) {
			if (e)
				log_warn("%s: %s", s->name, e->msg);
			return;
		}
		if (s->lim.conns_max && s->n_conns >= s->lim.conns_max) {
			close(fd); /* shed: the cap bounds what a flood costs */
			continue;
		}
		struct httpd_conn *c = xcalloc(1, sizeof(*c));
		c->h.fn = on_conn;
		c->srv = s;
		c->fd = fd;
		c->deadline.fd = -1;
		if (evloop_add(s->loop, fd, EPOLLIN, &c->h, &e) < 0 ||
		    (s->lim.conn_timeout_ms > 0 &&
		     ev_deadline_arm(&c->deadline, s->loop, s->lim.conn_timeout_ms, on_timeout, &e) < 0)) {
			log_warn("%s: %s", s->name, e->msg);
			evloop_del(s->loop, fd);
			close(fd);
			free(c);
			continue;
		}
		s->n_conns++;
		c->next = s->conns;
		if (s->conns)
			s->conns->pprev = &c->next;
		s->conns = c;
		c->pprev = &s->conns;
	}
}

int httpd_start(struct evloop *loop, const struct transport_addr *addr, const char *name,
                const struct httpd_limits *limits, httpd_handler_fn handler, void *arg, struct httpd **out,
                struct err **err)
{
	struct httpd *s = xcalloc(1, sizeof(*s));
	if (listener_open(&s->l, loop, addr, 64, on_accept, err) < 0) {
		free(s);
		return err_wrap(err, "%s", name);
	}
	s->loop = loop;
	s->lim = *limits;
	s->handler = handler;
	s->arg = arg;
	s->name = xstrdup(name);
	log_info("%s on %s", name, addr->text);
	*out = s;
	return 0;
}

uint16_t httpd_port(const struct httpd *s)
{
	uint32_t port = 0;
	transport_local_port(s->l.fd, &port, NULL);
	return (uint16_t)port;
}

void httpd_free(struct httpd *s)
{
	if (s == NULL)
		return;
	while (s->conns)
		conn_close(s->conns);
	listener_close(&s->l);
	free(s->name);
	free(s);
}
