/* odyn's entry point: as PID 1 without a command it is the enclave's init;
 * otherwise it supervises the command given after "--". */
#include <string.h>

#include "odyn/odyn.h"

static void usage(void)
{
	fputs("usage: odyn [options] -- COMMAND [ARG...]\n"
	      "       odyn            (as PID 1: the enclave's init; reads /cmd and /env)\n"
	      "see docs/odyn.md for the options\n",
	      stderr);
}

int main(int argc, char **argv)
{
	_cleanup_err_ struct err *e = NULL;
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage();
		return 0;
	}
	if (getpid() == 1 && (argc == 1 || (argc == 2 && strcmp(argv[1], "init") == 0))) {
		odyn_init_main(&e);
		fprintf(stderr, "odyn init: %s\n", e ? e->msg : "returned");
		return ODYN_EXIT_FATAL; /* not reached when init succeeds */
	}
	struct odyn_config c;
	odyn_config_init(&c);
	if (odyn_config_parse_args(&c, argc - 1, argv + 1, &e) < 0) {
		fprintf(stderr, "odyn: %s\n", e->msg);
		odyn_config_free(&c);
		return 2;
	}
	if (c.argv == NULL) {
		usage();
		odyn_config_free(&c);
		return 2;
	}
	int rc = odyn_run(&c, &e);
	odyn_config_free(&c);
	if (rc < 0) {
		fprintf(stderr, "odyn: %s\n", e->msg);
		return ODYN_EXIT_FATAL;
	}
	return rc;
}
