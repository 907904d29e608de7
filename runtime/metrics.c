/* metrics: `--metrics ADDR`: /healthz, /livez and /metrics (Prometheus text format 0.0.4) from what
 * the host learns of the run (boot, status lines, ingress bytes) and the counters odyn reports. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "wire/http.h"
#include "runtime/outer_internal.h"

/* The server runs on a loop and a thread of its own: the host's loop does not turn while a
 * launcher boots the enclave (minutes under TCG), and a liveness probe must be answered then. */
struct outer_metrics {
	pthread_mutex_t mu; /* everything below the loop's fields */
	struct evloop *loop;
	struct httpd *srv;
	struct ev_handler wake_h;
	int wake_fd;
	pthread_t thread;
	bool thread_started;

	struct timespec t0; /* the launch began */
	enum outer_metrics_state state;
	double heartbeat_s; /* < 0: not yet */
	bool ever_running;
	uint64_t restarts;
	bool have_exit;
	int last_exit;
	struct wire_counter *series; /* odyn's counters, merged (never lower) */
	size_t n_series;
	bool series_full_logged;
	struct outer_metrics_port *ports;
	size_t n_ports;
};

static const char *const state_names[] = {
    [OUTER_METRICS_BOOTING] = "booting",
    [OUTER_METRICS_RUNNING] = "running",
    [OUTER_METRICS_EXITED] = "exited",
    [OUTER_METRICS_STOPPED] = "stopped",
};

static double since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A label value in the text format: backslash, double quote and newline escaped. */
static void put_label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_putc(b, '\\');
		if (*v == '\n') {
			buf_puts(b, "\\n");
			continue;
		}
		buf_putc(b, *v);
	}
}

static void put_family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_series(struct buf *b, const struct outer_metrics *m, enum wire_counter_family f, const char *name,
                       const char *label0, const char *label1)
{
	for (size_t i = 0; i < m->n_series; i++) {
		const struct wire_counter *c = &m->series[i];
		if (c->family != f)
			continue;
		buf_printf(b, "%s{%s=\"", name, label0);
		put_label(b, c->label[0]);
		buf_printf(b, "\",%s=\"", label1);
		put_label(b, c->label[1]);
		buf_printf(b, "\"} %llu\n", (unsigned long long)c->n);
	}
}

void outer_metrics_render(struct outer_metrics *m, struct buf *b)
{
	pthread_mutex_lock(&m->mu);
	put_family(b, "enclaver_enclave_state", "gauge",
	           "The run's state, 1 for the current one: booting until odyn reports the app running, "
	           "exited while the app has ended (a restart may follow), stopped once the enclave is gone.");
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		buf_printf(b, "enclaver_enclave_state{state=\"%s\"} %d\n", state_names[i], m->state == i);
	put_family(b, "enclaver_enclave_uptime_seconds", "gauge", "Seconds since the enclave's launch began.");
	buf_printf(b, "enclaver_enclave_uptime_seconds %.3f\n", since(&m->t0));
	put_family(b, "enclaver_enclave_heartbeat_seconds", "gauge",
	           "Seconds from the launch to the enclave's boot heartbeat (absent before it).");
	if (m->heartbeat_s >= 0)
		buf_printf(b, "enclaver_enclave_heartbeat_seconds %.3f\n", m->heartbeat_s);
	put_family(b, "enclaver_app_restarts_total", "counter",
	           "Times odyn started the app again after it ended (the manifest's restart policy).");
	buf_printf(b, "enclaver_app_restarts_total %llu\n", (unsigned long long)m->restarts);
	put_family(b, "enclaver_app_last_exit_code", "gauge",
	           "The app's last exit code, 128 + N when signal N ended it (absent until it ends once).");
	if (m->have_exit)
		buf_printf(b, "enclaver_app_last_exit_code %d\n", m->last_exit);
	put_family(b, "enclaver_ingress_bytes_total", "counter",
	           "Bytes relayed per ingress port (the enclave's): in from clients, out to them.");
	for (size_t i = 0; i < m->n_ports; i++) {
		const struct outer_metrics_port *p = &m->ports[i];
		buf_printf(b, "enclaver_ingress_bytes_total{port=\"%u\",direction=\"in\"} %llu\n", p->enclave_port,
		           (unsigned long long)__atomic_load_n(&p->bytes[0], __ATOMIC_RELAXED));
		buf_printf(b, "enclaver_ingress_bytes_total{port=\"%u\",direction=\"out\"} %llu\n", p->enclave_port,
		           (unsigned long long)__atomic_load_n(&p->bytes[1], __ATOMIC_RELAXED));
	}
	put_family(b, "enclaver_egress_connections_total", "counter",
	           "Egress requests odyn's proxy decided, by the deciding rule ((default): no rule matched) "
	           "and result (allowed, denied).");
	put_series(b, m, WIRE_COUNTER_EGRESS, "enclaver_egress_connections_total", "rule", "result");
	put_family(b, "enclaver_kms_requests_total", "counter",
	           "Requests odyn's KMS proxy answered, by action and result (ok, error).");
	put_series(b, m, WIRE_COUNTER_KMS, "enclaver_kms_requests_total", "action", "result");
	pthread_mutex_unlock(&m->mu);
}

static void on_request(void *arg, struct httpd_conn *c, const struct http_request *req, const uint8_t *body, size_t len)
{
	struct outer_metrics *m = arg;
	(void)body;
	(void)len;
	size_t plen = strcspn(req->target, "?");
	bool healthz = plen == 8 && !strncmp(req->target, "/healthz", 8);
	bool livez = plen == 6 && !strncmp(req->target, "/livez", 6);
	bool metrics = plen == 8 && !strncmp(req->target, "/metrics", 8);
	if (!healthz && !livez && !metrics) {
		httpd_respond_text(c, 404, "Not Found", "not found: /healthz, /livez and /metrics are served here");
		return;
	}
	if (strcmp(req->method, "GET") != 0) {
		httpd_respond_not_allowed(c, "GET");
		return;
	}
	if (livez) {
		/* This process and its server answer: what a liveness probe asks. The enclave's end
		 * ends the process, and with it this answer. */
		httpd_respond_text(c, 200, "OK", "ok");
	} else if (healthz) {
		pthread_mutex_lock(&m->mu);
		enum outer_metrics_state st = m->state;
		pthread_mutex_unlock(&m->mu);
		if (st == OUTER_METRICS_RUNNING)
			httpd_respond_text(c, 200, "OK", "ok: the app is running");
		else
			httpd_respond_text(c, 503, "Service Unavailable", "not ready: %s", state_names[st]);
	} else {
		_cleanup_buf_ struct buf b = {0};
		outer_metrics_render(m, &b);
		httpd_respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
	}
}

static void on_wake(struct ev_handler *h, uint32_t events)
{
	struct outer_metrics *m = outer_container_of(h, struct outer_metrics, wake_h);
	(void)events;
	evloop_stop(m->loop);
}

static void *serve(void *arg)
{
	struct outer_metrics *m = arg;
	_cleanup_err_ struct err *e = NULL;
	if (evloop_run(m->loop, &e) < 0)
		log_warn("metrics: %s", e->msg);
	return NULL;
}

int outer_metrics_addr(const char *text, struct transport_addr *out, struct err **err)
{
	const char *colon = strrchr(text, ':');
	if (colon == NULL || colon[1] == '\0')
		return err_set(err, EINVAL, "--metrics %s: expected HOST:PORT or :PORT", text);
	_cleanup_free_ char *t = colon == text ? xasprintf("tcp:127.0.0.1%s", text) : xasprintf("tcp:%s", text);
	if (transport_parse(t, out, err) < 0)
		return err_wrap(err, "--metrics %s", text);
	return 0;
}

int outer_metrics_start(const char *addr_text, size_t n_ports, struct outer_metrics **out, struct err **err)
{
	struct transport_addr addr;
	if (outer_metrics_addr(addr_text, &addr, err) < 0)
		return -1;
	struct outer_metrics *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	clock_gettime(CLOCK_MONOTONIC, &m->t0);
	m->heartbeat_s = -1;
	m->wake_fd = -1;
	m->ports = xcalloc(n_ports ? n_ports : 1, sizeof(*m->ports));
	m->n_ports = n_ports;
	m->series = xcalloc(OUTER_METRICS_SERIES_MAX, sizeof(*m->series));
	/* Small and short-lived: a scrape is one request; the cap and the lifetime keep a flood or a
	 * slowloris from costing more than OUTER_METRICS_CONNS_MAX descriptors for a few seconds. */
	struct httpd_limits lim = {
	    .body_max = 0, .conns_max = OUTER_METRICS_CONNS_MAX, .conn_timeout_ms = OUTER_METRICS_CONN_MS};
	if (evloop_new(&m->loop, err) < 0 ||
	    httpd_start(m->loop, &addr, "metrics", &lim, on_request, m, &m->srv, err) < 0)
		goto fail;
	m->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	m->wake_h.fn = on_wake;
	if (m->wake_fd < 0) {
		err_sys(err, "metrics: eventfd");
		goto fail;
	}
	if (evloop_add(m->loop, m->wake_fd, EPOLLIN, &m->wake_h, err) < 0)
		goto fail;
	/* The thread takes no signals: SIGINT/SIGTERM belong to the run's signalfd. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&m->thread, NULL, serve, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		err_sys(err, "metrics: thread");
		goto fail;
	}
	m->thread_started = true;
	*out = m;
	return 0;
fail:
	outer_metrics_free(m);
	return err_wrap(err, "--metrics %s", addr_text);
}

uint16_t outer_metrics_port(const struct outer_metrics *m)
{
	return httpd_port(m->srv);
}

uint64_t *outer_metrics_ingress(struct outer_metrics *m, size_t i, uint16_t enclave_port)
{
	if (m == NULL || i >= m->n_ports)
		return NULL;
	m->ports[i].enclave_port = enclave_port;
	return m->ports[i].bytes;
}

void outer_metrics_heartbeat(struct outer_metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	m->heartbeat_s = since(&m->t0);
	pthread_mutex_unlock(&m->mu);
}

/* Merges a counters line: an entry never goes down (a reconnecting reader gets odyn's ring again,
 * older lines first), and at most OUTER_METRICS_SERIES_MAX entries are kept whatever the
 * enclave sends. */
static void merge_counters(struct outer_metrics *m, const struct wire_status *st)
{
	for (size_t i = 0; i < st->n_counters; i++) {
		const struct wire_counter *c = &st->counters[i];
		size_t j = wire_counter_find(m->series, m->n_series, c->family, c->label[0], c->label[1]);
		if (j == m->n_series) {
			if (m->n_series == OUTER_METRICS_SERIES_MAX) {
				if (!m->series_full_logged)
					log_warn("metrics: odyn reports more than %d counters; the rest are not shown",
					         OUTER_METRICS_SERIES_MAX);
				m->series_full_logged = true;
				continue;
			}
			m->series[m->n_series++] = *c;
		} else if (c->n > m->series[j].n) {
			m->series[j].n = c->n;
		}
	}
}

void outer_metrics_status(struct outer_metrics *m, const struct wire_status *st)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	switch (st->kind) {
	case WIRE_STATUS_RUNNING:
		if (m->ever_running)
			m->restarts++;
		m->ever_running = true;
		m->state = OUTER_METRICS_RUNNING;
		break;
	case WIRE_STATUS_EXITED:
	case WIRE_STATUS_SIGNALED:
		m->have_exit = true;
		m->last_exit = st->kind == WIRE_STATUS_EXITED ? st->code : 128 + st->code;
		m->state = OUTER_METRICS_EXITED;
		break;
	case WIRE_STATUS_FATAL: m->state = OUTER_METRICS_EXITED; break;
	case WIRE_STATUS_COUNTERS: merge_counters(m, st); break;
	}
	pthread_mutex_unlock(&m->mu);
}

void outer_metrics_stopped(struct outer_metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	m->state = OUTER_METRICS_STOPPED;
	pthread_mutex_unlock(&m->mu);
}

void outer_metrics_free(struct outer_metrics *m)
{
	if (m == NULL)
		return;
	if (m->thread_started) {
		uint64_t one = 1;
		if (write(m->wake_fd, &one, sizeof(one)) < 0)
			log_warn("metrics: waking the server: %s", strerror(errno));
		pthread_join(m->thread, NULL);
	}
	httpd_free(m->srv);
	if (m->wake_fd >= 0) {
		evloop_del(m->loop, m->wake_fd);
		close(m->wake_fd);
	}
	evloop_free(m->loop);
	pthread_mutex_destroy(&m->mu);
	free(m->series);
	free(m->ports);
	free(m);
}
