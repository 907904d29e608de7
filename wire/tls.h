/* tls: TLS termination over memory BIOs (common/tls.c), so the relay keeps driving plain
 * non-blocking sockets itself; odyn terminates ingress TLS with it. */
#ifndef ENCLAVER_TLS_H
#define ENCLAVER_TLS_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/common.h"

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

#endif
