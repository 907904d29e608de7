/* odyn internals shared between odyn's own files: the relay, the broadcast
 * stream, and the proxies' entry points. Not for other modules. */
#ifndef ENCLAVER_ODYN_INTERNAL_H
#define ENCLAVER_ODYN_INTERNAL_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "odyn/odyn.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* relay: owns both descriptors from the call on (closes them on failure too). */
struct relay;
struct relay_list {
	struct relay *head;
	size_t n;
};
int relay_start(struct evloop *loop, int fd_a, int fd_b, const void *a_to_b, size_t n_a_to_b, const void *b_to_a,
                size_t n_b_to_a, struct relay_list *list, struct err **err);
/* The same, with end A speaking TLS (ingress termination): the relay owns `tls` too. */
struct tls_conn;
int relay_start_tls(struct evloop *loop, int fd_tls, struct tls_conn *tls, int fd_plain, struct relay_list *list,
                    struct err **err);
/* Closes every relay of the list (at shutdown). */
void relay_list_close_all(struct relay_list *list);

struct stream;
int stream_new(struct evloop *loop, const struct transport_addr *addr, size_t cap, struct stream **out,
               struct err **err);
void stream_write(struct stream *s, const void *data, size_t len);
bool stream_flushed(const struct stream *s);
uint64_t stream_readers_served(const struct stream *s);
/* Back-pressure support: the largest number of bytes a reader is behind,
 * a callback when a reader took bytes, and dropping readers that stayed
 * more than `lag` behind without progress for stall_ms. */
uint64_t stream_max_lag(const struct stream *s);
size_t stream_capacity(const struct stream *s);
void stream_set_drain_cb(struct stream *s, void (*fn)(void *arg), void *arg);
void stream_drop_stalled(struct stream *s, uint64_t lag, unsigned stall_ms);
void stream_free(struct stream *s);

/* tls: TLS termination over memory BIOs (odyn/tls.c). */
struct tls_server;
int tls_server_new(const char *cert_file, const char *key_file, struct tls_server **out, struct err **err);
void tls_server_free(struct tls_server *s);
struct tls_conn *tls_conn_new(struct tls_server *s);
void tls_conn_free(struct tls_conn *c);
/* Raw bytes read from the peer, and the end of its stream. */
void tls_conn_feed(struct tls_conn *c, const void *data, size_t n);
void tls_conn_feed_eof(struct tls_conn *c);
/* Plaintext the peer sent: > 0 bytes, or one of these. */
#define TLS_WANT_INPUT (-1) /* feed more raw bytes first */
#define TLS_EOF        (-2) /* the peer's stream ended (close_notify or end of input) */
#define TLS_FAILED     (-3) /* handshake or record error; *err says which */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t n, struct err **err);
/* Encrypts all of data into the output buffer (never partial). */
int tls_conn_write(struct tls_conn *c, const void *data, size_t n, struct err **err);
void tls_conn_close_notify(struct tls_conn *c);
/* True when input is buffered that a read would return without new raw bytes. */
bool tls_conn_buffered(const struct tls_conn *c);
bool tls_conn_established(const struct tls_conn *c);
/* Raw bytes waiting to go to the peer, and sending them: 0 all sent, 1 the socket is full, -1
 * broken (errno). */
size_t tls_conn_pending_out(const struct tls_conn *c);
int tls_conn_flush(struct tls_conn *c, int fd);

/* egress proxy and ingress forwarders, living on the supervisor's loop. */
struct egress_proxy;
int egress_proxy_start(struct evloop *loop, const struct transport_addr *listen, const struct transport_addr *host,
                       const struct egress_policy *policy, struct egress_proxy **out, struct err **err);
void egress_proxy_free(struct egress_proxy *p);

struct ingress;
int ingress_start(struct evloop *loop, const struct odyn_ingress *spec, struct ingress **out, struct err **err);
void ingress_free(struct ingress *in);

/* httpd: odyn's local HTTP endpoints, one request per connection. The
 * handler gets the whole request (body by Content-Length, at most body_max)
 * and answers with httpd_respond now or later; a connection that ends first
 * calls the cancel function given to httpd_set_pending. */
struct httpd;
struct httpd_conn;
typedef void (*httpd_handler_fn)(void *arg, struct httpd_conn *c, const struct http_request *req,
                                 const uint8_t *body, size_t len);
int httpd_start(struct evloop *loop, const struct transport_addr *addr, const char *name, size_t body_max,
                httpd_handler_fn handler, void *arg, struct httpd **out, struct err **err);
void httpd_free(struct httpd *s);
void httpd_respond(struct httpd_conn *c, int code, const char *reason, const char *content_type, const void *body,
                   size_t len);
void httpd_respond_text(struct httpd_conn *c, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void httpd_set_pending(struct httpd_conn *c, void *user, void (*cancel)(void *user));

/* api: POST /v1/attestation on the supervisor's loop. */
struct odyn_api;
int odyn_api_start(struct evloop *loop, const struct transport_addr *addr, const char *nsm_path,
                   struct odyn_api **out, struct err **err);
void odyn_api_free(struct odyn_api *api);

/* sigv4: AWS Signature Version 4. headers must include Host and X-Amz-Date
 * (and X-Amz-Security-Token with temporary credentials); path and query
 * are given already canonical. *authorization gets the header's value. */
struct sigv4_header {
	const char *name, *value;
};
struct sigv4_request {
	const char *method, *path, *query;
	const struct sigv4_header *headers;
	size_t n_headers;
	const char *amz_date; /* YYYYMMDDTHHMMSSZ, the X-Amz-Date value */
	const void *body;
	size_t body_len;
};
struct sigv4_key {
	const char *access_key, *secret_key, *region, *service;
};
int sigv4_sign(const struct sigv4_request *r, const struct sigv4_key *k, char **authorization, struct err **err);

/* kms_client: the KMS proxy's blocking I/O (worker threads). */
struct kms_target {
	const struct transport_addr *egress; /* the host's egress endpoint */
	const char *host;
	uint16_t port;
	bool tls;
	const char *ca_file; /* NULL: the system's CA certificates */
};
struct kms_http_response {
	char *raw; /* owns the bytes body points into */
	int status;
	char content_type[96];
	const char *body;
	size_t body_len;
};
struct kms_creds {
	char *access_key, *secret_key, *token;
	time_t expires;
};
/* A connected tunnel to host:port through the egress endpoint. */
int kms_tunnel_open(const struct transport_addr *egress, const char *host, uint16_t port, struct err **err);
/* Sends a whole request (Connection: close) and reads the whole response. */
int kms_http_exchange(const struct kms_target *t, const struct buf *request, struct kms_http_response *resp,
                      struct err **err);
int kms_http_response_parse(char *raw, size_t len, struct kms_http_response *out, struct err **err);
void kms_http_response_free(struct kms_http_response *r);
/* IMDSv2: session token, the instance role, its credentials; and the
 * region when *region is NULL. */
int kms_imds_credentials(const struct kms_target *imds, struct kms_creds *out, char **region, struct err **err);
void kms_creds_free(struct kms_creds *c);
/* CMS EnvelopedData (DER) decrypted with key; the plaintext is appended. */
int kms_cms_decrypt(EVP_PKEY *key, const uint8_t *der, size_t len, struct buf *out, struct err **err);

/* kms: the proxy on the supervisor's loop. */
struct odyn_kms_opts {
	struct transport_addr egress;
	const char *nsm_path;
	const char *region; /* NULL: from IMDS */
	const struct odyn_kms_endpoint *endpoints;
	size_t n_endpoints;
	const char *imds_host; /* 169.254.169.254 */
	uint16_t imds_port;    /* 80 */
	const char *ca_file;   /* NULL: the system's */
};
struct odyn_kms;
/* Copies imds_host; the other strings must live as long as the proxy. */
int odyn_kms_start(struct evloop *loop, const struct transport_addr *addr, const struct odyn_kms_opts *o,
                   struct odyn_kms **out, struct err **err);
void odyn_kms_free(struct odyn_kms *k);
/* The app's request: POST /, X-Amz-Target TrentService.<Action> (letters),
 * Content-Type application/x-amz-json-1.1, a JSON object body. */
int odyn_kms_check_request(const struct http_request *req, const uint8_t *body, size_t len, char action[64],
                           struct err **err);

/* config: an ingress port from the manifest (vsock:any:P -> 127.0.0.1:P). */
int odyn_config_add_ingress_port(struct odyn_config *c, uint16_t port, struct err **err);
/* TLS termination for the ingress port added last (PEM certificate chain and key). */
int odyn_config_set_ingress_tls(struct odyn_config *c, const char *cert_file, const char *key_file, struct err **err);

#endif
