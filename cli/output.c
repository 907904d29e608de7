/* output: how every command reports: errors once on stderr, usage complaints, JSON on stdout.
 * Apart from main.c so the static enclaver-run links without the command table. */
#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include "cli/cli.h"

int cli_fail(struct err **err)
{
	if (err && *err) {
		if (log_get_format() == LOG_FORMAT_JSON) /* enclaver run --log-format json */
			log_line_write(STDERR_FILENO, "", "host", "error", (*err)->msg, strlen((*err)->msg), NULL);
		else
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

int cli_one_subcommand(int argc, char **argv, const char *sub, int (*fn)(int argc, char **argv),
                       void (*usage)(FILE *f))
{
	if (argc >= 2 && strcmp(argv[1], sub) == 0) {
		optind = 0;
		return fn(argc - 1, argv + 1);
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return EXIT_OK;
	}
	usage(stderr);
	return EXIT_USAGE;
}
