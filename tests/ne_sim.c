/* ne_sim: a simulated /dev/nitro_enclaves that enforces the driver's rules in the order
 * drivers/virt/nitro_enclaves/ne_misc_dev.c checks them, so the launch sequence and every error path
 * run in unit tests. It also records the image bytes the enclave would boot from. */
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "tests/ne_sim.h"

#define SIM_MAX_SLOTS  8
#define USER_SPACE_END 0x800000000000ULL /* x86_64 user address limit, what access_ok() enforces */

enum sim_state { ST_INIT, ST_RUNNING, ST_STOPPED };

struct sim_region {
	uint64_t addr, size;
};

struct sim_huge {
	uint64_t addr, len, page_size;
	int node;
};

struct sim_slot {
	bool used;
	int fd, peer; /* socketpair: fd is the enclave fd handed out; closing peer makes it POLLHUP */
	uint64_t uid, cid, flags;
	enum sim_state state;
	bool *vcpu; /* [n_cpus]: given to the enclave */
	bool *core; /* [n_cores]: cores taken from the pool (all their threads) */
	unsigned nr_vcpus;
	struct sim_region *regions;
	size_t n_regions, cap_regions;
	uint64_t mem_size;
	unsigned nr_chunks; /* physically contiguous pieces, what the device counts against its maximum */
};

struct ne_sim {
	struct ne_dev base;
	struct ne_sim_config cfg;
	unsigned n_cores;
	bool *avail; /* [n_cpus]: in the pool and free */
	struct sim_huge *huge;
	size_t n_huge, cap_huge;
	struct sim_slot slots[SIM_MAX_SLOTS];
	uint64_t next_uid;
	uint8_t *image;
	size_t image_len;
	unsigned violations;
	struct ne_sim_counts counts;
	uint64_t *page_sizes; /* [cfg.n_page_sizes] */
	unsigned *free_pages; /* [node * n_page_sizes + size index] */
	bool *in_pool;        /* [n_cpus]: the pool as configured, for the CPUs' nodes */
};

static unsigned core_of(const struct ne_sim *s, unsigned cpu)
{
	return cpu % s->n_cores;
}

static int fail(int code)
{
	errno = code;
	return -1;
}

static struct sim_slot *slot_of(struct ne_sim *s, int fd)
{
	for (unsigned i = 0; i < SIM_MAX_SLOTS; i++)
		if (s->slots[i].used && s->slots[i].fd == fd)
			return &s->slots[i];
	return NULL;
}

static int sim_create_vm(struct ne_dev *d, uint64_t *slot_uid)
{
	struct ne_sim *s = (struct ne_sim *)d;
	s->counts.create_vm++;
	bool any = false;
	for (unsigned c = 0; c < s->cfg.n_cpus; c++)
		any |= s->avail[c];
	if (!any)
		return fail(NE_E_NO_CPUS_AVAIL_IN_POOL);
	struct sim_slot *sl = NULL;
	for (unsigned i = 0; i < SIM_MAX_SLOTS && !sl; i++)
		if (!s->slots[i].used)
			sl = &s->slots[i];
	if (sl == NULL)
		return fail(ENOMEM); /* the sim's own limit; the device's is not documented */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	*sl = (struct sim_slot){.used = true, .fd = sv[0], .peer = sv[1], .uid = s->next_uid++, .state = ST_INIT};
	sl->vcpu = xcalloc(s->cfg.n_cpus, sizeof(bool));
	sl->core = xcalloc(s->n_cores, sizeof(bool));
	*slot_uid = sl->uid;
	return sl->fd;
}

static int sim_get_image_load_info(struct ne_dev *d, int enc_fd, struct ne_ioc_load_info *info)
{
	struct ne_sim *s = (struct ne_sim *)d;
	s->counts.load_info++;
	struct sim_slot *sl = slot_of(s, enc_fd);
	if (sl == NULL)
		return fail(ENOTTY);
	if (sl->state != ST_INIT)
		return fail(NE_E_NOT_IN_INIT_STATE);
	if (info->flags == 0 || info->flags >= NE_IOC_IMAGE_LOAD_MAX_FLAG)
		return fail(NE_E_INVALID_FLAG_VALUE);
	info->memory_offset = NE_EIF_LOAD_OFFSET;
	return 0;
}

static const struct sim_huge *huge_at(const struct ne_sim *s, uint64_t addr)
{
	for (size_t i = 0; i < s->n_huge; i++)
		if (addr >= s->huge[i].addr && addr - s->huge[i].addr < s->huge[i].len)
			return &s->huge[i];
	return NULL;
}

static int sim_set_user_memory_region(struct ne_dev *d, int enc_fd, const struct ne_ioc_mem_region *r)
{
	struct ne_sim *s = (struct ne_sim *)d;
	s->counts.set_region++;
	struct sim_slot *sl = slot_of(s, enc_fd);
	if (sl == NULL)
		return fail(ENOTTY);
	if (r->flags >= NE_IOC_MEMORY_REGION_MAX_FLAG)
		return fail(NE_E_INVALID_FLAG_VALUE);
	if (sl->state != ST_INIT)
		return fail(NE_E_NOT_IN_INIT_STATE);
	/* The driver lets a zero size through to get_user_pages; refusing it here is stricter. */
	if (r->memory_size == 0 || r->memory_size % NE_MIN_REGION)
		return fail(NE_E_INVALID_MEM_REGION_SIZE);
	if (r->userspace_addr % NE_MIN_REGION)
		return fail(NE_E_UNALIGNED_MEM_REGION_ADDR);
	uint64_t end = r->userspace_addr + r->memory_size;
	if (r->userspace_addr == 0 || end < r->userspace_addr || end > USER_SPACE_END)
		return fail(NE_E_INVALID_MEM_REGION_ADDR);
	for (size_t i = 0; i < sl->n_regions; i++) {
		const struct sim_region *o = &sl->regions[i];
		if (r->userspace_addr < o->addr + o->size && o->addr < end)
			return fail(NE_E_MEM_REGION_ALREADY_USED);
	}
	/* Page by page as get_user_pages would see them. */
	unsigned chunks = 0;
	for (uint64_t pos = r->userspace_addr; pos < end;) {
		const struct sim_huge *h = huge_at(s, pos);
		if (h == NULL)
			return fail(NE_E_MEM_NOT_HUGE_PAGE);
		if (h->page_size % NE_MIN_REGION)
			return fail(NE_E_INVALID_PAGE_SIZE);
		if (h->node != s->cfg.numa_node)
			return fail(NE_E_MEM_DIFFERENT_NUMA_NODE);
		chunks++; /* each declared hugepage range stands for one physically contiguous piece */
		uint64_t h_end = h->addr + h->len;
		pos = h_end < end ? h_end : end;
	}
	if (sl->nr_chunks + chunks > s->cfg.max_mem_regions)
		return fail(NE_E_MEM_MAX_REGIONS);
	if (sl->n_regions == sl->cap_regions) {
		sl->cap_regions = sl->cap_regions ? sl->cap_regions * 2 : 16;
		sl->regions = xrealloc(sl->regions, sl->cap_regions * sizeof(*sl->regions));
	}
	sl->regions[sl->n_regions++] = (struct sim_region){.addr = r->userspace_addr, .size = r->memory_size};
	sl->mem_size += r->memory_size;
	sl->nr_chunks += chunks;
	return 0;
}

/* Takes every thread of `core` from the pool for the slot. */
static void take_core(struct ne_sim *s, struct sim_slot *sl, unsigned core)
{
	for (unsigned cpu = core; cpu < s->cfg.n_cpus; cpu += s->n_cores)
		s->avail[cpu] = false;
	sl->core[core] = true;
}

static int sim_add_vcpu(struct ne_dev *d, int enc_fd, uint32_t *cpu_id)
{
	struct ne_sim *s = (struct ne_sim *)d;
	s->counts.add_vcpu++;
	struct sim_slot *sl = slot_of(s, enc_fd);
	if (sl == NULL)
		return fail(ENOTTY);
	if (sl->state != ST_INIT)
		return fail(NE_E_NOT_IN_INIT_STATE);
	uint32_t id = *cpu_id;
	if (id >= s->cfg.n_cpus)
		return fail(NE_E_INVALID_VCPU);
	if (id == 0) {
		/* Siblings of a core already taken first, so the enclave ends up with full cores. */
		bool found = false;
		for (unsigned core = 0; core < s->n_cores && !found; core++)
			for (unsigned cpu = core; sl->core[core] && cpu < s->cfg.n_cpus && !found; cpu += s->n_cores)
				if (!sl->vcpu[cpu]) {
					id = cpu;
					found = true;
				}
		if (!found) {
			unsigned core = s->n_cores;
			for (unsigned cpu = 0; cpu < s->cfg.n_cpus && core == s->n_cores; cpu++)
				if (s->avail[cpu])
					core = core_of(s, cpu);
			if (core == s->n_cores)
				return fail(NE_E_NO_CPUS_AVAIL_IN_POOL);
			take_core(s, sl, core);
			id = core; /* the core's lowest-numbered thread */
		}
	} else {
		if (sl->vcpu[id])
			return fail(NE_E_VCPU_ALREADY_USED);
		if (!sl->core[core_of(s, id)]) {
			if (!s->avail[id])
				return fail(NE_E_VCPU_NOT_IN_CPU_POOL);
			take_core(s, sl, core_of(s, id));
		}
	}
	sl->vcpu[id] = true;
	sl->nr_vcpus++;
	*cpu_id = id;
	return 0;
}

/* Copies what the enclave would find at the load offset, across region boundaries. */
static void record_image(struct ne_sim *s, const struct sim_slot *sl)
{
	free(s->image);
	s->image = NULL;
	s->image_len = 0;
	if (s->cfg.record_len == 0)
		return;
	s->image = xmalloc(s->cfg.record_len);
	uint64_t start = 0, pos = NE_EIF_LOAD_OFFSET;
	for (size_t i = 0; i < sl->n_regions && s->image_len < s->cfg.record_len; i++) {
		const struct sim_region *r = &sl->regions[i];
		uint64_t end = start + r->size;
		while (pos >= start && pos < end && s->image_len < s->cfg.record_len) {
			uint64_t n = end - pos;
			if (n > s->cfg.record_len - s->image_len)
				n = s->cfg.record_len - s->image_len;
			memcpy(s->image + s->image_len, (const uint8_t *)(uintptr_t)(r->addr + (pos - start)), n);
			s->image_len += n;
			pos += n;
		}
		start = end;
	}
}

static bool cid_in_use(const struct ne_sim *s, uint64_t cid)
{
	for (unsigned i = 0; i < SIM_MAX_SLOTS; i++)
		if (s->slots[i].used && s->slots[i].state == ST_RUNNING && s->slots[i].cid == cid)
			return true;
	return false;
}

static int sim_start_enclave(struct ne_dev *d, int enc_fd, struct ne_ioc_start_info *info)
{
	struct ne_sim *s = (struct ne_sim *)d;
	s->counts.start++;
	struct sim_slot *sl = slot_of(s, enc_fd);
	if (sl == NULL)
		return fail(ENOTTY);
	if (info->flags >= NE_IOC_START_MAX_FLAG)
		return fail(NE_E_INVALID_FLAG_VALUE);
	uint64_t cid = info->enclave_cid;
	if ((cid > 0 && cid <= 2) || cid == NE_PARENT_CID || cid >= UINT32_MAX)
		return fail(NE_E_INVALID_ENCLAVE_CID);
	if (sl->state != ST_INIT)
		return fail(NE_E_NOT_IN_INIT_STATE);
	if (sl->n_regions == 0)
		return fail(NE_E_NO_MEM_REGIONS_ADDED);
	if (sl->mem_size < NE_MIN_ENCLAVE_MEM)
		return fail(NE_E_ENCLAVE_MEM_MIN_SIZE);
	if (sl->nr_vcpus == 0)
		return fail(NE_E_NO_VCPUS_ADDED);
	for (unsigned core = 0; core < s->n_cores; core++)
		for (unsigned cpu = core; sl->core[core] && cpu < s->cfg.n_cpus; cpu += s->n_cores)
			if (!sl->vcpu[cpu])
				return fail(NE_E_FULL_CORES_NOT_USED);
	if (cid == 0) {
		cid = s->cfg.first_cid;
		while (cid_in_use(s, cid))
			cid++;
	}
	record_image(s, sl);
	sl->cid = cid;
	sl->flags = info->flags;
	sl->state = ST_RUNNING;
	info->enclave_cid = cid;
	if (s->cfg.on_start)
		s->cfg.on_start(s->cfg.ctx, sl->uid, cid, info->flags);
	return 0;
}

static void slot_free(struct ne_sim *s, struct sim_slot *sl)
{
	close(sl->fd);
	if (sl->peer >= 0)
		close(sl->peer);
	for (unsigned core = 0; core < s->n_cores; core++)
		if (sl->core[core])
			for (unsigned cpu = core; cpu < s->cfg.n_cpus; cpu += s->n_cores)
				s->avail[cpu] = true;
	free(sl->vcpu);
	free(sl->core);
	free(sl->regions);
	*sl = (struct sim_slot){.fd = -1, .peer = -1};
}

static void sim_release(struct ne_dev *d, int enc_fd)
{
	struct ne_sim *s = (struct ne_sim *)d;
	s->counts.release++;
	struct sim_slot *sl = slot_of(s, enc_fd);
	if (sl)
		slot_free(s, sl);
	else if (enc_fd >= 0)
		close(enc_fd);
}

static void sim_free_op(struct ne_dev *d)
{
	ne_sim_free((struct ne_sim *)d);
}

static const struct ne_dev_ops sim_ops = {
    .name = "simulated",
    .create_vm = sim_create_vm,
    .get_image_load_info = sim_get_image_load_info,
    .set_user_memory_region = sim_set_user_memory_region,
    .add_vcpu = sim_add_vcpu,
    .start_enclave = sim_start_enclave,
    .release = sim_release,
    .free = sim_free_op,
};

int ne_sim_new(const struct ne_sim_config *cfg, struct ne_sim **out, struct err **err)
{
	struct ne_sim_config c = *cfg;
	if (c.n_cpus == 0)
		c.n_cpus = 8;
	if (c.threads_per_core == 0)
		c.threads_per_core = 2;
	if (c.max_mem_regions == 0)
		c.max_mem_regions = 256;
	if (c.first_slot_uid == 0)
		c.first_slot_uid = 1;
	if (c.first_cid == 0)
		c.first_cid = 16;
	if (c.n_cpus > NE_MAX_CPUS || c.n_cpus % c.threads_per_core || c.n_cpus / c.threads_per_core < 2)
		return err_set(err, EINVAL, "simulated device: %u CPUs cannot form cores of %u threads (need 2+ cores)",
		               c.n_cpus, c.threads_per_core);
	unsigned n_cores = c.n_cpus / c.threads_per_core;
	char def_pool[64];
	if (c.cpu_pool == NULL) {
		/* Core 1, every thread of it. */
		int w = snprintf(def_pool, sizeof(def_pool), "1");
		for (unsigned t = 1; t < c.threads_per_core; t++)
			w += snprintf(def_pool + w, sizeof(def_pool) - (size_t)w, ",%u", 1 + t * n_cores);
		c.cpu_pool = def_pool;
	}
	_cleanup_free_ bool *set = xcalloc(NE_MAX_CPUS, sizeof(bool));
	unsigned n;
	if (ne_cpulist_parse(c.cpu_pool, set, &n, err) < 0)
		return err_wrap(err, "simulated device");
	/* The checks ne_setup_cpu_pool makes when ne_cpus is written. */
	for (unsigned cpu = 0; cpu < NE_MAX_CPUS; cpu++) {
		if (!set[cpu])
			continue;
		if (cpu >= c.n_cpus)
			return err_set(err, EINVAL, "simulated CPU pool \"%s\": CPU %u does not exist", c.cpu_pool,
			               cpu);
		if (cpu % n_cores == 0)
			return err_set(err, EINVAL, "simulated CPU pool \"%s\": CPU %u is CPU 0 or its sibling",
			               c.cpu_pool, cpu);
		for (unsigned sib = cpu % n_cores; sib < c.n_cpus; sib += n_cores)
			if (!set[sib])
				return err_set(err, EINVAL, "simulated CPU pool \"%s\": CPU %u's sibling %u is missing",
				               c.cpu_pool, cpu, sib);
	}
	if (c.numa_node < 0 || c.local_node < 0 || c.numa_node >= 1024 || c.local_node >= 1024)
		return err_set(err, EINVAL, "simulated device: NUMA nodes %d and %d: want 0..1023", c.numa_node,
		               c.local_node);
	if (c.n_nodes <= (unsigned)c.numa_node)
		c.n_nodes = (unsigned)c.numa_node + 1;
	if (c.n_nodes <= (unsigned)c.local_node)
		c.n_nodes = (unsigned)c.local_node + 1;
	static const uint64_t default_sizes[] = {NE_GIB, 2 * NE_MIB};
	if (c.page_sizes == NULL || c.n_page_sizes == 0) {
		c.page_sizes = default_sizes;
		c.n_page_sizes = 2;
	}
	struct ne_sim *s = xcalloc(1, sizeof(*s));
	s->page_sizes = xmalloc(c.n_page_sizes * sizeof(uint64_t));
	memcpy(s->page_sizes, c.page_sizes, c.n_page_sizes * sizeof(uint64_t));
	s->free_pages = xcalloc((size_t)c.n_nodes * c.n_page_sizes, sizeof(unsigned));
	s->in_pool = xcalloc(c.n_cpus, sizeof(bool));
	for (unsigned cpu = 0; cpu < c.n_cpus; cpu++)
		s->in_pool[cpu] = set[cpu];
	s->base.ops = &sim_ops;
	s->base.path = "simulated /dev/nitro_enclaves";
	s->cfg = c;
	s->cfg.cpu_pool = NULL;   /* may point at our stack */
	s->cfg.page_sizes = NULL; /* the caller's; s->page_sizes is the copy */
	s->n_cores = n_cores;
	s->avail = xcalloc(c.n_cpus, sizeof(bool));
	for (unsigned cpu = 0; cpu < c.n_cpus; cpu++)
		s->avail[cpu] = set[cpu];
	for (unsigned i = 0; i < SIM_MAX_SLOTS; i++)
		s->slots[i] = (struct sim_slot){.fd = -1, .peer = -1};
	s->next_uid = c.first_slot_uid;
	*out = s;
	return 0;
}

void ne_sim_free(struct ne_sim *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < SIM_MAX_SLOTS; i++)
		if (s->slots[i].used)
			slot_free(s, &s->slots[i]);
	free(s->avail);
	free(s->huge);
	free(s->page_sizes);
	free(s->free_pages);
	free(s->in_pool);
	free(s->image);
	free(s);
}

struct ne_dev *ne_sim_dev(struct ne_sim *s)
{
	return &s->base;
}

/* ---------------------------------------------------------------- the host's hugepages */

static unsigned *free_slot(const struct ne_sim *s, int node, uint64_t page_size)
{
	if (node < 0 || (unsigned)node >= s->cfg.n_nodes)
		return NULL;
	for (unsigned i = 0; i < s->cfg.n_page_sizes; i++)
		if (s->page_sizes[i] == page_size)
			return &s->free_pages[(size_t)node * s->cfg.n_page_sizes + i];
	return NULL;
}

int ne_sim_set_hugepages(struct ne_sim *s, int node, uint64_t page_size, unsigned count)
{
	unsigned *f = free_slot(s, node, page_size);
	if (f == NULL)
		return -1;
	*f = count;
	return 0;
}

unsigned ne_sim_hugepages_free(const struct ne_sim *s, int node, uint64_t page_size)
{
	unsigned *f = free_slot(s, node, page_size);
	return f ? *f : 0;
}

int ne_sim_hugepage_take(struct ne_sim *s, uint64_t page_size, int node)
{
	if (node >= 0) {
		unsigned *f = free_slot(s, node, page_size);
		if (f == NULL || *f == 0)
			return -1;
		(*f)--;
		return node;
	}
	/* Unbound: the local node first, as the kernel's default policy does, then any other. */
	unsigned *f = free_slot(s, s->cfg.local_node, page_size);
	if (f && *f > 0) {
		(*f)--;
		return s->cfg.local_node;
	}
	for (unsigned n = 0; n < s->cfg.n_nodes; n++) {
		f = free_slot(s, (int)n, page_size);
		if (f && *f > 0) {
			(*f)--;
			return (int)n;
		}
	}
	return -1;
}

void ne_sim_hugepage_put(struct ne_sim *s, uint64_t page_size, int node)
{
	unsigned *f = free_slot(s, node, page_size);
	if (f)
		(*f)++;
}

static int write_text(const char *path, const char *text, struct err **err)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return err_sys(err, "create %s", path);
	fputs(text, f);
	if (fclose(f) != 0)
		return err_sys(err, "write %s", path);
	return 0;
}

/* mkdir -p for the fake tree. */
static int make_dirs(const char *path, struct err **err)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *q = p + 1;; q++) {
		if (*q != '/' && *q != '\0')
			continue;
		char c = *q;
		*q = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return err_sys(err, "mkdir %s", p);
		*q = c;
		if (c == '\0')
			return 0;
	}
}

int ne_sim_write_sysfs(const struct ne_sim *s, const char *root, struct err **err)
{
	for (unsigned cpu = 0; cpu < s->cfg.n_cpus; cpu++) {
		_cleanup_free_ char *d = xasprintf("%s/devices/system/cpu/cpu%u/node%d", root, cpu,
		                                   s->in_pool[cpu] ? s->cfg.numa_node : s->cfg.local_node);
		if (make_dirs(d, err) < 0)
			return -1;
	}
	for (unsigned i = 0; i < s->cfg.n_page_sizes; i++) {
		unsigned long long kb = (unsigned long long)(s->page_sizes[i] / 1024);
		unsigned total = 0;
		for (unsigned n = 0; n < s->cfg.n_nodes; n++) {
			unsigned count = ne_sim_hugepages_free(s, (int)n, s->page_sizes[i]);
			total += count;
			_cleanup_free_ char *d =
			    xasprintf("%s/devices/system/node/node%u/hugepages/hugepages-%llukB", root, n, kb);
			_cleanup_free_ char *f = xasprintf("%s/nr_hugepages", d);
			_cleanup_free_ char *v = xasprintf("%u\n", count);
			if (make_dirs(d, err) < 0 || write_text(f, v, err) < 0)
				return -1;
		}
		_cleanup_free_ char *d = xasprintf("%s/kernel/mm/hugepages/hugepages-%llukB", root, kb);
		_cleanup_free_ char *f = xasprintf("%s/nr_hugepages", d);
		_cleanup_free_ char *v = xasprintf("%u\n", total);
		if (make_dirs(d, err) < 0 || write_text(f, v, err) < 0)
			return -1;
	}
	return 0;
}

void ne_sim_add_hugepages(struct ne_sim *s, void *addr, uint64_t len, uint64_t page_size, int numa_node)
{
	if (s->n_huge == s->cap_huge) {
		s->cap_huge = s->cap_huge ? s->cap_huge * 2 : 64;
		s->huge = xrealloc(s->huge, s->cap_huge * sizeof(*s->huge));
	}
	s->huge[s->n_huge++] =
	    (struct sim_huge){.addr = (uint64_t)(uintptr_t)addr, .len = len, .page_size = page_size, .node = numa_node};
}

void ne_sim_remove_hugepages(struct ne_sim *s, void *addr)
{
	uint64_t a = (uint64_t)(uintptr_t)addr;
	for (size_t i = 0; i < s->n_huge; i++) {
		if (s->huge[i].addr != a)
			continue;
		for (unsigned k = 0; k < SIM_MAX_SLOTS; k++)
			for (size_t j = 0; s->slots[k].used && j < s->slots[k].n_regions; j++) {
				const struct sim_region *r = &s->slots[k].regions[j];
				if (a < r->addr + r->size && r->addr < a + s->huge[i].len)
					s->violations++;
			}
		s->huge[i] = s->huge[--s->n_huge];
		return;
	}
}

int ne_sim_stop(struct ne_sim *s, uint64_t slot_uid)
{
	for (unsigned i = 0; i < SIM_MAX_SLOTS; i++) {
		struct sim_slot *sl = &s->slots[i];
		if (sl->used && sl->uid == slot_uid) {
			sl->state = ST_STOPPED;
			if (sl->peer >= 0) {
				close(sl->peer);
				sl->peer = -1;
			}
			return 0;
		}
	}
	return -1;
}

unsigned ne_sim_slots(const struct ne_sim *s)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SIM_MAX_SLOTS; i++)
		n += s->slots[i].used;
	return n;
}

unsigned ne_sim_pool_free(const struct ne_sim *s)
{
	unsigned n = 0;
	for (unsigned cpu = 0; cpu < s->cfg.n_cpus; cpu++)
		n += s->avail[cpu];
	return n;
}

const uint8_t *ne_sim_image(const struct ne_sim *s, size_t *len)
{
	*len = s->image_len;
	return s->image;
}

unsigned ne_sim_violations(const struct ne_sim *s)
{
	return s->violations;
}

void ne_sim_counts(const struct ne_sim *s, struct ne_sim_counts *out)
{
	*out = s->counts;
}
