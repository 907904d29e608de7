/* run: what `enclaver run` (cli/cmd_run_image.c) and `enclaver-run` (cli/cmd_run.c) share: option
 * parsing into runtime's run_options (runtime/run.h runs the enclave). The split keeps the
 * registry client out of the static enclaver-run that release images carry. */
#ifndef ENCLAVER_CLI_RUN_H
#define ENCLAVER_CLI_RUN_H

#include "cli/cli.h"
#include "oci/oci.h"
#include "runtime/run.h"

struct run_opts {
	const char *cmd; /* "run" or "enclaver-run", for messages */
	struct run_options run;
	struct outer_port *ports; /* -p, owned */
	struct oci_opts oci;      /* how `enclaver run` pulls IMAGE (run.fetch_ctx) */
	const char *verify_key;   /* --verify-key: IMAGE must be signed by this key (`enclaver run` only) */
};

/* Parses the options of `enclaver run` (entrypoint false) or `enclaver-run` (true). Returns an
 * exit code to end with (help, usage error), or -1 to go on. */
int run_parse(int argc, char **argv, bool entrypoint, struct run_opts *o);
/* Runs the enclave to its end, printing the launch and any error; returns the exit code. Frees
 * o->ports. */
int run_main(struct run_opts *o);

#endif
