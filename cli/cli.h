/* cli: argument parsing and subcommands of the `enclaver` binary. Only this
 * layer prints errors and chooses exit codes. */
#ifndef ENCLAVER_CLI_H
#define ENCLAVER_CLI_H

#include "common/common.h"
#include "common/json.h"

/* Exit codes shared by every subcommand. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Prints the error once, as "enclaver: error: <chain>", frees it, returns EXIT_FAIL. */
int cli_fail(struct err **err);
/* Prints a usage complaint and the hint to run --help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command with one subcommand (`enclaver cache verify`, `enclaver kernel fetch`): runs fn on
 * `sub`'s arguments, prints usage for -h/--help (exit 0) or anything else (exit 2). */
int cli_one_subcommand(int argc, char **argv, const char *sub, int (*fn)(int argc, char **argv),
                       void (*usage)(FILE *f));
/* A file shipped with enclaver: NAME beside the running binary (`make` puts odyn and
 * enclaver-run.static in bin/ with enclaver). NULL when /proc/self/exe is unreadable; caller frees. */
char *cli_beside_self(const char *name);
/* Writes a JSON document to stdout as the reference tools do (serde_json pretty). */
int cli_print_json(const json_t *doc, struct err **err);

int cmd_eif(int argc, char **argv);
int cmd_describe_eif(int argc, char **argv);
int cmd_pcr(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_verify_attestation(int argc, char **argv);
int cmd_trust(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_emulate(int argc, char **argv);
int cmd_ramdisk(int argc, char **argv);
int cmd_kernel(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_manifest(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_enclaver_run(int argc, char **argv); /* the binary started as enclaver-run */
int cmd_ps(int argc, char **argv);
int cmd_stop(int argc, char **argv);

#endif
