/* http: a strict parser for HTTP/1.x request heads as a proxy or a local endpoint receives them
 * (CRLF only: a bare LF is refused at once; no folded headers, no ambiguous body framing), and
 * splitting of absolute-form and CONNECT targets. */
#include <errno.h>
#include <string.h>

#include "wire/http.h"

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

void http_request_free(struct http_request *req)
{
	free(req->head);
	req->head = NULL;
}

static bool token_eq(const char *a, size_t n, const char *b)
{
	return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* Does a comma-separated header value contain the token (case-insensitive)? */
static bool list_has(const char *v, size_t n, const char *tok)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (token_eq(v + s, e - s, tok))
			return true;
	}
	return false;
}

ssize_t http_request_parse(const char *data, size_t len, struct http_request *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	out->content_length = -1;
	const char *end = memmem(data, len, "\r\n\r\n", 4);
	/* RFC 9112 section 2.2 lets a recipient take a bare LF as a line end; a
	 * proxy that did would read a head differently from a strict upstream
	 * (smuggling), and waiting for a CRLF CRLF that never comes leaves the
	 * client without an answer. Refuse it as soon as it arrives. */
	size_t scan = end ? (size_t)(end - data) + 4 : len;
	for (const char *lf = memchr(data, '\n', scan); lf; lf = memchr(lf + 1, '\n', scan - (size_t)(lf + 1 - data)))
		if (lf == data || lf[-1] != '\r')
			return err_set(err, EINVAL, "bare LF line ending at offset %zu (CRLF required)",
			               (size_t)(lf - data));
	if (end == NULL) {
		if (len >= HTTP_HEAD_MAX)
			return err_set(err, E2BIG, "request head larger than %d bytes", HTTP_HEAD_MAX);
		return 0;
	}
	size_t head_len = (size_t)(end - data) + 4;
	if (memchr(data, '\0', head_len))
		return err_set(err, EINVAL, "NUL byte in request head");
	char *h = xmalloc(head_len + 1);
	memcpy(h, data, head_len);
	h[head_len] = '\0';
	out->head = h;

	/* Request line: METHOD SP TARGET SP HTTP/1.x */
	char *line_end = strstr(h, "\r\n");
	*line_end = '\0';
	char *sp1 = strchr(h, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strchr(sp2 + 1, ' ')) {
		http_request_free(out);
		return err_set(err, EINVAL, "malformed request line");
	}
	*sp1 = *sp2 = '\0';
	out->method = h;
	out->target = sp1 + 1;
	for (const char *m = out->method; *m; m++)
		if (!is_tchar(*m))
			goto bad_line;
	if (out->method[0] == '\0' || out->target[0] == '\0')
		goto bad_line;
	for (const char *p = out->target; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			goto bad_line;
	if (strcmp(sp2 + 1, "HTTP/1.1") == 0)
		out->minor_version = 1;
	else if (strcmp(sp2 + 1, "HTTP/1.0") == 0)
		out->minor_version = 0;
	else {
		http_request_free(out);
		return err_set(err, EPROTONOSUPPORT, "unsupported HTTP version");
	}
	out->connection_close = out->minor_version == 0;

	char *p = line_end + 2;
	while (*p != '\r') {
		char *le = strstr(p, "\r\n");
		*le = '\0';
		if (*p == ' ' || *p == '\t') {
			http_request_free(out);
			return err_set(err, EINVAL, "folded header line");
		}
		char *colon = strchr(p, ':');
		if (colon == NULL || colon == p)
			goto bad_header;
		for (char *q = p; q < colon; q++)
			if (!is_tchar(*q))
				goto bad_header;
		for (char *q = colon + 1; *q; q++)
			if ((unsigned char)*q < 0x20 && *q != '\t')
				goto bad_header;
		if (out->n_headers == HTTP_HEADERS_MAX) {
			http_request_free(out);
			return err_set(err, E2BIG, "more than %d headers", HTTP_HEADERS_MAX);
		}
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t vl = strlen(v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		struct http_header *hd = &out->headers[out->n_headers++];
		*hd = (struct http_header){p, v, (size_t)(colon - p), vl};
		if (token_eq(p, hd->name_len, "content-length")) {
			int64_t cl = 0;
			if (vl == 0 || vl > 18)
				goto bad_length;
			for (size_t i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					goto bad_length;
				cl = cl * 10 + (v[i] - '0');
			}
			if (out->content_length >= 0 && out->content_length != cl)
				goto bad_length;
			out->content_length = cl;
		} else if (token_eq(p, hd->name_len, "transfer-encoding")) {
			out->chunked = true; /* anything but identity is framed by the sender */
		} else if (token_eq(p, hd->name_len, "connection") || token_eq(p, hd->name_len, "proxy-connection")) {
			if (list_has(v, vl, "close"))
				out->connection_close = true;
			else if (list_has(v, vl, "keep-alive") && out->minor_version == 0)
				out->connection_close = false;
		}
		p = le + 2;
	}
	if (out->chunked && out->content_length >= 0) {
		http_request_free(out);
		return err_set(err, EINVAL, "both Content-Length and Transfer-Encoding (ambiguous framing)");
	}
	return (ssize_t)head_len;

bad_line:
	http_request_free(out);
	return err_set(err, EINVAL, "malformed request line");
bad_header:
	http_request_free(out);
	return err_set(err, EINVAL, "malformed header line");
bad_length:
	http_request_free(out);
	return err_set(err, EINVAL, "bad or conflicting Content-Length");
}

int http_authority_split(const char *authority, char **host, uint16_t *port, struct err **err)
{
	const char *colon;
	_cleanup_free_ char *h = NULL;
	if (authority[0] == '[') {
		const char *close = strchr(authority, ']');
		if (close == NULL || close == authority + 1)
			return err_set(err, EINVAL, "bad authority \"%s\"", authority);
		h = xstrndup(authority + 1, (size_t)(close - authority - 1));
		colon = close[1] == ':' ? close + 1 : (close[1] == '\0' ? NULL : close);
		if (colon && *colon != ':')
			return err_set(err, EINVAL, "bad authority \"%s\"", authority);
	} else {
		colon = strchr(authority, ':');
		if (colon && strchr(colon + 1, ':'))
			return err_set(err, EINVAL, "bad authority \"%s\" (IPv6 needs brackets)", authority);
		h = colon ? xstrndup(authority, (size_t)(colon - authority)) : xstrdup(authority);
	}
	if (h[0] == '\0')
		return err_set(err, EINVAL, "empty host in \"%s\"", authority);
	if (colon == NULL) {
		*port = 0;
	} else {
		const char *ps = colon + 1;
		char *end;
		if (*ps < '0' || *ps > '9')
			return err_set(err, EINVAL, "bad port in \"%s\"", authority);
		errno = 0;
		unsigned long v = strtoul(ps, &end, 10);
		if (errno || *end || v == 0 || v > 65535)
			return err_set(err, EINVAL, "bad port in \"%s\"", authority);
		*port = (uint16_t)v;
	}
	*host = steal_pointer(&h);
	return 0;
}

int http_target_split(const char *target, char **host, uint16_t *port, char **path, struct err **err)
{
	if (strncasecmp(target, "http://", 7) != 0)
		return err_set(err, EINVAL, "target \"%.100s\" is not an absolute http:// URL", target);
	const char *a = target + 7;
	size_t alen = strcspn(a, "/?#");
	_cleanup_free_ char *authority = xstrndup(a, alen);
	if (strchr(authority, '@'))
		return err_set(err, EINVAL, "user information in proxy URLs is refused");
	if (http_authority_split(authority, host, port, err) < 0)
		return -1;
	if (*port == 0)
		*port = 80;
	const char *rest = a + alen;
	if (*rest == '#')
		rest = "";
	if (*rest == '/')
		*path = xstrdup(rest);
	else
		*path = xasprintf("/%s", rest);
	/* Fragments are never sent to a server. */
	char *frag = strchr(*path, '#');
	if (frag)
		*frag = '\0';
	return 0;
}
