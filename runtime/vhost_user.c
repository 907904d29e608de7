/* vhost_user: the backend side of QEMU's vhost-user protocol for a vsock device: feature
 * negotiation, the guest memory table (mmap of the fds QEMU sends), vring setup and eventfds. */
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "runtime/internal.h"

enum {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
};
#define VHOST_USER_VERSION     0x1
#define VHOST_USER_REPLY       0x4
#define VHOST_USER_NEED_REPLY  0x8
#define VHOST_USER_MAX_FDS     8
#define VHOST_USER_MAX_PAYLOAD 4096
#define VHOST_USER_VRING_NOFD  (1u << 8)

#define VIRTIO_F_VERSION_1             (1ull << 32)
#define VHOST_USER_F_PROTOCOL_FEATURES (1ull << 30)
#define VHOST_USER_PROTOCOL_F_CONFIG   (1ull << 9)
#define BACKEND_FEATURES               (VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES)
#define BACKEND_PROTOCOL_FEATURES      VHOST_USER_PROTOCOL_F_CONFIG

struct msg {
	uint32_t request, flags, size;
	uint8_t payload[VHOST_USER_MAX_PAYLOAD];
	int fds[VHOST_USER_MAX_FDS];
	unsigned n_fds;
};

void vhost_dev_init(struct vhost_dev *dev, uint64_t guest_cid)
{
	memset(dev, 0, sizeof(*dev));
	dev->fd = -1;
	dev->guest_cid = guest_cid;
	for (unsigned i = 0; i < VHOST_MAX_QUEUES; i++)
		vring_init(&dev->vq[i]);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void vhost_dev_release(struct vhost_dev *dev)
{
	for (unsigned i = 0; i < VHOST_MAX_QUEUES; i++) {
		close_fd(&dev->vq[i].kick_fd);
		close_fd(&dev->vq[i].call_fd);
	}
	vhost_mem_clear(&dev->mem);
}

static void msg_close_fds(struct msg *m)
{
	for (unsigned i = 0; i < m->n_fds; i++)
		close_fd(&m->fds[i]);
	m->n_fds = 0;
}

/* Returns 1 on a clean end of stream before any byte. */
static int msg_read(int fd, struct msg *m, struct err **err)
{
	uint8_t hdr[12];
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {hdr, sizeof(hdr)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
	m->n_fds = 0;
	ssize_t n;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return err_sys(err, "vhost-user: recvmsg");
	if (n == 0)
		return 1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && m->n_fds < VHOST_USER_MAX_FDS; i++)
			memcpy(&m->fds[m->n_fds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (n < (ssize_t)sizeof(hdr) &&
	    io_read_full(fd, hdr + n, sizeof(hdr) - (size_t)n, err) != (ssize_t)(sizeof(hdr) - (size_t)n)) {
		msg_close_fds(m);
		return *err ? err_wrap(err, "vhost-user: header") : err_set(err, EPROTO, "vhost-user: short header");
	}
	memcpy(&m->request, hdr, 4);
	memcpy(&m->flags, hdr + 4, 4);
	memcpy(&m->size, hdr + 8, 4);
	if (m->size > VHOST_USER_MAX_PAYLOAD) {
		msg_close_fds(m);
		return err_set(err, EPROTO, "vhost-user: request %u with a %u-byte payload", m->request, m->size);
	}
	if (m->size && io_read_full(fd, m->payload, m->size, err) != (ssize_t)m->size) {
		msg_close_fds(m);
		return *err ? err_wrap(err, "vhost-user: payload") : err_set(err, EPROTO, "vhost-user: short payload");
	}
	return 0;
}

static int msg_reply(int fd, uint32_t request, const void *payload, uint32_t size, struct err **err)
{
	uint8_t out[12 + 512];
	uint32_t flags = VHOST_USER_VERSION | VHOST_USER_REPLY;
	memcpy(out, &request, 4);
	memcpy(out + 4, &flags, 4);
	memcpy(out + 8, &size, 4);
	memcpy(out + 12, payload, size);
	return io_write_full(fd, out, 12 + size, err);
}

static int reply_u64(int fd, uint32_t request, uint64_t v, struct err **err)
{
	return msg_reply(fd, request, &v, sizeof(v), err);
}

static int need(const struct msg *m, uint32_t size, struct err **err)
{
	if (m->size < size)
		return err_set(err, EPROTO, "vhost-user: request %u: payload of %u bytes, expected %u", m->request,
		               m->size, size);
	return 0;
}

static int set_mem_table(struct vhost_dev *dev, struct msg *m, struct err **err)
{
	uint32_t n;
	if (need(m, 8, err) < 0)
		return -1;
	memcpy(&n, m->payload, 4);
	if (n > VHOST_MEM_MAX_REGIONS || n != m->n_fds || need(m, 8 + 32 * n, err) < 0) {
		if (!*err)
			err_set(err, EPROTO, "vhost-user: memory table of %u regions with %u descriptors", n, m->n_fds);
		return -1;
	}
	struct vhost_mem mem = {0};
	for (uint32_t i = 0; i < n; i++) {
		uint64_t f[4];
		memcpy(f, m->payload + 8 + 32 * i, sizeof(f));
		struct vhost_mem_region *r = &mem.regions[i];
		r->gpa = f[0];
		r->size = f[1];
		r->uva = f[2];
		uint64_t offset = f[3];
		if (r->size == 0 || offset > UINT64_MAX - r->size || r->size + offset > SIZE_MAX) {
			vhost_mem_clear(&mem);
			return err_set(err, EPROTO, "vhost-user: memory region %u: size 0x%llx at offset 0x%llx", i,
			               (unsigned long long)r->size, (unsigned long long)offset);
		}
		/* Map from 0 so the offset need not be page aligned. */
		r->map_len = (size_t)(r->size + offset);
		r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[i], 0);
		if (r->map == MAP_FAILED) {
			r->map = NULL;
			vhost_mem_clear(&mem);
			return err_sys(err, "vhost-user: mmap memory region %u (0x%llx bytes)", i,
			               (unsigned long long)r->map_len);
		}
		r->host = (uint8_t *)r->map + offset;
		mem.n = i + 1;
		log_debug("vsock: memory region %u: guest 0x%llx size 0x%llx", i, (unsigned long long)r->gpa,
		          (unsigned long long)r->size);
	}
	vhost_mem_clear(&dev->mem);
	dev->mem = mem;
	for (unsigned i = 0; i < VHOST_MAX_QUEUES; i++) {
		struct vring *vr = &dev->vq[i];
		if (vr->desc_uva && vring_map(vr, &dev->mem, err) < 0)
			return err_wrap(err, "vring %u", i);
	}
	return 0;
}

static int vring_index(const struct msg *m, uint32_t idx, struct err **err)
{
	if (idx >= VHOST_MAX_QUEUES)
		return err_set(err, EPROTO, "vhost-user: request %u for vring %u", m->request, idx);
	return (int)idx;
}

int vhost_user_handle(struct vhost_dev *dev, struct err **err)
{
	struct msg m;
	int r = msg_read(dev->fd, &m, err);
	if (r != 0)
		return r;
	uint32_t u32[2] = {0, 0};
	uint64_t u64 = 0;
	if (m.size >= 8)
		memcpy(&u64, m.payload, 8);
	if (m.size >= 8)
		memcpy(u32, m.payload, 8);
	int ret = 0, idx;
	switch (m.request) {
	case VHOST_USER_GET_FEATURES: ret = reply_u64(dev->fd, m.request, BACKEND_FEATURES, err); break;
	case VHOST_USER_SET_FEATURES:
		if ((ret = need(&m, 8, err)) == 0)
			dev->features = u64 & BACKEND_FEATURES;
		break;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		ret = reply_u64(dev->fd, m.request, BACKEND_PROTOCOL_FEATURES, err);
		break;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if ((ret = need(&m, 8, err)) == 0)
			dev->protocol_features = u64 & BACKEND_PROTOCOL_FEATURES;
		break;
	case VHOST_USER_GET_QUEUE_NUM: ret = reply_u64(dev->fd, m.request, 2, err); break;
	case VHOST_USER_SET_OWNER:
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_SET_CONFIG: break; /* the config space (the CID) is read-only */
	case VHOST_USER_SET_MEM_TABLE: ret = set_mem_table(dev, &m, err); break;
	case VHOST_USER_SET_VRING_NUM:
		if ((ret = need(&m, 8, err)) == 0 && (ret = idx = vring_index(&m, u32[0], err)) >= 0) {
			ret = 0;
			if (u32[1] == 0 || u32[1] > VRING_MAX_NUM || (u32[1] & (u32[1] - 1)))
				ret = err_set(err, EPROTO, "vhost-user: vring %d size %u", idx, u32[1]);
			else
				dev->vq[idx].num = u32[1];
		}
		break;
	case VHOST_USER_SET_VRING_ADDR:
		if ((ret = need(&m, 40, err)) == 0 && (ret = idx = vring_index(&m, u32[0], err)) >= 0) {
			struct vring *vr = &dev->vq[idx];
			memcpy(&vr->desc_uva, m.payload + 8, 8);
			memcpy(&vr->used_uva, m.payload + 16, 8);
			memcpy(&vr->avail_uva, m.payload + 24, 8);
			ret = 0;
			if (dev->mem.n && vring_map(vr, &dev->mem, err) < 0)
				ret = err_wrap(err, "vhost-user: vring %d", idx);
		}
		break;
	case VHOST_USER_SET_VRING_BASE:
		if ((ret = need(&m, 8, err)) == 0 && (ret = idx = vring_index(&m, u32[0], err)) >= 0) {
			dev->vq[idx].last_avail = (uint16_t)u32[1];
			ret = 0;
		}
		break;
	case VHOST_USER_GET_VRING_BASE:
		if ((ret = need(&m, 8, err)) == 0 && (ret = idx = vring_index(&m, u32[0], err)) >= 0) {
			struct vring *vr = &dev->vq[idx];
			vr->started = false;
			vr->enabled = false;
			close_fd(&vr->kick_fd);
			dev->rings_stopped = true;
			uint32_t out[2] = {(uint32_t)idx, vr->last_avail};
			ret = msg_reply(dev->fd, m.request, out, sizeof(out), err);
		}
		break;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		if ((ret = need(&m, 8, err)) == 0 && (ret = idx = vring_index(&m, (uint32_t)(u64 & 0xff), err)) >= 0) {
			ret = 0;
			int fd = -1;
			if (!(u64 & VHOST_USER_VRING_NOFD)) {
				if (m.n_fds != 1) {
					ret = err_set(err, EPROTO, "vhost-user: request %u without its descriptor",
					              m.request);
					break;
				}
				fd = m.fds[0];
				m.n_fds = 0;
			}
			struct vring *vr = &dev->vq[idx];
			if (m.request == VHOST_USER_SET_VRING_KICK) {
				close_fd(&vr->kick_fd);
				vr->kick_fd = fd;
				vr->started = true;
				if (!(dev->features & VHOST_USER_F_PROTOCOL_FEATURES))
					vr->enabled = true;
			} else if (m.request == VHOST_USER_SET_VRING_CALL) {
				close_fd(&vr->call_fd);
				vr->call_fd = fd;
			} else if (fd >= 0) {
				close(fd); /* we never report ring errors */
			}
		}
		break;
	case VHOST_USER_SET_VRING_ENABLE:
		if ((ret = need(&m, 8, err)) == 0 && (ret = idx = vring_index(&m, u32[0], err)) >= 0) {
			dev->vq[idx].enabled = u32[1] != 0;
			log_debug("vsock: vring %d %s (size %u)", idx, u32[1] ? "enabled" : "disabled",
			          dev->vq[idx].num);
			ret = 0;
		}
		break;
	case VHOST_USER_GET_CONFIG:
		if ((ret = need(&m, 12, err)) == 0) {
			uint32_t off, size, flags;
			memcpy(&off, m.payload, 4);
			memcpy(&size, m.payload + 4, 4);
			memcpy(&flags, m.payload + 8, 4);
			if (size > 256) {
				ret = err_set(err, EPROTO, "vhost-user: GET_CONFIG of %u bytes", size);
				break;
			}
			uint8_t config[8], out[12 + 256] = {0};
			memcpy(config, &dev->guest_cid, 8); /* struct virtio_vsock_config { le64 guest_cid; } */
			memcpy(out, &off, 4);
			memcpy(out + 4, &size, 4);
			memcpy(out + 8, &flags, 4);
			for (uint32_t i = 0; i < size; i++)
				if (off < 8 && i < 8 - off)
					out[12 + i] = config[off + i];
			ret = msg_reply(dev->fd, m.request, out, 12 + size, err);
		}
		break;
	default:
		log_debug("vsock: vhost-user request %u not supported", m.request);
		if (m.flags & VHOST_USER_NEED_REPLY)
			ret = reply_u64(dev->fd, m.request, 1, err); /* non-zero: failure */
		break;
	}
	msg_close_fds(&m);
	return ret < 0 ? -1 : 0;
}
