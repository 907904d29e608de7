/* cmd_verify: `enclaver verify IMAGE --key KEY`: checks a release image in a registry against the
 * key that signed it (builder/verify.c) and prints the report; exit 0 when every check passed, 1
 * when one failed (the report says which) or when the checks could not run. */
#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "cli/oci_opts.h"
#include "keys/keys.h"

enum { OPT_KEY = 256, OPT_REBUILD, OPT_BUNDLE, OPT_ODYN, OPT_HELP };

static void verify_usage(FILE *f)
{
	fputs("Usage: enclaver verify [options] IMAGE --key KEY [--rebuild [--kernel-bundle DIR] [--odyn FILE]]\n"
	      "\n"
	      "Checks a release image in a registry: a cosign-format signature of its manifest digest by\n"
	      "KEY (the simple-signing payload at the sha256-<hex>.sig tag, naming this digest and this\n"
	      "repository); the in-toto statement at the sha256-<hex>.att tag, signed by KEY, naming\n"
	      "that digest; then the EIF inside the image of that digest, read whole (structure, CRC,\n"
	      "its own signature), with the statement's PCRs and SHA-384. --rebuild then builds it\n"
	      "again from the statement's record (its enclaver.yaml bytes, the app by digest, its\n"
	      "SOURCE_DATE_EPOCH) and compares the EIF: inputs, PCRs, bytes. Prints a JSON report\n"
	      "{\"Valid\", \"Image\", \"Digest\", \"Checks\", \"Problem\", \"Signature\", \"Statement\",\n"
	      "\"Measurements\"[, \"Rebuild\"]}. Exit status: 0 every check passed; 1 one failed (the\n"
	      "first problem, also on stderr) or the checks could not run.\n"
	      "\n"
	      "Options:\n"
	      "  --key KEY                    a PEM public key or certificate; or the public half of a\n"
	      "                               PEM private key, a pkcs11: URI or an AWS KMS key ARN\n"
	      "  --rebuild                    rebuild the EIF the statement records and compare\n"
	      "  --kernel-bundle DIR          the rebuild's kernel bundle (default: as enclaver build)\n"
	      "  --odyn FILE                  the rebuild's odyn binary (default: $ENCLAVER_ODYN, else the\n"
	      "                               odyn beside enclaver)\n" CLI_OCI_USAGE
	      "  -q, --quiet                  no progress lines\n",
	      f);
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, OPT_KEY},
	    {"rebuild", no_argument, NULL, OPT_REBUILD},
	    {"kernel-bundle", required_argument, NULL, OPT_BUNDLE},
	    {"odyn", required_argument, NULL, OPT_ODYN},
	    CLI_OCI_LONG_OPTIONS,
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, OPT_HELP},
	    {0},
	};
	struct bld_verify_opts o = {0};
	bool quiet = false;
	const char *key_spec = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KEY: key_spec = optarg; break;
		case OPT_REBUILD: o.rebuild = true; break;
		case OPT_BUNDLE: o.kernel_bundle = optarg; break;
		case OPT_ODYN: o.odyn_path = optarg; break;
		case 'q': quiet = true; break;
		case OPT_HELP: verify_usage(stdout); return EXIT_OK;
		default: {
			int r = cli_oci_option("verify", c, optarg, &o.oci);
			if (r != 1)
				return r == 0 ? cli_usage_error("verify", "unknown option") : r;
			break;
		}
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("verify", "expected one image reference");
	if (!key_spec)
		return cli_usage_error("verify", "--key KEY is required");
	if ((o.kernel_bundle || o.odyn_path) && !o.rebuild)
		return cli_usage_error("verify", "--kernel-bundle and --odyn are for --rebuild");
	int rc = cli_oci_options_check("verify", &o.oci, quiet);
	if (rc)
		return rc;
	o.image = argv[optind];
	/* The rebuild takes odyn as `enclaver build` does. */
	const char *env_odyn = getenv("ENCLAVER_ODYN");
	if (o.rebuild && !o.odyn_path && env_odyn && *env_odyn)
		o.odyn_path = env_odyn;
	_cleanup_free_ char *odyn = o.rebuild ? cli_beside_self("odyn") : NULL;
	if (odyn && access(odyn, R_OK) == 0)
		o.odyn_default = odyn;
	struct err *err = NULL;
	if (keys_public_open(key_spec, &o.key, &err) < 0)
		return cli_fail(&err);
	_cleanup_json_ json_t *report = NULL;
	int r = bld_verify_image(&o, &report, &err);
	EVP_PKEY_free(o.key);
	if (r < 0 || cli_print_json(report, &err) < 0)
		return cli_fail(&err);
	if (json_is_true(json_object_get(report, "Valid")))
		return EXIT_OK;
	fprintf(stderr, "enclaver: error: %s is not verified: %s\n", o.image,
	        json_string_value(json_object_get(report, "Problem")));
	return EXIT_FAIL;
}
