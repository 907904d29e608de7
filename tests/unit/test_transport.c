/* Unit tests for wire/transport: address parsing (good and bad), listen
 * and connect over unix and tcp, and the event loop's deferred frees. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

#include "wire/transport.h"
#include "tests/harness.h"

TEST(transport_parse_forms)
{
	struct transport_addr a;
	struct err *e = NULL;
	REQUIRE(transport_parse("vsock:3:17002", &a, &e) == 0);
	CHECK_INT_EQ(a.family, AF_VSOCK);
	CHECK_INT_EQ(((struct sockaddr_vm *)&a.sa)->svm_cid, 3);
	CHECK_INT_EQ(((struct sockaddr_vm *)&a.sa)->svm_port, 17002);
	CHECK_STR_EQ(a.text, "vsock:3:17002");
	REQUIRE(transport_parse("vsock:any:17000", &a, &e) == 0);
	CHECK_INT_EQ(((struct sockaddr_vm *)&a.sa)->svm_cid, VMADDR_CID_ANY);
	CHECK_STR_EQ(a.text, "vsock:any:17000");
	REQUIRE(transport_parse("vsock:4294967295:1", &a, &e) == 0);
	CHECK_STR_EQ(a.text, "vsock:any:1");
	REQUIRE(transport_parse("unix:/tmp/x.sock", &a, &e) == 0);
	CHECK_INT_EQ(a.family, AF_UNIX);
	REQUIRE(transport_parse("tcp:127.0.0.1:80", &a, &e) == 0);
	CHECK_INT_EQ(a.family, AF_INET);
	REQUIRE(transport_parse("tcp:localhost:0", &a, &e) == 0);
	CHECK_STR_EQ(a.text, "tcp:127.0.0.1:0");
	REQUIRE(transport_parse("tcp:[::1]:443", &a, &e) == 0);
	CHECK_INT_EQ(a.family, AF_INET6);
	CHECK_STR_EQ(a.text, "tcp:[::1]:443");
}

TEST(transport_parse_bad)
{
	static const struct {
		const char *in, *msg;
	} cases[] = {
	    {"", "unknown transport"},
	    {"udp:1.2.3.4:5", "unknown transport"},
	    {"vsock:3", "expected vsock:CID:PORT"},
	    {"vsock:x:1", "bad vsock CID"},
	    {"vsock:3:", "bad vsock port"},
	    {"vsock:3:4294967296", "bad vsock port"},
	    {"vsock:-1:5", "bad vsock CID"},
	    {"vsock:3:+5", "bad vsock port"},
	    {"unix:", "empty unix socket path"},
	    {"tcp:1.2.3.4", "expected tcp:HOST:PORT"},
	    {"tcp:1.2.3.4:65536", "bad tcp port"},
	    {"tcp:example.com:80", "names are not resolved"},
	    {"tcp:[::1:80", "bad IPv4 address"},
	    {"tcp:[zz]:80", "bad IPv6 address"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct transport_addr a;
		struct err *e = NULL;
		CHECK(transport_parse(cases[i].in, &a, &e) == -1);
		CHECK_ERR_CONTAINS(e, cases[i].msg);
		err_free(&e);
	}
	char longp[200];
	memset(longp, 'a', sizeof(longp));
	memcpy(longp, "unix:", 5);
	longp[sizeof(longp) - 1] = '\0';
	struct transport_addr a;
	struct err *e = NULL;
	CHECK(transport_parse(longp, &a, &e) == -1);
	CHECK_ERR_CONTAINS(e, "longer than");
	err_free(&e);
}

static void roundtrip(struct test_ctx *t, const char *text)
{
	struct transport_addr a;
	struct err *e = NULL;
	REQUIRE(transport_parse(text, &a, &e) == 0);
	int l = transport_listen(&a, 4, &e);
	REQUIRE(l >= 0);
	if (a.family == AF_INET) {
		uint32_t port;
		REQUIRE(transport_local_port(l, &port, &e) == 0);
		char t2[64];
		snprintf(t2, sizeof(t2), "tcp:127.0.0.1:%u", port);
		REQUIRE(transport_parse(t2, &a, &e) == 0);
	}
	int c = transport_connect(&a, false, &e);
	REQUIRE(c >= 0);
	int s = -1;
	for (int i = 0; i < 1000 && s < 0; i++)
		s = transport_accept(l, NULL, &e);
	REQUIRE(s >= 0);
	CHECK(write(c, "ping", 4) == 4);
	char b[8] = {0};
	int n = 0;
	for (int i = 0; i < 100000 && n <= 0; i++)
		n = (int)read(s, b, sizeof(b));
	CHECK_INT_EQ(n, 4);
	CHECK(memcmp(b, "ping", 4) == 0);
	close(c);
	close(s);
	close(l);
	transport_unlink(&a);
}

TEST(transport_unix_and_tcp_roundtrip)
{
	char p[256];
	snprintf(p, sizeof(p), "unix:%s/s", test_tmpdir(t));
	roundtrip(t, p);
	roundtrip(t, p); /* a stale socket file is replaced */
	roundtrip(t, "tcp:127.0.0.1:0");
}

TEST(transport_connect_refused_names_address)
{
	struct transport_addr a;
	struct err *e = NULL;
	char p[256];
	snprintf(p, sizeof(p), "unix:%s/none", test_tmpdir(t));
	REQUIRE(transport_parse(p, &a, &e) == 0);
	CHECK(transport_connect(&a, false, &e) == -1);
	CHECK_ERR_CONTAINS(e, "connect to unix:");
	CHECK_ERR_CONTAINS(e, "No such file");
	err_free(&e);
}

/* The event loop: a handler that frees another object of the same batch
 * must not make the loop touch freed memory (ASan watches). */
struct obj {
	struct ev_handler h;
	struct evloop *loop;
	int fd;
	struct obj *other;
	int *fired;
	bool dead;
};
static void obj_free(void *p)
{
	free(p);
}
static void on_obj(struct ev_handler *h, uint32_t ev)
{
	struct obj *o = (struct obj *)h;
	(void)ev;
	if (o->dead)
		return;
	(*o->fired)++;
	struct obj *both[2] = {o, o->other};
	for (int i = 0; i < 2; i++) {
		struct obj *x = both[i];
		if (x->dead)
			continue;
		x->dead = true;
		evloop_del(x->loop, x->fd);
		evloop_defer_free(x->loop, x, obj_free);
	}
}

TEST(evloop_defer_free_within_batch)
{
	struct evloop *loop;
	struct err *e = NULL;
	REQUIRE(evloop_new(&loop, &e) == 0);
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	int fired = 0;
	struct obj *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	*a = (struct obj){.h.fn = on_obj, .loop = loop, .fd = sv[0], .other = b, .fired = &fired};
	*b = (struct obj){.h.fn = on_obj, .loop = loop, .fd = sv[1], .other = a, .fired = &fired};
	REQUIRE(evloop_add(loop, sv[0], EPOLLOUT, &a->h, &e) == 0);
	REQUIRE(evloop_add(loop, sv[1], EPOLLOUT, &b->h, &e) == 0);
	REQUIRE(evloop_run_once(loop, 1000, &e) == 0);
	CHECK_INT_EQ(fired, 1);
	evloop_free(loop);
	close(sv[0]);
	close(sv[1]);
}

/* transport_connect_timed (issue 14, item 1): a connect to a listener whose backlog is full
 * gives up with ETIMEDOUT naming the address and the bound, instead of the kernel's minutes. */
TEST(transport_connect_timed_gives_up)
{
	struct err *e = NULL;
	struct transport_addr any, a;
	REQUIRE(transport_parse("tcp:127.0.0.1:0", &any, &e) == 0);
	int lfd = transport_listen(&any, 1, &e);
	REQUIRE(lfd >= 0);
	uint32_t port = 0;
	REQUIRE(transport_local_port(lfd, &port, &e) == 0);
	char text[64];
	snprintf(text, sizeof(text), "tcp:127.0.0.1:%u", port);
	REQUIRE(transport_parse(text, &a, &e) == 0);
	int fill[2];
	for (int i = 0; i < 2; i++) /* backlog 1 holds two finished handshakes */
		REQUIRE((fill[i] = transport_connect_timed(&a, 5000, &e)) >= 0);
	CHECK(transport_connect_timed(&a, 200, &e) < 0);
	CHECK(e && e->code == ETIMEDOUT);
	CHECK_ERR_CONTAINS(e, text);
	CHECK_ERR_CONTAINS(e, "not accepted within 200 ms");
	err_free(&e);
	close(fill[0]);
	close(fill[1]);
	close(lfd);
}

/* vsock ignores SO_SNDTIMEO and bounds a connect by its own option (2 s by default): the bound
 * given must hold there too (odyn's heartbeat and KMS tunnel connect over vsock). CID 1 with
 * nothing behind it leaves the connect unanswered on a host with vsock; where vsock is missing,
 * or CID 1 answers at once, there is nothing to measure and the test says so. */
TEST(transport_connect_timed_bounds_vsock_too)
{
	int probe = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0) {
		fprintf(stderr, "# no vsock here: nothing to measure\n");
		return;
	}
	close(probe);
	struct err *e = NULL;
	struct transport_addr a;
	REQUIRE(transport_parse("vsock:1:5599", &a, &e) == 0);
	int64_t t0 = time_monotonic_ms();
	int fd = transport_connect_timed(&a, 300, &e);
	int64_t took = time_monotonic_ms() - t0;
	if (fd >= 0 || (e && e->code != ETIMEDOUT && took < 300)) {
		fprintf(stderr, "# vsock CID 1 answers at once here: nothing to measure\n");
		if (fd >= 0)
			close(fd);
		err_free(&e);
		return;
	}
	CHECK(took < 1500);
	CHECK(e && e->code == ETIMEDOUT);
	CHECK_ERR_CONTAINS(e, "connect to vsock:1:5599: not accepted within 300 ms");
	err_free(&e);
}
