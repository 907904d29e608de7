/* relay: copies bytes both ways between two non-blocking sockets on the event
 * loop (back-pressure, half-close); odyn's proxies and the host's outer side use it. */
#ifndef ENCLAVER_RELAY_H
#define ENCLAVER_RELAY_H

#include "transport.h"

/* relay_start owns both descriptors from the call on (closes them on failure
 * too). The first bytes for each side (already read elsewhere) may be given. */
struct relay;
struct relay_list {
	struct relay *head;
	size_t n;            /* relays, connecting ones included */
	size_t n_connecting; /* relay_start_connecting's still waiting for their connect */
};
int relay_start(struct evloop *loop, int fd_a, int fd_b, const void *a_to_b, size_t n_a_to_b, const void *b_to_a,
                size_t n_b_to_a, struct relay_list *list, struct err **err);
/* The same, with end A speaking TLS (ingress termination, common/tls.h): the relay owns `tls` too. */
struct tls_conn;
int relay_start_tls(struct evloop *loop, int fd_tls, struct tls_conn *tls, int fd_plain, struct relay_list *list,
                    struct err **err);
/* The same when end B's non-blocking connect is still under way (transport_connect_start said
 * in progress): nothing is read from end A until it completes, then the relay runs as above. A
 * connect that fails, or is not done within timeout_ms (the peer's listen backlog is full: TCP
 * retries the SYN for minutes), closes both ends and logs it, naming `what`; nothing else on
 * the loop waits for it. At most RELAY_CONNECTING_MAX wait per list: one more is refused at once
 * (-1 with *err, both ends closed). tls may be NULL; the relay owns it. */
#define RELAY_CONNECTING_MAX 256
int relay_start_connecting(struct evloop *loop, int fd_a, struct tls_conn *tls_a, int fd_b, int timeout_ms,
                           const char *what, struct relay_list *list, struct err **err);
/* Closes every relay of the list (at shutdown). */
void relay_list_close_all(struct relay_list *list);

#endif
