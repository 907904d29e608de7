/* ne_mem: enclave memory: hugepages mapped largest size first as nitro-cli does, and the EIF streamed
 * into them at the driver's load offset, the regions read as one contiguous space. */
#include <dirent.h>
#include <linux/mempolicy.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime/ne.h"

#define NODE_BITS 1024 /* the node masks handed to the memory policy calls */

const uint64_t ne_page_sizes_known[] = {16 * NE_GIB, 2 * NE_GIB,  NE_GIB,     512 * NE_MIB, 256 * NE_MIB,
                                        32 * NE_MIB, 16 * NE_MIB, 8 * NE_MIB, 2 * NE_MIB};
const unsigned ne_page_sizes_known_n = sizeof(ne_page_sizes_known) / sizeof(ne_page_sizes_known[0]);

/* ---------------------------------------------------------------- what the host offers */

int ne_hugepage_dirname_parse(const char *name, uint64_t *size, struct err **err)
{
	static const char prefix[] = "hugepages-";
	size_t pl = sizeof(prefix) - 1;
	if (strncmp(name, prefix, pl) != 0)
		return err_set(err, EINVAL, "hugepage directory \"%s\": expected \"hugepages-<N>kB\" at offset 0",
		               name);
	const char *p = name + pl;
	uint64_t kb = 0;
	if (*p < '0' || *p > '9')
		return err_set(err, EINVAL, "hugepage directory \"%s\": expected a number at offset %zu", name, pl);
	while (*p >= '0' && *p <= '9') {
		if (kb > (UINT64_MAX / 1024 - 9) / 10)
			return err_set(err, EINVAL, "hugepage directory \"%s\": size too large at offset %zu", name,
			               (size_t)(p - name));
		kb = kb * 10 + (uint64_t)(*p++ - '0');
	}
	if (strcmp(p, "kB") != 0)
		return err_set(err, EINVAL, "hugepage directory \"%s\": expected \"kB\" at offset %zu", name,
		               (size_t)(p - name));
	if (kb == 0 || (kb & (kb - 1)) != 0)
		return err_set(err, EINVAL, "hugepage directory \"%s\": %llu kB is not a power of two", name,
		               (unsigned long long)kb);
	*size = kb * 1024;
	return 0;
}

/* The node of CPU `cpu`: the "node<M>" entry of <root>/devices/system/cpu/cpu<cpu>. */
static int cpu_node(const char *root, unsigned cpu)
{
	_cleanup_free_ char *dir = xasprintf("%s/devices/system/cpu/cpu%u", root, cpu);
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int node = -1;
	struct dirent *de;
	while (node < 0 && (de = readdir(d)) != NULL) {
		const char *p = de->d_name;
		if (strncmp(p, "node", 4) != 0 || p[4] < '0' || p[4] > '9')
			continue;
		char *end;
		unsigned long v = strtoul(p + 4, &end, 10);
		if (*end == '\0' && v < 4096)
			node = (int)v;
	}
	closedir(d);
	return node;
}

static int by_value_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

void ne_hugepages_probe(const char *sysfs_root, const char *cpu_pool_path, struct ne_hugepages *out)
{
	const char *root = sysfs_root ? sysfs_root : "/sys";
	*out = (struct ne_hugepages){.node = -1};
	_cleanup_free_ char *pool = NULL;
	size_t len;
	struct err *e = NULL;
	_cleanup_free_ bool *set = xcalloc(NE_MAX_CPUS, sizeof(bool));
	unsigned n_cpus = 0;
	if (io_read_file(cpu_pool_path ? cpu_pool_path : NE_DEFAULT_CPU_POOL, 65536, &pool, &len, &e) == 0 &&
	    ne_cpulist_parse(pool, set, &n_cpus, &e) == 0) {
		/* The driver takes the pool from one node; its first CPU names it. */
		for (unsigned c = 0; c < NE_MAX_CPUS && out->node < 0 && n_cpus > 0; c++)
			if (set[c])
				out->node = cpu_node(root, c);
	} else {
		log_debug("nitro: CPU pool: %s", e->msg);
		err_free(&e);
	}
	_cleanup_free_ char *dir = out->node >= 0
	                               ? xasprintf("%s/devices/system/node/node%d/hugepages", root, out->node)
	                               : xasprintf("%s/kernel/mm/hugepages", root);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL && out->n < NE_MAX_PAGE_SIZES) {
		uint64_t size;
		if (de->d_name[0] == '.')
			continue;
		if (ne_hugepage_dirname_parse(de->d_name, &size, &e) < 0) {
			log_warn("nitro: %s: %s (ignored)", dir, e->msg);
			err_free(&e);
			continue;
		}
		if (size >= NE_MIN_REGION)
			out->sizes[out->n++] = size;
	}
	if (d)
		closedir(d);
	if (out->n == 0) {
		log_debug("nitro: %s lists no hugepage size of 2 MiB or more; trying every size nitro-cli knows", dir);
		for (unsigned i = 0; i < ne_page_sizes_known_n && i < NE_MAX_PAGE_SIZES; i++)
			out->sizes[out->n++] = ne_page_sizes_known[i];
	}
	qsort(out->sizes, out->n, sizeof(out->sizes[0]), by_value_desc);
}

/* ---------------------------------------------------------------- mapping pages */

/* MAP_HUGETLB with the size's flag. With a node, the thread's memory policy is bound to it for
 * the mmap and the page populated at once (kernels that account hugepages per policy fail the mmap
 * when the node has none free), then checked with move_pages: a page from another node would be
 * refused by the driver (NE_ERR_MEM_DIFFERENT_NUMA_NODE), so it counts as none available. */
static void *hugetlb_map(void *ctx, uint64_t page_size, int node)
{
	(void)ctx;
	/* log2 of the size in the flag's top bits; 16 GiB (34) reaches the sign bit, hence unsigned. */
	unsigned shift = (unsigned)__builtin_ctzll(page_size);
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (int)(shift << MAP_HUGE_SHIFT);
	if (node < 0 || node >= NODE_BITS) {
		void *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE, flags, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	unsigned long old_mask[NODE_BITS / (8 * sizeof(unsigned long))] = {0};
	unsigned long mask[NODE_BITS / (8 * sizeof(unsigned long))] = {0};
	int old_mode = MPOL_DEFAULT;
	bool saved = syscall(SYS_get_mempolicy, &old_mode, old_mask, (unsigned long)NODE_BITS, NULL, 0UL) == 0;
	mask[node / (8 * sizeof(unsigned long))] |= 1UL << (node % (8 * sizeof(unsigned long)));
	bool bound = saved && syscall(SYS_set_mempolicy, MPOL_BIND, mask, (unsigned long)NODE_BITS) == 0;
	void *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE, flags | (bound ? MAP_POPULATE : 0), -1, 0);
	int code = errno;
	if (bound)
		syscall(SYS_set_mempolicy, old_mode, old_mode == MPOL_DEFAULT ? NULL : old_mask,
		        (unsigned long)NODE_BITS);
	if (p == MAP_FAILED) {
		errno = code;
		return NULL;
	}
	int status = -1;
	void *pages[1] = {p};
	/* Only a page known to be elsewhere is refused: some kernels cannot report the node of a
	 * hugetlb page (status -ENOENT for 1 GiB pages), and refusing those would refuse every page. */
	if (bound && syscall(SYS_move_pages, 0, 1UL, pages, NULL, &status, 0) == 0 && status >= 0 && status != node) {
		munmap(p, page_size);
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

static void hugetlb_unmap(void *ctx, void *addr, uint64_t size)
{
	(void)ctx;
	munmap(addr, size);
}

const struct ne_mem_ops ne_mem_hugetlb = {.map = hugetlb_map, .unmap = hugetlb_unmap};

/* ---------------------------------------------------------------- allocation */

static void size_text(uint64_t size, char *out, size_t n)
{
	if (size >= NE_GIB && size % NE_GIB == 0)
		snprintf(out, n, "%llu GiB", (unsigned long long)(size / NE_GIB));
	else if (size >= NE_MIB && size % NE_MIB == 0)
		snprintf(out, n, "%llu MiB", (unsigned long long)(size / NE_MIB));
	else
		snprintf(out, n, "%llu KiB", (unsigned long long)(size / 1024));
}

static void push(struct ne_regions *r, size_t *cap, uint8_t *addr, uint64_t size)
{
	if (r->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		r->v = xrealloc(r->v, *cap * sizeof(*r->v));
	}
	r->v[r->n++] = (struct ne_region){.addr = addr, .size = size};
	r->total += size;
}

/* Maps pages of one size while `more` says so; returns how many. */
static unsigned map_while(struct ne_regions *r, size_t *cap, uint64_t page, int node, uint64_t bytes,
                          bool whole_pages_only)
{
	unsigned got = 0;
	for (;;) {
		uint64_t needed = r->total >= bytes ? 0 : bytes - r->total;
		if (needed == 0 || (whole_pages_only && needed < page))
			return got;
		void *p = r->ops->map(r->ctx, page, node);
		if (p == NULL)
			return got;
		push(r, cap, p, page);
		got++;
	}
}

static int by_size_desc(const void *a, const void *b)
{
	const struct ne_region *x = a, *y = b;
	return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

int ne_mem_alloc(const struct ne_mem_ops *ops, void *ctx, const struct ne_hugepages *hp, uint64_t bytes,
                 struct ne_regions *out, struct err **err)
{
	*out = (struct ne_regions){.ops = ops, .ctx = ctx};
	size_t cap = 0;
	/* Larger pages first: fewer regions, less fragmentation; a size that fails is not retried. */
	for (unsigned i = 0; i < hp->n; i++)
		map_while(out, &cap, hp->sizes[i], hp->node, bytes, true);
	/* What is left is smaller than the smallest page tried above, or those ran out: fill it with
	 * the smallest pages first so little is wasted. */
	for (unsigned i = hp->n; i-- > 0;)
		map_while(out, &cap, hp->sizes[i], hp->node, bytes, false);
	if (out->total < bytes) {
		uint64_t found = out->total;
		struct buf counts = {0};
		for (unsigned i = 0; i < hp->n; i++) {
			unsigned k = 0;
			for (size_t j = 0; j < out->n; j++)
				k += out->v[j].size == hp->sizes[i];
			char t[32];
			size_text(hp->sizes[i], t, sizeof(t));
			buf_printf(&counts, "%s%u x %s", i ? ", " : "", k, t);
		}
		ne_mem_free(out);
		/* The hint names the size AWS's allocator would use for small enclaves (2 MiB when offered,
		 * else the smallest) and the pool's node's own file: pages elsewhere do not count. */
		uint64_t hint = hp->n ? hp->sizes[hp->n - 1] : 2 * NE_MIB;
		for (unsigned i = 0; i < hp->n; i++)
			if (hp->sizes[i] == 2 * NE_MIB)
				hint = hp->sizes[i];
		_cleanup_free_ char *on = hp->node >= 0 ? xasprintf(" on NUMA node %d", hp->node) : xstrdup("");
		_cleanup_free_ char *where =
		    hp->node >= 0
		        ? xasprintf(" on the CPU pool's NUMA node %d, e.g. echo %llu > "
		                    "/sys/devices/system/node/node%d/hugepages/hugepages-%llukB/nr_hugepages",
		                    hp->node, (unsigned long long)((bytes + hint - 1) / hint), hp->node,
		                    (unsigned long long)(hint / 1024))
		        : xasprintf(", e.g. echo %llu > /sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages",
		                    (unsigned long long)((bytes + hint - 1) / hint), (unsigned long long)(hint / 1024));
		err_set(err, ENOMEM,
		        "not enough hugepages for %llu MiB of enclave memory: found %llu MiB (%s)%s. Reserve them "
		        "with nitro-cli's allocator (memory_mib: %llu in /etc/nitro_enclaves/allocator.yaml, then "
		        "systemctl restart nitro-enclaves-allocator) or directly%s",
		        (unsigned long long)(bytes / NE_MIB), (unsigned long long)(found / NE_MIB),
		        counts.data ? counts.data : "", on, (unsigned long long)((bytes + NE_MIB - 1) / NE_MIB), where);
		buf_free(&counts);
		return -1;
	}
	/* Release the surplus, smallest regions first. */
	qsort(out->v, out->n, sizeof(*out->v), by_size_desc);
	uint64_t kept = 0;
	size_t keep = 0;
	while (keep < out->n && kept < bytes)
		kept += out->v[keep++].size;
	for (size_t i = keep; i < out->n; i++)
		ops->unmap(ctx, out->v[i].addr, out->v[i].size);
	out->n = keep;
	out->total = kept;
	return 0;
}

void ne_mem_free(struct ne_regions *r)
{
	for (size_t i = 0; i < r->n; i++)
		r->ops->unmap(r->ctx, r->v[i].addr, r->v[i].size);
	free(r->v);
	r->v = NULL;
	r->n = 0;
	r->total = 0;
}

/* Reads at most this much per read(): the copy streams from the file straight into enclave memory. */
#define LOAD_CHUNK (16 * NE_MIB)

int ne_mem_load(const struct ne_regions *r, uint64_t offset, int fd, uint64_t size, const char *path, struct err **err)
{
	if (offset > r->total || size > r->total - offset)
		return err_set(err, ENOSPC, "%s (%llu bytes) does not fit at offset %llu of %llu MiB of enclave memory",
		               path, (unsigned long long)size, (unsigned long long)offset,
		               (unsigned long long)(r->total / NE_MIB));
	uint64_t start = 0, done = 0; /* start: the region's first byte in the contiguous view */
	for (size_t i = 0; i < r->n && done < size; start += r->v[i].size, i++) {
		uint64_t end = start + r->v[i].size;
		uint64_t pos = offset + done; /* next byte of enclave memory to fill */
		if (pos >= end)
			continue;
		while (pos < end && done < size) {
			uint64_t n = end - pos;
			if (n > size - done)
				n = size - done;
			if (n > LOAD_CHUNK)
				n = LOAD_CHUNK;
			ssize_t got = io_read_full(fd, r->v[i].addr + (pos - start), n, err);
			if (got < 0)
				return err_wrap(err, "%s at offset %llu", path, (unsigned long long)done);
			if ((uint64_t)got < n)
				return err_set(err, EIO,
				               "%s ended at %llu bytes, expected %llu (changed while loading?)", path,
				               (unsigned long long)(done + (uint64_t)got), (unsigned long long)size);
			done += n;
			pos += n;
		}
	}
	return 0;
}
