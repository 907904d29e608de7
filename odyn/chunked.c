/* chunked: decodes an HTTP/1.1 chunked body (RFC 9112 section 7.1) as the KMS proxy receives one
 * whole from upstream: strictly (CRLF only, hex sizes, checked extensions and trailers), in place. */
#include <errno.h>
#include <string.h>

#include "odyn/internal.h"

/* At most 16 hex digits: a size past that cannot be real (and would overflow). */
#define SIZE_DIGITS_MAX 16

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A field or extension byte: visible ASCII, space, tab or obs-text; never CR, LF or other controls. */
static bool is_field_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* The offset of the CRLF ending the line that starts at pos, or len when there is none yet;
 * -1 (with *bad set) when a bare CR, a bare LF or a control byte comes first. */
static size_t line_end(const char *d, size_t len, size_t pos, size_t *bad)
{
	*bad = (size_t)-1;
	for (size_t i = pos; i < len; i++) {
		if (d[i] == '\r') {
			if (i + 1 < len && d[i + 1] != '\n')
				*bad = i;
			return i;
		}
		if (!is_field_byte((unsigned char)d[i])) {
			*bad = i;
			return i;
		}
	}
	return len;
}

int http_chunked_decode(char *data, size_t len, size_t max, size_t *out_len, struct err **err)
{
	size_t pos = 0, out = 0, chunk = 0;
	for (;; chunk++) {
		/* chunk-size [ chunk-ext ] CRLF */
		size_t start = pos, size = 0;
		int v;
		while (pos < len && (v = hex_digit_value(data[pos])) >= 0) {
			if (pos - start == SIZE_DIGITS_MAX)
				return err_set(err, EPROTO,
				               "chunked body: offset %zu: chunk size has more than %d hex digits",
				               start, SIZE_DIGITS_MAX);
			size = size * 16 + (size_t)v;
			pos++;
		}
		if (pos == len)
			return err_set(err, EPROTO, "chunked body: ends at offset %zu in the size line of chunk %zu",
			               pos, chunk);
		if (pos == start)
			return err_set(err, EPROTO, "chunked body: offset %zu: expected a hex chunk size", pos);
		size_t bad, eol = line_end(data, len, pos, &bad);
		if (bad != (size_t)-1)
			return err_set(err, EPROTO,
			               "chunked body: offset %zu: bad byte 0x%02x in the size line of chunk %zu", bad,
			               (unsigned char)data[bad], chunk);
		if (eol + 1 >= len)
			return err_set(err, EPROTO, "chunked body: ends at offset %zu in the size line of chunk %zu",
			               len, chunk);
		if (eol > pos) {
			/* Extensions: optional blanks, then ';'. Their meaning is ignored (RFC 9112 7.1.1). */
			size_t k = pos;
			while (k < eol && (data[k] == ' ' || data[k] == '\t'))
				k++;
			if (k == eol || data[k] != ';')
				return err_set(err, EPROTO,
				               "chunked body: offset %zu: expected ';' or CRLF after the chunk size",
				               k);
		}
		pos = eol + 2;
		if (size == 0)
			break;
		if (size > max - out)
			return err_set(err, E2BIG, "chunked body: chunk %zu of %zu bytes takes the body over %zu bytes",
			               chunk, size, max);
		if (size > len - pos)
			return err_set(err, EPROTO,
			               "chunked body: ends at offset %zu inside chunk %zu (%zu of %zu bytes)", len,
			               chunk, len - pos, size);
		memmove(data + out, data + pos, size);
		out += size;
		pos += size;
		if (len - pos < 2)
			return err_set(err, EPROTO, "chunked body: ends at offset %zu after the data of chunk %zu", len,
			               chunk);
		if (data[pos] != '\r' || data[pos + 1] != '\n')
			return err_set(err, EPROTO, "chunked body: offset %zu: chunk %zu is longer than its size (%zu)",
			               pos, chunk, size);
		pos += 2;
	}
	/* trailer-section: field lines, then an empty line. They are checked and dropped. */
	for (;;) {
		size_t bad, eol = line_end(data, len, pos, &bad);
		if (bad != (size_t)-1)
			return err_set(err, EPROTO, "chunked body: offset %zu: bad byte 0x%02x in the trailer", bad,
			               (unsigned char)data[bad]);
		if (eol + 1 >= len)
			return err_set(err, EPROTO, "chunked body: ends at offset %zu in the trailer", len);
		if (eol == pos) {
			pos += 2;
			break;
		}
		size_t k = pos;
		while (k < eol && is_tchar(data[k]))
			k++;
		if (k == pos || k == eol || data[k] != ':')
			return err_set(err, EPROTO, "chunked body: offset %zu: a trailer line that is not a field",
			               pos);
		pos = eol + 2;
	}
	if (pos != len)
		return err_set(err, EPROTO, "chunked body: %zu bytes after the last chunk", len - pos);
	*out_len = out;
	return 0;
}
