/* output: how every command reports: errors once on stderr, usage complaints, JSON on stdout.
 * Apart from main.c so the static enclaver-run links without the command table. */
#include <stdarg.h>

#include "cli/cli.h"

int cli_fail(struct err **err)
{
	if (err && *err) {
		fprintf(stderr, "enclaver: error: %s\n", (*err)->msg);
		err_free(err);
	}
	return EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "enclaver %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'enclaver %s --help'.\n", cmd);
	return EXIT_USAGE;
}

int cli_print_json(const json_t *doc, struct err **err)
{
	_cleanup_buf_ struct buf out = {0};
	if (json_serde_write(&out, doc, JSON_SERDE_PRETTY, err) < 0)
		return -1;
	buf_putc(&out, '\n');
	if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0)
		return err_sys(err, "write to stdout");
	return 0;
}
