/* relay: copies bytes both ways between two non-blocking sockets on the event
 * loop (back-pressure, half-close); odyn's proxies and the host's outer side use it. */
#ifndef ENCLAVER_RELAY_H
#define ENCLAVER_RELAY_H

#include "wire/transport.h"

/* relay_start owns both descriptors from the call on (closes them on failure
 * too). The first bytes for each side (already read elsewhere) may be given. */
struct relay;
struct relay_list {
	struct relay *head;
	size_t n; /* relays, waiting ones included */
};
int relay_start(struct evloop *loop, int fd_a, int fd_b, const void *a_to_b, size_t n_a_to_b, const void *b_to_a,
                size_t n_b_to_a, struct relay_list *list, struct err **err);
/* The same, with end A speaking TLS (ingress termination, common/tls.h): the relay owns `tls` too. */
struct tls_conn;
int relay_start_tls(struct evloop *loop, int fd_tls, struct tls_conn *tls, int fd_plain, struct relay_list *list,
                    struct err **err);
/* The same when end B is still to be connected: `connect` (called with ctx) starts a
 * non-blocking connect and returns the descriptor, setting *in_progress when it must become
 * writable first. The queue (one per destination: an ingress port) runs one connect at a time:
 * clients beyond it wait their turn, as a blocking connect would have made them wait, but
 * nothing else on the loop waits, and an app's small listen backlog is not flooded with
 * handshakes (which the kernel may answer with resets). Nothing is read from end A until end B
 * is connected. A client not connected within timeout_ms of this call (its app's backlog full:
 * TCP retries the SYN for minutes), or whose connect fails, is closed and logged, naming `what`.
 * At most RELAY_CONNECTING_MAX wait per queue: one more is refused at once (-1 with *err, end A
 * closed). tls_a may be NULL; the relay owns it. The queue must outlive the relays of the list
 * (close the list first). */
#define RELAY_CONNECTING_MAX 256
struct relay_queue {
	struct relay *head, *tail; /* waiting for their turn */
	size_t n;                  /* waiting, the one connecting included */
	bool in_flight;            /* a connect is under way */
};
typedef int (*relay_connect_fn)(void *ctx, bool *in_progress, struct err **err);
int relay_start_connecting(struct evloop *loop, int fd_a, struct tls_conn *tls_a, relay_connect_fn connect, void *ctx,
                           int timeout_ms, const char *what, struct relay_queue *q, struct relay_list *list,
                           struct err **err);
/* Closes every relay of the list (at shutdown). */
void relay_list_close_all(struct relay_list *list);

#endif
