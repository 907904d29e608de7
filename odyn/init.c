/* init: odyn as the enclave's PID 1, after AWS's init.c: devtmpfs and the
 * console, kernel modules, the heartbeat to the parent, /cmd and /env, the
 * switch to /rootfs, the usual mounts, loopback; then the supervisor, and a
 * reboot when it ends, which ends the enclave so the host sees it stop. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "odyn/internal.h"

/* For the parent to take the connection and answer: it answers at once when it runs, and a
 * full backlog or a silent parent must not hold the boot (the host reports a missing heartbeat). */
#define HEARTBEAT_TIMEOUT_MS 10000

extern char **environ;

enum odyn_mode odyn_mode_choose(pid_t pid, int argc, char *const *argv)
{
	if (pid == 1)
		return ODYN_MODE_INIT;
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return ODYN_MODE_HELP;
	return ODYN_MODE_SUPERVISOR;
}

int odyn_init_split_lines(const char *data, size_t len, char ***out, struct err **err)
{
	if (memchr(data, '\0', len))
		return err_set(err, EINVAL, "NUL byte at offset %zu",
		               (size_t)((const char *)memchr(data, '\0', len) - data));
	char **v = xcalloc(1, sizeof(*v));
	size_t n = 0;
	const char *p = data, *end = data + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t keep = l > 0 && p[l - 1] == '\r' ? l - 1 : l;
		if (keep > 0) {
			v = xrealloc(v, (n + 2) * sizeof(*v));
			v[n++] = xstrndup(p, keep);
			v[n] = NULL;
		}
		p += l + (nl ? 1 : 0);
	}
	*out = v;
	return 0;
}

char *odyn_init_module_params(const char *cmdline, const char *module)
{
	struct buf b = {0};
	buf_puts(&b, "");
	size_t ml = strlen(module);
	const char *p = cmdline;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		const char *s = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		size_t tl = (size_t)(p - s);
		if (tl <= ml + 1 || s[ml] != '.')
			continue;
		bool same = true;
		for (size_t i = 0; i < ml && same; i++) {
			char a = s[i] == '-' ? '_' : s[i], c = module[i] == '-' ? '_' : module[i];
			same = a == c;
		}
		if (!same)
			continue;
		if (b.len)
			buf_putc(&b, ' ');
		buf_append(&b, s + ml + 1, tl - ml - 1);
	}
	return b.data;
}

/* ---------------------------------------------------------------- steps (untested outside an enclave) */

static int mount_one(const char *src, const char *dst, const char *type, unsigned long flags, const char *data,
                     struct err **err)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
		return err_sys(err, "mount %s on %s", type, dst);
	return 0;
}

static void console_setup(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

/* Loads the modules the kernel bundle lists in /odyn-modules (one path per
 * line, in dependency order), else /nsm.ko as AWS's bootstrap ramdisk has it. */
static void modules_load(void)
{
	_cleanup_free_ char *cmdline = NULL, *list = NULL;
	size_t n;
	if (io_read_file("/proc/cmdline", 65536, &cmdline, &n, NULL) < 0)
		cmdline = xstrdup("");
	char **mods = NULL;
	if (io_read_file("/odyn-modules", 65536, &list, &n, NULL) == 0)
		odyn_init_split_lines(list, n, &mods, NULL);
	else if (access("/nsm.ko", F_OK) == 0) {
		mods = xcalloc(2, sizeof(*mods));
		mods[0] = xstrdup("/nsm.ko");
	}
	for (char **m = mods; m && *m; m++) {
		const char *base = strrchr(*m, '/') ? strrchr(*m, '/') + 1 : *m;
		_cleanup_free_ char *name = xstrndup(base, strcspn(base, "."));
		_cleanup_free_ char *params = odyn_init_module_params(cmdline, name);
		int fd = open(*m, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, params, 0) < 0) {
			if (errno != EEXIST)
				log_warn("init: load module %s: %s", *m, strerror(errno));
		} else {
			log_info("init: loaded %s", *m);
		}
		if (fd >= 0)
			close(fd);
	}
	odyn_strv_free(mods);
}

int odyn_init_heartbeat(const struct transport_addr *parent, int timeout_ms, struct err **err)
{
	_cleanup_close_ int fd = transport_connect_timed(parent, timeout_ms, err);
	if (fd < 0)
		return err_wrap(err, "heartbeat");
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return err_sys(err, "heartbeat: %s: SO_RCVTIMEO", parent->text);
	uint8_t b = WIRE_HEARTBEAT_BYTE;
	if (io_write_full(fd, &b, 1, err) < 0)
		return err_wrap(err, "heartbeat");
	ssize_t got = io_read_full(fd, &b, 1, err);
	if (got < 0 && (*err)->code == EAGAIN) {
		err_free(err);
		return err_set(err, ETIMEDOUT, "heartbeat: %s: no answer within %d ms", parent->text, timeout_ms);
	}
	if (got < 0)
		return err_wrap(err, "heartbeat");
	if (got != 1)
		return err_set(err, EPROTO, "heartbeat: %s closed the connection without answering", parent->text);
	if (b != WIRE_HEARTBEAT_BYTE)
		return err_set(err, EPROTO, "heartbeat: the parent answered 0x%02x", b);
	return 0;
}

static int heartbeat(struct err **err)
{
	struct transport_addr a;
	char text[64];
	snprintf(text, sizeof(text), "vsock:%d:%d", WIRE_PARENT_CID, WIRE_HEARTBEAT_PORT);
	if (transport_parse(text, &a, err) < 0)
		return -1;
	return odyn_init_heartbeat(&a, HEARTBEAT_TIMEOUT_MS, err);
}

static int read_and_delete(const char *path, char ***out, struct err **err)
{
	_cleanup_free_ char *data = NULL;
	size_t n;
	if (io_read_file(path, 1 << 20, &data, &n, err) < 0)
		return -1;
	unlink(path);
	if (odyn_init_split_lines(data, n, out, err) < 0)
		return err_wrap(err, "%s", path);
	return 0;
}

/* /rootfs becomes / : bind it onto itself so it is a mount point, move it
 * over / and chroot, as AWS's init does (pivot_root cannot leave an initramfs). */
static int switch_root(struct err **err)
{
	if (mount("/rootfs", "/rootfs", NULL, MS_BIND | MS_REC, NULL) < 0)
		return err_sys(err, "bind /rootfs");
	if (chdir("/rootfs") < 0)
		return err_sys(err, "chdir /rootfs");
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		return err_sys(err, "move /rootfs to /");
	if (chroot(".") < 0 || chdir("/") < 0)
		return err_sys(err, "chroot");
	return 0;
}

static int mounts_after_switch(struct err **err)
{
	const unsigned long nx = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, NULL, err) < 0 ||
	    mount_one("proc", "/proc", "proc", nx, NULL, err) < 0 ||
	    mount_one("sysfs", "/sys", "sysfs", nx, NULL, err) < 0 ||
	    mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", err) < 0 ||
	    mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", err) < 0)
		return -1;
	/* Kernels built without these still run most apps: warn and go on. */
	static const struct {
		const char *src, *dst, *type, *data;
		unsigned long flags;
	} optional[] = {
	    {"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666,mode=0620", MS_NOSUID | MS_NOEXEC},
	    {"tmpfs", "/dev/shm", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV | MS_NOEXEC},
	    {"cgroup2", "/sys/fs/cgroup", "cgroup2", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC},
	};
	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
		struct err *e = NULL;
		if (mount_one(optional[i].src, optional[i].dst, optional[i].type, optional[i].flags, optional[i].data,
		              &e) < 0) {
			log_warn("init: %s", e->msg);
			err_free(&e);
		}
	}
	return 0;
}

static void loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			log_warn("init: loopback up: %s", strerror(errno));
	}
	close(fd);
}

static int supervise(char **cmd, char **env, struct err **err)
{
	clearenv();
	for (char **e = env; e && *e; e++)
		if (strchr(*e, '='))
			putenv(xstrdup(*e)); /* the environment keeps these for the process's life */
	if (getenv("PATH") == NULL)
		setenv("PATH", "/sbin:/usr/sbin:/bin:/usr/bin", 1);
	struct odyn_config c;
	odyn_config_init(&c);
	int rc;
	/* "/sbin/odyn --config-dir ... -- app": this odyn takes the options. */
	const char *base = strrchr(cmd[0], '/') ? strrchr(cmd[0], '/') + 1 : cmd[0];
	int argc = 0;
	while (cmd[argc])
		argc++;
	if (strcmp(base, "odyn") == 0)
		rc = odyn_config_parse_args(&c, argc - 1, cmd + 1, err);
	else
		rc = odyn_config_parse_args(&c, argc, cmd, err); /* an AWS-style command */
	if (rc == 0)
		rc = odyn_run(&c, err);
	odyn_config_free(&c);
	return rc;
}

/* Seeding the kernel's pool from NSM runs on a thread the boot waits for at most this long:
 * the NSM driver waits up to 2 minutes for an answer, uninterruptibly, and the heartbeat comes
 * after the seeding. A lost answer must not hold the heartbeat (the kernel's nsm-hwrng feeds
 * the pool as well). */
#define SEED_WAIT_S 10

struct seed_job {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, abandoned;
	struct err *err;
};

static void *seed_thread(void *arg)
{
	struct seed_job *j = arg;
	struct err *e = NULL;
	odyn_nsm_seed_entropy(&e);
	pthread_mutex_lock(&j->lock);
	j->err = e;
	j->done = true;
	bool abandoned = j->abandoned;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (abandoned) { /* the boot went on without us */
		if (e)
			log_warn("init: entropy from NSM, %d s late: %s", SEED_WAIT_S, e->msg);
		err_free(&j->err);
		free(j);
	}
	return NULL;
}

static void seed_entropy_bounded(void)
{
	struct seed_job *j = xcalloc(1, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, seed_thread, j) != 0) {
		free(j);
		_cleanup_err_ struct err *e = NULL;
		if (odyn_nsm_seed_entropy(&e) < 0)
			log_warn("init: entropy from NSM: %s", e->msg);
		return;
	}
	pthread_detach(t);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SEED_WAIT_S;
	pthread_mutex_lock(&j->lock);
	while (!j->done)
		if (pthread_cond_timedwait(&j->cond, &j->lock, &until) == ETIMEDOUT)
			break;
	if (!j->done) {
		j->abandoned = true;
		pthread_mutex_unlock(&j->lock);
		log_warn("init: NSM did not answer GetRandom within %d s: booting on without it", SEED_WAIT_S);
		return;
	}
	pthread_mutex_unlock(&j->lock);
	if (j->err)
		log_warn("init: entropy from NSM: %s", j->err->msg);
	err_free(&j->err);
	free(j);
}

int odyn_init_main(struct err **err)
{
	mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, NULL, NULL);
	console_setup();
	mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, NULL);
	modules_load();
	_cleanup_err_ struct err *hb = NULL;
	seed_entropy_bounded();
	if (heartbeat(&hb) < 0)
		log_error("init: %s", hb->msg); /* the host will time out and say so */
	char **cmd = NULL, **env = NULL;
	int rc = -1;
	if (read_and_delete("/cmd", &cmd, err) < 0 || read_and_delete("/env", &env, err) < 0)
		goto off;
	if (cmd[0] == NULL) {
		err_set(err, EINVAL, "/cmd is empty");
		goto off;
	}
	umount("/proc");
	if (switch_root(err) < 0 || mounts_after_switch(err) < 0)
		goto off;
	loopback_up();
	rc = supervise(cmd, env, err);
	if (rc < 0)
		log_error("init: %s", (*err)->msg);
	else
		log_info("init: app done (%d), ending the enclave", rc);
off:
	if (rc < 0 && err && *err)
		log_error("init: %s", (*err)->msg);
	odyn_strv_free(cmd);
	odyn_strv_free(env);
	sync();
	/* RB_AUTOBOOT, as AWS's init: a Nitro enclave cannot restart, so a reboot
	 * ends it, while RB_POWER_OFF on a kernel without a power-off handler
	 * only halts, leaving the enclave (and `enclaver run`) up for good. The
	 * emulator gets the same result from reboot=t and QEMU's -no-reboot. */
	reboot(RB_AUTOBOOT);
	return err_sys(err, "reboot");
}
