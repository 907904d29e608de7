/* vhost_vring: the device side of a split virtqueue in guest memory we share with a guest we do
 * not trust: every index, address and length read from the ring is checked before use. */
#include <string.h>

#include "runtime/internal.h"

void vring_init(struct vring *vr)
{
	memset(vr, 0, sizeof(*vr));
	vr->kick_fd = -1;
	vr->call_fd = -1;
}

int vring_map(struct vring *vr, const struct vhost_mem *mem, struct err **err)
{
	vr->desc = vr->avail = vr->used = NULL;
	unsigned num = vr->num;
	if (num == 0 || num > VRING_MAX_NUM || (num & (num - 1)) != 0)
		return err_set(err, EINVAL, "vring size %u is not a power of two up to %u", num, VRING_MAX_NUM);
	/* Sizes from the virtio spec, with the event-index words included to be safe. */
	uint8_t *d = vhost_mem_uva(mem, vr->desc_uva, 16ull * num);
	uint8_t *a = vhost_mem_uva(mem, vr->avail_uva, 6 + 2ull * num);
	uint8_t *u = vhost_mem_uva(mem, vr->used_uva, 6 + 8ull * num);
	if (!d || !a || !u)
		return err_set(err, EFAULT, "vring %s area (0x%llx) is outside guest memory",
		               !d   ? "descriptor"
		               : !a ? "avail"
		                    : "used",
		               (unsigned long long)(!d   ? vr->desc_uva
		                                    : !a ? vr->avail_uva
		                                         : vr->used_uva));
	vr->desc = d;
	vr->avail = a;
	vr->used = u;
	vr->broken = false;
	return 0;
}

static uint16_t load16(const uint8_t *p)
{
	uint16_t v;
	__atomic_load((const uint16_t *)(const void *)p, &v, __ATOMIC_ACQUIRE);
	return v;
}

static bool vring_ready(const struct vring *vr)
{
	return vr->desc && vr->enabled && vr->started && !vr->broken;
}

bool vring_has_avail(const struct vring *vr)
{
	return vring_ready(vr) && load16(vr->avail + 2) != vr->last_avail;
}

int vring_pop(struct vring *vr, const struct vhost_mem *mem, struct vring_chain *chain, struct err **err)
{
	if (!vring_ready(vr))
		return 0;
	uint16_t avail_idx = load16(vr->avail + 2);
	if (avail_idx == vr->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - vr->last_avail) > vr->num) {
		vr->broken = true;
		return err_set(err, EPROTO, "avail index %u is %u entries ahead of %u on a %u-entry ring", avail_idx,
		               (uint16_t)(avail_idx - vr->last_avail), vr->last_avail, vr->num);
	}
	uint16_t head;
	memcpy(&head, vr->avail + 4 + 2 * (vr->last_avail % vr->num), 2);
	if (head >= vr->num) {
		vr->broken = true;
		return err_set(err, EPROTO, "avail ring entry %u names descriptor %u of %u", vr->last_avail, head,
		               vr->num);
	}
	vr->last_avail++;
	memset(chain, 0, sizeof(*chain));
	chain->head = head;
	unsigned i = head;
	for (unsigned count = 0;; count++) {
		if (count >= VRING_MAX_CHAIN || count >= vr->num) {
			err_set(err, EPROTO, "descriptor chain from %u longer than %u (a loop?)", head,
			        count >= vr->num ? vr->num : VRING_MAX_CHAIN);
			goto bad;
		}
		/* One copy of the descriptor: the guest may change it while we look. */
		uint8_t raw[16];
		memcpy(raw, vr->desc + 16 * i, 16);
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
		memcpy(&addr, raw, 8);
		memcpy(&len, raw + 8, 4);
		memcpy(&flags, raw + 12, 2);
		memcpy(&next, raw + 14, 2);
		if (flags & VRING_DESC_F_INDIRECT) {
			err_set(err, EPROTO, "descriptor %u is indirect (not negotiated)", i);
			goto bad;
		}
		if (len > 0) {
			uint8_t *p = vhost_mem_gpa(mem, addr, len);
			if (!p) {
				err_set(err, EFAULT, "descriptor %u: 0x%llx+%u is outside guest memory", i,
				        (unsigned long long)addr, len);
				goto bad;
			}
			bool wr = flags & VRING_DESC_F_WRITE;
			struct iovec *iov = wr ? chain->wr : chain->rd;
			unsigned *n = wr ? &chain->n_wr : &chain->n_rd;
			iov[*n].iov_base = p;
			iov[*n].iov_len = len;
			(*n)++;
			if (wr)
				chain->wr_len += len;
			else
				chain->rd_len += len;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		if (next >= vr->num) {
			err_set(err, EPROTO, "descriptor %u: next %u of %u", i, next, vr->num);
			goto bad;
		}
		i = next;
	}
	return 1;
bad:
	vring_push(vr, head, 0);
	return -1;
}

void vring_unpop(struct vring *vr)
{
	vr->last_avail--;
}

void vring_push(struct vring *vr, uint16_t head, uint32_t written)
{
	if (!vr->used)
		return;
	uint16_t idx;
	__atomic_load((uint16_t *)(void *)(vr->used + 2), &idx, __ATOMIC_RELAXED);
	uint8_t *elem = vr->used + 4 + 8 * (idx % vr->num);
	uint32_t id = head;
	memcpy(elem, &id, 4);
	memcpy(elem + 4, &written, 4);
	idx++;
	/* The element must be visible before the index that publishes it. */
	__atomic_store((uint16_t *)(void *)(vr->used + 2), &idx, __ATOMIC_RELEASE);
	vr->need_call = true;
}

void vring_notify(struct vring *vr)
{
	if (!vr->need_call)
		return;
	vr->need_call = false;
	if (vr->call_fd >= 0) {
		uint64_t one = 1;
		ssize_t r = write(vr->call_fd, &one, sizeof(one));
		(void)r; /* an eventfd write fails only when the counter is saturated: the guest is signalled */
	}
}

size_t iov_copy_from(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - off;
		if (take > len - done)
			take = len - done;
		memcpy((uint8_t *)dst + done, (const uint8_t *)iov[i].iov_base + off, take);
		done += take;
		off = 0;
	}
	return done;
}

size_t iov_copy_to(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - off;
		if (take > len - done)
			take = len - done;
		memcpy((uint8_t *)iov[i].iov_base + off, (const uint8_t *)src + done, take);
		done += take;
		off = 0;
	}
	return done;
}
