/* cmd_sign: `enclaver sign IMAGE --key KEY`: a cosign-format signature of an image already in a
 * registry (builder/sign_image.c), with the key from a PEM file, a PKCS#11 URI or a KMS ARN. */
#include <getopt.h>
#include <string.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "cli/oci_opts.h"
#include "keys/keys.h"

enum { OPT_KEY = 256, OPT_HELP };

static void sign_usage(FILE *f)
{
	fputs("Usage: enclaver sign [options] IMAGE --key KEY\n"
	      "\n"
	      "Signs the manifest IMAGE names in its registry as cosign does: a simple-signing payload,\n"
	      "signed with KEY (ECDSA over its SHA-256), pushed as the image tagged sha256-<hex>.sig in\n"
	      "the same repository, beside the signatures already there. skopeo, podman and CRI-O verify it with a\n"
	      "policy.json sigstoreSigned requirement (docs/security.md). Prints what was signed as JSON.\n"
	      "\n"
	      "Options:\n"
	      "  --key KEY                    a PEM private key file, a pkcs11: URI or an AWS KMS key ARN\n"
	      "                               (docs/cli.md, \"Signing keys\")\n"
	      CLI_OCI_USAGE
	      "  -q, --quiet                  no progress lines\n",
	      f);
}

int cmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, OPT_KEY},
	    CLI_OCI_LONG_OPTIONS,
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, OPT_HELP},
	    {0},
	};
	struct oci_opts o = {0};
	bool quiet = false;
	const char *key_spec = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KEY: key_spec = optarg; break;
		case 'q': quiet = true; break;
		case OPT_HELP: sign_usage(stdout); return EXIT_OK;
		default: {
			int r = cli_oci_option("sign", c, optarg, &o);
			if (r != 1)
				return r == 0 ? cli_usage_error("sign", "unknown option") : r;
			break;
		}
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("sign", "expected one image reference");
	if (!key_spec)
		return cli_usage_error("sign", "--key KEY is required");
	int rc = cli_oci_options_check("sign", &o, quiet);
	if (rc)
		return rc;
	struct err *err = NULL;
	struct sign_key *key = NULL;
	if (sign_key_open(key_spec, &key, &err) < 0)
		return cli_fail(&err);
	struct bld_image_signature sig;
	int r = bld_sign_image(argv[optind], NULL, key, &o, &sig, &err);
	sign_key_free(key);
	if (r < 0)
		return cli_fail(&err);
	_cleanup_json_ json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "image", argv[optind], "digest", sig.digest,
	                                       "identity", sig.identity, "signature", sig.signature_ref);
	bld_image_signature_free(&sig);
	if (cli_print_json(doc, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}
