/* ne_sim: a simulated /dev/nitro_enclaves for the unit tests (tests/ne_sim.c), behind the launcher's
 * device seam (struct ne_dev, runtime/ne.h). Test code only: it is linked into the test programs,
 * never into the library. */
#ifndef ENCLAVER_TESTS_NE_SIM_H
#define ENCLAVER_TESTS_NE_SIM_H

#include "runtime/ne.h"

/* ---------------------------------------------------------------- simulated device
 * Enforces the driver's rules and error codes as ne_misc_dev.c does: call order, region size and
 * alignment, hugepage backing, region count, minimum memory, the CPU pool with full cores, flags and
 * CIDs. Enclave fds are socketpair ends, so POLLHUP works as with the driver. */
struct ne_sim_config {
	unsigned n_cpus;           /* parent CPUs; default 8 */
	unsigned threads_per_core; /* default 2; CPU c's core is c % (n_cpus / threads_per_core) */
	const char *cpu_pool;      /* ne_cpus cpu-list; checked like the driver's setup (CPU 0 and its
	                            * siblings excluded, full cores); default "1,5" style: core 1 */
	int numa_node;             /* the pool's node (hugepages must match); default 0 */
	/* The host's NUMA layout and hugepage pools, what ne_sim_write_sysfs shows the launcher: nodes
	 * 0 .. n_nodes-1 (default: enough for numa_node and local_node), each offering page_sizes
	 * (default 1 GiB and 2 MiB) with no free pages until ne_sim_set_hugepages says so. The pool's
	 * CPUs are on numa_node, every other CPU on local_node, where the kernel takes a hugepage first
	 * when the mapping is not bound to a node (then any other node). */
	unsigned n_nodes;
	int local_node;
	const uint64_t *page_sizes;
	unsigned n_page_sizes;
	unsigned max_mem_regions;  /* default 256 */
	uint64_t first_slot_uid;   /* default 1 */
	uint64_t first_cid;        /* auto CIDs count from here; default 16 */
	size_t record_len;         /* bytes recorded from the load offset at start (0: none) */
	/* Called after a successful NE_START_ENCLAVE (the enclave "boots"): tests answer the
	 * heartbeat here; the listener must already exist. */
	void (*on_start)(void *ctx, uint64_t slot_uid, uint64_t cid, uint64_t flags);
	void *ctx;
};
struct ne_sim;
int ne_sim_new(const struct ne_sim_config *cfg, struct ne_sim **out, struct err **err);
void ne_sim_free(struct ne_sim *s);
struct ne_dev *ne_sim_dev(struct ne_sim *s);
/* Sets the free hugepages of one size on one node; -1 when the sim has no such node or size. */
int ne_sim_set_hugepages(struct ne_sim *s, int node, uint64_t page_size, unsigned count);
unsigned ne_sim_hugepages_free(const struct ne_sim *s, int node, uint64_t page_size);
/* Takes one free page as a MAP_HUGETLB fault would: from `node` only when it is >= 0 (the mapping
 * is bound to it), else from local_node first, then the others. Returns the node it came from, or
 * -1 when none is free there. ne_sim_hugepage_put gives it back. */
int ne_sim_hugepage_take(struct ne_sim *s, uint64_t page_size, int node);
void ne_sim_hugepage_put(struct ne_sim *s, uint64_t page_size, int node);
/* Writes the sysfs files the launcher reads under root: devices/system/cpu/cpu<C>/node<N>,
 * devices/system/node/node<N>/hugepages/hugepages-<K>kB/nr_hugepages and kernel/mm/hugepages. */
int ne_sim_write_sysfs(const struct ne_sim *s, const char *root, struct err **err);
/* Declares [addr, addr+len) as hugepages of page_size on numa_node (what get_user_pages would see). */
void ne_sim_add_hugepages(struct ne_sim *s, void *addr, uint64_t len, uint64_t page_size, int numa_node);
/* Forgets them again (the memory is being unmapped). Counted as a violation when an enclave still
 * uses them: the driver pins enclave memory, so unmapping first is a launcher bug. */
void ne_sim_remove_hugepages(struct ne_sim *s, void *addr);
/* The hypervisor stops an enclave: its fd reports POLLHUP. */
int ne_sim_stop(struct ne_sim *s, uint64_t slot_uid);
/* Live slots (created and not yet released). */
unsigned ne_sim_slots(const struct ne_sim *s);
/* CPUs currently free in the pool. */
unsigned ne_sim_pool_free(const struct ne_sim *s);
/* The bytes recorded at the last start (record_len of them, fewer if memory ended first). */
const uint8_t *ne_sim_image(const struct ne_sim *s, size_t *len);
/* Hugepage ranges removed while still in use by an enclave. */
unsigned ne_sim_violations(const struct ne_sim *s);
/* Per-ioctl call counts, for tests of the call sequence. */
struct ne_sim_counts {
	unsigned create_vm, load_info, set_region, add_vcpu, start, release;
};
void ne_sim_counts(const struct ne_sim *s, struct ne_sim_counts *out);

#endif
