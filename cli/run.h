/* run: what `enclaver run` (cli/cmd_run_image.c) and `enclaver-run` (cli/cmd_run.c) share. The
 * split keeps the registry client out of the static enclaver-run that release images carry. */
#ifndef ENCLAVER_CLI_RUN_H
#define ENCLAVER_CLI_RUN_H

#include "cli/cli.h"
#include "oci/oci.h"
#include "runtime/outer.h"

struct run_opts {
	const char *cmd; /* "run" or "enclaver-run", for messages */
	const char *image, *manifest_file, *eif, *manifest;
	struct outer_port *ports;
	size_t n_ports;
	unsigned cpu_count, memory_mb;
	uint64_t cid;
	bool debug_mode;
	const char *verify;
	const char *launcher;
	enum emu_accel accel; /* --accel, for the emulator */
	const char *name;
	struct oci_opts oci;
	/* Reads a release image's /enclave/application.eif and /enclave/enclaver.yaml into eif and
	 * yaml; set by `enclaver run` (cli/cmd_run_image.c), NULL in the static enclaver-run, which
	 * reads local files only. */
	int (*fetch_release)(const char *image, const struct oci_opts *opts, const char *tmp, const char *eif,
	                     const char *yaml, struct err **err);
};

/* Parses the options of `enclaver run` (entrypoint false) or `enclaver-run` (true). Returns an
 * exit code to end with (help, usage error), or -1 to go on. */
int run_parse(int argc, char **argv, bool entrypoint, struct run_opts *o);
/* Runs the enclave to its end; returns the exit code. Frees o->ports. */
int run_main(struct run_opts *o);

#endif
