/* test_relay: the relay (common/relay.c) between a TLS end and a plain end, driven step by step
 * on one event loop with socket pairs, so the interleavings that matter are forced rather than
 * hoped for: the plain side full while TLS input is already buffered, back-pressure both ways. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire/relay.h"
#include "wire/tls.h"
#include "../harness.h"

/* A self-signed P-256 certificate and its key, written as PEM files into dir. */
static bool write_cert(const char *dir, char *cert_path, char *key_path, size_t n)
{
	snprintf(cert_path, n, "%s/cert.pem", dir);
	snprintf(key_path, n, "%s/key.pem", dir);
	EVP_PKEY *key = EVP_EC_gen("prime256v1");
	X509 *x = X509_new();
	bool ok = false;
	if (!key || !x)
		goto out;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, key);
	if (!X509_sign(x, key, EVP_sha256()))
		goto out;
	FILE *fc = fopen(cert_path, "w"), *fk = fopen(key_path, "w");
	ok = fc && fk && PEM_write_X509(fc, x) && PEM_write_PrivateKey(fk, key, NULL, NULL, 0, NULL, NULL);
	if (fc)
		fclose(fc);
	if (fk)
		fclose(fk);
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return ok;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* The fixture: client <-> [tls_fd  relay  plain_fd] <-> backend. The client is an OpenSSL client
 * on a non-blocking socket, stepped between turns of the loop. */
struct fixture {
	struct evloop *loop;
	struct relay_list list;
	struct tls_server *server;
	SSL_CTX *client_ctx;
	SSL *client;
	int client_fd, backend_fd;
};

static void fixture_free(struct fixture *f)
{
	relay_list_close_all(&f->list);
	if (f->loop)
		evloop_run_once(f->loop, 0, NULL); /* runs the deferred frees */
	evloop_free(f->loop);
	SSL_free(f->client);
	SSL_CTX_free(f->client_ctx);
	tls_server_free(f->server);
	if (f->client_fd >= 0)
		close(f->client_fd);
	if (f->backend_fd >= 0)
		close(f->backend_fd);
}

/* Turns the loop a few times (socket pairs deliver at once; each turn waits at most 1 ms). */
static void settle(struct fixture *f)
{
	for (int i = 0; i < 10; i++)
		evloop_run_once(f->loop, 1, NULL);
}

static bool fixture_new(struct test_ctx *t, struct fixture *f, int plain_sndbuf)
{
	*f = (struct fixture){.client_fd = -1, .backend_fd = -1};
	char cert[512], key[512];
	if (!write_cert(test_tmpdir(t), cert, key, sizeof(cert)))
		return false;
	struct err *e = NULL;
	if (evloop_new(&f->loop, &e) < 0 || tls_server_new(cert, key, &f->server, &e) < 0) {
		err_free(&e);
		return false;
	}
	int a[2], b[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, b) < 0)
		return false;
	f->client_fd = a[0];
	f->backend_fd = b[1];
	set_nonblock(a[0]);
	set_nonblock(a[1]);
	set_nonblock(b[0]);
	set_nonblock(b[1]);
	if (plain_sndbuf > 0)
		setsockopt(b[0], SOL_SOCKET, SO_SNDBUF, &plain_sndbuf, sizeof(plain_sndbuf));
	if (relay_start_tls(f->loop, a[1], tls_conn_new(f->server), b[0], &f->list, &e) < 0) {
		err_free(&e);
		return false;
	}
	f->client_ctx = SSL_CTX_new(TLS_client_method());
	f->client = SSL_new(f->client_ctx);
	SSL_set_fd(f->client, f->client_fd);
	SSL_set_connect_state(f->client);
	for (int i = 0; i < 200; i++) {
		int r = SSL_do_handshake(f->client);
		if (r == 1)
			return true;
		int why = SSL_get_error(f->client, r);
		if (why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE)
			return false;
		evloop_run_once(f->loop, 20, &e);
		err_free(&e);
		e = NULL;
	}
	return false;
}

/* One scenario: the client sends `total` bytes as small records (several whole records per raw
 * read of the relay) while the backend reads nothing, then (then_close) ends its stream with
 * close_notify and a half-close; then the backend reads. Returns the bytes that arrived intact
 * and whether the backend saw the end of the stream after them. */
static size_t buffered_then_drained(struct test_ctx *t, size_t total, bool then_close, bool *eof_seen)
{
	struct fixture f;
	size_t received = 0;
	if (!fixture_new(t, &f, 4096)) {
		fixture_free(&f);
		return 0;
	}
	enum { RECORD = 700 };
	unsigned char *data = malloc(total), *got = calloc(1, total + 1);
	for (size_t i = 0; i < total; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	size_t sent = 0;
	for (int turn = 0; sent < total && turn < 5000; turn++) {
		size_t n = total - sent < RECORD ? total - sent : RECORD;
		int k = SSL_write(f.client, data + sent, (int)n);
		if (k > 0)
			sent += (size_t)k;
		else
			evloop_run_once(f.loop, 5, NULL);
	}
	if (then_close) {
		SSL_shutdown(f.client);
		shutdown(f.client_fd, SHUT_WR);
	}
	settle(&f);
	*eof_seen = false;
	for (int quiet = 0; !*eof_seen && quiet < 100;) {
		ssize_t k = recv(f.backend_fd, got + received, total + 1 - received, 0);
		if (k > 0) {
			received += (size_t)k;
			quiet = 0;
		} else if (k == 0) {
			*eof_seen = true;
		} else {
			quiet++;
			if (!then_close && received == total)
				break;
		}
		evloop_run_once(f.loop, 10, NULL);
	}
	if (sent != total || received > total || memcmp(got, data, received) != 0)
		received = 0;
	free(data);
	free(got);
	fixture_free(&f);
	return received;
}

/* The relay's plain side fills while whole records wait in its TLS buffer and the client's
 * socket is already empty: no readiness event will announce that input, so the relay must go
 * back to it itself once the plain side drains. Totals from a few records to a few TLS reads'
 * worth, so one of them leaves the buffer in exactly that state whatever the kernel's socket
 * buffer sizes are. */
TEST(tls_input_buffered_while_plain_side_is_full)
{
	for (size_t total = 2000; total <= 80000; total += 3100) {
		bool eof;
		size_t got = buffered_then_drained(t, total, false, &eof);
		if (got != total) {
			test_fail(t, __FILE__, __LINE__, "%zu bytes sent, %zu arrived", total, got);
			break;
		}
	}
}

/* The same with the client ending its stream right after its last record: every byte still
 * arrives, then the end of stream (the half-close passed on), in that order. */
TEST(tls_close_after_buffered_input)
{
	for (size_t total = 2000; total <= 80000; total += 3100) {
		bool eof;
		size_t got = buffered_then_drained(t, total, true, &eof);
		if (got != total || !eof) {
			test_fail(t, __FILE__, __LINE__, "%zu bytes sent, %zu arrived, %s", total, got,
			          eof ? "then the end of stream" : "no end of stream");
			break;
		}
	}
}

/* relay_start_connecting (issue 14, item 1): the queue connects one client at a time to its
 * destination; while the connect waits on a listener whose backlog is full nothing blocks and
 * nothing of the clients is read, and the deadline closes each. Against a listener that accepts,
 * every queued client is connected in turn and relayed. */
static int connect_to(void *ctx, bool *in_progress, struct err **err)
{
	return transport_connect_start(ctx, in_progress, err);
}

static int stuck_listener(int *lfd, struct transport_addr *target, int fill[2])
{
	struct err *e = NULL;
	struct transport_addr any;
	if (transport_parse("tcp:127.0.0.1:0", &any, &e) < 0 || (*lfd = transport_listen(&any, 1, &e)) < 0)
		return -1;
	uint32_t port = 0;
	transport_local_port(*lfd, &port, &e);
	char text[64];
	snprintf(text, sizeof(text), "tcp:127.0.0.1:%u", port);
	transport_parse(text, target, &e);
	/* Backlog 1 holds two finished handshakes; a third SYN is dropped. */
	for (int i = 0; i < 2; i++) {
		bool in_progress;
		fill[i] = transport_connect_start(target, &in_progress, &e);
		struct pollfd p = {.fd = fill[i], .events = POLLOUT};
		poll(&p, 1, 5000);
	}
	err_free(&e);
	return 0;
}

/* Runs the loop while accepting up to max connections on lfd into peers and reading what they
 * receive, until want bytes came (10 s bound); returns how many were accepted, *total the bytes. */
static int accept_and_read(struct evloop *loop, int lfd, int *peers, int max, size_t want, size_t *total)
{
	struct err *e = NULL;
	int np = 0;
	for (int i = 0; i < 500 && *total < want; i++) {
		evloop_run_once(loop, 20, &e);
		int pfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
		if (pfd >= 0 && np < max)
			peers[np++] = pfd;
		else if (pfd >= 0)
			close(pfd);
		for (int k = 0; k < np; k++) {
			char got[8];
			ssize_t n = read(peers[k], got, sizeof(got));
			if (n > 0)
				*total += (size_t)n;
		}
	}
	err_free(&e);
	return np;
}

TEST(relay_connecting_bounded_then_relays)
{
	struct evloop *loop = NULL;
	struct err *e = NULL;
	REQUIRE(evloop_new(&loop, &e) == 0);
	int lfd, fill[2];
	struct transport_addr target;
	REQUIRE(stuck_listener(&lfd, &target, fill) == 0);
	int sp[3][2];
	struct relay_list list = {0};
	struct relay_queue q;
	relay_queue_init(&q, 0, "it listens");
	for (int i = 0; i < 3; i++) {
		REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp[i]) == 0);
		REQUIRE(relay_start_connecting(loop, sp[i][0], NULL, connect_to, NULL, &target, 300, "test", &q, &list,
		                               &e) == 0);
		REQUIRE(write(sp[i][1], "x", 1) == 1);
	}
	CHECK_INT_EQ(q.n, 3);
	CHECK(q.in_flight); /* one connect under way, two clients queued behind it */
	for (int i = 0; i < 500 && list.n > 0; i++)
		evloop_run_once(loop, 20, &e);
	CHECK_INT_EQ(list.n, 0);
	CHECK_INT_EQ(q.n, 0);
	CHECK(!q.in_flight);
	for (int i = 0; i < 3; i++) {
		char c;
		ssize_t rd = read(sp[i][1], &c, 1); /* closed; "x" was never taken (unread data: a reset) */
		CHECK(rd == 0 || (rd < 0 && errno == ECONNRESET));
		close(sp[i][1]);
	}
	close(fill[0]);
	close(fill[1]);
	close(lfd);

	/* An accepting peer: three queued clients, each connected in turn, bytes flow. */
	struct transport_addr any;
	REQUIRE(transport_parse("tcp:127.0.0.1:0", &any, &e) == 0);
	int lfd2 = transport_listen(&any, 16, &e);
	REQUIRE(lfd2 >= 0);
	uint32_t port = 0;
	REQUIRE(transport_local_port(lfd2, &port, &e) == 0);
	char text[64];
	snprintf(text, sizeof(text), "tcp:127.0.0.1:%u", port);
	REQUIRE(transport_parse(text, &target, &e) == 0);
	for (int i = 0; i < 3; i++) {
		REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp[i]) == 0);
		REQUIRE(relay_start_connecting(loop, sp[i][0], NULL, connect_to, NULL, &target, 5000, "test", &q, &list,
		                               &e) == 0);
		REQUIRE(write(sp[i][1], "hello", 5) == 5);
	}
	int peers[3] = {-1, -1, -1};
	size_t total = 0;
	int np = accept_and_read(loop, lfd2, peers, 3, 15, &total);
	CHECK_INT_EQ(np, 3);
	CHECK_INT_EQ(total, 15);
	CHECK_INT_EQ(q.n, 0);
	relay_list_close_all(&list);
	for (int k = 0; k < np; k++)
		close(peers[k]);
	for (int i = 0; i < 3; i++)
		close(sp[i][1]);
	close(lfd2);
	evloop_free(loop);
	err_free(&e);
}

/* A free 127.0.0.1 port, nothing listening on it. */
static int closed_port(struct transport_addr *target)
{
	struct err *e = NULL;
	struct transport_addr any;
	if (transport_parse("tcp:127.0.0.1:0", &any, &e) < 0)
		return -1;
	int fd = transport_listen(&any, 1, &e);
	uint32_t port = 0;
	transport_local_port(fd, &port, &e);
	close(fd);
	char text[64];
	snprintf(text, sizeof(text), "tcp:127.0.0.1:%u", port);
	int r = transport_parse(text, target, &e);
	err_free(&e);
	return r;
}

/* n clients (socketpairs: the relay gets [0], the test keeps [1]) queued to target, each having
 * sent `first`; 0, or -1 when one could not be started. */
static int start_clients(struct evloop *loop, struct transport_addr *target, int timeout_ms, struct relay_queue *q,
                         struct relay_list *list, int sp[][2], int n, const char *first)
{
	struct err *e = NULL;
	for (int i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp[i]) < 0 ||
		    relay_start_connecting(loop, sp[i][0], NULL, connect_to, NULL, target, timeout_ms, "test", q, list,
		                           &e) < 0 ||
		    write(sp[i][1], first, strlen(first)) != (ssize_t)strlen(first)) {
			err_free(&e);
			return -1;
		}
	}
	return 0;
}

/* Holding (issue 16, item 5): clients of a destination that refuses (an app still starting) wait,
 * past their connect timeout, and are relayed once it listens; nothing is read from them before. */
TEST(relay_holds_refused_until_listening)
{
	struct evloop *loop = NULL;
	struct err *e = NULL;
	REQUIRE(evloop_new(&loop, &e) == 0);
	struct transport_addr target;
	REQUIRE(closed_port(&target) == 0);
	struct relay_list list = {0};
	struct relay_queue q;
	relay_queue_init(&q, 5000, "it listens");
	int sp[3][2];
	REQUIRE(start_clients(loop, &target, 100, &q, &list, sp, 3, "hello") == 0);
	/* Refused for 400 ms, four times the connect timeout: all held. */
	for (int i = 0; i < 20; i++)
		evloop_run_once(loop, 20, &e);
	CHECK(q.holding);
	CHECK_INT_EQ(q.n, 3);
	CHECK_INT_EQ(list.n, 3);
	int lfd = transport_listen(&target, 16, &e);
	REQUIRE(lfd >= 0);
	int peers[3] = {-1, -1, -1};
	size_t total = 0;
	int np = accept_and_read(loop, lfd, peers, 3, 15, &total);
	CHECK_INT_EQ(np, 3);
	CHECK_INT_EQ(total, 15);
	CHECK_INT_EQ(q.n, 0);
	CHECK(!q.holding);
	relay_list_close_all(&list);
	relay_queue_stop(&q);
	for (int k = 0; k < np; k++)
		close(peers[k]);
	for (int i = 0; i < 3; i++)
		close(sp[i][1]);
	close(lfd);
	evloop_free(loop);
	err_free(&e);
}

/* A destination that never listens: after hold_ms the held clients are closed, and a later one is
 * closed at once (no hold again) until a connect is accepted. */
TEST(relay_hold_gives_up)
{
	struct evloop *loop = NULL;
	struct err *e = NULL;
	REQUIRE(evloop_new(&loop, &e) == 0);
	struct transport_addr target;
	REQUIRE(closed_port(&target) == 0);
	struct relay_list list = {0};
	struct relay_queue q;
	relay_queue_init(&q, 300, "it listens");
	int sp[2][2];
	REQUIRE(start_clients(loop, &target, 5000, &q, &list, sp, 2, "") == 0);
	for (int i = 0; i < 250 && list.n > 0; i++)
		evloop_run_once(loop, 20, &e);
	CHECK_INT_EQ(list.n, 0);
	CHECK_INT_EQ(q.n, 0);
	CHECK(q.gave_up);
	CHECK(!q.holding);
	int late[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, late) == 0);
	REQUIRE(relay_start_connecting(loop, late[0], NULL, connect_to, NULL, &target, 5000, "test", &q, &list, &e) ==
	        0);
	evloop_run_once(loop, 20, &e);
	CHECK_INT_EQ(list.n, 0); /* refused at once: not held */
	CHECK(!q.holding);
	relay_queue_stop(&q);
	for (int i = 0; i < 2; i++)
		close(sp[i][1]);
	close(late[1]);
	evloop_free(loop);
	err_free(&e);
}

/* One client of a holding queue (5 s) whose destination is a listener on a free port. */
struct one_client {
	struct evloop *loop;
	struct transport_addr target;
	int lfd;
	struct relay_list list;
	struct relay_queue q;
	int sp[2]; /* sp[0] the relay's end A, sp[1] the client */
};

static int one_client_open(struct one_client *c)
{
	struct err *e = NULL;
	*c = (struct one_client){.lfd = -1, .sp = {-1, -1}};
	relay_queue_init(&c->q, 5000, "it listens");
	bool ok = evloop_new(&c->loop, &e) == 0 && closed_port(&c->target) == 0 &&
	          (c->lfd = transport_listen(&c->target, 16, &e)) >= 0 &&
	          socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c->sp) == 0;
	err_free(&e);
	return ok ? 0 : -1;
}

static void one_client_close(struct one_client *c)
{
	relay_list_close_all(&c->list);
	relay_queue_stop(&c->q);
	close(c->sp[1]);
	close(c->lfd);
	evloop_free(c->loop);
}

/* Paused (the host while the enclave boots): nothing is connected, even to a listener, and
 * nothing read, until resumed; then the clients are relayed. */
TEST(relay_paused_until_resumed)
{
	struct one_client c;
	REQUIRE(one_client_open(&c) == 0);
	struct err *e = NULL;
	relay_queue_pause(&c.q, "it is up");
	REQUIRE(relay_start_connecting(c.loop, c.sp[0], NULL, connect_to, NULL, &c.target, 100, "test", &c.q, &c.list,
	                               &e) == 0);
	REQUIRE(write(c.sp[1], "hello", 5) == 5);
	for (int i = 0; i < 15; i++)
		evloop_run_once(c.loop, 20, &e);
	CHECK(c.q.holding);
	CHECK(!c.q.in_flight);
	CHECK_INT_EQ(c.list.n, 1);
	CHECK(accept4(c.lfd, NULL, NULL, SOCK_NONBLOCK) < 0); /* not connected */
	relay_queue_resume(&c.q);
	int peer = -1;
	char got[8];
	ssize_t n = 0;
	for (int i = 0; i < 500 && n <= 0; i++) {
		evloop_run_once(c.loop, 20, &e);
		if (peer < 0)
			peer = accept4(c.lfd, NULL, NULL, SOCK_NONBLOCK);
		if (peer >= 0)
			n = read(peer, got, sizeof(got));
	}
	CHECK_INT_EQ(n, 5);
	CHECK(!c.q.holding);
	if (peer >= 0)
		close(peer);
	one_client_close(&c);
	err_free(&e);
}

/* A connect with a handshake after it (relay_start_connecting's step, as the emulator's vsock
 * backend answers once the guest accepted): the target's "go\n" line connects and what follows it
 * is relayed; a close before it refuses (held and retried); the client is not read meanwhile. */
static int await_go(void *ctx, int fd, uint32_t *events, struct err **err)
{
	(void)ctx;
	if ((*events & EPOLLOUT) && transport_connect_step(fd, *events, err) < 0)
		return -1;
	char b[3];
	ssize_t n = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
	if ((n < 0 && errno == EAGAIN) || (n > 0 && n < 3)) {
		*events = EPOLLIN;
		return 0;
	}
	if (n <= 0)
		return err_set(err, ECONNREFUSED, "closed before its answer");
	if (memcmp(b, "go\n", 3) != 0 || recv(fd, b, sizeof(b), 0) != 3)
		return err_set(err, EPROTO, "bad answer");
	*events = 0;
	return 0;
}

/* Runs the loop until lfd has a connection to accept (10 s bound); -1 when none came. */
static int loop_accept(struct evloop *loop, int lfd)
{
	struct err *e = NULL;
	int peer = -1;
	for (int i = 0; i < 500 && peer < 0; i++) {
		evloop_run_once(loop, 20, &e);
		peer = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	}
	err_free(&e);
	return peer;
}

TEST(relay_connecting_with_a_step)
{
	struct one_client c;
	REQUIRE(one_client_open(&c) == 0);
	struct err *e = NULL;
	REQUIRE(relay_start_connecting(c.loop, c.sp[0], NULL, connect_to, await_go, &c.target, 5000, "test", &c.q,
	                               &c.list, &e) == 0);
	REQUIRE(write(c.sp[1], "hello", 5) == 5);
	/* The socket connected, the answer not given: still connecting, nothing read from the client. */
	int first = loop_accept(c.loop, c.lfd);
	REQUIRE(first >= 0);
	for (int i = 0; i < 10; i++)
		evloop_run_once(c.loop, 20, &e);
	CHECK(c.q.in_flight);
	char got[16];
	CHECK(read(first, got, sizeof(got)) < 0 && errno == EAGAIN);
	/* Closed before the answer: refused, so held and tried again. */
	close(first);
	int second = loop_accept(c.loop, c.lfd);
	REQUIRE(second >= 0);
	CHECK(c.q.holding);
	REQUIRE(write(second, "go\nworld", 8) == 8);
	ssize_t n = 0, m = 0;
	for (int i = 0; i < 500 && (n <= 0 || m <= 0); i++) {
		evloop_run_once(c.loop, 20, &e);
		if (n <= 0)
			n = read(second, got, sizeof(got));
		if (m <= 0)
			m = read(c.sp[1], got + 8, 8);
	}
	CHECK_INT_EQ(n, 5);
	CHECK(memcmp(got, "hello", 5) == 0);
	CHECK_INT_EQ(m, 5);
	CHECK(memcmp(got + 8, "world", 5) == 0);
	CHECK(!c.q.in_flight && !c.q.holding);
	close(second);
	one_client_close(&c);
	err_free(&e);
}
