/* mem: allocation helpers that abort on out-of-memory, the cleanup functions
 * behind the _cleanup_* attributes, and the growable byte buffer. */
#include <errno.h>
#include <string.h>

#include "common.h"
#include "common/json.h"

void out_of_memory(const char *what)
{
	/* The process's one message for it: the logger could need memory itself. */
	if (what)
		fprintf(stderr, "%s: fatal: out of memory (%s)\n", program_invocation_short_name, what);
	else
		fprintf(stderr, "%s: fatal: out of memory\n", program_invocation_short_name);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		out_of_memory(NULL);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		out_of_memory(NULL);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		out_of_memory(NULL);
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		out_of_memory(NULL);
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	/* Not strndup: parsers pass buffers that have no NUL after their
	 * last byte, and nothing here may look past s[n - 1]. */
	size_t len = 0;
	while (len < n && s[len] != '\0')
		len++;
	char *p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		out_of_memory(NULL);
	return s;
}

void cleanup_freep(void *p)
{
	free(*(void **)p);
}

void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

void cleanup_fclosep(FILE **f)
{
	if (*f != NULL)
		fclose(*f);
}

void cleanup_json_decrefp(json_t **j)
{
	json_decref(*j);
}

static void buf_reserve(struct buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
	buf_reserve(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
	buf_append(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

const char *buf_str(struct buf *b)
{
	buf_reserve(b, 0);
	b->data[b->len] = '\0';
	return b->data;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void cleanup_bufp(struct buf *b)
{
	buf_free(b);
}
