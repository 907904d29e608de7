/* runtime/ne.h: private pieces of the Nitro launcher shared by its files and its unit tests: the
 * driver's ioctl interface behind a small ops table (real /dev/nitro_enclaves or a simulated device),
 * driver error messages, hugepage memory, the CPU pool, and the launch sequence nitro-cli performs. */
#ifndef ENCLAVER_RUNTIME_NE_H
#define ENCLAVER_RUNTIME_NE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "common/common.h"
#include "wire/transport.h"
#include "runtime/launcher.h"

/* ---------------------------------------------------------------- driver interface
 * Linux include/uapi/linux/nitro_enclaves.h, restated under our own names (ne_dev.c checks every
 * number and layout against the kernel header when the build machine has it). */
struct ne_ioc_load_info {
	uint64_t flags;         /* in: NE_IOC_EIF_IMAGE */
	uint64_t memory_offset; /* out: where the EIF goes in enclave memory */
};
struct ne_ioc_mem_region {
	uint64_t flags; /* 0: general-purpose memory */
	uint64_t memory_size;
	uint64_t userspace_addr;
};
struct ne_ioc_start_info {
	uint64_t flags;       /* 0 or NE_IOC_DEBUG_MODE */
	uint64_t enclave_cid; /* in: 0 = the hypervisor picks; out: the CID */
};

#define NE_IOC_MAGIC                  0xAE
#define NE_IOC_CREATE_VM              _IOR(NE_IOC_MAGIC, 0x20, uint64_t)
#define NE_IOC_ADD_VCPU               _IOWR(NE_IOC_MAGIC, 0x21, uint32_t)
#define NE_IOC_GET_IMAGE_LOAD_INFO    _IOWR(NE_IOC_MAGIC, 0x22, struct ne_ioc_load_info)
#define NE_IOC_SET_USER_MEMORY_REGION _IOW(NE_IOC_MAGIC, 0x23, struct ne_ioc_mem_region)
#define NE_IOC_START_ENCLAVE          _IOWR(NE_IOC_MAGIC, 0x24, struct ne_ioc_start_info)

#define NE_IOC_EIF_IMAGE              0x01
#define NE_IOC_IMAGE_LOAD_MAX_FLAG    0x02
#define NE_IOC_MEMORY_REGION_MAX_FLAG 0x01
#define NE_IOC_DEBUG_MODE             0x01
#define NE_IOC_START_MAX_FLAG         0x02

/* The driver's own errno values (256..275). */
enum {
	NE_E_VCPU_ALREADY_USED = 256,
	NE_E_VCPU_NOT_IN_CPU_POOL = 257,
	NE_E_VCPU_INVALID_CPU_CORE = 258,
	NE_E_INVALID_MEM_REGION_SIZE = 259,
	NE_E_INVALID_MEM_REGION_ADDR = 260,
	NE_E_UNALIGNED_MEM_REGION_ADDR = 261,
	NE_E_MEM_REGION_ALREADY_USED = 262,
	NE_E_MEM_NOT_HUGE_PAGE = 263,
	NE_E_MEM_DIFFERENT_NUMA_NODE = 264,
	NE_E_MEM_MAX_REGIONS = 265,
	NE_E_NO_MEM_REGIONS_ADDED = 266,
	NE_E_NO_VCPUS_ADDED = 267,
	NE_E_ENCLAVE_MEM_MIN_SIZE = 268,
	NE_E_FULL_CORES_NOT_USED = 269,
	NE_E_NOT_IN_INIT_STATE = 270,
	NE_E_INVALID_VCPU = 271,
	NE_E_NO_CPUS_AVAIL_IN_POOL = 272,
	NE_E_INVALID_PAGE_SIZE = 273,
	NE_E_INVALID_FLAG_VALUE = 274,
	NE_E_INVALID_ENCLAVE_CID = 275,
};
#define NE_E_FIRST NE_E_VCPU_ALREADY_USED
#define NE_E_LAST  NE_E_INVALID_ENCLAVE_CID

/* Driver constants (drivers/virt/nitro_enclaves/ne_misc_dev.c). */
#define NE_MIB                 (1024ULL * 1024)
#define NE_GIB                 (1024ULL * NE_MIB)
#define NE_EIF_LOAD_OFFSET     (8 * NE_MIB)
#define NE_MIN_ENCLAVE_MEM     (64 * NE_MIB)
#define NE_MIN_REGION          (2 * NE_MIB)
#define NE_PARENT_CID          3
#define NE_CONSOLE_PORT_OFFSET 10000 /* debug console: CID 0 (hypervisor), port = CID + this */
#define NE_DEFAULT_DEVICE      "/dev/nitro_enclaves"
#define NE_DEFAULT_CPU_POOL    "/sys/module/nitro_enclaves/parameters/ne_cpus"
#define NE_DEFAULT_ASSET_TAG   "/sys/devices/virtual/dmi/id/board_asset_tag"

/* The ioctls as an ops table, so the launch sequence runs unchanged against the simulated device.
 * Each call behaves like its ioctl: 0 (create_vm: the enclave fd) on success, -1 with errno set
 * (a driver NE_E_* value or a usual one) on failure. */
struct ne_dev;
struct ne_dev_ops {
	const char *name; /* "driver" or "simulated" */
	int (*create_vm)(struct ne_dev *d, uint64_t *slot_uid);
	int (*get_image_load_info)(struct ne_dev *d, int enc_fd, struct ne_ioc_load_info *info);
	int (*set_user_memory_region)(struct ne_dev *d, int enc_fd, const struct ne_ioc_mem_region *r);
	int (*add_vcpu)(struct ne_dev *d, int enc_fd, uint32_t *cpu_id);
	int (*start_enclave)(struct ne_dev *d, int enc_fd, struct ne_ioc_start_info *info);
	/* Closes the enclave fd: the driver stops the enclave and frees its slot and CPUs. There is
	 * no poll op: the enclave fd is a real descriptor in both implementations and reports POLLHUP
	 * once the enclave has stopped, so callers poll it directly. */
	void (*release)(struct ne_dev *d, int enc_fd);
	void (*free)(struct ne_dev *d);
};
struct ne_dev {
	const struct ne_dev_ops *ops;
	const char *path; /* for messages */
};

/* Opens the real driver at `path` (NULL: /dev/nitro_enclaves). A missing device is the clear
 * "no Nitro Enclaves driver here" error; EACCES names the ne group. */
int ne_dev_open(const char *path, struct ne_dev **out, struct err **err);

/* ---------------------------------------------------------------- driver errors
 * Every errno the ioctls return, as what happened and what to change. */
struct ne_err_info {
	int code;
	const char *name; /* "NE_ERR_MEM_NOT_HUGE_PAGE", "EINVAL" ... */
	const char *text; /* the cause and the fix, one or two sentences */
};
/* The entry for `code`, or NULL when the table has none. */
const struct ne_err_info *ne_err_lookup(int code);
/* err_set(err, code, "<what>: <text> (<name>)"), falling back to strerror for unknown codes. */
int ne_err_set(struct err **err, int code, const char *what);

/* ---------------------------------------------------------------- CPU pool */
#define NE_MAX_CPUS 1024
/* Parses a kernel cpu-list ("1-3,5\n"); *n gets the count; CPUs are set in `set` (NE_MAX_CPUS). */
int ne_cpulist_parse(const char *text, bool set[NE_MAX_CPUS], unsigned *n, struct err **err);
/* Threads per physical core: the size of CPU 0's sibling list (CPU 0 is never offlined), else the
 * architecture's usual value (2 on x86_64, 1 elsewhere). */
unsigned ne_threads_per_core(void);
/* Refuses a vCPU count the pool cannot give as full cores: more than the pool holds, or not a
 * multiple of threads_per_core. A missing pool file is not an error (the driver will judge). */
int ne_cpus_check(const char *pool_path, unsigned threads_per_core, unsigned count, struct err **err);

/* ---------------------------------------------------------------- hugepage memory */
/* Where hugepages come from: the real one mmaps MAP_HUGETLB; tests hand out ordinary anonymous
 * memory (2 MiB aligned) that the simulated device is told to accept. */
struct ne_mem_ops {
	/* One page of `page_size` bytes, aligned to it, from NUMA node `node` (-1: wherever the kernel
	 * puts it); NULL (errno set) when none is available there. */
	void *(*map)(void *ctx, uint64_t page_size, int node);
	void (*unmap)(void *ctx, void *addr, uint64_t size);
};
extern const struct ne_mem_ops ne_mem_hugetlb;

struct ne_region {
	uint8_t *addr;
	uint64_t size;
};
struct ne_regions {
	struct ne_region *v; /* largest first */
	size_t n;
	uint64_t total;
	const struct ne_mem_ops *ops;
	void *ctx;
};

/* The hugepages the host offers for the enclave: every size the CPU pool's NUMA node lists in
 * sysfs, as AWS's allocator reads them (arm64 with 4K pages has 2M, 32M and 1G; with 64K pages 2M,
 * 512M and 16G), largest first. Sizes below 2 MiB are left out: the driver refuses them. */
#define NE_MAX_PAGE_SIZES 16
struct ne_hugepages {
	int node; /* the CPU pool's NUMA node; -1 when sysfs does not say (no NUMA) */
	unsigned n;
	uint64_t sizes[NE_MAX_PAGE_SIZES];
};
/* Every size nitro-cli's HUGE_PAGE_MAP knows, largest first: what is tried when sysfs lists none. */
extern const uint64_t ne_page_sizes_known[];
extern const unsigned ne_page_sizes_known_n;
/* "hugepages-2048kB" -> 2 MiB; anything else is an error naming the offset. */
int ne_hugepage_dirname_parse(const char *name, uint64_t *size, struct err **err);
/* The pool's node (the node of its first CPU, <sysfs>/devices/system/cpu/cpuN/node<M>) and the sizes
 * <sysfs>/devices/system/node/node<M>/hugepages lists (without a node: <sysfs>/kernel/mm/hugepages).
 * sysfs_root NULL is "/sys"; a missing pool or sysfs gives node -1 and the known sizes. Never fails:
 * what cannot be read is logged and the defaults used. */
void ne_hugepages_probe(const char *sysfs_root, const char *cpu_pool_path, struct ne_hugepages *out);
/* Covers `bytes` with hugepages as nitro-cli does: largest page size first, then smaller ones, then
 * the surplus released smallest first, every page from hp->node. On failure nothing stays mapped and
 * the message says how much was found and how to reserve more (the node's own sysfs file, the
 * allocator config). */
int ne_mem_alloc(const struct ne_mem_ops *ops, void *ctx, const struct ne_hugepages *hp, uint64_t bytes,
                 struct ne_regions *out, struct err **err);
/* Unmaps every region; safe to call twice. */
void ne_mem_free(struct ne_regions *r);
/* Streams `size` bytes of fd (named path in messages) into the regions viewed as one contiguous
 * space, starting at `offset`: read() lands straight in enclave memory, no staging buffer. */
int ne_mem_load(const struct ne_regions *r, uint64_t offset, int fd, uint64_t size, const char *path, struct err **err);

/* ---------------------------------------------------------------- vsock (or its stand-in) */
/* AF_VSOCK normally; with unix_dir set, unix sockets "<unix_dir>/<cid>-<port>.sock" stand in, so
 * the whole launcher runs in tests: the parent's listeners are "<dir>/3-<port>.sock". */
struct ne_net {
	const char *unix_dir;
	/* Tests only, with unix_dir: called before each connect, so a test can see what had happened
	 * by then (the heartbeat before the console, say). */
	void (*before_connect)(void *ctx, uint64_t cid, uint32_t port);
	void *hook_ctx;
};
/* The address for (cid, port): vsock:CID:PORT, vsock:any:PORT for the parent's own listeners. */
int ne_net_addr(const struct ne_net *net, bool listen, uint64_t cid, uint32_t port, struct transport_addr *out,
                struct err **err);
/* A listening, non-blocking socket for the enclave's connections to the parent's `port`. */
int ne_net_listen(const struct ne_net *net, uint32_t port, struct err **err);
/* A connected (blocking) socket to (cid, port). Nothing listening is ECONNREFUSED in both modes. */
int ne_net_connect(const struct ne_net *net, uint64_t cid, uint32_t port, struct err **err);
/* The same with vsock's connect timeout (SO_VM_SOCKETS_CONNECT_TIMEOUT) set to timeout_ms instead of
 * the kernel's 2 s default; the unix stand-in connects at once as before. */
int ne_net_connect_timeout(const struct ne_net *net, uint64_t cid, uint32_t port, uint64_t timeout_ms,
                           struct err **err);
/* An AF_VSOCK stream socket (blocking, close-on-exec) with that connect timeout set. */
int ne_vsock_socket(uint64_t connect_timeout_ms, struct err **err);
/* nitro-cli's console connect timeout (src/utils.rs CONSOLE_CONNECT_TIMEOUT). */
#define NE_CONSOLE_CONNECT_TIMEOUT_MS 20000
/* ne_net_connect without waiting (transport_connect_start): *in_progress when the socket must become
 * writable first; a vsock connect is then bounded by the kernel's connect timeout. */
int ne_net_connect_start(const struct ne_net *net, uint64_t cid, uint32_t port, bool *in_progress, struct err **err);

/* ---------------------------------------------------------------- heartbeat */
/* nitro-cli's boot timeout: 90 s per started 6 GiB of EIF plus 90 s per started 100 GiB of memory. */
uint64_t ne_heartbeat_timeout_ms(uint64_t eif_size, uint64_t memory_bytes);
/* Waits for the enclave's connection on listen_fd, reads one byte, requires 0xB7, writes it back.
 * Fails early when enclave_fd reports POLLHUP (the enclave stopped before its heartbeat). */
int ne_heartbeat_wait(int listen_fd, int enclave_fd, uint64_t timeout_ms, struct err **err);

/* ---------------------------------------------------------------- the launch sequence */
/* Everything the sequence touches outside the process, injectable for tests. */
struct ne_env {
	struct ne_dev *dev;           /* the driver or the simulation; not owned */
	const struct ne_mem_ops *mem; /* NULL: ne_mem_hugetlb */
	void *mem_ctx;
	struct ne_net net;             /* unix_dir NULL: AF_VSOCK */
	const char *cpu_pool_path;     /* NULL: NE_DEFAULT_CPU_POOL */
	const char *asset_tag_path;    /* NULL: NE_DEFAULT_ASSET_TAG */
	const char *sysfs_root;        /* NULL: /sys (hugepage sizes, NUMA nodes) */
	unsigned threads_per_core;     /* 0: ne_threads_per_core() */
	uint64_t heartbeat_timeout_ms; /* 0: the request's, else nitro-cli's formula */
	uint64_t console_timeout_ms;   /* debug console connect timeout; 0: NE_CONSOLE_CONNECT_TIMEOUT_MS */
};

/* A started enclave and what it holds. */
struct ne_enclave {
	struct ne_dev *dev;
	int fd; /* the enclave fd; -1 when none */
	uint64_t slot_uid, cid;
	struct ne_regions mem;
	int console_fd; /* debug mode: the console stream, else -1 */
};
#define NE_ENCLAVE_INIT                                                                                                \
	{                                                                                                              \
		.fd = -1, .console_fd = -1                                                                             \
	}

/* Checks, allocates, loads the EIF, adds memory and vCPUs, listens on 9000, starts, waits for the
 * heartbeat, then attaches the debug console as nitro-cli does; fills *info. On failure nothing
 * stays allocated. */
int ne_launch(const struct ne_env *env, const struct launch_request *req, struct ne_enclave *enc,
              struct launch_info *info, struct err **err);
/* Stops the enclave (closes its fd), then unmaps its memory and closes the console; idempotent. */
void ne_enclave_release(struct ne_enclave *enc);
/* "<board asset tag without whitespace>-enc<slot uid in hex>", "i-0000000000000000" when the
 * asset tag file is absent, as nitro-cli names enclaves. */
void ne_enclave_id(const char *asset_tag_path, uint64_t slot_uid, char *out, size_t out_len);

/* ---------------------------------------------------------------- the launcher */
/* launcher_nitro_new with an injected environment (tests: the simulated device, unix sockets,
 * ordinary memory). env and what it points to must outlive the launcher; env->dev is not freed. */
int launcher_nitro_new_env(const struct ne_env *env, struct launcher **out, struct err **err);

#endif
