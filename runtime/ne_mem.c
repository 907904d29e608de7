/* ne_mem: enclave memory: hugepages mapped largest size first as nitro-cli does, and the EIF streamed
 * into them at the driver's load offset, the regions read as one contiguous space. */
#include <string.h>
#include <sys/mman.h>

#include "runtime/ne.h"

const uint64_t ne_page_sizes[NE_PAGE_SIZES] = {NE_GIB, 2 * NE_MIB};

static void *hugetlb_map(void *ctx, uint64_t page_size)
{
	(void)ctx;
	int shift = __builtin_ctzll(page_size);
	void *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (shift << MAP_HUGE_SHIFT), -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void hugetlb_unmap(void *ctx, void *addr, uint64_t size)
{
	(void)ctx;
	munmap(addr, size);
}

const struct ne_mem_ops ne_mem_hugetlb = {.map = hugetlb_map, .unmap = hugetlb_unmap};

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
static unsigned map_while(struct ne_regions *r, size_t *cap, uint64_t page, uint64_t bytes, bool whole_pages_only)
{
	unsigned got = 0;
	for (;;) {
		uint64_t needed = r->total >= bytes ? 0 : bytes - r->total;
		if (needed == 0 || (whole_pages_only && needed < page))
			return got;
		void *p = r->ops->map(r->ctx, page);
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

int ne_mem_alloc(const struct ne_mem_ops *ops, void *ctx, uint64_t bytes, struct ne_regions *out, struct err **err)
{
	*out = (struct ne_regions){.ops = ops, .ctx = ctx};
	size_t cap = 0;
	/* Larger pages first: fewer regions, less fragmentation; a size that fails is not retried. */
	for (unsigned i = 0; i < NE_PAGE_SIZES; i++)
		map_while(out, &cap, ne_page_sizes[i], bytes, true);
	/* What is left is smaller than the smallest page tried above, or those ran out: fill it with
	 * the smallest pages first so little is wasted. */
	for (unsigned i = NE_PAGE_SIZES; i-- > 0;)
		map_while(out, &cap, ne_page_sizes[i], bytes, false);
	if (out->total < bytes) {
		uint64_t found = out->total;
		unsigned n_1g = 0, n_2m = 0;
		for (size_t i = 0; i < out->n; i++)
			out->v[i].size == NE_GIB ? n_1g++ : n_2m++;
		ne_mem_free(out);
		return err_set(err, ENOMEM,
		               "not enough hugepages for %llu MiB of enclave memory: found %llu MiB (%u x 1 GiB, %u x "
		               "2 MiB). Reserve them with nitro-cli's allocator (memory_mib: %llu in "
		               "/etc/nitro_enclaves/allocator.yaml, then systemctl restart nitro-enclaves-allocator) "
		               "or directly, e.g. echo %llu > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
		               (unsigned long long)(bytes / NE_MIB), (unsigned long long)(found / NE_MIB), n_1g, n_2m,
		               (unsigned long long)((bytes + NE_MIB - 1) / NE_MIB),
		               (unsigned long long)((bytes + 2 * NE_MIB - 1) / (2 * NE_MIB)));
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
