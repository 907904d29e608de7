/* cbor: the CBOR (RFC 8949) subset used by EIF signatures, COSE and Nitro
 * attestation documents. The decoder reads untrusted bytes: every length is
 * checked against what is left before it is used, and errors name the offset. */
#include <errno.h>
#include <string.h>

#include "common/common.h"
#include "common/cose.h"

void cbor_put_head(struct buf *b, enum cbor_major major, uint64_t value)
{
	uint8_t h[9];
	uint8_t m = (uint8_t)(major << 5);
	size_t n;
	if (value < 24) {
		h[0] = m | (uint8_t)value;
		n = 1;
	} else if (value <= 0xff) {
		h[0] = m | 24;
		h[1] = (uint8_t)value;
		n = 2;
	} else {
		int bytes = value <= 0xffff ? 2 : value <= 0xffffffffu ? 4 : 8;
		h[0] = m | (uint8_t)(bytes == 2 ? 25 : bytes == 4 ? 26 : 27);
		for (int i = 0; i < bytes; i++)
			h[1 + i] = (uint8_t)(value >> (8 * (bytes - 1 - i)));
		n = 1 + (size_t)bytes;
	}
	buf_append(b, h, n);
}

void cbor_put_bstr(struct buf *b, const void *data, size_t len)
{
	cbor_put_head(b, CBOR_BSTR, len);
	buf_append(b, data, len);
}

void cbor_put_tstr(struct buf *b, const char *s)
{
	cbor_put_head(b, CBOR_TSTR, strlen(s));
	buf_puts(b, s);
}

void cbor_put_byte_array(struct buf *b, const uint8_t *data, size_t len)
{
	cbor_put_head(b, CBOR_ARRAY, len);
	for (size_t i = 0; i < len; i++)
		cbor_put_head(b, CBOR_UINT, data[i]);
}

int cbor_read_head(struct cbor_reader *r, enum cbor_major *major, uint64_t *value, struct err **err)
{
	uint64_t at = r->base + r->off;
	if (r->off >= r->len)
		return err_set(err, EINVAL, "offset %llu: CBOR ends early", (unsigned long long)at);
	uint8_t ib = r->data[r->off++];
	uint8_t ai = ib & 31;
	*major = (enum cbor_major)(ib >> 5);
	if (*major == CBOR_SIMPLE && ai >= 25 && ai <= 27)
		return err_set(err, EINVAL, "offset %llu: CBOR floating-point values are not supported",
			       (unsigned long long)at);
	if (ai < 24) {
		*value = ai;
		return 0;
	}
	if (ai > 27)
		return err_set(err, EINVAL, "offset %llu: unsupported CBOR additional info %u (indefinite length?)",
			       (unsigned long long)at, (unsigned)ai);
	size_t n = (size_t)1 << (ai - 24);
	if (r->len - r->off < n)
		return err_set(err, EINVAL, "offset %llu: CBOR ends inside a %zu-byte length", (unsigned long long)at, n);
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | r->data[r->off + i];
	r->off += n;
	*value = v;
	return 0;
}

static const char *major_name(enum cbor_major m)
{
	static const char *const names[] = {"unsigned integer", "negative integer", "byte string", "text string",
					    "array",            "map",              "tag",         "simple value"};
	return names[m];
}

int cbor_expect(struct cbor_reader *r, enum cbor_major major, uint64_t *value, const char *what, struct err **err)
{
	uint64_t at = r->base + r->off;
	enum cbor_major got;
	if (cbor_read_head(r, &got, value, err) < 0)
		return err_wrap(err, "%s", what);
	if (got != major)
		return err_set(err, EINVAL, "offset %llu: %s: expected a CBOR %s, found a %s", (unsigned long long)at, what,
			       major_name(major), major_name(got));
	return 0;
}

int cbor_read_string(struct cbor_reader *r, enum cbor_major major, const uint8_t **data, size_t *len, const char *what,
		     struct err **err)
{
	uint64_t n;
	uint64_t at = r->base + r->off;
	if (cbor_expect(r, major, &n, what, err) < 0)
		return -1;
	if (n > r->len - r->off)
		return err_set(err, EINVAL, "offset %llu: %s: length %llu runs past the end of the section",
			       (unsigned long long)at, what, (unsigned long long)n);
	*data = r->data + r->off;
	*len = (size_t)n;
	r->off += (size_t)n;
	return 0;
}

int cbor_read_byte_array(struct cbor_reader *r, uint8_t **out, size_t *len, const char *what, struct err **err)
{
	uint64_t n;
	uint64_t at = r->base + r->off;
	if (cbor_expect(r, CBOR_ARRAY, &n, what, err) < 0)
		return -1;
	/* Each element takes at least one byte: a bound before allocating. */
	if (n > r->len - r->off)
		return err_set(err, EINVAL, "offset %llu: %s: %llu elements cannot fit in the section",
			       (unsigned long long)at, what, (unsigned long long)n);
	_cleanup_free_ uint8_t *bytes = xmalloc(n ? (size_t)n : 1);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t v;
		uint64_t elem_at = r->base + r->off;
		if (cbor_expect(r, CBOR_UINT, &v, what, err) < 0)
			return -1;
		if (v > 255)
			return err_set(err, EINVAL, "offset %llu: %s: element %llu is %llu, not a byte",
				       (unsigned long long)elem_at, what, (unsigned long long)i, (unsigned long long)v);
		bytes[i] = (uint8_t)v;
	}
	*out = steal_pointer(&bytes);
	*len = (size_t)n;
	return 0;
}

int cbor_skip(struct cbor_reader *r, struct err **err)
{
	/* An explicit stack of items still to skip per nesting level instead of
	 * recursion, so a hostile input cannot exhaust the stack; the depth
	 * counts nesting, not containers, so a long flat list of small arrays
	 * (an unknown field a newer peer added, say) skips fine. */
	enum { MAX_DEPTH = 16 };
	uint64_t left[MAX_DEPTH + 1];
	int depth = 0;
	left[0] = 1;
	while (depth >= 0) {
		if (left[depth] == 0) {
			depth--;
			continue;
		}
		enum cbor_major m;
		uint64_t v;
		uint64_t at = r->base + r->off;
		if (cbor_read_head(r, &m, &v, err) < 0)
			return -1;
		left[depth]--;
		switch (m) {
		case CBOR_BSTR:
		case CBOR_TSTR:
			if (v > r->len - r->off)
				return err_set(err, EINVAL, "offset %llu: string of %llu bytes runs past the end",
					       (unsigned long long)at, (unsigned long long)v);
			r->off += (size_t)v;
			break;
		case CBOR_ARRAY:
		case CBOR_MAP: {
			/* Every item takes at least one byte: a bound before counting. */
			if (v > r->len - r->off || (m == CBOR_MAP && v * 2 > r->len - r->off))
				return err_set(err, EINVAL, "offset %llu: %s of %llu entries cannot fit in what is left",
					       (unsigned long long)at, m == CBOR_MAP ? "map" : "array",
					       (unsigned long long)v);
			uint64_t items = m == CBOR_MAP ? v * 2 : v;
			if (items == 0)
				break;
			if (depth == MAX_DEPTH)
				return err_set(err, EINVAL, "offset %llu: nested more than %d levels deep",
					       (unsigned long long)at, MAX_DEPTH);
			left[++depth] = items;
			break;
		}
		case CBOR_TAG:
			left[depth]++; /* the tagged item follows, at the same level */
			break;
		default:
			break;
		}
	}
	return 0;
}
