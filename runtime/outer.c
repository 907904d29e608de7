/* outer: the run loop of the host side: binds ingress and egress before the enclave boots, then
 * follows status, log, console and the launcher's exit descriptor until the enclave stops. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "runtime/outer_internal.h"

/* The run: its parts and its own state. Only this file sees it. */
struct outer {
	struct outer_ctx ctx; /* what the parts share */
	struct outer_ingress *ingress;
	size_t n_ingress;
	struct outer_egress *egress;
	struct gstream status, log;
	struct gstream_sink sink; /* the streams' way back to the run */
	struct ev_handler exit_h, console_h, sig_h, timer_h, stop_h;
	int sigfd, timerfd, stop_timerfd, exit_fd, console_fd;
	struct buf console_line; /* a console line not yet complete (debug mode) */
	bool blocked;            /* SIGINT/SIGTERM blocked by outer_new */
	sigset_t old_mask;
	struct outer_report report; /* what odyn reported */
	int signo;                  /* SIGINT/SIGTERM received */
	bool stop_asked;            /* "stop" sent to odyn; waiting for the enclave to end */
	bool counters_asked;        /* "counters" sent on this status connection (--metrics) */
	bool done;
};

int outer_exit_code(const struct outer_result *r)
{
	switch (r->outcome) {
	case OUTER_APP_EXITED: return r->code;
	case OUTER_APP_SIGNALED: return OUTER_EXIT_SIGNALED;
	case OUTER_INTERRUPTED: return OUTER_EXIT_INTERRUPTED;
	case OUTER_APP_FATAL:
	case OUTER_ENCLAVE_GONE: break;
	}
	return OUTER_EXIT_FATAL;
}

static void retry_arm(struct outer *o, unsigned ms)
{
	struct itimerspec its = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000}};
	timerfd_settime(o->timerfd, 0, &its, NULL);
}

static const char stop_line[] = WIRE_STATUS_STOP "\n";

/* ---------------------------------------------------------------- the streams' way back */
static void on_status_line(void *arg, const char *line, size_t len)
{
	struct outer *o = arg;
	/* Ingress clients are held while the enclave boots, until the app is up. */
	if (outer_report_status(&o->report, line, len))
		for (size_t i = 0; i < o->n_ingress; i++)
			outer_ingress_resume(&o->ingress[i]);
	/* With --metrics, ask odyn for its counters once per connection (a line says it is up). */
	static const char ask[] = WIRE_STATUS_COUNTERS_ON "\n";
	if (o->ctx.metrics && !o->counters_asked && o->status.fd >= 0 && !o->status.connecting)
		o->counters_asked = send(o->status.fd, ask, sizeof(ask) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(ask) - 1;
}

static void on_stream_retry(void *arg, unsigned ms)
{
	retry_arm(arg, ms);
}

static bool on_stream_closed(void *arg, enum gstream_kind kind)
{
	struct outer *o = arg;
	if (kind == GSTREAM_STATUS)
		o->counters_asked = false; /* the next connection asks again */
	/* The log is replayed from odyn's ring on reconnect: after the app's end that would repeat it. */
	return !o->done && !(kind == GSTREAM_LOG && o->report.have_final);
}

static void on_timer(struct ev_handler *h, uint32_t events)
{
	struct outer *o = outer_container_of(h, struct outer, timer_h);
	uint64_t ticks;
	(void)events;
	if (read(o->timerfd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
		return;
	/* The log first: odyn only waits for a status reader before it closes, so the log reader must
	 * be connected before the status reader can let odyn go. */
	unsigned next = 0;
	struct gstream *order[] = {&o->log, &o->status};
	for (size_t i = 0; i < 2; i++) {
		struct gstream *g = order[i];
		if (!g->wanted || g->connecting)
			continue;
		if (i == 1 && o->log.wanted) {
			next = 20;
			continue;
		}
		if (!gstream_try_connect(g)) {
			unsigned d = g->failures < 5 ? 20u << g->failures : 500;
			next = next == 0 || d < next ? d : next;
		}
	}
	if (next)
		retry_arm(o, next);
}

static void on_exit_fd(struct ev_handler *h, uint32_t events)
{
	struct outer *o = outer_container_of(h, struct outer, exit_h);
	(void)events;
	log_info("the enclave stopped");
	o->done = true;
	evloop_stop(o->ctx.loop);
}

/* Console lines go to stderr as "[console] ..." (or source "console" in JSON): in debug mode the
 * console also carries odyn's stderr and the app's output, which must not read as our own lines
 * (or as the log stream's). */
#define CONSOLE_PREFIX   "[console] "
#define CONSOLE_LINE_MAX (64 * 1024)
static void console_line(struct buf *out, struct buf *l)
{
	if (l->len && l->data[l->len - 1] == '\r') /* the serial console's CRLF */
		l->len--;
	log_line_format(out, log_get_format(), CONSOLE_PREFIX, "console", "info", l->data ? l->data : "", l->len);
	l->len = 0;
}

static void console_bytes(struct outer *o, const char *data, size_t n, bool eof)
{
	struct buf *l = &o->console_line;
	struct buf out = {0};
	for (size_t i = 0; i < n; i++) {
		if (data[i] != '\n') {
			buf_putc(l, data[i]);
			if (l->len < CONSOLE_LINE_MAX)
				continue;
		}
		console_line(&out, l);
	}
	if (eof && l->len)
		console_line(&out, l);
	if (out.len)
		io_write_full(STDERR_FILENO, out.data, out.len, NULL);
	buf_free(&out);
}

static void on_console(struct ev_handler *h, uint32_t events)
{
	struct outer *o = outer_container_of(h, struct outer, console_h);
	char b[16384];
	ssize_t n = read(o->console_fd, b, sizeof(b));
	if (n > 0) {
		console_bytes(o, b, (size_t)n, false);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	(void)events;
	/* The console ended (or failed): stop watching it, the run goes on. */
	console_bytes(o, "", 0, true);
	evloop_del(o->ctx.loop, o->console_fd);
	o->console_fd = -1;
}

static void on_stop_timer(struct ev_handler *h, uint32_t events)
{
	struct outer *o = outer_container_of(h, struct outer, stop_h);
	(void)events;
	log_warn("the app did not stop within %u ms: stopping the enclave", o->ctx.cfg.stop_timeout_ms);
	evloop_stop(o->ctx.loop);
}

/* The first SIGINT/SIGTERM asks odyn (on the status stream) to stop the app, which then reports
 * and ends the enclave; the run ends at exit_fd as usual. Without a status connection, after the
 * timeout, or at a second signal, the enclave is stopped at once. */
static void on_signal(struct ev_handler *h, uint32_t events)
{
	struct outer *o = outer_container_of(h, struct outer, sig_h);
	struct signalfd_siginfo si;
	(void)events;
	if (read(o->sigfd, &si, sizeof(si)) != sizeof(si))
		return;
	bool again = o->signo != 0;
	o->signo = (int)si.ssi_signo;
	for (size_t i = 0; i < o->n_ingress; i++)
		outer_ingress_close(&o->ctx, &o->ingress[i]);
	const size_t stop_len = sizeof(stop_line) - 1;
	if (again || o->status.fd < 0 || o->status.connecting ||
	    send(o->status.fd, stop_line, stop_len, MSG_NOSIGNAL) != (ssize_t)stop_len) {
		log_info("signal %d: stopping the enclave", o->signo);
		evloop_stop(o->ctx.loop);
		return;
	}
	log_info("signal %d: asking the app to stop (again to stop the enclave at once)", o->signo);
	o->stop_asked = true;
	struct itimerspec its = {.it_value = {.tv_sec = o->ctx.cfg.stop_timeout_ms / 1000,
	                                      .tv_nsec = (long)(o->ctx.cfg.stop_timeout_ms % 1000) * 1000000}};
	timerfd_settime(o->stop_timerfd, 0, &its, NULL);
}

int outer_new(const struct outer_config *cfg, struct outer **out, struct err **err)
{
	struct outer *o = xcalloc(1, sizeof(*o));
	o->ctx.cfg = *cfg;
	if (!o->ctx.cfg.log_prefix)
		o->ctx.cfg.log_prefix = "[app] ";
	if (!o->ctx.cfg.stop_timeout_ms)
		o->ctx.cfg.stop_timeout_ms = 30000;
	o->sigfd = o->timerfd = o->stop_timerfd = o->exit_fd = o->console_fd = -1;
	o->ctx.reserve_fd = transport_reserve_fd();
	o->sink = (struct gstream_sink){
	    .status_line = on_status_line, .retry = on_stream_retry, .reconnect = on_stream_closed, .arg = o};
	gstream_init(&o->ctx, &o->sink, &o->status, GSTREAM_STATUS);
	gstream_init(&o->ctx, &o->sink, &o->log, GSTREAM_LOG);
	if (evloop_new(&o->ctx.loop, err) < 0)
		goto fail;
	/* Before the boot: probes are answered (not ready) while it lasts. */
	if (cfg->metrics_addr && outer_metrics_start(cfg->metrics_addr, cfg->n_ports, &o->ctx.metrics, err) < 0)
		goto fail;
	o->report.metrics = o->ctx.metrics;
	o->ingress = xcalloc(cfg->n_ports ? cfg->n_ports : 1, sizeof(*o->ingress));
	for (size_t i = 0; i < cfg->n_ports; i++) {
		if (outer_ingress_open(&o->ctx, &cfg->ports[i], &o->ingress[i], err) < 0)
			goto fail;
		o->n_ingress++;
	}
	if (outer_egress_open(&o->ctx, &o->egress, err) < 0)
		goto fail;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, &o->old_mask) < 0) {
		err_sys(err, "sigprocmask");
		goto fail;
	}
	o->blocked = true;
	o->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	o->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	o->stop_timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (o->sigfd < 0 || o->timerfd < 0 || o->stop_timerfd < 0) {
		err_sys(err, "signalfd/timerfd");
		goto fail;
	}
	o->sig_h.fn = on_signal;
	o->timer_h.fn = on_timer;
	o->stop_h.fn = on_stop_timer;
	if (evloop_add(o->ctx.loop, o->sigfd, EPOLLIN, &o->sig_h, err) < 0 ||
	    evloop_add(o->ctx.loop, o->timerfd, EPOLLIN, &o->timer_h, err) < 0 ||
	    evloop_add(o->ctx.loop, o->stop_timerfd, EPOLLIN, &o->stop_h, err) < 0)
		goto fail;
	*out = o;
	return 0;
fail:
	outer_free(o);
	return -1;
}

uint16_t outer_metrics_bound(const struct outer *o)
{
	return o->ctx.metrics ? outer_metrics_port(o->ctx.metrics) : 0;
}

uint16_t outer_port_bound(const struct outer *o, size_t i)
{
	return i < o->n_ingress ? o->ingress[i].bound_port : 0;
}

/* How the run ended, from what odyn said and what happened. */
static void result_fill(struct outer *o, struct outer_result *res)
{
	memset(res, 0, sizeof(*res));
	if (o->signo) {
		res->outcome = OUTER_INTERRUPTED;
		res->code = o->signo;
		res->message = xasprintf("stopped by signal %d", o->signo);
	} else if (o->report.have_final) {
		*res = o->report.final;
		res->message = o->report.final.message ? xstrdup(o->report.final.message) : NULL;
	} else {
		res->outcome = OUTER_ENCLAVE_GONE;
		res->message = xstrdup(o->report.started ? "the enclave stopped without reporting the app's exit status"
		                                  : "the enclave stopped before the app started");
	}
}

int outer_run(struct outer *o, struct outer_result *res, struct err **err)
{
	struct launcher *l = o->ctx.cfg.launcher;
	o->exit_fd = launcher_exit_fd(l);
	o->exit_h.fn = on_exit_fd;
	if (o->exit_fd >= 0 && evloop_add(o->ctx.loop, o->exit_fd, EPOLLIN, &o->exit_h, err) < 0)
		return -1;
	if (o->ctx.cfg.debug_mode && (o->console_fd = launcher_console_fd(l)) >= 0) {
		fcntl(o->console_fd, F_SETFL, fcntl(o->console_fd, F_GETFL) | O_NONBLOCK);
		o->console_h.fn = on_console;
		if (evloop_add(o->ctx.loop, o->console_fd, EPOLLIN, &o->console_h, err) < 0)
			return -1;
	}
	outer_metrics_heartbeat(o->ctx.metrics); /* the launcher returns at the heartbeat */
	o->log.wanted = o->status.wanted = true;
	retry_arm(o, 1);
	if (evloop_run(o->ctx.loop, err) < 0)
		return -1;
	/* The enclave's descriptor may be closed by launcher_stop: stop watching it first. */
	if (o->exit_fd >= 0)
		evloop_del(o->ctx.loop, o->exit_fd);
	if (o->console_fd >= 0)
		evloop_del(o->ctx.loop, o->console_fd);
	if (o->signo && !o->done) {
		_cleanup_err_ struct err *e = NULL;
		if (launcher_stop(l, &e) < 0)
			log_warn("stopping the enclave: %s", e->msg);
	}
	/* What odyn sent before the end is in our buffers: read it, never wait for more. */
	gstream_drain(&o->log);
	gstream_drain(&o->status);
	if (o->console_fd >= 0) {
		char b[16384];
		ssize_t n;
		while ((n = read(o->console_fd, b, sizeof(b))) > 0)
			console_bytes(o, b, (size_t)n, false);
	}
	console_bytes(o, "", 0, true);
	outer_metrics_stopped(o->ctx.metrics);
	result_fill(o, res);
	return 0;
}

void outer_free(struct outer *o)
{
	if (o == NULL)
		return;
	gstream_close(&o->status);
	gstream_close(&o->log);
	buf_free(&o->status.line);
	buf_free(&o->log.line);
	logstream_reader_free(&o->log.rd);
	buf_free(&o->console_line);
	relay_list_close_all(&o->ctx.relays);
	for (size_t i = 0; i < o->n_ingress; i++) {
		outer_ingress_close(&o->ctx, &o->ingress[i]);
		relay_queue_stop(&o->ingress[i].waiting);
	}
	free(o->ingress);
	outer_egress_free(o->egress);
	if (o->sigfd >= 0) {
		/* A signal that came after the first would kill us once unblocked: consume it. */
		struct signalfd_siginfo si;
		while (read(o->sigfd, &si, sizeof(si)) == sizeof(si))
			;
		close(o->sigfd);
	}
	if (o->timerfd >= 0)
		close(o->timerfd);
	if (o->stop_timerfd >= 0)
		close(o->stop_timerfd);
	if (o->ctx.reserve_fd >= 0)
		close(o->ctx.reserve_fd);
	evloop_free(o->ctx.loop);
	if (o->blocked)
		sigprocmask(SIG_SETMASK, &o->old_mask, NULL);
	free(o->report.final.message);
	outer_metrics_free(o->ctx.metrics);
	free(o);
}
