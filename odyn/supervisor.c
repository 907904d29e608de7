/* supervisor: starts the app in its own process group with its environment,
 * directory and user; captures its output into the log stream; reports its
 * life on the status stream; reaps every orphan; forwards SIGTERM/SIGINT and
 * escalates to SIGKILL; restarts it on failure when asked. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "wire/logstream.h"
#include "odyn/internal.h"
#include "common/json.h"

extern char **environ;

enum sup_state { SUP_RUNNING, SUP_BACKOFF, SUP_DONE };
enum timer_use { TIMER_NONE, TIMER_GRACE, TIMER_BACKOFF, TIMER_LINGER };

struct logpipe {
	struct ev_handler h;
	struct sup *sup;
	int fd;
	bool dead;
	bool paused;
	struct logpipe *next;
};

struct sup {
	const struct odyn_config *c;
	struct evloop *loop;
	struct stream *status, *log;
	struct odyn_msgs *msgs;
	struct egress_proxy *egress;
	struct odyn_api *api;
	struct odyn_kms *kms;
	struct odyn_counters *counters;
	struct ingress **ingress;
	struct ev_handler sig_h, timer_h;
	int sigfd, timerfd;
	enum timer_use timer_use;
	enum sup_state state;
	pid_t pid;     /* the app, or 0 */
	bool stopping; /* a stop signal arrived: no restarts */
	bool fatal;    /* the app could not be started */
	bool lingering;
	int restarts;
	int exit_code;
	char **envp;
	struct logpipe *pipes;
};

/* ---------------------------------------------------------------- status lines */

static void status_emit(struct sup *s, enum wire_status_kind kind, int code, const char *error)
{
	_cleanup_buf_ struct buf b = {0};
	struct wire_status st = {.kind = kind, .code = code, .error = (char *)error};
	wire_status_encode(&st, &b);
	stream_write(s->status, b.data, b.len);
}

static void status_running(struct sup *s)
{
	status_emit(s, WIRE_STATUS_RUNNING, 0, NULL);
}

static void status_fatal(struct sup *s, const char *msg)
{
	log_error("%s", msg);
	status_emit(s, WIRE_STATUS_FATAL, 0, msg);
	s->exit_code = ODYN_EXIT_FATAL;
	s->fatal = true;
}

/* ---------------------------------------------------------------- timer */

static void timer_arm(struct sup *s, enum timer_use use, int ms)
{
	struct itimerspec its = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L}};
	if (ms <= 0)
		its.it_value.tv_nsec = 1; /* zero would disarm */
	timerfd_settime(s->timerfd, 0, &its, NULL);
	s->timer_use = use;
}

static void timer_disarm(struct sup *s)
{
	struct itimerspec its = {0};
	timerfd_settime(s->timerfd, 0, &its, NULL);
	s->timer_use = TIMER_NONE;
}

/* ---------------------------------------------------------------- app output */

static void logpipe_free(void *p)
{
	free(p);
}

static void logpipe_close(struct logpipe *lp)
{
	if (lp->dead)
		return;
	lp->dead = true;
	evloop_del(lp->sup->loop, lp->fd);
	close(lp->fd);
	struct logpipe **pp = &lp->sup->pipes;
	while (*pp != lp)
		pp = &(*pp)->next;
	*pp = lp->next;
	evloop_defer_free(lp->sup->loop, lp, logpipe_free);
}

/* Live log readers are not outrun: the app's output is not read while a
 * reader is close to losing bytes (the pipe then blocks the app), unless
 * that reader stalls for LOG_STALL_MS, after which it is dropped. */
#define LOG_STALL_MS 2000
static uint64_t log_lag_limit(const struct sup *s)
{
	return stream_capacity(s->log) - 32768;
}

static bool log_backed_up(const struct sup *s)
{
	return stream_max_lag(s->log) > log_lag_limit(s);
}

static void pipes_update(void *arg)
{
	struct sup *s = arg;
	bool pause = log_backed_up(s);
	for (struct logpipe *lp = s->pipes; lp; lp = lp->next) {
		if (lp->dead || lp->paused == pause)
			continue;
		if (evloop_mod(s->loop, lp->fd, pause ? 0 : EPOLLIN, &lp->h, NULL) == 0)
			lp->paused = pause;
	}
}

/* Reads what is there (until readers back up unless `all`); returns false
 * at EOF or error. */
static bool logpipe_drain(struct logpipe *lp, bool all)
{
	char buf[16384];
	for (;;) {
		if (!all && log_backed_up(lp->sup))
			return true;
		ssize_t n = read(lp->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0)
			return false;
		logstream_app_sanitize(buf, (size_t)n); /* the app cannot forge odyn's records */
		/* Records waiting for the end of an app line go right after its last one here. */
		const char *nl = memrchr(buf, '\n', (size_t)n);
		size_t head = nl ? (size_t)(nl - buf) + 1 : 0;
		if (head) {
			stream_write(lp->sup->log, buf, head);
			odyn_msgs_flush(lp->sup->msgs, false);
		}
		if ((size_t)n > head)
			stream_write(lp->sup->log, buf + head, (size_t)n - head);
		if (lp->sup->c->console)
			io_write_full(STDOUT_FILENO, buf, (size_t)n, NULL);
	}
}

static void on_logpipe(struct ev_handler *h, uint32_t events)
{
	struct logpipe *lp = (struct logpipe *)h;
	(void)events;
	if (!lp->dead && !logpipe_drain(lp, false))
		logpipe_close(lp);
	else
		pipes_update(lp->sup);
}

/* ---------------------------------------------------------------- starting the app */

/* What a child that failed before exec tells its parent. */
struct spawn_failure {
	int code;
	char what[64];
};

static void child_fail(int fd, const char *what)
{
	struct spawn_failure f = {.code = errno};
	snprintf(f.what, sizeof(f.what), "%s", what);
	(void)!write(fd, &f, sizeof(f));
	_exit(127);
}

static void child_run(const struct sup *s, int out_fd, int err_fd)
{
	const struct odyn_config *c = s->c;
	sigset_t all;
	sigfillset(&all);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	setpgid(0, 0);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0)
		child_fail(err_fd, "open /dev/null");
	if (dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		child_fail(err_fd, "dup2");
	if (c->workdir && chdir(c->workdir) < 0)
		child_fail(err_fd, "chdir to the working directory");
	if (c->has_user) {
		if (setgroups(c->n_groups, c->groups) < 0)
			child_fail(err_fd, "setgroups");
		if (setgid(c->gid) < 0)
			child_fail(err_fd, "setgid");
		if (setuid(c->uid) < 0)
			child_fail(err_fd, "setuid");
	}
	/* execvp searches the PATH of the environment it runs in: the app's. */
	environ = s->envp;
	execvp(c->argv[0], c->argv);
	child_fail(err_fd, "exec");
}

static int app_start(struct sup *s, struct err **err)
{
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
		int e = errno;
		close(out[0]), close(out[1]), close(errp[0]), close(errp[1]);
		errno = e;
		return err_sys(err, "fork");
	}
	if (pid == 0) {
		close(errp[0]);
		close(out[0]);
		child_run(s, out[1], errp[1]);
	}
	setpgid(pid, pid); /* also in the child: whichever runs first */
	close(out[1]);
	close(errp[1]);
	struct spawn_failure f;
	ssize_t n;
	do
		n = read(errp[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(errp[0]);

	struct logpipe *lp = xcalloc(1, sizeof(*lp));
	lp->h.fn = on_logpipe;
	lp->sup = s;
	lp->fd = out[0];
	fcntl(lp->fd, F_SETFL, O_NONBLOCK);
	if (evloop_add(s->loop, lp->fd, EPOLLIN, &lp->h, err) < 0) {
		close(lp->fd);
		free(lp);
		return -1;
	}
	lp->next = s->pipes;
	s->pipes = lp;

	s->pid = pid;
	s->state = SUP_RUNNING;
	if (n == (ssize_t)sizeof(f)) {
		/* The child exits 127; the reaper sees it, the status is fatal. */
		/* An app that is not there, in a root whose last entry is missing too: the kernel gave
		 * up unpacking the ramdisk (out of memory), which only the console would show. */
		if (f.code == ENOENT && s->c->ramdisk_marker && access(s->c->ramdisk_marker, F_OK) < 0)
			return err_set(
			    err, ENOENT,
			    "start %s: %s: No such file or directory: the enclave's memory is too small to "
			    "unpack its ramdisk (%s, written last into it, is missing): give enclaver run "
			    "--memory-mb more, or raise defaults.memory_mb in enclaver.yaml (docs/builder.md, "
			    "Enclave memory)",
			    s->c->argv[0], f.what, s->c->ramdisk_marker);
		errno = f.code;
		return err_sys(err, "start %s: %s", s->c->argv[0], f.what);
	}
	log_info("started %s (pid %d)", s->c->argv[0], (int)pid);
	status_running(s);
	return 0;
}

/* ---------------------------------------------------------------- the end */

static void finish(struct sup *s)
{
	s->state = SUP_DONE;
	timer_disarm(s);
	/* Output already in the pipes belongs to the log; late writers that
	 * outlive the app are not waited for. */
	for (struct logpipe *lp = s->pipes, *next; lp; lp = next) {
		next = lp->next;
		logpipe_drain(lp, true);
		logpipe_close(lp);
	}
	s->lingering = true;
	timer_arm(s, TIMER_LINGER, s->c->linger_ms);
}

static bool linger_over(struct sup *s)
{
	return stream_flushed(s->status) && stream_flushed(s->log) && stream_readers_served(s->status) > 0;
}

static void app_exited(struct sup *s, int wstatus)
{
	pid_t pgid = s->pid;
	s->pid = 0;
	bool failed;
	odyn_counters_flush(s->counters); /* before the status that may end the run */
	if (WIFEXITED(wstatus)) {
		int code = WEXITSTATUS(wstatus);
		if (!s->fatal) {
			status_emit(s, WIRE_STATUS_EXITED, code, NULL);
			s->exit_code = code;
		}
		failed = code != 0;
		log_info("app exited with code %d", code);
	} else {
		int sig = WTERMSIG(wstatus);
		if (!s->fatal) {
			status_emit(s, WIRE_STATUS_SIGNALED, sig, NULL);
			s->exit_code = 128 + sig;
		}
		failed = true;
		log_info("app killed by signal %d", sig);
	}
	/* What the app left running in its group goes with it. */
	kill(-pgid, SIGKILL);
	timer_disarm(s);

	const struct odyn_config *c = s->c;
	if (!s->stopping && !s->fatal && failed && c->restart == ODYN_RESTART_ON_FAILURE &&
	    (c->max_restarts == 0 || s->restarts < c->max_restarts)) {
		int delay = c->backoff_ms;
		for (int i = 0; i < s->restarts && delay < 60000; i++)
			delay *= 2;
		if (delay > 60000)
			delay = 60000;
		s->restarts++;
		/* A warning, so the host shows it (odyn's records reach it from warnings up). */
		if (c->max_restarts)
			log_warn("the app failed: restart %d of %d in %d ms", s->restarts, c->max_restarts, delay);
		else
			log_warn("the app failed: restart %d in %d ms", s->restarts, delay);
		s->state = SUP_BACKOFF;
		timer_arm(s, TIMER_BACKOFF, delay);
		return;
	}
	if (!s->stopping && !s->fatal && failed && c->restart == ODYN_RESTART_ON_FAILURE)
		log_warn("the app failed after %d restarts: no more (restart.max_restarts)", s->restarts);
	finish(s);
}

static void reap(struct sup *s)
{
	for (;;) {
		int ws;
		pid_t p = waitpid(-1, &ws, WNOHANG);
		if (p <= 0)
			return;
		if (p == s->pid)
			app_exited(s, ws);
	}
}

/* A signal for the app: SIGTERM/SIGINT also stop restarts and start the grace timer. */
static void app_signal(struct sup *s, int sig)
{
	if (sig == SIGTERM || sig == SIGINT) {
		s->stopping = true;
		if (s->state == SUP_BACKOFF) {
			finish(s);
			return;
		}
	}
	if (s->pid > 0) {
		log_info("forwarding signal %d to the app", sig);
		kill(-s->pid, sig);
		if ((sig == SIGTERM || sig == SIGINT) && s->timer_use != TIMER_GRACE)
			timer_arm(s, TIMER_GRACE, s->c->grace_ms);
	}
}

static void on_signal(struct ev_handler *h, uint32_t events)
{
	struct sup *s = container_of(h, struct sup, sig_h);
	(void)events;
	struct signalfd_siginfo si;
	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGCHLD)
			reap(s);
		else
			app_signal(s, sig);
	}
}

/* The host asks for a graceful stop by writing "stop" on the status stream (enclaver run on
 * SIGINT/SIGTERM): the same as SIGTERM to odyn. Only the parent can reach that port. */
static void on_status_command(void *arg, const char *line)
{
	struct sup *s = arg;
	if (strcmp(line, WIRE_STATUS_COUNTERS_ON) == 0) {
		odyn_counters_enable(s->counters);
		return;
	}
	if (strcmp(line, WIRE_STATUS_STOP) != 0) {
		log_warn("status stream: unknown command \"%s\" ignored", line);
		return;
	}
	log_info("the host asks the app to stop");
	app_signal(s, SIGTERM);
}

static void on_timer(struct ev_handler *h, uint32_t events)
{
	struct sup *s = container_of(h, struct sup, timer_h);
	(void)events;
	uint64_t n;
	if (read(s->timerfd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	enum timer_use use = s->timer_use;
	s->timer_use = TIMER_NONE;
	switch (use) {
	case TIMER_GRACE:
		if (s->pid > 0) {
			log_warn("app still running %d ms after the stop signal: SIGKILL", s->c->grace_ms);
			kill(-s->pid, SIGKILL);
		}
		break;
	case TIMER_BACKOFF: {
		_cleanup_err_ struct err *e = NULL;
		if (app_start(s, &e) < 0) {
			status_fatal(s, e->msg);
			if (s->pid == 0)
				finish(s);
		}
		break;
	}
	case TIMER_LINGER: s->lingering = false; break;
	case TIMER_NONE: break;
	}
}

/* ---------------------------------------------------------------- setup */

/* The app's environment: odyn's own, then the proxy variables, then the
 * configured overrides (later entries replace earlier ones of the same name). */
static char **env_build(const struct odyn_config *c)
{
	size_t n = 0, cap = 16;
	char **v = xmalloc(cap * sizeof(*v));
	char *proxy_vars[8] = {0};
	size_t n_proxy = 0;
	if (c->egress_enabled) {
		const char *names[] = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"};
		for (size_t i = 0; i < 4; i++)
			proxy_vars[n_proxy++] = xasprintf("%s=http://127.0.0.1:%u", names[i], c->proxy_port);
		proxy_vars[n_proxy++] = xstrdup("no_proxy=localhost,127.0.0.1");
		proxy_vars[n_proxy++] = xstrdup("NO_PROXY=localhost,127.0.0.1");
	}
	if (c->kms_enabled)
		proxy_vars[n_proxy++] = xasprintf("AWS_KMS_ENDPOINT=http://127.0.0.1:%u", c->kms_port);
	char **sources[3] = {environ, proxy_vars, c->env};
	for (int si = 0; si < 3; si++) {
		for (char **e = sources[si]; e && *e; e++) {
			const char *eq = strchr(*e, '=');
			size_t klen = eq ? (size_t)(eq - *e) : strlen(*e);
			size_t j;
			for (j = 0; j < n; j++)
				if (strncmp(v[j], *e, klen) == 0 && v[j][klen] == '=')
					break;
			char *copy = xstrdup(*e);
			if (j < n) {
				free(v[j]);
				v[j] = copy;
				continue;
			}
			if (n + 2 > cap)
				v = xrealloc(v, (cap *= 2) * sizeof(*v));
			v[n++] = copy;
		}
	}
	for (size_t i = 0; i < n_proxy; i++)
		free(proxy_vars[i]);
	v[n] = NULL;
	return v;
}

static int kms_start(struct sup *s, struct err **err)
{
	const struct odyn_config *c = s->c;
	_cleanup_free_ char *imds_host = NULL;
	uint16_t imds_port = 0;
	if (http_authority_split(c->imds, &imds_host, &imds_port, err) < 0)
		return err_wrap(err, "--imds");
	struct odyn_kms_opts o = {
	    .egress = c->egress_addr,
	    .nsm_path = c->nsm_path,
	    .region = c->kms_region,
	    .endpoints = c->kms_endpoints,
	    .n_endpoints = c->n_kms_endpoints,
	    .imds_host = imds_host,
	    .imds_port = imds_port ? imds_port : 80,
	    .ca_file = c->kms_ca_file,
	    .policy = &c->policy,
	};
	return odyn_kms_start(s->loop, &c->kms_addr, &o, &s->kms, err);
}

int odyn_run(const struct odyn_config *c, struct err **err)
{
	if (c->argv == NULL || c->argv[0] == NULL)
		return err_set(err, EINVAL, "no app command (give it after --)");
	struct sup s = {.c = c, .sigfd = -1, .timerfd = -1, .exit_code = ODYN_EXIT_FATAL};
	int rc = -1;
	sigset_t mask;
	sigemptyset(&mask);
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&mask, sigs[i]);
	sigset_t old;
	sigprocmask(SIG_BLOCK, &mask, &old);
	signal(SIGPIPE, SIG_IGN);
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER: %s (orphans will not be reaped)", strerror(errno));

	/* Every proxied connection costs two descriptors: allow what the
	 * kernel allows. The app inherits the raised soft limit. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	s.envp = env_build(c);
	s.ingress = xcalloc(c->n_ingress + 1, sizeof(*s.ingress));
	if (evloop_new(&s.loop, err) < 0)
		goto out;
	s.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	s.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s.sigfd < 0 || s.timerfd < 0) {
		err_sys(err, "signalfd/timerfd");
		goto out;
	}
	s.sig_h.fn = on_signal;
	s.timer_h.fn = on_timer;
	if (evloop_add(s.loop, s.sigfd, EPOLLIN, &s.sig_h, err) < 0 ||
	    evloop_add(s.loop, s.timerfd, EPOLLIN, &s.timer_h, err) < 0)
		goto out;
	if (stream_new(s.loop, &c->status_addr, 64 * 1024, &s.status, err) < 0 ||
	    stream_new(s.loop, &c->log_addr, ODYN_LOG_RING, &s.log, err) < 0) {
		err_wrap(err, "status/log stream");
		goto out;
	}
	if (odyn_msgs_start(s.loop, s.log, log_lag_limit(&s), &s.msgs, err) < 0)
		goto out;
	s.counters = odyn_counters_new(s.loop, s.status);
	{
		/* From here on failures are reported on the status stream too,
		 * so the host learns why the enclave stops. */
		_cleanup_err_ struct err *e = NULL;
		bool setup_ok = !c->egress_enabled || egress_proxy_start(s.loop, &c->proxy_addr, &c->egress_addr,
		                                                         &c->policy, &s.egress, &e) == 0;
		if (setup_ok && c->api_enabled)
			setup_ok = odyn_api_start(s.loop, &c->api_addr, c->nsm_path, &s.api, &e) == 0;
		if (setup_ok && c->kms_enabled)
			setup_ok = kms_start(&s, &e) == 0;
		egress_proxy_set_counters(s.egress, s.counters);
		odyn_kms_set_counters(s.kms, s.counters);
		for (size_t i = 0; setup_ok && i < c->n_ingress; i++)
			setup_ok = ingress_start(s.loop, &c->ingress[i], c->ingress_connect_ms, c->ingress_hold_ms,
			                         &s.ingress[i], &e) == 0;
		if (!setup_ok) {
			status_fatal(&s, e->msg);
			finish(&s);
		} else if (app_start(&s, &e) < 0) {
			status_fatal(&s, e->msg);
			if (s.pid == 0)
				finish(&s);
		}
	}
	stream_set_drain_cb(s.log, pipes_update, &s);
	stream_set_command_cb(s.status, on_status_command, &s);
	while (s.state != SUP_DONE || (s.lingering && !linger_over(&s))) {
		bool backed_up = log_backed_up(&s);
		if (evloop_run_once(s.loop, backed_up ? 250 : -1, err) < 0)
			goto out;
		if (backed_up) {
			stream_drop_stalled(s.log, log_lag_limit(&s), LOG_STALL_MS);
			pipes_update(&s);
		}
	}
	rc = s.exit_code;
out:
	for (size_t i = 0; i < c->n_ingress; i++)
		ingress_free(s.ingress[i]);
	free(s.ingress);
	egress_proxy_free(s.egress);
	odyn_api_free(s.api);
	odyn_kms_free(s.kms);
	odyn_counters_free(s.counters);
	while (s.pipes)
		logpipe_close(s.pipes);
	odyn_msgs_flush(s.msgs, true);
	odyn_msgs_free(s.msgs);
	stream_free(s.log);
	stream_free(s.status);
	evloop_free(s.loop);
	if (s.sigfd >= 0)
		close(s.sigfd);
	if (s.timerfd >= 0)
		close(s.timerfd);
	odyn_strv_free(s.envp);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}
