/* run: `enclaver run` and `enclaver-run` end to end (run.h): the files, the checks that must pass
 * before anything boots, the launch, the state file behind `enclaver ps`, and the outer side. */
#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eif/eif.h"
#include "manifest/manifest.h"
#include "runtime/run.h"

/* ---------------------------------------------------------------- launchers */
static int new_nitro(const struct run_options *o, struct launcher **out, struct err **err)
{
	(void)o;
	struct launcher_nitro_options no = {0};
	return launcher_nitro_new(&no, out, err);
}

static int new_emulator(const struct run_options *o, struct launcher **out, struct err **err)
{
	struct launcher_emulator_options eo = {.acpi = true, .accel = o->accel};
	return launcher_emulator_new(&eo, out, err);
}

#define MAX_LAUNCHERS 4
static struct {
	const char *name;
	run_launcher_new_fn fn;
} launchers[MAX_LAUNCHERS] = {{"nitro", new_nitro}, {"emulator", new_emulator}};

void run_launcher_register(const char *name, run_launcher_new_fn fn)
{
	for (size_t i = 0; i < MAX_LAUNCHERS; i++)
		if (!launchers[i].name) {
			launchers[i].name = name;
			launchers[i].fn = fn;
			return;
		}
}

static run_launcher_new_fn launcher_lookup(const char *name)
{
	for (size_t i = 0; i < MAX_LAUNCHERS; i++)
		if (launchers[i].name && strcmp(launchers[i].name, name) == 0)
			return launchers[i].fn;
	return NULL;
}

bool run_launcher_known(const char *name) { return launcher_lookup(name) != NULL; }

/* ---------------------------------------------------------------- one run */
struct run {
	const struct run_options *o;
	const char *launcher;
	char *tmp;              /* the release image's files, when run from one */
	char *eif, *yaml;       /* the files run */
	char *image;            /* the release image's reference, or NULL */
	struct manifest *m; /* the manifest run (yaml) */
	struct outer_port *ports; /* the run's own copy: bound host ports are written back */
	size_t n_ports;
	json_t *measured; /* the EIF's measurements, for `ps --json`; NULL when it could not be measured */
	char *name;
	uint64_t cid;
	int cid_hold; /* the picked CID, held until the run ends */
	struct launcher *l;
	struct outer *outer;
	char *state_path;
};

static void run_free(struct run *r)
{
	if (r->state_path)
		unlink(r->state_path);
	outer_free(r->outer);
	launcher_free(r->l);
	outer_state_release_cid(r->cid, &r->cid_hold); /* the enclave is gone: its CID is free */
	manifest_free(r->m);
	json_decref(r->measured);
	if (r->tmp)
		io_remove_tree(r->tmp);
	free(r->tmp);
	free(r->eif);
	free(r->yaml);
	free(r->image);
	free(r->ports);
	free(r->name);
	free(r->state_path);
}

/* The EIF and the manifest: local files, or a release image's (named, or the -f manifest's target). */
static int step_files(struct run *r, struct err **err)
{
	const struct run_options *o = r->o;
	if (o->eif) {
		r->eif = xstrdup(o->eif);
		r->yaml = xstrdup(o->manifest);
		return 0;
	}
	if (o->image) {
		r->image = xstrdup(o->image);
	} else {
		const char *mf = o->manifest_file ? o->manifest_file : "enclaver.yaml";
		struct manifest *fm = NULL;
		if (manifest_load(mf, &fm, err) < 0)
			return -1;
		if (fm->target)
			r->image = xstrdup(fm->target);
		manifest_free(fm);
		if (!r->image)
			return err_set(err, EINVAL, "%s has no `target`: give the release IMAGE to run", mf);
	}
	if (!o->fetch)
		return err_set(err, ENOTSUP, "this enclaver-run reads local files only: give --eif-file and "
		                             "--manifest-file");
	if (io_tmpdir_create(NULL, "enclaver-run", &r->tmp, err) < 0)
		return -1;
	log_info("reading the release image %s", r->image);
	r->eif = xasprintf("%s/application.eif", r->tmp);
	r->yaml = xasprintf("%s/enclaver.yaml", r->tmp);
	if (o->fetch(o->fetch_ctx, r->image, r->tmp, r->eif, r->yaml, err) < 0)
		return err_wrap(err, "release image");
	return 0;
}

/* The manifest (its egress policy, compiled by manifest/, the outer side enforces again) and the
 * ingress mappings: -p's, else one per manifest ingress port on 127.0.0.1. */
static int step_manifest(struct run *r, struct err **err)
{
	const struct run_options *o = r->o;
	if (manifest_load(r->yaml, &r->m, err) < 0)
		return -1;
	const struct manifest *m = r->m;

	r->ports = xcalloc(o->n_ports + m->n_ingress + 1, sizeof(*r->ports));
	if (o->n_ports) {
		memcpy(r->ports, o->ports, o->n_ports * sizeof(*r->ports));
		r->n_ports = o->n_ports;
	} else {
		for (size_t i = 0; i < m->n_ingress; i++) {
			struct outer_port *p = &r->ports[r->n_ports++];
			strcpy(p->host_addr, "127.0.0.1");
			p->host_port = p->enclave_port = m->ingress[i].listen_port;
		}
	}
	for (size_t i = 0; i < r->n_ports; i++) {
		bool known = false;
		for (size_t j = 0; j < m->n_ingress; j++)
			known |= m->ingress[j].listen_port == r->ports[i].enclave_port;
		if (!known)
			log_warn("-p %u:%u: the manifest has no ingress on port %u: odyn will not accept there",
			         r->ports[i].host_port, r->ports[i].enclave_port, r->ports[i].enclave_port);
	}
	return 0;
}

/* One read of the EIF feeds --verify-before-run, the measurements `ps --json` shows and the memory
 * check. An EIF that cannot be read whole may still boot (the launch decides): without
 * --verify-before-run that is a warning, and the memory check reads the section table alone. */
static int step_check_eif(struct run *r, unsigned memory_mb, struct err **err)
{
	const struct run_options *o = r->o;
	struct eif_expected want;
	/* The expectation first: a typo should not wait for a large hash. */
	if (o->verify && eif_expected_load(o->verify, "--verify-before-run", &want, err) < 0)
		return -1;
	struct eif_image *img = NULL;
	_cleanup_err_ struct err *read_err = NULL;
	uint64_t need = 0;
	if (eif_image_read(r->eif, &img, &read_err) == 0) {
		if (o->verify && eif_expected_check(&img->measurements, &want, err) < 0) {
			eif_image_free(img);
			return err_wrap(err, "--verify-before-run %s: %s does not match", o->verify, r->eif);
		}
		r->measured = eif_measurements_json(&img->measurements);
		need = eif_image_memory_needed_mib(img);
		eif_image_free(img);
		if (o->verify)
			log_info("--verify-before-run: the EIF's measurements match %s", o->verify);
	} else if (o->verify) {
		*err = steal_pointer(&read_err);
		return err_wrap(err, "--verify-before-run");
	} else {
		log_warn("%s: measure the EIF: %s (enclaver ps --json will show no Measurements)", r->eif,
		         read_err->msg);
		if (eif_file_memory_needed_mib(r->eif, &need, err) < 0)
			return -1;
	}
	/* Too little memory does not fail the launch: the kernel stops unpacking the ramdisk and the
	 * app is "not found" (exit 108). Refuse here, with the size. */
	if (memory_mb < need)
		return err_set(err, EINVAL,
		               "%s needs at least %llu MiB of enclave memory (kernel, its ramdisks twice while they "
		               "unpack, and %d MiB for the kernel and the app), but the enclave would get %u MiB "
		               "(%s): give --memory-mb %llu or more, or set defaults.memory_mb in enclaver.yaml",
		               r->image ? r->image : r->eif, (unsigned long long)need, EIF_MEMORY_MARGIN_MIB,
		               memory_mb,
		               o->memory_mb    ? "--memory-mb"
		               : r->m->memory_mb ? "the manifest's defaults.memory_mb"
		                                 : "the launcher's default",
		               (unsigned long long)need);
	return 0;
}

/* On Nitro: the device, vsock and hugepages, each missing piece with its own exit code, before the
 * launch so a pod or unit missing one fails at once and says which (docs/deploy.md). */
static int step_preflight(unsigned memory_mb, int *exit_code, struct err **err)
{
	struct nitro_preflight p = {.memory_bytes = (uint64_t)memory_mb * 1024 * 1024};
	enum nitro_missing missing;
	if (nitro_preflight(&p, &missing, err) == 0)
		return 0;
	*exit_code = missing == NITRO_MISSING_DEVICE      ? OUTER_EXIT_NO_DEVICE
	             : missing == NITRO_MISSING_VSOCK     ? OUTER_EXIT_NO_VSOCK
	             : missing == NITRO_MISSING_HUGEPAGES ? OUTER_EXIT_NO_HUGEPAGES
	                                                  : OUTER_EXIT_FATAL;
	return -1;
}

/* The name in `enclaver ps`: --name, the manifest's, else the EIF's file name without extension. */
static char *run_name(const struct run *r)
{
	if (r->o->name)
		return xstrdup(r->o->name);
	if (r->m->name)
		return xstrdup(r->m->name);
	_cleanup_free_ char *copy = xstrdup(r->eif);
	char *name = xstrdup(basename(copy));
	char *dot = strrchr(name, '.');
	if (dot && dot != name)
		*dot = '\0';
	return name;
}

static int step_launch(struct run *r, int *exit_code, struct err **err)
{
	const struct run_options *o = r->o;
	if (outer_state_check(r->name, r->cid, r->ports, r->n_ports, err) < 0)
		return -1;
	/* The Nitro driver picks a free CID itself when given 0; other launchers (the emulator) take
	 * the one they are given, so the run picks one: the lowest free from 16. */
	if (!r->cid && strcmp(r->launcher, "nitro") != 0) {
		if (outer_state_pick_cid(16, &r->cid, &r->cid_hold, err) < 0)
			return -1;
		log_debug("CID %llu picked (the lowest free from 16)", (unsigned long long)r->cid);
	}
	if (launcher_lookup(r->launcher)(o, &r->l, err) < 0)
		return -1;
	struct outer_config cfg = {.launcher = r->l,
	                           .ports = r->ports,
	                           .n_ports = r->n_ports,
	                           .policy = &r->m->egress_policy,
	                           .debug_mode = o->debug_mode,
	                           .log_fd = STDOUT_FILENO,
	                           .metrics_addr = o->metrics};
	if (outer_new(&cfg, &r->outer, err) < 0)
		return -1;
	struct launch_request req = {.eif_path = r->eif,
	                             .name = r->name,
	                             .cpu_count = o->cpu_count ? o->cpu_count : (unsigned)r->m->cpu_count,
	                             .memory_mb = o->memory_mb ? o->memory_mb : (unsigned)r->m->memory_mb,
	                             .cid = r->cid,
	                             .debug_mode = o->debug_mode};
	struct launch_info info = {0};
	if (launcher_start(r->l, &req, &info, err) < 0) {
		/* SIGINT/SIGTERM during the boot: the launcher stopped the enclave; that is a stop by
		 * signal (109) like one after the heartbeat, not a failure. */
		if ((*err)->code == EINTR)
			*exit_code = OUTER_EXIT_INTERRUPTED;
		return -1;
	}
	if (o->on_started)
		o->on_started(o->ctx, &info);
	struct outer_state st = {.id = info.enclave_id,
	                         .name = r->name,
	                         .launcher = (char *)r->launcher,
	                         .eif = r->eif,
	                         .image = r->image,
	                         .cid = info.cid,
	                         .pid = getpid(),
	                         .ports = r->ports,
	                         .n_ports = r->n_ports,
	                         .started = (int64_t)time(NULL),
	                         .cpu_count = info.cpu_count,
	                         .memory_mib = info.memory_mib,
	                         .debug_mode = info.debug_mode,
	                         .measurements = r->measured};
	for (unsigned i = 0; i < info.cpu_count && i < LAUNCH_MAX_CPUS; i++)
		st.cpu_ids[i] = info.cpu_ids[i];
	for (size_t i = 0; i < r->n_ports; i++)
		r->ports[i].host_port = outer_port_bound(r->outer, i);
	if (outer_state_add(&st, &r->state_path, err) < 0) {
		/* Another run took the CID between our check and the launch (the launcher picked it). */
		_cleanup_err_ struct err *e2 = NULL;
		launcher_stop(r->l, &e2);
		return -1;
	}
	return 0;
}

int run_enclave(const struct run_options *o, int *exit_code, struct err **err)
{
	struct run r = {.o = o, .launcher = o->launcher ? o->launcher : "nitro", .cid = o->cid, .cid_hold = -1};
	struct outer_result res = {0};
	*exit_code = OUTER_EXIT_FATAL;
	int rc = -1;
	if (!launcher_lookup(r.launcher)) {
		err_set(err, EINVAL, "launcher %s: not a launcher of this build", r.launcher);
		goto out;
	}
	if (step_files(&r, err) < 0 || step_manifest(&r, err) < 0)
		goto out;
	/* The memory the enclave gets: --memory-mb, the manifest's, else the launcher's default (4096
	 * MiB on Nitro, 1024 in the emulator and the test launcher). */
	unsigned mem = o->memory_mb ? o->memory_mb : (unsigned)r.m->memory_mb;
	if (!mem)
		mem = strcmp(r.launcher, "nitro") == 0 ? 4096 : 1024;
	if (step_check_eif(&r, mem, err) < 0)
		goto out;
	if (strcmp(r.launcher, "nitro") == 0 && step_preflight(mem, exit_code, err) < 0)
		goto out;
	r.name = run_name(&r);
	if (step_launch(&r, exit_code, err) < 0)
		goto out;
	if (outer_run(r.outer, &res, err) < 0)
		goto out;
	if (res.outcome != OUTER_APP_EXITED || res.code != 0)
		log_warn("%s", res.message ? res.message : "the enclave stopped");
	*exit_code = outer_exit_code(&res);
	rc = 0;
out:
	free(res.message);
	run_free(&r);
	return rc;
}
