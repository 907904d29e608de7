/* cmd_emulate: `enclaver emulate --eif FILE`: boot an EIF without Nitro hardware, in QEMU's
 * nitro-enclave machine with our vsock backend (docs/emulator.md). */
#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cli/cli.h"
#include "runtime/runtime.h"

/* enclaver-run's exit code for "stopped by SIGINT/SIGTERM". */
#define EXIT_INTERRUPTED 109

static void emulate_usage(FILE *f)
{
	fputs("Usage: enclaver emulate --eif FILE [options]\n"
	      "\n"
	      "Boots an EIF in QEMU's nitro-enclave machine (emulated NSM, PCRs computed from the EIF)\n"
	      "with enclaver's vhost-user-vsock backend, answers the heartbeat on vsock port 9000, and\n"
	      "runs until the enclave stops or SIGINT/SIGTERM. QEMU comes from scripts/build-qemu.sh.\n"
	      "\n"
	      "Options:\n"
	      "  --eif FILE                   the enclave image\n"
	      "  --debug-mode                 stream the enclave's serial console to stdout\n"
	      "  --cid N                      the enclave's CID (default 16)\n"
	      "  --cpu-count N                vCPUs (default 2)\n"
	      "  --memory-mb N                memory in MiB (default 1024)\n"
	      "  --forward PORT=ENDPOINT      enclave connections to the parent's PORT go to ENDPOINT\n"
	      "  --listen ENDPOINT=PORT       host connections to ENDPOINT go to the enclave's PORT\n"
	      "  --uds PATH                   Firecracker-style: enclave port P -> unix socket PATH_P;\n"
	      "                               clients of PATH send \"CONNECT P\\n\" to reach enclave port P\n"
	      "  --heartbeat-timeout SECONDS  (default 300: software emulation is slow)\n"
	      "  --accel auto|kvm|tcg         accelerator (default $ENCLAVER_EMULATOR_ACCEL, else auto: KVM\n"
	      "                               when it boots the enclave, else TCG with a warning)\n"
	      "  --no-acpi                    machine without ACPI (kernels with virtio-mmio cmdline devices)\n"
	      "  --qemu PATH                  qemu-system-x86_64 (default $ENCLAVER_QEMU, then the\n"
	      "                               build-qemu.sh cache, then PATH)\n"
	      "ENDPOINT is unix:PATH or tcp:PORT (127.0.0.1 only).\n"
	      "Exit status: 0 when the enclave ran and stopped, 1 on failure, 109 when interrupted.\n",
	      f);
}

enum {
	OPT_EIF = 256,
	OPT_DEBUG,
	OPT_CID,
	OPT_CPUS,
	OPT_MEM,
	OPT_FORWARD,
	OPT_LISTEN,
	OPT_UDS,
	OPT_TIMEOUT,
	OPT_NO_ACPI,
	OPT_QEMU,
	OPT_ACCEL,
	OPT_HELP,
};

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_endpoint(const char *s, struct vsock_endpoint *ep)
{
	unsigned long long port;
	memset(ep, 0, sizeof(*ep));
	if (str_has_prefix(s, "unix:") && s[5]) {
		ep->unix_path = s + 5;
		return 0;
	}
	if (str_has_prefix(s, "tcp:") && parse_uint(s + 4, 65535, &port) == 0 && port > 0) {
		ep->tcp_port = (uint16_t)port;
		return 0;
	}
	return -1;
}

int cmd_emulate(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"eif", required_argument, NULL, OPT_EIF},
	    {"eif-file", required_argument, NULL, OPT_EIF},
	    {"debug-mode", no_argument, NULL, OPT_DEBUG},
	    {"cid", required_argument, NULL, OPT_CID},
	    {"cpu-count", required_argument, NULL, OPT_CPUS},
	    {"memory-mb", required_argument, NULL, OPT_MEM},
	    {"forward", required_argument, NULL, OPT_FORWARD},
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"uds", required_argument, NULL, OPT_UDS},
	    {"heartbeat-timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"no-acpi", no_argument, NULL, OPT_NO_ACPI},
	    {"qemu", required_argument, NULL, OPT_QEMU},
	    {"accel", required_argument, NULL, OPT_ACCEL},
	    {"help", no_argument, NULL, OPT_HELP},
	    {0},
	};
	struct emulate_config cfg = {
	    .guest_cid = 16, .cpu_count = 2, .memory_mb = 1024, .acpi = true, .heartbeat_timeout_s = 300};
	_cleanup_free_ struct vsock_forward *forwards = xcalloc((size_t)argc, sizeof(*forwards));
	_cleanup_free_ struct vsock_listen *listens = xcalloc((size_t)argc, sizeof(*listens));
	_cleanup_free_ char *qemu = NULL;
	size_t n_forwards = 0, n_listens = 0;
	unsigned long long v;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_EIF: cfg.eif_path = optarg; break;
		case OPT_DEBUG: cfg.debug_mode = true; break;
		case OPT_CID:
			if (parse_uint(optarg, UINT32_MAX - 1, &v) < 0 || v < 4)
				return cli_usage_error("emulate", "--cid %s: expected a number from 4 to 4294967294",
				                       optarg);
			cfg.guest_cid = v;
			break;
		case OPT_CPUS:
			if (parse_uint(optarg, 64, &v) < 0 || v == 0)
				return cli_usage_error("emulate", "--cpu-count %s: expected 1 to 64", optarg);
			cfg.cpu_count = (unsigned)v;
			break;
		case OPT_MEM:
			if (parse_uint(optarg, 1024 * 1024, &v) < 0 || v < 64)
				return cli_usage_error("emulate", "--memory-mb %s: expected at least 64", optarg);
			cfg.memory_mb = (unsigned)v;
			break;
		case OPT_FORWARD: {
			char *eq = strchr(optarg, '=');
			struct vsock_forward *f = &forwards[n_forwards];
			if (!eq)
				return cli_usage_error("emulate", "--forward %s: expected PORT=ENDPOINT", optarg);
			*eq = '\0';
			if (parse_uint(optarg, UINT32_MAX, &v) < 0 || parse_endpoint(eq + 1, &f->to) < 0)
				return cli_usage_error("emulate",
				                       "--forward %s=%s: expected PORT=unix:PATH or PORT=tcp:PORT",
				                       optarg, eq + 1);
			f->port = (uint32_t)v;
			n_forwards++;
			break;
		}
		case OPT_LISTEN: {
			char *eq = strrchr(optarg, '=');
			struct vsock_listen *l = &listens[n_listens];
			if (!eq)
				return cli_usage_error("emulate", "--listen %s: expected ENDPOINT=PORT", optarg);
			*eq = '\0';
			if (parse_uint(eq + 1, UINT32_MAX, &v) < 0 || parse_endpoint(optarg, &l->from) < 0)
				return cli_usage_error("emulate",
				                       "--listen %s=%s: expected unix:PATH=PORT or tcp:PORT=PORT",
				                       optarg, eq + 1);
			l->guest_port = (uint32_t)v;
			n_listens++;
			break;
		}
		case OPT_UDS: cfg.uds_path = optarg; break;
		case OPT_TIMEOUT:
			if (parse_uint(optarg, 86400, &v) < 0 || v == 0)
				return cli_usage_error("emulate", "--heartbeat-timeout %s: expected 1 to 86400 seconds",
				                       optarg);
			cfg.heartbeat_timeout_s = (unsigned)v;
			break;
		case OPT_NO_ACPI: cfg.acpi = false; break;
		case OPT_QEMU: qemu = xstrdup(optarg); break;
		case OPT_ACCEL:
			if (emu_accel_parse(optarg, &cfg.accel) < 0)
				return cli_usage_error("emulate", "--accel %s: expected auto, kvm or tcg", optarg);
			break;
		case OPT_HELP: emulate_usage(stdout); return EXIT_OK;
		default: return cli_usage_error("emulate", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("emulate", "unexpected argument '%s'", argv[optind]);
	if (!cfg.eif_path)
		return cli_usage_error("emulate", "--eif is required");
	_cleanup_err_ struct err *err = NULL;
	cfg.qemu = qemu; /* NULL: the launcher looks for one */
	/* A reader of the console that goes away must not kill us with QEMU still running. */
	signal(SIGPIPE, SIG_IGN);
	cfg.forwards = forwards;
	cfg.n_forwards = n_forwards;
	cfg.listens = listens;
	cfg.n_listens = n_listens;
	struct emulate_result res;
	if (emulate_run(&cfg, &res, &err) < 0)
		return cli_fail(&err);
	if (res.interrupted)
		return EXIT_INTERRUPTED;
	if (!WIFEXITED(res.qemu_status) || WEXITSTATUS(res.qemu_status) != 0) {
		err_set(&err, 0, "QEMU ended with status 0x%x after the enclave started", res.qemu_status);
		return cli_fail(&err);
	}
	return EXIT_OK;
}
