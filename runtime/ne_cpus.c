/* ne_cpus: the Nitro Enclaves CPU pool: kernel cpu-list parsing, threads per core, and the check
 * that a vCPU count can be served as full cores before any resource is taken. */
#include <string.h>

#include "runtime/ne.h"

static int parse_cpu(const char **p, unsigned *out)
{
	const char *s = *p;
	if (*s < '0' || *s > '9')
		return -1;
	unsigned long v = 0;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (unsigned long)(*s - '0');
		if (v >= NE_MAX_CPUS)
			return -1;
		s++;
	}
	*out = (unsigned)v;
	*p = s;
	return 0;
}

int ne_cpulist_parse(const char *text, bool set[NE_MAX_CPUS], unsigned *n, struct err **err)
{
	memset(set, 0, NE_MAX_CPUS * sizeof(bool));
	*n = 0;
	const char *p = text;
	while (*p == ' ' || *p == '\t')
		p++;
	/* An empty pool (only whitespace) is valid: the driver's "no pool set". */
	if (*p == '\0' || *p == '\n')
		return 0;
	for (;;) {
		unsigned lo, hi;
		if (parse_cpu(&p, &lo) < 0)
			return err_set(err, EINVAL,
			               "cpu list \"%s\": bad CPU number at offset %zu (want N, N-M, comma "
			               "separated, each below %d)",
			               text, (size_t)(p - text), NE_MAX_CPUS);
		hi = lo;
		if (*p == '-') {
			p++;
			if (parse_cpu(&p, &hi) < 0 || hi < lo)
				return err_set(err, EINVAL, "cpu list \"%s\": bad range at offset %zu", text,
				               (size_t)(p - text));
		}
		for (unsigned c = lo; c <= hi; c++) {
			if (!set[c])
				(*n)++;
			set[c] = true;
		}
		if (*p == ',') {
			p++;
			continue;
		}
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (*p != '\0')
			return err_set(err, EINVAL, "cpu list \"%s\": unexpected '%c' at offset %zu", text, *p,
			               (size_t)(p - text));
		return 0;
	}
}

unsigned ne_threads_per_core(void)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	struct err *e = NULL;
	_cleanup_free_ bool *set = xcalloc(NE_MAX_CPUS, sizeof(bool));
	unsigned n = 0;
	if (io_read_file("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list", 4096, &text, &len, &e) == 0 &&
	    ne_cpulist_parse(text, set, &n, &e) == 0 && n > 0)
		return n;
	err_free(&e);
#if defined(__x86_64__)
	return 2;
#else
	return 1;
#endif
}

int ne_cpus_check(const char *pool_path, unsigned threads_per_core, unsigned count, struct err **err)
{
	if (count == 0)
		return err_set(err, EINVAL, "an enclave needs at least one vCPU");
	if (threads_per_core > 1 && count % threads_per_core != 0)
		return err_set(err, EINVAL,
		               "%u vCPUs cannot be full cores: enclaves take whole cores and each core here has %u "
		               "threads, so use a multiple of %u (%u or %u)%s",
		               count, threads_per_core, threads_per_core, count - count % threads_per_core,
		               count - count % threads_per_core + threads_per_core,
		               threads_per_core == 2 ? "; an even vCPU count on x86" : "");
	if (pool_path == NULL)
		pool_path = NE_DEFAULT_CPU_POOL;
	_cleanup_free_ char *text = NULL;
	size_t len;
	struct err *e = NULL;
	if (io_read_file(pool_path, 64 * 1024, &text, &len, &e) < 0) {
		/* No pool file to read (an older driver, a sandbox): NE_ADD_VCPU will say what is wrong. */
		log_debug("nitro: cannot read the CPU pool (%s); the driver will check the vCPU count", e->msg);
		err_free(&e);
		return 0;
	}
	bool *set = xcalloc(NE_MAX_CPUS, sizeof(bool));
	unsigned n = 0;
	int r = ne_cpulist_parse(text, set, &n, err);
	free(set);
	if (r < 0)
		return err_wrap(err, "%s", pool_path);
	if (n == 0)
		return err_set(err, NE_E_NO_CPUS_AVAIL_IN_POOL,
		               "the Nitro Enclaves CPU pool is empty (%s): set one up with cpu_count in "
		               "/etc/nitro_enclaves/allocator.yaml and restart nitro-enclaves-allocator",
		               pool_path);
	if (count > n)
		return err_set(err, EINVAL,
		               "%u vCPUs requested but the Nitro Enclaves CPU pool has only %u (%s = %.*s): ask for "
		               "fewer or grow the pool (cpu_count in /etc/nitro_enclaves/allocator.yaml, then restart "
		               "nitro-enclaves-allocator)",
		               count, n, pool_path, (int)strcspn(text, "\n"), text);
	return 0;
}
