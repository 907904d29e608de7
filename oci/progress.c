/* progress: what a transfer tells the person watching: one line per blob on
 * stderr (results go to stdout), nothing with --quiet. */
#include <stdarg.h>
#include <string.h>

#include "oci/internal.h"

void oci_progress(const struct oci_opts *opts, const char *fmt, ...)
{
	if (opts->quiet || log_get_level() < LOG_WARN)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* "\r\033[K" clears a status line a terminal may be showing. */
	fprintf(stderr, "%senclaver: %s\n", log_stderr_is_tty() ? "\r\033[K" : "", line);
}

void oci_human_size(int64_t n, char out[32])
{
	if (n >= 1 << 20)
		snprintf(out, 32, "%.1f MiB", (double)n / (1 << 20));
	else if (n >= 1 << 10)
		snprintf(out, 32, "%.1f KiB", (double)n / (1 << 10));
	else
		snprintf(out, 32, "%lld B", (long long)n);
}

char *oci_memdup_str(const void *data, size_t len)
{
	char *s = xmalloc(len + 1);
	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}
