/* runtime: running enclaves. The emulator: a vhost-user-vsock backend for QEMU's nitro-enclave
 * machine, its launcher (launcher.h) and `enclaver emulate`'s run loop (see docs/emulator.md). */
#ifndef ENCLAVER_RUNTIME_H
#define ENCLAVER_RUNTIME_H

#include "common/common.h"
#include "runtime/launcher.h"
#include "wire/wire.h"


/* ---------------------------------------------------------------- vsock backend
 * A vhost-user-vsock device backend: QEMU connects to `vhost_socket`; the guest's stream
 * connections to the parent (CID 3) on port P are carried to a host socket, and host clients reach
 * guest ports. Runs on its own thread. */

/* A host-side endpoint: a unix socket path or a TCP port on 127.0.0.1. */
struct vsock_endpoint {
	const char *unix_path; /* set for unix sockets */
	uint16_t tcp_port;     /* set (non-zero) for TCP on 127.0.0.1 */
};

/* Guest connections to the parent's port `port` go to `to`. */
struct vsock_forward {
	uint32_t port;
	struct vsock_endpoint to;
};

/* Host connections accepted on `from` go to the guest's port `guest_port`. */
struct vsock_listen {
	struct vsock_endpoint from;
	uint32_t guest_port;
};

struct vsock_backend_config {
	const char *vhost_socket; /* unix socket we create and QEMU connects to */
	uint64_t guest_cid;       /* the CID reported to the guest (>= 3, not 3) */
	const struct vsock_forward *forwards;
	size_t n_forwards;
	const struct vsock_listen *listens;
	size_t n_listens;
	/* Optional, like Firecracker and vhost-device-vsock: guest connections to a port with no
	 * forward go to the unix socket "<uds_path>_<port>"; host clients connecting to uds_path
	 * write "CONNECT <port>\n" and get "OK <host port>\n" once the guest accepts. */
	const char *uds_path;
	/* How long a host listener may take to accept a guest connection (a full backlog) before
	 * the guest gets RST; others go on meanwhile. 0: 10 s. */
	unsigned connect_timeout_ms;
};

struct vsock_backend;

/* Creates the sockets (vhost-user and host listeners) and starts the backend thread. */
int vsock_backend_start(const struct vsock_backend_config *cfg, struct vsock_backend **out, struct err **err);
/* Stops the thread, closes every connection and socket, frees the backend. NULL is fine. */
void vsock_backend_stop(struct vsock_backend *b);
/* Figures for the log and the docs: connections and bytes carried so far. */
struct vsock_backend_stats {
	uint64_t connections;
	uint64_t bytes_to_guest, bytes_from_guest;
	uint64_t dropped_packets; /* malformed or refused guest packets */
};
void vsock_backend_stats(struct vsock_backend *b, struct vsock_backend_stats *out);

/* ---------------------------------------------------------------- emulator */
struct emulate_config {
	const char *eif_path;
	const char *qemu;             /* NULL: found as launcher_emulator_new finds it */
	uint64_t guest_cid;           /* default 16 */
	unsigned cpu_count;           /* default 2 */
	unsigned memory_mb;           /* default 1024 */
	bool debug_mode;              /* stream the serial console to stdout */
	bool acpi;                    /* machine acpi=on (Debian's kernel needs it to find the devices) */
	enum emu_accel accel;         /* EMU_ACCEL_DEFAULT: $ENCLAVER_EMULATOR_ACCEL, else auto */
	unsigned heartbeat_timeout_s; /* default 300: TCG is slow */
	const struct vsock_forward *forwards;
	size_t n_forwards;
	const struct vsock_listen *listens;
	size_t n_listens;
	const char *uds_path; /* as in vsock_backend_config; optional */
};

struct emulate_result {
	double heartbeat_s; /* seconds from QEMU's start to the heartbeat; < 0 when none */
	const char *accel;  /* "kvm" or "tcg": what the boot ran on; NULL when it did not boot */
	int qemu_status;    /* QEMU's wait status, -1 when we stopped it */
	bool interrupted;   /* stopped by SIGINT/SIGTERM */
};

struct launcher;
/* The emulator launcher's QEMU: its wait status once it ended on its own and stop() reaped it;
 * -1 while it runs or when stop() had to end it. */
int launcher_emulator_qemu_status(struct launcher *l);
/* The accelerator of the boot that reached the heartbeat ("kvm" or "tcg"); NULL before. */
const char *launcher_emulator_accel(struct launcher *l);

/* Boots the EIF in QEMU with our vsock backend, answers the heartbeat, streams the console when
 * asked, and returns when QEMU exits or on SIGINT/SIGTERM (QEMU is then stopped). An error when
 * QEMU cannot start, exits before the heartbeat, or the heartbeat times out. */
int emulate_run(const struct emulate_config *cfg, struct emulate_result *res, struct err **err);

#endif
