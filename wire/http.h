/* http: HTTP/1.x on the event loop, for the small local endpoints on both sides of the wire: a
 * strict request-head parser (odyn's egress proxy, attestation API and KMS proxy; the host's
 * metrics endpoint) and a one-request-per-connection server built on it. */
#ifndef ENCLAVER_WIRE_HTTP_H
#define ENCLAVER_WIRE_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"
#include "wire/transport.h"

/* ---------------------------------------------------------------- request heads */
#define HTTP_HEAD_MAX    (64 * 1024)
#define HTTP_HEADERS_MAX 100
struct http_header {
	const char *name, *value; /* point into the parsed copy */
	size_t name_len, value_len;
};
struct http_request {
	char *head; /* a private copy, NUL-separated pieces */
	const char *method, *target;
	int minor_version; /* HTTP/1.minor */
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t n_headers;
	int64_t content_length; /* -1 when absent */
	bool chunked;
	bool connection_close;
};
/* Returns 0 when the head is incomplete, its length when complete, -1 when malformed. */
ssize_t http_request_parse(const char *data, size_t len, struct http_request *out, struct err **err);
void http_request_free(struct http_request *req);
/* Splits "http://host[:port]/path" into host (brackets removed), port (80
 * by default) and the origin-form path. Caller frees host and path. */
int http_target_split(const char *target, char **host, uint16_t *port, char **path, struct err **err);
/* Splits a CONNECT target "host:port" / "[v6]:port". */
int http_authority_split(const char *authority, char **host, uint16_t *port, struct err **err);

/* ---------------------------------------------------------------- server
 * One request per connection. The handler gets the whole request (body by Content-Length, at
 * most body_max) and answers with httpd_respond now or later; a connection that ends first calls
 * the cancel function given to httpd_set_pending. Malformed heads get 400, oversized ones 431,
 * chunked bodies 411, large bodies 413, before the handler sees anything. */
struct httpd_limits {
	size_t body_max;
	/* At most this many connections at once; one more is accepted and closed at once (a
	 * level-triggered listener must not spin). 0: no cap. */
	size_t conns_max;
	/* A connection lasts at most this long from its accept, whatever it is doing (a slow head,
	 * a pending handler, a client that does not read the answer). 0: no bound (odyn's KMS
	 * proxy waits on AWS). */
	int conn_timeout_ms;
};
struct httpd;
struct httpd_conn;
typedef void (*httpd_handler_fn)(void *arg, struct httpd_conn *c, const struct http_request *req, const uint8_t *body,
                                 size_t len);
int httpd_start(struct evloop *loop, const struct transport_addr *addr, const char *name,
                const struct httpd_limits *limits, httpd_handler_fn handler, void *arg, struct httpd **out,
                struct err **err);
/* The bound port (for tcp:127.0.0.1:0 in tests). */
uint16_t httpd_port(const struct httpd *s);
void httpd_free(struct httpd *s);
void httpd_respond(struct httpd_conn *c, int code, const char *reason, const char *content_type, const void *body,
                   size_t len);
/* 405 with the Allow header RFC 9110 asks for (allow: "GET"). */
void httpd_respond_not_allowed(struct httpd_conn *c, const char *allow);
void httpd_respond_text(struct httpd_conn *c, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void httpd_set_pending(struct httpd_conn *c, void *user, void (*cancel)(void *user));

#endif
