/* logstream: the wire format of the log stream (vsock 17001), owned here alone: odyn writes it,
 * the host's runtime reads it. App output as is, plus tagged records for odyn's own messages. */
#ifndef ENCLAVER_LOGSTREAM_H
#define ENCLAVER_LOGSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"

/* A record: RS, a tag of [a-z0-9-] (1-16 bytes), one space, text without control bytes, LF.
 * It may come between any two bytes of the app's output, also inside an app line, which then
 * goes on after the record. At most LOGSTREAM_RECORD_MAX bytes, RS and LF included. */
#define LOGSTREAM_RS         0x1e
#define LOGSTREAM_RECORD_MAX 1024
#define LOGSTREAM_TAG_MAX    16
/* What an RS byte in the app's own output is sent as (ASCII SUB): the app cannot forge records. */
#define LOGSTREAM_RS_SUBST 0x1a
#define LOGSTREAM_TAG_ODYN "odyn"

/* Appends one record to b; the text is cut to fit, control bytes in it become spaces. */
void logstream_record_append(struct buf *b, const char *tag, const char *text);
/* Replaces RS bytes in the app's output (in place) before it goes on the stream. */
void logstream_app_sanitize(char *data, size_t len);

/* The reader's side: splits the stream into app lines and records. Whoever owns it frees it
 * with logstream_reader_free. */
struct logstream_reader {
	struct buf app; /* an app line not yet complete */
	struct buf rec; /* a record not yet complete (the bytes after RS) */
	bool in_rec;
	bool rec_skip; /* a record grew past LOGSTREAM_RECORD_MAX: the rest up to LF is dropped */
};
struct logstream_sink {
	/* An app line (without LF); a line longer than app_line_max comes in pieces. */
	void (*app_line)(void *arg, const char *line, size_t len);
	/* A record; tag_len 0 when its tag was malformed (the text is then all of it). */
	void (*record)(void *arg, const char *tag, size_t tag_len, const char *text, size_t len);
	void *arg;
	size_t app_line_max;
};
/* Feeds bytes; at eof a last app line without LF is passed on (an unfinished record is not). */
void logstream_reader_feed(struct logstream_reader *r, const char *data, size_t n, bool eof,
                           const struct logstream_sink *sink);
void logstream_reader_free(struct logstream_reader *r);

#endif
