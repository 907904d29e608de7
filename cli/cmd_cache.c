/* cmd_cache: `enclaver cache verify`: re-hashes what the cache holds (blobs by their digests,
 * customer ramdisks by the PCR2 recorded when they were made) and moves aside what fails, so
 * the next pull or build fetches or makes it anew (docs/cli.md#enclaver-cache-verify). */
#include <getopt.h>
#include <string.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "oci/oci.h"

static void cache_usage(FILE *f)
{
	fputs("Usage: enclaver cache verify [--cache-dir DIR]\n"
	      "\n"
	      "Re-hashes every blob of the cache against its digest and measures every cached customer\n"
	      "ramdisk against the PCR2 recorded when it was made. A blob that fails is moved to\n"
	      "CACHE/quarantine/ (the next pull fetches it anew); a ramdisk that fails is removed (the\n"
	      "next build makes it anew). Each is named on stderr. Exits 1 when anything failed.\n"
	      "\n"
	      "Options:\n"
	      "  --cache-dir DIR   the cache (default $ENCLAVER_CACHE_DIR, else $XDG_CACHE_HOME/enclaver,\n"
	      "                    else ~/.cache/enclaver)\n",
	      f);
}

static int cache_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cache-dir", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {0}};
	const char *cache_dir = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cache_dir = optarg; break;
		case 'h': cache_usage(stdout); return EXIT_OK;
		default: return cli_usage_error("cache verify", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage_error("cache verify", "unexpected argument \"%s\"", argv[optind]);
	_cleanup_err_ struct err *err = NULL;
	struct oci_cache cache = {0};
	if (oci_cache_open(cache_dir, &cache, &err) < 0)
		return cli_fail(&err);
	size_t blobs = 0, bad_blobs = 0, ramdisks = 0, bad_ramdisks = 0;
	int r = oci_cache_verify_all(&cache, &blobs, &bad_blobs, &err);
	if (r == 0)
		r = bld_ramdisk_cache_verify(cache.dir, &ramdisks, &bad_ramdisks, &err);
	printf("%s: %zu blob(s), %zu corrupt; %zu customer ramdisk(s), %zu corrupt\n", cache.dir, blobs, bad_blobs,
	       ramdisks, bad_ramdisks);
	oci_cache_close(&cache);
	if (r < 0)
		return cli_fail(&err);
	if (bad_blobs + bad_ramdisks > 0) {
		err_set(&err, EBADMSG, "%zu corrupt cache entr%s moved aside (named above)", bad_blobs + bad_ramdisks,
		        bad_blobs + bad_ramdisks == 1 ? "y" : "ies");
		return cli_fail(&err);
	}
	return EXIT_OK;
}

int cmd_cache(int argc, char **argv)
{
	return cli_one_subcommand(argc, argv, "verify", cache_verify, cache_usage);
}
