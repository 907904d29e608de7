/* launcher_emulator: the launcher (runtime/launcher.h) on QEMU's nitro-enclave machine and our
 * vhost-user-vsock backend: the only code that spawns QEMU (enclaver emulate runs on it too). */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "wire/transport.h"
#include "runtime/internal.h"
#include "runtime/launcher.h"

#define DEFAULT_CID           16
#define DEFAULT_CPUS          2
#define DEFAULT_MEMORY_MB     1024
#define DEFAULT_HEARTBEAT_S   300 /* TCG boots a Debian kernel in 10 to 30 s on a loaded machine */
#define QEMU_STOP_GRACE_MS    5000
#define CONSOLE_TAIL          2048  /* console bytes kept for error messages */
#define QEMU_STDERR_MAX       16384 /* QEMU's own messages kept for error messages */
#define CONSOLE_PIPE_SIZE     (1 << 20)
#define CONNECT_GUEST_TIMEOUT 30000 /* ms for the guest to accept or refuse (TCG, loaded machine) */
#define SIGNAL_POLL_MS        200   /* how often start() looks for a pending SIGINT/SIGTERM */
/* Under --accel auto, a KVM guest whose console stays silent this long before the heartbeat is
 * taken as stuck and the boot is redone under TCG. A KVM boot prints its whole log and reaches
 * the heartbeat in a few seconds; a nested hypervisor that cannot run the guest stops it early
 * (docs/emulator.md#accelerators). */
#define KVM_STALL_S 20
#define KVM_DEVICE  "/dev/kvm"
#define ACCEL_ENV   "ENCLAVER_EMULATOR_ACCEL"

struct parent_listener {
	uint32_t port;
	char *path;
};

struct emu_launcher {
	struct launcher base; /* first: the ops see a struct launcher * */
	char *qemu;
	bool acpi;
	enum emu_accel accel;   /* AUTO, KVM or TCG: what was asked for */
	char *kvm_device;
	unsigned kvm_stall_s;
	unsigned connect_timeout_ms;
	enum emu_accel accel_ran; /* KVM or TCG: the attempt that reached the heartbeat; DEFAULT before */
	struct vsock_forward *user_forwards;
	size_t n_user_forwards;
	struct vsock_listen *user_listens;
	size_t n_user_listens;
	char *user_uds;
	int console_stream_fd;

	char *dir; /* private runtime folder */
	char *vhost_path, *heartbeat_path, *uds_path;
	struct parent_listener *parents;
	size_t n_parents;
	int hb_listen_fd;
	struct vsock_backend *backend;

	pid_t qemu_pid; /* 0 once reaped */
	int pidfd;
	int qemu_status; /* wait status; -1 while running or when we stopped QEMU ourselves */
	bool started, stopped;

	/* The console pump: a thread reading QEMU's stdout (the serial console) and stderr. */
	pthread_t pump;
	bool pump_running;
	int out_fd, errout_fd;      /* QEMU's stdout and stderr (read ends); the pump's */
	int console_r, console_w;   /* console_fd() and the pump's write end, debug mode only */
	int pump_stop_fd, pump_done_fd;
	pthread_mutex_t lock; /* tail, qemu_err, console_dropped */
	char tail[CONSOLE_TAIL];
	size_t tail_len;
	uint64_t console_bytes; /* since QEMU's start: the boot's progress */
	double attempt_start;   /* now_s() when this boot attempt's QEMU was spawned */
	double first_console;   /* now_s() of its first console byte; 0 before */
	struct buf qemu_err;
	uint64_t console_dropped;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static struct emu_launcher *emu_of(struct launcher *l)
{
	return (struct emu_launcher *)l;
}

/* ---------------------------------------------------------------- QEMU's binary */

/* --qemu, then $ENCLAVER_QEMU, then scripts/build-qemu.sh's cache, then PATH; NULL when none. */
static char *qemu_find(void)
{
	const char *env = getenv("ENCLAVER_QEMU");
	if (env && *env)
		return xstrdup(env);
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *cached = xdg && *xdg
	                   ? xasprintf("%s/enclaver/qemu-10.0.2/bin/qemu-system-x86_64", xdg)
	                   : xasprintf("%s/.cache/enclaver/qemu-10.0.2/bin/qemu-system-x86_64", home ? home : "");
	if (access(cached, X_OK) == 0)
		return cached;
	free(cached);
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = xstrdup(path ? path : "/usr/bin");
	for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/qemu-system-x86_64", dir);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* ---------------------------------------------------------------- accelerators */

int emu_accel_parse(const char *s, enum emu_accel *out)
{
	static const struct {
		const char *name;
		enum emu_accel a;
	} names[] = {{"auto", EMU_ACCEL_AUTO}, {"kvm", EMU_ACCEL_KVM}, {"tcg", EMU_ACCEL_TCG}};
	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].a;
			return 0;
		}
	return -1;
}

const char *emu_accel_name(enum emu_accel a)
{
	switch (a) {
	case EMU_ACCEL_KVM: return "kvm";
	case EMU_ACCEL_TCG: return "tcg";
	default: return "auto";
	}
}

/* 0 when the KVM device opens read-write (QEMU needs that), else -1 with errno. */
static int kvm_open_check(const char *device)
{
	int fd = open(device, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* QEMU's words when KVM cannot run the guest: it pauses the VM and stays alive. */
static bool kvm_failed_message(struct buf *qemu_err)
{
	static const char *const marks[] = {"KVM internal error", "KVM: entry failed", "kvm run failed"};
	const char *text = buf_str(qemu_err);
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		if (strstr(text, marks[i]))
			return true;
	return false;
}

/* ---------------------------------------------------------------- the console pump */

static void tail_add(struct emu_launcher *e, const char *data, size_t len)
{
	if (len >= CONSOLE_TAIL) {
		memcpy(e->tail, data + len - CONSOLE_TAIL, CONSOLE_TAIL);
		e->tail_len = CONSOLE_TAIL;
		return;
	}
	if (e->tail_len + len > CONSOLE_TAIL) {
		size_t drop = e->tail_len + len - CONSOLE_TAIL;
		memmove(e->tail, e->tail + drop, e->tail_len - drop);
		e->tail_len -= drop;
	}
	memcpy(e->tail + e->tail_len, data, len);
	e->tail_len += len;
}

/* Console bytes go to the tail, then to the live stream fd or the console pipe. The pipe is
 * non-blocking: when its reader lags by more than its megabyte, bytes are dropped (and counted)
 * rather than stalling the enclave's console. */
static void pump_console(struct emu_launcher *e, const char *data, size_t len)
{
	pthread_mutex_lock(&e->lock);
	tail_add(e, data, len);
	if (e->console_bytes == 0)
		e->first_console = now_s();
	e->console_bytes += len;
	pthread_mutex_unlock(&e->lock);
	if (e->console_stream_fd > 0) {
		struct err *err = NULL;
		if (io_write_full(e->console_stream_fd, data, len, &err) < 0)
			err_free(&err); /* a closed stdout must not stop the enclave */
		return;
	}
	if (e->console_w < 0)
		return;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(e->console_w, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EPIPE) {
			close_fd(&e->console_w); /* the reader closed it: nobody wants the console */
			return;
		}
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off < len) {
		pthread_mutex_lock(&e->lock);
		e->console_dropped += len - off;
		pthread_mutex_unlock(&e->lock);
	}
}

static void *pump_thread(void *arg)
{
	struct emu_launcher *e = arg;
	char data[16384];
	while (e->out_fd >= 0 || e->errout_fd >= 0) {
		struct pollfd pfd[3] = {
		    {.fd = e->pump_stop_fd, .events = POLLIN},
		    {.fd = e->out_fd, .events = POLLIN},
		    {.fd = e->errout_fd, .events = POLLIN},
		};
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		for (int i = 1; i < 3; i++) {
			if (!pfd[i].revents)
				continue;
			int *fd = i == 1 ? &e->out_fd : &e->errout_fd;
			ssize_t n = read(*fd, data, sizeof(data));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				close_fd(fd);
				continue;
			}
			if (i == 1) {
				pump_console(e, data, (size_t)n);
			} else {
				pthread_mutex_lock(&e->lock);
				if (e->qemu_err.len < QEMU_STDERR_MAX)
					buf_append(&e->qemu_err, data, (size_t)n);
				pthread_mutex_unlock(&e->lock);
			}
		}
	}
	uint64_t one = 1;
	ssize_t r = write(e->pump_done_fd, &one, sizeof(one));
	(void)r;
	return NULL;
}

/* Waits up to `ms` for the pump to read QEMU's output to its end, then stops it and joins. */
static void pump_finish(struct emu_launcher *e, int ms)
{
	if (!e->pump_running)
		return;
	struct pollfd pfd = {.fd = e->pump_done_fd, .events = POLLIN};
	while (poll(&pfd, 1, ms) < 0 && errno == EINTR)
		;
	uint64_t one = 1;
	ssize_t r = write(e->pump_stop_fd, &one, sizeof(one));
	(void)r;
	pthread_join(e->pump, NULL);
	e->pump_running = false;
	/* Both eventfds back to zero (non-blocking reads below never wait: the counters are set),
	 * so that a pump started for a next boot attempt neither stops at once nor is thought done. */
	uint64_t v;
	r = read(e->pump_stop_fd, &v, sizeof(v));
	struct pollfd done = {.fd = e->pump_done_fd, .events = POLLIN};
	if (poll(&done, 1, 0) == 1)
		r = read(e->pump_done_fd, &v, sizeof(v));
	(void)r;
	close_fd(&e->out_fd);
	close_fd(&e->errout_fd);
	pthread_mutex_lock(&e->lock);
	uint64_t dropped = e->console_dropped;
	pthread_mutex_unlock(&e->lock);
	if (dropped)
		log_warn("emulator: %llu console bytes dropped: nobody read the console", (unsigned long long)dropped);
}

/* A thread with every signal blocked, so that signals reach only the caller's threads. */
static int thread_start(pthread_t *t, void *(*fn)(void *), void *arg, struct err **err)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		errno = r;
		return err_sys(err, "start a thread");
	}
	return 0;
}

/* ---------------------------------------------------------------- QEMU */

/* Stops QEMU: SIGTERM, then SIGKILL after a grace period; reaps it. */
static void qemu_kill(struct emu_launcher *e)
{
	if (e->qemu_pid <= 0)
		return;
	int status = 0;
	if (waitpid(e->qemu_pid, &status, WNOHANG) == e->qemu_pid) {
		e->qemu_status = status; /* it ended on its own */
		e->qemu_pid = 0;
		return;
	}
	kill(e->qemu_pid, SIGTERM);
	struct pollfd pfd = {.fd = e->pidfd, .events = POLLIN};
	double end = now_s() + QEMU_STOP_GRACE_MS / 1000.0;
	for (;;) {
		double left = end - now_s();
		if (left <= 0)
			break;
		int r = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (r > 0 || (r < 0 && errno != EINTR))
			break;
	}
	if (waitpid(e->qemu_pid, &status, WNOHANG) != e->qemu_pid) {
		log_warn("emulator: QEMU (pid %d) ignored SIGTERM for %d s: killing it", (int)e->qemu_pid,
		         QEMU_STOP_GRACE_MS / 1000);
		kill(e->qemu_pid, SIGKILL);
		while (waitpid(e->qemu_pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	e->qemu_status = -1;
	e->qemu_pid = 0;
}

/* Reaps QEMU once it has exited (exit_fd readable); returns false while it runs. */
static bool qemu_reap(struct emu_launcher *e)
{
	if (e->qemu_pid <= 0)
		return true;
	int status;
	if (waitpid(e->qemu_pid, &status, WNOHANG) != e->qemu_pid)
		return false;
	e->qemu_status = status;
	e->qemu_pid = 0;
	return true;
}

/* Spawns QEMU on accelerator `acc` (EMU_ACCEL_KVM or EMU_ACCEL_TCG). */
static int qemu_spawn(struct emu_launcher *e, const struct launch_request *req, enum emu_accel acc, uint64_t cid,
                      unsigned cpus, unsigned mem_mb, struct err **err)
{
	char machine[160], smp[16], mem[24];
	snprintf(machine, sizeof(machine), "nitro-enclave,vsock=c0,id=i-0000000000000000-enc%016llx%s",
	         (unsigned long long)cid, e->acpi ? ",acpi=on" : "");
	snprintf(smp, sizeof(smp), "%u", cpus);
	snprintf(mem, sizeof(mem), "%uM", mem_mb);
	_cleanup_free_ char *chardev = xasprintf("socket,id=c0,path=%s", e->vhost_path);
	const char *argv[40];
	int n = 0;
	argv[n++] = e->qemu;
	/* Firmware (qboot, option ROMs) from Debian's qemu-system-data and seabios packages. */
	static const char *const fw_dirs[] = {"/usr/share/qemu", "/usr/share/seabios"};
	for (size_t i = 0; i < sizeof(fw_dirs) / sizeof(fw_dirs[0]); i++) {
		struct stat st;
		if (stat(fw_dirs[i], &st) == 0) {
			argv[n++] = "-L";
			argv[n++] = fw_dirs[i];
		}
	}
	argv[n++] = "-M";
	argv[n++] = machine;
	argv[n++] = "-accel";
	argv[n++] = emu_accel_name(acc);
	/* Under KVM the host's CPU less IA32_ARCH_CAPABILITIES: nested hypervisors refuse QEMU's
	 * write of that MSR and QEMU aborts at start ("failed to set MSR 0x10a"); the guest only
	 * loses a hint about which CPU bugs it may skip mitigating. */
	argv[n++] = "-cpu";
	argv[n++] = acc == EMU_ACCEL_KVM ? "host,-arch-capabilities" : "max";
	/* Notifications handled where the guest writes them, not through ioeventfds: when the
	 * guest sets DRIVER_OK, QEMU kicks every queue of an ioeventfd device itself ("requests
	 * already in the vring"), and Linux's NSM driver starts its hwrng thread, which sends
	 * requests, before DRIVER_OK. A self-kick between the driver's two buffers of a request
	 * made QEMU's virtio-nsm see a request without its response buffer and mark the device
	 * broken for good, in about 1 boot in 20 under TCG (docs/emulator.md, NSM answers that
	 * never come). The vhost-user vsock device still gets its kicks: QEMU passes the guest's
	 * notify on to the backend's eventfd. */
	argv[n++] = "-global";
	argv[n++] = "virtio-mmio.ioeventfd=off";
	argv[n++] = "-smp";
	argv[n++] = smp;
	argv[n++] = "-m";
	argv[n++] = mem;
	argv[n++] = "-nographic";
	argv[n++] = "-no-reboot";
	argv[n++] = "-chardev";
	argv[n++] = chardev;
	argv[n++] = "-kernel";
	argv[n++] = req->eif_path;
	/* Not measured (appended after the EIF's cmdline): a TSC rate so the kernel does not hang
	 * calibrating under TCG, and a reboot method that makes QEMU exit (-no-reboot). */
	argv[n++] = "-append";
	argv[n++] = "tsc_early_khz=2000000 reboot=t";
	argv[n] = NULL;
	if (log_get_level() >= LOG_DEBUG) {
		_cleanup_buf_ struct buf cmd = {0};
		for (int i = 0; i < n; i++)
			buf_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
		log_debug("emulator: %s", buf_str(&cmd));
	}

	/* Everything the child needs is prepared here: after fork only async-signal-safe calls (the
	 * backend thread may hold locks). */
	_cleanup_free_ char *exec_msg = xasprintf("exec %s: ", e->qemu);
	int out[2] = {-1, -1}, errp[2] = {-1, -1};
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		err_sys(err, "pipe");
		goto fail;
	}
	sigset_t none;
	sigemptyset(&none);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		err_sys(err, "fork");
		goto fail;
	}
	if (pid == 0) {
		/* Its own process group (a terminal's ^C reaches only us, and we stop it); dies with
		 * us if we are killed; default signal handling. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0)
			_exit(127);
		execv(e->qemu, (char *const *)argv);
		const char *why = strerrordesc_np(errno);
		ssize_t r = write(2, exec_msg, strlen(exec_msg));
		r = write(2, why ? why : "?", why ? strlen(why) : 1);
		r = write(2, "\n", 1);
		(void)r;
		_exit(127);
	}
	close(out[1]);
	close(errp[1]);
	e->qemu_pid = pid;
	e->out_fd = out[0];
	e->errout_fd = errp[0];
	e->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (e->pidfd < 0) {
		err_sys(err, "pidfd_open (Linux 5.3 or later is needed)");
		qemu_kill(e);
		return -1;
	}
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return -1;
}

/* ---------------------------------------------------------------- heartbeat */

/* One heartbeat exchange on an accepted connection: read 0xB7, answer 0xB7. Returns 1 when done,
 * 0 to keep waiting (the guest may give up on a connection and try again). */
static int heartbeat_read(int *fd, struct err **err)
{
	uint8_t byte;
	ssize_t n = recv(*fd, &byte, 1, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		close_fd(fd);
		return 0;
	}
	if (byte != WIRE_HEARTBEAT_BYTE) {
		close_fd(fd);
		return err_set(err, EPROTO, "heartbeat: the enclave sent 0x%02x, expected 0x%02x", byte,
		               WIRE_HEARTBEAT_BYTE);
	}
	uint8_t reply = WIRE_HEARTBEAT_BYTE;
	if (send(*fd, &reply, 1, MSG_NOSIGNAL) != 1) {
		close_fd(fd);
		return err_sys(err, "heartbeat: reply");
	}
	close_fd(fd);
	return 1;
}

static bool stop_signal_pending(void)
{
	sigset_t pending;
	if (sigpending(&pending) < 0)
		return false;
	return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1;
}

/* The console's last bytes and QEMU's stderr, for error messages. */
static void failure_context(struct emu_launcher *e, struct buf *out)
{
	pthread_mutex_lock(&e->lock);
	if (e->qemu_err.len)
		buf_printf(out, ":\n%s", buf_str(&e->qemu_err));
	if (e->tail_len)
		buf_printf(out, "\nconsole ends with:\n%.*s", (int)e->tail_len, e->tail);
	pthread_mutex_unlock(&e->lock);
}

/* How heartbeat_wait watches a KVM boot. */
enum kvm_watch {
	KVM_WATCH_NONE,   /* TCG */
	KVM_WATCH_ERRORS, /* --accel kvm: QEMU's KVM errors fail the boot at once */
	KVM_WATCH_ALL,    /* auto: QEMU exiting, KVM errors or a silent console hand over to TCG */
};

/* heartbeat_wait's result when KVM could not boot the guest (auto retries under TCG). */
#define HEARTBEAT_KVM_FAILED 1

/* Polls until the heartbeat, QEMU's exit, a pending SIGINT/SIGTERM or the deadline. Under KVM
 * (watch != NONE) it also returns HEARTBEAT_KVM_FAILED with *why set when QEMU reports a KVM
 * error or (KVM_WATCH_ALL) exits or its console stays silent for KVM_STALL_S; QEMU is stopped
 * then. */
static int heartbeat_wait(struct emu_launcher *e, unsigned timeout_s, enum kvm_watch watch, double *hb_s,
                          struct buf *why, struct err **err)
{
	double start = now_s(), deadline = start + timeout_s, last_progress = start;
	uint64_t seen_bytes = 0;
	_cleanup_close_ int hb_fd = -1;
	for (;;) {
		struct pollfd pfd[3] = {
		    {.fd = e->pidfd, .events = POLLIN},
		    {.fd = hb_fd >= 0 ? -1 : e->hb_listen_fd, .events = POLLIN},
		    {.fd = hb_fd, .events = POLLIN},
		};
		double left = deadline - now_s();
		int timeout = left <= 0 ? 0 : (int)(left * 1000) + 1;
		if (timeout > SIGNAL_POLL_MS)
			timeout = SIGNAL_POLL_MS;
		if (poll(pfd, 3, timeout) < 0 && errno != EINTR)
			return err_sys(err, "poll");
		if (stop_signal_pending()) {
			qemu_kill(e);
			return err_set(err, EINTR, "interrupted while the enclave was booting");
		}
		if (pfd[1].revents) {
			int fd = accept4(e->hb_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd >= 0)
				hb_fd = fd;
		}
		if (hb_fd >= 0 && pfd[2].revents) {
			int h = heartbeat_read(&hb_fd, err);
			if (h < 0)
				return -1;
			if (h == 1) {
				*hb_s = now_s() - start;
				return 0;
			}
		}
		if (pfd[0].revents && qemu_reap(e)) {
			pump_finish(e, 2000);
			int code = WIFEXITED(e->qemu_status) ? WEXITSTATUS(e->qemu_status) : -1;
			if (watch == KVM_WATCH_ALL) {
				pthread_mutex_lock(&e->lock);
				const char *msg = e->qemu_err.len ? buf_str(&e->qemu_err) : "no message";
				buf_printf(why, "QEMU exited (status %d) under KVM: %.*s", code, (int)strcspn(msg, "\n"), msg);
				pthread_mutex_unlock(&e->lock);
				return HEARTBEAT_KVM_FAILED;
			}
			_cleanup_buf_ struct buf ctx = {0};
			failure_context(e, &ctx);
			return err_set(err, ECHILD, "QEMU exited (status %d) before the enclave's heartbeat%s", code,
			               buf_str(&ctx));
		}
		if (watch != KVM_WATCH_NONE) {
			pthread_mutex_lock(&e->lock);
			bool kvm_error = kvm_failed_message(&e->qemu_err);
			uint64_t bytes = e->console_bytes;
			pthread_mutex_unlock(&e->lock);
			if (bytes != seen_bytes) {
				seen_bytes = bytes;
				last_progress = now_s();
			}
			bool stalled = watch == KVM_WATCH_ALL && now_s() - last_progress >= e->kvm_stall_s;
			if (kvm_error || stalled) {
				qemu_kill(e);
				pump_finish(e, 2000);
				if (kvm_error) {
					pthread_mutex_lock(&e->lock);
					const char *msg = buf_str(&e->qemu_err);
					const char *mark = strstr(msg, "KVM");
					buf_printf(why, "QEMU reported a KVM error after %.1f s: %.*s", now_s() - start,
					           (int)strcspn(mark ? mark : msg, "\n"), mark ? mark : msg);
					pthread_mutex_unlock(&e->lock);
				} else {
					buf_printf(why, "the guest made no progress under KVM (console silent for %u s, %llu bytes "
					                "in all)",
					           e->kvm_stall_s, (unsigned long long)bytes);
				}
				if (watch == KVM_WATCH_ALL)
					return HEARTBEAT_KVM_FAILED;
				_cleanup_buf_ struct buf ctx = {0};
				failure_context(e, &ctx);
				return err_set(err, ENOEXEC, "--accel kvm: %s%s", buf_str(why), buf_str(&ctx));
			}
		}
		if (now_s() >= deadline) {
			qemu_kill(e);
			pump_finish(e, 2000);
			pthread_mutex_lock(&e->lock);
			int r = err_set(err, ETIMEDOUT, "no heartbeat from the enclave within %u s; console ends with:\n%.*s",
			                timeout_s, (int)e->tail_len, e->tail);
			pthread_mutex_unlock(&e->lock);
			return r;
		}
	}
}

/* ---------------------------------------------------------------- the ops */

static char *runtime_dir_create(struct err **err)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	char *dir = xasprintf("%s/enclaver-emu.XXXXXX", base);
	if (!mkdtemp(dir)) {
		err_sys(err, "create a runtime folder %s", dir);
		free(dir);
		return NULL;
	}
	return dir;
}

static int emu_listen_parent(struct launcher *l, uint32_t port, int *fd, struct err **err)
{
	struct emu_launcher *e = emu_of(l);
	if (e->started)
		return err_set(err, EINVAL, "emulator: listen on parent port %u: must come before start", port);
	if (port == WIRE_HEARTBEAT_PORT)
		return err_set(err, EINVAL, "emulator: parent port %u is the heartbeat's", port);
	for (size_t i = 0; i < e->n_parents; i++)
		if (e->parents[i].port == port)
			return err_set(err, EADDRINUSE, "emulator: parent port %u is already listened on", port);
	for (size_t i = 0; i < e->n_user_forwards; i++)
		if (e->user_forwards[i].port == port)
			return err_set(err, EADDRINUSE, "emulator: parent port %u is already forwarded", port);
	char *path = xasprintf("%s/parent-%u.sock", e->dir, port);
	struct vsock_endpoint ep = {.unix_path = path};
	int s = vsock_endpoint_listen(&ep, err);
	if (s < 0) {
		free(path);
		return err_wrap(err, "emulator: listen on parent port %u", port);
	}
	e->parents = xrealloc(e->parents, (e->n_parents + 1) * sizeof(*e->parents));
	e->parents[e->n_parents++] = (struct parent_listener){.port = port, .path = path};
	*fd = s;
	return 0;
}

static int emu_stop(struct launcher *l, struct err **err);

/* One boot: QEMU on `acc`, its console pump, the wait for the heartbeat. Returns 0 at the
 * heartbeat, HEARTBEAT_KVM_FAILED (QEMU stopped, the pump finished, the state reset for the
 * next attempt) when KVM could not boot the guest under auto, -1 on failure. */
static int boot_attempt(struct emu_launcher *e, const struct launch_request *req, enum emu_accel acc, uint64_t cid,
                        unsigned cpus, unsigned mem, unsigned timeout, enum kvm_watch watch, double *hb_s,
                        struct buf *why, struct err **err)
{
	e->attempt_start = now_s();
	e->first_console = 0;
	if (qemu_spawn(e, req, acc, cid, cpus, mem, err) < 0)
		return -1;
	if (thread_start(&e->pump, pump_thread, e, err) < 0)
		return -1;
	e->pump_running = true;
	log_info("emulator: started QEMU (pid %d), guest CID %llu, %u vCPUs, %u MiB, %s", (int)e->qemu_pid,
	         (unsigned long long)cid, cpus, mem, emu_accel_name(acc));
	int r = heartbeat_wait(e, timeout, watch, hb_s, why, err);
	if (r != HEARTBEAT_KVM_FAILED)
		return r;
	/* QEMU is gone and the pump has finished: start the next attempt afresh. The vsock backend
	 * stays; it takes QEMU's next connection. */
	close_fd(&e->pidfd);
	pthread_mutex_lock(&e->lock);
	e->tail_len = 0;
	e->console_bytes = 0;
	e->qemu_err.len = 0;
	pthread_mutex_unlock(&e->lock);
	e->qemu_status = -1;
	return r;
}

static int emu_start(struct launcher *l, const struct launch_request *req, struct launch_info *info,
                     struct err **err)
{
	struct emu_launcher *e = emu_of(l);
	if (e->started)
		return err_set(err, EALREADY, "emulator: already started");
	e->started = true;
	uint64_t cid = req->cid ? req->cid : DEFAULT_CID;
	unsigned cpus = req->cpu_count ? req->cpu_count : DEFAULT_CPUS;
	unsigned mem = req->memory_mb ? req->memory_mb : DEFAULT_MEMORY_MB;
	unsigned timeout = req->heartbeat_timeout_s ? req->heartbeat_timeout_s : DEFAULT_HEARTBEAT_S;
	if (cid < 4 || cid > UINT32_MAX - 1)
		return err_set(err, EINVAL, "emulator: CID %llu: expected 4 to 4294967294", (unsigned long long)cid);
	if (cpus > LAUNCH_MAX_CPUS)
		return err_set(err, EINVAL, "emulator: %u vCPUs: at most %d", cpus, LAUNCH_MAX_CPUS);
	struct stat st;
	if (!req->eif_path || stat(req->eif_path, &st) < 0)
		return err_sys(err, "%s", req->eif_path ? req->eif_path : "(no EIF)");

	/* The heartbeat port and every listen_parent port go to our listeners, then the caller's
	 * fixed forwards. */
	_cleanup_free_ struct vsock_forward *fw = xcalloc(e->n_parents + e->n_user_forwards + 1, sizeof(*fw));
	size_t nf = 0;
	fw[nf++] = (struct vsock_forward){.port = WIRE_HEARTBEAT_PORT, .to = {.unix_path = e->heartbeat_path}};
	for (size_t i = 0; i < e->n_parents; i++)
		fw[nf++] = (struct vsock_forward){.port = e->parents[i].port, .to = {.unix_path = e->parents[i].path}};
	for (size_t i = 0; i < e->n_user_forwards; i++)
		fw[nf++] = e->user_forwards[i];
	struct vsock_backend_config bc = {
	    .vhost_socket = e->vhost_path,
	    .guest_cid = cid,
	    .forwards = fw,
	    .n_forwards = nf,
	    .listens = e->user_listens,
	    .n_listens = e->n_user_listens,
	    .uds_path = e->uds_path,
	};
	if (vsock_backend_start(&bc, &e->backend, err) < 0)
		return err_wrap(err, "emulator");

	if (req->debug_mode && e->console_stream_fd <= 0) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0) {
			err_sys(err, "pipe");
			goto fail;
		}
		e->console_r = p[0];
		e->console_w = p[1];
		fcntl(e->console_w, F_SETFL, O_NONBLOCK);
		/* Room for a whole boot log until the caller reads it (start returns after the boot). */
		if (fcntl(e->console_w, F_SETPIPE_SZ, CONSOLE_PIPE_SIZE) < 0)
			log_debug("emulator: console pipe size: %s", strerror(errno));
	}
	if (!req->debug_mode)
		e->console_stream_fd = -1;

	/* KVM first unless TCG was asked for; auto falls back to TCG once, with one warning. */
	enum emu_accel acc = EMU_ACCEL_TCG;
	if (e->accel != EMU_ACCEL_TCG) {
		if (kvm_open_check(e->kvm_device) == 0) {
			acc = EMU_ACCEL_KVM;
		} else if (e->accel == EMU_ACCEL_KVM) {
			err_sys(err, "emulator: --accel kvm: %s", e->kvm_device);
			goto fail;
		} else {
			log_debug("emulator: %s: %s: using TCG", e->kvm_device, strerror(errno));
		}
	}
	double hb_s = -1;
	for (;;) {
		enum kvm_watch watch = acc == EMU_ACCEL_TCG        ? KVM_WATCH_NONE
		                       : e->accel == EMU_ACCEL_AUTO ? KVM_WATCH_ALL
		                                                    : KVM_WATCH_ERRORS;
		_cleanup_buf_ struct buf why = {0};
		int r = boot_attempt(e, req, acc, cid, cpus, mem, timeout, watch, &hb_s, &why, err);
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		log_warn("emulator: %s; booting again under TCG (slower; --accel tcg or %s=tcg skips KVM)",
		         buf_str(&why), ACCEL_ENV);
		acc = EMU_ACCEL_TCG;
	}
	e->accel_ran = acc;
	pthread_mutex_lock(&e->lock);
	double first = e->first_console ? e->first_console - e->attempt_start : -1;
	pthread_mutex_unlock(&e->lock);
	/* The first console byte is the kernel's setup code: what comes before it is QEMU, the
	 * firmware and the EIF's loading (docs/emulator.md, where the boot's time goes). */
	if (first >= 0)
		log_info("emulator: heartbeat after %.2f s (%s; first console byte after %.2f s)", hb_s, emu_accel_name(acc), first);
	else
		log_info("emulator: heartbeat after %.2f s (%s)", hb_s, emu_accel_name(acc));

	memset(info, 0, sizeof(*info));
	snprintf(info->enclave_id, sizeof(info->enclave_id), "i-0000000000000000-enc%016llx", (unsigned long long)cid);
	const char *name = req->name;
	if (!name) {
		const char *slash = strrchr(req->eif_path, '/');
		name = slash ? slash + 1 : req->eif_path;
	}
	snprintf(info->name, sizeof(info->name), "%s", name);
	info->cid = cid;
	info->process_id = getpid();
	info->cpu_count = cpus;
	for (unsigned i = 0; i < cpus; i++)
		info->cpu_ids[i] = i;
	info->memory_mib = mem;
	info->debug_mode = req->debug_mode;
	info->heartbeat_s = hb_s;
	return 0;
fail:;
	struct err *stop_err = NULL;
	emu_stop(l, &stop_err);
	err_free(&stop_err);
	return -1;
}

/* The connection into the guest goes through the vsock backend's socket (uds_path): the caller
 * sends "CONNECT <port>\n"; the backend answers "OK <host port>\n" once the guest accepted, or
 * closes the socket when the guest refused. emu_connect_guest waits for the answer; the event
 * loop's connect (connect_guest_start, then connect_guest_step) reads it when it comes. */

static int backend_addr(struct emu_launcher *e, uint32_t port, struct transport_addr *a, struct err **err)
{
	if (!e->started || e->stopped || !e->backend)
		return err_set(err, ESRCH, "emulator: the enclave is not running");
	_cleanup_free_ char *text = xasprintf("unix:%s", e->uds_path);
	if (transport_parse(text, a, err) < 0)
		return err_wrap(err, "emulator: connect to enclave port %u", port);
	return 0;
}

static int connect_line_send(int s, uint32_t port, struct err **err)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (send(s, line, (size_t)n, MSG_NOSIGNAL) != n)
		return err_sys(err, "emulator: connect to enclave port %u", port);
	return 0;
}

/* One look at the backend's answer, without waiting: 0 with *waiting false once "OK <port>\n"
 * was read (and nothing after it: the guest's first bytes may follow at once), 0 with *waiting
 * true while it has not come; -1 with ECONNREFUSED when the guest refused, EPROTO for anything
 * else. The backend writes the line with one send, so it arrives whole: a part of one is waited
 * for like none. */
static int connect_answer_read(int s, uint32_t port, bool *waiting, struct err **err)
{
	char line[32];
	ssize_t n;
	do
		n = recv(s, line, sizeof(line) - 1, MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	*waiting = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	if (*waiting)
		return 0;
	if (n < 0 && errno != ECONNRESET)
		return err_sys(err, "emulator: enclave port %u", port);
	if (n <= 0)
		return err_set(err, ECONNREFUSED, "emulator: enclave port %u: connection refused", port);
	char *nl = memchr(line, '\n', (size_t)n);
	if (!nl && (size_t)n < sizeof(line) - 1) {
		*waiting = true;
		return 0;
	}
	if (!nl)
		return err_set(err, EPROTO, "emulator: enclave port %u: bad answer from the vsock backend", port);
	size_t len = (size_t)(nl - line) + 1;
	if (recv(s, line, len, MSG_DONTWAIT) != (ssize_t)len)
		return err_sys(err, "emulator: enclave port %u", port);
	line[len - 1] = '\0';
	if (!str_has_prefix(line, "OK "))
		return err_set(err, EPROTO, "emulator: enclave port %u: the vsock backend said \"%s\"", port, line);
	return 0;
}

static int emu_connect_guest(struct launcher *l, uint32_t port, int *fd, struct err **err)
{
	struct emu_launcher *e = emu_of(l);
	struct transport_addr a;
	if (backend_addr(e, port, &a, err) < 0)
		return -1;
	/* One bound for the whole exchange: the backend taking the connection (a full backlog
	 * would otherwise hold the caller as long as the kernel lets a connect wait), the CONNECT
	 * line, and the guest's answer. */
	double deadline = now_s() + e->connect_timeout_ms / 1000.0;
	_cleanup_close_ int s = transport_connect_timed(&a, (int)e->connect_timeout_ms, err);
	if (s < 0)
		return err_wrap(err, "emulator: connect to enclave port %u", port);
	if (connect_line_send(s, port, err) < 0)
		return -1;
	for (;;) {
		bool waiting;
		if (connect_answer_read(s, port, &waiting, err) < 0)
			return -1;
		if (!waiting)
			break;
		struct pollfd pfd = {.fd = s, .events = POLLIN};
		double left = deadline - now_s();
		int r = left <= 0 ? 0 : poll(&pfd, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno != EINTR)
			return err_sys(err, "poll");
		if (r == 0)
			return err_set(err, ETIMEDOUT, "emulator: enclave port %u: no answer within %u ms", port,
			               e->connect_timeout_ms);
	}
	*fd = s;
	s = -1; /* ours no more: _cleanup_close_ must not close it */
	return 0;
}

/* The same for the event loop: the backend's socket takes the connection at once or not at all
 * (a unix socket's connect does not wait when non-blocking: EAGAIN while its backlog is full),
 * the CONNECT line goes into the new socket's empty buffer, and the answer is read by
 * emu_connect_guest_step when it comes; the caller bounds the wait. */
static int emu_connect_guest_start(struct launcher *l, uint32_t port, int *fd, bool *in_progress, struct err **err)
{
	struct emu_launcher *e = emu_of(l);
	struct transport_addr a;
	if (backend_addr(e, port, &a, err) < 0)
		return -1;
	bool unix_waits;
	_cleanup_close_ int s = transport_connect_start(&a, &unix_waits, err);
	if (s < 0)
		return err_wrap(err, "emulator: connect to enclave port %u", port);
	if (unix_waits) /* not on Linux: a unix socket connects or fails at once */
		return err_set(err, EAGAIN, "emulator: connect to enclave port %u: %s still connecting", port, a.text);
	if (connect_line_send(s, port, err) < 0)
		return -1;
	*in_progress = true;
	*fd = s;
	s = -1;
	return 0;
}

static int emu_connect_guest_step(struct launcher *l, uint32_t port, int fd, uint32_t *events, struct err **err)
{
	(void)l;
	bool waiting;
	if (connect_answer_read(fd, port, &waiting, err) < 0)
		return -1;
	*events = waiting ? EPOLLIN : 0;
	return 0;
}

static int emu_exit_fd(struct launcher *l)
{
	return emu_of(l)->pidfd;
}

static int emu_console_fd(struct launcher *l)
{
	return emu_of(l)->console_r;
}

static int emu_stop(struct launcher *l, struct err **err)
{
	(void)err;
	struct emu_launcher *e = emu_of(l);
	if (e->stopped || !e->started)
		return 0;
	e->stopped = true;
	qemu_kill(e);
	/* QEMU has exited: the pump reads what is left of the console, then ends; the console's
	 * reader sees the end. */
	pump_finish(e, 2000);
	close_fd(&e->console_w);
	/* QEMU's own messages (a device it marked broken, a KVM error) help explain a guest that
	 * hung; -v shows them. */
	pthread_mutex_lock(&e->lock);
	if (e->qemu_err.len)
		log_info("emulator: QEMU's messages:\n%s", buf_str(&e->qemu_err));
	pthread_mutex_unlock(&e->lock);
	if (e->backend) {
		struct vsock_backend_stats s;
		vsock_backend_stats(e->backend, &s);
		log_info("emulator: vsock: %llu connections, %llu bytes to the guest, %llu from it, %llu packets dropped",
		         (unsigned long long)s.connections, (unsigned long long)s.bytes_to_guest,
		         (unsigned long long)s.bytes_from_guest, (unsigned long long)s.dropped_packets);
		vsock_backend_stop(e->backend);
		e->backend = NULL;
	}
	return 0;
}

static void emu_free(struct launcher *l)
{
	struct emu_launcher *e = emu_of(l);
	struct err *err = NULL;
	emu_stop(l, &err);
	err_free(&err);
	close_fd(&e->hb_listen_fd);
	close_fd(&e->pidfd);
	close_fd(&e->console_r);
	close_fd(&e->console_w);
	close_fd(&e->out_fd);
	close_fd(&e->errout_fd);
	close_fd(&e->pump_stop_fd);
	close_fd(&e->pump_done_fd);
	for (size_t i = 0; i < e->n_parents; i++) {
		unlink(e->parents[i].path);
		free(e->parents[i].path);
	}
	free(e->parents);
	if (e->vhost_path)
		unlink(e->vhost_path);
	if (e->heartbeat_path)
		unlink(e->heartbeat_path);
	if (e->uds_path && !e->user_uds)
		unlink(e->uds_path);
	if (e->dir && rmdir(e->dir) < 0)
		log_warn("emulator: remove %s: %s", e->dir, strerror(errno));
	for (size_t i = 0; i < e->n_user_forwards; i++)
		free((char *)e->user_forwards[i].to.unix_path);
	for (size_t i = 0; i < e->n_user_listens; i++)
		free((char *)e->user_listens[i].from.unix_path);
	free(e->user_forwards);
	free(e->user_listens);
	free(e->user_uds);
	free(e->dir);
	free(e->vhost_path);
	free(e->heartbeat_path);
	free(e->uds_path);
	free(e->qemu);
	free(e->kvm_device);
	buf_free(&e->qemu_err);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static const struct launcher_ops emu_ops = {
    .name = "emulator",
    .listen_parent = emu_listen_parent,
    .start = emu_start,
    .connect_guest = emu_connect_guest,
    .connect_guest_start = emu_connect_guest_start,
    .connect_guest_step = emu_connect_guest_step,
    .exit_fd = emu_exit_fd,
    .console_fd = emu_console_fd,
    .stop = emu_stop,
    .free = emu_free,
};

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

int launcher_emulator_new(const struct launcher_emulator_options *opt, struct launcher **out, struct err **err)
{
	static const struct launcher_emulator_options defaults = {.acpi = true};
	if (!opt)
		opt = &defaults;
	char *qemu = opt->qemu ? xstrdup(opt->qemu) : qemu_find();
	if (!qemu)
		return err_set(err, ENOENT,
		               "no qemu-system-x86_64 with the nitro-enclave machine: run scripts/build-qemu.sh "
		               "or pass --qemu");
	struct emu_launcher *e = xcalloc(1, sizeof(*e));
	e->base.ops = &emu_ops;
	e->qemu = qemu;
	e->acpi = opt->acpi;
	e->accel = opt->accel;
	e->kvm_device = xstrdup(opt->kvm_device ? opt->kvm_device : KVM_DEVICE);
	e->kvm_stall_s = opt->kvm_stall_s ? opt->kvm_stall_s : KVM_STALL_S;
	e->connect_timeout_ms = opt->connect_timeout_ms ? opt->connect_timeout_ms : CONNECT_GUEST_TIMEOUT;
	e->console_stream_fd = opt->console_stream_fd;
	e->hb_listen_fd = e->pidfd = e->out_fd = e->errout_fd = -1;
	e->console_r = e->console_w = e->pump_stop_fd = e->pump_done_fd = -1;
	e->qemu_status = -1;
	pthread_mutex_init(&e->lock, NULL);
	e->user_forwards = xcalloc(opt->n_forwards + 1, sizeof(*e->user_forwards));
	for (size_t i = 0; i < opt->n_forwards; i++) {
		e->user_forwards[i] = opt->forwards[i];
		e->user_forwards[i].to.unix_path = dup_or_null(opt->forwards[i].to.unix_path);
	}
	e->n_user_forwards = opt->n_forwards;
	e->user_listens = xcalloc(opt->n_listens + 1, sizeof(*e->user_listens));
	for (size_t i = 0; i < opt->n_listens; i++) {
		e->user_listens[i] = opt->listens[i];
		e->user_listens[i].from.unix_path = dup_or_null(opt->listens[i].from.unix_path);
	}
	e->n_user_listens = opt->n_listens;
	e->user_uds = dup_or_null(opt->uds_path);
	if (e->accel == EMU_ACCEL_DEFAULT) {
		const char *env = getenv(ACCEL_ENV);
		e->accel = EMU_ACCEL_AUTO;
		if (env && *env && emu_accel_parse(env, &e->accel) < 0) {
			err_set(err, EINVAL, "%s=%s: expected auto, kvm or tcg", ACCEL_ENV, env);
			goto fail;
		}
	}

	e->dir = runtime_dir_create(err);
	if (!e->dir)
		goto fail;
	e->vhost_path = xasprintf("%s/vhost.sock", e->dir);
	e->heartbeat_path = xasprintf("%s/heartbeat.sock", e->dir);
	/* Host connections into the guest use the backend's CONNECT line on this socket. */
	e->uds_path = e->user_uds ? xstrdup(e->user_uds) : xasprintf("%s/vsock", e->dir);
	struct vsock_endpoint hb_ep = {.unix_path = e->heartbeat_path};
	e->hb_listen_fd = vsock_endpoint_listen(&hb_ep, err);
	if (e->hb_listen_fd < 0)
		goto fail;
	e->pump_stop_fd = eventfd(0, EFD_CLOEXEC);
	e->pump_done_fd = eventfd(0, EFD_CLOEXEC);
	if (e->pump_stop_fd < 0 || e->pump_done_fd < 0) {
		err_sys(err, "eventfd");
		goto fail;
	}
	*out = &e->base;
	return 0;
fail:
	emu_free(&e->base);
	return err_wrap(err, "emulator");
}

int launcher_emulator_qemu_status(struct launcher *l)
{
	return emu_of(l)->qemu_status;
}

const char *launcher_emulator_accel(struct launcher *l)
{
	struct emu_launcher *e = emu_of(l);
	return e->accel_ran == EMU_ACCEL_DEFAULT ? NULL : emu_accel_name(e->accel_ran);
}
