/* main: the `enclaver` entry point: global options, then one subcommand.
 * Started as `enclaver-build` it runs `enclaver build`. */
#include <getopt.h>
#include <libgen.h>
#include <string.h>

#include "cli/cli.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"build", cmd_build, "build an enclave image from enclaver.yaml (see docs/cli.md)"},
	{"eif", cmd_eif, "build or sign an EIF file from a kernel, cmdline and ramdisks"},
	{"describe-eif", cmd_describe_eif, "print an EIF's measurements, metadata and checks"},
	{"pcr", cmd_pcr, "print the PCR of a file or of a signing certificate"},
	{"trust", cmd_trust, "print an EIF's measurements and a KMS key-policy condition for it"},
	{"verify-attestation", cmd_verify_attestation, "verify a Nitro Enclaves attestation document"},
	{"pull", cmd_pull, "fetch an image into the cache or an OCI layout (see docs/oci.md)"},
	{"push", cmd_push, "send an image to a registry"},
	{"copy", cmd_copy, "copy an image between registries, OCI layouts and archives"},
	{"sign", cmd_sign, "sign an image in a registry as cosign does (see docs/security.md)"},
	{"verify", cmd_verify, "check a release image's signature and its EIF (docs/security.md)"},
	{"inspect", cmd_inspect, "print an image's manifest, config and digests as JSON"},
	{"emulate", cmd_emulate, "boot an EIF in QEMU's nitro-enclave machine (docs/emulator.md)"},
	{"cache", cmd_cache, "re-hash the cache and move aside what is corrupt: cache verify (docs/cli.md)"},
	{"kernel", cmd_kernel, "make the default kernel bundle from Debian's kernel: kernel fetch (docs/cli.md)"},
	{"ramdisk", cmd_ramdisk, "write an EIF's bootstrap or customer ramdisk from local files (docs/builder.md)"},
	{"manifest", cmd_manifest, "check an enclaver.yaml and print it as JSON (docs/enclaver-yaml.md)"},
	{"run", cmd_run, "start an enclave and run its host side until it stops (docs/run.md)"},
	{"ps", cmd_ps, "list the enclaves this host runs (docs/run.md)"},
	{"stop", cmd_stop, "stop a running enclave by id or name (docs/run.md)"},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: enclaver [-v|-q] COMMAND [ARGS...]\n\n"
		   "Build, inspect and run AWS Nitro Enclave images without a container daemon.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-20s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  -v, --verbose  more detail on stderr (repeat for debug)\n"
		   "  -q, --quiet    only errors on stderr\n"
		   "  -h, --help     this help; COMMAND --help for a command's\n"
		   "      --version  print the version\n");
}

int main(int argc, char **argv)
{
	_cleanup_free_ char *self = xstrdup(argv[0]);
	if (strcmp(basename(self), "enclaver-build") == 0) {
		argv[0] = "build";
		return cmd_build(argc, argv);
	}
	if (strcmp(basename(self), "enclaver-run") == 0) {
		argv[0] = "enclaver-run";
		return cmd_enclaver_run(argc, argv);
	}
	static const struct option opts[] = {
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int verbosity = LOG_WARN, c;
	/* '+': stop at the first non-option, the subcommand. */
	while ((c = getopt_long(argc, argv, "+vqh", opts, NULL)) != -1) {
		switch (c) {
		case 'v': verbosity = verbosity < LOG_DEBUG ? verbosity + 1 : LOG_DEBUG; break;
		case 'q': verbosity = LOG_ERROR; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("enclaver %s\n", ENCLAVER_VERSION); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	log_set_level((enum log_level)verbosity);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;
			optind = 0; /* reset getopt for the subcommand's parser */
			return commands[i].run(sub_argc, sub_argv);
		}
	}
	fprintf(stderr, "enclaver: unknown command '%s'\n\n", argv[optind]);
	usage(stderr);
	return EXIT_USAGE;
}
