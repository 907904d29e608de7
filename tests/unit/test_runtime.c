/* test_runtime: the pure parts of the vsock backend: packet headers, credit accounting, guest
 * memory translation and split-virtqueue parsing against hostile indices, addresses and lengths. */
#include <string.h>

#include "runtime/internal.h"
#include "tests/harness.h"

/* ---------------------------------------------------------------- packet headers */

TEST(vsock_hdr_round_trip)
{
	struct vsock_hdr h = {.src_cid = 21,
	                      .dst_cid = 3,
	                      .src_port = 1234,
	                      .dst_port = 9000,
	                      .len = 5,
	                      .type = VSOCK_TYPE_STREAM,
	                      .op = VSOCK_OP_RW,
	                      .flags = 0,
	                      .buf_alloc = 262144,
	                      .fwd_cnt = 77};
	uint8_t raw[VSOCK_HDR_SIZE];
	vsock_hdr_encode(&h, raw);
	/* Little-endian fields at the virtio spec's offsets. */
	CHECK(raw[0] == 21 && raw[8] == 3);
	CHECK(raw[16] == (1234 & 0xff) && raw[17] == (1234 >> 8));
	CHECK(raw[20] == (9000 & 0xff) && raw[21] == (9000 >> 8));
	CHECK(raw[24] == 5 && raw[28] == 1 && raw[30] == 5);
	CHECK(raw[36] == 0 && raw[37] == 0 && raw[38] == 4); /* 262144 = 0x40000 */
	CHECK(raw[40] == 77);
	struct vsock_hdr back;
	struct err *err = NULL;
	REQUIRE(vsock_hdr_parse(raw, &back, &err) == 0);
	CHECK(memcmp(&h, &back, sizeof(h)) == 0);
}

static int parse_with(uint16_t op, uint16_t type, uint32_t len, struct err **err)
{
	struct vsock_hdr h = {.type = type, .op = op, .len = len}, out;
	uint8_t raw[VSOCK_HDR_SIZE];
	vsock_hdr_encode(&h, raw);
	return vsock_hdr_parse(raw, &out, err);
}

TEST(vsock_hdr_rejects_bad_fields)
{
	struct err *err = NULL;
	CHECK(parse_with(0, VSOCK_TYPE_STREAM, 0, &err) < 0);
	CHECK_ERR_CONTAINS(err, "op 0 (offset 30)");
	err_free(&err);
	CHECK(parse_with(8, VSOCK_TYPE_STREAM, 0, &err) < 0);
	CHECK_ERR_CONTAINS(err, "op 8");
	err_free(&err);
	CHECK(parse_with(0xffff, VSOCK_TYPE_STREAM, 0, &err) < 0);
	err_free(&err);
	CHECK(parse_with(VSOCK_OP_RW, 3, 0, &err) < 0);
	CHECK_ERR_CONTAINS(err, "type 3 (offset 28)");
	err_free(&err);
	CHECK(parse_with(VSOCK_OP_RW, VSOCK_TYPE_STREAM, VSOCK_MAX_PAYLOAD + 1, &err) < 0);
	CHECK_ERR_CONTAINS(err, "len 65537 (offset 24)");
	err_free(&err);
	CHECK(parse_with(VSOCK_OP_RW, VSOCK_TYPE_STREAM, 0xffffffff, &err) < 0);
	err_free(&err);
	CHECK(parse_with(VSOCK_OP_REQUEST, VSOCK_TYPE_STREAM, 10, &err) < 0);
	CHECK_ERR_CONTAINS(err, "REQUEST with a 10-byte payload");
	err_free(&err);
	CHECK(parse_with(VSOCK_OP_RW, VSOCK_TYPE_STREAM, VSOCK_MAX_PAYLOAD, &err) == 0);
	CHECK(parse_with(VSOCK_OP_CREDIT_REQUEST, VSOCK_TYPE_SEQPACKET, 0, &err) == 0);
	CHECK(err == NULL);
}

/* ---------------------------------------------------------------- credit */

TEST(vsock_credit_towards_guest)
{
	struct vsock_credit c = {0};
	CHECK_INT_EQ(vsock_credit_peer_free(&c), 0); /* nothing advertised yet */
	vsock_credit_peer_update(&c, 1000, 0);
	CHECK_INT_EQ(vsock_credit_peer_free(&c), 1000);
	c.tx_cnt = 600;
	CHECK_INT_EQ(vsock_credit_peer_free(&c), 400);
	vsock_credit_peer_update(&c, 1000, 500);
	CHECK_INT_EQ(vsock_credit_peer_free(&c), 900);
	/* Counters wrap at 2^32. */
	c.tx_cnt = 100;
	vsock_credit_peer_update(&c, 1000, 0xffffff00u);
	CHECK_INT_EQ(vsock_credit_peer_free(&c), 1000 - 356);
	/* A guest claiming more consumed than sent, or a buffer smaller than what is in flight, gets
	 * no credit rather than nearly 4 GiB of it. */
	c.tx_cnt = 100;
	vsock_credit_peer_update(&c, 1000, 200);
	CHECK_INT_EQ(vsock_credit_peer_free(&c), 0);
	c.tx_cnt = 5000;
	vsock_credit_peer_update(&c, 1000, 0);
	CHECK_INT_EQ(vsock_credit_peer_free(&c), 0);
}

TEST(vsock_credit_from_guest)
{
	struct vsock_credit c = {.buf_alloc = 1000};
	struct err *err = NULL;
	CHECK(vsock_credit_rx(&c, 600, &err) == 0);
	CHECK(vsock_credit_rx(&c, 400, &err) == 0);
	CHECK(vsock_credit_rx(&c, 1, &err) < 0); /* the guest ignored our buffer size */
	CHECK_ERR_CONTAINS(err, "1000 of our 1000-byte buffer in use");
	err_free(&err);
	CHECK(!vsock_credit_update_due(&c));
	c.fwd_cnt = 249; /* passed on to the host socket */
	CHECK(!vsock_credit_update_due(&c));
	c.fwd_cnt = 250;
	CHECK(vsock_credit_update_due(&c));
	CHECK(vsock_credit_rx(&c, 250, &err) == 0);
	CHECK(vsock_credit_rx(&c, 0xffffffffu, &err) < 0);
	err_free(&err);
	/* Wrapping counters. */
	struct vsock_credit w = {.buf_alloc = 1000, .rx_cnt = 0xfffffff0u, .fwd_cnt = 0xfffffff0u};
	CHECK(vsock_credit_rx(&w, 1000, &err) == 0);
	CHECK(vsock_credit_rx(&w, 1, &err) < 0);
	err_free(&err);
}

/* ---------------------------------------------------------------- guest memory */

#define GPA      0x100000ull
#define UVA      0x7f0000000000ull
#define MEM_SIZE 65536

struct guest {
	struct vhost_mem mem;
	uint8_t *ram;
};

static void guest_init(struct guest *g)
{
	g->ram = xcalloc(1, MEM_SIZE);
	memset(&g->mem, 0, sizeof(g->mem));
	g->mem.regions[0] = (struct vhost_mem_region){.gpa = GPA, .size = MEM_SIZE, .uva = UVA, .host = g->ram};
	g->mem.n = 1;
}

TEST(vhost_mem_translation_bounds)
{
	struct guest g;
	guest_init(&g);
	CHECK(vhost_mem_gpa(&g.mem, GPA, MEM_SIZE) == g.ram);
	CHECK(vhost_mem_gpa(&g.mem, GPA + 10, 5) == g.ram + 10);
	CHECK(vhost_mem_gpa(&g.mem, GPA + MEM_SIZE - 1, 1) == g.ram + MEM_SIZE - 1);
	CHECK(vhost_mem_gpa(&g.mem, GPA + MEM_SIZE - 1, 2) == NULL);
	CHECK(vhost_mem_gpa(&g.mem, GPA - 1, 1) == NULL);
	CHECK(vhost_mem_gpa(&g.mem, GPA + MEM_SIZE, 1) == NULL);
	CHECK(vhost_mem_gpa(&g.mem, 0, 1) == NULL);
	/* Sums that overflow 64 bits must not wrap into the region. */
	CHECK(vhost_mem_gpa(&g.mem, UINT64_MAX, 2) == NULL);
	CHECK(vhost_mem_gpa(&g.mem, GPA + 16, UINT64_MAX) == NULL);
	CHECK(vhost_mem_gpa(&g.mem, GPA + 16, UINT64_MAX - GPA) == NULL);
	CHECK(vhost_mem_uva(&g.mem, UVA + 8, 8) == g.ram + 8);
	CHECK(vhost_mem_uva(&g.mem, GPA, 8) == NULL);
	CHECK(vhost_mem_uva(&g.mem, UVA + MEM_SIZE - 4, 8) == NULL);
	struct vhost_mem empty = {0};
	CHECK(vhost_mem_gpa(&empty, GPA, 1) == NULL);
	free(g.ram);
}

/* ---------------------------------------------------------------- split virtqueues */

#define NUM       8
#define DESC_OFF  0x0
#define AVAIL_OFF 0x1000
#define USED_OFF  0x2000
#define BUF_OFF   0x4000

static void put_desc(struct guest *g, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = g->ram + DESC_OFF + 16 * i;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void put_avail(struct guest *g, uint16_t slot, uint16_t head, uint16_t idx)
{
	memcpy(g->ram + AVAIL_OFF + 4 + 2 * (slot % NUM), &head, 2);
	memcpy(g->ram + AVAIL_OFF + 2, &idx, 2);
}

static uint16_t used_idx(struct guest *g)
{
	uint16_t v;
	memcpy(&v, g->ram + USED_OFF + 2, 2);
	return v;
}

static void used_elem(struct guest *g, uint16_t slot, uint32_t *id, uint32_t *len)
{
	memcpy(id, g->ram + USED_OFF + 4 + 8 * (slot % NUM), 4);
	memcpy(len, g->ram + USED_OFF + 8 + 8 * (slot % NUM), 4);
}

static void ring_init(struct guest *g, struct vring *vr)
{
	guest_init(g);
	vring_init(vr);
	vr->num = NUM;
	vr->desc_uva = UVA + DESC_OFF;
	vr->avail_uva = UVA + AVAIL_OFF;
	vr->used_uva = UVA + USED_OFF;
	vr->enabled = vr->started = true;
}

TEST(vring_map_checks_ring_areas)
{
	struct guest g;
	struct vring vr;
	struct err *err = NULL;
	ring_init(&g, &vr);
	CHECK(vring_map(&vr, &g.mem, &err) == 0);
	vr.num = 6;
	CHECK(vring_map(&vr, &g.mem, &err) < 0);
	CHECK_ERR_CONTAINS(err, "power of two");
	err_free(&err);
	vr.num = NUM;
	vr.used_uva = UVA + MEM_SIZE - 8; /* the used ring runs off the end */
	CHECK(vring_map(&vr, &g.mem, &err) < 0);
	CHECK_ERR_CONTAINS(err, "used area");
	err_free(&err);
	CHECK(!vring_has_avail(&vr)); /* unmapped: nothing to take, no crash */
	struct vring_chain chain;
	CHECK(vring_pop(&vr, &g.mem, &chain, &err) == 0);
	free(g.ram);
}

TEST(vring_pop_valid_chain)
{
	struct guest g;
	struct vring vr;
	struct err *err = NULL;
	ring_init(&g, &vr);
	REQUIRE(vring_map(&vr, &g.mem, &err) == 0);
	/* A tx-like chain: header (readable) -> payload (readable) -> status (writable). */
	put_desc(&g, 3, GPA + BUF_OFF, 44, VRING_DESC_F_NEXT, 5);
	put_desc(&g, 5, GPA + BUF_OFF + 100, 10, VRING_DESC_F_NEXT, 1);
	put_desc(&g, 1, GPA + BUF_OFF + 200, 64, VRING_DESC_F_WRITE, 0);
	memcpy(g.ram + BUF_OFF, "HEADER", 6);
	memcpy(g.ram + BUF_OFF + 100, "payload!!!", 10);
	put_avail(&g, 0, 3, 1);
	CHECK(vring_has_avail(&vr));
	struct vring_chain c;
	REQUIRE(vring_pop(&vr, &g.mem, &c, &err) == 1);
	CHECK_INT_EQ(c.head, 3);
	CHECK_INT_EQ(c.n_rd, 2);
	CHECK_INT_EQ(c.rd_len, 54);
	CHECK_INT_EQ(c.n_wr, 1);
	CHECK_INT_EQ(c.wr_len, 64);
	char buf[16] = {0};
	CHECK_INT_EQ(iov_copy_from(c.rd, c.n_rd, 44, buf, 16), 10); /* across the segment boundary */
	CHECK(memcmp(buf, "payload!!!", 10) == 0);
	CHECK_INT_EQ(iov_copy_to(c.wr, c.n_wr, 60, "abcdefgh", 8), 4); /* clipped at the buffer's end */
	CHECK(memcmp(g.ram + BUF_OFF + 200 + 60, "abcd", 4) == 0);
	CHECK(!vring_has_avail(&vr));
	CHECK(vring_pop(&vr, &g.mem, &c, &err) == 0);
	vring_push(&vr, 3, 17);
	CHECK_INT_EQ(used_idx(&g), 1);
	uint32_t id, len;
	used_elem(&g, 0, &id, &len);
	CHECK_INT_EQ(id, 3);
	CHECK_INT_EQ(len, 17);
	/* unpop gives the same chain again. */
	put_avail(&g, 1, 1, 2);
	REQUIRE(vring_pop(&vr, &g.mem, &c, &err) == 1);
	vring_unpop(&vr);
	REQUIRE(vring_pop(&vr, &g.mem, &c, &err) == 1);
	CHECK_INT_EQ(c.head, 1);
	free(g.ram);
}

/* Each hostile chain is refused with an error, returned to the guest as used with length 0, and
 * the ring goes on working. */
TEST(vring_pop_hostile_descriptors)
{
	struct guest g;
	struct vring vr;
	struct err *err = NULL;
	ring_init(&g, &vr);
	REQUIRE(vring_map(&vr, &g.mem, &err) == 0);
	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
		const char *want;
	} cases[] = {
	    {GPA + MEM_SIZE - 4, 8, 0, 0, "outside guest memory"},
	    {0, 1, 0, 0, "outside guest memory"},
	    {UINT64_MAX - 2, 16, 0, 0, "outside guest memory"},
	    {GPA, 0xffffffffu, VRING_DESC_F_WRITE, 0, "outside guest memory"},
	    {GPA + BUF_OFF, 8, VRING_DESC_F_INDIRECT, 0, "indirect"},
	    {GPA + BUF_OFF, 8, VRING_DESC_F_NEXT, 0xffff, "next 65535"},
	    {GPA + BUF_OFF, 8, VRING_DESC_F_NEXT, 2, "a loop"}, /* 2 -> 2 -> ... */
	};
	uint16_t idx = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		put_desc(&g, 2, cases[i].addr, cases[i].len, cases[i].flags, cases[i].next);
		put_avail(&g, idx, 2, (uint16_t)(idx + 1));
		idx++;
		struct vring_chain c;
		CHECK(vring_pop(&vr, &g.mem, &c, &err) == -1);
		CHECK_ERR_CONTAINS(err, cases[i].want);
		err_free(&err);
		CHECK_INT_EQ(used_idx(&g), idx);
		uint32_t id, len;
		used_elem(&g, (uint16_t)(idx - 1), &id, &len);
		CHECK_INT_EQ(id, 2);
		CHECK_INT_EQ(len, 0);
		CHECK(!vr.broken);
	}
	/* A good chain still works afterwards. */
	put_desc(&g, 4, GPA + BUF_OFF, 44, 0, 0);
	put_avail(&g, idx, 4, (uint16_t)(idx + 1));
	struct vring_chain c;
	CHECK(vring_pop(&vr, &g.mem, &c, &err) == 1);
	free(g.ram);
}

TEST(vring_pop_hostile_ring_indices)
{
	struct guest g;
	struct vring vr;
	struct err *err = NULL;
	struct vring_chain c;
	ring_init(&g, &vr);
	REQUIRE(vring_map(&vr, &g.mem, &err) == 0);
	put_avail(&g, 0, NUM, 1); /* head index past the table */
	CHECK(vring_pop(&vr, &g.mem, &c, &err) == -1);
	CHECK_ERR_CONTAINS(err, "names descriptor 8 of 8");
	err_free(&err);
	CHECK(vr.broken);
	CHECK(vring_pop(&vr, &g.mem, &c, &err) == 0); /* a broken ring is left alone */
	CHECK(!vring_has_avail(&vr));
	/* A new mapping (the guest reset its device) clears it. */
	REQUIRE(vring_map(&vr, &g.mem, &err) == 0);
	vr.last_avail = 1;
	put_desc(&g, 0, GPA + BUF_OFF, 8, 0, 0);
	put_avail(&g, 1, 0, (uint16_t)(1 + NUM + 1)); /* more entries than the ring has */
	CHECK(vring_pop(&vr, &g.mem, &c, &err) == -1);
	CHECK_ERR_CONTAINS(err, "entries ahead");
	err_free(&err);
	/* Index wrap-around at 2^16 is normal. */
	REQUIRE(vring_map(&vr, &g.mem, &err) == 0);
	vr.last_avail = 0xffff;
	put_avail(&g, 0xffff, 0, 0);
	REQUIRE(vring_pop(&vr, &g.mem, &c, &err) == 1);
	CHECK_INT_EQ(vr.last_avail, 0);
	free(g.ram);
}

TEST(vring_disabled_or_stopped_ring_yields_nothing)
{
	struct guest g;
	struct vring vr;
	struct err *err = NULL;
	struct vring_chain c;
	ring_init(&g, &vr);
	REQUIRE(vring_map(&vr, &g.mem, &err) == 0);
	put_desc(&g, 0, GPA + BUF_OFF, 8, 0, 0);
	put_avail(&g, 0, 0, 1);
	vr.enabled = false;
	CHECK(vring_pop(&vr, &g.mem, &c, &err) == 0);
	vr.enabled = true;
	vr.started = false;
	CHECK(vring_pop(&vr, &g.mem, &c, &err) == 0);
	vr.started = true;
	CHECK(vring_pop(&vr, &g.mem, &c, &err) == 1);
	free(g.ram);
}
