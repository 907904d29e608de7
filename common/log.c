/* log: leveled messages on stderr. The level is the one piece of process-wide
 * mutable state the project allows (set once by the CLI from -v / -q). */
#include <unistd.h>

#include "common.h"

static enum log_level current_level = LOG_WARN;

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

bool log_stderr_is_tty(void)
{
	return isatty(STDERR_FILENO) == 1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	va_list ap;
	if (level > current_level)
		return;
	/* One fprintf per line keeps lines whole when several threads log. */
	char line[4096];
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "enclaver: %s: %s\n", names[level], line);
}
