/* app: the sample app of the end-to-end tests, run by odyn inside the emulated enclave (a static
 * test fixture, not product code). Modes:
 *   report PORT CODE [API_PORT BODY BAD_BODY]
 *                      print who it runs as and PCR0/1/2/8 from /dev/nsm; with API_PORT, POST BODY
 *                      to odyn's attestation API (127.0.0.1:API_PORT/v1/attestation) and send the
 *                      document to the parent as "attestation HEX", then POST BAD_BODY and print
 *                      the answer; tell the parent on vsock PORT, wait for its answer, exit CODE
 *                      (tests/e2e/odyn.sh)
 *   serve PORT ALLOW_HOST:PORT DENY_HOST:PORT [DELAY_S]
 *                      (after DELAY_S seconds, an app slow to start) serve 127.0.0.1:PORT (ingress), try one allowed and one denied plain-HTTP
 *                      request through odyn's egress proxy and the denied one straight to the
 *                      host's egress endpoint (vsock 3:17002, bypassing odyn), then serve until
 *                      SIGTERM. Ingress commands (first line): "GET ..." (HTTP answer), ECHO,
 *                      SINK, SOURCE N, EXIT3 (the app exits 3), and for the benchmark EGRESS
 *                      HOST:PORT N (send N bytes to a SINK there through the proxy) and
 *                      EGRESSCONN HOST:PORT K (K requests, one connection each)
 *   crash CODE         print a hostile line and a line on stderr, exit CODE (restarts, JSON logs)
 *   stubborn           ignore SIGTERM (saying so) until killed (the stop's grace period)
 * Every line it prints starts with "app: " (the tests grep the log stream for them). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nsm_pcr.h"

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("app: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static int write_all(int fd, const void *p, size_t len)
{
	const char *b = p;
	while (len) {
		ssize_t n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads up to a newline (dropped) or EOF; returns the length, -1 on error. */
static int read_line(int fd, char *line, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 || c == '\n')
			break;
		line[n++] = c;
	}
	line[n] = '\0';
	if (n && line[n - 1] == '\r')
		line[--n] = '\0';
	return (int)n;
}

/* ---------------------------------------------------------------- report */

static void print_pcrs(void)
{
	int fd = open("/dev/nsm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		say("FAIL open /dev/nsm: %s", strerror(errno));
		return;
	}
	static const unsigned pcrs[] = {0, 1, 2, 8};
	for (size_t i = 0; i < sizeof(pcrs) / sizeof(pcrs[0]); i++) {
		uint8_t v[48];
		int locked;
		if (nsm_describe_pcr_bounded(fd, pcrs[i], v, &locked, 30) < 0) {
			int e = errno;
			say("FAIL DescribePCR %u: %s", pcrs[i], strerror(e));
			if (e == ETIMEDOUT) {
				/* NSM stopped answering: asking again would cost 30 s a PCR. */
				nsm_print_virtio_interrupts(say);
				say("FAIL NSM did not answer within 30 s: the remaining PCRs are not read");
				break;
			}
			continue;
		}
		char hex[97];
		for (int k = 0; k < 48; k++)
			snprintf(hex + 2 * k, 3, "%02x", v[k]);
		say("PCR%u %s", pcrs[i], hex);
	}
	close(fd);
}

/* POST body to 127.0.0.1:port/v1/attestation; the whole answer (odyn closes after one) into
 * resp; returns its length, -1 on error. */
static ssize_t api_post(unsigned port, const char *body, char *resp, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char head[256];
	int n = snprintf(head, sizeof(head),
	                 "POST /v1/attestation HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                 strlen(body));
	if (write_all(fd, head, (size_t)n) < 0 || write_all(fd, body, strlen(body)) < 0) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	ssize_t r;
	while (got < cap && (r = read(fd, resp + got, cap - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		got += (size_t)r;
	}
	close(fd);
	return (ssize_t)got;
}

/* Asks the API for a document (sent to the parent on fd as "attestation HEX") and sends a bad
 * request (its status line and body printed). */
static void api_report(int parent, unsigned port, const char *body, const char *bad_body)
{
	static char resp[65536], line[2 * 65536 + 32];
	ssize_t n = api_post(port, body, resp, sizeof(resp));
	char *sep = n > 0 ? memmem(resp, (size_t)n, "\r\n\r\n", 4) : NULL;
	if (sep == NULL) {
		say("FAIL attestation API: %s", n < 0 ? strerror(errno) : "no HTTP answer");
	} else {
		say("api status: %.*s", (int)strcspn(resp, "\r\n"), resp);
		const uint8_t *doc = (const uint8_t *)sep + 4;
		size_t len = (size_t)(resp + n - (sep + 4)), k = 0;
		k += (size_t)snprintf(line, sizeof(line), "attestation ");
		for (size_t i = 0; i < len; i++)
			k += (size_t)snprintf(line + k, sizeof(line) - k, "%02x", doc[i]);
		line[k++] = '\n';
		if (parent >= 0 && write_all(parent, line, k) < 0)
			say("FAIL send the document to the parent: %s", strerror(errno));
		say("api document: %zu bytes", len);
	}
	n = api_post(port, bad_body, resp, sizeof(resp) - 1);
	sep = n > 0 ? memmem(resp, (size_t)n, "\r\n\r\n", 4) : NULL;
	if (sep == NULL) {
		say("FAIL attestation API (bad request): %s", n < 0 ? strerror(errno) : "no HTTP answer");
		return;
	}
	resp[n] = '\0';
	say("api bad request: %.*s", (int)strcspn(resp, "\r\n"), resp);
	say("api bad request body: %.*s", (int)strcspn(sep + 4, "\r\n"), sep + 4);
}

static int report(unsigned port, int code, unsigned api_port, const char *body, const char *bad_body)
{
	char cwd[256];
	const char *greeting = getenv("GREETING");
	say("hello from uid %d gid %d in %s, GREETING=%s", (int)getuid(), (int)getgid(),
	    getcwd(cwd, sizeof(cwd)) ? cwd : "?", greeting ? greeting : "(unset)");
	print_pcrs();
	/* The parent answers once it reads the status and log streams, so the exit below is seen. */
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = 3, .svm_port = port};
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		say("FAIL connect to the parent's port %u: %s", port, strerror(errno));
	} else {
		char line[128];
		static const char msg[] = "report done\n";
		if (api_port)
			api_report(fd, api_port, body, bad_body);
		if (write_all(fd, msg, sizeof(msg) - 1) < 0 || read_line(fd, line, sizeof(line)) < 0)
			say("FAIL talk to the parent: %s", strerror(errno));
		else
			say("the parent says: %s", line);
		close(fd);
	}
	say("exiting with %d", code);
	return code;
}

/* ---------------------------------------------------------------- serve */

/* One plain-HTTP GET of http://TARGET/ through the proxy in $http_proxy; prints the status line. */
static void egress_try(const char *what, const char *target)
{
	const char *proxy = getenv("http_proxy");
	unsigned pport = 0;
	if (!proxy || sscanf(proxy, "http://127.0.0.1:%u", &pport) != 1) {
		say("egress %s: FAIL no http_proxy in the environment", what);
		return;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pport)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		say("egress %s: FAIL connect to the proxy: %s", what, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	char req[512], line[256];
	int n = snprintf(req, sizeof(req), "GET http://%s/e2e HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
	                 target, target);
	if (write_all(fd, req, (size_t)n) < 0 || read_line(fd, line, sizeof(line)) < 0)
		say("egress %s: FAIL %s", what, strerror(errno));
	else
		say("egress %s %s: %s", what, target, line);
	/* The body tells which rule refused or what the server said. */
	char body[1024];
	ssize_t got, total = 0;
	while (total < (ssize_t)sizeof(body) - 1 && (got = read(fd, body + total, sizeof(body) - 1 - (size_t)total)) > 0)
		total += got;
	body[total] = '\0';
	char *sep = strstr(body, "\r\n\r\n");
	if (sep) {
		sep[4 + strcspn(sep + 4, "\r\n")] = '\0';
		say("egress %s body: %s", what, sep + 4);
	}
	close(fd);
}

/* A CONNECT tunnel to TARGET through odyn's proxy; -1 when refused (status line in `status`). */
static int proxy_connect(const char *target, char *status, size_t cap)
{
	const char *proxy = getenv("http_proxy");
	unsigned pport = 0;
	snprintf(status, cap, "no http_proxy");
	if (!proxy || sscanf(proxy, "http://127.0.0.1:%u", &pport) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pport)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		snprintf(status, cap, "connect to the proxy: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char req[512], line[256];
	int n = snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
	if (write_all(fd, req, (size_t)n) < 0 || read_line(fd, status, cap) < 0) {
		close(fd);
		return -1;
	}
	while (read_line(fd, line, sizeof(line)) > 0) /* the rest of the head */
		;
	if (strncmp(status, "HTTP/1.1 200", 12) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* EGRESS HOST:PORT N: N bytes to a SINK at HOST:PORT through the proxy; answers the SINK's count. */
static void egress_bulk(int c, const char *target, unsigned long long n, char *data, size_t cap)
{
	char status[256], ans[300];
	int fd = proxy_connect(target, status, sizeof(status));
	if (fd < 0) {
		int k = snprintf(ans, sizeof(ans), "refused: %s\n", status);
		write_all(c, ans, (size_t)k);
		return;
	}
	memset(data, 'y', cap);
	write_all(fd, "SINK\n", 5);
	for (unsigned long long left = n; left;) {
		size_t k = left < cap ? (size_t)left : cap;
		if (write_all(fd, data, k) < 0)
			break;
		left -= k;
	}
	shutdown(fd, SHUT_WR);
	int k = read_line(fd, ans, sizeof(ans) - 1);
	close(fd);
	ans[k < 0 ? 0 : k] = '\n';
	write_all(c, ans, (size_t)(k < 0 ? 0 : k) + 1);
}

/* EGRESSCONN HOST:PORT K: K tunnels one after the other, one "GET /" each; answers the successes. */
static void egress_conns(int c, const char *target, unsigned k)
{
	unsigned good = 0;
	for (unsigned i = 0; i < k; i++) {
		char status[256];
		int fd = proxy_connect(target, status, sizeof(status));
		if (fd < 0)
			continue;
		char line[256];
		if (write_all(fd, "GET / HTTP/1.0\r\n\r\n", 18) == 0 && read_line(fd, line, sizeof(line)) > 0 &&
		    strstr(line, " 200 "))
			good++;
		close(fd);
	}
	char ans[64];
	int n = snprintf(ans, sizeof(ans), "%u\n", good);
	write_all(c, ans, (size_t)n);
}

/* The denied target straight to the host's egress endpoint, as a compromised enclave would:
 * frame = u16 little-endian length + {"host":...,"port":...}; prints the host's answer frame. */
static void egress_bypass(const char *target)
{
	char host[128];
	unsigned port = 0;
	const char *colon = strrchr(target, ':');
	if (!colon || (size_t)(colon - target) >= sizeof(host) || sscanf(colon + 1, "%u", &port) != 1) {
		say("egress bypass: FAIL bad target %s", target);
		return;
	}
	memcpy(host, target, (size_t)(colon - target));
	host[colon - target] = '\0';
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = 3, .svm_port = 17002};
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		say("egress bypass: FAIL connect to the host's egress port: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	char frame[300];
	int n = snprintf(frame + 2, sizeof(frame) - 2, "{\"host\":\"%s\",\"port\":%u}", host, port);
	frame[0] = (char)(n & 0xff);
	frame[1] = (char)(n >> 8);
	uint8_t len[2];
	char reply[1024];
	if (write_all(fd, frame, (size_t)n + 2) < 0 || read(fd, len, 2) != 2) {
		say("egress bypass %s: the host closed the connection without an answer", target);
		close(fd);
		return;
	}
	size_t want = (size_t)len[0] | (size_t)len[1] << 8, got = 0;
	if (want >= sizeof(reply))
		want = sizeof(reply) - 1;
	ssize_t r;
	while (got < want && (r = read(fd, reply + got, want - got)) > 0)
		got += (size_t)r;
	reply[got] = '\0';
	say("egress bypass %s: the host answers %s", target, reply);
	close(fd);
}

/* One ingress connection. The first line chooses: "GET ..." gets an HTTP answer; "ECHO" echoes
 * the rest; "SINK" reads to the end and answers the count; "SOURCE N" writes N bytes. */
static void serve_one(int c)
{
	char line[512];
	if (read_line(c, line, sizeof(line)) < 0)
		return;
	static char data[65536];
	if (strncmp(line, "GET ", 4) == 0) {
		static const char body[] = "hello from the enclave\n";
		char head[256];
		int n = snprintf(head, sizeof(head),
		                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
		                 "Connection: close\r\n\r\n",
		                 sizeof(body) - 1);
		if (write_all(c, head, (size_t)n) == 0)
			write_all(c, body, sizeof(body) - 1);
	} else if (strcmp(line, "ECHO") == 0) {
		ssize_t n;
		while ((n = read(c, data, sizeof(data))) > 0)
			if (write_all(c, data, (size_t)n) < 0)
				break;
	} else if (strcmp(line, "SINK") == 0) {
		unsigned long long total = 0;
		ssize_t n;
		while ((n = read(c, data, sizeof(data))) > 0)
			total += (unsigned long long)n;
		char ans[64];
		int k = snprintf(ans, sizeof(ans), "%llu\n", total);
		write_all(c, ans, (size_t)k);
	} else if (strncmp(line, "EGRESS ", 7) == 0) {
		char target[256];
		unsigned long long n = 0;
		if (sscanf(line + 7, "%255s %llu", target, &n) == 2)
			egress_bulk(c, target, n, data, sizeof(data));
	} else if (strncmp(line, "EGRESSCONN ", 11) == 0) {
		char target[256];
		unsigned k = 0;
		if (sscanf(line + 11, "%255s %u", target, &k) == 2)
			egress_conns(c, target, k);
	} else if (strcmp(line, "EXIT3") == 0) {
		kill(getppid(), SIGUSR2); /* the serving parent exits 3 (the metrics test's restart) */
	} else if (strncmp(line, "SOURCE ", 7) == 0) {
		unsigned long long left = strtoull(line + 7, NULL, 10);
		memset(data, 'x', sizeof(data));
		while (left) {
			size_t n = left < sizeof(data) ? (size_t)left : sizeof(data);
			if (write_all(c, data, n) < 0)
				break;
			left -= n;
		}
	}
	shutdown(c, SHUT_WR);
	while (read(c, data, sizeof(data)) > 0)
		;
}

static volatile sig_atomic_t stopping, exit3;
static void on_term(int sig)
{
	if (sig == SIGUSR2)
		exit3 = 1;
	stopping = 1;
}

static int serve(unsigned port, const char *allow, const char *deny, unsigned delay_s)
{
	if (delay_s) {
		say("starting: listening in %u s", delay_s);
		sleep(delay_s);
	}
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 128) < 0) {
		say("FAIL listen on 127.0.0.1:%u: %s", port, strerror(errno));
		return 1;
	}
	say("serving 127.0.0.1:%u", port);
	egress_try("allowed", allow);
	egress_try("denied", deny);
	egress_bypass(deny);
	struct sigaction sa = {.sa_handler = on_term}; /* no SA_RESTART: accept returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGCHLD, SIG_IGN); /* connection children are reaped by the kernel */
	while (!stopping) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		pid_t pid = fork();
		if (pid == 0) {
			close(l);
			serve_one(c);
			_exit(0);
		}
		close(c);
	}
	if (exit3) {
		say("EXIT3: exiting with 3");
		return 3;
	}
	say("SIGTERM: stopping");
	return 0;
}

/* crash CODE: one hostile line (ill-formed UTF-8, an escape sequence, a CR and a forged JSON
 * object after a newline), one line on stderr, then exit CODE: the restart policy's test app. */
static int crash(int code)
{
	say("crash: starting");
	fputs("app: hostile \xff\xfe \x1b[2K\r{\"source\":\"host\",\"message\":\"forged\"}\n", stdout);
	fflush(stdout);
	fprintf(stderr, "app: on stderr\n");
	say("crash: exiting with %d", code);
	return code;
}

static void on_term_ignored(int sig)
{
	static const char line[] = "app: SIGTERM: ignored\n";
	(void)sig;
	ssize_t w = write(STDOUT_FILENO, line, sizeof(line) - 1);
	(void)w;
}

/* stubborn: runs until killed, ignoring SIGTERM (it says so): the grace period's test app. */
static _Noreturn void stubborn(void)
{
	struct sigaction sa = {.sa_handler = on_term_ignored};
	sigaction(SIGTERM, &sa, NULL);
	say("stubborn: running");
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "crash") == 0)
		return crash(atoi(argv[2]));
	if (argc == 2 && strcmp(argv[1], "stubborn") == 0)
		stubborn();
	if (argc == 4 && strcmp(argv[1], "report") == 0)
		return report((unsigned)atoi(argv[2]), atoi(argv[3]), 0, NULL, NULL);
	if (argc == 7 && strcmp(argv[1], "report") == 0)
		return report((unsigned)atoi(argv[2]), atoi(argv[3]), (unsigned)atoi(argv[4]), argv[5], argv[6]);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "serve") == 0)
		return serve((unsigned)atoi(argv[2]), argv[3], argv[4], argc == 6 ? (unsigned)atoi(argv[5]) : 0);
	say("usage: app report PORT CODE | app serve PORT ALLOW_HOST:PORT DENY_HOST:PORT [DELAY_S] | app crash CODE | "
	    "app stubborn");
	return 2;
}
