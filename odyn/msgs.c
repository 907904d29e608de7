/* msgs: odyn's own warnings and errors on the log stream as `odyn` records (common/logstream.h),
 * so a host without the enclave's console (no --debug-mode) learns them. Bounded: never blocks. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include "wire/logstream.h"
#include "odyn/internal.h"

/* Records waiting for the loop, from any thread; more are dropped (and counted). */
#define MSGS_PENDING_MAX (16 * 1024)
/* At most this many records a second: a flood (an app asking for denied hosts in a loop) must
 * not push the app's own output out of the 128 KiB ring. */
#define MSGS_PER_S 64
/* How long records wait for the app to finish its line: readers that know nothing of records
 * (Enclaver's host, a raw probe) then see the app's lines whole. */
#define MSGS_LINE_WAIT_MS 500

struct odyn_msgs {
	struct ev_handler h, timer_h;
	struct evloop *loop;
	struct stream *log;
	uint64_t lag_limit;
	int efd, tfd;
	pthread_mutex_t lock; /* everything below */
	struct buf pending;
	unsigned n_pending;
	uint64_t dropped;
	int64_t pending_ms; /* when the oldest pending record (or drop) came */
	int64_t window_ms;  /* start of the current one-second window */
	unsigned in_window;
	int64_t notice_ms; /* when the last "dropped" record went out (loop only) */
};

/* The log sink: called from any thread, under common/log.c's sink lock. Never logs. */
static void msgs_sink(void *arg, enum log_level level, const char *level_name, const char *msg)
{
	struct odyn_msgs *m = arg;
	(void)level;
	char text[LOGSTREAM_RECORD_MAX];
	snprintf(text, sizeof(text), "%s: %s", level_name, msg);
	int64_t now = time_monotonic_ms();
	pthread_mutex_lock(&m->lock);
	if (now - m->window_ms >= 1000) {
		m->window_ms = now;
		m->in_window = 0;
	}
	if (m->pending.len == 0)
		m->pending_ms = now;
	if (m->in_window >= MSGS_PER_S || m->pending.len + strlen(text) + 8 > MSGS_PENDING_MAX) {
		m->dropped++;
	} else {
		m->in_window++;
		logstream_record_append(&m->pending, LOGSTREAM_TAG_ODYN, text);
		m->n_pending++;
	}
	pthread_mutex_unlock(&m->lock);
	uint64_t one = 1;
	ssize_t w = write(m->efd, &one, sizeof(one)); /* EAGAIN: a wakeup is pending anyway */
	(void)w;
}

/* On the loop: moves what is pending onto the stream, unless readers are too far behind (the
 * app's output then waits for them; our records are dropped with a count instead). */
void odyn_msgs_flush(struct odyn_msgs *m, bool final)
{
	if (m == NULL)
		return;
	struct buf b = {0};
	uint64_t dropped;
	unsigned n;
	pthread_mutex_lock(&m->lock);
	if (m->pending.len == 0 && m->dropped == 0) {
		pthread_mutex_unlock(&m->lock);
		return;
	}
	int64_t wait = m->pending_ms + MSGS_LINE_WAIT_MS - time_monotonic_ms();
	if (!final && wait > 0 && !stream_at_line_start(m->log)) {
		pthread_mutex_unlock(&m->lock);
		/* The app is inside a line: wait for its end (the supervisor calls us after app output),
		 * or for the timer, whichever comes first. */
		struct itimerspec its = {.it_value = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000}};
		timerfd_settime(m->tfd, 0, &its, NULL);
		return;
	}
	b = m->pending;
	n = m->n_pending;
	memset(&m->pending, 0, sizeof(m->pending));
	m->n_pending = 0;
	dropped = m->dropped;
	pthread_mutex_unlock(&m->lock);
	if (b.len == 0 && dropped == 0)
		return;
	if (stream_max_lag(m->log) + b.len + LOGSTREAM_RECORD_MAX > m->lag_limit) {
		pthread_mutex_lock(&m->lock);
		m->dropped += n;
		pthread_mutex_unlock(&m->lock);
		buf_free(&b);
		return;
	}
	/* The count goes out at most once a second (a notice per drop would be a flood itself), and
	 * at the end. */
	int64_t now = time_monotonic_ms();
	if (dropped && !final && now - m->notice_ms < 1000) {
		/* Not yet: the timer sends it then, should no other message come. */
		int64_t left = 1000 - (now - m->notice_ms);
		struct itimerspec its = {.it_value = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000}};
		timerfd_settime(m->tfd, 0, &its, NULL);
	} else if (dropped) {
		m->notice_ms = now;
		struct buf d = {0};
		_cleanup_free_ char *t = xasprintf("warning: %llu odyn messages dropped (more than %d a second, or "
		                                   "the log stream's readers behind)",
		                                   (unsigned long long)dropped, MSGS_PER_S);
		logstream_record_append(&d, LOGSTREAM_TAG_ODYN, t);
		stream_write(m->log, d.data, d.len);
		buf_free(&d);
		pthread_mutex_lock(&m->lock);
		m->dropped -= dropped;
		pthread_mutex_unlock(&m->lock);
	}
	if (b.len)
		stream_write(m->log, b.data, b.len);
	buf_free(&b);
}

static void on_wakeup(struct ev_handler *h, uint32_t events)
{
	struct odyn_msgs *m = container_of(h, struct odyn_msgs, h);
	uint64_t v;
	(void)events;
	while (read(m->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	odyn_msgs_flush(m, false);
}

static void on_timer(struct ev_handler *h, uint32_t events)
{
	struct odyn_msgs *m = container_of(h, struct odyn_msgs, timer_h);
	uint64_t v;
	(void)events;
	while (read(m->tfd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	odyn_msgs_flush(m, false);
}

int odyn_msgs_start(struct evloop *loop, struct stream *log, uint64_t lag_limit, struct odyn_msgs **out,
                    struct err **err)
{
	struct odyn_msgs *m = xcalloc(1, sizeof(*m));
	m->h.fn = on_wakeup;
	m->loop = loop;
	m->log = log;
	m->lag_limit = lag_limit;
	m->window_ms = time_monotonic_ms();
	m->notice_ms = m->window_ms - 1000;
	pthread_mutex_init(&m->lock, NULL);
	m->timer_h.fn = on_timer;
	m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	m->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (m->efd < 0 || m->tfd < 0) {
		err_sys(err, "eventfd/timerfd");
		goto fail;
	}
	if (evloop_add(loop, m->efd, EPOLLIN, &m->h, err) < 0)
		goto fail;
	if (evloop_add(loop, m->tfd, EPOLLIN, &m->timer_h, err) < 0) {
		evloop_del(loop, m->efd);
		goto fail;
	}
	log_set_sink(LOG_WARN, msgs_sink, m);
	*out = m;
	return 0;
fail:
	if (m->efd >= 0)
		close(m->efd);
	if (m->tfd >= 0)
		close(m->tfd);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return -1;
}

void odyn_msgs_free(struct odyn_msgs *m)
{
	if (m == NULL)
		return;
	log_set_sink(LOG_WARN, NULL, NULL); /* after this no thread is in msgs_sink */
	evloop_del(m->loop, m->efd);
	evloop_del(m->loop, m->tfd);
	close(m->efd);
	close(m->tfd);
	buf_free(&m->pending);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
