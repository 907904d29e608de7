/* vhost_mem: the guest memory table of a vhost-user backend: translation of guest physical and
 * QEMU virtual addresses to our mapping, refusing any range that is not wholly mapped. */
#include <sys/mman.h>

#include "runtime/internal.h"

/* [addr, addr+len) inside [start, start+size), without overflow for any input. */
static bool range_inside(uint64_t addr, uint64_t len, uint64_t start, uint64_t size)
{
	if (addr < start)
		return false;
	uint64_t off = addr - start;
	return off <= size && len <= size - off;
}

uint8_t *vhost_mem_gpa(const struct vhost_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->n; i++) {
		const struct vhost_mem_region *r = &mem->regions[i];
		if (range_inside(gpa, len, r->gpa, r->size))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

uint8_t *vhost_mem_uva(const struct vhost_mem *mem, uint64_t uva, uint64_t len)
{
	for (unsigned i = 0; i < mem->n; i++) {
		const struct vhost_mem_region *r = &mem->regions[i];
		if (range_inside(uva, len, r->uva, r->size))
			return r->host + (uva - r->uva);
	}
	return NULL;
}

void vhost_mem_clear(struct vhost_mem *mem)
{
	for (unsigned i = 0; i < mem->n; i++)
		if (mem->regions[i].map)
			munmap(mem->regions[i].map, mem->regions[i].map_len);
	mem->n = 0;
}
