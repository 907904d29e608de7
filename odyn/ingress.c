/* ingress: for each ingress port, accept on the outside address (vsock in
 * production) and relay each connection to the app on 127.0.0.1:PORT,
 * terminating TLS first when the manifest gives the port a certificate. */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "odyn/internal.h"

/* Connects to the app waiting at once per port; a client beyond them is refused
 * at once (its connection closed) rather than held. */
#define INGRESS_PENDING_MAX 256
/* How often the deadlines of waiting connects are checked. */
#define INGRESS_TICK_MS 250

/* A client accepted while its connect to the app is still under way. The
 * connect is non-blocking: an app whose listen backlog is full (slower than
 * its clients, or not accepting at all) leaves the SYN unanswered for up to
 * two minutes, and a blocking connect would freeze every service on the loop. */
struct pending {
	struct ev_handler h; /* first: EPOLLOUT on up_fd */
	struct ingress *in;
	int client_fd, up_fd;
	int64_t deadline_ms;
	struct pending *next, **pprev;
};

struct ingress {
	struct listener l; /* first: on_accept gets &l.h */
	struct evloop *loop;
	struct odyn_ingress spec;
	struct tls_server *tls; /* NULL: plain TCP */
	struct relay_list relays;
	int connect_ms;
	struct pending *pending;
	size_t n_pending;
	int timer_fd;
	struct ev_handler timer_h;
	bool timer_armed;
};

static void timer_arm(struct ingress *in, bool on)
{
	if (in->timer_armed == on)
		return;
	struct itimerspec its = {0};
	if (on) {
		its.it_value.tv_nsec = INGRESS_TICK_MS * 1000000L;
		its.it_interval = its.it_value;
	}
	timerfd_settime(in->timer_fd, 0, &its, NULL);
	in->timer_armed = on;
}

/* Unlinks p and closes what it still owns (a descriptor handed to a relay is -1). */
static void pending_end(struct pending *p)
{
	struct ingress *in = p->in;
	if (p->up_fd >= 0) {
		evloop_del(in->loop, p->up_fd);
		close(p->up_fd);
	}
	if (p->client_fd >= 0)
		close(p->client_fd);
	*p->pprev = p->next;
	if (p->next)
		p->next->pprev = p->pprev;
	in->n_pending--;
	if (in->n_pending == 0)
		timer_arm(in, false);
	evloop_defer_free(in->loop, p, free);
}

/* Hands both ends to a relay (which owns them from the call on, failure or not). */
static void relay_begin(struct ingress *in, int fd, int up)
{
	_cleanup_err_ struct err *e = NULL;
	int r = in->tls ? relay_start_tls(in->loop, fd, tls_conn_new(in->tls), up, &in->relays, &e)
	                : relay_start(in->loop, fd, up, NULL, 0, NULL, 0, &in->relays, &e);
	if (r < 0)
		log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
}

static void on_connected(struct ev_handler *h, uint32_t events)
{
	struct pending *p = (struct pending *)h;
	struct ingress *in = p->in;
	(void)events;
	if (p->up_fd < 0)
		return; /* ended earlier in this batch */
	_cleanup_err_ struct err *e = NULL;
	if (transport_connect_finish(p->up_fd, &in->spec.target, &e) < 0) {
		log_warn("ingress %s: %s: client refused", in->spec.listen.text, e->msg);
		pending_end(p);
		return;
	}
	evloop_del(in->loop, p->up_fd);
	int fd = p->client_fd, up = p->up_fd;
	p->client_fd = p->up_fd = -1;
	pending_end(p);
	relay_begin(in, fd, up);
}

static void on_tick(struct ev_handler *h, uint32_t events)
{
	struct ingress *in = container_of(h, struct ingress, timer_h);
	(void)events;
	uint64_t ticks;
	if (read(in->timer_fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
		return;
	int64_t now = time_monotonic_ms();
	for (struct pending *p = in->pending, *next; p; p = next) {
		next = p->next;
		if (p->up_fd >= 0 && now >= p->deadline_ms) {
			log_warn("ingress %s: %s did not accept the connection within %d ms (is its listen backlog "
			         "full?): client refused",
			         in->spec.listen.text, in->spec.target.text, in->connect_ms);
			pending_end(p);
		}
	}
}

/* Starts the connect to the app for one accepted client; never waits. */
static void client_start(struct ingress *in, int fd)
{
	_cleanup_err_ struct err *e = NULL;
	if (in->n_pending >= INGRESS_PENDING_MAX) {
		log_warn("ingress %s: %zu connections already wait for %s to accept: client refused",
		         in->spec.listen.text, in->n_pending, in->spec.target.text);
		close(fd);
		return;
	}
	bool in_progress;
	int up = transport_connect_start(&in->spec.target, &in_progress, &e);
	if (up < 0) {
		log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
		close(fd);
		return;
	}
	if (!in_progress) {
		relay_begin(in, fd, up);
		return;
	}
	struct pending *p = xcalloc(1, sizeof(*p));
	*p = (struct pending){.h.fn = on_connected,
	                      .in = in,
	                      .client_fd = fd,
	                      .up_fd = up,
	                      .deadline_ms = time_monotonic_ms() + in->connect_ms};
	if (evloop_add(in->loop, up, EPOLLOUT, &p->h, &e) < 0) {
		log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
		close(up);
		close(fd);
		free(p);
		return;
	}
	p->next = in->pending;
	p->pprev = &in->pending;
	if (in->pending)
		in->pending->pprev = &p->next;
	in->pending = p;
	in->n_pending++;
	timer_arm(in, true);
}

static void on_accept(struct ev_handler *h, uint32_t events)
{
	struct ingress *in = (struct ingress *)h;
	(void)events;
	for (;;) {
		_cleanup_err_ struct err *e = NULL;
		int fd = listener_accept(&in->l, &e);
		if (fd < 0) {
			if (e)
				log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
			return;
		}
		client_start(in, fd);
	}
}

int ingress_start(struct evloop *loop, const struct odyn_ingress *spec, int connect_ms, struct ingress **out,
                  struct err **err)
{
	struct tls_server *tls = NULL;
	if (spec->tls_cert_file && tls_server_new(spec->tls_cert_file, spec->tls_key_file, &tls, err) < 0)
		return err_wrap(err, "ingress %s", spec->listen.text);
	struct ingress *in = xcalloc(1, sizeof(*in));
	in->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (in->timer_fd < 0) {
		err_sys(err, "ingress %s: timerfd", spec->listen.text);
		tls_server_free(tls);
		free(in);
		return -1;
	}
	in->timer_h.fn = on_tick;
	if (evloop_add(loop, in->timer_fd, EPOLLIN, &in->timer_h, err) < 0 ||
	    listener_open(&in->l, loop, &spec->listen, 1024, on_accept, err) < 0) {
		evloop_del(loop, in->timer_fd);
		close(in->timer_fd);
		tls_server_free(tls);
		free(in);
		return err_wrap(err, "ingress");
	}
	in->loop = loop;
	in->spec = *spec;
	in->tls = tls;
	in->connect_ms = connect_ms > 0 ? connect_ms : ODYN_INGRESS_CONNECT_MS;
	log_info("ingress %s -> %s%s", spec->listen.text, spec->target.text, tls ? " (TLS terminated here)" : "");
	*out = in;
	return 0;
}

void ingress_free(struct ingress *in)
{
	if (in == NULL)
		return;
	while (in->pending)
		pending_end(in->pending);
	relay_list_close_all(&in->relays);
	listener_close(&in->l);
	evloop_del(in->loop, in->timer_fd);
	close(in->timer_fd);
	tls_server_free(in->tls);
	free(in);
}
