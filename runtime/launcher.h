/* launcher: the one seam between "start an enclave and reach its vsock ports" and everything the
 * outer side does with it (ingress, egress, status, log, console, exit codes). Implementations:
 * the Nitro driver (/dev/nitro_enclaves + AF_VSOCK) and the emulator (QEMU nitro-enclave + our
 * vhost-user-vsock backend). The outer side (enclaver run / enclaver-run) uses only this. */
#ifndef ENCLAVER_RUNTIME_LAUNCHER_H
#define ENCLAVER_RUNTIME_LAUNCHER_H

#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/common.h"
#include "wire/transport.h"

/* What to start. Zero values mean the launcher's documented default. */
struct launch_request {
	const char *eif_path;
	const char *name;             /* EnclaveName in listings; default: the EIF's file name without .eif */
	unsigned cpu_count;           /* vCPUs; default 2 */
	unsigned memory_mb;           /* MiB; default 4096 on Nitro (1024 in the emulator) */
	uint64_t cid;                 /* 0: the launcher picks one */
	bool debug_mode;              /* console readable; PCRs read as zeros inside (Nitro) */
	unsigned heartbeat_timeout_s; /* 0: nitro-cli's formula on Nitro, 300 s in the emulator */
};

#define LAUNCH_MAX_CPUS 256

/* What was started: the fields of nitro-cli's run-enclave JSON. */
struct launch_info {
	char enclave_id[128]; /* "<board asset tag>-enc<slot uid hex>", or the emulator's own */
	char name[256];
	uint64_t cid;
	pid_t process_id; /* the process that owns the enclave (ours) */
	unsigned cpu_count;
	unsigned cpu_ids[LAUNCH_MAX_CPUS];
	uint64_t memory_mib;
	bool debug_mode;
	double heartbeat_s; /* seconds from start to the heartbeat */
};

struct launcher;

struct launcher_ops {
	const char *name; /* "nitro", "emulator" */
	/* A listening stream socket for the enclave's connections to the parent (CID 3) on `port`
	 * (egress 17002, ...). Call before start: the enclave may connect at once. accept() on *fd
	 * gives one connection each; the caller owns *fd. */
	int (*listen_parent)(struct launcher *l, uint32_t port, int *fd, struct err **err);
	/* Boots the EIF and returns once the heartbeat (vsock 9000) was answered; on failure
	 * nothing is left running. */
	int (*start)(struct launcher *l, const struct launch_request *req, struct launch_info *info, struct err **err);
	/* A connected stream to the enclave's `port` (status 17000, log 17001, ingress ports).
	 * ECONNREFUSED/ECONNRESET when nothing listens there yet: callers retry. The caller owns *fd. */
	int (*connect_guest)(struct launcher *l, uint32_t port, int *fd, struct err **err);
	/* Optional: the same connection without waiting, for the outer side's event loop: *fd is
	 * non-blocking and, when *in_progress, still connecting: wait for it to be writable, then
	 * call connect_guest_step until it is done (relay_start_connecting's step). The caller bounds
	 * the wait. NULL: launcher_connect_guest_start falls back to connect_guest, which waits
	 * (within the launcher's own bound). */
	int (*connect_guest_start)(struct launcher *l, uint32_t port, int *fd, bool *in_progress, struct err **err);
	/* Optional: one step of a connect_guest_start still in progress, once fd is ready for what
	 * was waited for: *events in, what fired; out, 0 when connected, else what to wait for next
	 * (EPOLLIN: the emulator's backend answers once the guest accepted). -1 when it failed, with
	 * the same codes as connect_guest (ECONNREFUSED: callers retry). NULL: the socket's own
	 * connect is all (transport_connect_step). */
	int (*connect_guest_step)(struct launcher *l, uint32_t port, int fd, uint32_t *events, struct err **err);
	/* Polls readable or POLLHUP once the enclave has stopped; owned by the launcher. */
	int (*exit_fd)(struct launcher *l);
	/* The debug console as a readable stream (debug mode only), -1 otherwise; owned by the
	 * launcher. */
	int (*console_fd)(struct launcher *l);
	/* Terminates the enclave (closing its slot); idempotent. */
	int (*stop)(struct launcher *l, struct err **err);
	/* Stops the enclave if still running and frees everything. NULL is fine. */
	void (*free)(struct launcher *l);
};

struct launcher {
	const struct launcher_ops *ops;
};

static inline int launcher_listen_parent(struct launcher *l, uint32_t port, int *fd, struct err **err)
{
	return l->ops->listen_parent(l, port, fd, err);
}
static inline int launcher_start(struct launcher *l, const struct launch_request *req, struct launch_info *info,
                                 struct err **err)
{
	return l->ops->start(l, req, info, err);
}
static inline int launcher_connect_guest(struct launcher *l, uint32_t port, int *fd, struct err **err)
{
	return l->ops->connect_guest(l, port, fd, err);
}
static inline int launcher_connect_guest_start(struct launcher *l, uint32_t port, int *fd, bool *in_progress,
                                               struct err **err)
{
	if (l->ops->connect_guest_start)
		return l->ops->connect_guest_start(l, port, fd, in_progress, err);
	*in_progress = false;
	if (l->ops->connect_guest(l, port, fd, err) < 0)
		return -1;
	int fl = fcntl(*fd, F_GETFL);
	if (fl < 0 || fcntl(*fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(*fd);
		*fd = -1;
		return err_sys(err, "connect to enclave port %u: fcntl", port);
	}
	return 0;
}
static inline int launcher_connect_guest_step(struct launcher *l, uint32_t port, int fd, uint32_t *events,
                                              struct err **err)
{
	if (l->ops->connect_guest_step)
		return l->ops->connect_guest_step(l, port, fd, events, err);
	uint32_t fired = *events;
	*events = 0;
	return transport_connect_step(fd, fired, err);
}
static inline int launcher_exit_fd(struct launcher *l)
{
	return l->ops->exit_fd(l);
}
static inline int launcher_console_fd(struct launcher *l)
{
	return l->ops->console_fd(l);
}
static inline int launcher_stop(struct launcher *l, struct err **err)
{
	return l->ops->stop(l, err);
}
static inline void launcher_free(struct launcher *l)
{
	if (l)
		l->ops->free(l);
}

/* The Nitro launcher: /dev/nitro_enclaves (or `device` when set, for tests) and AF_VSOCK.
 * Implemented in runtime/launcher_nitro.c. */
struct launcher_nitro_options {
	const char *device; /* NULL: /dev/nitro_enclaves */
};
int launcher_nitro_new(const struct launcher_nitro_options *opt, struct launcher **out, struct err **err);

/* What the Nitro launcher needs from the machine or the container it runs in, checked in this order
 * before a run reads or allocates anything (runtime/ne_preflight.c, docs/deploy.md): the device
 * (in a pod: the device plugin's aws.ec2.nitro/nitro_enclaves), AF_VSOCK sockets (refused by
 * default seccomp profiles), and enough free hugepages for the enclave's memory (the host's pools
 * capped by the hugetlb cgroup a pod's hugepages-2Mi/1Gi resource sets). */
enum nitro_missing { NITRO_MISSING_NONE, NITRO_MISSING_DEVICE, NITRO_MISSING_VSOCK, NITRO_MISSING_HUGEPAGES };
struct nitro_preflight {
	const char *device;        /* NULL: /dev/nitro_enclaves */
	const char *sysfs_root;    /* NULL: /sys (tests point these elsewhere) */
	const char *cpu_pool_path; /* NULL: the driver's ne_cpus parameter */
	const char *cgroup_root;   /* NULL: /sys/fs/cgroup */
	uint64_t memory_bytes;     /* the enclave's memory */
};
/* 0 when everything is there; else -1, *missing the first piece missing and the message naming it
 * and what to give the container. */
int nitro_preflight(const struct nitro_preflight *p, enum nitro_missing *missing, struct err **err);

/* The emulator launcher: QEMU's nitro-enclave machine with our vsock backend.
 * Implemented in runtime/launcher_emulator.c. */
struct vsock_forward;
struct vsock_listen;
/* The accelerator QEMU runs the enclave on (docs/emulator.md#accelerators). */
enum emu_accel {
	EMU_ACCEL_DEFAULT = 0, /* $ENCLAVER_EMULATOR_ACCEL when set, else auto */
	EMU_ACCEL_AUTO,        /* KVM when /dev/kvm opens and the guest boots on it, else TCG */
	EMU_ACCEL_KVM,         /* KVM or an error naming why not: never a silent fallback */
	EMU_ACCEL_TCG,         /* software emulation: slow, works everywhere */
};
/* "auto", "kvm", "tcg" -> *out; -1 for anything else. */
int emu_accel_parse(const char *s, enum emu_accel *out);
const char *emu_accel_name(enum emu_accel a);

struct launcher_emulator_options {
	const char *qemu;      /* NULL: $ENCLAVER_QEMU, then the build-qemu.sh cache, then PATH */
	bool acpi;             /* machine acpi=on (Debian's kernel needs it) */
	enum emu_accel accel;  /* EMU_ACCEL_DEFAULT: $ENCLAVER_EMULATOR_ACCEL, else auto */
	const char *kvm_device; /* NULL: /dev/kvm (tests point it elsewhere) */
	unsigned kvm_stall_s;   /* auto: a KVM boot silent this long goes to TCG; 0: 20 s */
	/* connect_guest: for the vsock backend to take the connection and the guest to accept or
	 * refuse it; 0: 30 s */
	unsigned connect_timeout_ms;
	/* Optional, for `enclaver emulate` (runtime/runtime.h has the types): fixed forwards and
	 * host listeners of the vsock backend, its Firecracker-style uds_path, and an fd (> 0) the
	 * debug console is written to live from QEMU's start (console_fd() then gives -1). */
	const struct vsock_forward *forwards;
	size_t n_forwards;
	const struct vsock_listen *listens;
	size_t n_listens;
	const char *uds_path;
	int console_stream_fd;
};
int launcher_emulator_new(const struct launcher_emulator_options *opt, struct launcher **out, struct err **err);

#endif
