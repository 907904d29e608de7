/* logstream: encoding and decoding of the log stream (common/logstream.h): app bytes, and
 * records that carry odyn's own messages to the host under their own tag. */
#include <string.h>

#include "wire/logstream.h"

void logstream_record_append(struct buf *b, const char *tag, const char *text)
{
	size_t tl = strlen(tag);
	size_t room = LOGSTREAM_RECORD_MAX - tl - 3; /* RS, space, LF */
	buf_putc(b, LOGSTREAM_RS);
	buf_puts(b, tag);
	buf_putc(b, ' ');
	for (size_t i = 0; text[i] && i < room; i++) {
		unsigned char c = (unsigned char)text[i];
		buf_putc(b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
	}
	buf_putc(b, '\n');
}

void logstream_app_sanitize(char *data, size_t len)
{
	char *p = data;
	while ((p = memchr(p, LOGSTREAM_RS, len - (size_t)(p - data))) != NULL)
		*p++ = LOGSTREAM_RS_SUBST;
}

static void record_done(struct logstream_reader *r, const struct logstream_sink *sink)
{
	const char *d = r->rec.data ? r->rec.data : "";
	size_t n = r->rec.len, tl = 0;
	while (tl < n && tl <= LOGSTREAM_TAG_MAX && d[tl] != ' ') {
		char c = d[tl];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			break;
		tl++;
	}
	if (tl == 0 || tl > LOGSTREAM_TAG_MAX || tl >= n || d[tl] != ' ')
		sink->record(sink->arg, d, 0, d, n);
	else
		sink->record(sink->arg, d, tl, d + tl + 1, n - tl - 1);
	r->rec.len = 0;
}

static void app_flush(struct logstream_reader *r, const struct logstream_sink *sink)
{
	sink->app_line(sink->arg, r->app.data ? r->app.data : "", r->app.len);
	r->app.len = 0;
}

void logstream_reader_feed(struct logstream_reader *r, const char *data, size_t n, bool eof,
                           const struct logstream_sink *sink)
{
	size_t i = 0;
	while (i < n) {
		if (r->in_rec) {
			const char *nl = memchr(data + i, '\n', n - i);
			size_t end = nl ? (size_t)(nl - data) : n;
			if (!r->rec_skip) {
				size_t take = end - i, room = LOGSTREAM_RECORD_MAX - 2 - r->rec.len;
				if (take > room) {
					take = room;
					r->rec_skip = true;
				}
				buf_append(&r->rec, data + i, take);
			}
			if (!nl)
				return;
			record_done(r, sink);
			r->in_rec = r->rec_skip = false;
			i = end + 1;
			continue;
		}
		/* App bytes up to the next LF or RS, in one memchr pass each. */
		const char *nl = memchr(data + i, '\n', n - i);
		const char *rs = memchr(data + i, LOGSTREAM_RS, (nl ? (size_t)(nl - data) : n) - i);
		size_t end = rs ? (size_t)(rs - data) : nl ? (size_t)(nl - data) : n;
		while (end - i > 0) { /* never more than app_line_max pending */
			size_t room = sink->app_line_max - r->app.len;
			size_t take = end - i < room ? end - i : room;
			buf_append(&r->app, data + i, take);
			i += take;
			if (r->app.len >= sink->app_line_max)
				app_flush(r, sink);
		}
		if (rs) {
			r->in_rec = true;
			i++;
		} else if (nl) {
			app_flush(r, sink);
			i++;
		}
	}
	if (eof && r->app.len > 0)
		app_flush(r, sink);
}

void logstream_reader_free(struct logstream_reader *r)
{
	buf_free(&r->app);
	buf_free(&r->rec);
	memset(r, 0, sizeof(*r));
}
