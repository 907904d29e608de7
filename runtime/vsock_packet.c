/* vsock_packet: the virtio-vsock packet header (little-endian, 44 bytes) and the per-connection
 * credit accounting of the virtio spec (5.10.6.3). Pure functions, no I/O. */
#include <endian.h>
#include <string.h>

#include "runtime/internal.h"

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}
static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return le16toh(v);
}
static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}
static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}
static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

const char *vsock_op_name(unsigned op)
{
	static const char *const names[] = {"INVALID",  "REQUEST", "RESPONSE",      "RST",
	                                    "SHUTDOWN", "RW",      "CREDIT_UPDATE", "CREDIT_REQUEST"};
	return op < sizeof(names) / sizeof(names[0]) ? names[op] : "unknown";
}

int vsock_hdr_parse(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *h, struct err **err)
{
	h->src_cid = get64(raw + 0);
	h->dst_cid = get64(raw + 8);
	h->src_port = get32(raw + 16);
	h->dst_port = get32(raw + 20);
	h->len = get32(raw + 24);
	h->type = get16(raw + 28);
	h->op = get16(raw + 30);
	h->flags = get32(raw + 32);
	h->buf_alloc = get32(raw + 36);
	h->fwd_cnt = get32(raw + 40);
	if (h->op < VSOCK_OP_REQUEST || h->op > VSOCK_OP_CREDIT_REQUEST)
		return err_set(err, EPROTO, "vsock header: op %u (offset 30) is not a known operation", h->op);
	if (h->type != VSOCK_TYPE_STREAM && h->type != VSOCK_TYPE_SEQPACKET)
		return err_set(err, EPROTO, "vsock header: type %u (offset 28) is neither stream nor seqpacket",
		               h->type);
	if (h->len > VSOCK_MAX_PAYLOAD)
		return err_set(err, EPROTO, "vsock header: len %u (offset 24) above the %u-byte limit", h->len,
		               VSOCK_MAX_PAYLOAD);
	if (h->op != VSOCK_OP_RW && h->len != 0)
		return err_set(err, EPROTO, "vsock header: %s with a %u-byte payload", vsock_op_name(h->op), h->len);
	return 0;
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_SIZE])
{
	put64(raw + 0, h->src_cid);
	put64(raw + 8, h->dst_cid);
	put32(raw + 16, h->src_port);
	put32(raw + 20, h->dst_port);
	put32(raw + 24, h->len);
	put16(raw + 28, h->type);
	put16(raw + 30, h->op);
	put32(raw + 32, h->flags);
	put32(raw + 36, h->buf_alloc);
	put32(raw + 40, h->fwd_cnt);
}

uint32_t vsock_credit_peer_free(const struct vsock_credit *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt; /* modulo 2^32 */
	/* A guest claiming to have consumed more than we sent, or shrinking its buffer below what is in
	 * flight, gets no credit rather than a huge one. */
	if (in_flight > c->peer_buf_alloc)
		return 0;
	return c->peer_buf_alloc - in_flight;
}

void vsock_credit_peer_update(struct vsock_credit *c, uint32_t buf_alloc, uint32_t fwd_cnt)
{
	c->peer_buf_alloc = buf_alloc;
	c->peer_fwd_cnt = fwd_cnt;
}

int vsock_credit_rx(struct vsock_credit *c, uint32_t len, struct err **err)
{
	uint32_t buffered = c->rx_cnt - c->fwd_cnt;
	if (len > c->buf_alloc || buffered > c->buf_alloc - len)
		return err_set(err, ENOBUFS, "guest sent %u bytes with %u of our %u-byte buffer in use", len, buffered,
		               c->buf_alloc);
	c->rx_cnt += len;
	return 0;
}

bool vsock_credit_update_due(const struct vsock_credit *c)
{
	return c->fwd_cnt - c->last_fwd_cnt_sent >= c->buf_alloc / 4;
}
