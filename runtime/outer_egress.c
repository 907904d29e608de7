/* outer_egress: the host's egress endpoint (the enclave connects to the parent on vsock 17002): read
 * the request frame, enforce the manifest's policy again (a compromised enclave can skip odyn), also
 * against the addresses the name resolves to, connect out, answer "Ok" or an Err frame, then relay. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "runtime/outer_internal.h"
#include "runtime/resolve.h"

struct egress_req;

struct outer_egress {
	struct ev_handler h;
	struct outer_ctx *o;
	int lfd;
	struct egress_req *reqs;
	unsigned resolving; /* resolver threads running for these requests */
};

struct egress_req {
	struct ev_handler h;         /* the enclave's side: reading the frame */
	struct ev_handler up_h;      /* the outside: connecting */
	struct ev_deadline deadline; /* the connect's (OUTER_EGRESS_CONNECT_MS per address) */
	struct outer_egress *eg;
	int fd, up;
	struct buf in;
	char *host;
	uint16_t port;
	struct resolve_job *resolving; /* the name is being resolved */
	struct addrinfo *ai, *next_ai; /* addresses still to try */
	int last_errno;
	bool dead;
	struct egress_req *next, **pprev;
};

static void req_free(void *p)
{
	struct egress_req *r = p;
	buf_free(&r->in);
	free(r->host);
	if (r->ai)
		freeaddrinfo(r->ai);
	free(r);
}

/* Ends the request; the descriptors are closed unless handed to a relay (set to -1 before). */
static void req_done(struct egress_req *r)
{
	if (r->dead)
		return;
	r->dead = true;
	struct evloop *loop = r->eg->o->loop;
	resolve_cancel(r->resolving);
	r->resolving = NULL;
	if (r->fd >= 0) {
		evloop_del(loop, r->fd);
		close(r->fd);
	}
	if (r->up >= 0) {
		evloop_del(loop, r->up);
		close(r->up);
	}
	ev_deadline_stop(&r->deadline);
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	evloop_defer_free(loop, r, req_free);
}

static void reply(struct egress_req *r, struct buf *frame)
{
	/* A few bytes into a fresh socket: a short write means the enclave is not reading at all. */
	if (send(r->fd, frame->data, frame->len, MSG_NOSIGNAL) != (ssize_t)frame->len)
		log_warn("egress: could not send the reply frame for %s:%u", r->host ? r->host : "?", r->port);
}

static void refuse(struct egress_req *r, int code, const char *msg)
{
	_cleanup_buf_ struct buf f = {0};
	egress_frame_reply_err(&f, code, msg);
	reply(r, &f);
	req_done(r);
}

static void try_next(struct egress_req *r);

/* This address failed (errno soerr): close its socket and go on with the next. */
static void attempt_failed(struct egress_req *r, int soerr)
{
	r->last_errno = soerr;
	ev_deadline_stop(&r->deadline);
	evloop_del(r->eg->o->loop, r->up);
	close(r->up);
	r->up = -1;
	try_next(r);
}

/* A target that leaves the SYN unanswered (a full listen backlog, a filtered port) would hold the
 * request and its descriptors for the kernel's two minutes of retries. */
static void on_deadline(struct ev_handler *h, uint32_t events)
{
	struct egress_req *r = outer_container_of(h, struct egress_req, deadline);
	(void)events;
	if (r->dead || r->up < 0)
		return;
	log_info("egress: %s:%u: no answer to the connect within %d ms", r->host, r->port, OUTER_EGRESS_CONNECT_MS);
	attempt_failed(r, ETIMEDOUT);
}

static void on_up(struct ev_handler *h, uint32_t events)
{
	struct egress_req *r = outer_container_of(h, struct egress_req, up_h);
	(void)events;
	if (r->dead)
		return;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (getsockopt(r->up, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr) {
		attempt_failed(r, soerr);
		return;
	}
	ev_deadline_stop(&r->deadline);
	_cleanup_buf_ struct buf f = {0};
	egress_frame_reply_ok(&f);
	reply(r, &f);
	log_info("egress: tunnel to %s:%u", r->host, r->port);
	struct outer_ctx *o = r->eg->o;
	int fd = r->fd, up = r->up;
	evloop_del(o->loop, fd);
	evloop_del(o->loop, up);
	r->fd = r->up = -1;
	/* Bytes the enclave sent after the frame go first. */
	_cleanup_err_ struct err *e = NULL;
	if (relay_start(o->loop, fd, up, r->in.data, r->in.len, NULL, 0, &o->relays, &e) < 0)
		log_warn("egress: %s", e->msg);
	req_done(r);
}

/* Starts a connection to the next resolved address, or answers with the last error. */
static void try_next(struct egress_req *r)
{
	struct outer_ctx *o = r->eg->o;
	while (r->next_ai) {
		struct addrinfo *a = r->next_ai;
		r->next_ai = a->ai_next;
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r->last_errno = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			r->last_errno = errno;
			close(fd);
			continue;
		}
		r->up = fd;
		r->up_h.fn = on_up;
		if (evloop_add(o->loop, fd, EPOLLOUT, &r->up_h, NULL) < 0) {
			r->last_errno = errno;
			close(fd);
			r->up = -1;
			continue;
		}
		_cleanup_err_ struct err *e = NULL;
		if (ev_deadline_arm(&r->deadline, o->loop, OUTER_EGRESS_CONNECT_MS, on_deadline, &e) < 0) {
			r->last_errno = e->code;
			evloop_del(o->loop, fd);
			close(fd);
			r->up = -1;
			continue;
		}
		return;
	}
	int code = r->last_errno ? r->last_errno : ECONNREFUSED;
	log_info("egress: %s:%u: %s", r->host, r->port, strerror(code));
	refuse(r, code, strerror(code));
}

/* The policy decision for a request, as odyn words it; NULL when allowed. */
static char *policy_refusal(const struct egress_policy *p, const char *host, uint16_t port)
{
	static const struct egress_policy none;
	const char *rule = NULL;
	enum egress_verdict v = egress_policy_check(p ? p : &none, host, port, &rule);
	switch (v) {
	case EGRESS_ALLOW: return NULL;
	case EGRESS_DENY_RULE:
		return xasprintf("blocked by egress security policy: %s:%u matches deny rule \"%s\"", host, port, rule);
	case EGRESS_BAD_HOST: return xasprintf("blocked by egress security policy: \"%s\" is not a valid host", host);
	case EGRESS_DENY_DEFAULT: break;
	}
	return xasprintf("blocked by egress security policy: %s:%u matches no allow rule", host, port);
}

/* The resolver's answer: refuse when any address matches a deny rule, else connect. */
static void on_resolved(void *ctx, struct addrinfo *ai, int gai, int sys_errno)
{
	struct egress_req *r = ctx;
	r->resolving = NULL;
	r->ai = ai;
	_cleanup_free_ char *norm = egress_host_normalize(r->host);
	if (gai != 0) {
		_cleanup_free_ char *m = xasprintf("resolving %s: %s", norm, gai_strerror(gai));
		log_info("egress: %s", m);
		refuse(r, gai == EAI_SYSTEM ? sys_errno : EHOSTUNREACH, m);
		return;
	}
	/* A name the policy allows may resolve to an address a deny rule names. */
	const struct egress_policy *p = r->eg->o->cfg.policy;
	for (struct addrinfo *a = r->ai; a; a = a->ai_next) {
		char text[INET6_ADDRSTRLEN];
		const void *src = a->ai_family == AF_INET
		                      ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
		                      : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
		if (!inet_ntop(a->ai_family, src, text, sizeof(text)))
			continue;
		const char *rule = NULL;
		if (strcmp(text, norm) != 0 && p && egress_policy_check(p, text, r->port, &rule) == EGRESS_DENY_RULE) {
			_cleanup_free_ char *m = xasprintf(
			    "blocked by egress security policy: %s resolves to %s, which matches deny rule \"%s\"",
			    norm, text, rule);
			log_warn("egress (host side): %s", m);
			refuse(r, EACCES, m);
			return;
		}
	}
	r->next_ai = r->ai;
	try_next(r);
}

static void handle_request(struct egress_req *r)
{
	const struct egress_policy *p = r->eg->o->cfg.policy;
	_cleanup_free_ char *why = policy_refusal(p, r->host, r->port);
	if (why) {
		log_warn("egress (host side): %s", why);
		refuse(r, EACCES, why);
		return;
	}
	_cleanup_free_ char *norm = egress_host_normalize(r->host);
	char port[8];
	snprintf(port, sizeof(port), "%u", r->port);
	/* The name "host" is the parent instance itself, as in Enclaver: its loopback. The policy has
	 * already judged the name; the resolved address is judged again below like any other. */
	const char *target = strcmp(norm, OUTER_EGRESS_PARENT_NAME) == 0 ? "127.0.0.1" : norm;
	/* On a thread: a slow resolver holds up this request only (runtime/resolve.c). */
	_cleanup_err_ struct err *e = NULL;
	if (resolve_start(r->eg->o->loop, target, port, &r->eg->resolving, on_resolved, r, &r->resolving, &e) < 0) {
		_cleanup_free_ char *m = xasprintf("resolving %s: %s", norm, e->msg);
		log_warn("egress: %s", m);
		refuse(r, e->code ? e->code : EAGAIN, m);
	}
}

static void on_req(struct ev_handler *h, uint32_t events)
{
	struct egress_req *r = (struct egress_req *)h;
	(void)events;
	if (r->dead || r->host)
		return;
	char b[4096];
	ssize_t n = recv(r->fd, b, sizeof(b), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		req_done(r);
		return;
	}
	buf_append(&r->in, b, (size_t)n);
	_cleanup_err_ struct err *e = NULL;
	ssize_t fl = egress_frame_parse_request(r->in.data, r->in.len, &r->host, &r->port, &e);
	if (fl == 0)
		return;
	if (fl < 0) {
		log_warn("egress: bad request frame from the enclave: %s", e->msg);
		_cleanup_free_ char *m = xasprintf("bad request frame: %s", e->msg);
		refuse(r, EINVAL, m);
		return;
	}
	memmove(r->in.data, r->in.data + fl, r->in.len - (size_t)fl);
	r->in.len -= (size_t)fl;
	/* Stop reading: further bytes belong to the tunnel. */
	evloop_mod(r->eg->o->loop, r->fd, 0, &r->h, NULL);
	handle_request(r);
}

static void on_accept(struct ev_handler *h, uint32_t events)
{
	struct outer_egress *eg = (struct outer_egress *)h;
	(void)events;
	for (;;) {
		_cleanup_err_ struct err *e = NULL;
		int fd = transport_accept(eg->lfd, &eg->o->reserve_fd, &e);
		if (fd < 0) {
			if (e)
				log_warn("egress endpoint: %s", e->msg);
			return;
		}
		struct egress_req *r = xcalloc(1, sizeof(*r));
		r->h.fn = on_req;
		r->eg = eg;
		r->fd = fd;
		r->up = -1;
		r->deadline.fd = -1;
		r->next = eg->reqs;
		if (eg->reqs)
			eg->reqs->pprev = &r->next;
		eg->reqs = r;
		r->pprev = &eg->reqs;
		if (evloop_add(eg->o->loop, fd, EPOLLIN, &r->h, &e) < 0) {
			log_warn("egress endpoint: %s", e->msg);
			req_done(r);
		}
	}
}

int outer_egress_open(struct outer_ctx *o, struct outer_egress **out, struct err **err)
{
	int lfd;
	if (launcher_listen_parent(o->cfg.launcher, WIRE_PORT_EGRESS, &lfd, err) < 0)
		return err_wrap(err, "egress endpoint (port %d)", WIRE_PORT_EGRESS);
	struct outer_egress *eg = xcalloc(1, sizeof(*eg));
	eg->h.fn = on_accept;
	eg->o = o;
	eg->lfd = lfd;
	/* accept4 in transport_accept needs a non-blocking listener. */
	if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0 ||
	    evloop_add(o->loop, lfd, EPOLLIN, &eg->h, err) < 0) {
		close(lfd);
		free(eg);
		return err_wrap(err, "egress endpoint");
	}
	*out = eg;
	return 0;
}

void outer_egress_free(struct outer_egress *eg)
{
	if (eg == NULL)
		return;
	while (eg->reqs)
		req_done(eg->reqs);
	evloop_del(eg->o->loop, eg->lfd);
	close(eg->lfd);
	free(eg);
}
