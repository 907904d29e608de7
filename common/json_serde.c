/* json_serde: writes JSON byte-for-byte as Rust's serde_json does, because
 * EIF metadata and the reference tools' outputs are defined by it. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "common/json.h"

static void write_string(struct buf *out, const char *s, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	buf_putc(out, '"');
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				memcpy(u, "\\u00", 4);
				u[4] = digits[c >> 4];
				u[5] = digits[c & 15];
				u[6] = '\0';
				esc = u;
			}
		}
		if (esc == NULL)
			continue;
		buf_append(out, s + start, i - start);
		buf_puts(out, esc);
		start = i + 1;
	}
	buf_append(out, s + start, len - start);
	buf_putc(out, '"');
}

/* ryu's "pretty" layout of a shortest round-trip decimal: digits d1..dn with
 * value 0.d1..dn * 10^kk. */
static void write_real(struct buf *out, double v)
{
	if (!isfinite(v)) {
		buf_puts(out, "null"); /* what serde_json prints for NaN/inf */
		return;
	}
	if (v == 0) {
		buf_puts(out, signbit(v) ? "-0.0" : "0.0");
		return;
	}
	/* Shortest precision that reads back to the same double. */
	char tmp[40];
	for (int prec = 0; prec <= 16; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* tmp = "[-]d.ddde[+-]xx" */
	const char *p = tmp;
	if (*p == '-') {
		buf_putc(out, '-');
		p++;
	}
	char digits[24];
	int n = 0;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[n++] = *p;
	while (n > 1 && digits[n - 1] == '0')
		n--;
	int exp10 = atoi(p + 1);
	int kk = exp10 + 1; /* value = 0.digits * 10^kk */
	int k = kk - n;     /* value = digits * 10^k */
	if (k >= 0 && kk <= 16) {
		buf_append(out, digits, (size_t)n);
		for (int i = 0; i < k; i++)
			buf_putc(out, '0');
		buf_puts(out, ".0");
	} else if (kk > 0 && kk <= 16) {
		buf_append(out, digits, (size_t)kk);
		buf_putc(out, '.');
		buf_append(out, digits + kk, (size_t)(n - kk));
	} else if (kk > -5 && kk <= 0) {
		buf_puts(out, "0.");
		for (int i = 0; i < -kk; i++)
			buf_putc(out, '0');
		buf_append(out, digits, (size_t)n);
	} else {
		buf_putc(out, digits[0]);
		if (n > 1) {
			buf_putc(out, '.');
			buf_append(out, digits + 1, (size_t)(n - 1));
		}
		buf_printf(out, "e%d", kk - 1);
	}
}

static void newline_indent(struct buf *out, int depth)
{
	buf_putc(out, '\n');
	for (int i = 0; i < depth; i++)
		buf_puts(out, "  ");
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int write_value(struct buf *out, const json_t *v, unsigned flags, int depth, struct err **err)
{
	bool pretty = flags & JSON_SERDE_PRETTY;
	if (depth > 128)
		return err_set(err, EINVAL, "JSON nested deeper than 128 levels");
	switch (json_typeof(v)) {
	case JSON_NULL: buf_puts(out, "null"); return 0;
	case JSON_TRUE: buf_puts(out, "true"); return 0;
	case JSON_FALSE: buf_puts(out, "false"); return 0;
	case JSON_INTEGER: buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return 0;
	case JSON_REAL: write_real(out, json_real_value(v)); return 0;
	case JSON_STRING: write_string(out, json_string_value(v), json_string_length(v)); return 0;
	case JSON_ARRAY: {
		size_t n = json_array_size(v);
		buf_putc(out, '[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				buf_putc(out, ',');
			if (pretty)
				newline_indent(out, depth + 1);
			if (write_value(out, json_array_get(v, i), flags, depth + 1, err) < 0)
				return -1;
		}
		if (pretty && n)
			newline_indent(out, depth);
		buf_putc(out, ']');
		return 0;
	}
	case JSON_OBJECT: {
		size_t n = json_object_size(v);
		_cleanup_free_ const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
		size_t i = 0;
		const char *key;
		json_t *child;
		json_object_foreach((json_t *)v, key, child) keys[i++] = key;
		if (flags & JSON_SERDE_SORT_KEYS)
			qsort(keys, n, sizeof(*keys), cmp_keys);
		buf_putc(out, '{');
		for (i = 0; i < n; i++) {
			if (i)
				buf_putc(out, ',');
			if (pretty)
				newline_indent(out, depth + 1);
			write_string(out, keys[i], strlen(keys[i]));
			buf_puts(out, pretty ? ": " : ":");
			if (write_value(out, json_object_get(v, keys[i]), flags, depth + 1, err) < 0)
				return -1;
		}
		if (pretty && n)
			newline_indent(out, depth);
		buf_putc(out, '}');
		return 0;
	}
	}
	return err_set(err, EINVAL, "unknown JSON value type");
}

int json_serde_write(struct buf *out, const json_t *value, unsigned flags, struct err **err)
{
	return write_value(out, value, flags, 0, err);
}

json_t *json_sorted_copy(const json_t *value)
{
	if (json_is_array(value)) {
		json_t *copy = json_array();
		for (size_t i = 0; i < json_array_size(value); i++)
			json_array_append_new(copy, json_sorted_copy(json_array_get(value, i)));
		return copy;
	}
	if (!json_is_object(value))
		return json_deep_copy(value);
	size_t n = json_object_size(value), i = 0;
	_cleanup_free_ const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
	const char *key;
	json_t *child;
	json_object_foreach((json_t *)value, key, child) keys[i++] = key;
	qsort(keys, n, sizeof(*keys), cmp_keys);
	json_t *copy = json_object();
	for (i = 0; i < n; i++)
		json_object_set_new(copy, keys[i], json_sorted_copy(json_object_get(value, keys[i])));
	return copy;
}
