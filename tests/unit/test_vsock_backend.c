/* test_vsock_backend: the vsock backend driven through its real vhost-user socket by this test
 * playing QEMU and a guest: shared memfd memory, rings, eventfds; a forwarded unix port; and a
 * guest that sends hostile descriptors and headers (dropped, the backend carries on). */
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "runtime/internal.h"
#include "tests/harness.h"

#define MEM_SIZE  (1 << 20)
#define GPA       0x100000ull
#define NUM       8
#define GUEST_CID 21
#define BUF_SIZE  4096

struct ring {
	unsigned index;
	uint8_t *desc, *avail, *used;
	uint64_t buf_gpa; /* NUM buffers of BUF_SIZE, one per descriptor pair */
	uint16_t avail_idx, used_seen;
	int kick, call;
};

struct fake {
	int vu;
	uint8_t *mem;
	int memfd;
	struct ring rx, tx;
};

static int vu_send(int fd, uint32_t req, const void *payload, uint32_t size, int pass_fd)
{
	uint8_t msg[12 + 512];
	uint32_t flags = 1;
	memcpy(msg, &req, 4);
	memcpy(msg + 4, &flags, 4);
	memcpy(msg + 8, &size, 4);
	if (size)
		memcpy(msg + 12, payload, size);
	struct iovec iov = {msg, 12 + size};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (pass_fd >= 0) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	return sendmsg(fd, &mh, 0) == (ssize_t)(12 + size) ? 0 : -1;
}

/* Reads one reply; returns its payload size or -1. */
static int vu_reply(int fd, void *out, size_t max)
{
	uint8_t hdr[12];
	struct err *err = NULL;
	if (io_read_full(fd, hdr, 12, &err) != 12) {
		err_free(&err);
		return -1;
	}
	uint32_t size;
	memcpy(&size, hdr + 8, 4);
	if (size > max || io_read_full(fd, out, size, &err) != (ssize_t)size) {
		err_free(&err);
		return -1;
	}
	return (int)size;
}

static uint64_t u64_of(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static int ring_setup(struct fake *f, struct ring *r, unsigned index, uint64_t off)
{
	r->index = index;
	r->desc = f->mem + off;
	r->avail = f->mem + off + 0x1000;
	r->used = f->mem + off + 0x2000;
	r->buf_gpa = GPA + off + 0x3000;
	r->kick = eventfd(0, EFD_CLOEXEC);
	r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint32_t num[2] = {index, NUM};
	uint64_t addr[5] = {index, (uint64_t)(uintptr_t)r->desc, (uint64_t)(uintptr_t)r->used,
	                    (uint64_t)(uintptr_t)r->avail, 0};
	uint32_t base[2] = {index, 0}, enable[2] = {index, 1};
	uint64_t v = index;
	if (vu_send(f->vu, 8, num, 8, -1) || vu_send(f->vu, 9, addr, 40, -1) || vu_send(f->vu, 10, base, 8, -1) ||
	    vu_send(f->vu, 12, &v, 8, r->kick) || vu_send(f->vu, 13, &v, 8, r->call) ||
	    vu_send(f->vu, 18, enable, 8, -1))
		return -1;
	return 0;
}

static void put_desc(struct ring *r, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = r->desc + 16 * i;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void ring_publish(struct ring *r, uint16_t head)
{
	memcpy(r->avail + 4 + 2 * (r->avail_idx % NUM), &head, 2);
	r->avail_idx++;
	__atomic_store(((uint16_t *)(void *)(r->avail + 2)), &r->avail_idx, __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(r->kick, &one, 8) != 8)
		abort();
}

static uint16_t used_idx(struct ring *r)
{
	uint16_t v;
	__atomic_load((uint16_t *)(void *)(r->used + 2), &v, __ATOMIC_ACQUIRE);
	return v;
}

/* Waits (bounded) until the backend returned `n` more entries; false if it did not. */
static bool wait_used(struct ring *r, uint16_t n)
{
	uint16_t want = (uint16_t)(r->used_seen + n);
	for (int i = 0; i < 500 && used_idx(r) != want; i++) {
		struct pollfd p = {.fd = r->call, .events = POLLIN};
		poll(&p, 1, 10);
		uint64_t v;
		if (read(r->call, &v, 8) < 0) { /* drained */
		}
	}
	return used_idx(r) == want;
}

static uint8_t *gpa_ptr(struct fake *f, uint64_t gpa)
{
	return f->mem + (gpa - GPA);
}

/* A tx packet: header in descriptor 2*slot, payload in 2*slot+1. */
static void tx_send(struct fake *f, const struct vsock_hdr *h, const void *payload)
{
	struct ring *r = &f->tx;
	unsigned slot = r->avail_idx % (NUM / 2);
	uint64_t b = r->buf_gpa + (uint64_t)slot * BUF_SIZE;
	vsock_hdr_encode(h, gpa_ptr(f, b));
	if (h->len) {
		memcpy(gpa_ptr(f, b + 64), payload, h->len);
		put_desc(r, 2 * slot, b, VSOCK_HDR_SIZE, VRING_DESC_F_NEXT, (uint16_t)(2 * slot + 1));
		put_desc(r, 2 * slot + 1, b + 64, h->len, 0, 0);
	} else {
		put_desc(r, 2 * slot, b, VSOCK_HDR_SIZE, 0, 0);
	}
	ring_publish(r, (uint16_t)(2 * slot));
}

/* Gives the backend one writable rx buffer. */
static void rx_give(struct fake *f)
{
	struct ring *r = &f->rx;
	unsigned slot = r->avail_idx % NUM;
	put_desc(r, slot, r->buf_gpa + (uint64_t)slot * BUF_SIZE, BUF_SIZE, VRING_DESC_F_WRITE, 0);
	ring_publish(r, (uint16_t)slot);
}

/* Takes the next rx packet the backend wrote. */
static bool rx_take(struct fake *f, struct vsock_hdr *h, uint8_t *payload)
{
	struct ring *r = &f->rx;
	if (!wait_used(r, 1))
		return false;
	uint32_t id, len;
	memcpy(&id, r->used + 4 + 8 * (r->used_seen % NUM), 4);
	memcpy(&len, r->used + 8 + 8 * (r->used_seen % NUM), 4);
	r->used_seen++;
	if (id >= NUM || len < VSOCK_HDR_SIZE)
		return false;
	uint8_t *p = gpa_ptr(f, r->buf_gpa + (uint64_t)id * BUF_SIZE);
	struct err *err = NULL;
	if (vsock_hdr_parse(p, h, &err) < 0) {
		err_free(&err);
		return false;
	}
	if (payload && h->len)
		memcpy(payload, p + VSOCK_HDR_SIZE, h->len);
	return true;
}

static int unix_listen(const char *path)
{
	struct vsock_endpoint ep = {.unix_path = path};
	struct err *err = NULL;
	int fd = vsock_endpoint_listen(&ep, &err);
	err_free(&err);
	return fd;
}

static int unix_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int accept_wait(int lfd)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	if (poll(&p, 1, 5000) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static struct vsock_hdr guest_hdr(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t len)
{
	return (struct vsock_hdr){.src_cid = GUEST_CID,
	                          .dst_cid = 3,
	                          .src_port = src_port,
	                          .dst_port = dst_port,
	                          .len = len,
	                          .type = VSOCK_TYPE_STREAM,
	                          .op = op,
	                          .buf_alloc = 65536};
}

/* Connects as QEMU, negotiates, maps memory and sets up both rings. */
static bool fake_start(struct fake *f, const char *vhost_path)
{
	f->vu = unix_connect(vhost_path);
	if (f->vu < 0)
		return false;
	uint8_t reply[300];
	uint64_t feats = (1ull << 32) | (1ull << 30), proto = 1ull << 9;
	if (vu_send(f->vu, 1, NULL, 0, -1) || vu_reply(f->vu, reply, sizeof(reply)) != 8 || u64_of(reply) != feats)
		return false;
	if (vu_send(f->vu, 2, &feats, 8, -1) || vu_send(f->vu, 15, NULL, 0, -1) ||
	    vu_reply(f->vu, reply, sizeof(reply)) != 8 || !(u64_of(reply) & proto) || vu_send(f->vu, 16, &proto, 8, -1))
		return false;
	uint32_t cfg[3] = {0, 8, 0};
	if (vu_send(f->vu, 24, cfg, 12, -1) || vu_reply(f->vu, reply, sizeof(reply)) != 20 ||
	    u64_of(reply + 12) != GUEST_CID)
		return false;
	f->memfd = memfd_create("guest", MFD_CLOEXEC);
	if (f->memfd < 0 || ftruncate(f->memfd, MEM_SIZE) < 0)
		return false;
	f->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->mem == MAP_FAILED)
		return false;
	uint8_t table[8 + 32] = {1};
	uint64_t region[4] = {GPA, MEM_SIZE, (uint64_t)(uintptr_t)f->mem, 0};
	memcpy(table + 8, region, 32);
	if (vu_send(f->vu, 5, table, sizeof(table), f->memfd))
		return false;
	return ring_setup(f, &f->rx, 0, 0) == 0 && ring_setup(f, &f->tx, 1, 0x40000) == 0;
}

static void fake_stop(struct fake *f)
{
	if (f->vu >= 0)
		close(f->vu);
	struct ring *rs[] = {&f->rx, &f->tx};
	for (int i = 0; i < 2; i++) {
		if (rs[i]->kick > 0)
			close(rs[i]->kick);
		if (rs[i]->call > 0)
			close(rs[i]->call);
	}
	if (f->mem && f->mem != MAP_FAILED)
		munmap(f->mem, MEM_SIZE);
	if (f->memfd > 0)
		close(f->memfd);
}

/* Starts the backend with cfg and plays QEMU and the guest on it, with rx_buffers receive
 * buffers given; false (the failure recorded) when either does not come up. */
static bool backend_and_guest(struct test_ctx *t, const struct vsock_backend_config *cfg, struct vsock_backend **b,
                              struct fake *f, int rx_buffers)
{
	struct err *err = NULL;
	*f = (struct fake){.vu = -1, .memfd = -1};
	*b = NULL;
	if (vsock_backend_start(cfg, b, &err) < 0) {
		test_fail(t, __FILE__, __LINE__, "backend start: %s", err->msg);
		err_free(&err);
		return false;
	}
	if (!fake_start(f, cfg->vhost_socket)) {
		CHECK(!"vhost-user negotiation");
		return false;
	}
	for (int i = 0; i < rx_buffers; i++)
		rx_give(f);
	return true;
}

TEST(backend_carries_a_stream_and_survives_a_hostile_guest)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *vhost = xasprintf("%s/vhost.sock", dir), *port5000 = xasprintf("%s/p5000.sock", dir);
	_cleanup_close_ int lfd = unix_listen(port5000);
	REQUIRE(lfd >= 0);
	struct vsock_forward fw = {.port = 5000, .to = {.unix_path = port5000}};
	struct vsock_backend_config cfg = {
	    .vhost_socket = vhost, .guest_cid = GUEST_CID, .forwards = &fw, .n_forwards = 1};
	struct vsock_backend *b;
	struct fake f;
	if (!backend_and_guest(t, &cfg, &b, &f, 4))
		goto out;

	/* A connection to the forwarded port: REQUEST -> RESPONSE, the host listener accepts. */
	struct vsock_hdr h = guest_hdr(1111, 5000, VSOCK_OP_REQUEST, 0), got;
	tx_send(&f, &h, NULL);
	CHECK(rx_take(&f, &got, NULL) && got.op == VSOCK_OP_RESPONSE && got.dst_port == 1111 && got.src_port == 5000 &&
	      got.dst_cid == GUEST_CID && got.src_cid == 3 && got.buf_alloc > 0);
	_cleanup_close_ int host = accept_wait(lfd);
	REQUIRE(host >= 0);
	/* Guest to host. */
	h = guest_hdr(1111, 5000, VSOCK_OP_RW, 5);
	tx_send(&f, &h, "hello");
	char buf[64] = {0};
	struct err *e2 = NULL;
	CHECK(io_read_full(host, buf, 5, &e2) == 5 && memcmp(buf, "hello", 5) == 0);
	/* Host to guest. */
	CHECK(write(host, "world", 5) == 5);
	rx_give(&f);
	uint8_t payload[BUF_SIZE];
	CHECK(rx_take(&f, &got, payload) && got.op == VSOCK_OP_RW && got.len == 5 && memcmp(payload, "world", 5) == 0);

	/* Hostile descriptors on tx: outside memory, length overflowing, a loop. Each is returned
	 * used and counted as dropped. */
	struct ring *tx = &f.tx;
	uint16_t before = used_idx(tx);
	put_desc(tx, 0, GPA + MEM_SIZE - 8, 64, 0, 0);
	ring_publish(tx, 0);
	put_desc(tx, 1, GPA, 0xffffffffu, 0, 0);
	ring_publish(tx, 1);
	put_desc(tx, 2, tx->buf_gpa, 44, VRING_DESC_F_NEXT, 2);
	ring_publish(tx, 2);
	/* Hostile headers: a length past the buffers, an unknown op, another CID. */
	uint64_t hb = tx->buf_gpa + 2 * BUF_SIZE;
	h = guest_hdr(1111, 5000, VSOCK_OP_RW, 4000);
	vsock_hdr_encode(&h, gpa_ptr(&f, hb));
	put_desc(tx, 3, hb, VSOCK_HDR_SIZE + 10, 0, 0);
	ring_publish(tx, 3);
	h = guest_hdr(1111, 5000, 99, 0);
	vsock_hdr_encode(&h, gpa_ptr(&f, hb + 512));
	put_desc(tx, 4, hb + 512, VSOCK_HDR_SIZE, 0, 0);
	ring_publish(tx, 4);
	h = guest_hdr(1111, 5000, VSOCK_OP_RW, 3);
	h.src_cid = 99;
	vsock_hdr_encode(&h, gpa_ptr(&f, hb + 1024));
	put_desc(tx, 5, hb + 1024, VSOCK_HDR_SIZE + 3, 0, 0);
	ring_publish(tx, 5);
	tx->used_seen = before;
	CHECK(wait_used(tx, 6));
	tx->used_seen = used_idx(tx);
	struct vsock_backend_stats st;
	vsock_backend_stats(b, &st);
	CHECK_INT_EQ(st.dropped_packets, 6);

	/* The connection still works after all that. */
	h = guest_hdr(1111, 5000, VSOCK_OP_RW, 4);
	tx_send(&f, &h, "more");
	memset(buf, 0, sizeof(buf));
	CHECK(io_read_full(host, buf, 4, &e2) == 4 && memcmp(buf, "more", 4) == 0);
	/* A port nobody forwards: RST. */
	h = guest_hdr(2222, 6000, VSOCK_OP_REQUEST, 0);
	tx_send(&f, &h, NULL);
	rx_give(&f);
	CHECK(rx_take(&f, &got, NULL) && got.op == VSOCK_OP_RST && got.dst_port == 2222 && got.src_port == 6000);
	/* Guest shuts down both ways: the host sees end of stream, the guest gets RST. */
	h = guest_hdr(1111, 5000, VSOCK_OP_SHUTDOWN, 0);
	h.flags = VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;
	tx_send(&f, &h, NULL);
	CHECK(read(host, buf, sizeof(buf)) == 0);
	rx_give(&f);
	CHECK(rx_take(&f, &got, NULL) && got.op == VSOCK_OP_RST && got.dst_port == 1111);
	/* A memory table whose descriptors do not match its regions makes the backend drop QEMU. */
	uint8_t table[8 + 64] = {2};
	CHECK(vu_send(f.vu, 5, table, sizeof(table), f.memfd) == 0);
	CHECK(read(f.vu, buf, sizeof(buf)) == 0);
	err_free(&e2);
out:
	fake_stop(&f);
	vsock_backend_stop(b);
}

TEST(backend_host_connect_line_reaches_guest_port)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *vhost = xasprintf("%s/vhost.sock", dir), *uds = xasprintf("%s/v.sock", dir);
	struct vsock_backend_config cfg = {.vhost_socket = vhost, .guest_cid = GUEST_CID, .uds_path = uds};
	struct vsock_backend *b = NULL;
	struct err *err = NULL;
	REQUIRE(vsock_backend_start(&cfg, &b, &err) == 0);
	struct fake f = {.vu = -1, .memfd = -1};
	if (!fake_start(&f, vhost)) {
		CHECK(!"vhost-user negotiation");
		goto out;
	}
	for (int i = 0; i < 4; i++)
		rx_give(&f);
	/* Wait until the backend has the rings (the listener refuses clients before). */
	struct vsock_backend_stats st;
	int c = -1;
	struct vsock_hdr got;
	for (int tries = 0; tries < 100; tries++) {
		c = unix_connect(uds);
		REQUIRE(c >= 0);
		REQUIRE(write(c, "CONNECT 7000\n", 13) == 13);
		if (rx_take(&f, &got, NULL))
			break;
		close(c);
		c = -1;
	}
	REQUIRE(c >= 0);
	CHECK(got.op == VSOCK_OP_REQUEST && got.dst_port == 7000 && got.dst_cid == GUEST_CID && got.src_cid == 3);
	struct vsock_hdr h = guest_hdr(7000, got.src_port, VSOCK_OP_RESPONSE, 0);
	tx_send(&f, &h, NULL);
	char line[32] = {0};
	size_t n = 0;
	while (n < sizeof(line) - 1 && read(c, line + n, 1) == 1 && line[n] != '\n')
		n++;
	char want[32];
	snprintf(want, sizeof(want), "OK %u", got.src_port);
	line[n] = '\0';
	CHECK_STR_EQ(line, want);
	CHECK(write(c, "ping", 4) == 4);
	rx_give(&f);
	uint8_t payload[BUF_SIZE];
	CHECK(rx_take(&f, &got, payload) && got.op == VSOCK_OP_RW && got.len == 4 && memcmp(payload, "ping", 4) == 0);
	/* A RST from the guest closes the host side. */
	h = guest_hdr(7000, got.src_port, VSOCK_OP_RST, 0);
	tx_send(&f, &h, NULL);
	char buf[8];
	CHECK(read(c, buf, sizeof(buf)) == 0);
	close(c);
	vsock_backend_stats(b, &st);
	CHECK(st.connections >= 1);
out:
	fake_stop(&f);
	vsock_backend_stop(b);
}

/* Several connections at once stay apart, and data towards the guest respects its credit. */
TEST(backend_many_connections_and_guest_credit)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *vhost = xasprintf("%s/vhost.sock", dir), *p = xasprintf("%s/p.sock", dir);
	_cleanup_close_ int lfd = unix_listen(p);
	REQUIRE(lfd >= 0);
	struct vsock_forward fw = {.port = 5000, .to = {.unix_path = p}};
	struct vsock_backend_config cfg = {
	    .vhost_socket = vhost, .guest_cid = GUEST_CID, .forwards = &fw, .n_forwards = 1};
	struct vsock_backend *b = NULL;
	struct err *err = NULL;
	REQUIRE(vsock_backend_start(&cfg, &b, &err) == 0);
	struct fake f = {.vu = -1, .memfd = -1};
	int host[3] = {-1, -1, -1};
	struct vsock_hdr h, got;
	uint8_t payload[BUF_SIZE];
	if (!fake_start(&f, vhost)) {
		CHECK(!"vhost-user negotiation");
		goto out;
	}
	for (int i = 0; i < 3; i++) {
		rx_give(&f);
		h = guest_hdr(3001 + (uint32_t)i, 5000, VSOCK_OP_REQUEST, 0);
		h.buf_alloc = 10; /* the guest can hold 10 bytes per connection */
		tx_send(&f, &h, NULL);
		CHECK(rx_take(&f, &got, NULL) && got.op == VSOCK_OP_RESPONSE && got.dst_port == 3001 + (uint32_t)i);
		host[i] = accept_wait(lfd);
		REQUIRE(host[i] >= 0);
	}
	/* Each host socket writes 25 bytes; each guest connection gets at most its 10 bytes. */
	for (int i = 0; i < 3; i++) {
		char msg[40];
		snprintf(msg, sizeof(msg), "conn%d-abcdefghijklmnopqrs", i);
		CHECK(write(host[i], msg, 25) == 25);
	}
	unsigned seen[3] = {0, 0, 0};
	for (int k = 0; k < 3; k++) {
		rx_give(&f);
		if (!rx_take(&f, &got, payload) || got.op != VSOCK_OP_RW || got.dst_port < 3001 ||
		    got.dst_port > 3003) {
			CHECK(!"an RW for one of the three connections");
			goto out;
		}
		unsigned i = got.dst_port - 3001;
		CHECK(got.len == 10);
		char want[16];
		snprintf(want, sizeof(want), "conn%u", i);
		CHECK(memcmp(payload, want, 5) == 0);
		seen[i] += got.len;
	}
	CHECK(seen[0] == 10 && seen[1] == 10 && seen[2] == 10);
	/* Out of credit: nothing more arrives until the guest reports it consumed the bytes. */
	rx_give(&f);
	struct pollfd pc = {.fd = f.rx.call, .events = POLLIN};
	poll(&pc, 1, 300);
	CHECK(used_idx(&f.rx) == f.rx.used_seen);
	h = guest_hdr(3002, 5000, VSOCK_OP_CREDIT_UPDATE, 0);
	h.buf_alloc = 10;
	h.fwd_cnt = 10;
	tx_send(&f, &h, NULL);
	CHECK(rx_take(&f, &got, payload) && got.op == VSOCK_OP_RW && got.dst_port == 3002 && got.len == 10 &&
	      memcmp(payload, "efghijklmn", 10) == 0);
	/* Guest data to each connection lands on its own host socket. */
	for (int i = 0; i < 3; i++) {
		char msg[16];
		snprintf(msg, sizeof(msg), "to-%d", i);
		h = guest_hdr(3001 + (uint32_t)i, 5000, VSOCK_OP_RW, 4);
		tx_send(&f, &h, msg);
		if (i % 2 == 1)
			wait_used(&f.tx, 0); /* let the backend take them as they come */
	}
	for (int i = 0; i < 3; i++) {
		char buf[16] = {0}, want[16];
		snprintf(want, sizeof(want), "to-%d", i);
		struct err *e2 = NULL;
		CHECK(io_read_full(host[i], buf, 4, &e2) == 4 && strcmp(buf, want) == 0);
		err_free(&e2);
	}
out:
	for (int i = 0; i < 3; i++)
		if (host[i] >= 0)
			close(host[i]);
	fake_stop(&f);
	vsock_backend_stop(b);
}

/* Issue 14, item 1: a host listener that does not take a guest connection (its backlog full)
 * held the backend's thread in connect(), and with it every other connection of the guest. Now
 * the connection waits on its own, is tried again, and gets RST past the bound; once the listener
 * has room it completes. */
TEST(backend_host_listener_with_a_full_backlog_holds_nothing_else)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *vhost = xasprintf("%s/vhost.sock", dir), *p1 = xasprintf("%s/p5000.sock", dir),
	                    *p2 = xasprintf("%s/p5001.sock", dir);
	int fill[2];
	int stuck = test_full_unix_listener(p1, fill);
	_cleanup_close_ int lfd = unix_listen(p2);
	REQUIRE(stuck >= 0 && lfd >= 0);
	struct vsock_forward fw[2] = {{.port = 5000, .to = {.unix_path = p1}}, {.port = 5001, .to = {.unix_path = p2}}};
	struct vsock_backend_config cfg = {.vhost_socket = vhost,
	                                   .guest_cid = GUEST_CID,
	                                   .forwards = fw,
	                                   .n_forwards = 2,
	                                   .connect_timeout_ms = 300};
	struct vsock_backend *b;
	struct fake f;
	if (!backend_and_guest(t, &cfg, &b, &f, 4))
		goto out;
	struct vsock_hdr h = guest_hdr(1111, 5000, VSOCK_OP_REQUEST, 0), got;
	tx_send(&f, &h, NULL);
	h = guest_hdr(1112, 5001, VSOCK_OP_REQUEST, 0);
	tx_send(&f, &h, NULL);
	/* The other port answers at once... */
	CHECK(rx_take(&f, &got, NULL) && got.op == VSOCK_OP_RESPONSE && got.dst_port == 1112);
	/* ...and the stuck one is given up after the bound. */
	int64_t t0 = time_monotonic_ms();
	rx_give(&f);
	CHECK(rx_take(&f, &got, NULL) && got.op == VSOCK_OP_RST && got.dst_port == 1111 && got.src_port == 5000);
	CHECK(time_monotonic_ms() - t0 < 4000);
	/* Tried again while it waits: room in the backlog completes it. */
	h = guest_hdr(1113, 5000, VSOCK_OP_REQUEST, 0);
	tx_send(&f, &h, NULL);
	close(fill[0]);
	close(fill[1]);
	int a1 = accept(stuck, NULL, NULL), a2 = accept(stuck, NULL, NULL);
	rx_give(&f);
	CHECK(rx_take(&f, &got, NULL) && got.op == VSOCK_OP_RESPONSE && got.dst_port == 1113);
	int a3 = accept_wait(stuck);
	CHECK(a3 >= 0);
	close(a1);
	close(a2);
	if (a3 >= 0)
		close(a3);
out:
	fake_stop(&f);
	vsock_backend_stop(b);
	close(stuck);
}
