/* ne_launch: nitro-cli's run-enclave sequence against an ne_dev: size and CPU checks, slot, hugepages,
 * EIF at the load offset, regions, vCPUs, heartbeat listener, start, heartbeat, console, run info. */
#include <ctype.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "eif/eif.h"
#include "runtime/ne.h"
#include "runtime/runtime.h"

#define DEFAULT_CPUS       2
#define DEFAULT_MEMORY_MIB 4096
/* nitro-cli refuses memory below this many times the EIF's size. */
#define EIF_SIZE_RATIO 4

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ne_enclave_id(const char *asset_tag_path, uint64_t slot_uid, char *out, size_t out_len)
{
	_cleanup_free_ char *tag = NULL;
	size_t len = 0;
	struct err *e = NULL;
	if (io_read_file(asset_tag_path ? asset_tag_path : NE_DEFAULT_ASSET_TAG, 1024, &tag, &len, &e) < 0) {
		log_debug("nitro: %s; the enclave id uses nitro-cli's placeholder instance id", e->msg);
		err_free(&e);
	}
	/* nitro-cli drops every whitespace character of the tag (its trailing newline, mostly). */
	size_t w = 0;
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)tag[i]))
			tag[w++] = tag[i];
	if (w == 0)
		snprintf(out, out_len, "i-0000000000000000-enc%llx", (unsigned long long)slot_uid);
	else
		snprintf(out, out_len, "%.*s-enc%llx", (int)w, tag, (unsigned long long)slot_uid);
}

void ne_enclave_release(struct ne_enclave *enc)
{
	if (enc->console_fd >= 0) {
		close(enc->console_fd);
		enc->console_fd = -1;
	}
	/* Stop the enclave before unmapping: its memory is the enclave's until the slot is freed. */
	if (enc->fd >= 0) {
		enc->dev->ops->release(enc->dev, enc->fd);
		enc->fd = -1;
	}
	ne_mem_free(&enc->mem);
}

/* nitro-cli's default name: the file name without its ".eif". */
static void default_name(const char *path, char *out, size_t out_len)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	if (n > 4 && strcmp(base + n - 4, ".eif") == 0)
		n -= 4;
	snprintf(out, out_len, "%.*s", (int)n, base);
}

static int open_eif(const char *path, uint64_t *size, struct err **err)
{
	_cleanup_close_ int fd = io_open_regular(path, size, err);
	if (fd < 0)
		return err_wrap(err, "EIF");
	char magic[4] = {0};
	ssize_t n = io_pread_full(fd, magic, sizeof(magic), 0, err);
	if (n < 0)
		return err_wrap(err, "EIF %s", path);
	if (n < 4 || memcmp(magic, EIF_MAGIC, 4) != 0)
		return err_set(err, EINVAL, "%s is not an enclave image file (it does not start with \"%s\")", path,
		               EIF_MAGIC);
	return steal_fd(&fd);
}

/* As nitro-cli's run-enclave --attach-console: once the heartbeat is in, one connect to the
 * hypervisor's console port with a 20 s vsock connect timeout (not the kernel's 2 s). Polling it
 * before the heartbeat instead could lose the console, or hold the heartbeat up for ~40 s. */
static void connect_console(const struct ne_env *env, struct ne_enclave *enc)
{
	uint64_t timeout = env->console_timeout_ms ? env->console_timeout_ms : NE_CONSOLE_CONNECT_TIMEOUT_MS;
	uint32_t port = (uint32_t)enc->cid + NE_CONSOLE_PORT_OFFSET;
	struct err *e = NULL;
	int fd = ne_net_connect_timeout(&env->net, 0, port, timeout, &e);
	if (fd >= 0) {
		enc->console_fd = fd;
		return;
	}
	log_warn("nitro: no debug console (CID 0 port %u): %s", port, e->msg);
	err_free(&e);
}

int ne_launch(const struct ne_env *env, const struct launch_request *req, struct ne_enclave *enc,
              struct launch_info *info, struct err **err)
{
	struct ne_dev *dev = env->dev;
	*enc = (struct ne_enclave)NE_ENCLAVE_INIT;
	enc->dev = dev;
	memset(info, 0, sizeof(*info));
	unsigned cpus = req->cpu_count ? req->cpu_count : DEFAULT_CPUS;
	uint64_t mem_mib = req->memory_mb ? req->memory_mb : DEFAULT_MEMORY_MIB;
	if (req->eif_path == NULL)
		return err_set(err, EINVAL, "no EIF to run");
	if (cpus > LAUNCH_MAX_CPUS)
		return err_set(err, EINVAL, "%u vCPUs requested, at most %d supported", cpus, LAUNCH_MAX_CPUS);

	_cleanup_close_ int hb = -1;
	uint64_t eif_size;
	_cleanup_close_ int eif = open_eif(req->eif_path, &eif_size, err);
	if (eif < 0)
		return -1;
	if (EIF_SIZE_RATIO * eif_size > mem_mib * NE_MIB) {
		uint64_t eif_mib = (eif_size + NE_MIB - 1) / NE_MIB;
		return err_set(
		    err, EINVAL,
		    "%llu MiB of enclave memory is too little for %s: at least %llu MiB are needed (%d x the "
		    "EIF's %llu MiB, the room its kernel needs to unpack the ramdisks); ask for more memory",
		    (unsigned long long)mem_mib, req->eif_path, (unsigned long long)(eif_mib * EIF_SIZE_RATIO),
		    EIF_SIZE_RATIO, (unsigned long long)eif_mib);
	}
	unsigned tpc = env->threads_per_core ? env->threads_per_core : ne_threads_per_core();
	if (ne_cpus_check(env->cpu_pool_path, tpc, cpus, err) < 0)
		return -1;

	uint64_t slot = 0;
	int fd = dev->ops->create_vm(dev, &slot);
	if (fd < 0)
		return ne_err_set(err, errno, "NE_CREATE_VM");
	enc->fd = fd;
	enc->slot_uid = slot;

	/* Every size the pool's node offers, from that node only: the driver refuses memory from
	 * another node than the CPU pool's (NE_ERR_MEM_DIFFERENT_NUMA_NODE). */
	const struct ne_mem_ops *mem = env->mem ? env->mem : &ne_mem_hugetlb;
	struct ne_hugepages hp;
	ne_hugepages_probe(env->sysfs_root, env->cpu_pool_path, &hp);
	if (ne_mem_alloc(mem, env->mem_ctx, &hp, mem_mib * NE_MIB, &enc->mem, err) < 0)
		goto fail;
	log_info("nitro: %zu memory region(s), %llu MiB%s", enc->mem.n, (unsigned long long)(enc->mem.total / NE_MIB),
	         hp.node >= 0 ? " from the CPU pool's NUMA node" : "");

	struct ne_ioc_load_info li = {.flags = NE_IOC_EIF_IMAGE};
	if (dev->ops->get_image_load_info(dev, enc->fd, &li) < 0) {
		ne_err_set(err, errno, "NE_GET_IMAGE_LOAD_INFO");
		goto fail;
	}
	if (ne_mem_load(&enc->mem, li.memory_offset, eif, eif_size, req->eif_path, err) < 0) {
		err_wrap(err, "load the EIF into enclave memory");
		goto fail;
	}
	for (size_t i = 0; i < enc->mem.n; i++) {
		struct ne_ioc_mem_region r = {.flags = 0,
		                              .memory_size = enc->mem.v[i].size,
		                              .userspace_addr = (uint64_t)(uintptr_t)enc->mem.v[i].addr};
		if (dev->ops->set_user_memory_region(dev, enc->fd, &r) < 0) {
			int code = errno;
			char what[128];
			snprintf(what, sizeof(what), "NE_SET_USER_MEMORY_REGION (region %zu of %zu, %llu MiB)", i + 1,
			         enc->mem.n, (unsigned long long)(r.memory_size / NE_MIB));
			ne_err_set(err, code, what);
			goto fail;
		}
	}
	for (unsigned i = 0; i < cpus; i++) {
		uint32_t id = 0; /* 0: the driver picks from the pool, siblings of a taken core first */
		if (dev->ops->add_vcpu(dev, enc->fd, &id) < 0) {
			int code = errno;
			char what[64];
			snprintf(what, sizeof(what), "NE_ADD_VCPU (vCPU %u of %u)", i + 1, cpus);
			ne_err_set(err, code, what);
			goto fail;
		}
		info->cpu_ids[i] = id;
	}

	/* Listen before starting: the enclave's init connects as soon as it is up. */
	hb = ne_net_listen(&env->net, WIRE_HEARTBEAT_PORT, err);
	if (hb < 0) {
		err_wrap(err, "heartbeat listener");
		goto fail;
	}
	struct ne_ioc_start_info si = {.flags = req->debug_mode ? NE_IOC_DEBUG_MODE : 0, .enclave_cid = req->cid};
	if (dev->ops->start_enclave(dev, enc->fd, &si) < 0) {
		ne_err_set(err, errno, "NE_START_ENCLAVE");
		goto fail;
	}
	double t0 = now_s();
	enc->cid = si.enclave_cid;
	log_info("nitro: started enclave CID %llu (slot %llx, %u vCPUs, %llu MiB%s)", (unsigned long long)enc->cid,
	         (unsigned long long)enc->slot_uid, cpus, (unsigned long long)(enc->mem.total / NE_MIB),
	         req->debug_mode ? ", debug mode" : "");
	uint64_t timeout_ms = env->heartbeat_timeout_ms;
	if (timeout_ms == 0)
		timeout_ms = req->heartbeat_timeout_s ? (uint64_t)req->heartbeat_timeout_s * 1000
		                                      : ne_heartbeat_timeout_ms(eif_size, enc->mem.total);
	if (ne_heartbeat_wait(hb, enc->fd, timeout_ms, err) < 0) {
		err_wrap(err, "enclave CID %llu", (unsigned long long)enc->cid);
		goto fail;
	}
	double heartbeat_s = now_s() - t0;
	if (req->debug_mode)
		connect_console(env, enc);

	ne_enclave_id(env->asset_tag_path, enc->slot_uid, info->enclave_id, sizeof(info->enclave_id));
	if (req->name)
		snprintf(info->name, sizeof(info->name), "%s", req->name);
	else
		default_name(req->eif_path, info->name, sizeof(info->name));
	info->cid = enc->cid;
	info->process_id = getpid();
	info->cpu_count = cpus;
	info->memory_mib = enc->mem.total / NE_MIB;
	info->debug_mode = req->debug_mode;
	info->heartbeat_s = heartbeat_s;
	return 0;

fail:
	ne_enclave_release(enc);
	return -1;
}
