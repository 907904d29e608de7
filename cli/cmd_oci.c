/* cmd_oci: `enclaver pull`, `push`, `copy` and `inspect`: images between
 * registries, OCI layouts, docker-archive tarballs and the blob cache. */
#include <getopt.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/oci_opts.h"
#include "oci/oci.h"

enum {
	OPT_OUTPUT = 256,
	OPT_PARALLEL,
	OPT_CHUNK_SIZE,
	OPT_ALL,
	OPT_HELP,
};

static void oci_usage(const char *cmd, FILE *f)
{
	if (strcmp(cmd, "pull") == 0)
		fputs("Usage: enclaver pull [options] REF [--output DEST]\n"
		      "Fetches an image into the blob cache (and DEST, e.g. oci:DIR[:TAG], when given).\n",
		      f);
	else if (strcmp(cmd, "inspect") == 0)
		fputs("Usage: enclaver inspect [options] REF\n"
		      "Prints the image's digests, manifest, config, layers and platforms as JSON.\n",
		      f);
	else
		fprintf(
		    f,
		    "Usage: enclaver %s [options] SRC DEST\n"
		    "Copies an image from any transport to a registry or an OCI layout; only missing blobs travel.\n",
		    cmd);
	fputs("\nReferences: [docker://]NAME[:TAG][@DIGEST], oci:DIR[:TAG], docker-archive:FILE[:NAME:TAG|:@N]\n"
	      "\nOptions:\n"
	      CLI_OCI_USAGE
	      "                               (--platform defaults to this host's)\n"
	      "  --all                        copy a multi-platform index whole: every image, same index digest\n"
	      "  --parallel N                 concurrent blob transfers, downloads and uploads (default 6)\n"
	      "  --chunk-size BYTES           push blobs above this size in PATCH chunks (default 64 MiB)\n"
	      "  -q, --quiet                  no progress lines\n",
	      f);
}

static int print_result(const char *src, const char *dst, const struct oci_copy_result *res, struct err **err)
{
	_cleanup_json_ json_t *doc =
	    json_pack("{s:s, s:s?, s:s, s:s, s:{s:i, s:i, s:i}, s:I}", "source", src, "destination", dst, "digest",
	              res->manifest_digest, "mediaType", res->media_type, "blobs", "copied", res->blobs_sent, "skipped",
	              res->blobs_skipped, "mounted", res->blobs_mounted, "bytesCopied", (json_int_t)res->bytes_sent);
	return cli_print_json(doc, err);
}

static int run(int argc, char **argv)
{
	const char *cmd = argv[0];
	static const struct option opts[] = {
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    CLI_OCI_LONG_OPTIONS,
	    {"parallel", required_argument, NULL, OPT_PARALLEL},
	    {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
	    {"all", no_argument, NULL, OPT_ALL},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, OPT_HELP},
	    {0},
	};
	struct oci_opts o = {0};
	bool quiet = false;
	const char *output = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "qo:", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
		case OPT_OUTPUT: output = optarg; break;
		case OPT_PARALLEL: {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 64)
				return cli_usage_error(cmd, "--parallel takes 1 to 64, not \"%s\"", optarg);
			o.parallel = (int)n;
			break;
		}
		case OPT_CHUNK_SIZE: {
			char *end;
			long long n = strtoll(optarg, &end, 10);
			if (*end || n < 1024)
				return cli_usage_error(
				    cmd, "--chunk-size takes a byte count of at least 1024, not \"%s\"", optarg);
			o.chunk_size = n;
			break;
		}
		case OPT_ALL: o.all = true; break;
		case 'q': quiet = true; break;
		case OPT_HELP: oci_usage(cmd, stdout); return EXIT_OK;
		default: {
			int r = cli_oci_option(cmd, c, optarg, &o);
			if (r != 1)
				return r == 0 ? cli_usage_error(cmd, "unknown option") : r;
			break;
		}
		}
	}
	int rc = cli_oci_options_check(cmd, &o, quiet);
	if (rc)
		return rc;
	int nargs = argc - optind;
	struct err *err = NULL;
	if (strcmp(cmd, "inspect") == 0) {
		o.progress = NULL; /* fetching a config is no news */
		if (nargs != 1)
			return cli_usage_error(cmd, "expected one image reference");
		_cleanup_json_ json_t *doc = NULL;
		if (oci_inspect(argv[optind], &o, &doc, &err) < 0 || cli_print_json(doc, &err) < 0)
			return cli_fail(&err);
		return EXIT_OK;
	}
	const char *src, *dst;
	if (strcmp(cmd, "pull") == 0) {
		if (nargs != 1)
			return cli_usage_error(cmd, "expected one image reference");
		src = argv[optind];
		dst = output;
	} else {
		if (nargs != 2)
			return cli_usage_error(cmd, "expected SRC and DEST");
		if (output)
			return cli_usage_error(cmd, "--output is for pull; give DEST as the second argument");
		src = argv[optind];
		dst = argv[optind + 1];
	}
	struct oci_copy_result res;
	if (oci_copy(src, dst, &o, &res, &err) < 0)
		return cli_fail(&err);
	int r = print_result(src, dst, &res, &err);
	oci_copy_result_free(&res);
	return r < 0 ? cli_fail(&err) : EXIT_OK;
}

int cmd_pull(int argc, char **argv)
{
	return run(argc, argv);
}

int cmd_push(int argc, char **argv)
{
	return run(argc, argv);
}

int cmd_copy(int argc, char **argv)
{
	return run(argc, argv);
}

int cmd_inspect(int argc, char **argv)
{
	return run(argc, argv);
}
