/* oci_opts: parsing of the shared image-source options (cli/oci_opts.h). */
#include <string.h>

#include "cli/cli.h"
#include "cli/oci_opts.h"

int cli_oci_option(const char *cmd, int opt, const char *arg, struct oci_opts *o)
{
	switch (opt) {
	case CLI_OPT_PLATFORM: o->platform = arg; return 1;
	case CLI_OPT_CREDS: o->creds = arg; return 1;
	case CLI_OPT_INSECURE: o->insecure = true; return 1;
	case CLI_OPT_TLS_VERIFY:
		if (strcmp(arg, "false") == 0)
			o->insecure = true;
		else if (strcmp(arg, "true") == 0)
			o->insecure = false;
		else
			return cli_usage_error(cmd, "--tls-verify takes true or false, not \"%s\"", arg);
		return 1;
	case CLI_OPT_CERT_DIR: o->cert_dir = arg; return 1;
	case CLI_OPT_OFFLINE: o->offline = true; return 1;
	case CLI_OPT_CACHE_DIR: o->cache_dir = arg; return 1;
	default: return 0;
	}
}

int cli_oci_options_check(const char *cmd, struct oci_opts *o, bool quiet)
{
	if (o->platform) {
		struct oci_platform p;
		struct err *err = NULL;
		if (oci_platform_parse(o->platform, &p, &err) < 0) {
			int rc = cli_usage_error(cmd, "--platform: %s", err->msg);
			err_free(&err);
			return rc;
		}
		oci_platform_free(&p);
	}
	if (o->creds && strchr(o->creds, ':') == NULL)
		return cli_usage_error(cmd, "--creds takes USER:PASSWORD");
	cli_progress_install(o, quiet);
	return 0;
}
