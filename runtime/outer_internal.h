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

/* What the outer side's parts (ingress listeners, the egress endpoint, the stream clients) share
 * with the run loop: the configuration, the loop, the relays. The run's own state (signals, the
 * result, the parts themselves) is private to outer.c: the parts never reach back into it. */
struct outer_metrics;
struct outer_ctx {
	struct outer_config cfg;
	struct outer_metrics *metrics; /* NULL without --metrics */
	struct evloop *loop;
	struct relay_list relays; /* ingress and egress connections */
	int reserve_fd;           /* for shedding connections at EMFILE */
};

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
	struct outer_ctx *o;
	int lfd;
	uint16_t bound_port;
	const struct outer_port *port;
	struct relay_queue waiting; /* clients whose connection to the enclave is not made yet */
	char what[160];             /* "ingress ADDR:PORT -> enclave port N", for messages */
};
/* Clients are held from the open until outer_ingress_resume (odyn reported the app running). */
int outer_ingress_open(struct outer_ctx *o, const struct outer_port *p, struct outer_ingress *in, struct err **err);
void outer_ingress_resume(struct outer_ingress *in);
/* Stops listening; the held clients stay until the relays are closed (then relay_queue_stop). */
void outer_ingress_close(struct outer_ctx *o, struct outer_ingress *in);

/* egress: the endpoint the enclave's odyn connects to (vsock 17002). */
struct outer_egress;
int outer_egress_open(struct outer_ctx *o, struct outer_egress **out, struct err **err);
void outer_egress_free(struct outer_egress *e);

/* metrics (runtime/metrics.c): `--metrics ADDR` on a thread and loop of its own (the run's loop
 * does not turn while the launcher boots). The run's parts tell it what they learn. */
#define OUTER_METRICS_CONNS_MAX  16   /* connections at once; more are closed at accept */
#define OUTER_METRICS_CONN_MS    5000 /* a connection's whole life, slow head or slow reader */
#define OUTER_METRICS_SERIES_MAX 256  /* odyn's counters kept, whatever it sends */
enum outer_metrics_state { OUTER_METRICS_BOOTING, OUTER_METRICS_RUNNING, OUTER_METRICS_EXITED, OUTER_METRICS_STOPPED };
struct outer_metrics_port {
	uint16_t enclave_port;
	uint64_t bytes[2]; /* relay_queue.bytes: in from clients, out to them */
};
int outer_metrics_start(const char *addr, size_t n_ports, struct outer_metrics **out, struct err **err);
uint16_t outer_metrics_port(const struct outer_metrics *m);
/* The byte counters of ingress mapping i (NULL when m is NULL). */
uint64_t *outer_metrics_ingress(struct outer_metrics *m, size_t i, uint16_t enclave_port);
/* Each is a no-op on NULL. */
void outer_metrics_heartbeat(struct outer_metrics *m);
void outer_metrics_status(struct outer_metrics *m, const struct wire_status *st);
void outer_metrics_stopped(struct outer_metrics *m);
/* The /metrics page (appended). */
void outer_metrics_render(struct outer_metrics *m, struct buf *b);
void outer_metrics_free(struct outer_metrics *m);

/* What odyn reported, from its status lines (wire/wire.h). */
struct outer_report {
	struct outer_metrics *metrics; /* told every line; may be NULL */
	bool started;    /* a "running" status was seen */
	bool have_final; /* final holds the app's end (a later "running", a restart, clears it) */
	struct outer_result final;
};
/* Applies one status line; a malformed one is logged and skipped. True when it says "running". */
bool outer_report_status(struct outer_report *r, const char *line, size_t len);

/* guest streams: status (17000) and log (17001) clients, reconnecting while the enclave is up. The
 * log's lines go to cfg.log_fd; the status lines, and when to connect again, to the run loop. */
enum gstream_kind { GSTREAM_STATUS, GSTREAM_LOG };
/* How long a stream's connect may take before it is closed and tried again. */
#define OUTER_STREAM_CONNECT_MS 10000
struct gstream_sink {
	void (*status_line)(void *arg, const char *line, size_t len);
	void (*retry)(void *arg, unsigned ms);                /* arm the connect timer */
	bool (*reconnect)(void *arg, enum gstream_kind kind); /* the stream closed: connect again? */
	void *arg;
};
struct gstream {
	struct ev_handler h;
	struct outer_ctx *o;
	const struct gstream_sink *sink;
	enum gstream_kind kind;
	uint32_t port;
	int fd;
	struct buf line;             /* a status line not yet complete */
	struct logstream_reader rd;  /* the log stream's app lines and records (wire/logstream.h) */
	bool wanted;                 /* not connected, should be */
	bool connecting;             /* fd's connect is under way; wanted stays set until it is done */
	struct ev_deadline deadline; /* ... bounded by OUTER_STREAM_CONNECT_MS */
	unsigned failures;
};
void gstream_init(struct outer_ctx *o, const struct gstream_sink *sink, struct gstream *g, enum gstream_kind kind);
/* Tries to connect once; false when it should be retried later. */
bool gstream_try_connect(struct gstream *g);
/* Reads what is there without waiting (at the end, after the enclave stopped), then closes. */
void gstream_drain(struct gstream *g);
void gstream_close(struct gstream *g);

#endif
