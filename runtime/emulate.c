/* emulate: `enclaver emulate`'s run loop on the emulator launcher (launcher_emulator.c spawns
 * QEMU): boot, stream the console, wait for the enclave to stop or for SIGINT/SIGTERM. */
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>

#include "runtime/launcher.h"
#include "runtime/runtime.h"

/* Takes every pending SIGINT/SIGTERM off the queue, so that restoring the signal mask does not
 * deliver one the run already acted on. Returns the last one seen, or 0. */
static int signals_drain(int sig_fd)
{
	int last = 0;
	struct signalfd_siginfo si;
	while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		last = (int)si.ssi_signo;
	return last;
}

static int emulate_loop(struct launcher *l, int sig_fd, struct emulate_result *res, struct err **err)
{
	int exit_fd = launcher_exit_fd(l);
	for (;;) {
		struct pollfd pfd[2] = {{.fd = sig_fd, .events = POLLIN}, {.fd = exit_fd, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, "poll");
		}
		if (pfd[0].revents) {
			int sig = signals_drain(sig_fd);
			if (sig == SIGINT || sig == SIGTERM) {
				log_info("emulate: %s: stopping the enclave", strsignal(sig));
				res->interrupted = true;
				return 0;
			}
		}
		if (pfd[1].revents)
			return 0;
	}
}

int emulate_run(const struct emulate_config *cfg, struct emulate_result *res, struct err **err)
{
	*res = (struct emulate_result){.heartbeat_s = -1, .qemu_status = -1};
	/* Before any thread starts, so that SIGINT/SIGTERM reach only our signalfd (and the
	 * launcher's start sees them pending while the enclave boots). */
	sigset_t mask, old_mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, &old_mask) < 0)
		return err_sys(err, "sigprocmask");
	int ret = -1;
	struct launcher *l = NULL;
	int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0) {
		err_sys(err, "signalfd");
		goto out;
	}
	struct launcher_emulator_options opt = {
	    .qemu = cfg->qemu,
	    .acpi = cfg->acpi,
	    .accel = cfg->accel,
	    .forwards = cfg->forwards,
	    .n_forwards = cfg->n_forwards,
	    .listens = cfg->listens,
	    .n_listens = cfg->n_listens,
	    .uds_path = cfg->uds_path,
	    .console_stream_fd = STDOUT_FILENO, /* live, from QEMU's start */
	};
	if (launcher_emulator_new(&opt, &l, err) < 0)
		goto out;
	struct launch_request req = {
	    .eif_path = cfg->eif_path,
	    .cpu_count = cfg->cpu_count,
	    .memory_mb = cfg->memory_mb,
	    .cid = cfg->guest_cid,
	    .debug_mode = cfg->debug_mode,
	    .heartbeat_timeout_s = cfg->heartbeat_timeout_s,
	};
	struct launch_info info;
	if (launcher_start(l, &req, &info, err) < 0) {
		if ((*err)->code == EINTR) {
			log_info("emulate: %s", (*err)->msg);
			err_free(err);
			res->interrupted = true;
			ret = 0;
		}
		goto out;
	}
	res->heartbeat_s = info.heartbeat_s;
	res->accel = launcher_emulator_accel(l);
	ret = emulate_loop(l, sig_fd, res, err);
	if (launcher_stop(l, err) < 0)
		ret = -1;
	res->qemu_status = launcher_emulator_qemu_status(l);
out:
	launcher_free(l);
	if (sig_fd >= 0) {
		signals_drain(sig_fd);
		close(sig_fd);
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return ret;
}
