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
 * (close the list first, then relay_queue_stop).
 *
 * Holding (relay_queue_init with hold_ms > 0): a connect refused (ECONNREFUSED: nothing listens
 * there yet, an app still starting) does not close its client: the queue logs one line, retries
 * the connect with backoff (50 ms doubling to 1 s) and its clients wait past timeout_ms. When
 * hold_ms pass without a connect accepted, the queue gives up with one line, closes the clients
 * it holds, and from then on closes a refused one at once (no line each) until a connect is
 * accepted again. relay_queue_pause holds the clients without connecting at all (the host, while
 * the enclave boots), bounded by hold_ms as well. */
#define RELAY_CONNECTING_MAX 256
struct relay_queue {
	struct relay *head, *tail; /* waiting for their turn */
	size_t n;                  /* waiting, the one connecting included */
	bool in_flight;            /* a connect is under way */
	struct relay *connecting;  /* ... by this one */
	int hold_ms;               /* 0: a refused connect closes its client */
	const char *until;         /* what the hold waits for, for the line: "the app listens" */
	const char *pause_until;   /* relay_queue_pause's, NULL when not paused */
	bool holding;              /* refused or paused: `hold` is armed and the line was logged */
	bool gave_up;              /* refused for hold_ms: refused connects close at once */
	bool backing_off;          /* `retry` is armed: no connect before it fires */
	int backoff_ms;
	char *what; /* the destination, for the hold's lines */
	struct ev_deadline retry, hold;
	/* NULL, or two counters the queue's relays add the bytes they read to: [0] from end A,
	 * [1] from end B (atomically: another thread may read them, the host's metrics). */
	uint64_t *bytes;
};
/* hold_ms 0: no holding. `until` must outlive the queue (a string literal). */
void relay_queue_init(struct relay_queue *q, int hold_ms, const char *until);
/* Holds new clients, unconnected, until relay_queue_resume (or hold_ms). */
void relay_queue_pause(struct relay_queue *q, const char *until);
void relay_queue_resume(struct relay_queue *q);
/* Stops the queue's timers (after its relays are closed). */
void relay_queue_stop(struct relay_queue *q);
typedef int (*relay_connect_fn)(void *ctx, bool *in_progress, struct err **err);
/* A connect that takes more than the socket's own (a handshake after it, as the emulator's vsock
 * backend answers "OK <port>" once the guest accepted) gives a step: called with end B's
 * descriptor whenever it is ready for what was waited for (EPOLLOUT first), *events holding what
 * fired; it sets *events to 0 once end B is connected, or to what to wait for next (EPOLLIN),
 * and returns 0; -1 when the connect failed, err's code deciding as above (ECONNREFUSED holds).
 * NULL: the socket's own connect is all (transport_connect_step). */
typedef int (*relay_step_fn)(void *ctx, int fd, uint32_t *events, struct err **err);
int relay_start_connecting(struct evloop *loop, int fd_a, struct tls_conn *tls_a, relay_connect_fn connect,
                           relay_step_fn step, void *ctx, int timeout_ms, const char *what, struct relay_queue *q,
                           struct relay_list *list, struct err **err);
/* Closes every relay of the list (at shutdown). */
void relay_list_close_all(struct relay_list *list);

#endif
