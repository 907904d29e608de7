/* progress: draws what the library reports through oci_opts.progress (oci.h) on stderr, where the
 * person watching looks (results go to stdout): step lines prefixed "enclaver: ", and on a
 * terminal one status line redrawn in place ("\r", erase to the end of line) and cleared before
 * the next step line. */
#include <stdio.h>
#include <string.h>

#include "cli/oci_opts.h"

static void draw(void *ctx, enum oci_progress_kind kind, const char *text)
{
	bool tty = ctx != NULL;
	if (log_get_format() == LOG_FORMAT_JSON && kind != OCI_PROGRESS_LINE)
		return; /* a status line redrawn in place has no place among JSON lines */
	switch (kind) {
	case OCI_PROGRESS_LINE:
		if (log_get_format() == LOG_FORMAT_JSON) /* enclaver run IMAGE --log-format json */
			log_line_write(STDERR_FILENO, "", "host", "info", text, strlen(text), NULL);
		else
			fprintf(stderr, "%senclaver: %s\n", tty ? "\r\033[K" : "", text);
		break;
	case OCI_PROGRESS_STATUS: fprintf(stderr, "\r\033[K%s", text); break;
	case OCI_PROGRESS_CLEAR: fputs("\r\033[K", stderr); break;
	}
	fflush(stderr);
}

void cli_progress_install(struct oci_opts *o, bool quiet)
{
	static char tty_marker;
	if (quiet || log_get_level() < LOG_WARN) { /* --quiet, or enclaver -q CMD ... */
		o->progress = NULL;
		return;
	}
	o->progress = draw;
	o->progress_status = log_stderr_is_tty();
	o->progress_ctx = o->progress_status ? &tty_marker : NULL;
}
