/* oci_opts: the image-source options every command that reads or writes images shares
 * (--platform, --creds, --tls-verify/--insecure, --cert-dir, --offline, --cache-dir), parsed and
 * documented once. A command puts CLI_OCI_LONG_OPTIONS in its getopt_long table, passes each
 * option it does not know itself to cli_oci_option, and prints CLI_OCI_USAGE in its help. */
#ifndef ENCLAVER_CLI_OCI_OPTS_H
#define ENCLAVER_CLI_OCI_OPTS_H

#include <getopt.h>

#include "oci/oci.h"

enum {
	CLI_OPT_PLATFORM = 0x1000,
	CLI_OPT_CREDS,
	CLI_OPT_INSECURE,
	CLI_OPT_TLS_VERIFY,
	CLI_OPT_CERT_DIR,
	CLI_OPT_OFFLINE,
	CLI_OPT_CACHE_DIR,
};

#define CLI_OCI_LONG_OPTIONS                                                                                         \
	{"platform", required_argument, NULL, CLI_OPT_PLATFORM}, {"creds", required_argument, NULL, CLI_OPT_CREDS},   \
	    {"insecure", no_argument, NULL, CLI_OPT_INSECURE},                                                        \
	    {"tls-verify", required_argument, NULL, CLI_OPT_TLS_VERIFY},                                              \
	    {"cert-dir", required_argument, NULL, CLI_OPT_CERT_DIR}, {"offline", no_argument, NULL, CLI_OPT_OFFLINE}, \
	    {"cache-dir", required_argument, NULL, CLI_OPT_CACHE_DIR}

#define CLI_OCI_USAGE                                                                                      \
	"  --platform OS/ARCH[/VARIANT] which image of a multi-platform index\n"                           \
	"  --creds USER:PASSWORD        registry credentials (else auth.json / docker config; docs/oci.md)\n" \
	"  --tls-verify=false, --insecure  no TLS verification; plain HTTP allowed (test registries)\n"    \
	"  --cert-dir DIR               trust the CA certificates (*.crt) in DIR\n"                         \
	"  --offline                    no network: the blob cache and local layouts/archives only\n"      \
	"  --cache-dir DIR              blob cache (default $XDG_CACHE_HOME/enclaver)\n"

/* Applies option `opt` (its argument `arg`) to *o. Returns 1 when it was one of ours, 0 when it
 * is not (the command handles it), or EXIT_USAGE after printing the complaint for `cmd`. */
int cli_oci_option(const char *cmd, int opt, const char *arg, struct oci_opts *o);
/* Checks the parsed options as a whole (--platform's syntax, --creds' form) and installs the
 * progress display unless `quiet` (the command's --quiet) or the global -q; 0 or EXIT_USAGE after
 * printing the complaint. */
int cli_oci_options_check(const char *cmd, struct oci_opts *o, bool quiet);
/* The progress display on stderr (cli/progress.c); none when quiet. */
void cli_progress_install(struct oci_opts *o, bool quiet);

#endif
