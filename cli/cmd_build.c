/* cmd_build: `enclaver build` (also run as `enclaver-build`): options, the odyn
 * binary's default location, then builder/pipeline.c; prints the report JSON on stdout. */
#include <getopt.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "cli/oci_opts.h"

static void build_usage(FILE *f)
{
	fputs("Usage: enclaver build [-f FILE|-] [options]\n"
	      "\n"
	      "Builds an enclave from enclaver.yaml (default ./enclaver.yaml; - reads stdin): pulls\n"
	      "sources.app through the blob cache, flattens it, adds odyn and the manifest, makes the EIF\n"
	      "with a kernel bundle (signed when the manifest has `signature`) and a release image holding\n"
	      "it; a pushed image gets the build's in-toto statement attached (sha256-<hex>.att). Prints\n"
	      "{\"Sources\", \"Measurements\", \"Image\"} as JSON on stdout; progress goes to\n"
	      "stderr: a line per step, and on a terminal a status line for downloads and the flatten.\n"
	      "\n"
	      "Options:\n"
	      "  -f, --file FILE              the manifest (- for stdin)\n"
	      "  --eif-only FILE              write the EIF to FILE and stop (no release image); its in-toto\n"
	      "                               statement goes beside it, FILE.intoto.jsonl\n"
	      "  -o, --output REF             write the release image there (oci:DIR[:TAG], oci-archive:FILE...)\n"
	      "  --push[=REF]                 push the release image to REF (default: the manifest's target)\n"
	      "  --sign-key KEY               sign the pushed image and its statement as cosign does (PEM file,\n"
	      "                               pkcs11: URI or KMS key ARN; docs/security.md); a failed signing\n"
	      "                               exits 1. Without it the statement is attached UNSIGNED\n"
	      "  --kernel-bundle DIR          kernel, cmdline[, init, nsm.ko, modules] (default: "
	      "$ENCLAVER_KERNEL_BUNDLE,\n"
	      "                               /usr/share/nitro_enclaves/blobs, then CACHE/kernel-bundle)\n"
	      "  --odyn FILE                  the odyn binary (default: $ENCLAVER_ODYN, then the manifest's\n"
	      "                               sources.odyn image, then odyn next to enclaver)\n"
	      CLI_OCI_USAGE
	      "                               (--platform defaults to the kernel bundle's architecture)\n"
	      "  --tmpdir DIR                 where the private temporary folder goes (default $TMPDIR or /tmp)\n"
	      "  --no-ramdisk-cache           always flatten; do not reuse or keep the customer ramdisk in\n"
	      "                               the cache (by default the last 3 are kept, keyed by their inputs)\n"
	      "  -q, --quiet                  no progress on stderr (warnings and errors only)\n"
	      "\n"
	      "SOURCE_DATE_EPOCH sets the build time and every added file's mtime; unset, the app image's\n"
	      "`created` is used, so the same inputs give the same EIF bytes and release image digest.\n",
	      f);
}

enum {
	OPT_EIF_ONLY = 256,
	OPT_PUSH,
	OPT_SIGN_KEY,
	OPT_BUNDLE,
	OPT_ODYN,
	OPT_TMPDIR,
	OPT_NO_RAMDISK_CACHE,
	OPT_HELP,
};

/* A file shipped with enclaver: NAME beside the running binary (`make` puts odyn and
 * enclaver-run.static in bin/ with enclaver). NULL when /proc/self/exe is unreadable. */
static char *beside_self(const char *name)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return xasprintf("%s/%s", self, name);
}

int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"file", required_argument, NULL, 'f'},
	    {"eif-only", required_argument, NULL, OPT_EIF_ONLY},
	    {"output", required_argument, NULL, 'o'},
	    {"push", optional_argument, NULL, OPT_PUSH},
	    {"sign-key", required_argument, NULL, OPT_SIGN_KEY},
	    {"kernel-bundle", required_argument, NULL, OPT_BUNDLE},
	    {"odyn", required_argument, NULL, OPT_ODYN},
	    CLI_OCI_LONG_OPTIONS,
	    {"tmpdir", required_argument, NULL, OPT_TMPDIR},
	    {"no-ramdisk-cache", no_argument, NULL, OPT_NO_RAMDISK_CACHE},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, OPT_HELP},
	    {0},
	};
	struct bld_build_opts o = {.manifest_path = "enclaver.yaml"};
	bool quiet = false;
	_cleanup_free_ char *odyn = NULL, *runtime = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "f:o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': o.manifest_path = optarg; break;
		case OPT_EIF_ONLY: o.eif_only = optarg; break;
		case 'o': o.output = optarg; break;
		case OPT_PUSH: o.push = optarg ? optarg : ""; break;
		case OPT_SIGN_KEY: o.sign_key = optarg; break;
		case OPT_BUNDLE: o.kernel_bundle = optarg; break;
		case OPT_ODYN: o.odyn_path = optarg; break;
		case OPT_TMPDIR: o.tmp_dir = optarg; break;
		case OPT_NO_RAMDISK_CACHE: o.no_ramdisk_cache = true; break;
		case 'q': quiet = true; break;
		case 'h':
		case OPT_HELP: build_usage(stdout); return EXIT_OK;
		default: {
			int r = cli_oci_option("build", c, optarg, &o.oci);
			if (r != 1)
				return r == 0 ? cli_usage_error("build", "unknown option") : r;
			break;
		}
		}
	}
	if (optind != argc)
		return cli_usage_error("build", "unexpected argument \"%s\"", argv[optind]);
	if (o.eif_only && (o.output || o.push))
		return cli_usage_error("build", "--eif-only makes no release image: drop --output/--push");
	if (o.sign_key && !o.push && !o.eif_only)
		return cli_usage_error("build",
		                       "--sign-key signs the pushed image and its statement, or with --eif-only the "
		                       "statement beside the EIF: add --push[=REF] or --eif-only FILE");
	int rc = cli_oci_options_check("build", &o.oci, quiet);
	if (rc)
		return rc;
	/* The build pulls each source for the platform it settles on (the bundle's by default). */
	o.platform = o.oci.platform;
	o.oci.platform = NULL;
	struct err *err = NULL;
	const char *env_odyn = getenv("ENCLAVER_ODYN");
	if (!o.odyn_path && env_odyn && *env_odyn)
		o.odyn_path = env_odyn;
	odyn = beside_self("odyn");
	if (odyn && access(odyn, R_OK) == 0)
		o.odyn_default = odyn;
	/* The release image's runtime: $ENCLAVER_RUN, else enclaver-run.static next to enclaver. */
	const char *env_run = getenv("ENCLAVER_RUN");
	if (env_run && *env_run) {
		o.runtime_path = env_run;
	} else {
		runtime = beside_self("enclaver-run.static");
		if (runtime && access(runtime, R_OK) == 0)
			o.runtime_path = runtime;
	}
	_cleanup_json_ json_t *report = NULL;
	if (bld_build(&o, &report, &err) < 0 || cli_print_json(report, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}
