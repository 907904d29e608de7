/* vsock_backend: the vhost-user-vsock device on its own thread: carries the guest's stream
 * connections to host sockets and back with credit flow control, in one poll() loop. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "runtime/internal.h"

/* What we advertise to the guest for each connection: the most guest-to-host data we hold. */
#define CONN_BUF_ALLOC (256 * 1024)
/* Control packets waiting for guest rx buffers; beyond this the guest is not reading its queue. */
#define CTL_QUEUE_MAX   4096
#define FIRST_HOST_PORT 1024
/* A guest connection to a host listener that does not take it (a full backlog) waits this long,
 * tried again every CONNECT_RETRY_MS, without holding the other connections; then RST. */
#define CONNECT_TIMEOUT_MS 10000
#define CONNECT_RETRY_MS   20

enum conn_state {
	CONN_CONNECT_LINE, /* host client on uds_path: reading "CONNECT <port>\n" */
	CONN_REQUEST_SENT, /* host-initiated: REQUEST sent, waiting for RESPONSE */
	CONN_CONNECTING,   /* guest-initiated: the host listener has not taken it yet */
	CONN_ESTABLISHED,
};

struct conn {
	struct conn *next;
	int fd;
	enum conn_state state;
	uint32_t guest_port, host_port;
	uint64_t host_cid;    /* the CID the guest addressed (3) */
	bool reply_ok_line;   /* host client asked with CONNECT: answer "OK <port>\n" */
	bool readable;        /* poll() saw the host socket readable */
	bool host_eof;        /* host closed its sending side; SHUTDOWN sent */
	bool guest_shut_send; /* guest will send no more */
	bool guest_shut_rcv;  /* guest will receive no more */
	bool host_shut_wr;    /* we shut down the host socket's writing side */
	bool closing;         /* close and RST once `out` is drained */
	struct vsock_credit cr;
	uint8_t *out; /* guest-to-host bytes not yet written: out[out_off..out_len) */
	size_t out_off, out_len;
	char line[24];
	size_t line_len;
	struct vsock_endpoint to; /* CONN_CONNECTING: where to, tried again every CONNECT_RETRY_MS */
	char *to_path;            /* to.unix_path when it is ours */
	int64_t connect_deadline; /* time_monotonic_ms() */
};

struct host_listener {
	int fd;
	uint32_t guest_port; /* for config listens */
	bool connect_line;   /* the uds_path listener */
};

struct vsock_backend {
	pthread_t thread;
	int stop_fd;
	int vhost_listen_fd;
	struct vhost_dev dev;
	struct host_listener *listeners;
	size_t n_listeners;
	struct vsock_forward *forwards;
	size_t n_forwards;
	char *uds_path;
	unsigned connect_timeout_ms;
	struct conn *conns;
	struct vsock_hdr *ctl; /* FIFO of control packets for the guest */
	size_t ctl_head, ctl_len, ctl_cap;
	uint32_t next_host_port;
	uint8_t *scratch; /* one packet's worth */
	struct vsock_backend_stats stats;
	char **owned_strings;
	size_t n_owned;
};

static void stat_add(uint64_t *field, uint64_t v)
{
	__atomic_add_fetch(field, v, __ATOMIC_RELAXED);
}

void vsock_backend_stats(struct vsock_backend *b, struct vsock_backend_stats *out)
{
	out->connections = __atomic_load_n(&b->stats.connections, __ATOMIC_RELAXED);
	out->bytes_to_guest = __atomic_load_n(&b->stats.bytes_to_guest, __ATOMIC_RELAXED);
	out->bytes_from_guest = __atomic_load_n(&b->stats.bytes_from_guest, __ATOMIC_RELAXED);
	out->dropped_packets = __atomic_load_n(&b->stats.dropped_packets, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- control packets */

static void ctl_push(struct vsock_backend *b, const struct vsock_hdr *h)
{
	if (b->ctl_len >= CTL_QUEUE_MAX) {
		log_warn("vsock: guest is not taking packets; dropping a %s", vsock_op_name(h->op));
		stat_add(&b->stats.dropped_packets, 1);
		return;
	}
	if (b->ctl_len == b->ctl_cap) {
		size_t cap = b->ctl_cap ? b->ctl_cap * 2 : 16;
		struct vsock_hdr *n = xcalloc(cap, sizeof(*n));
		for (size_t i = 0; i < b->ctl_len; i++)
			n[i] = b->ctl[(b->ctl_head + i) % b->ctl_cap];
		free(b->ctl);
		b->ctl = n;
		b->ctl_cap = cap;
		b->ctl_head = 0;
	}
	b->ctl[(b->ctl_head + b->ctl_len) % b->ctl_cap] = *h;
	b->ctl_len++;
}

/* A header from the host side of `c` to the guest. */
static struct vsock_hdr conn_hdr(struct vsock_backend *b, struct conn *c, uint16_t op, uint32_t flags)
{
	struct vsock_hdr h = {
	    .src_cid = c->host_cid,
	    .dst_cid = b->dev.guest_cid,
	    .src_port = c->host_port,
	    .dst_port = c->guest_port,
	    .type = VSOCK_TYPE_STREAM,
	    .op = op,
	    .flags = flags,
	    .buf_alloc = c->cr.buf_alloc,
	    .fwd_cnt = c->cr.fwd_cnt,
	};
	c->cr.last_fwd_cnt_sent = c->cr.fwd_cnt;
	return h;
}

static void conn_send(struct vsock_backend *b, struct conn *c, uint16_t op, uint32_t flags)
{
	struct vsock_hdr h = conn_hdr(b, c, op, flags);
	ctl_push(b, &h);
}

/* RST for a guest packet that belongs to no connection. */
static void rst_reply(struct vsock_backend *b, const struct vsock_hdr *in)
{
	struct vsock_hdr h = {
	    .src_cid = in->dst_cid,
	    .dst_cid = in->src_cid,
	    .src_port = in->dst_port,
	    .dst_port = in->src_port,
	    .type = in->type,
	    .op = VSOCK_OP_RST,
	};
	ctl_push(b, &h);
}

/* ---------------------------------------------------------------- connections */

static struct conn *conn_new(struct vsock_backend *b, int fd, uint32_t guest_port, uint32_t host_port,
                             uint64_t host_cid)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->guest_port = guest_port;
	c->host_port = host_port;
	c->host_cid = host_cid;
	c->cr.buf_alloc = CONN_BUF_ALLOC;
	c->next = b->conns;
	b->conns = c;
	stat_add(&b->stats.connections, 1);
	return c;
}

static struct conn *conn_find(struct vsock_backend *b, uint32_t guest_port, uint32_t host_port)
{
	for (struct conn *c = b->conns; c; c = c->next)
		if (c->state != CONN_CONNECT_LINE && c->guest_port == guest_port && c->host_port == host_port)
			return c;
	return NULL;
}

/* Closes the host socket and forgets the connection; with `rst`, tells the guest. */
static void conn_close(struct vsock_backend *b, struct conn *c, bool rst)
{
	if (rst && c->state != CONN_CONNECT_LINE)
		conn_send(b, c, VSOCK_OP_RST, 0);
	for (struct conn **pp = &b->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	free(c->to_path);
	free(c);
}

static void conns_drop_all(struct vsock_backend *b)
{
	while (b->conns)
		conn_close(b, b->conns, false);
	b->ctl_len = 0;
	b->ctl_head = 0;
}

static uint32_t host_port_alloc(struct vsock_backend *b, uint32_t guest_port)
{
	for (;;) {
		uint32_t p = b->next_host_port++;
		if (b->next_host_port == 0)
			b->next_host_port = FIRST_HOST_PORT;
		if (!conn_find(b, guest_port, p))
			return p;
	}
}

/* After the out buffer drained: pass on the guest's shutdown, or finish a closing connection. */
static void conn_settle(struct vsock_backend *b, struct conn *c)
{
	if (c->out_len > c->out_off)
		return;
	if (c->closing) {
		conn_close(b, c, true);
		return;
	}
	if (c->guest_shut_send && !c->host_shut_wr) {
		shutdown(c->fd, SHUT_WR);
		c->host_shut_wr = true;
	}
}

/* Writes what the host socket takes of the out buffer. Returns -1 when the connection is gone. */
static int conn_flush(struct vsock_backend *b, struct conn *c)
{
	while (c->out_len > c->out_off) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			log_debug("vsock: guest port %u: host socket write: %s", c->guest_port, strerror(errno));
			conn_close(b, c, true);
			return -1;
		}
		c->out_off += (size_t)n;
		c->cr.fwd_cnt += (uint32_t)n;
		stat_add(&b->stats.bytes_from_guest, (uint64_t)n);
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->state == CONN_ESTABLISHED && vsock_credit_update_due(&c->cr))
		conn_send(b, c, VSOCK_OP_CREDIT_UPDATE, 0);
	conn_settle(b, c);
	return 0;
}

static void conn_write(struct vsock_backend *b, struct conn *c, const uint8_t *data, uint32_t len)
{
	struct err *err = NULL;
	if (vsock_credit_rx(&c->cr, len, &err) < 0) {
		log_warn("vsock: guest port %u: %s: resetting", c->guest_port, err->msg);
		err_free(&err);
		conn_close(b, c, true);
		return;
	}
	if (!c->out)
		c->out = xmalloc(CONN_BUF_ALLOC);
	if (c->out_off > 0 && c->out_len + len > CONN_BUF_ALLOC) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	/* Credit accounting bounds the buffered bytes by CONN_BUF_ALLOC. */
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	conn_flush(b, c);
}

/* The host side for a guest connection to the parent's `port`: *owned is set when the
 * endpoint's path was made here. */
static int forward_endpoint(struct vsock_backend *b, uint32_t port, struct vsock_endpoint *ep, char **owned,
                            struct err **err)
{
	*owned = NULL;
	for (size_t i = 0; i < b->n_forwards; i++) {
		if (b->forwards[i].port == port) {
			*ep = b->forwards[i].to;
			return 0;
		}
	}
	if (b->uds_path) {
		*owned = xasprintf("%s_%u", b->uds_path, port);
		*ep = (struct vsock_endpoint){.unix_path = *owned};
		return 0;
	}
	return err_set(err, ECONNREFUSED, "no host listener for port %u", port);
}

static void conn_established(struct vsock_backend *b, struct conn *c)
{
	c->state = CONN_ESTABLISHED;
	free(c->to_path);
	c->to_path = NULL;
	log_debug("vsock: guest port %u connected to parent port %u", c->guest_port, c->host_port);
	conn_send(b, c, VSOCK_OP_RESPONSE, 0);
}

/* Guest connections whose host listener had not taken them: tried again; RST past the bound. */
static void connecting_step(struct vsock_backend *b)
{
	int64_t now = time_monotonic_ms();
	for (struct conn *c = b->conns, *next; c; c = next) {
		next = c->next;
		if (c->state != CONN_CONNECTING)
			continue;
		struct err *err = NULL;
		bool pending;
		char name[160];
		if (vsock_endpoint_connect_again(&c->to, c->fd, &pending, &err) < 0) {
			log_info("vsock: guest connection to port %u refused: %s", c->host_port, err->msg);
			err_free(&err);
			conn_close(b, c, true);
		} else if (!pending) {
			conn_established(b, c);
		} else if (now >= c->connect_deadline) {
			log_info("vsock: guest connection to port %u refused: %s did not accept it within %u ms",
			         c->host_port, vsock_endpoint_name(&c->to, name, sizeof(name)), b->connect_timeout_ms);
			conn_close(b, c, true);
		}
	}
}

/* ---------------------------------------------------------------- guest packets */

static void guest_packet(struct vsock_backend *b, const struct vsock_hdr *h, const uint8_t *payload)
{
	struct vhost_dev *dev = &b->dev;
	if (h->src_cid != dev->guest_cid) {
		log_debug("vsock: packet from CID %llu, guest is %llu: dropped", (unsigned long long)h->src_cid,
		          (unsigned long long)dev->guest_cid);
		stat_add(&b->stats.dropped_packets, 1);
		return;
	}
	struct conn *c = conn_find(b, h->src_port, h->dst_port);
	if (!c) {
		if (h->op == VSOCK_OP_RST)
			return;
		if (h->op != VSOCK_OP_REQUEST || h->type != VSOCK_TYPE_STREAM ||
		    (h->dst_cid != WIRE_PARENT_CID && h->dst_cid != 2)) {
			rst_reply(b, h);
			return;
		}
		struct err *err = NULL;
		struct vsock_endpoint ep;
		char *owned;
		bool pending = false;
		int fd = -1;
		if (forward_endpoint(b, h->dst_port, &ep, &owned, &err) == 0)
			fd = vsock_endpoint_connect(&ep, &pending, &err);
		if (fd < 0) {
			log_info("vsock: guest connection to port %u refused: %s", h->dst_port, err->msg);
			err_free(&err);
			free(owned);
			rst_reply(b, h);
			return;
		}
		c = conn_new(b, fd, h->src_port, h->dst_port, h->dst_cid);
		vsock_credit_peer_update(&c->cr, h->buf_alloc, h->fwd_cnt);
		if (pending) {
			/* The RESPONSE waits for the host listener (connecting_step); nothing else does. */
			c->state = CONN_CONNECTING;
			c->to = ep;
			c->to_path = owned;
			c->connect_deadline = time_monotonic_ms() + b->connect_timeout_ms;
			return;
		}
		free(owned);
		conn_established(b, c);
		return;
	}
	if (c->state == CONN_CONNECTING) {
		/* Before our RESPONSE the guest may only give up (RST) or ask for credit. */
		if (h->op == VSOCK_OP_RST)
			conn_close(b, c, false);
		else if (h->op != VSOCK_OP_CREDIT_UPDATE && h->op != VSOCK_OP_CREDIT_REQUEST)
			conn_close(b, c, true);
		return;
	}
	vsock_credit_peer_update(&c->cr, h->buf_alloc, h->fwd_cnt);
	switch (h->op) {
	case VSOCK_OP_REQUEST: /* a second REQUEST on a live connection */ conn_close(b, c, true); break;
	case VSOCK_OP_RESPONSE:
		if (c->state != CONN_REQUEST_SENT) {
			conn_close(b, c, true);
			break;
		}
		c->state = CONN_ESTABLISHED;
		log_debug("vsock: host port %u connected to guest port %u", c->host_port, c->guest_port);
		if (c->reply_ok_line) {
			char line[32];
			int n = snprintf(line, sizeof(line), "OK %u\n", c->host_port);
			if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL) != n)
				conn_close(b, c, true);
		}
		break;
	case VSOCK_OP_RW:
		if (c->state != CONN_ESTABLISHED || c->guest_shut_send) {
			conn_close(b, c, true);
			break;
		}
		if (h->len)
			conn_write(b, c, payload, h->len);
		break;
	case VSOCK_OP_CREDIT_REQUEST: conn_send(b, c, VSOCK_OP_CREDIT_UPDATE, 0); break;
	case VSOCK_OP_CREDIT_UPDATE: break; /* recorded above */
	case VSOCK_OP_SHUTDOWN:
		if (h->flags & VSOCK_SHUTDOWN_SEND)
			c->guest_shut_send = true;
		if (h->flags & VSOCK_SHUTDOWN_RCV)
			c->guest_shut_rcv = true;
		if ((c->guest_shut_send && c->guest_shut_rcv) || (c->guest_shut_send && c->host_eof))
			c->closing = true;
		conn_settle(b, c);
		break;
	case VSOCK_OP_RST: conn_close(b, c, false); break;
	}
}

/* Takes every packet the guest queued on tx. */
static void tx_process(struct vsock_backend *b)
{
	struct vring *vr = &b->dev.vq[VSOCK_QUEUE_TX];
	struct vring_chain chain;
	for (;;) {
		struct err *err = NULL;
		int r = vring_pop(vr, &b->dev.mem, &chain, &err);
		if (r == 0)
			break;
		if (r < 0) {
			log_warn("vsock: tx queue: %s: packet dropped", err->msg);
			err_free(&err);
			stat_add(&b->stats.dropped_packets, 1);
			continue;
		}
		struct vsock_hdr h;
		size_t got = iov_copy_from(chain.rd, chain.n_rd, 0, b->scratch, VSOCK_HDR_SIZE);
		int ok = got == VSOCK_HDR_SIZE && vsock_hdr_parse(b->scratch, &h, &err) == 0;
		if (ok && h.len > chain.rd_len - VSOCK_HDR_SIZE) {
			err_set(&err, EPROTO, "vsock header: len %u but the buffers hold %zu", h.len,
			        chain.rd_len - VSOCK_HDR_SIZE);
			ok = 0;
		}
		if (ok)
			iov_copy_from(chain.rd, chain.n_rd, VSOCK_HDR_SIZE, b->scratch + VSOCK_HDR_SIZE, h.len);
		vring_push(vr, chain.head, 0);
		if (!ok) {
			log_warn("vsock: tx queue: %s: packet dropped", err ? err->msg : "short packet");
			err_free(&err);
			stat_add(&b->stats.dropped_packets, 1);
			continue;
		}
		guest_packet(b, &h, b->scratch + VSOCK_HDR_SIZE);
	}
}

/* ---------------------------------------------------------------- packets to the guest */

static void chain_fill(struct vring *vr, struct vring_chain *chain, const struct vsock_hdr *h, const uint8_t *data)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	vsock_hdr_encode(h, raw);
	iov_copy_to(chain->wr, chain->n_wr, 0, raw, VSOCK_HDR_SIZE);
	if (h->len)
		iov_copy_to(chain->wr, chain->n_wr, VSOCK_HDR_SIZE, data, h->len);
	vring_push(vr, chain->head, VSOCK_HDR_SIZE + h->len);
}

/* Pops an rx chain big enough for a header; 0 when none. */
static int rx_pop(struct vsock_backend *b, struct vring_chain *chain)
{
	struct vring *vr = &b->dev.vq[VSOCK_QUEUE_RX];
	for (;;) {
		struct err *err = NULL;
		int r = vring_pop(vr, &b->dev.mem, chain, &err);
		if (r == 0)
			return 0;
		if (r < 0) {
			log_warn("vsock: rx queue: %s", err->msg);
			err_free(&err);
			continue;
		}
		if (chain->wr_len < VSOCK_HDR_SIZE) {
			log_warn("vsock: rx queue: a %zu-byte buffer cannot hold a header: skipped", chain->wr_len);
			vring_push(vr, chain->head, 0);
			continue;
		}
		return 1;
	}
}

/* One RW (or SHUTDOWN at end of stream) from a readable host socket into `chain`. Returns 1 when
 * the chain was used, 0 when the socket had nothing (the chain is still ours). */
static int conn_read_into(struct vsock_backend *b, struct conn *c, struct vring_chain *chain)
{
	struct vring *vr = &b->dev.vq[VSOCK_QUEUE_RX];
	size_t max = chain->wr_len - VSOCK_HDR_SIZE;
	uint32_t credit = vsock_credit_peer_free(&c->cr);
	if (max > credit)
		max = credit;
	if (max > VSOCK_MAX_PAYLOAD)
		max = VSOCK_MAX_PAYLOAD;
	ssize_t n;
	do
		n = recv(c->fd, b->scratch, max, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->readable = false;
		return 0;
	}
	if (n < 0) {
		log_debug("vsock: guest port %u: host socket read: %s", c->guest_port, strerror(errno));
		struct vsock_hdr h = conn_hdr(b, c, VSOCK_OP_RST, 0);
		chain_fill(vr, chain, &h, NULL);
		c->state = CONN_CONNECT_LINE; /* no second RST from conn_close */
		conn_close(b, c, false);
		return 1;
	}
	if (n == 0) {
		c->host_eof = true;
		c->readable = false;
		struct vsock_hdr h = conn_hdr(b, c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND);
		chain_fill(vr, chain, &h, NULL);
		if (c->guest_shut_send) {
			c->closing = true;
			conn_settle(b, c);
		}
		return 1;
	}
	struct vsock_hdr h = conn_hdr(b, c, VSOCK_OP_RW, 0);
	h.len = (uint32_t)n;
	c->cr.tx_cnt += (uint32_t)n;
	stat_add(&b->stats.bytes_to_guest, (uint64_t)n);
	chain_fill(vr, chain, &h, b->scratch);
	return 1;
}

static bool conn_wants_read(const struct conn *c)
{
	return c->state == CONN_ESTABLISHED && !c->host_eof && !c->guest_shut_rcv && !c->closing &&
	       vsock_credit_peer_free(&c->cr) > 0;
}

/* Fills the guest's rx buffers: control packets first, then data from readable host sockets. */
static void rx_process(struct vsock_backend *b)
{
	struct vring *vr = &b->dev.vq[VSOCK_QUEUE_RX];
	struct vring_chain chain;
	while (b->ctl_len > 0) {
		if (!rx_pop(b, &chain))
			return;
		chain_fill(vr, &chain, &b->ctl[b->ctl_head], NULL);
		b->ctl_head = (b->ctl_head + 1) % b->ctl_cap;
		b->ctl_len--;
	}
	bool progress = true;
	while (progress) {
		progress = false;
		struct conn *next;
		for (struct conn *c = b->conns; c; c = next) {
			next = c->next; /* conn_read_into may free c */
			if (!c->readable || !conn_wants_read(c))
				continue;
			if (!rx_pop(b, &chain))
				return;
			if (conn_read_into(b, c, &chain))
				progress = true;
			else
				vring_unpop(vr);
			/* A control packet queued meanwhile (a close's RST) goes out first. */
			while (b->ctl_len > 0 && rx_pop(b, &chain)) {
				chain_fill(vr, &chain, &b->ctl[b->ctl_head], NULL);
				b->ctl_head = (b->ctl_head + 1) % b->ctl_cap;
				b->ctl_len--;
			}
		}
	}
}

/* ---------------------------------------------------------------- host side */

static void host_listener_accept(struct vsock_backend *b, struct host_listener *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("vsock: accept: %s", strerror(errno));
			return;
		}
		if (!b->dev.vq[VSOCK_QUEUE_RX].started) {
			log_info("vsock: host connection refused: the guest's vsock device is not up yet");
			close(fd);
			continue;
		}
		if (l->connect_line) {
			struct conn *c = conn_new(b, fd, 0, 0, WIRE_PARENT_CID);
			c->state = CONN_CONNECT_LINE;
			continue;
		}
		struct conn *c = conn_new(b, fd, l->guest_port, host_port_alloc(b, l->guest_port), WIRE_PARENT_CID);
		c->state = CONN_REQUEST_SENT;
		conn_send(b, c, VSOCK_OP_REQUEST, 0);
	}
}

/* Reads "CONNECT <port>\n" a byte at a time, so no data after it is consumed. */
static void conn_read_line(struct vsock_backend *b, struct conn *c)
{
	for (;;) {
		char ch;
		ssize_t n = recv(c->fd, &ch, 1, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			conn_close(b, c, false);
			return;
		}
		if (ch != '\n') {
			if (c->line_len + 1 >= sizeof(c->line)) {
				conn_close(b, c, false);
				return;
			}
			c->line[c->line_len++] = ch;
			continue;
		}
		c->line[c->line_len] = '\0';
		unsigned long port;
		char *end;
		if (!str_has_prefix(c->line, "CONNECT ") || (port = strtoul(c->line + 8, &end, 10), *end != '\0') ||
		    end == c->line + 8 || port > UINT32_MAX) {
			log_info("vsock: host client sent \"%s\", expected \"CONNECT <port>\"", c->line);
			conn_close(b, c, false);
			return;
		}
		c->guest_port = (uint32_t)port;
		c->host_port = host_port_alloc(b, c->guest_port);
		c->reply_ok_line = true;
		c->state = CONN_REQUEST_SENT;
		conn_send(b, c, VSOCK_OP_REQUEST, 0);
		return;
	}
}

/* ---------------------------------------------------------------- the loop */

enum slot_kind { SLOT_STOP, SLOT_VHOST_LISTEN, SLOT_VHOST, SLOT_KICK, SLOT_LISTENER, SLOT_CONN };
struct slot {
	enum slot_kind kind;
	void *ptr;
};

static void vhost_disconnect(struct vsock_backend *b)
{
	conns_drop_all(b);
	vhost_dev_release(&b->dev);
	close(b->dev.fd);
	uint64_t cid = b->dev.guest_cid;
	vhost_dev_init(&b->dev, cid);
}

static void *backend_thread(void *arg)
{
	struct vsock_backend *b = arg;
	size_t cap = 0;
	struct pollfd *pfd = NULL;
	struct slot *slots = NULL;
	for (;;) {
		size_t n_conns = 0;
		for (struct conn *c = b->conns; c; c = c->next)
			n_conns++;
		size_t need = 4 + VHOST_MAX_QUEUES + b->n_listeners + n_conns;
		if (need > cap) {
			cap = need * 2;
			pfd = xrealloc(pfd, cap * sizeof(*pfd));
			slots = xrealloc(slots, cap * sizeof(*slots));
		}
		size_t n = 0;
#define ADD(fd_, ev_, kind_, ptr_)                                                                                     \
	do {                                                                                                           \
		pfd[n] = (struct pollfd){.fd = (fd_), .events = (short)(ev_)};                                         \
		slots[n] = (struct slot){.kind = (kind_), .ptr = (ptr_)};                                              \
		n++;                                                                                                   \
	} while (0)
		ADD(b->stop_fd, POLLIN, SLOT_STOP, NULL);
		if (b->dev.fd < 0)
			ADD(b->vhost_listen_fd, POLLIN, SLOT_VHOST_LISTEN, NULL);
		else
			ADD(b->dev.fd, POLLIN, SLOT_VHOST, NULL);
		for (unsigned i = 0; i < VHOST_MAX_QUEUES; i++)
			if (b->dev.vq[i].kick_fd >= 0)
				ADD(b->dev.vq[i].kick_fd, POLLIN, SLOT_KICK, NULL);
		for (size_t i = 0; i < b->n_listeners; i++)
			ADD(b->listeners[i].fd, POLLIN, SLOT_LISTENER, &b->listeners[i]);
		bool rx_room = vring_has_avail(&b->dev.vq[VSOCK_QUEUE_RX]);
		for (struct conn *c = b->conns; c; c = c->next) {
			short ev = 0;
			if (c->state == CONN_CONNECT_LINE || (rx_room && !c->readable && conn_wants_read(c)))
				ev |= POLLIN;
			if (c->out_len > c->out_off)
				ev |= POLLOUT;
			/* poll() reports hangups even for no events: leave out sockets we cannot serve
			 * now (no credit, no rx room), or a closed one would spin this loop. */
			ADD(ev ? c->fd : -1, ev, SLOT_CONN, c);
		}
#undef ADD
		/* With data waiting for rx room and room now, do not sleep. */
		int timeout = -1;
		if (rx_room && b->ctl_len > 0)
			timeout = 0;
		for (struct conn *c = b->conns; c && timeout; c = c->next) {
			if (rx_room && c->readable && conn_wants_read(c))
				timeout = 0;
			else if (c->state == CONN_CONNECTING)
				timeout = CONNECT_RETRY_MS;
		}
		int r = poll(pfd, n, timeout);
		if (r < 0 && errno != EINTR) {
			log_error("vsock: poll: %s", strerror(errno));
			break;
		}
		bool stop = false;
		for (size_t i = 0; r > 0 && i < n; i++) {
			if (!pfd[i].revents)
				continue;
			switch (slots[i].kind) {
			case SLOT_STOP: stop = true; break;
			case SLOT_VHOST_LISTEN: {
				int fd = accept4(b->vhost_listen_fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0) {
					b->dev.fd = fd;
					log_debug("vsock: QEMU connected");
				}
				break;
			}
			case SLOT_VHOST: {
				struct err *err = NULL;
				int h = vhost_user_handle(&b->dev, &err);
				if (h != 0) {
					if (h < 0) {
						log_error("vsock: %s: dropping QEMU's connection", err->msg);
						err_free(&err);
					} else {
						log_debug("vsock: QEMU disconnected");
					}
					vhost_disconnect(b);
				} else if (b->dev.rings_stopped) {
					b->dev.rings_stopped = false;
					conns_drop_all(b);
				}
				break;
			}
			case SLOT_KICK: {
				uint64_t v;
				ssize_t k = read(pfd[i].fd, &v, sizeof(v));
				(void)k;
				break;
			}
			case SLOT_LISTENER: host_listener_accept(b, slots[i].ptr); break;
			case SLOT_CONN: break; /* below: a slot's conn may be freed by an earlier slot */
			}
			if (slots[i].kind == SLOT_VHOST)
				break; /* descriptors may have changed: poll again */
		}
		if (stop)
			break;
		/* Connection events, by walking the live list (events on freed conns are dropped). */
		for (size_t i = 0; r > 0 && i < n; i++) {
			if (slots[i].kind != SLOT_CONN || !pfd[i].revents)
				continue;
			struct conn *c = NULL;
			for (struct conn *x = b->conns; x; x = x->next)
				if (x == slots[i].ptr && x->fd == pfd[i].fd)
					c = x;
			if (!c)
				continue;
			if (c->state == CONN_CONNECT_LINE) {
				conn_read_line(b, c);
				continue;
			}
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				c->readable = true;
			if (pfd[i].revents & (POLLOUT | POLLERR))
				conn_flush(b, c);
		}
		connecting_step(b);
		if (b->dev.fd >= 0) {
			tx_process(b);
			rx_process(b);
			for (unsigned i = 0; i < VHOST_MAX_QUEUES; i++)
				vring_notify(&b->dev.vq[i]);
		}
	}
	free(pfd);
	free(slots);
	return NULL;
}

/* ---------------------------------------------------------------- start/stop */

static const char *keep(struct vsock_backend *b, const char *s)
{
	if (!s)
		return NULL;
	b->owned_strings = xrealloc(b->owned_strings, (b->n_owned + 1) * sizeof(char *));
	return b->owned_strings[b->n_owned++] = xstrdup(s);
}

static void backend_free(struct vsock_backend *b)
{
	conns_drop_all(b);
	if (b->dev.fd >= 0)
		close(b->dev.fd);
	vhost_dev_release(&b->dev);
	for (size_t i = 0; i < b->n_listeners; i++)
		close(b->listeners[i].fd);
	if (b->vhost_listen_fd >= 0)
		close(b->vhost_listen_fd);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	for (size_t i = 0; i < b->n_owned; i++)
		free(b->owned_strings[i]);
	free(b->owned_strings);
	free(b->listeners);
	free(b->forwards);
	free(b->ctl);
	free(b->scratch);
	free(b);
}

int vsock_backend_start(const struct vsock_backend_config *cfg, struct vsock_backend **out, struct err **err)
{
	if (cfg->guest_cid < 3 || cfg->guest_cid == WIRE_PARENT_CID || cfg->guest_cid > UINT32_MAX - 1)
		return err_set(err, EINVAL, "guest CID %llu: must be above 3 and below 2^32-1",
		               (unsigned long long)cfg->guest_cid);
	struct vsock_backend *b = xcalloc(1, sizeof(*b));
	vhost_dev_init(&b->dev, cfg->guest_cid);
	b->stop_fd = -1;
	b->vhost_listen_fd = -1;
	b->next_host_port = FIRST_HOST_PORT;
	b->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : CONNECT_TIMEOUT_MS;
	b->scratch = xmalloc(VSOCK_HDR_SIZE + VSOCK_MAX_PAYLOAD);
	b->uds_path = (char *)keep(b, cfg->uds_path);
	b->forwards = xcalloc(cfg->n_forwards + 1, sizeof(*b->forwards));
	for (size_t i = 0; i < cfg->n_forwards; i++) {
		b->forwards[i] = cfg->forwards[i];
		b->forwards[i].to.unix_path = keep(b, cfg->forwards[i].to.unix_path);
	}
	b->n_forwards = cfg->n_forwards;
	b->listeners = xcalloc(cfg->n_listens + 1, sizeof(*b->listeners));
	b->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (b->stop_fd < 0) {
		err_sys(err, "eventfd");
		goto fail;
	}
	struct vsock_endpoint vep = {.unix_path = cfg->vhost_socket};
	b->vhost_listen_fd = vsock_endpoint_listen(&vep, err);
	if (b->vhost_listen_fd < 0) {
		err_wrap(err, "vhost-user socket");
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_listens; i++) {
		int fd = vsock_endpoint_listen(&cfg->listens[i].from, err);
		if (fd < 0) {
			err_wrap(err, "listener for guest port %u", cfg->listens[i].guest_port);
			goto fail;
		}
		b->listeners[b->n_listeners++] =
		    (struct host_listener){.fd = fd, .guest_port = cfg->listens[i].guest_port};
	}
	if (cfg->uds_path) {
		struct vsock_endpoint ep = {.unix_path = cfg->uds_path};
		int fd = vsock_endpoint_listen(&ep, err);
		if (fd < 0) {
			err_wrap(err, "host socket");
			goto fail;
		}
		b->listeners[b->n_listeners++] = (struct host_listener){.fd = fd, .connect_line = true};
	}
	/* Every signal blocked in the thread: they are the caller's (its signalfd, its handlers). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&b->thread, NULL, backend_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		errno = e;
		err_sys(err, "start the vsock thread");
		goto fail;
	}
	*out = b;
	return 0;
fail:
	backend_free(b);
	return -1;
}

void vsock_backend_stop(struct vsock_backend *b)
{
	if (!b)
		return;
	uint64_t one = 1;
	ssize_t r = write(b->stop_fd, &one, sizeof(one));
	(void)r;
	pthread_join(b->thread, NULL);
	backend_free(b);
}
