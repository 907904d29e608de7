/* outer: the host side of a running enclave, on top of any launcher (launcher.h): ingress TCP
 * listeners, the egress endpoint (policy enforced again here), status/log/console clients, exit codes,
 * plus the state folder behind `enclaver ps`/`stop`. runtime/run.h runs it all. docs/run.md. */
#ifndef ENCLAVER_RUNTIME_OUTER_H
#define ENCLAVER_RUNTIME_OUTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/egress.h"
#include "common/json.h"
#include "runtime/launcher.h"
#include "wire/transport.h"
#include "wire/wire.h"

/* enclaver-run's exit codes beyond the app's own (enclaver-compat.md). */
#define OUTER_EXIT_SIGNALED    107
#define OUTER_EXIT_FATAL       108
#define OUTER_EXIT_INTERRUPTED 109
/* The Nitro launcher's preflight found a piece of the machine or container missing (docs/run.md). */
#define OUTER_EXIT_NO_DEVICE    110
#define OUTER_EXIT_NO_VSOCK     111
#define OUTER_EXIT_NO_HUGEPAGES 112

/* ---------------------------------------------------------------- port mappings
 * `-p [HOST_ADDR:]HOST_PORT:ENCLAVE_PORT` as docker takes it; HOST_ADDR a numeric IPv4 address or
 * [IPv6], default 127.0.0.1 (0.0.0.0 only when asked). The enclave's own ports 17000-17002 are refused. */
struct outer_port {
	char host_addr[64]; /* numeric, without brackets */
	uint16_t host_port;
	uint16_t enclave_port;
};
int outer_port_parse(const char *spec, struct outer_port *out, struct err **err);

/* `--metrics ADDR`: HOST:PORT (a numeric address, [v6] or localhost) or :PORT (127.0.0.1). */
int outer_metrics_addr(const char *text, struct transport_addr *out, struct err **err);

/* ---------------------------------------------------------------- running */
struct outer_config {
	struct launcher *launcher;
	const struct outer_port *ports;
	size_t n_ports;
	const struct egress_policy *policy; /* the manifest's; NULL or empty: every egress request is refused */
	bool debug_mode;                    /* stream the console (to stderr) */
	int log_fd;                         /* where the app's lines go (stdout) */
	const char *log_prefix;             /* before each app line; NULL: "[app] " */
	unsigned stop_timeout_ms;           /* SIGINT/SIGTERM: how long the app gets to stop (odyn's "stop"
	                                       on the status stream) before launcher_stop; 0: 30000 */
	const char *metrics_addr;           /* --metrics HOST:PORT or :PORT; NULL: no metrics server */
};

enum outer_outcome {
	OUTER_APP_EXITED,   /* code = the app's exit code */
	OUTER_APP_SIGNALED, /* code = the signal number */
	OUTER_APP_FATAL,    /* odyn could not run the app; message says why */
	OUTER_ENCLAVE_GONE, /* the enclave stopped without a final status */
	OUTER_INTERRUPTED,  /* SIGINT/SIGTERM; code = the signal */
};
struct outer_result {
	enum outer_outcome outcome;
	int code;
	char *message; /* caller frees; may be NULL */
};
/* CPU ids as a JSON array (nitro-cli's CPUIDs; the state file's cpu_ids), at most LAUNCH_MAX_CPUS. */
json_t *outer_cpu_ids_json(const unsigned *ids, unsigned count);
/* enclaver-run's exit code for a result: the app's code, 107, 108 or 109. */
int outer_exit_code(const struct outer_result *r);

struct outer;
/* Binds the ingress listeners and the egress endpoint (launcher_listen_parent), so a port in use
 * fails before anything boots. Blocks SIGINT/SIGTERM (delivered to outer_run through a signalfd). */
int outer_new(const struct outer_config *cfg, struct outer **out, struct err **err);
/* After launcher_start: runs until the enclave stops (exit_fd), or SIGINT/SIGTERM (the launcher is
 * then stopped). Returns -1 only for the loop's own failures. */
int outer_run(struct outer *o, struct outer_result *res, struct err **err);
/* The metrics server's bound port, 0 without one (for :0 in tests). */
uint16_t outer_metrics_bound(const struct outer *o);
/* The bound host port of mapping i (for HOST_PORT 0 in tests). */
uint16_t outer_port_bound(const struct outer *o, size_t i);
void outer_free(struct outer *o);

/* ---------------------------------------------------------------- state folder
 * One JSON file per running enclave in /run/enclaver (root) or $XDG_RUNTIME_DIR/enclaver, written
 * atomically by the run process that owns it and removed when it ends. */
struct outer_state {
	char *id, *name, *launcher, *eif;
	char *image; /* the release image's reference when run from one; NULL for local files */
	uint64_t cid;
	pid_t pid; /* the run process */
	struct outer_port *ports;
	size_t n_ports;
	int64_t started; /* seconds since the epoch */
	/* For `ps --json` (nitro-cli describe-enclaves' fields): */
	unsigned cpu_count;
	unsigned cpu_ids[LAUNCH_MAX_CPUS];
	uint64_t memory_mib;
	bool debug_mode;
	json_t *measurements; /* describe-eif's object; NULL when unknown; freed by outer_state_free */
};
void outer_state_free(struct outer_state *s);
/* Reads one state file's text (path for messages); errors name the field. */
int outer_state_parse(const char *text, size_t len, const char *path, struct outer_state *s, struct err **err);
/* The folder (created 0700 when missing); caller frees. ENCLAVER_STATE_DIR overrides (tests). */
int outer_state_dir(char **out, struct err **err);
/* Every entry whose process is alive; entries of dead processes are removed. */
int outer_state_list(struct outer_state **out, size_t *n, struct err **err);
void outer_state_list_free(struct outer_state *v, size_t n);
/* Under the folder's lock: refuses a name, CID or host port a live entry holds (the message names the
 * enclave holding it). cid 0 and an empty name are not checked. */
int outer_state_check(const char *name, uint64_t cid, const struct outer_port *ports, size_t n_ports, struct err **err);
/* Writes the entry (atomically, under the lock, rechecking conflicts); *path gets its file. */
int outer_state_add(const struct outer_state *s, char **path, struct err **err);
/* For launchers that take the CID they are given (the emulator): the lowest CID from first that no
 * live entry holds and no other run is holding while it boots. *hold_fd keeps it held: the caller
 * closes it when the enclave has stopped (or lets it close at exit). */
#define OUTER_PICK_CID_SPAN 65536
int outer_state_pick_cid(uint64_t first, uint64_t *cid, int *hold_fd, struct err **err);
/* Gives a picked CID back once its enclave has stopped: removes its hold file (under the folder's
 * lock, so no picker can lock the file as it goes) and closes *hold_fd. No-op for -1. */
void outer_state_release_cid(uint64_t cid, int *hold_fd);
/* Finds a live entry by id, id prefix (unique) or name. */
int outer_state_find(const char *id_or_name, struct outer_state *out, struct err **err);

#endif
