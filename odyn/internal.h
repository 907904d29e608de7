/* odyn internals shared between odyn's own files: the relay, the broadcast
 * stream, and the proxies' entry points. Not for other modules. */
#ifndef ENCLAVER_ODYN_INTERNAL_H
#define ENCLAVER_ODYN_INTERNAL_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/sigv4.h"
#include "wire/relay.h"
#include "wire/tls.h"
#include "odyn/odyn.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct stream;
int stream_new(struct evloop *loop, const struct transport_addr *addr, size_t cap, struct stream **out,
               struct err **err);
void stream_write(struct stream *s, const void *data, size_t len);
bool stream_flushed(const struct stream *s);
/* Whether the last byte written was a newline (or nothing was written). */
bool stream_at_line_start(const struct stream *s);
uint64_t stream_readers_served(const struct stream *s);
/* Back-pressure support: the largest number of bytes a reader is behind,
 * a callback when a reader took bytes, and dropping readers that stayed
 * more than `lag` behind without progress for stall_ms. */
uint64_t stream_max_lag(const struct stream *s);
size_t stream_capacity(const struct stream *s);
void stream_set_drain_cb(struct stream *s, void (*fn)(void *arg), void *arg);
/* Lines (at most 15 bytes, '\n'-terminated; longer ones are cut) that readers write are passed to
 * fn; the status stream takes "stop" from the host (odyn.md). */
void stream_set_command_cb(struct stream *s, void (*fn)(void *arg, const char *line), void *arg);
void stream_drop_stalled(struct stream *s, uint64_t lag, unsigned stall_ms);
void stream_free(struct stream *s);

/* msgs: odyn's warnings and errors as `odyn` records on the log stream (common/logstream.h), fed
 * by common/log.c's sink from any thread and written on the loop; dropped with a count beyond a
 * rate, a pending cap, or when readers are more than lag_limit bytes behind. */
struct odyn_msgs;
int odyn_msgs_start(struct evloop *loop, struct stream *log, uint64_t lag_limit, struct odyn_msgs **out,
                    struct err **err);
/* Writes what is pending, at the end of an app line if one comes within 500 ms (final: now,
 * with the count of dropped ones, whenever it last went out). Call it after app output too. */
void odyn_msgs_flush(struct odyn_msgs *m, bool final);
void odyn_msgs_free(struct odyn_msgs *m);

/* egress proxy and ingress forwarders, living on the supervisor's loop. */
struct egress_proxy;
int egress_proxy_start(struct evloop *loop, const struct transport_addr *listen, const struct transport_addr *host,
                       const struct egress_policy *policy, struct egress_proxy **out, struct err **err);
void egress_proxy_free(struct egress_proxy *p);

/* Each accepted client's connect to the app is non-blocking; one the app has not
 * accepted within connect_ms (0: ODYN_INGRESS_CONNECT_MS) is refused (closed). While the app
 * refuses (not listening yet) clients are held, up to hold_ms (0: not held; common/relay.h). */
struct ingress;
int ingress_start(struct evloop *loop, const struct odyn_ingress *spec, int connect_ms, int hold_ms,
                  struct ingress **out, struct err **err);
void ingress_free(struct ingress *in);

/* counters: egress decisions and KMS requests for the host's metrics, sent on the status stream
 * as a counters line (wire/wire.h) once the host asked, at most once a second when one moved. add
 * is a no-op on NULL. */
struct odyn_counters;
struct odyn_counters *odyn_counters_new(struct evloop *loop, struct stream *status);
void odyn_counters_add(struct odyn_counters *k, enum wire_counter_family f, const char *a, const char *b);
/* Sends what moved now (before the app's exit status); nothing until enabled. */
void odyn_counters_flush(struct odyn_counters *k);
/* The host asked (WIRE_STATUS_COUNTERS_ON): the totals now, then lines as they move. */
void odyn_counters_enable(struct odyn_counters *k);
void odyn_counters_free(struct odyn_counters *k);
/* Where the proxies count (set after they start; NULL: not counted). */
void egress_proxy_set_counters(struct egress_proxy *p, struct odyn_counters *k);
struct odyn_kms;
void odyn_kms_set_counters(struct odyn_kms *k, struct odyn_counters *c);

/* api: POST /v1/attestation on the supervisor's loop. */
struct odyn_api;
int odyn_api_start(struct evloop *loop, const struct transport_addr *addr, const char *nsm_path,
                   struct odyn_api **out, struct err **err);
void odyn_api_free(struct odyn_api *api);

/* kms_client: the KMS proxy's blocking I/O (worker threads). */
struct kms_target {
	const struct transport_addr *egress; /* the host's egress endpoint */
	const struct egress_policy *policy;  /* the app's egress policy: checked before connecting */
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
/* Sends a whole request (Connection: close) and reads the whole response. A host:port the
 * policy does not allow fails with EPERM before any connection is made. */
int kms_http_exchange(const struct kms_target *t, const struct buf *request, struct kms_http_response *resp,
                      struct err **err);
/* A whole response (read to EOF): status, Content-Type, and the body framed by Content-Length or
 * Transfer-Encoding: chunked (decoded in place, at most max bytes); both at once are refused. */
int kms_http_response_parse(char *raw, size_t len, struct kms_http_response *out, struct err **err);
/* chunked: a whole chunked body (RFC 9112 7.1) decoded in place; *out_len gets the data's length.
 * Strict: hex sizes, CRLF only, extensions and trailer fields checked then dropped, nothing after
 * the end, at most max bytes of data. */
int http_chunked_decode(char *data, size_t len, size_t max, size_t *out_len, struct err **err);
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
	const struct egress_policy *policy; /* the app's egress policy, which IMDS and KMS must pass too */
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
