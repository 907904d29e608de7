/* test_metrics: the HTTP server under hostile clients (wire/httpd.c: bad, oversized, slow, too
 * many), and the host's metrics page (runtime/metrics.c): states, restarts, exit codes, and odyn's
 * counters merged without going back, capped, and escaped as the Prometheus text format asks. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runtime/outer_internal.h"
#include "tests/harness.h"
#include "wire/http.h"

/* ---------------------------------------------------------------- a server on its own thread */
struct srv {
	struct evloop *loop;
	struct httpd *httpd;
	struct ev_handler wake_h;
	int wake_fd;
	pthread_t thread;
	unsigned handled;
};

static void on_request(void *arg, struct httpd_conn *c, const struct http_request *req, const uint8_t *body, size_t len)
{
	struct srv *s = arg;
	(void)body;
	(void)len;
	__atomic_fetch_add(&s->handled, 1, __ATOMIC_RELAXED);
	if (strcmp(req->method, "GET") != 0)
		httpd_respond_not_allowed(c, "GET");
	else
		httpd_respond_text(c, 200, "OK", "hi");
}

static void on_wake(struct ev_handler *h, uint32_t events)
{
	struct srv *s = (struct srv *)((char *)h - offsetof(struct srv, wake_h));
	(void)events;
	evloop_stop(s->loop);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	evloop_run(s->loop, NULL);
	return NULL;
}

static void srv_start(struct test_ctx *t, struct srv *s, size_t conns_max, int timeout_ms)
{
	memset(s, 0, sizeof(*s));
	struct transport_addr a;
	REQUIRE(transport_parse("tcp:127.0.0.1:0", &a, NULL) == 0);
	REQUIRE(evloop_new(&s->loop, NULL) == 0);
	struct httpd_limits lim = {.body_max = 16, .conns_max = conns_max, .conn_timeout_ms = timeout_ms};
	REQUIRE(httpd_start(s->loop, &a, "test", &lim, on_request, s, &s->httpd, NULL) == 0);
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->wake_h.fn = on_wake;
	REQUIRE(evloop_add(s->loop, s->wake_fd, EPOLLIN, &s->wake_h, NULL) == 0);
	REQUIRE(pthread_create(&s->thread, NULL, srv_main, s) == 0);
}

static void srv_stop(struct srv *s)
{
	uint64_t one = 1;
	if (write(s->wake_fd, &one, sizeof(one)) < 0)
		abort();
	pthread_join(s->thread, NULL);
	httpd_free(s->httpd);
	evloop_del(s->loop, s->wake_fd);
	close(s->wake_fd);
	evloop_free(s->loop);
}

static int dial(uint16_t port)
{
	struct transport_addr a;
	char text[64];
	snprintf(text, sizeof(text), "tcp:127.0.0.1:%u", port);
	if (transport_parse(text, &a, NULL) < 0)
		return -1;
	int fd = transport_connect(&a, false, NULL);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Sends req (len bytes) and returns what comes back until EOF (at most 4 KiB); "" on EOF at once. */
static void exchange(uint16_t port, const char *req, size_t len, char *out, size_t cap)
{
	int fd = dial(port);
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	size_t got = 0;
	ssize_t n;
	while (got + 1 < cap && (n = recv(fd, out + got, cap - 1 - got, 0)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fd);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(httpd_answers_bad_and_oversized_requests_with_their_status)
{
	struct srv s;
	srv_start(t, &s, 8, 5000);
	uint16_t port = httpd_port(s.httpd);
	char out[4096];
	static const struct {
		const char *req, *status;
	} cases[] = {
	    {"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
	    {"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
	    {"GET /x HTTP/1.1\nHost: a\n\n", "HTTP/1.1 400 Bad Request\r\n"},
	    {"GET /x HTTP/2.0\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
	    {"GET /x HTTP/1.1\r\n folded: x\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
	    {"POST /x HTTP/1.1\r\nContent-Length: 17\r\n\r\n", "HTTP/1.1 413 Content Too Large\r\n"},
	    {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 411 Length Required\r\n"},
	    {"DELETE /x HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		exchange(port, cases[i].req, strlen(cases[i].req), out, sizeof(out));
		if (strncmp(out, cases[i].status, strlen(cases[i].status)) != 0)
			test_fail(t, __FILE__, __LINE__, "%s: got %.60s", cases[i].req, out);
	}
	/* A head past HTTP_HEAD_MAX: 431, without waiting for its end. */
	size_t big = HTTP_HEAD_MAX + 1000;
	char *req = xmalloc(big);
	memcpy(req, "GET /x HTTP/1.1\r\nX: ", 20);
	memset(req + 20, 'a', big - 20);
	exchange(port, req, big, out, sizeof(out));
	free(req);
	CHECK(strncmp(out, "HTTP/1.1 431 ", 13) == 0);
	/* The handler saw only the two good requests (200, and the DELETE it answered 405). */
	CHECK_INT_EQ(__atomic_load_n(&s.handled, __ATOMIC_RELAXED), 2);
	srv_stop(&s);
}

TEST(httpd_closes_a_slow_client_at_its_lifetime_bound)
{
	struct srv s;
	srv_start(t, &s, 8, 300);
	int fd = dial(httpd_port(s.httpd));
	const char part[] = "GET /x HTTP/1.1\r\nHost: a\r\n"; /* never finished */
	REQUIRE(send(fd, part, sizeof(part) - 1, 0) == (ssize_t)sizeof(part) - 1);
	double t0 = now_s();
	char b[256];
	ssize_t n = recv(fd, b, sizeof(b), 0);
	double took = now_s() - t0;
	CHECK(n == 0);                   /* closed, no answer */
	CHECK(took > 0.2 && took < 5.0); /* by the bound, not before */
	close(fd);
	/* A client that never reads its answer is bounded the same way (its connection goes). */
	CHECK_INT_EQ(__atomic_load_n(&s.handled, __ATOMIC_RELAXED), 0);
	srv_stop(&s);
}

TEST(httpd_sheds_clients_past_its_cap)
{
	struct srv s;
	srv_start(t, &s, 2, 5000);
	uint16_t port = httpd_port(s.httpd);
	int idle[2] = {dial(port), dial(port)};
	usleep(200 * 1000); /* both accepted */
	int extra = dial(port);
	char b[256];
	CHECK(recv(extra, b, sizeof(b), 0) == 0); /* accepted and closed at once */
	close(extra);
	close(idle[0]);
	close(idle[1]);
	usleep(200 * 1000);
	char out[4096];
	exchange(port, "GET / HTTP/1.1\r\n\r\n", 18, out, sizeof(out));
	CHECK(strncmp(out, "HTTP/1.1 200 OK", 15) == 0);
	srv_stop(&s);
}

/* ---------------------------------------------------------------- the metrics page */
static struct wire_status counters_line(const char *line)
{
	struct wire_status st;
	if (wire_status_decode(line, strlen(line), &st, NULL) < 0)
		abort();
	return st;
}

static bool page_has(struct outer_metrics *m, const char *line)
{
	_cleanup_buf_ struct buf b = {0};
	outer_metrics_render(m, &b);
	_cleanup_free_ char *want = xasprintf("\n%s\n", line);
	return strstr(buf_str(&b), want) != NULL;
}

TEST(metrics_follow_the_status_lines)
{
	struct outer_metrics *m;
	REQUIRE(outer_metrics_start("127.0.0.1:0", 1, &m, NULL) == 0);
	uint64_t *bytes = outer_metrics_ingress(m, 0, 8080);
	REQUIRE(bytes != NULL);
	CHECK(page_has(m, "enclaver_enclave_state{state=\"booting\"} 1"));
	CHECK(!page_has(m, "enclaver_app_last_exit_code 0")); /* absent until the app ends */
	outer_metrics_heartbeat(m);
	struct wire_status st = {.kind = WIRE_STATUS_RUNNING};
	outer_metrics_status(m, &st);
	CHECK(page_has(m, "enclaver_enclave_state{state=\"running\"} 1"));
	CHECK(page_has(m, "enclaver_enclave_state{state=\"booting\"} 0"));
	st = (struct wire_status){.kind = WIRE_STATUS_SIGNALED, .code = 9};
	outer_metrics_status(m, &st);
	CHECK(page_has(m, "enclaver_app_last_exit_code 137"));
	CHECK(page_has(m, "enclaver_enclave_state{state=\"exited\"} 1"));
	st = (struct wire_status){.kind = WIRE_STATUS_RUNNING};
	outer_metrics_status(m, &st);
	st = (struct wire_status){.kind = WIRE_STATUS_EXITED, .code = 4};
	outer_metrics_status(m, &st);
	CHECK(page_has(m, "enclaver_app_restarts_total 1"));
	CHECK(page_has(m, "enclaver_app_last_exit_code 4"));
	bytes[0] += 10;
	bytes[1] += 300;
	CHECK(page_has(m, "enclaver_ingress_bytes_total{port=\"8080\",direction=\"in\"} 10"));
	CHECK(page_has(m, "enclaver_ingress_bytes_total{port=\"8080\",direction=\"out\"} 300"));
	outer_metrics_stopped(m);
	CHECK(page_has(m, "enclaver_enclave_state{state=\"stopped\"} 1"));
	outer_metrics_free(m);
}

TEST(metrics_merge_odyns_counters_monotonic_capped_escaped)
{
	struct outer_metrics *m;
	REQUIRE(outer_metrics_start(":0", 0, &m, NULL) == 0);
	struct wire_status st = counters_line(
	    "{\"status\":\"counters\",\"egress\":[[\"a\\\"b\\\\c\",\"allowed\",5]],\"kms\":[[\"Decrypt\",\"ok\",2]]}");
	outer_metrics_status(m, &st);
	wire_status_free(&st);
	/* A label's quote and backslash are escaped. */
	CHECK(page_has(m, "enclaver_egress_connections_total{rule=\"a\\\"b\\\\c\",result=\"allowed\"} 5"));
	CHECK(page_has(m, "enclaver_kms_requests_total{action=\"Decrypt\",result=\"ok\"} 2"));
	/* An older line (a reconnecting reader gets odyn's ring again) does not lower a counter. */
	st = counters_line("{\"status\":\"counters\",\"kms\":[[\"Decrypt\",\"ok\",1],[\"Sign\",\"error\",1]]}");
	outer_metrics_status(m, &st);
	wire_status_free(&st);
	CHECK(page_has(m, "enclaver_kms_requests_total{action=\"Decrypt\",result=\"ok\"} 2"));
	CHECK(page_has(m, "enclaver_kms_requests_total{action=\"Sign\",result=\"error\"} 1"));
	/* However many lines a compromised enclave sends, at most OUTER_METRICS_SERIES_MAX series. */
	for (int k = 0; k < 10; k++) {
		_cleanup_buf_ struct buf b = {0};
		buf_puts(&b, "{\"status\":\"counters\",\"egress\":[");
		for (int i = 0; i < WIRE_COUNTERS_MAX; i++)
			buf_printf(&b, "%s[\"r%d-%d\",\"denied\",1]", i ? "," : "", k, i);
		buf_puts(&b, "]}");
		st = counters_line(buf_str(&b));
		outer_metrics_status(m, &st);
		wire_status_free(&st);
	}
	_cleanup_buf_ struct buf page = {0};
	outer_metrics_render(m, &page);
	size_t series = 0;
	for (const char *p = buf_str(&page); (p = strstr(p, "\nenclaver_egress_connections_total{")); p++)
		series++;
	for (const char *p = buf_str(&page); (p = strstr(p, "\nenclaver_kms_requests_total{")); p++)
		series++;
	CHECK_INT_EQ(series, OUTER_METRICS_SERIES_MAX);
	outer_metrics_free(m);
}
