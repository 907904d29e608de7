/* cmd_run: `enclaver run` and the release image's entrypoint `enclaver-run`: find the EIF and the
 * manifest (a release image, or local files), check them, start the enclave through a launcher and
 * run the outer side until it stops (docs/run.md). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <string.h>
#include <time.h>

#include "cli/oci_opts.h"
#include "cli/run.h"
#include "eif/eif.h"
#include "manifest/manifest.h"
#include "runtime/outer.h"

/* ---------------------------------------------------------------- launchers */
static int new_nitro(const struct run_opts *ro, struct launcher **out, struct err **err)
{
	(void)ro;
	struct launcher_nitro_options o = {0};
	return launcher_nitro_new(&o, out, err);
}

static int new_emulator(const struct run_opts *ro, struct launcher **out, struct err **err)
{
	struct launcher_emulator_options o = {.acpi = true, .accel = ro->accel};
	return launcher_emulator_new(&o, out, err);
}

#define MAX_LAUNCHERS 4
static struct {
	const char *name;
	cli_launcher_new_fn fn;
} launchers[MAX_LAUNCHERS] = {{"nitro", new_nitro}, {"emulator", new_emulator}};

void cli_launcher_register(const char *name, cli_launcher_new_fn fn)
{
	for (size_t i = 0; i < MAX_LAUNCHERS; i++)
		if (!launchers[i].name) {
			launchers[i].name = name;
			launchers[i].fn = fn;
			return;
		}
}

static cli_launcher_new_fn launcher_lookup(const char *name)
{
	for (size_t i = 0; i < MAX_LAUNCHERS; i++)
		if (launchers[i].name && strcmp(launchers[i].name, name) == 0)
			return launchers[i].fn;
	return NULL;
}

/* ---------------------------------------------------------------- options */

enum {
	OPT_EIF = 256,
	OPT_MANIFEST,
	OPT_CPUS,
	OPT_MEM,
	OPT_CID,
	OPT_DEBUG,
	OPT_VERIFY,
	OPT_EMULATE,
	OPT_ACCEL,
	OPT_LAUNCHER,
	OPT_NAME,
	OPT_HELP,
};

static void run_usage(FILE *f, bool entrypoint)
{
	if (entrypoint)
		fputs("Usage: enclaver-run [--eif-file FILE] [--manifest-file FILE] [options]\n"
		      "       enclaver-run print-manifest | describe-eif\n"
		      "\n"
		      "The release image's entrypoint: starts /enclave/application.eif as a Nitro Enclave and runs\n"
		      "its host side until it stops. Exit status: the app's; 107 app killed by a signal; 108 fatal\n"
		      "error; 109 stopped by SIGINT/SIGTERM.\n"
		      "\n"
		      "Options:\n"
		      "  --eif-file FILE         default /enclave/application.eif\n"
		      "  --manifest-file FILE    default /enclave/enclaver.yaml\n",
		      f);
	else
		fputs("Usage: enclaver run [IMAGE] [-f enclaver.yaml] [--eif FILE --manifest FILE] [options]\n"
		      "\n"
		      "Starts an enclave and runs its host side (ingress, egress policy, logs, status) until it\n"
		      "stops. IMAGE is a release image on any transport (docker://, oci:, oci-archive:,\n"
		      "docker-archive:); without it, -f's `target` (default ./enclaver.yaml), or --eif and\n"
		      "--manifest. Exit status: the app's; 107 app killed by a signal; 108 fatal error; 109\n"
		      "stopped by SIGINT/SIGTERM.\n"
		      "\n"
		      "Options:\n"
		      "  -f, --file FILE         the manifest whose target to run\n"
		      "  --eif FILE, --manifest FILE   run local files instead of an image\n",
		      f);
	fputs("  -p, --publish [ADDR:]HOST_PORT:ENCLAVE_PORT\n"
	      "                          host TCP port to the enclave's port (default: the manifest's ingress\n"
	      "                          ports, on 127.0.0.1); repeatable\n"
	      "  --cpu-count N, --memory-mb N   default: the manifest's defaults, else the launcher's\n"
	      "  --cid N                 the enclave's CID (default: picked)\n"
	      "  --name NAME             the name in `enclaver ps` (default: the manifest's name)\n"
	      "  --debug-mode            debug enclave: its console goes to stderr (PCRs read as zeros)\n"
	      "  --verify-before-run FILE  refuse to start unless the EIF's PCRs equal FILE's (the JSON of\n"
	      "                          enclaver build or describe-eif)\n"
	      "  --emulate               QEMU's nitro-enclave machine instead of /dev/nitro_enclaves\n"
	      "  --accel auto|kvm|tcg    the emulator's accelerator (default $ENCLAVER_EMULATOR_ACCEL, else\n"
	      "                          auto: KVM when it boots the enclave, else TCG)\n"
	      "  -v                      more detail on stderr\n",
	      f);
	if (!entrypoint)
		fputs("Pulling IMAGE:\n" CLI_OCI_USAGE, f);
	fputs("The launch information (nitro-cli's run-enclave JSON) is printed on stderr; stdout carries the\n"
	      "app's output, each line prefixed with \"[app] \".\n",
	      f);
}

static int parse_num(const char *s, unsigned long long min, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parses options into o; returns -1 to continue, else an exit code. */
int run_parse(int argc, char **argv, bool entrypoint, struct run_opts *o)
{
	static const struct option opts[] = {
	    {"file", required_argument, NULL, 'f'},
	    {"eif", required_argument, NULL, OPT_EIF},
	    {"eif-file", required_argument, NULL, OPT_EIF},
	    {"manifest", required_argument, NULL, OPT_MANIFEST},
	    {"manifest-file", required_argument, NULL, OPT_MANIFEST},
	    {"publish", required_argument, NULL, 'p'},
	    {"cpu-count", required_argument, NULL, OPT_CPUS},
	    {"memory-mb", required_argument, NULL, OPT_MEM},
	    {"cid", required_argument, NULL, OPT_CID},
	    {"debug-mode", no_argument, NULL, OPT_DEBUG},
	    {"verify-before-run", required_argument, NULL, OPT_VERIFY},
	    {"emulate", no_argument, NULL, OPT_EMULATE},
	    {"accel", required_argument, NULL, OPT_ACCEL},
	    {"launcher", required_argument, NULL, OPT_LAUNCHER},
	    {"name", required_argument, NULL, OPT_NAME},
	    CLI_OCI_LONG_OPTIONS,
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, OPT_HELP},
	    {0},
	};
	o->ports = xcalloc((size_t)argc + 1, sizeof(*o->ports));
	unsigned long long v;
	int c;
	int li = -1;
	while ((li = -1, c = getopt_long(argc, argv, "f:p:vh", opts, &li)) != -1) {
		_cleanup_err_ struct err *e = NULL;
		switch (c) {
		case 'f':
			if (entrypoint)
				return cli_usage_error(o->cmd, "-f: give --manifest-file");
			o->manifest_file = optarg;
			break;
		case OPT_EIF: o->eif = optarg; break;
		case OPT_MANIFEST: o->manifest = optarg; break;
		case 'p':
			if (outer_port_parse(optarg, &o->ports[o->n_ports], &e) < 0)
				return cli_usage_error(o->cmd, "%s", e->msg);
			o->n_ports++;
			break;
		case OPT_CPUS:
			if (parse_num(optarg, 1, LAUNCH_MAX_CPUS, &v) < 0)
				return cli_usage_error(o->cmd, "--cpu-count %s: want 1 to %d", optarg, LAUNCH_MAX_CPUS);
			o->cpu_count = (unsigned)v;
			break;
		case OPT_MEM:
			if (parse_num(optarg, 64, 1u << 24, &v) < 0)
				return cli_usage_error(o->cmd, "--memory-mb %s: want at least 64", optarg);
			o->memory_mb = (unsigned)v;
			break;
		case OPT_CID:
			if (parse_num(optarg, 4, UINT32_MAX - 1, &v) < 0)
				return cli_usage_error(o->cmd, "--cid %s: want 4 to 4294967294", optarg);
			o->cid = v;
			break;
		case OPT_DEBUG: o->debug_mode = true; break;
		case OPT_VERIFY: o->verify = optarg; break;
		case OPT_EMULATE: o->launcher = "emulator"; break;
		case OPT_ACCEL:
			if (emu_accel_parse(optarg, &o->accel) < 0)
				return cli_usage_error(o->cmd, "--accel %s: want auto, kvm or tcg", optarg);
			break;
		case OPT_LAUNCHER: o->launcher = optarg; break;
		case OPT_NAME: o->name = optarg; break;
		case 'v': log_set_level(log_get_level() < LOG_DEBUG ? log_get_level() + 1 : LOG_DEBUG); break;
		case 'h':
		case OPT_HELP: run_usage(stdout, entrypoint); return EXIT_OK;
		default: {
			/* The entrypoint runs the files inside its own image: it pulls nothing. */
			if (entrypoint)
				return cli_usage_error(o->cmd,
				                       "--%s pulls images: %s runs the files in its own image (give "
				                       "--eif-file and --manifest-file; `enclaver run IMAGE` pulls)",
				                       li >= 0 ? opts[li].name : "?", o->cmd);
			int r = cli_oci_option(o->cmd, c, optarg, &o->oci);
			if (r == 0)
				return cli_usage_error(o->cmd, "unknown option");
			if (r != 1)
				return r;
		}
		}
	}
	if (!entrypoint && optind < argc)
		o->image = argv[optind++];
	if (optind < argc)
		return cli_usage_error(o->cmd, "unexpected argument \"%s\"", argv[optind]);
	if (!entrypoint) {
		if ((o->eif != NULL) != (o->manifest != NULL))
			return cli_usage_error(o->cmd, "--eif and --manifest go together");
		if (o->eif && (o->image || o->manifest_file))
			return cli_usage_error(o->cmd, "give an IMAGE, -f FILE, or --eif with --manifest: not several");
		if (o->image && o->manifest_file)
			return cli_usage_error(o->cmd, "give an IMAGE or -f FILE, not both");
	}
	if (!o->launcher)
		o->launcher = "nitro";
	if (!launcher_lookup(o->launcher))
		return cli_usage_error(o->cmd, "--launcher %s: not a launcher of this build", o->launcher);
	if (o->accel != EMU_ACCEL_DEFAULT && strcmp(o->launcher, "emulator") != 0)
		return cli_usage_error(o->cmd, "--accel goes with --emulate");
	int r = cli_oci_options_check(o->cmd, &o->oci);
	return r ? r : -1;
}

/* ---------------------------------------------------------------- running */
static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

static void print_launch_info(const struct launch_info *info)
{
	json_t *cpus = json_array();
	for (unsigned i = 0; i < info->cpu_count && i < LAUNCH_MAX_CPUS; i++)
		json_array_append_new(cpus, json_integer(info->cpu_ids[i]));
	_cleanup_json_ json_t *doc =
	    json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:I}", "EnclaveName", info->name, "EnclaveID", info->enclave_id,
	              "ProcessID", (json_int_t)info->process_id, "EnclaveCID", (json_int_t)info->cid, "NumberOfCPUs",
	              (json_int_t)info->cpu_count, "CPUIDs", cpus, "MemoryMiB", (json_int_t)info->memory_mib);
	_cleanup_buf_ struct buf b = {0};
	if (json_serde_write(&b, doc, JSON_SERDE_PRETTY, NULL) == 0) {
		buf_putc(&b, '\n');
		io_write_full(STDERR_FILENO, b.data, b.len, NULL);
	}
}

/* Everything after the options; returns the process's exit code. */
int run_main(struct run_opts *o)
{
	_cleanup_err_ struct err *err = NULL;
	_cleanup_free_ char *tmp = NULL, *eif = NULL, *yaml = NULL, *state_path = NULL, *name = NULL, *image_ref = NULL;
	struct manifest *m = NULL, *fm = NULL;
	struct launcher *l = NULL;
	struct outer *outer = NULL;
	struct outer_result res = {0};
	_cleanup_json_ json_t *measured = NULL; /* the EIF's measurements, for `ps --json` */
	_cleanup_close_ int cid_hold = -1;      /* the picked CID, held until the run ends */
	int rc = OUTER_EXIT_FATAL;

	if (o->eif) {
		eif = xstrdup(o->eif);
		yaml = xstrdup(o->manifest);
	} else {
		const char *image = o->image;
		if (!image) {
			const char *mf = o->manifest_file ? o->manifest_file : "enclaver.yaml";
			if (manifest_load(mf, &fm, &err) < 0)
				goto fail;
			if (!fm->target) {
				err_set(&err, EINVAL, "%s has no `target`: give the release IMAGE to run", mf);
				goto fail;
			}
			image = fm->target;
		}
		const char *base = getenv("TMPDIR");
		tmp = xasprintf("%s/enclaver-run.XXXXXX", base && *base ? base : "/tmp");
		if (!mkdtemp(tmp)) {
			err_sys(&err, "creating a temporary folder %s", tmp);
			free(steal_pointer(&tmp));
			goto fail;
		}
		image_ref = xstrdup(image);
		log_info("reading the release image %s", image);
		eif = xasprintf("%s/application.eif", tmp);
		yaml = xasprintf("%s/enclaver.yaml", tmp);
		if (!o->fetch_release) {
			err_set(&err, ENOTSUP, "%s reads local files only: give --eif-file and --manifest-file", o->cmd);
			goto fail;
		}
		if (o->fetch_release(image, &o->oci, tmp, eif, yaml, &err) < 0) {
			err_wrap(&err, "release image");
			goto fail;
		}
	}
	if (manifest_load(yaml, &m, &err) < 0)
		goto fail;
	if (o->n_ports == 0)
		for (size_t i = 0; i < m->n_ingress; i++) {
			struct outer_port *p = &o->ports[o->n_ports++];
			strcpy(p->host_addr, "127.0.0.1");
			p->host_port = p->enclave_port = m->ingress[i].listen_port;
		}
	for (size_t i = 0; i < o->n_ports; i++) {
		bool known = false;
		for (size_t j = 0; j < m->n_ingress; j++)
			known |= m->ingress[j].listen_port == o->ports[i].enclave_port;
		if (!known)
			log_warn("-p %u:%u: the manifest has no ingress on port %u: odyn will not accept there",
			         o->ports[i].host_port, o->ports[i].enclave_port, o->ports[i].enclave_port);
	}
	if (o->verify) {
		if (outer_measurements_verify(eif, o->verify, &measured, &err) < 0)
			goto fail;
		log_info("--verify-before-run: the EIF's measurements match %s", o->verify);
	} else {
		/* What nitro-cli describe-enclaves shows as Measurements. An EIF we cannot measure may
		 * still boot; the launch decides, ps then shows no measurements. */
		_cleanup_err_ struct err *me = NULL;
		if (outer_measurements_of(eif, &measured, &me) < 0)
			log_warn("%s: %s (enclaver ps --json will show no Measurements)", eif, me->msg);
	}
	/* Too little memory does not fail the launch: the kernel stops unpacking the ramdisk and the
	 * app is "not found" (exit 108). Refuse here, with the size (eif_memory_needed_mib). The
	 * default is the launcher's: 4096 MiB on Nitro, 1024 in the emulator (and the test launcher). */
	unsigned mem = o->memory_mb ? o->memory_mb : (unsigned)m->memory_mb;
	if (!mem)
		mem = strcmp(o->launcher, "nitro") == 0 ? 4096 : 1024;
	uint64_t need;
	if (eif_file_memory_needed_mib(eif, &need, &err) < 0)
		goto fail;
	if (mem < need) {
		err_set(
		    &err, EINVAL,
		    "%s needs at least %llu MiB of enclave memory (kernel, its ramdisks twice while they unpack, and "
		    "%d MiB for the kernel and the app), but the enclave would get %u MiB (%s): give --memory-mb %llu "
		    "or more, or set defaults.memory_mb in enclaver.yaml",
		    image_ref ? image_ref : eif, (unsigned long long)need, EIF_MEMORY_MARGIN_MIB, mem,
		    o->memory_mb   ? "--memory-mb"
		    : m->memory_mb ? "the manifest's defaults.memory_mb"
		                   : "the launcher's default",
		    (unsigned long long)need);
		goto fail;
	}
	if (o->name)
		name = xstrdup(o->name);
	else if (m->name)
		name = xstrdup(m->name);
	else {
		_cleanup_free_ char *copy = xstrdup(eif);
		name = xstrdup(basename(copy));
		char *dot = strrchr(name, '.');
		if (dot && dot != name)
			*dot = '\0';
	}
	if (outer_state_check(name, o->cid, o->ports, o->n_ports, &err) < 0)
		goto fail;
	/* The Nitro driver picks a free CID itself when given 0; other launchers (the emulator) take
	 * the one they are given, so the run picks one: the lowest free from 16. */
	if (!o->cid && strcmp(o->launcher, "nitro") != 0) {
		if (outer_state_pick_cid(16, &o->cid, &cid_hold, &err) < 0)
			goto fail;
		log_debug("CID %llu picked (the lowest free from 16)", (unsigned long long)o->cid);
	}

	if (launcher_lookup(o->launcher)(o, &l, &err) < 0)
		goto fail;
	struct outer_config cfg = {.launcher = l,
	                           .ports = o->ports,
	                           .n_ports = o->n_ports,
	                           .policy = &m->egress_policy,
	                           .debug_mode = o->debug_mode,
	                           .log_fd = STDOUT_FILENO};
	if (outer_new(&cfg, &outer, &err) < 0)
		goto fail;
	struct launch_request req = {.eif_path = eif,
	                             .name = name,
	                             .cpu_count = o->cpu_count ? o->cpu_count : (unsigned)m->cpu_count,
	                             .memory_mb = o->memory_mb ? o->memory_mb : (unsigned)m->memory_mb,
	                             .cid = o->cid,
	                             .debug_mode = o->debug_mode};
	struct launch_info info = {0};
	if (launcher_start(l, &req, &info, &err) < 0) {
		/* SIGINT/SIGTERM during the boot: the launcher stopped the enclave; that is a stop by
		 * signal (109) like one after the heartbeat, not a failure. */
		if (err->code == EINTR)
			rc = OUTER_EXIT_INTERRUPTED;
		goto fail;
	}
	if (log_get_level() >= LOG_WARN)
		print_launch_info(&info);
	struct outer_state st = {.id = info.enclave_id,
	                         .name = name,
	                         .launcher = (char *)o->launcher,
	                         .eif = eif,
	                         .image = image_ref,
	                         .cid = info.cid,
	                         .pid = getpid(),
	                         .ports = o->ports,
	                         .n_ports = o->n_ports,
	                         .started = (int64_t)time(NULL),
	                         .cpu_count = info.cpu_count,
	                         .memory_mib = info.memory_mib,
	                         .debug_mode = info.debug_mode,
	                         .measurements = measured};
	for (unsigned i = 0; i < info.cpu_count && i < LAUNCH_MAX_CPUS; i++)
		st.cpu_ids[i] = info.cpu_ids[i];
	for (size_t i = 0; i < o->n_ports; i++)
		o->ports[i].host_port = outer_port_bound(outer, i);
	if (outer_state_add(&st, &state_path, &err) < 0) {
		/* Another run took the CID between our check and the launch (the launcher picked it). */
		_cleanup_err_ struct err *e2 = NULL;
		launcher_stop(l, &e2);
		goto fail;
	}
	if (outer_run(outer, &res, &err) < 0)
		goto fail;
	if (res.outcome != OUTER_APP_EXITED || res.code != 0)
		log_warn("%s", res.message ? res.message : "the enclave stopped");
	rc = outer_exit_code(&res);
	goto out;
fail:
	cli_fail(&err);
out:
	if (state_path)
		unlink(state_path);
	outer_free(outer);
	launcher_free(l);
	outer_state_release_cid(o->cid, &cid_hold); /* the enclave is gone: its CID is free */
	free(res.message);
	manifest_free(m);
	manifest_free(fm);
	if (tmp)
		nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(o->ports);
	return rc;
}

/* enclaver-run print-manifest | describe-eif, with the same file options. */
static int entrypoint_sub(const char *sub, struct run_opts *o)
{
	_cleanup_err_ struct err *err = NULL;
	int rc = EXIT_OK;
	if (strcmp(sub, "print-manifest") == 0) {
		_cleanup_free_ char *data = NULL;
		size_t len;
		if (io_read_file(o->manifest, MANIFEST_MAX_BYTES, &data, &len, &err) < 0 ||
		    io_write_full(STDOUT_FILENO, data, len, &err) < 0)
			rc = cli_fail(&err);
	} else {
		char *args[] = {"describe-eif", (char *)o->eif, NULL};
		optind = 0;
		rc = cmd_describe_eif(2, args);
	}
	free(o->ports);
	return rc;
}

int cmd_enclaver_run(int argc, char **argv)
{
	struct run_opts o = {.cmd = "enclaver-run"};
	/* A subcommand comes first: `enclaver-run describe-eif [--eif-file F]`. */
	const char *sub = NULL;
	if (argc > 1 && (strcmp(argv[1], "print-manifest") == 0 || strcmp(argv[1], "describe-eif") == 0)) {
		sub = argv[1];
		argv++;
		argc--;
	}
	int r = run_parse(argc, argv, true, &o);
	if (r >= 0) {
		free(o.ports);
		return r;
	}
	if (!o.eif)
		o.eif = "/enclave/application.eif";
	if (!o.manifest)
		o.manifest = "/enclave/enclaver.yaml";
	if (sub)
		return entrypoint_sub(sub, &o);
	return run_main(&o);
}
