/* egress: the app's HTTP proxy on 127.0.0.1:proxy_port. CONNECT requests
 * become raw tunnels; absolute-form requests are rewritten to origin-form
 * and forwarded, keeping the connection alive across requests. Every
 * upstream is a tunnel to the host (frame.c) after the policy allowed it. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "odyn/internal.h"

struct egress_proxy {
	struct listener l; /* first: on_accept gets &l.h */
	struct evloop *loop;
	struct transport_addr host;
	const struct egress_policy *policy;
	struct odyn_counters *counters;
	struct pconn *conns;
	struct relay_list tunnels;
};

enum pc_state {
	PC_HEAD,       /* reading a request head from the client */
	PC_CONNECTING, /* connecting to the host's egress endpoint */
	PC_REPLY,      /* frame sent, waiting for "Ok" */
	PC_FORWARD,    /* an HTTP upstream is open: requests and responses flow */
	PC_CLOSING,    /* flushing a final response to the client */
};

struct pc_end {
	struct ev_handler h;
	struct pconn *pc;
	int fd;
	uint32_t events;
};

/* How long a tunnel's connect to the host's egress endpoint may take (vsock's own connect
 * timeout is shorter; the bound holds whatever transport --egress-host names). */
#define EGRESS_HOST_CONNECT_MS 10000

struct pconn {
	struct egress_proxy *px;
	struct pc_end client, up;
	struct ev_deadline up_deadline; /* while PC_CONNECTING */
	enum pc_state state;
	bool dead;
	bool is_connect;
	struct buf in;    /* client bytes not yet consumed */
	struct buf to_up; /* bytes for the upstream */
	size_t to_up_off;
	struct buf to_cl; /* bytes for the client */
	size_t to_cl_off;
	struct buf reply; /* the host's reply frame, while in PC_REPLY */
	char *up_host;    /* origin of the open upstream */
	uint16_t up_port;
	int64_t body_left; /* bytes of the current request body still to forward */
	bool raw;          /* chunked request body: pass everything through from here */
	bool client_eof, up_eof, close_after;
	struct http_request pending_req; /* a request waiting for its upstream */
	char *pending_path;
	struct pconn *next, **pprev;
};

static void on_client(struct ev_handler *h, uint32_t events);
static void on_up(struct ev_handler *h, uint32_t events);
static void pc_process(struct pconn *pc);

static void pc_free(void *p)
{
	struct pconn *pc = p;
	buf_free(&pc->in);
	buf_free(&pc->to_up);
	buf_free(&pc->to_cl);
	buf_free(&pc->reply);
	http_request_free(&pc->pending_req);
	free(pc->pending_path);
	free(pc->up_host);
	free(pc);
}

static void up_close(struct pconn *pc)
{
	ev_deadline_stop(&pc->up_deadline);
	if (pc->up.fd >= 0) {
		evloop_del(pc->px->loop, pc->up.fd);
		close(pc->up.fd);
		pc->up.fd = -1;
		pc->up.events = 0;
	}
	free(pc->up_host);
	pc->up_host = NULL;
	pc->to_up.len = pc->to_up_off = 0;
	pc->up_eof = false;
}

static void pc_close(struct pconn *pc)
{
	if (pc->dead)
		return;
	pc->dead = true;
	up_close(pc);
	evloop_del(pc->px->loop, pc->client.fd);
	close(pc->client.fd);
	*pc->pprev = pc->next;
	if (pc->next)
		pc->next->pprev = pc->pprev;
	evloop_defer_free(pc->px->loop, pc, pc_free);
}

/* Queues a complete response; when `close` the connection ends after it. */
static void pc_respond(struct pconn *pc, int code, const char *reason, const char *body, bool close)
{
	buf_printf(&pc->to_cl, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s", code,
	           reason, strlen(body), close ? "Connection: close\r\n" : "", body);
	if (close) {
		pc->close_after = true;
		pc->state = PC_CLOSING;
	}
}

/* Sends queued bytes; -1 when the peer is gone. */
static int flush(int fd, struct buf *b, size_t *off)
{
	while (*off < b->len) {
		ssize_t n = send(fd, b->data + *off, b->len - *off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		*off += (size_t)n;
	}
	b->len = *off = 0;
	return 0;
}

static void set_events(struct pconn *pc, struct pc_end *e, uint32_t ev)
{
	if (e->fd < 0 || e->events == ev)
		return;
	if (evloop_mod(pc->px->loop, e->fd, ev, &e->h, NULL) == 0)
		e->events = ev;
}

/* Recomputes what each side waits for, from the state and the buffers. */
static void pc_update(struct pconn *pc)
{
	uint32_t cev = 0, uev = 0;
	bool cl_pending = pc->to_cl.len > 0, up_pending = pc->to_up.len > 0;
	if (cl_pending)
		cev |= EPOLLOUT;
	if (!pc->client_eof && !up_pending && pc->state != PC_CLOSING && pc->state != PC_CONNECTING &&
	    pc->state != PC_REPLY && pc->in.len < HTTP_HEAD_MAX)
		cev |= EPOLLIN;
	if (pc->state == PC_CONNECTING)
		uev |= EPOLLOUT;
	else if (pc->state == PC_REPLY)
		uev |= EPOLLIN;
	else if (pc->state == PC_FORWARD) {
		if (up_pending)
			uev |= EPOLLOUT;
		if (!pc->up_eof && !cl_pending)
			uev |= EPOLLIN;
	}
	set_events(pc, &pc->client, cev);
	set_events(pc, &pc->up, uev);
}

static void deny(struct pconn *pc, enum egress_verdict v, const char *host, uint16_t port, const char *rule)
{
	_cleanup_free_ char *body = NULL;
	if (v == EGRESS_DENY_RULE)
		body =
		    xasprintf("blocked by egress security policy: %s:%u matches deny rule \"%s\"\n", host, port, rule);
	else
		body = xasprintf("blocked by egress security policy: %s:%u matches no allow rule\n", host, port);
	/* A warning: it also reaches the host as an [odyn] line (odyn/msgs.c). */
	log_warn("egress: %.*s", (int)strlen(body) - 1, body);
	pc_respond(pc, 401, "Unauthorized", body, true);
}

/* The host's egress endpoint took the connect no further within the bound (its backlog full, or
 * the transport silent): the client gets 502 instead of a wait of minutes. */
static void on_up_deadline(struct ev_handler *h, uint32_t events)
{
	struct pconn *pc = container_of(h, struct pconn, up_deadline);
	(void)events;
	if (pc->dead || pc->state != PC_CONNECTING)
		return;
	log_warn("egress: %s did not accept the tunnel's connection within %d ms", pc->px->host.text,
	         EGRESS_HOST_CONNECT_MS);
	up_close(pc);
	pc_respond(pc, 502, "Bad Gateway", "egress: the host's egress endpoint did not answer in time\n", true);
	pc_process(pc);
}

/* Opens a tunnel to host:port through the host's egress endpoint. */
static void tunnel_open(struct pconn *pc, const char *host, uint16_t port)
{
	_cleanup_err_ struct err *e = NULL;
	bool in_progress;
	up_close(pc);
	int fd = transport_connect_start(&pc->px->host, &in_progress, &e);
	if (fd < 0) {
		log_warn("egress: %s", e->msg);
		pc_respond(pc, 502, "Bad Gateway", "egress: the host's egress endpoint is unreachable\n", true);
		return;
	}
	pc->up.fd = fd;
	pc->up.events = 0;
	if (evloop_add(pc->px->loop, fd, 0, &pc->up.h, &e) < 0) {
		close(fd);
		pc->up.fd = -1;
		pc_respond(pc, 502, "Bad Gateway", "egress: internal error\n", true);
		return;
	}
	pc->up_host = xstrdup(host);
	pc->up_port = port;
	pc->to_up.len = pc->to_up_off = 0;
	egress_frame_request(&pc->to_up, host, port);
	pc->reply.len = 0;
	pc->state = PC_CONNECTING;
	if (ev_deadline_arm(&pc->up_deadline, pc->px->loop, EGRESS_HOST_CONNECT_MS, on_up_deadline, &e) < 0) {
		log_warn("egress: %s", e->msg);
		up_close(pc);
		pc_respond(pc, 502, "Bad Gateway", "egress: internal error\n", true);
	}
}

/* Writes the rewritten head of an absolute-form request for the upstream. */
static void forward_head(struct pconn *pc, struct http_request *req, const char *path)
{
	buf_printf(&pc->to_up, "%s %s HTTP/1.%d\r\n", req->method, path, req->minor_version);
	bool has_host = false;
	for (size_t i = 0; i < req->n_headers; i++) {
		struct http_header *h = &req->headers[i];
		if ((h->name_len == 16 && strncasecmp(h->name, "proxy-connection", 16) == 0) ||
		    (h->name_len == 19 && strncasecmp(h->name, "proxy-authorization", 19) == 0))
			continue;
		if (h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0)
			has_host = true;
		buf_append(&pc->to_up, h->name, h->name_len);
		buf_puts(&pc->to_up, ": ");
		buf_append(&pc->to_up, h->value, h->value_len);
		buf_puts(&pc->to_up, "\r\n");
	}
	if (!has_host) {
		if (strchr(pc->up_host, ':'))
			buf_printf(&pc->to_up, "Host: [%s]:%u\r\n", pc->up_host, pc->up_port);
		else
			buf_printf(&pc->to_up, "Host: %s:%u\r\n", pc->up_host, pc->up_port);
	}
	buf_puts(&pc->to_up, "\r\n");
	if (req->chunked)
		pc->raw = true;
	else
		pc->body_left = req->content_length > 0 ? req->content_length : 0;
	if (req->connection_close)
		pc->close_after = true;
}

static void consume_in(struct pconn *pc, size_t n)
{
	memmove(pc->in.data, pc->in.data + n, pc->in.len - n);
	pc->in.len -= n;
}

/* Handles one parsed request head (already consumed from pc->in). */
static void handle_request(struct pconn *pc, struct http_request *req)
{
	_cleanup_err_ struct err *e = NULL;
	_cleanup_free_ char *host = NULL, *path = NULL, *norm = NULL;
	uint16_t port;
	bool is_connect = strcmp(req->method, "CONNECT") == 0;
	if (is_connect) {
		if (http_authority_split(req->target, &host, &port, &e) < 0 || port == 0) {
			pc_respond(pc, 400, "Bad Request", "CONNECT needs host:port\n", true);
			return;
		}
	} else if (http_target_split(req->target, &host, &port, &path, &e) < 0) {
		_cleanup_free_ char *body = xasprintf("%s\n", e->msg);
		pc_respond(pc, 400, "Bad Request", body, true);
		return;
	}
	const char *rule;
	enum egress_verdict v = egress_policy_check(pc->px->policy, host, port, &rule);
	if (v == EGRESS_BAD_HOST || (norm = egress_host_normalize(host)) == NULL) {
		pc_respond(pc, 400, "Bad Request", "not a valid host name or address\n", true);
		return;
	}
	odyn_counters_add(pc->px->counters, WIRE_COUNTER_EGRESS, rule ? rule : "(default)",
	                  v == EGRESS_ALLOW ? "allowed" : "denied");
	if (v != EGRESS_ALLOW) {
		deny(pc, v, norm, port, rule);
		return;
	}
	if (is_connect) {
		pc->is_connect = true;
		tunnel_open(pc, norm, port);
		return;
	}
	if (pc->up.fd >= 0 && pc->state == PC_FORWARD && strcmp(pc->up_host, norm) == 0 && pc->up_port == port) {
		forward_head(pc, req, path);
		return;
	}
	/* A new origin. Clients that wait for each response before the next
	 * request (all but pipelining ones) have nothing in flight here. */
	tunnel_open(pc, norm, port);
	if (pc->state == PC_CONNECTING) {
		pc->pending_req = *req;
		req->head = NULL; /* ownership moves to pending_req */
		pc->pending_path = steal_pointer(&path);
	}
}

static void pc_process(struct pconn *pc)
{
	while (!pc->dead && pc->in.len > 0 && pc->to_up.len == 0) {
		if (pc->state != PC_HEAD && pc->state != PC_FORWARD)
			break;
		if (pc->state == PC_FORWARD && (pc->raw || pc->body_left > 0)) {
			size_t n = pc->in.len;
			if (!pc->raw && (int64_t)n > pc->body_left)
				n = (size_t)pc->body_left;
			buf_append(&pc->to_up, pc->in.data, n);
			consume_in(pc, n);
			if (!pc->raw)
				pc->body_left -= (int64_t)n;
			continue;
		}
		if (pc->close_after)
			break; /* the client said this was its last request */
		_cleanup_err_ struct err *e = NULL;
		struct http_request req;
		ssize_t n = http_request_parse(pc->in.data, pc->in.len, &req, &e);
		if (n == 0)
			break;
		if (n < 0) {
			_cleanup_free_ char *body = xasprintf("bad request: %s\n", e->msg);
			pc_respond(pc, e->code == E2BIG ? 431 : 400,
			           e->code == E2BIG ? "Request Header Fields Too Large" : "Bad Request", body, true);
			break;
		}
		consume_in(pc, (size_t)n);
		handle_request(pc, &req);
		http_request_free(&req);
	}
	if (pc->dead)
		return;
	if (pc->state == PC_FORWARD && pc->up.fd >= 0) {
		if (flush(pc->up.fd, &pc->to_up, &pc->to_up_off) < 0) {
			pc_close(pc);
			return;
		}
		if (pc->client_eof && pc->to_up.len == 0 && pc->in.len == 0)
			shutdown(pc->up.fd, SHUT_WR);
	}
	if (flush(pc->client.fd, &pc->to_cl, &pc->to_cl_off) < 0) {
		pc_close(pc);
		return;
	}
	bool idle_end = pc->state == PC_HEAD && pc->client_eof;
	bool up_end = pc->state == PC_FORWARD && pc->up_eof;
	if (pc->to_cl.len == 0 && (pc->state == PC_CLOSING || idle_end || up_end)) {
		pc_close(pc);
		return;
	}
	pc_update(pc);
}

/* The host said "Ok": a CONNECT becomes a relay, an HTTP request goes out. */
static void tunnel_ready(struct pconn *pc, const char *extra, size_t n_extra)
{
	if (pc->is_connect) {
		_cleanup_buf_ struct buf to_client = {0};
		buf_puts(&to_client, "HTTP/1.1 200 Connection established\r\n\r\n");
		buf_append(&to_client, extra, n_extra);
		int cfd = pc->client.fd, ufd = pc->up.fd;
		evloop_del(pc->px->loop, cfd);
		evloop_del(pc->px->loop, ufd);
		pc->client.fd = pc->up.fd = -1;
		_cleanup_err_ struct err *e = NULL;
		if (relay_start(pc->px->loop, cfd, ufd, pc->in.data, pc->in.len, to_client.data, to_client.len,
		                &pc->px->tunnels, &e) < 0)
			log_warn("egress: %s", e->msg);
		/* The descriptors belong to the relay now. */
		pc->dead = true;
		*pc->pprev = pc->next;
		if (pc->next)
			pc->next->pprev = pc->pprev;
		evloop_defer_free(pc->px->loop, pc, pc_free);
		return;
	}
	pc->state = PC_FORWARD;
	buf_append(&pc->to_cl, extra, n_extra);
	forward_head(pc, &pc->pending_req, pc->pending_path);
	http_request_free(&pc->pending_req);
	free(pc->pending_path);
	pc->pending_path = NULL;
	pc_process(pc);
}

static void on_up(struct ev_handler *h, uint32_t events)
{
	struct pconn *pc = ((struct pc_end *)h)->pc;
	if (pc->dead || pc->up.fd < 0)
		return;
	_cleanup_err_ struct err *e = NULL;
	if (pc->state == PC_CONNECTING) {
		ev_deadline_stop(&pc->up_deadline);
		if (transport_connect_finish(pc->up.fd, &pc->px->host, &e) < 0 ||
		    flush(pc->up.fd, &pc->to_up, &pc->to_up_off) < 0 || pc->to_up.len > 0) {
			log_warn("egress: %s", e ? e->msg : "cannot send the tunnel request");
			up_close(pc);
			pc_respond(pc, 502, "Bad Gateway", "egress: the host's egress endpoint is unreachable\n", true);
			pc_process(pc);
			return;
		}
		pc->state = PC_REPLY;
		pc_update(pc);
		return;
	}
	if (pc->state == PC_REPLY) {
		char b[4096];
		ssize_t n = recv(pc->up.fd, b, sizeof(b), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			up_close(pc);
			pc_respond(pc, 502, "Bad Gateway", "egress: the host closed the tunnel before replying\n",
			           true);
			pc_process(pc);
			return;
		}
		buf_append(&pc->reply, b, (size_t)n);
		struct egress_reply r;
		ssize_t fl = egress_frame_parse_reply(pc->reply.data, pc->reply.len, &r, &e);
		if (fl == 0)
			return;
		if (fl < 0) {
			log_warn("egress: host reply: %s", e->msg);
			up_close(pc);
			pc_respond(pc, 502, "Bad Gateway", "egress: malformed reply from the host\n", true);
			pc_process(pc);
			return;
		}
		if (!r.ok) {
			_cleanup_free_ char *body = xasprintf("egress: %s:%u: %s (os error %d)\n", pc->up_host,
			                                      pc->up_port, r.message, r.os_code);
			free(r.message);
			up_close(pc);
			pc_respond(pc, 503, "Service Unavailable", body, true);
			pc_process(pc);
			return;
		}
		_cleanup_buf_ struct buf extra = {0};
		buf_append(&extra, pc->reply.data + fl, pc->reply.len - (size_t)fl);
		pc->reply.len = 0;
		tunnel_ready(pc, extra.data, extra.len);
		return;
	}
	/* PC_FORWARD: responses flow back untouched. */
	if (events & EPOLLOUT) {
		pc_process(pc);
		if (pc->dead)
			return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && pc->to_cl.len == 0 && !pc->up_eof) {
		char b[65536];
		ssize_t n = recv(pc->up.fd, b, sizeof(b), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			pc->up_eof = true;
		else
			buf_append(&pc->to_cl, b, (size_t)n);
		pc_process(pc);
	}
}

static void on_client(struct ev_handler *h, uint32_t events)
{
	struct pconn *pc = ((struct pc_end *)h)->pc;
	if (pc->dead)
		return;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !pc->client_eof && pc->to_up.len == 0) {
		char b[65536];
		size_t room = HTTP_HEAD_MAX + sizeof(b) - pc->in.len;
		ssize_t n = recv(pc->client.fd, b, room < sizeof(b) ? room : sizeof(b), 0);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			pc_close(pc);
			return;
		}
		if (n == 0) {
			pc->client_eof = true;
			if (pc->state != PC_FORWARD && pc->state != PC_HEAD) {
				pc_close(pc);
				return;
			}
		} else if (n > 0) {
			buf_append(&pc->in, b, (size_t)n);
		}
	} else if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLOUT)) {
		pc_close(pc);
		return;
	}
	pc_process(pc);
}

static void on_accept(struct ev_handler *h, uint32_t events)
{
	struct egress_proxy *px = (struct egress_proxy *)h;
	(void)events;
	for (;;) {
		_cleanup_err_ struct err *e = NULL;
		int fd = listener_accept(&px->l, &e);
		if (fd < 0) {
			if (e)
				log_warn("egress: %s", e->msg);
			return;
		}
		struct pconn *pc = xcalloc(1, sizeof(*pc));
		pc->px = px;
		pc->client = (struct pc_end){.h.fn = on_client, .pc = pc, .fd = fd};
		pc->up = (struct pc_end){.h.fn = on_up, .pc = pc, .fd = -1};
		pc->up_deadline.fd = -1;
		if (evloop_add(px->loop, fd, EPOLLIN, &pc->client.h, &e) < 0) {
			log_warn("egress: %s", e->msg);
			close(fd);
			free(pc);
			continue;
		}
		pc->client.events = EPOLLIN;
		pc->next = px->conns;
		if (px->conns)
			px->conns->pprev = &pc->next;
		px->conns = pc;
		pc->pprev = &px->conns;
	}
}

int egress_proxy_start(struct evloop *loop, const struct transport_addr *listen, const struct transport_addr *host,
                       const struct egress_policy *policy, struct egress_proxy **out, struct err **err)
{
	struct egress_proxy *px = xcalloc(1, sizeof(*px));
	if (listener_open(&px->l, loop, listen, 128, on_accept, err) < 0) {
		free(px);
		return err_wrap(err, "egress proxy");
	}
	px->loop = loop;
	px->host = *host;
	px->policy = policy;
	log_info("egress proxy on %s, tunnels via %s", listen->text, host->text);
	*out = px;
	return 0;
}

void egress_proxy_free(struct egress_proxy *px)
{
	if (px == NULL)
		return;
	while (px->conns)
		pc_close(px->conns);
	relay_list_close_all(&px->tunnels);
	listener_close(&px->l);
	free(px);
}

void egress_proxy_set_counters(struct egress_proxy *p, struct odyn_counters *k)
{
	if (p)
		p->counters = k;
}
