/* logfmt: the one formatter of the lines a run prints about its enclave (`--log-format text|json`):
 * the host's own messages (log.c), the app's output and odyn's records from the log stream, and
 * the console. Text keeps today's prefixes; JSON is one object a line for log shippers. What the
 * enclave sends is untrusted: neither format lets it forge a line (docs/run.md, Log format). */
#include <string.h>
#include <time.h>

#include "common.h"

static enum log_format current_format = LOG_FORMAT_TEXT;

void log_set_format(enum log_format f)
{
	current_format = f;
}

enum log_format log_get_format(void)
{
	return current_format;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF), or 0 when the bytes there are not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

void log_json_escape(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned char c = p[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			size_t j = i;
			while (j < len && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\')
				j++;
			buf_append(b, s + i, j - i);
			i = j;
			continue;
		}
		switch (c) {
		case '"': buf_puts(b, "\\\""); i++; continue;
		case '\\': buf_puts(b, "\\\\"); i++; continue;
		case '\n': buf_puts(b, "\\n"); i++; continue;
		case '\r': buf_puts(b, "\\r"); i++; continue;
		case '\t': buf_puts(b, "\\t"); i++; continue;
		default: break;
		}
		if (c < 0x80) { /* the other control bytes, and DEL */
			char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
			buf_puts(b, u);
			i++;
			continue;
		}
		size_t n = utf8_seq_len(p + i, len - i);
		if (n == 0) {
			/* Each byte that starts no well-formed sequence is one U+FFFD: the line stays
			 * valid JSON and its length in characters stays bounded by its bytes. */
			buf_puts(b, "\\ufffd");
			i++;
		} else if (n == 3 && c == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
			/* U+2028/U+2029 end a line in JavaScript: escaped for readers that eval. */
			buf_puts(b, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
			i += 3;
		} else {
			buf_append(b, s + i, n);
			i += n;
		}
	}
}

void log_json_line(struct buf *b, const struct timespec *t, const char *source, const char *stream,
                   const char *level, const char *msg, size_t len)
{
	struct tm tm;
	time_t sec = t->tv_sec;
	gmtime_r(&sec, &tm);
	char ts[64];
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	         tm.tm_hour, tm.tm_min, tm.tm_sec, t->tv_nsec / 1000000);
	buf_puts(b, "{\"time\":\"");
	buf_puts(b, ts);
	buf_puts(b, "\",\"source\":\"");
	buf_puts(b, source);
	if (stream) {
		buf_puts(b, "\",\"stream\":\"");
		buf_puts(b, stream);
	}
	buf_puts(b, "\",\"level\":\"");
	buf_puts(b, level);
	buf_puts(b, "\",\"message\":\"");
	log_json_escape(b, msg, len);
	buf_puts(b, "\"}\n");
}

void log_text_escape(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			char x[5] = {'\\', 'x', hex[c >> 4], hex[c & 15], 0};
			buf_puts(b, x);
		} else
			buf_putc(b, (char)c);
	}
}

void log_line_format(struct buf *b, enum log_format f, const char *text_prefix, const char *source,
                     const char *level, const char *msg, size_t len)
{
	if (f == LOG_FORMAT_JSON) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		log_json_line(b, &now, source, NULL, level, msg, len);
		return;
	}
	log_text_lines(b, text_prefix, msg, len);
}

void log_text_lines(struct buf *b, const char *prefix, const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len;
	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		buf_puts(b, prefix);
		log_text_escape(b, p, (size_t)(stop - p));
		buf_putc(b, '\n');
		if (!nl || nl + 1 == end) /* a last LF adds no empty line */
			break;
		p = nl + 1;
	}
}

int log_line_write(int fd, const char *text_prefix, const char *source, const char *level, const char *msg,
                   size_t len, struct err **err)
{
	_cleanup_buf_ struct buf b = {0};
	log_line_format(&b, current_format, text_prefix, source, level, msg, len);
	/* One write per line keeps lines whole beside other writers of the same descriptor. */
	return io_write_full(fd, b.data, b.len, err);
}
