/* cmd_run: the options of `enclaver run` and of the release image's entrypoint `enclaver-run`,
 * and what they print; runtime/run.c does the run (docs/run.md). */
#include <getopt.h>
#include <string.h>

#include "builder/builder.h"
#include "manifest/manifest.h"
#include "cli/oci_opts.h"
#include "cli/run.h"

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
	OPT_LOG_FORMAT,
	OPT_METRICS,
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
	      "  --log-format text|json  text (default) or one JSON object a line: time, source (app, odyn,\n"
	      "                          host, console), level, message (docs/run.md, Log format)\n"
	      "  --metrics ADDR          serve /healthz, /livez and /metrics (Prometheus) on HOST:PORT, or\n"
	      "                          :PORT for 127.0.0.1:PORT (docs/cli.md lists the metrics)\n"
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
	    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	    {"metrics", required_argument, NULL, OPT_METRICS},
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
			o->run.manifest_file = optarg;
			break;
		case OPT_EIF: o->run.eif = optarg; break;
		case OPT_MANIFEST: o->run.manifest = optarg; break;
		case 'p':
			if (outer_port_parse(optarg, &o->ports[o->run.n_ports], &e) < 0)
				return cli_usage_error(o->cmd, "%s", e->msg);
			o->run.n_ports++;
			break;
		case OPT_CPUS:
			if (parse_num(optarg, 1, LAUNCH_MAX_CPUS, &v) < 0)
				return cli_usage_error(o->cmd, "--cpu-count %s: want 1 to %d", optarg, LAUNCH_MAX_CPUS);
			o->run.cpu_count = (unsigned)v;
			break;
		case OPT_MEM:
			if (parse_num(optarg, 64, 1u << 24, &v) < 0)
				return cli_usage_error(o->cmd, "--memory-mb %s: want at least 64", optarg);
			o->run.memory_mb = (unsigned)v;
			break;
		case OPT_CID:
			if (parse_num(optarg, 4, UINT32_MAX - 1, &v) < 0)
				return cli_usage_error(o->cmd, "--cid %s: want 4 to 4294967294", optarg);
			o->run.cid = v;
			break;
		case OPT_DEBUG: o->run.debug_mode = true; break;
		case OPT_VERIFY: o->run.verify = optarg; break;
		case OPT_EMULATE: o->run.launcher = "emulator"; break;
		case OPT_ACCEL:
			if (emu_accel_parse(optarg, &o->run.accel) < 0)
				return cli_usage_error(o->cmd, "--accel %s: want auto, kvm or tcg", optarg);
			break;
		case OPT_LAUNCHER: o->run.launcher = optarg; break;
		case OPT_NAME: o->run.name = optarg; break;
		case OPT_LOG_FORMAT: {
			enum log_format f;
			if (log_format_parse(optarg, &f) < 0)
				return cli_usage_error(o->cmd, "--log-format %s: want text or json", optarg);
			log_set_format(f); /* the whole run's output, the host's own messages too */
			break;
		}
		case OPT_METRICS: {
			struct transport_addr a;
			if (outer_metrics_addr(optarg, &a, &e) < 0)
				return cli_usage_error(o->cmd, "%s", e->msg);
			o->run.metrics = optarg;
			break;
		}
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
		o->run.image = argv[optind++];
	if (optind < argc)
		return cli_usage_error(o->cmd, "unexpected argument \"%s\"", argv[optind]);
	if (!entrypoint) {
		if ((o->run.eif != NULL) != (o->run.manifest != NULL))
			return cli_usage_error(o->cmd, "--eif and --manifest go together");
		if (o->run.eif && (o->run.image || o->run.manifest_file))
			return cli_usage_error(o->cmd, "give an IMAGE, -f FILE, or --eif with --manifest: not several");
		if (o->run.image && o->run.manifest_file)
			return cli_usage_error(o->cmd, "give an IMAGE or -f FILE, not both");
	}
	if (!o->run.launcher)
		o->run.launcher = "nitro";
	o->run.ports = o->ports;
	if (!run_launcher_known(o->run.launcher))
		return cli_usage_error(o->cmd, "--launcher %s: not a launcher of this build", o->run.launcher);
	if (o->run.accel != EMU_ACCEL_DEFAULT && strcmp(o->run.launcher, "emulator") != 0)
		return cli_usage_error(o->cmd, "--accel goes with --emulate");
	int r = cli_oci_options_check(o->cmd, &o->oci, false);
	return r ? r : -1;
}

/* ---------------------------------------------------------------- running */
/* nitro-cli run-enclave's JSON, on stderr once the enclave started. */
static void print_launch_info(void *ctx, const struct launch_info *info)
{
	(void)ctx;
	if (log_get_level() < LOG_WARN)
		return;
	json_t *cpus = outer_cpu_ids_json(info->cpu_ids, info->cpu_count);
	_cleanup_json_ json_t *doc =
	    json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:I}", "EnclaveName", info->name, "EnclaveID", info->enclave_id,
	              "ProcessID", (json_int_t)info->process_id, "EnclaveCID", (json_int_t)info->cid, "NumberOfCPUs",
	              (json_int_t)info->cpu_count, "CPUIDs", cpus, "MemoryMiB", (json_int_t)info->memory_mib);
	_cleanup_buf_ struct buf b = {0};
	if (log_get_format() == LOG_FORMAT_JSON) { /* one line, as the host's other messages */
		_cleanup_free_ char *m = xasprintf("the enclave %s started: %s, CID %llu, %u CPUs, %llu MiB", info->name, info->enclave_id,
		                                   (unsigned long long)info->cid, info->cpu_count,
		                                   (unsigned long long)info->memory_mib);
		log_line_write(STDERR_FILENO, "", "host", "info", m, strlen(m), NULL);
		return;
	}
	if (json_serde_write(&b, doc, JSON_SERDE_PRETTY, NULL) == 0) {
		buf_putc(&b, '\n');
		io_write_full(STDERR_FILENO, b.data, b.len, NULL);
	}
}

int run_main(struct run_opts *o)
{
	_cleanup_err_ struct err *err = NULL;
	o->run.on_started = print_launch_info;
	int rc;
	if (run_enclave(&o->run, &rc, &err) < 0)
		cli_fail(&err);
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
		if (io_read_file(o->run.manifest, MANIFEST_MAX_BYTES, &data, &len, &err) < 0 ||
		    io_write_full(STDOUT_FILENO, data, len, &err) < 0)
			rc = cli_fail(&err);
	} else {
		char *args[] = {"describe-eif", (char *)o->run.eif, NULL};
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
	if (!o.run.eif)
		o.run.eif = BLD_RELEASE_EIF_PATH;
	if (!o.run.manifest)
		o.run.manifest = "/enclave/enclaver.yaml";
	if (sub)
		return entrypoint_sub(sub, &o);
	return run_main(&o);
}
