/* odyn's entry point: as PID 1 it is the enclave's init (whatever the kernel
 * passed as arguments); otherwise it supervises the command given after "--". */
#include <string.h>

#include "odyn/odyn.h"

static void usage(void)
{
	fputs("usage: odyn [options] -- COMMAND [ARG...]\n"
	      "       odyn            (as PID 1: the enclave's init, arguments ignored; reads /cmd and /env)\n"
	      "see docs/odyn.md for the options\n",
	      stderr);
}

int main(int argc, char **argv)
{
	_cleanup_err_ struct err *e = NULL;
	switch (odyn_mode_choose(getpid(), argc, argv)) {
	case ODYN_MODE_INIT:
		odyn_init_main(&e);
		fprintf(stderr, "odyn init: %s\n", e ? e->msg : "returned");
		return ODYN_EXIT_FATAL; /* not reached when init succeeds */
	case ODYN_MODE_HELP: usage(); return 0;
	case ODYN_MODE_SUPERVISOR: break;
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
