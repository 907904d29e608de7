/* launcher_local: a launcher for tests only: the "enclave" is the real odyn run as a host process
 * (not init mode), with unix sockets standing in for vsock. Linked into build/<v>/helpers/enclaver-local
 * (the enclaver CLI plus this file), where it registers itself as `enclaver run --launcher local`.
 * Environment: ENCLAVER_LOCAL_CMD (the app, run with sh -c, or "exec:PATH"; required), ENCLAVER_LOCAL_MANIFEST (odyn's
 * egress policy, ingress ports and restart policy), ENCLAVER_LOCAL_DIR (the socket folder: guest-P.sock is the enclave's
 * port P, parent-P.sock the host's listener on P; default a temporary folder), ENCLAVER_LOCAL_ODYN,
 * ENCLAVER_LOCAL_GRACE_MS (odyn's --grace-ms, default 5000), ENCLAVER_LOCAL_STOP_KILL (set: launcher_stop
 * SIGKILLs odyn at once, as closing a Nitro enclave's fd ends it; else SIGTERM, SIGKILL after 20 s),
 * ENCLAVER_LOCAL_BOOT_MS (a boot that blocks the caller this long first, as a real launcher's does). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "runtime/run.h"
#include "wire/transport.h"
#include "manifest/manifest.h"
#include "runtime/launcher.h"

struct local {
	struct launcher base;
	char *dir;
	bool own_dir;
	pid_t pid;
	int pidfd;
	int console_fd;
	bool parent_egress; /* the host listens on 17002 */
	bool reaped;
};

static char *sock_path(struct local *lc, const char *kind, uint32_t port)
{
	return xasprintf("%s/%s-%u.sock", lc->dir, kind, port);
}

static int local_listen_parent(struct launcher *l, uint32_t port, int *fd, struct err **err)
{
	struct local *lc = (struct local *)l;
	_cleanup_free_ char *text = xasprintf("unix:%s/parent-%u.sock", lc->dir, port);
	struct transport_addr a;
	if (transport_parse(text, &a, err) < 0 || (*fd = transport_listen(&a, 128, err)) < 0)
		return -1;
	if (port == 17002)
		lc->parent_egress = true;
	return 0;
}

static int local_connect_guest(struct launcher *l, uint32_t port, int *fd, struct err **err)
{
	struct local *lc = (struct local *)l;
	_cleanup_free_ char *text = xasprintf("unix:%s/guest-%u.sock", lc->dir, port);
	struct transport_addr a;
	if (transport_parse(text, &a, err) < 0)
		return -1;
	*fd = transport_connect(&a, false, err);
	return *fd < 0 ? -1 : 0;
}

static int local_connect_guest_start(struct launcher *l, uint32_t port, int *fd, bool *in_progress, struct err **err)
{
	struct local *lc = (struct local *)l;
	_cleanup_free_ char *text = xasprintf("unix:%s/guest-%u.sock", lc->dir, port);
	struct transport_addr a;
	if (transport_parse(text, &a, err) < 0)
		return -1;
	*fd = transport_connect_start(&a, in_progress, err);
	return *fd < 0 ? -1 : 0;
}

static void strv_add(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
}

static char *odyn_path(void)
{
	const char *env = getenv("ENCLAVER_LOCAL_ODYN");
	if (env && *env)
		return xstrdup(env);
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return xstrdup("odyn");
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	return xasprintf("%s/../bin/odyn", self);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int local_start(struct launcher *l, const struct launch_request *req, struct launch_info *info, struct err **err)
{
	struct local *lc = (struct local *)l;
	const char *cmd = getenv("ENCLAVER_LOCAL_CMD"), *mpath = getenv("ENCLAVER_LOCAL_MANIFEST");
	if (!cmd)
		return err_set(err, EINVAL, "local launcher: set ENCLAVER_LOCAL_CMD to the app's command");
	struct manifest *m = NULL;
	if (mpath && *mpath && manifest_load(mpath, &m, err) < 0)
		return err_wrap(err, "local launcher");
	char **argv = NULL;
	size_t n = 0;
	strv_add(&argv, &n, odyn_path());
	strv_add(&argv, &n, xstrdup("--status"));
	strv_add(&argv, &n, xasprintf("unix:%s/guest-17000.sock", lc->dir));
	strv_add(&argv, &n, xstrdup("--log"));
	strv_add(&argv, &n, xasprintf("unix:%s/guest-17001.sock", lc->dir));
	strv_add(&argv, &n, xstrdup("--linger-ms"));
	strv_add(&argv, &n, xstrdup("30000"));
	strv_add(&argv, &n, xstrdup("--grace-ms"));
	const char *grace = getenv("ENCLAVER_LOCAL_GRACE_MS");
	strv_add(&argv, &n, xstrdup(grace && *grace ? grace : "5000"));
	if (!req->debug_mode)
		strv_add(&argv, &n, xstrdup("--no-console"));
	if (m && manifest_egress_on(m)) {
		strv_add(&argv, &n, xstrdup("--egress-host"));
		strv_add(&argv, &n, xasprintf("unix:%s/parent-17002.sock", lc->dir));
		strv_add(&argv, &n, xstrdup("--proxy-port"));
		strv_add(&argv, &n, xasprintf("%u", m->egress_proxy_port));
		for (size_t i = 0; i < m->n_egress_allow; i++) {
			strv_add(&argv, &n, xstrdup("--egress-allow"));
			strv_add(&argv, &n, xstrdup(m->egress_allow[i]));
		}
		for (size_t i = 0; i < m->n_egress_deny; i++) {
			strv_add(&argv, &n, xstrdup("--egress-deny"));
			strv_add(&argv, &n, xstrdup(m->egress_deny[i]));
		}
	}
	if (m && m->restart_policy) {
		strv_add(&argv, &n, xstrdup("--restart"));
		strv_add(&argv, &n, xstrdup(m->restart_policy));
		strv_add(&argv, &n, xstrdup("--max-restarts"));
		strv_add(&argv, &n, xasprintf("%lld", (long long)m->restart_max));
		if (m->restart_backoff_ms) {
			strv_add(&argv, &n, xstrdup("--restart-backoff-ms"));
			strv_add(&argv, &n, xasprintf("%lld", (long long)m->restart_backoff_ms));
		}
	}
	for (size_t i = 0; m && i < m->n_ingress; i++) {
		strv_add(&argv, &n, xstrdup("--ingress"));
		strv_add(&argv, &n,
		         xasprintf("unix:%s/guest-%u.sock=tcp:127.0.0.1:%u", lc->dir, m->ingress[i].listen_port,
		                   m->ingress[i].listen_port));
	}
	if (m && m->restart_policy) { /* as the enclave's odyn reads it from the manifest */
		strv_add(&argv, &n, xasprintf("--restart=%s", m->restart_policy));
		strv_add(&argv, &n, xasprintf("--max-restarts=%lld", (long long)m->restart_max));
		if (m->restart_backoff_ms)
			strv_add(&argv, &n, xasprintf("--restart-backoff-ms=%lld", (long long)m->restart_backoff_ms));
	}
	manifest_free(m);
	strv_add(&argv, &n, xstrdup("--"));
	if (str_has_prefix(cmd, "exec:")) {
		strv_add(&argv, &n, xstrdup(cmd + 5)); /* a program run directly (odyn's fatal path) */
	} else {
		strv_add(&argv, &n, xstrdup("/bin/sh"));
		strv_add(&argv, &n, xstrdup("-c"));
		strv_add(&argv, &n, xstrdup(cmd));
	}

	const char *boot_ms = getenv("ENCLAVER_LOCAL_BOOT_MS");
	if (boot_ms)
		usleep((useconds_t)atoi(boot_ms) * 1000);
	int cons[2] = {-1, -1};
	if (req->debug_mode && pipe2(cons, O_CLOEXEC) < 0) {
		err_sys(err, "pipe");
		goto fail;
	}
	lc->pid = fork();
	if (lc->pid < 0) {
		err_sys(err, "fork");
		goto fail;
	}
	if (lc->pid == 0) {
		/* The outer side blocked SIGINT/SIGTERM for its signalfd: odyn must get them. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setpgid(0, 0); /* a terminal's ^C goes to enclaver, as with a real enclave */
		int out = cons[1] >= 0 ? cons[1] : open("/dev/null", O_WRONLY);
		dup2(out, STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	if (cons[1] >= 0)
		close(cons[1]);
	lc->console_fd = cons[0];
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	argv = NULL;
	lc->pidfd = (int)syscall(SYS_pidfd_open, lc->pid, 0);
	if (lc->pidfd < 0)
		return err_sys(err, "pidfd_open");
	/* The "heartbeat": odyn's stream sockets exist (made before the app starts). */
	_cleanup_free_ char *st = sock_path(lc, "guest", 17000), *lg = sock_path(lc, "guest", 17001);
	for (int i = 0; !(exists(st) && exists(lg)); i++) {
		struct pollfd p = {.fd = lc->pidfd, .events = POLLIN};
		if (poll(&p, 1, 10) > 0)
			return err_set(err, ECHILD, "local launcher: odyn ended before its sockets appeared");
		if (i > 3000)
			return err_set(err, ETIMEDOUT, "local launcher: odyn's sockets did not appear in %s", lc->dir);
	}
	memset(info, 0, sizeof(*info));
	snprintf(info->enclave_id, sizeof(info->enclave_id), "local-enc%x", (unsigned)lc->pid);
	snprintf(info->name, sizeof(info->name), "%s", req->name ? req->name : "local");
	info->cid = req->cid ? req->cid : 1000 + (uint64_t)lc->pid;
	info->process_id = getpid();
	info->cpu_count = req->cpu_count ? req->cpu_count : 2;
	for (unsigned i = 0; i < info->cpu_count && i < LAUNCH_MAX_CPUS; i++)
		info->cpu_ids[i] = i;
	info->memory_mib = req->memory_mb ? req->memory_mb : 1024;
	info->debug_mode = req->debug_mode;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	if (cons[0] >= 0)
		close(cons[0]);
	if (cons[1] >= 0)
		close(cons[1]);
	return -1;
}

static int local_exit_fd(struct launcher *l)
{
	return ((struct local *)l)->pidfd;
}

static int local_console_fd(struct launcher *l)
{
	return ((struct local *)l)->console_fd;
}

/* Ends odyn as an enclave's end would end it, but gently enough that nothing is left behind: SIGTERM
 * (odyn stops the app, reports, exits), SIGKILL if it is still there after 20 s. */
static int local_stop(struct launcher *l, struct err **err)
{
	struct local *lc = (struct local *)l;
	(void)err;
	if (lc->pid <= 0 || lc->reaped)
		return 0;
	struct pollfd p = {.fd = lc->pidfd, .events = POLLIN};
	if (poll(&p, 1, 0) == 0 && getenv("ENCLAVER_LOCAL_STOP_KILL")) {
		kill(lc->pid, SIGKILL); /* as a Nitro enclave's fd closing: gone at once */
	} else if (poll(&p, 1, 0) == 0) {
		kill(lc->pid, SIGTERM);
		if (poll(&p, 1, 20000) == 0)
			kill(lc->pid, SIGKILL);
	}
	waitpid(lc->pid, NULL, 0);
	lc->reaped = true;
	return 0;
}

static void local_free(struct launcher *l)
{
	struct local *lc = (struct local *)l;
	local_stop(l, NULL);
	if (lc->pidfd >= 0)
		close(lc->pidfd);
	if (lc->console_fd >= 0)
		close(lc->console_fd);
	/* Sockets a killed odyn could not remove, and ours. */
	DIR *d = opendir(lc->dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		size_t n = strlen(de->d_name);
		if (n > 5 && strcmp(de->d_name + n - 5, ".sock") == 0) {
			_cleanup_free_ char *p = xasprintf("%s/%s", lc->dir, de->d_name);
			unlink(p);
		}
	}
	if (d)
		closedir(d);
	if (lc->own_dir)
		rmdir(lc->dir);
	free(lc->dir);
	free(lc);
}

static const struct launcher_ops local_ops = {
    .name = "local",
    .listen_parent = local_listen_parent,
    .start = local_start,
    .connect_guest = local_connect_guest,
    .connect_guest_start = local_connect_guest_start,
    .exit_fd = local_exit_fd,
    .console_fd = local_console_fd,
    .stop = local_stop,
    .free = local_free,
};

static int launcher_local_new(const struct run_options *o, struct launcher **out, struct err **err)
{
	(void)o;
	struct local *lc = xcalloc(1, sizeof(*lc));
	lc->base.ops = &local_ops;
	lc->pidfd = lc->console_fd = -1;
	const char *dir = getenv("ENCLAVER_LOCAL_DIR");
	if (dir && *dir) {
		lc->dir = xstrdup(dir);
	} else {
		const char *tmp = getenv("TMPDIR");
		lc->dir = xasprintf("%s/enclaver-local.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(lc->dir)) {
			err_sys(err, "mkdtemp %s", lc->dir);
			free(lc->dir);
			free(lc);
			return -1;
		}
		lc->own_dir = true;
	}
	*out = &lc->base;
	return 0;
}

__attribute__((constructor)) static void local_register(void)
{
	run_launcher_register("local", launcher_local_new);
}
