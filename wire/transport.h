/* transport: socket endpoints named by text ("vsock:CID:PORT", "unix:PATH",
 * "tcp:HOST:PORT"), so every vsock endpoint can be a unix socket in tests;
 * plus the small epoll event loop the proxies and the supervisor share. */
#ifndef ENCLAVER_TRANSPORT_H
#define ENCLAVER_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/common.h"

/* ---------------------------------------------------------------- addresses
 * vsock:CID:PORT   CID a number or "any" (VMADDR_CID_ANY), PORT a u32
 * unix:PATH        a filesystem socket (no abstract names)
 * tcp:HOST:PORT    HOST a numeric IPv4 address, "[v6]" or "localhost";
 *                  no name resolution (static binaries, no resolver inside
 *                  an enclave). */
struct transport_addr {
	struct sockaddr_storage sa;
	socklen_t len;
	int family;     /* AF_VSOCK, AF_UNIX, AF_INET or AF_INET6 */
	char text[128]; /* canonical text, for messages */
};

int transport_parse(const char *text, struct transport_addr *out, struct err **err);
/* A listening socket, non-blocking and close-on-exec. A unix socket path
 * that already names a socket is replaced (a stale one from a crash). */
int transport_listen(const struct transport_addr *addr, int backlog, struct err **err);
/* A connected socket (blocking connect), then set non-blocking when asked. */
int transport_connect(const struct transport_addr *addr, bool nonblock, struct err **err);
/* A blocking socket whose connect gives up after timeout_ms (ETIMEDOUT), for threads that may
 * block but not for minutes (a full listen backlog leaves a TCP connect unanswered for about two);
 * the same bound on vsock (its own connect timeout option); writes on it time out likewise
 * (SO_SNDTIMEO). */
int transport_connect_timed(const struct transport_addr *addr, int timeout_ms, struct err **err);
/* Removes a unix socket's file after its listener closed; no-op otherwise. */
void transport_unlink(const struct transport_addr *addr);
/* Starts a non-blocking connect; *in_progress is set when the caller must
 * wait for EPOLLOUT and then check transport_connect_finish(). */
int transport_connect_start(const struct transport_addr *addr, bool *in_progress, struct err **err);
int transport_connect_finish(int fd, const struct transport_addr *addr, struct err **err);
/* The same check on the loop, for connects whose descriptor was waited for with epoll: `events`
 * is what fired (EPOLLOUT, EPOLLERR); 0 once connected, -1 with the connect's errno as err's code
 * (ECONNREFUSED when the socket names none), its strerror as the message. */
int transport_connect_step(int fd, uint32_t events, struct err **err);
/* accept4 with NONBLOCK|CLOEXEC; returns -1 without *err when none is
 * waiting, or -1 with *err on a failure. Out of descriptors (EMFILE/ENFILE)
 * with a reserve descriptor given (an open /dev/null, -1 if none), the waiting
 * connection is accepted and closed at once, so a level-triggered listener
 * does not spin; *err then says so. */
int transport_accept(int listen_fd, int *reserve_fd, struct err **err);
/* A descriptor to keep in reserve for transport_accept (-1 on failure). */
int transport_reserve_fd(void);
/* The port of a bound inet or vsock socket (for tcp:127.0.0.1:0 in tests). */
int transport_local_port(int fd, uint32_t *port, struct err **err);

/* ---------------------------------------------------------------- event loop
 * Level-triggered epoll. Each watched descriptor has a handler; the loop
 * calls handler->fn with the ready events. Objects freed from a callback
 * must go through evloop_defer_free: other events of the same batch may
 * still point at them. */
struct evloop;
struct ev_handler {
	void (*fn)(struct ev_handler *h, uint32_t events);
};

int evloop_new(struct evloop **out, struct err **err);
void evloop_free(struct evloop *loop);
int evloop_add(struct evloop *loop, int fd, uint32_t events, struct ev_handler *h, struct err **err);
int evloop_mod(struct evloop *loop, int fd, uint32_t events, struct ev_handler *h, struct err **err);
void evloop_del(struct evloop *loop, int fd);
/* Frees ptr with fn(ptr) once the current batch of events is dispatched. */
void evloop_defer_free(struct evloop *loop, void *ptr, void (*fn)(void *));
/* Waits up to timeout_ms (-1 forever) and dispatches one batch. */
int evloop_run_once(struct evloop *loop, int timeout_ms, struct err **err);
/* Runs until evloop_stop. */
int evloop_run(struct evloop *loop, struct err **err);
void evloop_stop(struct evloop *loop);
bool evloop_stopped(const struct evloop *loop);

/* A one-shot deadline on the loop (a timerfd): fn runs once when ms have passed, unless stopped
 * first; the deadline is stopped before fn runs (fn may arm it again, or free its object). Put
 * the struct inside the object it guards; fn gets &deadline.h. Arming again restarts it; stop is
 * safe on one never armed (fd -1: initialise it so, or zero it and set fd = -1). */
struct ev_deadline {
	struct ev_handler h;
	struct evloop *loop;
	int fd;
	void (*fn)(struct ev_handler *h, uint32_t events);
};
int ev_deadline_arm(struct ev_deadline *d, struct evloop *loop, int ms,
                    void (*fn)(struct ev_handler *h, uint32_t events), struct err **err);
void ev_deadline_stop(struct ev_deadline *d);

/* ---------------------------------------------------------------- listener
 * A listening socket watched by the loop, with its spare descriptor for
 * shedding at EMFILE: what each of odyn's servers (ingress, egress proxy,
 * status/log streams, attestation API) starts with. Put it first in the
 * server's struct: the accept callback gets &listener.h. */
struct listener {
	struct ev_handler h;
	struct evloop *loop;
	int fd;
	int reserve_fd;
	bool open;
	struct transport_addr addr;
};
/* Listens on addr (backlog) and watches it with on_accept. Nothing is left open on failure. */
int listener_open(struct listener *l, struct evloop *loop, const struct transport_addr *addr, int backlog,
                  void (*on_accept)(struct ev_handler *h, uint32_t events), struct err **err);
/* transport_accept on it with its reserve. */
int listener_accept(struct listener *l, struct err **err);
/* Stops watching, closes, removes a unix socket's file; safe on one never opened. */
void listener_close(struct listener *l);

#endif
