/* cmd_run_image: `enclaver run`: cli/cmd_run.c's options plus the registry side, reading a
 * release image (any oci/ transport, through the cache) for its EIF and manifest. */
#include "builder/builder.h"
#include "cli/run.h"

static int fetch_release(void *ctx, const char *image, const char *tmp, const char *eif, const char *yaml,
                         struct err **err)
{
	const struct oci_opts *opts = ctx;
	struct bld_image_file files[] = {{.path = BLD_RELEASE_EIF_PATH, .out = eif},
	                                 {.path = "/enclave/enclaver.yaml", .out = yaml}};
	return bld_image_files_extract(image, opts, NULL, files, 2, tmp, NULL, err);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = {.cmd = "run", .run = {.fetch = fetch_release}};
	o.run.fetch_ctx = &o.oci;
	int r = run_parse(argc, argv, false, &o);
	if (r >= 0) {
		free(o.ports);
		return r;
	}
	return run_main(&o);
}
