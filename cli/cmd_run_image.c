/* cmd_run_image: `enclaver run`: cli/cmd_run.c's runner plus the registry side, reading a
 * release image (any oci/ transport, through the cache) for its EIF and manifest. */
#include "builder/builder.h"
#include "cli/run.h"

static int fetch_release(const char *image, const struct oci_opts *opts, const char *tmp, const char *eif,
                         const char *yaml, struct err **err)
{
	struct bld_image_file files[] = {{.path = "/enclave/application.eif", .out = eif},
	                                 {.path = "/enclave/enclaver.yaml", .out = yaml}};
	return bld_image_files_extract(image, opts, files, 2, tmp, NULL, err);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = {.cmd = "run", .fetch_release = fetch_release};
	int r = run_parse(argc, argv, false, &o);
	if (r >= 0) {
		free(o.ports);
		return r;
	}
	return run_main(&o);
}
