/* outer_internal: the pieces of the outer side shared between its files (the run loop, ingress
 * listeners, the egress endpoint, the guest stream clients). Not for other modules. */
#ifndef ENCLAVER_RUNTIME_OUTER_INTERNAL_H
#define ENCLAVER_RUNTIME_OUTER_INTERNAL_H

#include <signal.h>
#include <stddef.h>

#include "wire/logstream.h"
#include "wire/relay.h"
#include "wire/transport.h"
#include "runtime/outer.h"

#define outer_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct outer;

/* ingress: one TCP listener per port mapping; each connection is relayed to the enclave's port. */
/* How long a host ingress client waits for the enclave to accept its connection. */
#define OUTER_INGRESS_CONNECT_MS 10000
/* How long host ingress clients are held while the enclave boots (or refuses) before they are
 * closed: generous, an emulated boot without KVM takes minutes. */
#define OUTER_INGRESS_HOLD_MS 300000
/* How long the host's egress endpoint waits for a target to answer a connect, per address. */
#define OUTER_EGRESS_CONNECT_MS 10000
/* The egress name for the parent instance itself (Enclaver's convention): mapped to its loopback. */
#define OUTER_EGRESS_PARENT_NAME "host"

struct outer_ingress {
	struct ev_handler h;
	struct outer *o;
	int lfd;
	uint16_t bound_port;
	const struct outer_port *port;
	struct relay_queue waiting; /* clients whose connection to the enclave is not made yet */
	char what[160];             /* "ingress ADDR:PORT -> enclave port N", for messages */
};
/* Clients are held from the open until outer_ingress_resume (odyn reported the app running). */
int outer_ingress_open(struct outer *o, const struct outer_port *p, struct outer_ingress *in, struct err **err);
void outer_ingress_resume(struct outer_ingress *in);
/* Stops listening; the held clients stay until the relays are closed (then relay_queue_stop). */
void outer_ingress_close(struct outer *o, struct outer_ingress *in);

/* egress: the endpoint the enclave's odyn connects to (vsock 17002). */
struct outer_egress;
int outer_egress_open(struct outer *o, struct outer_egress **out, struct err **err);
void outer_egress_free(struct outer_egress *e);

/* guest streams: status (17000) and log (17001) clients, reconnecting while the enclave is up. */
enum gstream_kind { GSTREAM_STATUS, GSTREAM_LOG };
struct gstream {
	struct ev_handler h;
	struct outer *o;
	enum gstream_kind kind;
	uint32_t port;
	int fd;
	struct buf line;            /* a status line not yet complete */
	struct logstream_reader rd; /* the log stream's app lines and records (common/logstream.h) */
	bool wanted;                /* not connected, should be */
	bool connecting;            /* fd's connect is under way (EPOLLOUT); wanted stays set until it is done */
	unsigned failures;
};
void gstream_init(struct outer *o, struct gstream *g, enum gstream_kind kind);
/* Tries to connect once; false when it should be retried later. */
bool gstream_try_connect(struct gstream *g);
/* Reads what is there without waiting (at the end, after the enclave stopped), then closes. */
void gstream_drain(struct gstream *g);
void gstream_close(struct gstream *g);

/* What the loop shares with its parts. */
struct outer {
	struct outer_config cfg;
	struct evloop *loop;
	struct relay_list relays; /* ingress and egress connections */
	int reserve_fd;           /* for shedding connections at EMFILE */
	struct outer_ingress *ingress;
	size_t n_ingress;
	struct outer_egress *egress;
	struct gstream status, log;
	struct ev_handler exit_h, console_h, sig_h, timer_h, stop_h;
	int sigfd, timerfd, stop_timerfd, exit_fd, console_fd;
	struct buf console_line; /* a console line not yet complete (debug mode) */
	bool blocked;            /* SIGINT/SIGTERM blocked by outer_new */
	sigset_t old_mask;
	/* what odyn reported last */
	bool have_final;
	struct outer_result final;
	bool started;    /* a "running" status was seen */
	int signo;       /* SIGINT/SIGTERM received */
	bool stop_asked; /* "stop" sent to odyn; waiting for the enclave to end */
	bool done;
};

/* A status line from odyn: updates o->final / o->started; a malformed line is logged and skipped. */
void outer_status_line(struct outer *o, const char *line, size_t len);
/* Writes an app line with the prefix to the log descriptor. */
void outer_log_line(struct outer *o, const char *line, size_t len);
/* A record from the log stream: "[tag] text" ("[odyn] warning: ..."), on the same output. */
void outer_log_record(struct outer *o, const char *tag, size_t tag_len, const char *text, size_t len);
/* Arms the retry timer (streams to connect). */
void outer_retry_arm(struct outer *o, unsigned ms);

#endif
