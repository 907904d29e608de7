/* runtime/internal.h: private pieces of the runtime module shared by its files and its unit
 * tests: guest memory map, split virtqueues, vsock packet headers and credit accounting. */
#ifndef ENCLAVER_RUNTIME_INTERNAL_H
#define ENCLAVER_RUNTIME_INTERNAL_H

#include <sys/uio.h>

#include "runtime/runtime.h"

/* ---------------------------------------------------------------- guest memory
 * The regions QEMU sends with VHOST_USER_SET_MEM_TABLE. Every guest address the backend touches
 * goes through vhost_mem_gpa/uva, which refuse any range not wholly inside one region. */
#define VHOST_MEM_MAX_REGIONS 8
struct vhost_mem_region {
	uint64_t gpa;  /* guest physical address of the first byte */
	uint64_t size; /* bytes */
	uint64_t uva;  /* QEMU's virtual address of the first byte (vring addresses use these) */
	uint8_t *host; /* our mapping of the first byte */
	void *map;     /* what to munmap (NULL when the memory is not ours to unmap, as in tests) */
	size_t map_len;
};
struct vhost_mem {
	struct vhost_mem_region regions[VHOST_MEM_MAX_REGIONS];
	unsigned n;
};
/* Host pointer for [gpa, gpa+len), or NULL when any byte lies outside one region. */
uint8_t *vhost_mem_gpa(const struct vhost_mem *mem, uint64_t gpa, uint64_t len);
/* Same for a QEMU virtual address. */
uint8_t *vhost_mem_uva(const struct vhost_mem *mem, uint64_t uva, uint64_t len);
/* Unmaps every region we mapped and empties the table. */
void vhost_mem_clear(struct vhost_mem *mem);

/* ---------------------------------------------------------------- split virtqueues */
#define VRING_DESC_F_NEXT     1
#define VRING_DESC_F_WRITE    2
#define VRING_DESC_F_INDIRECT 4
#define VRING_MAX_NUM         32768
/* Longest descriptor chain we accept; vsock uses 1 to 3 descriptors per packet. */
#define VRING_MAX_CHAIN 64

struct vring {
	unsigned num;                           /* 0 until SET_VRING_NUM */
	uint64_t desc_uva, avail_uva, used_uva; /* as QEMU gave them; translated on each mem table */
	uint8_t *desc, *avail, *used;           /* host pointers, NULL until the ring is mapped */
	uint16_t last_avail;                    /* next avail entry we will take */
	uint16_t used_idx;                      /* next used entry we will fill */
	bool enabled, started, broken;
	bool need_call;       /* used entries were added since the last call */
	int kick_fd, call_fd; /* -1 when absent */
};

/* One descriptor chain taken from the avail ring: the guest buffers split into what we may read
 * (driver-to-device) and what we may write (device-to-driver), already bounds-checked. */
struct vring_chain {
	uint16_t head;
	struct iovec rd[VRING_MAX_CHAIN];
	unsigned n_rd;
	size_t rd_len;
	struct iovec wr[VRING_MAX_CHAIN];
	unsigned n_wr;
	size_t wr_len;
};

void vring_init(struct vring *vr);
/* Translates the ring addresses through mem; an error (ring left unmapped) when any part of the
 * three ring areas lies outside guest memory or the size is not a power of two. */
int vring_map(struct vring *vr, const struct vhost_mem *mem, struct err **err);
/* True when the guest has made buffers available that we have not taken. */
bool vring_has_avail(const struct vring *vr);
/* Takes the next available chain. Returns 1 with *chain filled, 0 when none is available, -1
 * when the ring itself is corrupt (bad head index, loop, descriptor outside memory): the chain is
 * returned to the guest as used with length 0 where possible, and the error says why. */
int vring_pop(struct vring *vr, const struct vhost_mem *mem, struct vring_chain *chain, struct err **err);
/* Gives back the chain taken last, unconsumed (the next pop returns it again). */
void vring_unpop(struct vring *vr);
/* Returns a chain to the guest with `written` bytes of device-to-driver data. */
void vring_push(struct vring *vr, uint16_t head, uint32_t written);
/* Signals the guest (call eventfd) if used entries were added since the last signal. */
void vring_notify(struct vring *vr);

/* Copy out of / into a chain's iovecs from a byte offset; return the bytes copied. */
size_t iov_copy_from(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len);
size_t iov_copy_to(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len);

/* ---------------------------------------------------------------- vhost-user protocol
 * The device state QEMU drives over the vhost-user socket (docs: QEMU's vhost-user.rst). */
#define VHOST_MAX_QUEUES 3 /* vsock: rx, tx, event (QEMU keeps the event queue to itself) */
#define VSOCK_QUEUE_RX   0
#define VSOCK_QUEUE_TX   1
struct vhost_dev {
	int fd;                     /* the connection from QEMU */
	uint64_t features;          /* acked by SET_FEATURES */
	uint64_t protocol_features; /* acked by SET_PROTOCOL_FEATURES */
	struct vhost_mem mem;
	struct vring vq[VHOST_MAX_QUEUES];
	uint64_t guest_cid; /* reported in the config space */
	bool rings_stopped; /* a ring was stopped: the backend drops its connections */
};
void vhost_dev_init(struct vhost_dev *dev, uint64_t guest_cid);
/* Closes every descriptor and mapping (not dev->fd). */
void vhost_dev_release(struct vhost_dev *dev);
/* Reads and answers one message. Returns 0, 1 when QEMU closed the connection, -1 on a protocol
 * error (the caller then drops the connection). */
int vhost_user_handle(struct vhost_dev *dev, struct err **err);

/* ---------------------------------------------------------------- vsock packets */
#define VSOCK_HDR_SIZE       44
#define VSOCK_TYPE_STREAM    1
#define VSOCK_TYPE_SEQPACKET 2
enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};
#define VSOCK_SHUTDOWN_RCV  1
#define VSOCK_SHUTDOWN_SEND 2
/* Largest payload we accept in one packet from the guest (Linux sends at most 64 KiB). */
#define VSOCK_MAX_PAYLOAD (64 * 1024)

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};
/* Parses a little-endian header; an error when the op or type is unknown or len is above max. */
int vsock_hdr_parse(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *h, struct err **err);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_SIZE]);
const char *vsock_op_name(unsigned op);

/* Credit accounting for one connection, both directions (virtio spec 5.10.6.3). Counters are
 * free-running u32s, so every difference is taken modulo 2^32. */
struct vsock_credit {
	/* towards the guest: what the guest told us and what we sent */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	/* from the guest: our buffer, what we passed on to the host socket, what we last told it */
	uint32_t buf_alloc, fwd_cnt, last_fwd_cnt_sent;
	uint32_t rx_cnt; /* bytes received from the guest */
};
/* Bytes we may still send to the guest. */
uint32_t vsock_credit_peer_free(const struct vsock_credit *c);
/* Records a header from the guest (its buf_alloc and fwd_cnt). */
void vsock_credit_peer_update(struct vsock_credit *c, uint32_t buf_alloc, uint32_t fwd_cnt);
/* Records `len` payload bytes received; an error when that overruns the buffer we advertised. */
int vsock_credit_rx(struct vsock_credit *c, uint32_t len, struct err **err);
/* True when enough of our buffer was freed since we last told the guest to send a CREDIT_UPDATE. */
bool vsock_credit_update_due(const struct vsock_credit *c);

/* ---------------------------------------------------------------- host endpoints */
/* A close-on-exec socket to the endpoint, non-blocking, and its connect without waiting: *pending while it has not completed (TCP in progress,
 * or a unix listener with a full backlog); then vsock_endpoint_connect_again until it completes
 * (*pending false) or fails (-1). */
int vsock_endpoint_connect(const struct vsock_endpoint *ep, bool *pending, struct err **err);
int vsock_endpoint_connect_again(const struct vsock_endpoint *ep, int fd, bool *pending, struct err **err);
/* A listening, non-blocking socket on the endpoint (a stale unix socket file is replaced). */
int vsock_endpoint_listen(const struct vsock_endpoint *ep, struct err **err);
/* "unix:PATH" or "tcp:PORT" for messages; static buffer owned by the caller. */
const char *vsock_endpoint_name(const struct vsock_endpoint *ep, char *out, size_t out_len);

#endif
