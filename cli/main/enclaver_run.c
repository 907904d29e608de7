/* enclaver_run: the enclaver-run that release images carry at /usr/local/bin/enclaver-run, built
 * static like odyn so any base image (or none) can run it: `enclaver-run` for the files in
 * /enclave/, with no registry client inside (docs/run.md). */
#include "cli/cli.h"

int main(int argc, char **argv)
{
	argv[0] = "enclaver-run";
	return cmd_enclaver_run(argc, argv);
}
