/* emulate: boots an EIF in QEMU's nitro-enclave machine with our vsock backend, answers the
 * heartbeat, streams the serial console, and stops everything on exit or SIGINT/SIGTERM. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "runtime/internal.h"

/* The last console bytes, for the error message when the guest never sends its heartbeat. */
#define CONSOLE_TAIL       2048
#define QEMU_STOP_GRACE_MS 5000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct emu {
	const struct emulate_config *cfg;
	char *dir; /* private runtime folder: sockets */
	char *vhost_path, *heartbeat_path;
	struct vsock_backend *backend;
	pid_t qemu;
	int sig_fd, hb_listen_fd, hb_fd, out_fd, errout_fd;
	sigset_t old_mask;
	bool mask_set;
	char tail[CONSOLE_TAIL];
	size_t tail_len;
	struct buf qemu_err;
};

static void tail_add(struct emu *e, const char *data, size_t len)
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

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Stops QEMU: SIGTERM, then SIGKILL after a grace period. */
static int qemu_stop(struct emu *e)
{
	if (e->qemu <= 0)
		return 0;
	int status = 0;
	kill(e->qemu, SIGTERM);
	for (int waited = 0; waited < QEMU_STOP_GRACE_MS; waited += 20) {
		pid_t r = waitpid(e->qemu, &status, WNOHANG);
		if (r == e->qemu) {
			e->qemu = 0;
			return status;
		}
		usleep(20 * 1000);
	}
	kill(e->qemu, SIGKILL);
	waitpid(e->qemu, &status, 0);
	e->qemu = 0;
	return status;
}

static void emu_cleanup(struct emu *e)
{
	qemu_stop(e);
	vsock_backend_stop(e->backend);
	e->backend = NULL;
	close_fd(&e->sig_fd);
	close_fd(&e->hb_listen_fd);
	close_fd(&e->hb_fd);
	close_fd(&e->out_fd);
	close_fd(&e->errout_fd);
	if (e->mask_set)
		sigprocmask(SIG_SETMASK, &e->old_mask, NULL);
	if (e->vhost_path)
		unlink(e->vhost_path);
	if (e->heartbeat_path)
		unlink(e->heartbeat_path);
	if (e->dir)
		rmdir(e->dir);
	free(e->dir);
	free(e->vhost_path);
	free(e->heartbeat_path);
	buf_free(&e->qemu_err);
}

static const char *accel(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return "tcg";
	close(fd);
	return "kvm";
}

static int qemu_spawn(struct emu *e, struct err **err)
{
	const struct emulate_config *cfg = e->cfg;
	char machine[160], smp[16], mem[24], chardev[4200];
	snprintf(machine, sizeof(machine), "nitro-enclave,vsock=c0,id=i-0000000000000000-enc%016llx%s",
	         (unsigned long long)cfg->guest_cid, cfg->acpi ? ",acpi=on" : "");
	snprintf(smp, sizeof(smp), "%u", cfg->cpu_count);
	snprintf(mem, sizeof(mem), "%uM", cfg->memory_mb);
	snprintf(chardev, sizeof(chardev), "socket,id=c0,path=%s", e->vhost_path);
	const char *argv[32];
	int n = 0;
	argv[n++] = cfg->qemu;
	/* Firmware (qboot, option ROMs) from Debian's qemu-system-data and seabios packages. */
	static const char *const fw_dirs[] = {"/usr/share/qemu", "/usr/share/seabios"};
	for (size_t i = 0; i < sizeof(fw_dirs) / sizeof(fw_dirs[0]); i++) {
		struct stat st;
		if (stat(fw_dirs[i], &st) == 0) {
			argv[n++] = "-L";
			argv[n++] = fw_dirs[i];
		}
	}
	const char *acc = accel();
	argv[n++] = "-M";
	argv[n++] = machine;
	argv[n++] = "-accel";
	argv[n++] = acc;
	argv[n++] = "-cpu";
	argv[n++] = strcmp(acc, "kvm") == 0 ? "host" : "max";
	argv[n++] = "-smp";
	argv[n++] = smp;
	argv[n++] = "-m";
	argv[n++] = mem;
	argv[n++] = "-nographic";
	argv[n++] = "-no-reboot";
	argv[n++] = "-chardev";
	argv[n++] = chardev;
	argv[n++] = "-kernel";
	argv[n++] = cfg->eif_path;
	/* Not measured (appended after the EIF's cmdline): a TSC rate so the kernel does not hang
	 * calibrating under TCG, and a reboot method that makes QEMU exit (-no-reboot). */
	argv[n++] = "-append";
	argv[n++] = "tsc_early_khz=2000000 reboot=t";
	argv[n] = NULL;
	if (log_get_level() >= LOG_DEBUG) {
		_cleanup_buf_ struct buf cmd = {0};
		for (int i = 0; i < n; i++)
			buf_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
		log_debug("emulate: %s", buf_str(&cmd));
	}

	int out[2], errp[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return err_sys(err, "pipe");
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return err_sys(err, "pipe");
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(out[0]);
		close(out[1]);
		close(errp[0]);
		close(errp[1]);
		return err_sys(err, "fork");
	}
	if (pid == 0) {
		/* Child: its own process group so a terminal's ^C reaches only us (we stop it), and
		 * default signal handling. */
		setpgid(0, 0);
		sigprocmask(SIG_SETMASK, &e->old_mask, NULL);
		signal(SIGPIPE, SIG_DFL);
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0)
			_exit(127);
		execv(cfg->qemu, (char *const *)argv);
		dprintf(2, "exec %s: %s\n", cfg->qemu, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(errp[1]);
	e->qemu = pid;
	e->out_fd = out[0];
	e->errout_fd = errp[0];
	fcntl(e->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(e->errout_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* One heartbeat exchange on an accepted connection: read 0xB7, answer 0xB7. Returns 1 when done. */
static int heartbeat_read(struct emu *e, struct err **err)
{
	uint8_t byte;
	ssize_t n = recv(e->hb_fd, &byte, 1, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		close_fd(&e->hb_fd);
		return 0; /* the guest gave up on this connection; it may try again */
	}
	if (byte != RUNTIME_HEARTBEAT_BYTE) {
		close_fd(&e->hb_fd);
		return err_set(err, EPROTO, "heartbeat: the enclave sent 0x%02x, expected 0x%02x", byte,
		               RUNTIME_HEARTBEAT_BYTE);
	}
	uint8_t reply = RUNTIME_HEARTBEAT_BYTE;
	if (send(e->hb_fd, &reply, 1, MSG_NOSIGNAL) != 1)
		return err_sys(err, "heartbeat: reply");
	close_fd(&e->hb_fd);
	return 1;
}

static void drain_output(struct emu *e, int *fd, bool console)
{
	char data[4096];
	for (;;) {
		ssize_t n = read(*fd, data, sizeof(data));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close_fd(fd);
			return;
		}
		if (console) {
			tail_add(e, data, (size_t)n);
			if (e->cfg->debug_mode) {
				struct err *err = NULL;
				if (io_write_full(STDOUT_FILENO, data, (size_t)n, &err) < 0)
					err_free(&err); /* a closed stdout must not stop the enclave */
			}
		} else if (e->qemu_err.len < 16384) {
			buf_append(&e->qemu_err, data, (size_t)n);
		}
	}
}

static int emu_loop(struct emu *e, struct emulate_result *res, struct err **err)
{
	double start = now_s();
	double deadline = start + e->cfg->heartbeat_timeout_s;
	bool exited = false;
	while (!exited || e->out_fd >= 0 || e->errout_fd >= 0) {
		struct pollfd pfd[5];
		int n = 0, i_sig = -1, i_hbl = -1, i_hb = -1, i_out = -1, i_err = -1;
		if (!exited) {
			pfd[n] = (struct pollfd){.fd = e->sig_fd, .events = POLLIN};
			i_sig = n++;
		}
		if (!exited && res->heartbeat_s < 0 && e->hb_fd < 0) {
			pfd[n] = (struct pollfd){.fd = e->hb_listen_fd, .events = POLLIN};
			i_hbl = n++;
		}
		if (e->hb_fd >= 0) {
			pfd[n] = (struct pollfd){.fd = e->hb_fd, .events = POLLIN};
			i_hb = n++;
		}
		if (e->out_fd >= 0) {
			pfd[n] = (struct pollfd){.fd = e->out_fd, .events = POLLIN};
			i_out = n++;
		}
		if (e->errout_fd >= 0) {
			pfd[n] = (struct pollfd){.fd = e->errout_fd, .events = POLLIN};
			i_err = n++;
		}
		int timeout = -1;
		if (res->heartbeat_s < 0 && !exited) {
			double left = deadline - now_s();
			timeout = left <= 0 ? 0 : (int)(left * 1000) + 1;
		}
		if (exited)
			timeout = 1000; /* QEMU is gone: just drain what it wrote */
		int r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR)
			return err_sys(err, "poll");
		if (r == 0 && exited)
			break;
		if (i_out >= 0 && pfd[i_out].revents)
			drain_output(e, &e->out_fd, true);
		if (i_err >= 0 && pfd[i_err].revents)
			drain_output(e, &e->errout_fd, false);
		if (i_hbl >= 0 && pfd[i_hbl].revents) {
			int fd = accept4(e->hb_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd >= 0)
				e->hb_fd = fd;
		}
		if (i_hb >= 0 && pfd[i_hb].revents) {
			int h = heartbeat_read(e, err);
			if (h < 0)
				return -1;
			if (h == 1) {
				res->heartbeat_s = now_s() - start;
				log_info("emulate: heartbeat after %.2f s", res->heartbeat_s);
			}
		}
		if (i_sig >= 0 && pfd[i_sig].revents) {
			struct signalfd_siginfo si;
			if (read(e->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
					log_info("emulate: %s: stopping the enclave", strsignal((int)si.ssi_signo));
					res->interrupted = true;
					qemu_stop(e);
					res->qemu_status = -1;
					return 0;
				}
			}
			int status;
			if (waitpid(e->qemu, &status, WNOHANG) == e->qemu) {
				e->qemu = 0;
				res->qemu_status = status;
				exited = true;
			}
		}
		if (!exited && res->heartbeat_s < 0 && now_s() >= deadline) {
			qemu_stop(e);
			res->qemu_status = -1;
			return err_set(err, ETIMEDOUT,
			               "no heartbeat from the enclave within %u s; console ends with:\n%.*s",
			               e->cfg->heartbeat_timeout_s, (int)e->tail_len, e->tail);
		}
	}
	if (res->heartbeat_s < 0) {
		buf_str(&e->qemu_err);
		return err_set(err, ECHILD, "QEMU exited (status %d) before the enclave's heartbeat%s%s%s%.*s",
		               WIFEXITED(res->qemu_status) ? WEXITSTATUS(res->qemu_status) : -1,
		               e->qemu_err.len ? ":\n" : "", e->qemu_err.len ? buf_str(&e->qemu_err) : "",
		               e->tail_len ? "\nconsole ends with:\n" : "", (int)e->tail_len, e->tail);
	}
	return 0;
}

int emulate_run(const struct emulate_config *cfg, struct emulate_result *res, struct err **err)
{
	struct emu e = {.cfg = cfg, .sig_fd = -1, .hb_listen_fd = -1, .hb_fd = -1, .out_fd = -1, .errout_fd = -1};
	*res = (struct emulate_result){.heartbeat_s = -1};
	int ret = -1;
	_cleanup_free_ struct vsock_forward *fw = NULL;
	struct stat st;
	if (stat(cfg->eif_path, &st) < 0) {
		err_sys(err, "%s", cfg->eif_path);
		goto out;
	}
	/* Before any thread starts (the vsock backend's), so that every thread blocks them and they
	 * reach only our signalfd: a SIGCHLD or SIGINT taken by another thread would be lost. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, &e.old_mask) < 0) {
		err_sys(err, "sigprocmask");
		goto out;
	}
	e.mask_set = true;
	const char *base = getenv("XDG_RUNTIME_DIR");
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	e.dir = xasprintf("%s/enclaver-emu.XXXXXX", base);
	if (!mkdtemp(e.dir)) {
		err_sys(err, "create a runtime folder %s", e.dir);
		free(e.dir);
		e.dir = NULL;
		goto out;
	}
	e.vhost_path = xasprintf("%s/vhost.sock", e.dir);
	e.heartbeat_path = xasprintf("%s/heartbeat.sock", e.dir);
	struct vsock_endpoint hb_ep = {.unix_path = e.heartbeat_path};
	e.hb_listen_fd = vsock_endpoint_listen(&hb_ep, err);
	if (e.hb_listen_fd < 0)
		goto out;

	/* The heartbeat port goes to our listener; the caller's forwards follow. */
	fw = xcalloc(cfg->n_forwards + 1, sizeof(*fw));
	fw[0] = (struct vsock_forward){.port = RUNTIME_HEARTBEAT_PORT, .to = hb_ep};
	for (size_t i = 0; i < cfg->n_forwards; i++)
		fw[i + 1] = cfg->forwards[i];
	struct vsock_backend_config bc = {
	    .vhost_socket = e.vhost_path,
	    .guest_cid = cfg->guest_cid,
	    .forwards = fw,
	    .n_forwards = cfg->n_forwards + 1,
	    .listens = cfg->listens,
	    .n_listens = cfg->n_listens,
	    .uds_path = cfg->uds_path,
	};
	if (vsock_backend_start(&bc, &e.backend, err) < 0)
		goto out;

	e.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (e.sig_fd < 0) {
		err_sys(err, "signalfd");
		goto out;
	}
	if (qemu_spawn(&e, err) < 0)
		goto out;
	log_info("emulate: started QEMU (pid %d), guest CID %llu", (int)e.qemu, (unsigned long long)cfg->guest_cid);
	ret = emu_loop(&e, res, err);
	struct vsock_backend_stats stats;
	vsock_backend_stats(e.backend, &stats);
	log_info("emulate: vsock: %llu connections, %llu bytes to the guest, %llu from it, %llu packets dropped",
	         (unsigned long long)stats.connections, (unsigned long long)stats.bytes_to_guest,
	         (unsigned long long)stats.bytes_from_guest, (unsigned long long)stats.dropped_packets);
out:
	emu_cleanup(&e);
	return ret;
}
