/* outer_streams: the clients of odyn's status (17000) and log (17001) streams: newline-delimited
 * JSON status lines become the run's result, app output lines and odyn's records go to our stdout
 * through the run's log formatter (common/logfmt.c). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "wire/logstream.h"
#include "runtime/outer_internal.h"

/* A line longer than this is passed on in pieces (the app printed no newline for a while). */
#define LINE_MAX_BYTES (64 * 1024)

static void log_line(const struct outer_config *cfg, const char *line, size_t len)
{
	_cleanup_err_ struct err *e = NULL;
	if (log_line_write(cfg->log_fd, cfg->log_prefix, "app", "info", line, len, &e) < 0)
		log_warn("app log: %s", e->msg);
}

/* odyn's records read "LEVEL: message" (odyn/msgs.c): JSON gets the level as a field. */
static const char *record_level(const char **text, size_t *len)
{
	static const struct {
		const char *prefix, *level;
	} levels[] = {{"error: ", "error"}, {"warning: ", "warn"}, {"info: ", "info"}, {"debug: ", "debug"}};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		size_t n = strlen(levels[i].prefix);
		if (*len >= n && memcmp(*text, levels[i].prefix, n) == 0) {
			*text += n;
			*len -= n;
			return levels[i].level;
		}
	}
	return "info";
}

static void log_record_write(const struct outer_config *cfg, const char *tag, size_t tag_len, const char *text,
                             size_t len)
{
	_cleanup_err_ struct err *e = NULL;
	int r;
	if (log_get_format() == LOG_FORMAT_JSON) {
		/* Only odyn writes records (the app's RS bytes are replaced before they are sent). */
		const char *level = record_level(&text, &len);
		r = log_line_write(cfg->log_fd, "", "odyn", level, text, len, &e);
	} else {
		/* A malformed tag is still shown, never as the app's. */
		_cleanup_free_ char *prefix = tag_len ? xasprintf("[%.*s] ", (int)tag_len, tag) : xstrdup("[?] ");
		r = log_line_write(cfg->log_fd, prefix, "odyn", "info", text, len, &e);
	}
	if (r < 0)
		log_warn("app log: %s", e->msg);
}

bool outer_report_status(struct outer_report *o, const char *line, size_t len)
{
	struct wire_status st;
	_cleanup_err_ struct err *e = NULL;
	if (wire_status_decode(line, len, &st, &e) < 0) {
		log_warn("status stream: ignoring %s (%.*s)", e->msg, (int)(len > 200 ? 200 : len), line);
		return false;
	}
	outer_metrics_status(o->metrics, &st);
	if (st.kind == WIRE_STATUS_COUNTERS) {
		wire_status_free(&st); /* for the metrics only: never the run's result */
		return false;
	}
	if (st.kind == WIRE_STATUS_RUNNING) {
		/* Also after a restart: the earlier end was not the last. */
		o->started = true;
		o->have_final = false;
		free(o->final.message);
		o->final.message = NULL;
		log_info("the app is running");
		return true;
	}
	struct outer_result r = {.code = st.code};
	switch (st.kind) {
	case WIRE_STATUS_EXITED:
		r.outcome = OUTER_APP_EXITED;
		r.message = xasprintf("the app exited with code %d", r.code);
		break;
	case WIRE_STATUS_SIGNALED:
		r.outcome = OUTER_APP_SIGNALED;
		r.message = xasprintf("the app was killed by signal %d", r.code);
		break;
	default:
		r.outcome = OUTER_APP_FATAL;
		r.code = 0;
		r.message = xasprintf("odyn: %s", st.error);
		break;
	}
	wire_status_free(&st);
	log_info("%s", r.message);
	free(o->final.message);
	o->final = r;
	o->have_final = true;
	return false;
}

static void log_app_line(void *arg, const char *line, size_t len)
{
	log_line(arg, line, len);
}

static void log_record(void *arg, const char *tag, size_t tag_len, const char *text, size_t len)
{
	log_record_write(arg, tag, tag_len, text, len);
}

static void stream_lines(struct gstream *g, const char *data, size_t n, bool eof)
{
	if (g->kind == GSTREAM_LOG) {
		const struct logstream_sink sink = {
		    .app_line = log_app_line, .record = log_record, .arg = &g->o->cfg, .app_line_max = LINE_MAX_BYTES};
		logstream_reader_feed(&g->rd, data, n, eof, &sink);
		return;
	}
	buf_append(&g->line, data, n);
	size_t start = 0;
	for (;;) {
		char *nl = memchr(g->line.data + start, '\n', g->line.len - start);
		size_t end = nl ? (size_t)(nl - g->line.data) : g->line.len;
		bool take = nl || (end - start) >= LINE_MAX_BYTES || (eof && end > start);
		if (!take)
			break;
		g->sink->status_line(g->sink->arg, g->line.data + start, end - start);
		start = nl ? end + 1 : end;
		if (start >= g->line.len)
			break;
	}
	memmove(g->line.data, g->line.data + start, g->line.len - start);
	g->line.len -= start;
}

void gstream_close(struct gstream *g)
{
	g->connecting = false;
	ev_deadline_stop(&g->deadline);
	if (g->fd < 0)
		return;
	evloop_del(g->o->loop, g->fd);
	close(g->fd);
	g->fd = -1;
}

/* Reads what is ready; true at EOF or on an error. */
static bool stream_read(struct gstream *g)
{
	char b[65536];
	for (;;) {
		ssize_t n = recv(g->fd, b, sizeof(b), 0);
		if (n > 0) {
			stream_lines(g, b, (size_t)n, false);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		stream_lines(g, "", 0, true); /* a last line without a newline */
		return true;
	}
}

/* The stream's connect failed or took too long: closed, retried after a backoff. */
static void connect_failed(struct gstream *g, const char *why)
{
	if (g->failures++ == 0 || log_get_level() >= LOG_DEBUG)
		log_debug("%s stream (port %u): %s; retrying", g->kind == GSTREAM_STATUS ? "status" : "log", g->port,
		          why);
	gstream_close(g);
	g->sink->retry(g->sink->arg, g->failures < 5 ? 20u << g->failures : 500);
}

static void on_connect_deadline(struct ev_handler *h, uint32_t events)
{
	struct gstream *g = outer_container_of(h, struct gstream, deadline.h);
	(void)events;
	char why[64];
	snprintf(why, sizeof(why), "not connected within %d ms", OUTER_STREAM_CONNECT_MS);
	if (g->fd >= 0 && g->connecting)
		connect_failed(g, why);
}

/* The stream's connect made progress: the launcher's step says whether it is done (an emulated
 * guest answers after the socket connected); then read from it. */
static void connect_step(struct gstream *g, uint32_t events)
{
	_cleanup_err_ struct err *e = NULL;
	uint32_t next = events;
	if (launcher_connect_guest_step(g->o->cfg.launcher, g->port, g->fd, &next, &e) == 0 &&
	    evloop_mod(g->o->loop, g->fd, next ? next : EPOLLIN, &g->h, &e) == 0) {
		if (next)
			return;
		ev_deadline_stop(&g->deadline);
		g->connecting = false;
		g->wanted = false;
		g->failures = 0;
		return;
	}
	connect_failed(g, e ? e->msg : "connect failed");
}

static void on_stream(struct ev_handler *h, uint32_t events)
{
	struct gstream *g = (struct gstream *)h;
	if (g->fd >= 0 && g->connecting) {
		connect_step(g, events);
		return;
	}
	if (g->fd < 0 || !stream_read(g))
		return;
	gstream_close(g);
	if (!g->sink->reconnect(g->sink->arg, g->kind))
		return;
	log_debug("%s stream closed: reconnecting", g->kind == GSTREAM_STATUS ? "status" : "log");
	g->wanted = true;
	g->failures = 0;
	g->sink->retry(g->sink->arg, 20);
}

void gstream_init(struct outer_ctx *o, const struct gstream_sink *sink, struct gstream *g, enum gstream_kind kind)
{
	memset(g, 0, sizeof(*g));
	g->h.fn = on_stream;
	g->o = o;
	g->sink = sink;
	g->kind = kind;
	g->port = kind == GSTREAM_STATUS ? WIRE_PORT_STATUS : WIRE_PORT_LOG;
	g->fd = -1;
	g->deadline.fd = -1;
}

bool gstream_try_connect(struct gstream *g)
{
	_cleanup_err_ struct err *e = NULL;
	int fd;
	bool in_progress;
	/* Never a blocking connect on the loop: an enclave whose listen backlog is full, or an
	 * emulated guest slow to answer, would hold ingress, egress and signals. An unfinished
	 * connect completes in on_stream, within OUTER_STREAM_CONNECT_MS. */
	if (launcher_connect_guest_start(g->o->cfg.launcher, g->port, &fd, &in_progress, &e) < 0) {
		if (g->failures++ == 0 || log_get_level() >= LOG_DEBUG)
			log_debug("%s stream (port %u): %s; retrying", g->kind == GSTREAM_STATUS ? "status" : "log",
			          g->port, e->msg);
		return false;
	}
	if (evloop_add(g->o->loop, fd, in_progress ? EPOLLOUT : EPOLLIN, &g->h, &e) < 0) {
		log_warn("%s", e->msg);
		close(fd);
		return false;
	}
	if (in_progress &&
	    ev_deadline_arm(&g->deadline, g->o->loop, OUTER_STREAM_CONNECT_MS, on_connect_deadline, &e) < 0) {
		log_warn("%s", e->msg);
		evloop_del(g->o->loop, fd);
		close(fd);
		return false;
	}
	g->fd = fd;
	g->connecting = in_progress;
	if (!in_progress) {
		g->wanted = false;
		g->failures = 0;
	}
	return true;
}

void gstream_drain(struct gstream *g)
{
	g->wanted = false;
	if (g->fd >= 0 && !g->connecting)
		stream_read(g);
	gstream_close(g);
	if (g->line.len || g->rd.app.len)
		stream_lines(g, "", 0, true);
}
