/* test_nitro: the Nitro launcher against the simulated /dev/nitro_enclaves: the driver's rules and
 * error codes, the error messages, hugepage allocation, the EIF copy, and the whole launch sequence
 * through launcher_ops with every failure path leaving nothing allocated. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/nitro_enclaves.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "runtime/ne.h"
#include "tests/ne_sim.h"
#include "runtime/runtime.h"
#include "tests/harness.h"

/* ---------------------------------------------------------------- fixture */

enum hb_mode { HB_GOOD, HB_WRONG, HB_NONE, HB_CLOSE, HB_DIE };

struct fx {
	struct test_ctx *t;
	char dir[512];
	struct ne_sim *sim;
	struct ne_env env;
	/* the memory source: ordinary anonymous memory declared to the sim as hugepages, taken from the
	 * sim's count of free hugepages per node and size */
	struct fx_page {
		void *addr;
		uint64_t size;
		int node;
	} * pages;
	size_t n_pages;
	unsigned live;          /* pages mapped now */
	unsigned live_at_start; /* pages mapped while the last launch_ok's enclave ran */
	bool not_huge;      /* do not declare them (the driver would see small pages) */
	uint64_t page_decl; /* declared page size instead of the real one (0: real) */
	int node_decl;      /* declared node instead of the one the page came from (-1: real) */
	char sysfs[600];    /* the sim's sysfs tree */
	/* the fake enclave, run from the sim's on_start */
	enum hb_mode hb;
	int hb_fd;
	bool hb_connect_failed;
	bool console;
	int console_listen;
	unsigned console_connects;    /* connects to the console port */
	bool console_after_heartbeat; /* the heartbeat's answer was there when the console was dialled */
	uint64_t started_cid, started_flags;
	char eif[600];
	size_t eif_size;
};

static void *fx_map(void *ctx, uint64_t page_size, int node)
{
	struct fx *f = ctx;
	int got = ne_sim_hugepage_take(f->sim, page_size, node);
	if (got < 0) {
		errno = ENOMEM;
		return NULL;
	}
	/* Over-allocate and trim to a 2 MiB boundary, as a hugepage mapping would be aligned. */
	uint64_t align = NE_MIN_REGION;
	uint8_t *raw =
	    mmap(NULL, page_size + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		ne_sim_hugepage_put(f->sim, page_size, got);
		return NULL;
	}
	uint8_t *p = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (p + page_size < raw + page_size + align)
		munmap(p + page_size, (size_t)(raw + page_size + align - (p + page_size)));
	f->pages = xrealloc(f->pages, (f->n_pages + 1) * sizeof(*f->pages));
	f->pages[f->n_pages++] = (struct fx_page){.addr = p, .size = page_size, .node = got};
	f->live++;
	if (!f->not_huge)
		ne_sim_add_hugepages(f->sim, p, page_size, f->page_decl ? f->page_decl : page_size,
		                     f->node_decl >= 0 ? f->node_decl : got);
	return p;
}

static void fx_unmap(void *ctx, void *addr, uint64_t size)
{
	struct fx *f = ctx;
	ne_sim_remove_hugepages(f->sim, addr);
	munmap(addr, size);
	f->live--;
	for (size_t i = 0; i < f->n_pages; i++)
		if (f->pages[i].addr == addr) {
			ne_sim_hugepage_put(f->sim, size, f->pages[i].node);
			f->pages[i] = f->pages[--f->n_pages];
			break;
		}
}

static const struct ne_mem_ops fx_mem = {.map = fx_map, .unmap = fx_unmap};

static void fx_before_connect(void *ctx, uint64_t cid, uint32_t port)
{
	struct fx *f = ctx;
	if (cid != 0 || port != f->started_cid + 10000)
		return;
	f->console_connects++;
	/* The launcher's 0xB7 echo waiting on the fake enclave's end: the heartbeat was answered. */
	struct pollfd p = {.fd = f->hb_fd, .events = POLLIN};
	f->console_after_heartbeat = f->hb_fd >= 0 && poll(&p, 1, 0) == 1;
}

static void fx_on_start(void *ctx, uint64_t slot_uid, uint64_t cid, uint64_t flags)
{
	struct fx *f = ctx;
	f->started_cid = cid;
	f->started_flags = flags;
	char path[700];
	if (f->console && (flags & NE_IOC_DEBUG_MODE)) {
		snprintf(path, sizeof(path), "unix:%s/0-%llu.sock", f->dir, (unsigned long long)cid + 10000);
		struct transport_addr a;
		struct err *e = NULL;
		if (transport_parse(path, &a, &e) == 0)
			f->console_listen = transport_listen(&a, 4, &e);
		err_free(&e);
	}
	if (f->hb == HB_DIE) {
		ne_sim_stop(f->sim, slot_uid);
		return;
	}
	if (f->hb == HB_NONE)
		return;
	/* The enclave's init: connect to the parent (CID 3) port 9000, which must be listening now. */
	snprintf(path, sizeof(path), "unix:%s/3-9000.sock", f->dir);
	struct transport_addr a;
	struct err *e = NULL;
	int fd = -1;
	if (transport_parse(path, &a, &e) == 0)
		fd = transport_connect(&a, false, &e);
	err_free(&e);
	if (fd < 0) {
		f->hb_connect_failed = true;
		return;
	}
	if (f->hb == HB_CLOSE) {
		close(fd);
		return;
	}
	uint8_t b = f->hb == HB_GOOD ? 0xB7 : 0x42;
	if (write(fd, &b, 1) != 1)
		f->hb_connect_failed = true;
	f->hb_fd = fd;
}

/* A file that starts like an EIF, with position-dependent bytes so a misplaced copy shows. */
static void write_eif(struct fx *f, const char *name, size_t size, bool magic)
{
	snprintf(f->eif, sizeof(f->eif), "%s/%s", f->dir, name);
	f->eif_size = size;
	int fd = open(f->eif, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	uint8_t buf[65536];
	for (size_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);
		for (size_t i = 0; i < n; i++) {
			uint32_t x = (uint32_t)(off + i) * 2654435761u;
			buf[i] = (uint8_t)(x >> 24);
		}
		if (off == 0 && magic)
			memcpy(buf, ".eif", 4);
		if (write(fd, buf, n) != (ssize_t)n)
			break;
	}
	close(fd);
}

static void fx_init(struct fx *f, struct test_ctx *t, const struct ne_sim_config *cfg_in)
{
	memset(f, 0, sizeof(*f));
	f->t = t;
	f->hb_fd = -1;
	f->console_listen = -1;
	snprintf(f->dir, sizeof(f->dir), "%s", test_tmpdir(t));
	f->node_decl = -1;
	struct ne_sim_config cfg = cfg_in ? *cfg_in : (struct ne_sim_config){0};
	cfg.on_start = fx_on_start;
	cfg.ctx = f;
	if (cfg.record_len == 0)
		cfg.record_len = 5 * NE_MIB + 12345;
	struct err *e = NULL;
	if (ne_sim_new(&cfg, &f->sim, &e) < 0) {
		test_fail(t, __FILE__, __LINE__, "ne_sim_new: %s", e->msg);
		err_free(&e);
		return;
	}
	/* 1 GiB of 2 MiB pages on the pool's node, no 1 GiB pages unless a test asks */
	ne_sim_set_hugepages(f->sim, cfg.numa_node, 2 * NE_MIB, 512);
	snprintf(f->sysfs, sizeof(f->sysfs), "%s/sys", f->dir);
	if (ne_sim_write_sysfs(f->sim, f->sysfs, &e) < 0) {
		test_fail(t, __FILE__, __LINE__, "ne_sim_write_sysfs: %s", e->msg);
		err_free(&e);
	}
	char pool[700], tag[700];
	snprintf(pool, sizeof(pool), "%s/ne_cpus", f->dir);
	snprintf(tag, sizeof(tag), "%s/board_asset_tag", f->dir);
	FILE *p = fopen(pool, "w");
	if (p) {
		fputs("1,5\n", p);
		fclose(p);
	}
	p = fopen(tag, "w");
	if (p) {
		fputs("i-0123456789abcdef0\n", p);
		fclose(p);
	}
	f->env = (struct ne_env){
	    .dev = ne_sim_dev(f->sim),
	    .mem = &fx_mem,
	    .mem_ctx = f,
	    .net = {.unix_dir = f->dir, .before_connect = fx_before_connect, .hook_ctx = f},
	    .cpu_pool_path = xstrdup(pool),
	    .asset_tag_path = xstrdup(tag),
	    .sysfs_root = f->sysfs,
	    .threads_per_core = 2,
	    .heartbeat_timeout_ms = 5000,
	    .console_timeout_ms = 1000,
	};
	write_eif(f, "app.eif", 5 * NE_MIB + 12345, true);
}

static void fx_free(struct fx *f)
{
	if (f->hb_fd >= 0)
		close(f->hb_fd);
	if (f->console_listen >= 0)
		close(f->console_listen);
	ne_sim_free(f->sim);
	free(f->pages);
	free((char *)f->env.cpu_pool_path);
	free((char *)f->env.asset_tag_path);
}

static unsigned count_fds(void)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Nothing of a failed launch may stay: no slot, no mapping, the pool whole, no descriptor. */
#define CHECK_CLEAN(f, fds_before)                                                                                     \
	do {                                                                                                           \
		CHECK_INT_EQ(ne_sim_slots((f)->sim), 0);                                                               \
		CHECK_INT_EQ((f)->live, 0);                                                                            \
		CHECK_INT_EQ(ne_sim_pool_free((f)->sim), 2);                                                           \
		CHECK_INT_EQ(ne_sim_violations((f)->sim), 0);                                                          \
		CHECK_INT_EQ(count_fds(), (fds_before));                                                               \
	} while (0)

static struct launch_request req_default(const struct fx *f)
{
	return (struct launch_request){.eif_path = f->eif, .cpu_count = 2, .memory_mb = 64};
}

/* Runs one launch that must fail with `needle` and leave nothing behind. */
static void launch_fails(struct fx *f, const struct launch_request *req, const char *needle, int code)
{
	struct test_ctx *t = f->t;
	unsigned fds = count_fds();
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_nitro_new_env(&f->env, &l, &err) == 0);
	struct launch_info info;
	CHECK(launcher_start(l, req, &info, &err) < 0);
	CHECK_ERR_CONTAINS(err, needle);
	if (err && code)
		CHECK_INT_EQ(err->code, code);
	CHECK_INT_EQ(launcher_exit_fd(l), -1);
	err_free(&err);
	launcher_free(l);
	/* The fake enclave's end of a heartbeat connection is the test's, not the launcher's. */
	if (f->hb_fd >= 0) {
		close(f->hb_fd);
		f->hb_fd = -1;
	}
	CHECK_CLEAN(f, fds);
}

/* ---------------------------------------------------------------- driver error messages */

#define UAPI(x)                                                                                                        \
	{                                                                                                              \
		x, #x                                                                                                  \
	}
static const struct {
	int code;
	const char *name;
} uapi_codes[] = {
    UAPI(NE_ERR_VCPU_ALREADY_USED),       UAPI(NE_ERR_VCPU_NOT_IN_CPU_POOL),
    UAPI(NE_ERR_VCPU_INVALID_CPU_CORE),   UAPI(NE_ERR_INVALID_MEM_REGION_SIZE),
    UAPI(NE_ERR_INVALID_MEM_REGION_ADDR), UAPI(NE_ERR_UNALIGNED_MEM_REGION_ADDR),
    UAPI(NE_ERR_MEM_REGION_ALREADY_USED), UAPI(NE_ERR_MEM_NOT_HUGE_PAGE),
    UAPI(NE_ERR_MEM_DIFFERENT_NUMA_NODE), UAPI(NE_ERR_MEM_MAX_REGIONS),
    UAPI(NE_ERR_NO_MEM_REGIONS_ADDED),    UAPI(NE_ERR_NO_VCPUS_ADDED),
    UAPI(NE_ERR_ENCLAVE_MEM_MIN_SIZE),    UAPI(NE_ERR_FULL_CORES_NOT_USED),
    UAPI(NE_ERR_NOT_IN_INIT_STATE),       UAPI(NE_ERR_INVALID_VCPU),
    UAPI(NE_ERR_NO_CPUS_AVAIL_IN_POOL),   UAPI(NE_ERR_INVALID_PAGE_SIZE),
    UAPI(NE_ERR_INVALID_FLAG_VALUE),      UAPI(NE_ERR_INVALID_ENCLAVE_CID),
};

TEST(err_table_has_every_driver_code)
{
	/* The codes and names come from the kernel's header, not from our table. */
	CHECK_INT_EQ(sizeof(uapi_codes) / sizeof(uapi_codes[0]), 20);
	for (size_t i = 0; i < sizeof(uapi_codes) / sizeof(uapi_codes[0]); i++) {
		const struct ne_err_info *e = ne_err_lookup(uapi_codes[i].code);
		if (e == NULL) {
			test_fail(t, __FILE__, __LINE__, "no message for %s (%d)", uapi_codes[i].name,
			          uapi_codes[i].code);
			continue;
		}
		CHECK_STR_EQ(e->name, uapi_codes[i].name);
		/* Cause, then what to do: every message has both halves and is its own. */
		CHECK(strchr(e->text, ':') != NULL);
		CHECK(strlen(e->text) > 40);
		for (size_t j = 0; j < i; j++) {
			const struct ne_err_info *o = ne_err_lookup(uapi_codes[j].code);
			CHECK(o == NULL || strcmp(o->text, e->text) != 0);
		}
	}
	for (int code = NE_E_FIRST; code <= NE_E_LAST; code++)
		CHECK(ne_err_lookup(code) != NULL);
}

TEST(err_table_usual_errnos)
{
	int usual[] = {EINVAL, EFAULT, ENOMEM, EIO, ENOTTY, EBADF, EPERM, EACCES};
	for (size_t i = 0; i < sizeof(usual) / sizeof(usual[0]); i++) {
		const struct ne_err_info *e = ne_err_lookup(usual[i]);
		REQUIRE(e != NULL);
		CHECK(strlen(e->text) > 20);
	}
	CHECK(ne_err_lookup(12345) == NULL);
}

TEST(err_messages_say_what_to_change)
{
	/* The actions a user needs for the codes they can cause. */
	struct {
		int code;
		const char *needle;
	} want[] = {
	    {NE_ERR_FULL_CORES_NOT_USED, "even vCPU count"},
	    {NE_ERR_MEM_NOT_HUGE_PAGE, "/etc/nitro_enclaves/allocator.yaml"},
	    {NE_ERR_MEM_NOT_HUGE_PAGE, "nr_hugepages"},
	    {NE_ERR_NO_CPUS_AVAIL_IN_POOL, "/sys/module/nitro_enclaves/parameters/ne_cpus"},
	    {NE_ERR_VCPU_NOT_IN_CPU_POOL, "cpu_count"},
	    {NE_ERR_ENCLAVE_MEM_MIN_SIZE, "64 MiB"},
	    {NE_ERR_INVALID_ENCLAVE_CID, "4294967294"},
	    {NE_ERR_MEM_MAX_REGIONS, "1 GiB hugepages"},
	    {NE_ERR_MEM_DIFFERENT_NUMA_NODE, "NUMA node"},
	    {NE_ERR_INVALID_PAGE_SIZE, "2 MiB"},
	    {NE_ERR_INVALID_VCPU, "ne_cpus"},
	    {ENOTTY, "not a Nitro Enclaves device"},
	    {EIO, "another process"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct ne_err_info *e = ne_err_lookup(want[i].code);
		REQUIRE(e != NULL);
		if (strstr(e->text, want[i].needle) == NULL)
			test_fail(t, __FILE__, __LINE__, "%s: \"%s\" lacks \"%s\"", e->name, e->text, want[i].needle);
	}
}

TEST(err_set_formats_and_falls_back)
{
	struct err *err = NULL;
	CHECK(ne_err_set(&err, NE_ERR_FULL_CORES_NOT_USED, "NE_START_ENCLAVE") < 0);
	REQUIRE(err != NULL);
	CHECK_INT_EQ(err->code, 269);
	CHECK(str_has_prefix(err->msg, "NE_START_ENCLAVE: enclaves need full CPU cores"));
	CHECK_ERR_CONTAINS(err, "(NE_ERR_FULL_CORES_NOT_USED)");
	err_free(&err);
	CHECK(ne_err_set(&err, EROFS, "NE_CREATE_VM") < 0);
	CHECK_ERR_CONTAINS(err, strerror(EROFS));
	CHECK_ERR_CONTAINS(err, "errno 30");
	err_free(&err);
}

/* ---------------------------------------------------------------- CPU pool */

TEST(cpulist_parse_good_and_bad)
{
	bool *set = xcalloc(NE_MAX_CPUS, sizeof(bool));
	unsigned n;
	struct err *err = NULL;
	REQUIRE(ne_cpulist_parse("1-3,5\n", set, &n, &err) == 0);
	CHECK_INT_EQ(n, 4);
	CHECK(!set[0] && set[1] && set[2] && set[3] && !set[4] && set[5]);
	REQUIRE(ne_cpulist_parse("\n", set, &n, &err) == 0);
	CHECK_INT_EQ(n, 0);
	REQUIRE(ne_cpulist_parse("7,7,6-7", set, &n, &err) == 0);
	CHECK_INT_EQ(n, 2);
	const char *bad[] = {"a", "3-1", "1,", "1-", "1 2", "99999", "-1", "1,,2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(ne_cpulist_parse(bad[i], set, &n, &err) < 0);
		CHECK_ERR_CONTAINS(err, "offset");
		err_free(&err);
	}
	free(set);
}

TEST(cpus_check_full_cores_and_pool_size)
{
	const char *dir = test_tmpdir(t);
	char pool[600];
	snprintf(pool, sizeof(pool), "%s/ne_cpus", dir);
	FILE *p = fopen(pool, "w");
	REQUIRE(p != NULL);
	fputs("1,5\n", p);
	fclose(p);
	struct err *err = NULL;
	CHECK(ne_cpus_check(pool, 2, 2, &err) == 0);
	CHECK(ne_cpus_check(pool, 2, 3, &err) < 0);
	CHECK_ERR_CONTAINS(err, "3 vCPUs cannot be full cores");
	CHECK_ERR_CONTAINS(err, "(2 or 4)");
	CHECK_ERR_CONTAINS(err, "even vCPU count");
	err_free(&err);
	CHECK(ne_cpus_check(pool, 2, 4, &err) < 0);
	CHECK_ERR_CONTAINS(err, "pool has only 2");
	CHECK_ERR_CONTAINS(err, "= 1,5)");
	err_free(&err);
	/* One thread per core (SMT off): odd counts are full cores. */
	CHECK(ne_cpus_check(pool, 1, 1, &err) == 0);
	CHECK(ne_cpus_check(pool, 2, 0, &err) < 0);
	err_free(&err);
	/* No pool file: left to the driver. */
	char missing[700];
	snprintf(missing, sizeof(missing), "%s/none", dir);
	CHECK(ne_cpus_check(missing, 2, 8, &err) == 0);
	p = fopen(pool, "w");
	REQUIRE(p != NULL);
	fputs("\n", p);
	fclose(p);
	CHECK(ne_cpus_check(pool, 2, 2, &err) < 0);
	CHECK_ERR_CONTAINS(err, "pool is empty");
	CHECK_INT_EQ(err ? err->code : 0, NE_ERR_NO_CPUS_AVAIL_IN_POOL);
	err_free(&err);
	p = fopen(pool, "w");
	REQUIRE(p != NULL);
	fputs("1;5\n", p);
	fclose(p);
	CHECK(ne_cpus_check(pool, 2, 2, &err) < 0);
	CHECK_ERR_CONTAINS(err, pool);
	err_free(&err);
}

TEST(threads_per_core_is_sane)
{
	unsigned n = ne_threads_per_core();
	CHECK(n >= 1 && n <= 8);
}

/* ---------------------------------------------------------------- heartbeat timeout, enclave id */

TEST(heartbeat_timeout_is_nitro_cli_formula)
{
	/* nitro-cli's own test cases for calculate_necessary_timeout (TIMEOUT_MINUTE_MS = 90 s). */
	CHECK_INT_EQ(ne_heartbeat_timeout_ms(2 * NE_GIB, 32 * NE_GIB), 2 * 90000);
	CHECK_INT_EQ(ne_heartbeat_timeout_ms(6 * NE_GIB, 32 * NE_GIB), 2 * 90000);
	CHECK_INT_EQ(ne_heartbeat_timeout_ms(10 * NE_GIB, 32 * NE_GIB), 3 * 90000);
	CHECK_INT_EQ(ne_heartbeat_timeout_ms(2 * NE_GIB, 128 * NE_GIB), 3 * 90000);
	CHECK_INT_EQ(ne_heartbeat_timeout_ms(6 * NE_GIB, 128 * NE_GIB), 3 * 90000);
	CHECK_INT_EQ(ne_heartbeat_timeout_ms(10 * NE_GIB, 128 * NE_GIB), 4 * 90000);
	CHECK_INT_EQ(ne_heartbeat_timeout_ms(1, 1), 180000);
}

TEST(enclave_id_from_asset_tag)
{
	const char *dir = test_tmpdir(t);
	char tag[600];
	snprintf(tag, sizeof(tag), "%s/tag", dir);
	FILE *p = fopen(tag, "w");
	REQUIRE(p != NULL);
	fputs(" i-0abc 123\n", p);
	fclose(p);
	char id[128];
	ne_enclave_id(tag, 0x1b, id, sizeof(id));
	CHECK_STR_EQ(id, "i-0abc123-enc1b");
	snprintf(tag, sizeof(tag), "%s/absent", dir);
	ne_enclave_id(tag, 7, id, sizeof(id));
	CHECK_STR_EQ(id, "i-0000000000000000-enc7");
}

/* ---------------------------------------------------------------- hugepage memory */

/* What an x86 host with one node offers. */
static const struct ne_hugepages hp_x86 = {.node = 0, .n = 2, .sizes = {NE_GIB, 2 * NE_MIB}};

TEST(mem_alloc_largest_pages_first)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct ne_regions r;
	struct err *err = NULL;
	ne_sim_set_hugepages(f.sim, 0, NE_GIB, 1);
	/* 1 GiB + 4 MiB: the 1 GiB page, then two 2 MiB pages. */
	REQUIRE(ne_mem_alloc(&fx_mem, &f, &hp_x86, NE_GIB + 4 * NE_MIB, &r, &err) == 0);
	REQUIRE(r.n == 3);
	CHECK(r.v[0].size == NE_GIB && r.v[1].size == 2 * NE_MIB && r.v[2].size == 2 * NE_MIB);
	CHECK(r.total == NE_GIB + 4 * NE_MIB);
	CHECK_INT_EQ(f.live, 3);
	for (size_t i = 0; i < r.n; i++)
		CHECK((uintptr_t)r.v[i].addr % NE_MIN_REGION == 0);
	ne_mem_free(&r);
	ne_mem_free(&r); /* twice is fine */
	CHECK_INT_EQ(f.live, 0);

	/* 512 MiB: below one 1 GiB page, so 2 MiB pages only. */
	REQUIRE(ne_mem_alloc(&fx_mem, &f, &hp_x86, 512 * NE_MIB, &r, &err) == 0);
	CHECK_INT_EQ(r.n, 256);
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 0, NE_GIB), 1);
	ne_mem_free(&r);

	/* 512 MiB with only ten 2 MiB pages: the 1 GiB page covers it and the small ones go back. */
	ne_sim_set_hugepages(f.sim, 0, 2 * NE_MIB, 10);
	REQUIRE(ne_mem_alloc(&fx_mem, &f, &hp_x86, 512 * NE_MIB, &r, &err) == 0);
	CHECK_INT_EQ(r.n, 1);
	CHECK(r.total == NE_GIB);
	CHECK_INT_EQ(f.live, 1);
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 0, 2 * NE_MIB), 10);
	ne_mem_free(&r);
	CHECK_INT_EQ(f.live, 0);
	fx_free(&f);
}

TEST(mem_alloc_not_enough_hugepages)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct ne_regions r;
	struct err *err = NULL;
	ne_sim_set_hugepages(f.sim, 0, 2 * NE_MIB, 0);
	CHECK(ne_mem_alloc(&fx_mem, &f, &hp_x86, 64 * NE_MIB, &r, &err) < 0);
	CHECK_ERR_CONTAINS(err, "not enough hugepages for 64 MiB");
	CHECK_ERR_CONTAINS(err, "found 0 MiB (0 x 1 GiB, 0 x 2 MiB) on NUMA node 0");
	/* the pool's node's own file, not the global nr_hugepages (pages on other nodes do not count) */
	CHECK_ERR_CONTAINS(err, "directly on the CPU pool's NUMA node 0, e.g. echo 32 > "
	                        "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages");
	CHECK_ERR_CONTAINS(err, "/etc/nitro_enclaves/allocator.yaml");
	CHECK_INT_EQ(err ? err->code : 0, ENOMEM);
	err_free(&err);
	/* no NUMA in sysfs: the global file */
	struct ne_hugepages hp_any = hp_x86;
	hp_any.node = -1;
	CHECK(ne_mem_alloc(&fx_mem, &f, &hp_any, 64 * NE_MIB, &r, &err) < 0);
	CHECK_ERR_CONTAINS(err, "found 0 MiB (0 x 1 GiB, 0 x 2 MiB). Reserve");
	CHECK_ERR_CONTAINS(err, "directly, e.g. echo 32 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
	err_free(&err);
	ne_sim_set_hugepages(f.sim, 0, 2 * NE_MIB, 10);
	CHECK(ne_mem_alloc(&fx_mem, &f, &hp_x86, 64 * NE_MIB, &r, &err) < 0);
	CHECK_ERR_CONTAINS(err, "found 20 MiB (0 x 1 GiB, 10 x 2 MiB)");
	err_free(&err);
	CHECK_INT_EQ(f.live, 0);
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 0, 2 * NE_MIB), 10);
	fx_free(&f);
}

TEST(mem_alloc_real_hugetlb)
{
	/* This machine's own hugepages: either some are reserved and we get a real, aligned one, or none
	 * are and the message says how to reserve them. */
	struct ne_regions r;
	struct err *err = NULL;
	struct ne_hugepages hp;
	ne_hugepages_probe(NULL, NULL, &hp);
	CHECK(hp.n >= 1);
	for (unsigned i = 0; i < hp.n; i++)
		CHECK(hp.sizes[i] >= NE_MIN_REGION && (i == 0 || hp.sizes[i] < hp.sizes[i - 1]));
	if (ne_mem_alloc(&ne_mem_hugetlb, NULL, &hp, 2 * NE_MIB, &r, &err) == 0) {
		CHECK(r.n >= 1);
		CHECK((uintptr_t)r.v[0].addr % NE_MIN_REGION == 0);
		r.v[0].addr[0] = 1; /* the page is really ours */
		ne_mem_free(&r);
	} else {
		CHECK_ERR_CONTAINS(err, "nr_hugepages");
		err_free(&err);
	}
	/* The same bound to node 0 (MPOL_BIND, populated, node checked), when this machine has one. */
	if (access("/sys/devices/system/node/node0", F_OK) == 0) {
		struct ne_hugepages hp0 = {.node = 0, .n = 1, .sizes = {2 * NE_MIB}};
		if (ne_mem_alloc(&ne_mem_hugetlb, NULL, &hp0, 4 * NE_MIB, &r, &err) == 0) {
			CHECK_INT_EQ(r.n, 2);
			CHECK((uintptr_t)r.v[1].addr % NE_MIN_REGION == 0);
			r.v[1].addr[NE_MIB] = 1;
			ne_mem_free(&r);
		} else {
			CHECK_ERR_CONTAINS(err,
			                   "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages");
			err_free(&err);
		}
	}
}

TEST(hugepage_dirname_parse_good_and_bad)
{
	uint64_t size = 0;
	struct err *e = NULL;
	CHECK(ne_hugepage_dirname_parse("hugepages-2048kB", &size, &e) == 0 && size == 2 * NE_MIB);
	CHECK(ne_hugepage_dirname_parse("hugepages-32768kB", &size, &e) == 0 && size == 32 * NE_MIB);
	CHECK(ne_hugepage_dirname_parse("hugepages-16777216kB", &size, &e) == 0 && size == 16 * NE_GIB);
	CHECK(ne_hugepage_dirname_parse("hugepages-64kB", &size, &e) == 0 && size == 64 * 1024);
	static const struct {
		const char *name, *msg;
	} bad[] = {
	    {"hugepage-2048kB", "\"hugepage-2048kB\": expected \"hugepages-<N>kB\" at offset 0"},
	    {"hugepages-kB", "expected a number at offset 10"},
	    {"hugepages-2048", "expected \"kB\" at offset 14"},
	    {"hugepages-2048KB", "expected \"kB\" at offset 14"},
	    {"hugepages-2048kB ", "expected \"kB\" at offset 14"},
	    {"hugepages-3000kB", "3000 kB is not a power of two"},
	    {"hugepages-0kB", "0 kB is not a power of two"},
	    {"hugepages-99999999999999999999kB", "size too large at offset"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(ne_hugepage_dirname_parse(bad[i].name, &size, &e) < 0);
		CHECK_ERR_CONTAINS(e, bad[i].msg);
		err_free(&e);
	}
}

static void mkdirs(const char *root, const char *rel)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *q = path + 1; *q; q++)
		if (*q == '/') {
			*q = '\0';
			mkdir(path, 0755);
			*q = '/';
		}
	mkdir(path, 0755);
}

TEST(hugepages_probe_reads_the_pool_node)
{
	const char *dir = test_tmpdir(t);
	char root[600], pool[600];
	snprintf(root, sizeof(root), "%s/sys", dir);
	snprintf(pool, sizeof(pool), "%s/ne_cpus", dir);
	/* a two-node Graviton host with 4K pages: the pool (CPUs 2,3) on node 1, which lists 64K, 2M,
	 * 32M and 1G pages (64K is below the driver's minimum); node 0 only 2M */
	mkdirs(root, "devices/system/cpu/cpu2/node1");
	mkdirs(root, "devices/system/cpu/cpu3/node1");
	mkdirs(root, "devices/system/cpu/cpu0/node0");
	mkdirs(root, "devices/system/node/node1/hugepages/hugepages-64kB");
	mkdirs(root, "devices/system/node/node1/hugepages/hugepages-2048kB");
	mkdirs(root, "devices/system/node/node1/hugepages/hugepages-32768kB");
	mkdirs(root, "devices/system/node/node1/hugepages/hugepages-1048576kB");
	mkdirs(root, "devices/system/node/node1/hugepages/not-a-size"); /* ignored with a warning */
	mkdirs(root, "devices/system/node/node0/hugepages/hugepages-2048kB");
	mkdirs(root, "kernel/mm/hugepages/hugepages-2048kB");
	FILE *f = fopen(pool, "w");
	REQUIRE(f != NULL);
	fputs("2-3\n", f);
	fclose(f);
	struct ne_hugepages hp;
	ne_hugepages_probe(root, pool, &hp);
	CHECK_INT_EQ(hp.node, 1);
	REQUIRE(hp.n == 3);
	CHECK(hp.sizes[0] == NE_GIB && hp.sizes[1] == 32 * NE_MIB && hp.sizes[2] == 2 * NE_MIB);

	/* no pool file: no node, the global list */
	snprintf(pool, sizeof(pool), "%s/missing", dir);
	ne_hugepages_probe(root, pool, &hp);
	CHECK_INT_EQ(hp.node, -1);
	REQUIRE(hp.n == 1);
	CHECK(hp.sizes[0] == 2 * NE_MIB);

	/* no sysfs at all: every size nitro-cli knows, largest first */
	snprintf(root, sizeof(root), "%s/nothing", dir);
	ne_hugepages_probe(root, pool, &hp);
	CHECK_INT_EQ(hp.node, -1);
	CHECK_INT_EQ(hp.n, ne_page_sizes_known_n);
	CHECK(hp.sizes[0] == 16 * NE_GIB && hp.sizes[hp.n - 1] == 2 * NE_MIB);
	bool has_32m = false, has_512m = false;
	for (unsigned i = 0; i < hp.n; i++) {
		has_32m |= hp.sizes[i] == 32 * NE_MIB;
		has_512m |= hp.sizes[i] == 512 * NE_MIB;
	}
	CHECK(has_32m && has_512m);
}

/* Launches with the fixture and returns the regions' sizes through the sim's free counts. */
static bool launch_ok(struct fx *f, struct launch_request *req, struct launch_info *info)
{
	struct test_ctx *t = f->t;
	struct launcher *l = NULL;
	struct err *err = NULL;
	if (launcher_nitro_new_env(&f->env, &l, &err) < 0) {
		test_fail(t, __FILE__, __LINE__, "new: %s", err->msg);
		err_free(&err);
		return false;
	}
	bool ok = launcher_start(l, req, info, &err) == 0;
	if (!ok) {
		test_fail(t, __FILE__, __LINE__, "start: %s", err->msg);
		err_free(&err);
	}
	f->live_at_start = f->live;
	launcher_free(l);
	if (f->hb_fd >= 0) {
		close(f->hb_fd);
		f->hb_fd = -1;
	}
	return ok;
}

TEST(launch_uses_every_hugepage_size_graviton_4k)
{
	/* arm64 with 4K pages offers 2M, 32M and 1G (and 64K); only 32M pages are reserved. */
	static const uint64_t sizes[] = {64 * 1024, 2 * NE_MIB, 32 * NE_MIB, NE_GIB};
	struct ne_sim_config cfg = {.page_sizes = sizes, .n_page_sizes = 4};
	struct fx f;
	fx_init(&f, t, &cfg);
	REQUIRE(f.sim != NULL);
	ne_sim_set_hugepages(f.sim, 0, 2 * NE_MIB, 0);
	ne_sim_set_hugepages(f.sim, 0, 32 * NE_MIB, 5);
	ne_sim_set_hugepages(f.sim, 0, 64 * 1024, 4096);
	struct launch_request req = req_default(&f);
	req.memory_mb = 128;
	struct launch_info info;
	if (launch_ok(&f, &req, &info)) {
		CHECK_INT_EQ(info.memory_mib, 128);
		CHECK_INT_EQ(f.live_at_start, 4); /* four 32 MiB regions */
	}
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 0, 32 * NE_MIB), 5);
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 0, 64 * 1024), 4096); /* never tried: below 2 MiB */
	CHECK_INT_EQ(f.live, 0);
	fx_free(&f);
}

TEST(launch_uses_every_hugepage_size_graviton_64k)
{
	/* arm64 with 64K pages offers 2M, 512M and 16G; one 512 MiB page is reserved. */
	static const uint64_t sizes[] = {2 * NE_MIB, 512 * NE_MIB, 16 * NE_GIB};
	struct ne_sim_config cfg = {.page_sizes = sizes, .n_page_sizes = 3};
	struct fx f;
	fx_init(&f, t, &cfg);
	REQUIRE(f.sim != NULL);
	ne_sim_set_hugepages(f.sim, 0, 2 * NE_MIB, 0);
	ne_sim_set_hugepages(f.sim, 0, 512 * NE_MIB, 1);
	struct launch_request req = req_default(&f);
	req.memory_mb = 512;
	struct launch_info info;
	if (launch_ok(&f, &req, &info)) {
		CHECK_INT_EQ(info.memory_mib, 512);
		CHECK_INT_EQ(f.live_at_start, 1);
	}
	/* 64 MiB: the 512 MiB page covers it when no 2 MiB pages are left */
	req.memory_mb = 64;
	if (launch_ok(&f, &req, &info))
		CHECK_INT_EQ(info.memory_mib, 512);
	CHECK_INT_EQ(f.live, 0);
	fx_free(&f);
}

TEST(launch_takes_memory_from_the_pool_node)
{
	/* Two nodes; enclaver runs on node 0, the CPU pool is on node 1, both have 2 MiB pages. The
	 * kernel's default policy would take node 0's: the driver refuses those (264). */
	struct ne_sim_config cfg = {.numa_node = 1, .local_node = 0};
	struct fx f;
	fx_init(&f, t, &cfg);
	REQUIRE(f.sim != NULL);
	ne_sim_set_hugepages(f.sim, 0, 2 * NE_MIB, 512);
	ne_sim_set_hugepages(f.sim, 1, 2 * NE_MIB, 40);
	struct launch_request req = req_default(&f);
	struct launch_info info;
	if (launch_ok(&f, &req, &info)) {
		CHECK_INT_EQ(info.memory_mib, 64);
		CHECK_INT_EQ(f.live_at_start, 32);
	}
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 0, 2 * NE_MIB), 512);
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 1, 2 * NE_MIB), 40);

	/* Too few on the pool's node: refused before the driver sees anything, node 0's plenty does not
	 * count, and the hint names node 1's own file. */
	ne_sim_set_hugepages(f.sim, 1, 2 * NE_MIB, 10);
	launch_fails(&f, &req, "found 20 MiB (0 x 1 GiB, 10 x 2 MiB) on NUMA node 1", ENOMEM);
	launch_fails(&f, &req,
	             "on the CPU pool's NUMA node 1, e.g. echo 32 > "
	             "/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages",
	             ENOMEM);
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 0, 2 * NE_MIB), 512);
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 1, 2 * NE_MIB), 10);
	fx_free(&f);
}

TEST(sim_hugepages_per_node)
{
	struct ne_sim_config cfg = {.numa_node = 1, .local_node = 0, .n_nodes = 3};
	struct ne_sim *s = NULL;
	struct err *e = NULL;
	REQUIRE(ne_sim_new(&cfg, &s, &e) == 0);
	CHECK(ne_sim_set_hugepages(s, 3, 2 * NE_MIB, 1) == -1); /* no such node */
	CHECK(ne_sim_set_hugepages(s, 0, 4 * NE_MIB, 1) == -1); /* no such size */
	CHECK(ne_sim_set_hugepages(s, 2, 2 * NE_MIB, 1) == 0);
	CHECK(ne_sim_set_hugepages(s, 1, 2 * NE_MIB, 1) == 0);
	/* unbound: local node (empty), then the others in order */
	CHECK_INT_EQ(ne_sim_hugepage_take(s, 2 * NE_MIB, -1), 1);
	CHECK_INT_EQ(ne_sim_hugepage_take(s, 2 * NE_MIB, -1), 2);
	CHECK_INT_EQ(ne_sim_hugepage_take(s, 2 * NE_MIB, -1), -1);
	ne_sim_hugepage_put(s, 2 * NE_MIB, 2);
	CHECK_INT_EQ(ne_sim_hugepage_take(s, 2 * NE_MIB, 1), -1); /* bound: that node only */
	CHECK_INT_EQ(ne_sim_hugepage_take(s, 2 * NE_MIB, 2), 2);
	/* the sysfs tree it writes is what the probe reads */
	char root[600], pool[600];
	snprintf(root, sizeof(root), "%s/sys", test_tmpdir(t));
	snprintf(pool, sizeof(pool), "%s/pool", test_tmpdir(t));
	REQUIRE(ne_sim_write_sysfs(s, root, &e) == 0);
	FILE *f = fopen(pool, "w");
	REQUIRE(f != NULL);
	fputs("1,5\n", f);
	fclose(f);
	struct ne_hugepages hp;
	ne_hugepages_probe(root, pool, &hp);
	CHECK_INT_EQ(hp.node, 1);
	CHECK(hp.n == 2 && hp.sizes[0] == NE_GIB && hp.sizes[1] == 2 * NE_MIB);
	ne_sim_free(s);
	/* bad NUMA settings */
	struct ne_sim_config bad = {.numa_node = -1};
	CHECK(ne_sim_new(&bad, &s, &e) < 0);
	CHECK_ERR_CONTAINS(e, "NUMA nodes -1 and 0");
	err_free(&e);
}

TEST(mem_load_spans_regions)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct ne_regions r;
	struct err *err = NULL;
	REQUIRE(ne_mem_alloc(&fx_mem, &f, &hp_x86, 16 * NE_MIB, &r, &err) == 0);
	REQUIRE(r.n == 8);
	uint64_t size;
	int fd = io_open_regular(f.eif, &size, &err);
	REQUIRE(fd >= 0);
	/* 3 MiB in: the image starts mid-region 1 and runs through regions 2 and 3 into 4. */
	REQUIRE(ne_mem_load(&r, 3 * NE_MIB, fd, size, f.eif, &err) == 0);
	uint8_t *want = xmalloc(size);
	CHECK(io_pread_full(fd, want, size, 0, &err) == (ssize_t)size);
	uint64_t pos = 3 * NE_MIB, done = 0, bad = 0;
	for (size_t i = 0; i < r.n; i++) {
		uint64_t start = i * 2 * NE_MIB;
		for (uint64_t k = 0; k < 2 * NE_MIB; k++) {
			uint64_t at = start + k;
			uint8_t expect = (at >= pos && at < pos + size) ? want[at - pos] : 0;
			if (r.v[i].addr[k] != expect)
				bad++;
			done += at >= pos && at < pos + size;
		}
	}
	CHECK_INT_EQ(bad, 0);
	CHECK_INT_EQ(done, size);
	free(want);
	/* Too big for the memory past the offset. */
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK(ne_mem_load(&r, 12 * NE_MIB, fd, size, f.eif, &err) < 0);
	CHECK_ERR_CONTAINS(err, "does not fit at offset 12582912 of 16 MiB");
	err_free(&err);
	/* The file is shorter than announced. */
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK(ne_mem_load(&r, 0, fd, size + 100, f.eif, &err) < 0);
	CHECK_ERR_CONTAINS(err, "ended at");
	err_free(&err);
	close(fd);
	ne_mem_free(&r);
	fx_free(&f);
}

/* ---------------------------------------------------------------- the simulated driver's rules */

TEST(sim_cpu_pool_setup_rules)
{
	struct ne_sim *s = NULL;
	struct err *err = NULL;
	/* 8 CPUs, 2 threads per core: core c is {c, c + 4}. */
	const char *bad[][2] = {{"0,4", "CPU 0"},
	                        {"4,0", "CPU 0"},
	                        {"1", "sibling 5 is missing"},
	                        {"1,5,9", "CPU 9 does not exist"},
	                        {"x", "offset"}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ne_sim_config c = {.cpu_pool = bad[i][0]};
		CHECK(ne_sim_new(&c, &s, &err) < 0);
		CHECK_ERR_CONTAINS(err, bad[i][1]);
		err_free(&err);
	}
	struct ne_sim_config c = {.cpu_pool = "1-3,5-7"};
	REQUIRE(ne_sim_new(&c, &s, &err) == 0);
	CHECK_INT_EQ(ne_sim_pool_free(s), 6);
	ne_sim_free(s);
	/* An empty pool: the driver refuses to create enclaves. */
	c.cpu_pool = "";
	REQUIRE(ne_sim_new(&c, &s, &err) == 0);
	struct ne_dev *d = ne_sim_dev(s);
	uint64_t uid;
	CHECK(d->ops->create_vm(d, &uid) < 0 && errno == NE_ERR_NO_CPUS_AVAIL_IN_POOL);
	ne_sim_free(s);
}

/* A sim plus one enclave slot and 2 MiB "hugepages" from the fixture. */
struct simfx {
	struct fx f;
	struct ne_dev *d;
	int fd;
	uint64_t uid;
	void *pages[40];
	unsigned n_pages;
};

static bool simfx_init(struct simfx *s, struct test_ctx *t, const struct ne_sim_config *cfg)
{
	memset(s, 0, sizeof(*s));
	fx_init(&s->f, t, cfg);
	if (s->f.sim == NULL)
		return false;
	s->d = ne_sim_dev(s->f.sim);
	s->fd = s->d->ops->create_vm(s->d, &s->uid);
	return s->fd >= 0;
}

static void *simfx_page(struct simfx *s)
{
	void *p = fx_map(&s->f, 2 * NE_MIB, -1);
	if (p)
		s->pages[s->n_pages++] = p;
	return p;
}

static int set_region(struct simfx *s, void *addr, uint64_t size, uint64_t flags)
{
	struct ne_ioc_mem_region r = {.flags = flags, .memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)addr};
	return s->d->ops->set_user_memory_region(s->d, s->fd, &r);
}

static int add_vcpu(struct simfx *s, uint32_t id, uint32_t *out)
{
	int r = s->d->ops->add_vcpu(s->d, s->fd, &id);
	if (out)
		*out = id;
	return r;
}

static int start(struct simfx *s, uint64_t flags, uint64_t cid, uint64_t *out_cid)
{
	struct ne_ioc_start_info si = {.flags = flags, .enclave_cid = cid};
	int r = s->d->ops->start_enclave(s->d, s->fd, &si);
	if (out_cid)
		*out_cid = si.enclave_cid;
	return r;
}

static void simfx_free(struct simfx *s)
{
	if (s->fd >= 0)
		s->d->ops->release(s->d, s->fd);
	for (unsigned i = 0; i < s->n_pages; i++)
		fx_unmap(&s->f, s->pages[i], 2 * NE_MIB);
	s->f.hb = HB_NONE;
	fx_free(&s->f);
}

/* errno after a failing op, 0 when it succeeded. */
#define ERRNO_OF(call) ((call) < 0 ? errno : 0)

TEST(sim_memory_region_rules)
{
	struct simfx s;
	struct ne_sim_config cfg = {.max_mem_regions = 3};
	REQUIRE(simfx_init(&s, t, &cfg));
	uint8_t *p = simfx_page(&s);
	REQUIRE(p != NULL);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, p, 2 * NE_MIB, 1)), NE_ERR_INVALID_FLAG_VALUE);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, p, NE_MIB, 0)), NE_ERR_INVALID_MEM_REGION_SIZE);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, p, 0, 0)), NE_ERR_INVALID_MEM_REGION_SIZE);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, p + 4096, 2 * NE_MIB, 0)), NE_ERR_UNALIGNED_MEM_REGION_ADDR);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, NULL, 2 * NE_MIB, 0)), NE_ERR_INVALID_MEM_REGION_ADDR);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, (void *)(uintptr_t)0xfffffffffe00000ULL, 4 * NE_MIB, 0)),
	             NE_ERR_INVALID_MEM_REGION_ADDR);
	/* Memory the driver would not see as hugepages. */
	s.f.not_huge = true;
	uint8_t *small = simfx_page(&s);
	s.f.not_huge = false;
	REQUIRE(small != NULL);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, small, 2 * NE_MIB, 0)), NE_ERR_MEM_NOT_HUGE_PAGE);
	s.f.page_decl = 64 * 1024;
	uint8_t *pg64k = simfx_page(&s);
	s.f.page_decl = 0;
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, pg64k, 2 * NE_MIB, 0)), NE_ERR_INVALID_PAGE_SIZE);
	s.f.node_decl = 1;
	uint8_t *far = simfx_page(&s);
	s.f.node_decl = -1;
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, far, 2 * NE_MIB, 0)), NE_ERR_MEM_DIFFERENT_NUMA_NODE);
	/* A good one, then the same again. */
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, p, 2 * NE_MIB, 0)), 0);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, p, 2 * NE_MIB, 0)), NE_ERR_MEM_REGION_ALREADY_USED);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, simfx_page(&s), 2 * NE_MIB, 0)), 0);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, simfx_page(&s), 2 * NE_MIB, 0)), 0);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, simfx_page(&s), 2 * NE_MIB, 0)), NE_ERR_MEM_MAX_REGIONS);
	/* Unknown descriptors are not enclaves. */
	struct ne_ioc_mem_region r = {.memory_size = 2 * NE_MIB, .userspace_addr = (uint64_t)(uintptr_t)p};
	CHECK(s.d->ops->set_user_memory_region(s.d, 999, &r) < 0 && errno == ENOTTY);
	simfx_free(&s);
}

TEST(sim_image_load_info_rules)
{
	struct simfx s;
	REQUIRE(simfx_init(&s, t, NULL));
	struct ne_ioc_load_info li = {.flags = 0};
	CHECK(s.d->ops->get_image_load_info(s.d, s.fd, &li) < 0 && errno == NE_ERR_INVALID_FLAG_VALUE);
	li.flags = 2;
	CHECK(s.d->ops->get_image_load_info(s.d, s.fd, &li) < 0 && errno == NE_ERR_INVALID_FLAG_VALUE);
	li.flags = NE_EIF_IMAGE;
	REQUIRE(s.d->ops->get_image_load_info(s.d, s.fd, &li) == 0);
	CHECK(li.memory_offset == 8 * NE_MIB);
	simfx_free(&s);
}

TEST(sim_vcpu_rules)
{
	struct simfx s;
	/* Pool: cores 1 and 2 = CPUs 1,5 and 2,6. */
	struct ne_sim_config cfg = {.cpu_pool = "1-2,5-6"};
	REQUIRE(simfx_init(&s, t, &cfg));
	uint32_t id;
	CHECK_INT_EQ(ERRNO_OF(add_vcpu(&s, 8, NULL)), NE_ERR_INVALID_VCPU);
	CHECK_INT_EQ(ERRNO_OF(add_vcpu(&s, 3, NULL)), NE_ERR_VCPU_NOT_IN_CPU_POOL);
	/* Auto-pick: a core's first thread, then its sibling before another core. */
	REQUIRE(add_vcpu(&s, 0, &id) == 0);
	CHECK_INT_EQ(id, 1);
	REQUIRE(add_vcpu(&s, 0, &id) == 0);
	CHECK_INT_EQ(id, 5);
	CHECK_INT_EQ(ERRNO_OF(add_vcpu(&s, 5, NULL)), NE_ERR_VCPU_ALREADY_USED);
	/* Naming a CPU takes its whole core from the pool. */
	REQUIRE(add_vcpu(&s, 6, &id) == 0);
	CHECK_INT_EQ(ne_sim_pool_free(s.f.sim), 0);
	/* Another enclave finds the pool empty. */
	uint64_t uid2;
	CHECK(s.d->ops->create_vm(s.d, &uid2) < 0 && errno == NE_ERR_NO_CPUS_AVAIL_IN_POOL);
	/* This one may still take core 2's other thread, but nothing beyond. */
	REQUIRE(add_vcpu(&s, 0, &id) == 0);
	CHECK_INT_EQ(id, 2);
	CHECK_INT_EQ(ERRNO_OF(add_vcpu(&s, 0, NULL)), NE_ERR_NO_CPUS_AVAIL_IN_POOL);
	/* Closing the enclave gives the cores back. */
	s.d->ops->release(s.d, s.fd);
	s.fd = -1;
	CHECK_INT_EQ(ne_sim_pool_free(s.f.sim), 4);
	CHECK_INT_EQ(ne_sim_slots(s.f.sim), 0);
	simfx_free(&s);
}

/* Gives the slot 64 MiB of memory. */
static bool give_memory(struct simfx *s, unsigned mib)
{
	for (unsigned i = 0; i < mib / 2; i++)
		if (set_region(s, simfx_page(s), 2 * NE_MIB, 0) < 0)
			return false;
	return true;
}

TEST(sim_start_rules)
{
	struct simfx s;
	REQUIRE(simfx_init(&s, t, NULL));
	s.f.hb = HB_NONE;
	CHECK_INT_EQ(ERRNO_OF(start(&s, 2, 0, NULL)), NE_ERR_INVALID_FLAG_VALUE);
	uint64_t bad_cids[] = {1, 2, 3, 0xFFFFFFFFULL, 0x100000000ULL};
	for (size_t i = 0; i < sizeof(bad_cids) / sizeof(bad_cids[0]); i++)
		CHECK_INT_EQ(ERRNO_OF(start(&s, 0, bad_cids[i], NULL)), NE_ERR_INVALID_ENCLAVE_CID);
	CHECK_INT_EQ(ERRNO_OF(start(&s, 0, 0, NULL)), NE_ERR_NO_MEM_REGIONS_ADDED);
	REQUIRE(give_memory(&s, 32));
	CHECK_INT_EQ(ERRNO_OF(start(&s, 0, 0, NULL)), NE_ERR_ENCLAVE_MEM_MIN_SIZE);
	REQUIRE(give_memory(&s, 32));
	CHECK_INT_EQ(ERRNO_OF(start(&s, 0, 0, NULL)), NE_ERR_NO_VCPUS_ADDED);
	REQUIRE(add_vcpu(&s, 0, NULL) == 0);
	CHECK_INT_EQ(ERRNO_OF(start(&s, 0, 0, NULL)), NE_ERR_FULL_CORES_NOT_USED);
	REQUIRE(add_vcpu(&s, 0, NULL) == 0);
	uint64_t cid;
	REQUIRE(start(&s, NE_ENCLAVE_DEBUG_MODE, 0, &cid) == 0);
	CHECK_INT_EQ(cid, 16);
	CHECK_INT_EQ(s.f.started_flags, NE_ENCLAVE_DEBUG_MODE);
	/* Started: nothing more may be added, nor started again. */
	CHECK_INT_EQ(ERRNO_OF(start(&s, 0, 0, NULL)), NE_ERR_NOT_IN_INIT_STATE);
	CHECK_INT_EQ(ERRNO_OF(add_vcpu(&s, 0, NULL)), NE_ERR_NOT_IN_INIT_STATE);
	CHECK_INT_EQ(ERRNO_OF(set_region(&s, simfx_page(&s), 2 * NE_MIB, 0)), NE_ERR_NOT_IN_INIT_STATE);
	struct ne_ioc_load_info li = {.flags = NE_EIF_IMAGE};
	CHECK_INT_EQ(ERRNO_OF(s.d->ops->get_image_load_info(s.d, s.fd, &li)), NE_ERR_NOT_IN_INIT_STATE);
	/* The hypervisor stopping it shows as POLLHUP on the enclave fd. */
	struct pollfd pfd = {.fd = s.fd, .events = POLLIN};
	CHECK_INT_EQ(poll(&pfd, 1, 0), 0);
	REQUIRE(ne_sim_stop(s.f.sim, s.uid) == 0);
	CHECK_INT_EQ(poll(&pfd, 1, 0), 1);
	CHECK(pfd.revents & POLLHUP);
	simfx_free(&s);
}

/* ---------------------------------------------------------------- the whole launch */

TEST(launch_whole_sequence)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	unsigned fds = count_fds();
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_nitro_new_env(&f.env, &l, &err) == 0);
	CHECK_STR_EQ(l->ops->name, "nitro");
	CHECK_INT_EQ(launcher_exit_fd(l), -1);
	CHECK_INT_EQ(launcher_console_fd(l), -1);
	/* The outer side listens for the enclave before start. */
	int egress = -1;
	REQUIRE(launcher_listen_parent(l, 17002, &egress, &err) == 0);

	struct launch_request req = req_default(&f);
	struct launch_info info;
	if (launcher_start(l, &req, &info, &err) < 0) {
		test_fail(t, __FILE__, __LINE__, "start: %s", err->msg);
		err_free(&err);
		launcher_free(l);
		fx_free(&f);
		return;
	}
	CHECK(!f.hb_connect_failed); /* the heartbeat listener existed when the enclave started */
	CHECK_INT_EQ(info.cid, 16);
	CHECK_INT_EQ(info.cpu_count, 2);
	CHECK_INT_EQ(info.cpu_ids[0], 1);
	CHECK_INT_EQ(info.cpu_ids[1], 5);
	CHECK_INT_EQ(info.memory_mib, 64);
	CHECK_STR_EQ(info.enclave_id, "i-0123456789abcdef0-enc1");
	CHECK_STR_EQ(info.name, "app");
	CHECK_INT_EQ(info.process_id, getpid());
	CHECK(!info.debug_mode);
	CHECK(info.heartbeat_s >= 0);
	CHECK_INT_EQ(f.started_flags, 0);
	/* The heartbeat came back to the enclave. */
	uint8_t b = 0;
	CHECK(read(f.hb_fd, &b, 1) == 1 && b == 0xB7);
	/* The driver saw nitro-cli's sequence. */
	struct ne_sim_counts c;
	ne_sim_counts(f.sim, &c);
	CHECK_INT_EQ(c.create_vm, 1);
	CHECK_INT_EQ(c.load_info, 1);
	CHECK_INT_EQ(c.set_region, 32);
	CHECK_INT_EQ(c.add_vcpu, 2);
	CHECK_INT_EQ(c.start, 1);
	/* The image is at the 8 MiB load offset, byte for byte across the 2 MiB regions. */
	size_t len;
	const uint8_t *img = ne_sim_image(f.sim, &len);
	CHECK_INT_EQ(len, f.eif_size);
	char *want = NULL;
	size_t want_len = 0;
	REQUIRE(io_read_file(f.eif, 64 * NE_MIB, &want, &want_len, &err) == 0);
	CHECK(len == want_len && img && memcmp(img, want, len) == 0);
	free(want);

	/* The enclave reaches the parent's listener. */
	char path[700];
	snprintf(path, sizeof(path), "unix:%s/3-17002.sock", f.dir);
	struct transport_addr a;
	REQUIRE(transport_parse(path, &a, &err) == 0);
	int from_enclave = transport_connect(&a, false, &err);
	CHECK(from_enclave >= 0);
	struct pollfd pl = {.fd = egress, .events = POLLIN};
	CHECK_INT_EQ(poll(&pl, 1, 5000), 1);
	int accepted = transport_accept(egress, NULL, &err);
	CHECK(accepted >= 0);
	close(accepted);
	close(from_enclave);
	close(egress);

	/* The parent reaches the enclave's ports; nothing listening is ECONNREFUSED, so callers retry. */
	int to = -1;
	CHECK(launcher_connect_guest(l, 17000, &to, &err) < 0);
	CHECK_INT_EQ(err ? err->code : 0, ECONNREFUSED);
	CHECK_ERR_CONTAINS(err, "enclave CID 16 port 17000");
	err_free(&err);
	snprintf(path, sizeof(path), "unix:%s/16-17000.sock", f.dir);
	REQUIRE(transport_parse(path, &a, &err) == 0);
	int status = transport_listen(&a, 4, &err);
	REQUIRE(status >= 0);
	REQUIRE(launcher_connect_guest(l, 17000, &to, &err) == 0);
	CHECK(write(to, "ping", 4) == 4);
	int in_enclave = -1;
	for (int i = 0; i < 100 && in_enclave < 0; i++) {
		struct pollfd ps = {.fd = status, .events = POLLIN};
		if (poll(&ps, 1, 50) == 1)
			in_enclave = transport_accept(status, NULL, &err);
	}
	REQUIRE(in_enclave >= 0);
	char got[4];
	struct pollfd pr = {.fd = in_enclave, .events = POLLIN};
	CHECK(poll(&pr, 1, 5000) == 1 && read(in_enclave, got, 4) == 4 && memcmp(got, "ping", 4) == 0);
	close(in_enclave);
	close(status);
	close(to);

	/* Starting twice is refused. */
	CHECK(launcher_start(l, &req, &info, &err) < 0);
	CHECK_INT_EQ(err ? err->code : 0, EBUSY);
	err_free(&err);

	/* Running: the exit fd is quiet until the enclave stops, then POLLHUP. */
	int xfd = launcher_exit_fd(l);
	REQUIRE(xfd >= 0);
	struct pollfd px = {.fd = xfd, .events = POLLIN};
	CHECK_INT_EQ(poll(&px, 1, 0), 0);
	REQUIRE(ne_sim_stop(f.sim, 1) == 0);
	CHECK_INT_EQ(poll(&px, 1, 0), 1);
	CHECK(px.revents & POLLHUP);

	/* stop frees the slot, the CPUs and the memory; twice is fine. */
	CHECK(launcher_stop(l, &err) == 0);
	CHECK(launcher_stop(l, &err) == 0);
	CHECK_INT_EQ(launcher_exit_fd(l), -1);
	CHECK(launcher_connect_guest(l, 17000, &to, &err) < 0);
	CHECK_INT_EQ(err ? err->code : 0, ENOTCONN);
	err_free(&err);
	launcher_free(l);
	close(f.hb_fd);
	f.hb_fd = -1;
	CHECK_CLEAN(&f, fds);
	fx_free(&f);
}

TEST(launch_debug_mode_console)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	f.console = true;
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_nitro_new_env(&f.env, &l, &err) == 0);
	struct launch_request req = req_default(&f);
	req.debug_mode = true;
	req.name = "named";
	req.cid = 42;
	struct launch_info info;
	if (launcher_start(l, &req, &info, &err) < 0) {
		test_fail(t, __FILE__, __LINE__, "start: %s", err->msg);
		err_free(&err);
		launcher_free(l);
		fx_free(&f);
		return;
	}
	CHECK_INT_EQ(f.started_flags, NE_ENCLAVE_DEBUG_MODE);
	CHECK_INT_EQ(info.cid, 42);
	CHECK(info.debug_mode);
	CHECK_STR_EQ(info.name, "named");
	/* As nitro-cli: one connect, after the heartbeat (polling before it could lose the console or
	 * hold the heartbeat up). */
	CHECK_INT_EQ(f.console_connects, 1);
	CHECK(f.console_after_heartbeat);
	/* The console was dialled at CID 0, port CID + 10000 (the stand-in "0-10042.sock"). */
	int cfd = launcher_console_fd(l);
	REQUIRE(cfd >= 0);
	REQUIRE(f.console_listen >= 0);
	int hv = transport_accept(f.console_listen, NULL, &err);
	REQUIRE(hv >= 0);
	CHECK(write(hv, "boot log\n", 9) == 9);
	char got[16] = {0};
	struct pollfd p = {.fd = cfd, .events = POLLIN};
	CHECK(poll(&p, 1, 5000) == 1 && read(cfd, got, sizeof(got)) == 9);
	CHECK_STR_EQ(got, "boot log\n");
	close(hv);
	launcher_free(l);
	CHECK_INT_EQ(ne_sim_slots(f.sim), 0);
	CHECK_INT_EQ(f.live, 0);
	fx_free(&f);
}

TEST(launch_debug_mode_without_console_still_runs)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_nitro_new_env(&f.env, &l, &err) == 0);
	struct launch_request req = req_default(&f);
	req.debug_mode = true;
	struct launch_info info;
	CHECK(launcher_start(l, &req, &info, &err) == 0);
	err_free(&err);
	CHECK_INT_EQ(launcher_console_fd(l), -1);
	CHECK_INT_EQ(f.console_connects, 1); /* one try, no polling loop */
	CHECK(f.console_after_heartbeat);
	launcher_free(l);
	fx_free(&f);
}

/* ---------------------------------------------------------------- every failure, nothing left */

TEST(launch_fails_memory_below_4x_eif)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct launch_request req = req_default(&f);
	req.memory_mb = 16;
	launch_fails(&f, &req, "16 MiB of enclave memory is too little", EINVAL);
	launch_fails(&f, &req, "at least 24 MiB are needed (4 x the EIF's 6 MiB", EINVAL);
	struct ne_sim_counts c;
	ne_sim_counts(f.sim, &c);
	CHECK_INT_EQ(c.create_vm, 0); /* refused before touching the driver */
	fx_free(&f);
}

TEST(launch_fails_cpu_counts)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct launch_request req = req_default(&f);
	req.cpu_count = 3;
	launch_fails(&f, &req, "3 vCPUs cannot be full cores", EINVAL);
	req.cpu_count = 4;
	launch_fails(&f, &req, "4 vCPUs requested but the Nitro Enclaves CPU pool has only 2", EINVAL);
	req.cpu_count = LAUNCH_MAX_CPUS + 2;
	launch_fails(&f, &req, "at most 256", EINVAL);
	struct ne_sim_counts c;
	ne_sim_counts(f.sim, &c);
	CHECK_INT_EQ(c.create_vm, 0);
	/* Without a readable pool file the driver judges: NE_ADD_VCPU runs out of CPUs. */
	free((char *)f.env.cpu_pool_path);
	f.env.cpu_pool_path = xasprintf("%s/no-pool", f.dir);
	req.cpu_count = 4;
	launch_fails(&f, &req, "NE_ADD_VCPU (vCPU 3 of 4): no CPUs are free", NE_ERR_NO_CPUS_AVAIL_IN_POOL);
	/* And with SMT believed off, one vCPU of a two-thread core fails at start. */
	f.env.threads_per_core = 1;
	req.cpu_count = 1;
	launch_fails(&f, &req, "NE_START_ENCLAVE: enclaves need full CPU cores", NE_ERR_FULL_CORES_NOT_USED);
	fx_free(&f);
}

TEST(launch_fails_no_hugepages)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	ne_sim_set_hugepages(f.sim, 0, 2 * NE_MIB, 0);
	struct launch_request req = req_default(&f);
	launch_fails(&f, &req, "not enough hugepages for 64 MiB of enclave memory: found 0 MiB", ENOMEM);
	launch_fails(&f, &req, "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", ENOMEM);
	ne_sim_set_hugepages(f.sim, 0, 2 * NE_MIB, 20);
	launch_fails(&f, &req, "found 40 MiB", ENOMEM);
	CHECK_INT_EQ(ne_sim_hugepages_free(f.sim, 0, 2 * NE_MIB), 20);
	fx_free(&f);
}

TEST(launch_fails_driver_memory_rules)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct launch_request req = req_default(&f);
	f.not_huge = true;
	launch_fails(&f, &req,
	             "NE_SET_USER_MEMORY_REGION (region 1 of 32, 2 MiB): enclave memory is not backed by "
	             "hugepages",
	             NE_ERR_MEM_NOT_HUGE_PAGE);
	f.not_huge = false;
	f.node_decl = 1;
	launch_fails(&f, &req, "another NUMA node", NE_ERR_MEM_DIFFERENT_NUMA_NODE);
	f.node_decl = -1;
	f.page_decl = 4096;
	launch_fails(&f, &req, "smaller than 2 MiB", NE_ERR_INVALID_PAGE_SIZE);
	f.page_decl = 0;
	fx_free(&f);

	struct ne_sim_config cfg = {.max_mem_regions = 8};
	fx_init(&f, t, &cfg);
	REQUIRE(f.sim != NULL);
	launch_fails(&f, &req, "(region 9 of 32, 2 MiB): the enclave's memory is split into more regions",
	             NE_ERR_MEM_MAX_REGIONS);
	fx_free(&f);
}

TEST(launch_fails_driver_minimum_memory)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	write_eif(&f, "tiny.eif", 4096, true);
	struct launch_request req = req_default(&f);
	req.memory_mb = 32; /* 4 x EIF passes; the driver's 64 MiB minimum does not */
	launch_fails(&f, &req, "NE_START_ENCLAVE: enclave memory is below the driver's 64 MiB minimum",
	             NE_ERR_ENCLAVE_MEM_MIN_SIZE);
	fx_free(&f);
}

TEST(launch_fails_invalid_cid)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct launch_request req = req_default(&f);
	req.cid = 3;
	launch_fails(&f, &req, "NE_START_ENCLAVE: that enclave CID is reserved", NE_ERR_INVALID_ENCLAVE_CID);
	fx_free(&f);
}

TEST(launch_fails_heartbeat)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct launch_request req = req_default(&f);
	f.hb = HB_WRONG;
	launch_fails(&f, &req, "heartbeat: the enclave sent 0x42, expected 0xb7", EPROTO);
	f.hb = HB_CLOSE;
	launch_fails(&f, &req, "closed the connection without sending 0xb7", EPROTO);
	f.hb = HB_DIE;
	launch_fails(&f, &req, "the enclave stopped before its heartbeat", ECHILD);
	f.hb = HB_NONE;
	f.env.heartbeat_timeout_ms = 200;
	launch_fails(&f, &req, "enclave CID 16: no heartbeat from the enclave within 0.2 s", ETIMEDOUT);
	/* A timeout given in the request applies when the environment sets none (not waited for here:
	 * the enclave dies first). */
	f.env.heartbeat_timeout_ms = 0;
	req.heartbeat_timeout_s = 1;
	f.hb = HB_DIE;
	launch_fails(&f, &req, "stopped before its heartbeat", ECHILD);
	fx_free(&f);
}

TEST(launch_fails_bad_eif)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct launch_request req = req_default(&f);
	char eif[600];
	snprintf(eif, sizeof(eif), "%s/missing.eif", f.dir);
	req.eif_path = eif;
	launch_fails(&f, &req, "EIF: open ", ENOENT);
	write_eif(&f, "not.eif", 4096, false);
	req.eif_path = f.eif;
	launch_fails(&f, &req, "is not an enclave image file", EINVAL);
	req.eif_path = NULL;
	launch_fails(&f, &req, "no EIF", EINVAL);
	fx_free(&f);
}

TEST(launch_again_after_failure)
{
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_nitro_new_env(&f.env, &l, &err) == 0);
	struct launch_request req = req_default(&f);
	struct launch_info info;
	f.hb = HB_DIE;
	CHECK(launcher_start(l, &req, &info, &err) < 0);
	err_free(&err);
	f.hb = HB_GOOD;
	CHECK(launcher_start(l, &req, &info, &err) == 0);
	err_free(&err);
	CHECK_INT_EQ(info.cid, 16);
	CHECK_STR_EQ(info.enclave_id, "i-0123456789abcdef0-enc2"); /* a new slot */
	launcher_free(l);
	CHECK_INT_EQ(ne_sim_slots(f.sim), 0);
	CHECK_INT_EQ(f.live, 0);
	fx_free(&f);
}

TEST(launch_two_enclaves_distinct_cids)
{
	struct ne_sim_config cfg = {.cpu_pool = "1-2,5-6"};
	struct fx f;
	fx_init(&f, t, &cfg);
	REQUIRE(f.sim != NULL);
	char pool[700];
	snprintf(pool, sizeof(pool), "%s/ne_cpus", f.dir);
	FILE *p = fopen(pool, "w");
	REQUIRE(p != NULL);
	fputs("1-2,5-6\n", p);
	fclose(p);
	struct launcher *a = NULL, *b = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_nitro_new_env(&f.env, &a, &err) == 0);
	REQUIRE(launcher_nitro_new_env(&f.env, &b, &err) == 0);
	struct launch_request req = req_default(&f);
	struct launch_info ia, ib;
	REQUIRE(launcher_start(a, &req, &ia, &err) == 0);
	close(f.hb_fd);
	f.hb_fd = -1;
	REQUIRE(launcher_start(b, &req, &ib, &err) == 0);
	CHECK(ia.cid != ib.cid);
	CHECK(ia.cpu_ids[0] != ib.cpu_ids[0]);
	CHECK(strcmp(ia.enclave_id, ib.enclave_id) != 0);
	launcher_free(a);
	launcher_free(b);
	CHECK_INT_EQ(ne_sim_slots(f.sim), 0);
	CHECK_INT_EQ(ne_sim_pool_free(f.sim), 4);
	fx_free(&f);
}

/* ---------------------------------------------------------------- the real paths, as far as they go here */

TEST(real_device_missing_is_clear)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	struct launcher_nitro_options opt = {.device = "/nonexistent/nitro_enclaves"};
	CHECK(launcher_nitro_new(&opt, &l, &err) < 0);
	CHECK_ERR_CONTAINS(err, "no Nitro Enclaves driver here: /nonexistent/nitro_enclaves does not exist");
	CHECK_ERR_CONTAINS(err, "modprobe nitro_enclaves");
	CHECK_INT_EQ(err ? err->code : 0, ENODEV);
	err_free(&err);
	/* The default device on this machine (a Nitro host would have one). */
	if (access("/dev/nitro_enclaves", F_OK) != 0) {
		CHECK(launcher_nitro_new(NULL, &l, &err) < 0);
		CHECK_ERR_CONTAINS(err, "no Nitro Enclaves driver here: /dev/nitro_enclaves does not exist");
		err_free(&err);
	}
}

TEST(preflight_names_each_missing_piece)
{
	const char *dir = test_tmpdir(t);
	char sys[600], cg[600], pool[600];
	snprintf(sys, sizeof(sys), "%s/sys", dir);
	snprintf(cg, sizeof(cg), "%s/cgroup", dir);
	snprintf(pool, sizeof(pool), "%s/no-pool", dir);
	struct nitro_preflight p = {.device = "/nonexistent/nitro_enclaves",
	                            .sysfs_root = sys,
	                            .cpu_pool_path = pool,
	                            .cgroup_root = cg,
	                            .memory_bytes = 512 * NE_MIB};
	enum nitro_missing missing;
	struct err *err = NULL;
	/* 1. the device, with what to give a pod */
	CHECK(nitro_preflight(&p, &missing, &err) < 0);
	CHECK_INT_EQ(missing, NITRO_MISSING_DEVICE);
	CHECK_ERR_CONTAINS(err, "aws.ec2.nitro/nitro_enclaves");
	err_free(&err);
	/* The rest needs AF_VSOCK on the machine running the tests. */
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0) {
		p.device = "/dev/null";
		CHECK(nitro_preflight(&p, &missing, &err) < 0);
		CHECK_INT_EQ(missing, NITRO_MISSING_VSOCK);
		CHECK_ERR_CONTAINS(err, "no vsock");
		err_free(&err);
		return;
	}
	close(fd);
	p.device = "/dev/null"; /* a character device that opens; the preflight makes no ioctl */
	/* no sysfs to count with: not refused here, the launch's allocation decides */
	CHECK_INT_EQ(nitro_preflight(&p, &missing, &err), 0);
	err_free(&err);
	/* 2. hugepages: 300 free 2 MiB pages less 44 reserved = 512 MiB: enough */
	test_write_text(sys, "kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "300\n");
	test_write_text(sys, "kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "44\n");
	CHECK_INT_EQ(nitro_preflight(&p, &missing, &err), 0);
	CHECK_INT_EQ(missing, NITRO_MISSING_NONE);
	err_free(&err);
	/* the host's pool is not the pod's: a cgroup v2 limit of 256 MiB (64 MiB already used) caps it */
	test_write_text(cg, "hugetlb.2MB.max", "268435456\n");
	test_write_text(cg, "hugetlb.2MB.current", "67108864\n");
	CHECK(nitro_preflight(&p, &missing, &err) < 0);
	CHECK_INT_EQ(missing, NITRO_MISSING_HUGEPAGES);
	CHECK_ERR_CONTAINS(err, "not enough hugepages for 512 MiB");
	CHECK_ERR_CONTAINS(err, "the container's hugetlb cgroup allows 192 MiB of 2MB pages");
	CHECK_ERR_CONTAINS(err, "request hugepages-2Mi (or hugepages-1Gi) of at least 512 MiB");
	err_free(&err);
	/* "max": no limit, the host's pool counts */
	test_write_text(cg, "hugetlb.2MB.max", "max\n");
	CHECK_INT_EQ(nitro_preflight(&p, &missing, &err), 0);
	err_free(&err);
	/* cgroup v1's files, the same cap */
	char v2[700];
	snprintf(v2, sizeof(v2), "%s/hugetlb.2MB.max", cg);
	unlink(v2);
	test_write_text(cg, "hugetlb/hugetlb.2MB.limit_in_bytes", "536870912\n");
	test_write_text(cg, "hugetlb/hugetlb.2MB.usage_in_bytes", "2097152\n");
	CHECK(nitro_preflight(&p, &missing, &err) < 0);
	CHECK_INT_EQ(missing, NITRO_MISSING_HUGEPAGES);
	CHECK_ERR_CONTAINS(err, "allows 510 MiB of 2MB pages");
	err_free(&err);
	/* no free pages at all */
	test_write_text(sys, "kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "0\n");
	CHECK(nitro_preflight(&p, &missing, &err) < 0);
	CHECK_ERR_CONTAINS(err, "has none free");
	err_free(&err);
}

TEST(real_ioctls_on_a_non_nitro_device)
{
	/* The real ops issue real ioctls; /dev/null refuses them as the wrong device. */
	struct ne_dev *dev = NULL;
	struct err *err = NULL;
	REQUIRE(ne_dev_open("/dev/null", &dev, &err) == 0);
	CHECK_STR_EQ(dev->ops->name, "driver");
	const char *dir = test_tmpdir(t);
	struct fx f;
	fx_init(&f, t, NULL);
	REQUIRE(f.sim != NULL);
	struct ne_env env = {
	    .dev = dev, .cpu_pool_path = "/nonexistent", .threads_per_core = 2, .net = {.unix_dir = dir}};
	struct launcher *l = NULL;
	REQUIRE(launcher_nitro_new_env(&env, &l, &err) == 0);
	struct launch_request req = req_default(&f);
	struct launch_info info;
	CHECK(launcher_start(l, &req, &info, &err) < 0);
	CHECK_ERR_CONTAINS(err, "NE_CREATE_VM: this is not a Nitro Enclaves device");
	CHECK_INT_EQ(err ? err->code : 0, ENOTTY);
	err_free(&err);
	launcher_free(l);
	dev->ops->free(dev);
	fx_free(&f);
}

TEST(vsock_console_socket_has_nitro_cli_timeout)
{
	struct err *err = NULL;
	int fd = ne_vsock_socket(NE_CONSOLE_CONNECT_TIMEOUT_MS, &err);
	if (fd < 0) {
		/* No vsock transport on this machine: nothing to check. */
		CHECK(err != NULL && (err->code == EAFNOSUPPORT || err->code == ENODEV));
		err_free(&err);
		return;
	}
	struct timeval tv = {0};
	socklen_t len = sizeof(tv);
	CHECK(getsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, &len) == 0);
	CHECK_INT_EQ(tv.tv_sec, 20);
	CHECK_INT_EQ(tv.tv_usec, 0);
	close(fd);
	CHECK_INT_EQ(NE_CONSOLE_CONNECT_TIMEOUT_MS, 20000);
}

TEST(real_vsock_addresses)
{
	struct ne_net vs = {0}, ux = {.unix_dir = "/run/x"};
	struct transport_addr a;
	struct err *err = NULL;
	REQUIRE(ne_net_addr(&vs, true, 0, 9000, &a, &err) == 0);
	CHECK_STR_EQ(a.text, "vsock:any:9000");
	REQUIRE(ne_net_addr(&vs, false, 16, 17000, &a, &err) == 0);
	CHECK_STR_EQ(a.text, "vsock:16:17000");
	REQUIRE(ne_net_addr(&vs, false, 0, 10016, &a, &err) == 0);
	CHECK_STR_EQ(a.text, "vsock:0:10016");
	REQUIRE(ne_net_addr(&ux, true, 0, 9000, &a, &err) == 0);
	CHECK_STR_EQ(a.text, "unix:/run/x/3-9000.sock");
	REQUIRE(ne_net_addr(&ux, false, 16, 17000, &a, &err) == 0);
	CHECK_STR_EQ(a.text, "unix:/run/x/16-17000.sock");
}
