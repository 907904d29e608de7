/* relay: copies bytes both ways between two non-blocking sockets on the
 * event loop, with back-pressure (a side is not read while the other side
 * has unsent bytes) and half-close (EOF one way becomes shutdown(SHUT_WR)).
 * One side may speak TLS (ingress termination, common/tls.c): its reads and
 * writes then go through the TLS connection's memory buffers. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "wire/relay.h"
#include "wire/tls.h"

struct relay_end {
	struct ev_handler h;
	struct relay *r;
	int fd;
	uint32_t events;      /* what epoll currently watches */
	struct tls_conn *tls; /* NULL: plain bytes */
	bool shut_pending;    /* TLS: close_notify queued; shutdown(SHUT_WR) once it is sent */
};

/* Bytes read from end[i], not yet written to end[1 - i]. Allocated only
 * while a write is short, so idle relays cost a few hundred bytes. */
struct relay_dir {
	char *pending;
	size_t len, off;
	bool eof;  /* end[i] sent EOF */
	bool done; /* ... and it has been passed on as shutdown */
};

/* relay_start_connecting: end B is not connected yet. QUEUED (end B is -1) behind the queue's
 * one connect under way, then CONNECTING (end B watched for what its step asks: EPOLLOUT first),
 * then OPEN like any relay. End A is not read before OPEN, and the deadline, armed at the start,
 * closes both ends when it passes first. */
enum relay_phase { RELAY_OPEN, RELAY_QUEUED, RELAY_CONNECTING };

struct relay {
	struct evloop *loop;
	struct relay_end end[2];
	struct relay_dir dir[2];
	bool closed;
	enum relay_phase phase;
	struct relay_queue *queue;
	struct relay *q_next;
	relay_connect_fn connect;
	relay_step_fn step; /* NULL: transport_connect_step */
	void *connect_ctx;
	struct ev_deadline deadline;
	int timeout_ms;
	char *what;
	struct relay_list *list;
	uint64_t *bytes; /* the queue's byte counts (relay_queue.bytes), or NULL */
	struct relay *next, **pprev;
};

static void relay_free(void *p)
{
	struct relay *r = p;
	free(r->dir[0].pending);
	free(r->dir[1].pending);
	tls_conn_free(r->end[0].tls);
	tls_conn_free(r->end[1].tls);
	free(r->what);
	free(r);
}

/* Takes a waiting relay out of its queue's accounting (and the queue itself when QUEUED). */
static void queue_leave(struct relay *r)
{
	struct relay_queue *q = r->queue;
	if (r->phase == RELAY_QUEUED) {
		struct relay *prev = NULL;
		for (struct relay **pp = &q->head; *pp; prev = *pp, pp = &(*pp)->q_next)
			if (*pp == r) {
				*pp = r->q_next;
				if (q->tail == r)
					q->tail = prev;
				break;
			}
	} else if (r->phase == RELAY_CONNECTING) {
		q->in_flight = false;
		q->connecting = NULL;
	}
	if (r->phase != RELAY_OPEN)
		q->n--;
	r->phase = RELAY_OPEN;
	ev_deadline_stop(&r->deadline);
}

/* Does not start the next queued connect: the callers that end a wait do (queue_pump). */
static void relay_close(struct relay *r)
{
	if (r->closed)
		return;
	r->closed = true;
	for (int i = 0; i < 2; i++) {
		if (r->end[i].fd < 0)
			continue;
		evloop_del(r->loop, r->end[i].fd);
		close(r->end[i].fd);
	}
	queue_leave(r);
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	r->list->n--;
	evloop_defer_free(r->loop, r, relay_free);
}

/* Plaintext from an end: > 0 bytes, 0 at its end of stream, -1 with errno (EAGAIN: not now). */
static ssize_t end_read(struct relay_end *e, char *buf, size_t n)
{
	for (;;) {
		if (!e->tls) {
			ssize_t k = recv(e->fd, buf, n, 0);
			if (k < 0 && errno == EINTR)
				continue;
			return k;
		}
		_cleanup_err_ struct err *err = NULL;
		ssize_t k = tls_conn_read(e->tls, buf, n, &err);
		/* Reading may have produced handshake messages or alerts for the peer. */
		if (tls_conn_flush(e->tls, e->fd) < 0 && k != TLS_EOF)
			return -1;
		if (k > 0)
			return k;
		if (k == TLS_EOF)
			return 0;
		if (k == TLS_FAILED) {
			log_debug("ingress: %s", err ? err->msg : "TLS failed");
			errno = EPROTO;
			return -1;
		}
		char raw[16384];
		ssize_t m = recv(e->fd, raw, sizeof(raw), 0);
		if (m < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (m == 0)
			tls_conn_feed_eof(e->tls);
		else
			tls_conn_feed(e->tls, raw, (size_t)m);
	}
}

/* Plaintext to an end: bytes taken (TLS takes all or none), or -1 with errno (EAGAIN: full). */
static ssize_t end_write(struct relay_end *e, const char *data, size_t n)
{
	if (!e->tls) {
		for (;;) {
			ssize_t k = send(e->fd, data, n, MSG_NOSIGNAL);
			if (k < 0 && errno == EINTR)
				continue;
			return k;
		}
	}
	int f = tls_conn_flush(e->tls, e->fd);
	if (f < 0)
		return -1;
	/* Bounded buffering: new records only once the previous ones are out, and only after the
	 * handshake (which the reads drive). */
	if (f == 1 || !tls_conn_established(e->tls)) {
		errno = EAGAIN;
		return -1;
	}
	_cleanup_err_ struct err *err = NULL;
	if (tls_conn_write(e->tls, data, n, &err) < 0) {
		log_debug("ingress: %s", err->msg);
		errno = EPROTO;
		return -1;
	}
	return tls_conn_flush(e->tls, e->fd) < 0 ? -1 : (ssize_t)n;
}

/* Passes an end of stream on to an end: shutdown(SHUT_WR), after close_notify for TLS. */
static void end_shutdown(struct relay_end *e)
{
	if (e->tls) {
		tls_conn_close_notify(e->tls);
		if (tls_conn_flush(e->tls, e->fd) == 1) {
			e->shut_pending = true;
			return;
		}
	}
	shutdown(e->fd, SHUT_WR);
}

/* TLS: sends queued records (and a pending shutdown); -1 when broken. */
static int end_flush_raw(struct relay_end *e)
{
	if (!e->tls)
		return 0;
	int f = tls_conn_flush(e->tls, e->fd);
	if (f < 0)
		return -1;
	if (f == 0 && e->shut_pending) {
		shutdown(e->fd, SHUT_WR);
		e->shut_pending = false;
	}
	return 0;
}

static void update(struct relay *r)
{
	for (int i = 0; i < 2; i++) {
		struct relay_end *e = &r->end[i];
		uint32_t ev = 0;
		if (!r->dir[i].eof && r->dir[i].len == 0)
			ev |= EPOLLIN;
		if (r->dir[1 - i].len > 0 && (!e->tls || tls_conn_established(e->tls)))
			ev |= EPOLLOUT;
		if (e->tls && tls_conn_pending_out(e->tls) > 0)
			ev |= EPOLLOUT;
		if (ev != e->events) {
			if (evloop_mod(r->loop, e->fd, ev, &e->h, NULL) < 0) {
				relay_close(r);
				return;
			}
			e->events = ev;
		}
	}
}

/* Writes what dir[i] holds to end[1 - i]; 0 done or blocked, -1 broken. */
static int flush_dir(struct relay *r, int i)
{
	struct relay_dir *d = &r->dir[i];
	while (d->len > 0) {
		ssize_t n = end_write(&r->end[1 - i], d->pending + d->off, d->len);
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		d->off += (size_t)n;
		d->len -= (size_t)n;
	}
	free(d->pending);
	d->pending = NULL;
	d->off = 0;
	if (d->eof && !d->done) {
		end_shutdown(&r->end[1 - i]);
		d->done = true;
	}
	return 0;
}

static void queue(struct relay_dir *d, const char *data, size_t n)
{
	/* Only called when nothing is pending. */
	d->pending = xmalloc(n);
	memcpy(d->pending, data, n);
	d->off = 0;
	d->len = n;
}

/* Reads from end[i] and writes straight through; -1 when broken. */
static int pump(struct relay *r, int i)
{
	char buf[65536];
	struct relay_dir *d = &r->dir[i];
	while (!d->eof && d->len == 0) {
		ssize_t n = end_read(&r->end[i], buf, sizeof(buf));
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		if (n == 0) {
			d->eof = true;
			return flush_dir(r, i);
		}
		if (r->bytes)
			__atomic_fetch_add(&r->bytes[i], (uint64_t)n, __ATOMIC_RELAXED);
		size_t off = 0;
		while (off < (size_t)n) {
			ssize_t w = end_write(&r->end[1 - i], buf + off, (size_t)n - off);
			if (w < 0) {
				if (errno == EAGAIN)
					break;
				return -1;
			}
			off += (size_t)w;
		}
		if (off < (size_t)n)
			queue(d, buf + off, (size_t)n - off);
		/* Probably drained (epoll will say otherwise), unless TLS holds decrypted or undecrypted
		 * input that no readiness event will announce. */
		if ((size_t)n < sizeof(buf) && !(r->end[i].tls && tls_conn_buffered(r->end[i].tls)))
			return 0;
	}
	return 0;
}

static void update(struct relay *r);

static void hold_end(struct relay_queue *q);

/* End B is connected: the relay runs (and its queue, if it held, holds no more). */
static void connected(struct relay *r)
{
	hold_end(r->queue);
	queue_leave(r);
	update(r);
}

static void queue_pump(struct relay_queue *q);

static void on_retry(struct ev_handler *h, uint32_t events)
{
	struct relay_queue *q = (struct relay_queue *)((char *)h - offsetof(struct relay_queue, retry));
	(void)events;
	q->backing_off = false;
	queue_pump(q);
}

/* Closes every client the queue holds: the hold is over. */
static void on_hold_over(struct ev_handler *h, uint32_t events)
{
	struct relay_queue *q = (struct relay_queue *)((char *)h - offsetof(struct relay_queue, hold));
	(void)events;
	size_t n = q->n;
	q->holding = false;
	if (q->pause_until) {
		log_warn("%s: %s not within %g s: %zu held connections closed", q->what, q->pause_until,
		         q->hold_ms / 1000.0, n);
	} else {
		q->gave_up = true;
		log_warn("%s: still refused after %g s (does anything listen there?): %zu held connections closed; "
		         "until it listens, new ones are refused at once",
		         q->what, q->hold_ms / 1000.0, n);
	}
	ev_deadline_stop(&q->retry);
	q->backing_off = false;
	while (q->head)
		relay_close(q->head);
	if (q->connecting) /* not among the queued ones */
		relay_close(q->connecting);
}

/* The queue starts holding (a connect refused, or paused): one line, and the bound. */
static void hold_begin(struct relay_queue *q, struct relay *r)
{
	if (q->holding)
		return;
	_cleanup_err_ struct err *e = NULL;
	if (ev_deadline_arm(&q->hold, r->loop, q->hold_ms, on_hold_over, &e) < 0) {
		log_warn("%s: %s", r->what, e->msg);
		return;
	}
	q->holding = true;
	free(q->what);
	q->what = xstrdup(r->what);
	log_warn("%s: holding connections until %s (at most %d, for %g s)", q->what,
	         q->pause_until ? q->pause_until : q->until, RELAY_CONNECTING_MAX, q->hold_ms / 1000.0);
}

/* A connect was accepted: the queue holds no more. */
static void hold_end(struct relay_queue *q)
{
	q->gave_up = false;
	q->backoff_ms = 0;
	if (!q->holding)
		return;
	q->holding = false;
	ev_deadline_stop(&q->hold);
}

/* End B's connect failed (code: the errno). A refusal on a holding queue puts the client back
 * at the head and retries after a backoff; anything else closes it. */
static void connect_failed(struct relay *r, int code, const char *msg)
{
	struct relay_queue *q = r->queue;
	if (code == ECONNREFUSED && q->hold_ms > 0 && !q->gave_up) {
		hold_begin(q, r);
		_cleanup_err_ struct err *e = NULL;
		q->backoff_ms = q->backoff_ms ? (q->backoff_ms * 2 > 1000 ? 1000 : q->backoff_ms * 2) : 50;
		if (q->holding && ev_deadline_arm(&q->retry, r->loop, q->backoff_ms, on_retry, &e) == 0) {
			if (r->end[1].fd >= 0) {
				evloop_del(r->loop, r->end[1].fd);
				close(r->end[1].fd);
				r->end[1].fd = -1;
			}
			q->in_flight = false;
			q->connecting = NULL;
			q->backing_off = true;
			r->phase = RELAY_QUEUED;
			r->q_next = q->head;
			q->head = r;
			if (!q->tail)
				q->tail = r;
			return;
		}
		if (e)
			log_warn("%s: %s", r->what, e->msg);
	}
	if (code == ECONNREFUSED && q->gave_up)
		log_debug("%s: %s: connection refused", r->what, msg);
	else
		log_warn("%s: %s: connection refused", r->what, msg);
	relay_close(r);
}

/* Starts the connects of queued relays, one at a time per queue. */
static void queue_pump(struct relay_queue *q)
{
	while (!q->in_flight && !q->backing_off && !q->pause_until && q->head) {
		struct relay *r = q->head;
		q->head = r->q_next;
		if (!q->head)
			q->tail = NULL;
		r->q_next = NULL;
		r->phase = RELAY_CONNECTING;
		q->in_flight = true;
		q->connecting = r;
		_cleanup_err_ struct err *e = NULL;
		bool in_progress = false;
		int fd = r->connect(r->connect_ctx, &in_progress, &e);
		if (fd >= 0 && evloop_add(r->loop, fd, in_progress ? EPOLLOUT : 0, &r->end[1].h, &e) < 0) {
			close(fd);
			fd = -1;
		}
		if (fd < 0) {
			connect_failed(r, e ? e->code : 0, e ? e->msg : "connect failed");
			continue;
		}
		r->end[1].fd = fd;
		r->end[1].events = in_progress ? EPOLLOUT : 0;
		if (!in_progress)
			connected(r);
	}
}

/* End B's connect made progress (its step says whether it is done), or end A went away while
 * it waited. */
static void on_waiting_event(struct relay *r, int i, uint32_t events)
{
	struct relay_queue *q = r->queue;
	if (i == 0) {
		if (events & (EPOLLHUP | EPOLLERR)) {
			relay_close(r); /* the client left before its connection was made */
			queue_pump(q);
		}
		return;
	}
	_cleanup_err_ struct err *e = NULL;
	uint32_t next = 0;
	int rc;
	if (r->step) {
		next = events;
		rc = r->step(r->connect_ctx, r->end[1].fd, &next, &e);
	} else {
		rc = transport_connect_step(r->end[1].fd, events, &e);
	}
	if (rc == 0 && next != 0 && next != r->end[1].events) {
		if (evloop_mod(r->loop, r->end[1].fd, next, &r->end[1].h, &e) == 0)
			r->end[1].events = next;
		else
			rc = -1;
	}
	if (rc < 0)
		connect_failed(r, e ? e->code : 0, e ? e->msg : "connect failed");
	else if (next == 0)
		connected(r);
	queue_pump(q);
}

static void on_connect_timeout(struct ev_handler *h, uint32_t events)
{
	struct relay *r = (struct relay *)((char *)h - offsetof(struct relay, deadline));
	(void)events;
	if (r->closed || r->phase == RELAY_OPEN)
		return;
	struct relay_queue *q = r->queue;
	/* The hold has its own bound (hold_ms): a held client waits on. */
	if (q->holding && ev_deadline_arm(&r->deadline, r->loop, r->timeout_ms, on_connect_timeout, NULL) == 0)
		return;
	log_warn("%s: not accepted within %d ms (is its listen backlog full?): connection refused", r->what,
	         r->timeout_ms);
	relay_close(r);
	queue_pump(q);
}

static void on_event(struct ev_handler *h, uint32_t events)
{
	struct relay_end *e = (struct relay_end *)h;
	struct relay *r = e->r;
	if (r->closed)
		return;
	if (r->phase != RELAY_OPEN) {
		on_waiting_event(r, (int)(e - r->end), events);
		return;
	}
	int i = (int)(e - r->end);
	if (events & EPOLLERR) {
		relay_close(r);
		return;
	}
	if ((events & EPOLLOUT) && (end_flush_raw(e) < 0 || flush_dir(r, 1 - i) < 0)) {
		relay_close(r);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && pump(r, i) < 0) {
		relay_close(r);
		return;
	}
	/* A hang-up on a side we no longer read from means its peer is gone
	 * while the other direction still has work: nothing can complete. */
	if ((events & EPOLLHUP) && r->dir[i].eof && !r->dir[1 - i].done) {
		relay_close(r);
		return;
	}
	/* TLS input read ahead while the other side was full (whole records in the memory buffer)
	 * gets no readiness event once the socket behind it is empty: go back to it as soon as
	 * there is room for it. */
	for (int j = 0; j < 2; j++) {
		struct relay_end *te = &r->end[j];
		if (te->tls && !r->dir[j].eof && r->dir[j].len == 0 && tls_conn_buffered(te->tls) && pump(r, j) < 0) {
			relay_close(r);
			return;
		}
	}
	if (r->dir[0].done && r->dir[1].done) {
		relay_close(r);
		return;
	}
	update(r);
}

static void list_link(struct relay *r, struct relay_list *list)
{
	r->list = list;
	r->next = list->head;
	if (list->head)
		list->head->pprev = &r->next;
	list->head = r;
	r->pprev = &list->head;
	list->n++;
}

static int relay_begin(struct evloop *loop, int fd_a, struct tls_conn *tls_a, int fd_b, const void *a_to_b,
                       size_t n_a_to_b, const void *b_to_a, size_t n_b_to_a, struct relay_list *list, struct err **err)
{
	struct relay *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->deadline.fd = -1;
	r->end[0] = (struct relay_end){.h.fn = on_event, .r = r, .fd = fd_a, .tls = tls_a};
	r->end[1] = (struct relay_end){.h.fn = on_event, .r = r, .fd = fd_b};
	if (n_a_to_b)
		queue(&r->dir[0], a_to_b, n_a_to_b);
	if (n_b_to_a)
		queue(&r->dir[1], b_to_a, n_b_to_a);
	for (int i = 0; i < 2; i++) {
		if (evloop_add(loop, r->end[i].fd, 0, &r->end[i].h, err) < 0) {
			if (i == 1)
				evloop_del(loop, fd_a);
			close(fd_a);
			close(fd_b);
			relay_free(r);
			return err_wrap(err, "relay");
		}
	}
	list_link(r, list);
	update(r);
	return 0;
}

int relay_start(struct evloop *loop, int fd_a, int fd_b, const void *a_to_b, size_t n_a_to_b, const void *b_to_a,
                size_t n_b_to_a, struct relay_list *list, struct err **err)
{
	return relay_begin(loop, fd_a, NULL, fd_b, a_to_b, n_a_to_b, b_to_a, n_b_to_a, list, err);
}

int relay_start_tls(struct evloop *loop, int fd_tls, struct tls_conn *tls, int fd_plain, struct relay_list *list,
                    struct err **err)
{
	return relay_begin(loop, fd_tls, tls, fd_plain, NULL, 0, NULL, 0, list, err);
}

int relay_start_connecting(struct evloop *loop, int fd_a, struct tls_conn *tls_a, relay_connect_fn connect,
                           relay_step_fn step, void *ctx, int timeout_ms, const char *what, struct relay_queue *q,
                           struct relay_list *list, struct err **err)
{
	if (!what)
		what = "relay";
	if (q->n >= RELAY_CONNECTING_MAX) {
		close(fd_a);
		tls_conn_free(tls_a);
		return err_set(err, EAGAIN, "%s: %zu connections already wait to be accepted: connection refused", what,
		               q->n);
	}
	struct relay *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->deadline.fd = -1;
	r->end[0] = (struct relay_end){.h.fn = on_event, .r = r, .fd = fd_a, .tls = tls_a};
	r->end[1] = (struct relay_end){.h.fn = on_event, .r = r, .fd = -1};
	r->connect = connect;
	r->step = step;
	r->connect_ctx = ctx;
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	r->what = xstrdup(what);
	if (evloop_add(loop, fd_a, 0, &r->end[0].h, err) < 0) {
		close(fd_a);
		relay_free(r);
		return err_wrap(err, "relay");
	}
	if (ev_deadline_arm(&r->deadline, loop, r->timeout_ms, on_connect_timeout, err) < 0) {
		evloop_del(loop, fd_a);
		close(fd_a);
		relay_free(r);
		return err_wrap(err, "relay");
	}
	list_link(r, list);
	r->queue = q;
	r->bytes = q->bytes;
	r->phase = RELAY_QUEUED;
	q->n++;
	if (q->tail)
		q->tail->q_next = r;
	else
		q->head = r;
	q->tail = r;
	if (q->pause_until)
		hold_begin(q, r);
	queue_pump(q);
	return 0;
}

void relay_queue_init(struct relay_queue *q, int hold_ms, const char *until)
{
	*q = (struct relay_queue){.hold_ms = hold_ms, .until = until};
	q->retry.fd = -1;
	q->hold.fd = -1;
}

void relay_queue_pause(struct relay_queue *q, const char *until)
{
	q->pause_until = until;
}

void relay_queue_resume(struct relay_queue *q)
{
	if (!q->pause_until)
		return;
	q->pause_until = NULL;
	q->holding = false;
	ev_deadline_stop(&q->hold);
	queue_pump(q);
}

void relay_queue_stop(struct relay_queue *q)
{
	ev_deadline_stop(&q->retry);
	ev_deadline_stop(&q->hold);
	free(q->what);
	q->what = NULL;
}

void relay_list_close_all(struct relay_list *list)
{
	while (list->head)
		relay_close(list->head);
}
