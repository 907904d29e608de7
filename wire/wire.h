/* wire: the protocol between odyn inside the enclave and enclaver on the host, owned here alone:
 * the vsock ports, the heartbeat, the status lines, the egress tunnel's frames
 * (enclaver-compat.md). The plumbing both sides run it over is in wire/transport.h (transports, the
 * event loop), wire/relay.h (the byte relay), wire/tls.h and wire/logstream.h (the log stream). */
#ifndef ENCLAVER_WIRE_H
#define ENCLAVER_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

/* ---------------------------------------------------------------- ports
 * The enclave's own vsock ports; a manifest and `-p` may not use them. */
#define WIRE_PORT_STATUS 17000 /* the host connects: status lines (below) */
#define WIRE_PORT_LOG    17001 /* the host connects: the log stream (wire/logstream.h) */
#define WIRE_PORT_EGRESS 17002 /* odyn connects to the parent: the egress tunnel (below) */
#define WIRE_PORT_FIRST  WIRE_PORT_STATUS
#define WIRE_PORT_LAST   WIRE_PORT_EGRESS
/* The parent instance's CID as the enclave sees it. */
#define WIRE_PARENT_CID 3
/* nitro-cli's heartbeat: at boot the enclave's init connects to the parent on this port, writes
 * this byte and reads it back. */
#define WIRE_HEARTBEAT_PORT 9000
#define WIRE_HEARTBEAT_BYTE 0xB7

/* ---------------------------------------------------------------- status lines
 * odyn -> host on WIRE_PORT_STATUS, one JSON object a line: {"status":"running"},
 * {"status":"exited","code":N}, {"status":"signaled","signal":N}, {"status":"fatal","error":"..."}.
 * The last one before the enclave ends decides enclaver-run's exit status. host -> odyn on the same
 * connection: the line "stop" asks for a graceful stop (SIGTERM to the app). */
#define WIRE_STATUS_STOP "stop"
/* host -> odyn: "counters" asks for the counters lines below (a host without --metrics, or one
 * older than them, never asks and gets none). */
#define WIRE_STATUS_COUNTERS_ON "counters"
/* Counters: what only the enclave sees, for the host's metrics (docs/architecture.md):
 * {"status":"counters","egress":[[RULE,"allowed"|"denied",N],...],"kms":[[ACTION,RESULT,N],...]},
 * each N the total since odyn started, sent once the host asked (WIRE_STATUS_COUNTERS_ON), then
 * at most once a second when one moved. Not a status:
 * it never decides the exit. The host decodes it as untrusted input: at most WIRE_COUNTERS_MAX
 * entries, labels of 1 to WIRE_COUNTER_LABEL_MAX printable ASCII bytes, N a non-negative integer,
 * no entry twice; any breach refuses the whole line. */
#define WIRE_COUNTERS_MAX      64
#define WIRE_COUNTER_LABEL_MAX 128
enum wire_counter_family { WIRE_COUNTER_EGRESS, WIRE_COUNTER_KMS };
struct wire_counter {
	enum wire_counter_family family;
	char label[2][WIRE_COUNTER_LABEL_MAX + 1]; /* EGRESS: rule, allowed|denied; KMS: action, result */
	uint64_t n;
};
enum wire_status_kind {
	WIRE_STATUS_RUNNING,
	WIRE_STATUS_EXITED,
	WIRE_STATUS_SIGNALED,
	WIRE_STATUS_FATAL,
	WIRE_STATUS_COUNTERS
};
struct wire_status {
	enum wire_status_kind kind;
	int code;    /* EXITED: the exit code; SIGNALED: the signal number */
	char *error; /* FATAL: why (decode allocates it; wire_status_free) */
	struct wire_counter *counters; /* COUNTERS (decode allocates them; wire_status_free) */
	size_t n_counters;
};
/* A label as the counters line may carry it (length and bytes above). */
bool wire_counter_label_ok(const char *s);
/* Whether c counts the series (f, a, b): one name, one entry, on both sides. */
bool wire_counter_is(const struct wire_counter *c, enum wire_counter_family f, const char *a, const char *b);
/* The index of the series (f, a, b) among v[0..n), n when it is not there. */
size_t wire_counter_find(const struct wire_counter *v, size_t n, enum wire_counter_family f, const char *a,
                         const char *b);
/* Appends the line, LF included. */
void wire_status_encode(const struct wire_status *s, struct buf *out);
/* One line without its LF. EINVAL for a line that is not a status (malformed JSON, a missing or
 * mistyped field, an unknown status), the message says which. */
int wire_status_decode(const char *line, size_t len, struct wire_status *out, struct err **err);
void wire_status_free(struct wire_status *s);

/* ---------------------------------------------------------------- egress frames
 * To the host: u16 little-endian length, then JSON {"host": "...", "port": N}.
 * Reply: the same framing around "Ok" or {"Err": {"os_code": N, "message": "..."}}. */
#define EGRESS_FRAME_MAX 4096
void egress_frame_request(struct buf *out, const char *host, uint16_t port);
void egress_frame_reply_ok(struct buf *out);
void egress_frame_reply_err(struct buf *out, int os_code, const char *message);
/* Each returns 0 when more bytes are needed, the frame's total length when
 * complete, -1 on a malformed frame. */
struct egress_reply {
	bool ok;
	int os_code;
	char *message; /* caller frees */
};
ssize_t egress_frame_parse_reply(const void *data, size_t len, struct egress_reply *out, struct err **err);
ssize_t egress_frame_parse_request(const void *data, size_t len, char **host, uint16_t *port, struct err **err);

#endif
