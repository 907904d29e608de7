/* cmd_verify: `enclaver verify IMAGE --key KEY`: checks a release image in a registry against the
 * key that signed it (builder/verify.c) and prints the report; exit 0 when every check passed, 1
 * when one failed (the report says which) or when the checks could not run. */
#include <getopt.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "cli/oci_opts.h"
#include "keys/keys.h"

enum { OPT_KEY = 256, OPT_HELP };

static void verify_usage(FILE *f)
{
	fputs("Usage: enclaver verify [options] IMAGE --key KEY\n"
	      "\n"
	      "Checks a release image in a registry: a cosign-format signature of its manifest digest by\n"
	      "KEY (the simple-signing payload at the sha256-<hex>.sig tag, naming this digest and this\n"
	      "repository), then the EIF inside the image of that digest, read whole (structure, CRC,\n"
	      "its own signature) and measured. Prints a JSON report {\"Valid\", \"Image\", \"Digest\",\n"
	      "\"Checks\", \"Problem\", \"Signature\", \"Measurements\"}. Exit status: 0 every check\n"
	      "passed; 1 one failed (the first problem also on stderr) or the checks could not run.\n"
	      "\n"
	      "Options:\n"
	      "  --key KEY                    a PEM public key or certificate; or the public half of a\n"
	      "                               PEM private key, a pkcs11: URI or an AWS KMS key ARN\n" CLI_OCI_USAGE
	      "  -q, --quiet                  no progress lines\n",
	      f);
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, OPT_KEY},
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
	int rc = cli_oci_options_check("verify", &o.oci, quiet);
	if (rc)
		return rc;
	o.image = argv[optind];
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
