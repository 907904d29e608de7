/* test_launcher_emulator: the emulator launcher's contract without a real QEMU: argument and
 * order errors, and start's failure paths (QEMU missing, exiting, silent, interrupted) leaving
 * no process and no runtime folder behind. tests/e2e/odyn.sh boots the real thing. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "runtime/launcher.h"
#include "runtime/runtime.h"
#include "tests/harness.h"

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return false;
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

/* A private runtime folder for the launcher, and an EIF path that exists (QEMU is fake anyway). */
static const char *setup(struct test_ctx *t, char **eif)
{
	const char *tmp = test_tmpdir(t);
	char *run = xasprintf("%s/run", tmp);
	mkdir(run, 0700);
	setenv("XDG_RUNTIME_DIR", run, 1);
	*eif = xasprintf("%s/a.eif", tmp);
	int fd = open(*eif, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
		close(fd);
	static char keep[512];
	snprintf(keep, sizeof(keep), "%s", run);
	free(run);
	return keep;
}

/* A stand-in for QEMU: writes its pid to PIDFILE, prints a console line, then runs `tail`. */
static char *fake_qemu(struct test_ctx *t, const char *tail)
{
	const char *tmp = test_tmpdir(t);
	char *path = xasprintf("%s/fakeqemu", tmp);
	FILE *f = fopen(path, "w");
	if (!f)
		return path;
	fprintf(f, "#!/bin/sh\necho $$ >%s/qemu.pid\necho \"fake console line\"\n%s\n", tmp, tail);
	fclose(f);
	chmod(path, 0755);
	return path;
}

/* The pid a stand-in wrote to `name` in the test's folder; 0 when none. */
static pid_t pid_file(struct test_ctx *t, const char *name)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", test_tmpdir(t), name);
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

static pid_t fake_pid(struct test_ctx *t)
{
	return pid_file(t, "qemu.pid");
}

TEST(launcher_emulator_without_qemu_says_how_to_get_one)
{
	const char *tmp = test_tmpdir(t);
	_cleanup_free_ char *old_path = xstrdup(getenv("PATH") ? getenv("PATH") : "");
	_cleanup_free_ char *old_home = xstrdup(getenv("HOME") ? getenv("HOME") : "");
	unsetenv("ENCLAVER_QEMU");
	unsetenv("XDG_CACHE_HOME");
	setenv("PATH", tmp, 1);
	setenv("HOME", tmp, 1);
	struct launcher *l = NULL;
	struct err *err = NULL;
	CHECK(launcher_emulator_new(NULL, &l, &err) < 0);
	CHECK_ERR_CONTAINS(err, "run scripts/build-qemu.sh");
	CHECK(l == NULL);
	err_free(&err);
	setenv("PATH", old_path, 1);
	setenv("HOME", old_home, 1);
}

TEST(launcher_emulator_parent_ports_and_order)
{
	char *eif;
	const char *run = setup(t, &eif);
	struct launcher_emulator_options opt = {.qemu = "/bin/false", .acpi = true};
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_emulator_new(&opt, &l, &err) == 0);
	CHECK_STR_EQ(l->ops->name, "emulator");
	CHECK(!dir_empty(run)); /* the private folder with the heartbeat socket */
	int fd = -1;
	CHECK(launcher_listen_parent(l, WIRE_HEARTBEAT_PORT, &fd, &err) < 0);
	CHECK_ERR_CONTAINS(err, "heartbeat");
	err_free(&err);
	CHECK(launcher_listen_parent(l, 17002, &fd, &err) == 0);
	int acc = 0;
	socklen_t len = sizeof(acc);
	CHECK(fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc == 1);
	int fd2 = -1;
	CHECK(launcher_listen_parent(l, 17002, &fd2, &err) < 0);
	CHECK_ERR_CONTAINS(err, "already");
	err_free(&err);
	CHECK(launcher_connect_guest(l, 17000, &fd2, &err) < 0);
	CHECK(err && err->code == ESRCH);
	err_free(&err);
	CHECK_INT_EQ(launcher_exit_fd(l), -1);
	CHECK_INT_EQ(launcher_console_fd(l), -1);
	CHECK(launcher_stop(l, &err) == 0); /* before start: nothing to stop */
	launcher_free(l);
	if (fd >= 0)
		close(fd);
	CHECK(dir_empty(run));
	free(eif);
}

TEST(launcher_emulator_start_fails_cleanly_when_qemu_exits)
{
	char *eif;
	const char *run = setup(t, &eif);
	struct launcher_emulator_options opt = {.qemu = "/bin/false"};
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_emulator_new(&opt, &l, &err) == 0);
	int fd = -1;
	CHECK(launcher_listen_parent(l, 5000, &fd, &err) == 0);
	struct launch_request req = {.eif_path = eif, .heartbeat_timeout_s = 60};
	struct launch_info info;
	CHECK(launcher_start(l, &req, &info, &err) < 0);
	CHECK_ERR_CONTAINS(err, "QEMU exited (status 1) before the enclave's heartbeat");
	err_free(&err);
	CHECK(launcher_start(l, &req, &info, &err) < 0); /* one start per launcher */
	CHECK_ERR_CONTAINS(err, "already");
	err_free(&err);
	CHECK(launcher_listen_parent(l, 5001, &fd, &err) < 0);
	CHECK_ERR_CONTAINS(err, "before start");
	err_free(&err);
	CHECK(launcher_stop(l, &err) == 0);
	CHECK(launcher_stop(l, &err) == 0);
	launcher_free(l);
	if (fd >= 0)
		close(fd);
	CHECK(dir_empty(run));
	free(eif);
}

TEST(launcher_emulator_missing_eif_and_bad_cid)
{
	char *eif;
	const char *run = setup(t, &eif);
	struct launcher_emulator_options opt = {.qemu = "/bin/false"};
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_emulator_new(&opt, &l, &err) == 0);
	struct launch_request req = {.eif_path = "/nonexistent/x.eif"};
	struct launch_info info;
	CHECK(launcher_start(l, &req, &info, &err) < 0);
	CHECK_ERR_CONTAINS(err, "/nonexistent/x.eif: No such file");
	err_free(&err);
	launcher_free(l);
	REQUIRE(launcher_emulator_new(&opt, &l, &err) == 0);
	req = (struct launch_request){.eif_path = eif, .cid = 3};
	CHECK(launcher_start(l, &req, &info, &err) < 0);
	CHECK_ERR_CONTAINS(err, "CID 3");
	err_free(&err);
	launcher_free(l);
	CHECK(dir_empty(run));
	free(eif);
}

TEST(launcher_emulator_heartbeat_timeout_stops_qemu_and_shows_the_console)
{
	char *eif;
	const char *run = setup(t, &eif);
	_cleanup_free_ char *qemu = fake_qemu(t, "exec sleep 60");
	struct launcher_emulator_options opt = {.qemu = qemu};
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_emulator_new(&opt, &l, &err) == 0);
	struct launch_request req = {.eif_path = eif, .heartbeat_timeout_s = 1};
	struct launch_info info;
	CHECK(launcher_start(l, &req, &info, &err) < 0);
	CHECK(err && err->code == ETIMEDOUT);
	CHECK_ERR_CONTAINS(err, "no heartbeat from the enclave within 1 s");
	CHECK_ERR_CONTAINS(err, "fake console line");
	err_free(&err);
	pid_t pid = fake_pid(t);
	CHECK(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH);
	launcher_free(l);
	CHECK(dir_empty(run));
	free(eif);
}

TEST(launcher_emulator_pending_sigterm_interrupts_the_boot)
{
	char *eif;
	const char *run = setup(t, &eif);
	_cleanup_free_ char *qemu = fake_qemu(t, "exec sleep 60");
	struct launcher_emulator_options opt = {.qemu = qemu};
	struct launcher *l = NULL;
	struct err *err = NULL;
	REQUIRE(launcher_emulator_new(&opt, &l, &err) == 0);
	sigset_t mask, old;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, &old);
	raise(SIGTERM); /* pending: start must notice it and give up */
	struct launch_request req = {.eif_path = eif, .heartbeat_timeout_s = 60};
	struct launch_info info;
	CHECK(launcher_start(l, &req, &info, &err) < 0);
	CHECK(err && err->code == EINTR);
	err_free(&err);
	int sig = 0;
	CHECK(sigwait(&mask, &sig) == 0 && sig == SIGTERM); /* still pending for the caller */
	sigprocmask(SIG_SETMASK, &old, NULL);
	pid_t pid = fake_pid(t);
	CHECK(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH);
	launcher_free(l);
	CHECK(dir_empty(run));
	free(eif);
}

/* ---------------------------------------------------------------- accelerators */

/* A stand-in QEMU that appends its arguments to ARGS, then acts by accelerator: `kvm` under
 * -accel kvm; under TCG it answers the heartbeat as an enclave would (through the launcher's
 * heartbeat socket beside the vhost-user socket named in -chardev) and waits. */
static char *fake_qemu_accel(struct test_ctx *t, const char *kvm)
{
	const char *tmp = test_tmpdir(t);
	char *path = xasprintf("%s/fakeqemu-accel", tmp);
	FILE *f = fopen(path, "w");
	if (!f)
		return path;
	fprintf(f,
	        "#!/bin/sh\n"
	        "echo \"$*\" >>%s/args\n"
	        "case \"$*\" in *'-accel kvm'*)\n"
	        "  echo $$ >%s/kvm.pid\n"
	        "  %s\n"
	        "  ;;\n"
	        "esac\n"
	        "echo 'booting under tcg'\n"
	        "exec python3 -c '\n"
	        "import socket, sys, time\n"
	        "dev = [a for a in sys.argv if a.startswith(\"socket,id=c0,path=\")][0]\n"
	        "hb = dev.split(\"path=\", 1)[1].rsplit(\"/\", 1)[0] + \"/heartbeat.sock\"\n"
	        "s = socket.socket(socket.AF_UNIX)\n"
	        "s.connect(hb)\n"
	        "s.send(bytes([0xb7]))\n"
	        "s.recv(1)\n"
	        "time.sleep(60)\n"
	        "' \"$@\"\n",
	        tmp, tmp, kvm);
	fclose(f);
	chmod(path, 0755);
	return path;
}

/* The stand-in's runs, one line of arguments each. */
static char *fake_args(struct test_ctx *t)
{
	_cleanup_free_ char *path = xasprintf("%s/args", test_tmpdir(t));
	char *data = NULL;
	size_t len = 0;
	struct err *err = NULL;
	if (io_read_file(path, 1 << 20, &data, &len, &err) < 0) {
		err_free(&err);
		return xstrdup("");
	}
	return data;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static pid_t kvm_pid(struct test_ctx *t)
{
	return pid_file(t, "kvm.pid");
}

/* Boots the stand-in with `accel` and a KVM device that opens (/dev/null) or not; a KVM guest
 * silent for `stall_s` is handed over to TCG. */
static int accel_boot_stall(struct test_ctx *t, const char *kvm_behaviour, enum emu_accel accel, bool kvm_present,
                            unsigned stall_s, struct launcher **l, struct err **err)
{
	char *eif;
	setup(t, &eif);
	_cleanup_free_ char *qemu = fake_qemu_accel(t, kvm_behaviour);
	struct launcher_emulator_options opt = {
	    .qemu = qemu,
	    .accel = accel,
	    .kvm_device = kvm_present ? "/dev/null" : "/nonexistent/kvm",
	    .kvm_stall_s = stall_s,
	};
	int r = launcher_emulator_new(&opt, l, err);
	if (r == 0) {
		struct launch_request req = {.eif_path = eif, .heartbeat_timeout_s = 30, .debug_mode = true};
		struct launch_info info;
		r = launcher_start(*l, &req, &info, err);
	}
	free(eif);
	return r;
}

/* The tests that want the stall to happen wait 1 s for it. */
static int accel_boot(struct test_ctx *t, const char *kvm_behaviour, enum emu_accel accel, bool kvm_present,
                      struct launcher **l, struct err **err)
{
	return accel_boot_stall(t, kvm_behaviour, accel, kvm_present, 1, l, err);
}

/* What the debug console holds so far (the stand-in printed it before the heartbeat). */
static char *console_text(struct launcher *l)
{
	struct buf b = {0};
	int fd = launcher_console_fd(l);
	if (fd >= 0) {
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		char chunk[4096];
		ssize_t n;
		while ((n = read(fd, chunk, sizeof(chunk))) > 0)
			buf_append(&b, chunk, (size_t)n);
	}
	char *text = xstrdup(buf_str(&b));
	buf_free(&b);
	return text;
}

TEST(emu_accel_names_parse_both_ways)
{
	enum emu_accel a = EMU_ACCEL_DEFAULT;
	CHECK(emu_accel_parse("auto", &a) == 0 && a == EMU_ACCEL_AUTO);
	CHECK(emu_accel_parse("kvm", &a) == 0 && a == EMU_ACCEL_KVM);
	CHECK(emu_accel_parse("tcg", &a) == 0 && a == EMU_ACCEL_TCG);
	CHECK(emu_accel_parse("KVM", &a) < 0 && emu_accel_parse("", &a) < 0 && emu_accel_parse(NULL, &a) < 0);
	CHECK_STR_EQ(emu_accel_name(EMU_ACCEL_KVM), "kvm");
	CHECK_STR_EQ(emu_accel_name(EMU_ACCEL_TCG), "tcg");
	CHECK_STR_EQ(emu_accel_name(EMU_ACCEL_AUTO), "auto");
}

TEST(emulator_auto_falls_back_to_tcg_when_qemu_reports_a_kvm_error)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	/* QEMU's words when the host's KVM cannot emulate an instruction; QEMU stays alive. */
	int r = accel_boot(t, "echo 'KVM internal error. Suberror: 1' >&2; echo 'emulation failure' >&2; exec sleep 60",
	                   EMU_ACCEL_AUTO, true, &l, &err);
	if (r < 0)
		test_fail(t, __FILE__, __LINE__, "start: %s", err->msg);
	err_free(&err);
	CHECK_STR_EQ(launcher_emulator_accel(l), "tcg");
	_cleanup_free_ char *args = fake_args(t);
	CHECK(count_lines(args) == 2);
	CHECK(strstr(args, "-accel kvm -cpu host,-arch-capabilities") != NULL);
	CHECK(strstr(args, "-accel tcg -cpu max") != NULL);
	/* The second boot's console reaches the reader after the first one's. */
	_cleanup_free_ char *console = console_text(l);
	CHECK(strstr(console, "booting under tcg") != NULL);
	pid_t pid = kvm_pid(t);
	CHECK(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH); /* the KVM attempt was stopped */
	launcher_free(l);
}

TEST(emulator_auto_falls_back_to_tcg_when_qemu_dies_under_kvm)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	CHECK(accel_boot(t, "echo 'qemu: failed to set MSR 0x10a to 0xc000069' >&2; exit 1", EMU_ACCEL_AUTO, true, &l,
	                 &err) == 0);
	err_free(&err);
	CHECK_STR_EQ(launcher_emulator_accel(l), "tcg");
	_cleanup_free_ char *args = fake_args(t);
	CHECK(count_lines(args) == 2);
	launcher_free(l);
}

TEST(emulator_auto_falls_back_to_tcg_when_the_kvm_guest_is_silent)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	CHECK(accel_boot(t, "echo 'Probing EDD (edd=off to disable)... ok'; exec sleep 60", EMU_ACCEL_AUTO, true, &l,
	                 &err) == 0);
	err_free(&err);
	CHECK_STR_EQ(launcher_emulator_accel(l), "tcg");
	_cleanup_free_ char *args = fake_args(t);
	CHECK(count_lines(args) == 2);
	pid_t pid = kvm_pid(t);
	CHECK(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH);
	launcher_free(l);
}

TEST(emulator_auto_keeps_a_kvm_boot_that_reaches_the_heartbeat)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	/* Under KVM the stand-in does what it does under TCG: a boot that works stays on KVM. Its
	 * console is given 10 s, not 1: on a loaded machine (the suite runs two builds at once) the
	 * stand-in's shell may take longer than 1 s to print, which is a stall, not a fault. */
	CHECK(accel_boot_stall(t, ":", EMU_ACCEL_AUTO, true, 10, &l, &err) == 0);
	err_free(&err);
	CHECK_STR_EQ(launcher_emulator_accel(l), "kvm");
	_cleanup_free_ char *args = fake_args(t);
	CHECK(count_lines(args) == 1);
	launcher_free(l);
}

TEST(emulator_auto_without_kvm_uses_tcg_at_once)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	CHECK(accel_boot(t, "exit 1", EMU_ACCEL_AUTO, false, &l, &err) == 0);
	err_free(&err);
	CHECK_STR_EQ(launcher_emulator_accel(l), "tcg");
	_cleanup_free_ char *args = fake_args(t);
	CHECK(count_lines(args) == 1);
	CHECK(strstr(args, "-accel tcg") != NULL);
	launcher_free(l);
}

TEST(emulator_forced_tcg_never_tries_kvm)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	CHECK(accel_boot(t, "exit 1", EMU_ACCEL_TCG, true, &l, &err) == 0);
	err_free(&err);
	_cleanup_free_ char *args = fake_args(t);
	CHECK(count_lines(args) == 1);
	CHECK(strstr(args, "kvm") == NULL);
	launcher_free(l);
}

/* connect_guest (issue 14, item 1): a vsock backend that cannot take the connection (its
 * backlog full) costs the caller the bound, with an error naming the port and the socket,
 * not a connect that waits as long as the kernel lets it. */
/* An emulator launcher started with the stand-in QEMU whose vsock backend socket (`uds`) has
 * given way to a listener that never accepts (its backlog full with fill[2]); NULL on failure. */
static struct launcher *started_with_full_backend(struct test_ctx *t, const char *uds, unsigned connect_timeout_ms,
                                                  int *lfd, int fill[2])
{
	char *eif;
	setup(t, &eif);
	_cleanup_free_ char *qemu = fake_qemu_accel(t, "exit 1");
	struct launcher_emulator_options opt = {.qemu = qemu,
	                                        .accel = EMU_ACCEL_TCG,
	                                        .kvm_device = "/dev/null",
	                                        .uds_path = uds,
	                                        .connect_timeout_ms = connect_timeout_ms};
	struct launcher *l = NULL;
	struct err *err = NULL;
	struct launch_request req = {.eif_path = eif, .heartbeat_timeout_s = 30};
	struct launch_info info;
	if (launcher_emulator_new(&opt, &l, &err) < 0 || launcher_start(l, &req, &info, &err) < 0) {
		test_fail(t, __FILE__, __LINE__, "start: %s", err->msg);
		err_free(&err);
		launcher_free(l);
		l = NULL;
	}
	free(eif);
	if (l) {
		unlink(uds);
		*lfd = test_full_unix_listener(uds, fill);
	}
	if (l && *lfd < 0) {
		test_fail(t, __FILE__, __LINE__, "no full listener at %s", uds);
		launcher_free(l);
		l = NULL;
	}
	return l;
}

TEST(emulator_connect_guest_is_bounded)
{
	_cleanup_free_ char *uds = xasprintf("%s/vsock.sock", test_tmpdir(t));
	int lfd, fill[2];
	struct launcher *l = started_with_full_backend(t, uds, 300, &lfd, fill);
	REQUIRE(l);
	struct err *err = NULL;
	int fd = -1;
	int64_t t0 = time_monotonic_ms();
	CHECK(launcher_connect_guest(l, 17000, &fd, &err) < 0);
	CHECK(time_monotonic_ms() - t0 < 5000);
	CHECK(err && err->code == ETIMEDOUT);
	CHECK_ERR_CONTAINS(err, "enclave port 17000");
	CHECK_ERR_CONTAINS(err, uds);
	CHECK_ERR_CONTAINS(err, "not accepted within 300 ms");
	err_free(&err);
	/* Taken, but no answer from the guest: the same bound, for the whole exchange. */
	close(fill[0]);
	close(fill[1]);
	int a1 = accept(lfd, NULL, NULL), a2 = accept(lfd, NULL, NULL);
	t0 = time_monotonic_ms();
	CHECK(launcher_connect_guest(l, 17000, &fd, &err) < 0);
	CHECK(time_monotonic_ms() - t0 < 5000);
	CHECK(err && err->code == ETIMEDOUT);
	CHECK_ERR_CONTAINS(err, "enclave port 17000: no answer within 300 ms");
	err_free(&err);
	close(a1);
	close(a2);
	close(lfd);
	launcher_free(l);
}

/* The CONNECT line the launcher sent on an accepted connection; "" when none within 5 s. */
static void read_connect_line(int fd, char *line, size_t cap)
{
	size_t n = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (n + 1 < cap && poll(&p, 1, 5000) == 1) {
		if (read(fd, line + n, 1) != 1)
			break;
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
}

/* connect_guest_start (issue 14, item 1): the event loop's connect into the emulated guest never
 * waits. A backend socket whose backlog is full fails at once (EAGAIN: the caller's queue closes
 * the client); a taken one returns with the CONNECT line sent, and connect_guest_step waits for
 * the answer (EPOLLIN) without blocking: "OK" connects (the guest's first bytes stay unread), a
 * closed socket is ECONNREFUSED (retried like Nitro's), anything else EPROTO. */
TEST(emulator_connect_guest_start_never_waits)
{
	_cleanup_free_ char *uds = xasprintf("%s/vsock.sock", test_tmpdir(t));
	int lfd, fill[2];
	struct launcher *l = started_with_full_backend(t, uds, 0, &lfd, fill);
	REQUIRE(l);
	struct err *err = NULL;
	int fd = -1;
	bool in_progress = false;
	int64_t t0 = time_monotonic_ms();
	CHECK(launcher_connect_guest_start(l, 80, &fd, &in_progress, &err) < 0);
	CHECK(time_monotonic_ms() - t0 < 1000);
	CHECK(err && err->code == EAGAIN);
	CHECK_ERR_CONTAINS(err, "enclave port 80");
	err_free(&err);
	close(fill[0]);
	close(fill[1]);
	close(accept(lfd, NULL, NULL));
	close(accept(lfd, NULL, NULL));

	/* answer: what the stand-in backend says; then the step's result and code. */
	const struct {
		const char *answer; /* NULL: closes the connection (the guest refused) */
		int code;           /* 0: connected */
	} cases[] = {{"OK 1024\nfirst bytes", 0}, {NULL, ECONNREFUSED}, {"ERR nope\n", EPROTO}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t0 = time_monotonic_ms();
		REQUIRE(launcher_connect_guest_start(l, 80, &fd, &in_progress, &err) == 0);
		CHECK(in_progress);
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
		int b = accept(lfd, NULL, NULL);
		REQUIRE(b >= 0);
		char line[64];
		read_connect_line(b, line, sizeof(line));
		CHECK_STR_EQ(line, "CONNECT 80\n");
		uint32_t ev = EPOLLOUT; /* the caller's first wait */
		CHECK(launcher_connect_guest_step(l, 80, fd, &ev, &err) == 0);
		CHECK_INT_EQ(ev, EPOLLIN);
		CHECK(time_monotonic_ms() - t0 < 1000); /* nothing waited for the answer */
		if (cases[i].answer)
			CHECK(write(b, cases[i].answer, strlen(cases[i].answer)) == (ssize_t)strlen(cases[i].answer));
		close(b);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		CHECK(poll(&p, 1, 5000) == 1);
		ev = EPOLLIN;
		int r = launcher_connect_guest_step(l, 80, fd, &ev, &err);
		if (cases[i].code == 0) {
			CHECK(r == 0 && ev == 0);
			char rest[32] = {0};
			CHECK(read(fd, rest, sizeof(rest) - 1) == 11);
			CHECK_STR_EQ(rest, "first bytes");
		} else {
			CHECK(r < 0 && err && err->code == cases[i].code);
			CHECK_ERR_CONTAINS(err, "enclave port 80");
		}
		err_free(&err);
		close(fd);
	}
	close(lfd);
	launcher_free(l);
}

TEST(emulator_forced_kvm_fails_with_the_cause_and_no_fallback)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	CHECK(accel_boot(t, "echo 'KVM internal error. Suberror: 1' >&2; exec sleep 60", EMU_ACCEL_KVM, true, &l,
	                 &err) < 0);
	CHECK(err && err->code == ENOEXEC);
	CHECK_ERR_CONTAINS(err, "--accel kvm: QEMU reported a KVM error");
	CHECK_ERR_CONTAINS(err, "KVM internal error. Suberror: 1");
	err_free(&err);
	_cleanup_free_ char *args = fake_args(t);
	CHECK(count_lines(args) == 1);
	pid_t pid = kvm_pid(t);
	CHECK(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH);
	launcher_free(l);

	/* QEMU dying under a forced KVM is QEMU's error, with its words. */
	l = NULL;
	CHECK(accel_boot(t, "echo 'qemu: failed to set MSR 0x10a' >&2; exit 1", EMU_ACCEL_KVM, true, &l, &err) < 0);
	CHECK_ERR_CONTAINS(err, "QEMU exited (status 1) before the enclave's heartbeat");
	CHECK_ERR_CONTAINS(err, "failed to set MSR 0x10a");
	err_free(&err);
	launcher_free(l);
}

TEST(emulator_forced_kvm_without_the_device_names_it)
{
	struct launcher *l = NULL;
	struct err *err = NULL;
	CHECK(accel_boot(t, "exit 1", EMU_ACCEL_KVM, false, &l, &err) < 0);
	CHECK(err && err->code == ENOENT);
	CHECK_ERR_CONTAINS(err, "--accel kvm: /nonexistent/kvm");
	err_free(&err);
	_cleanup_free_ char *args = fake_args(t);
	CHECK_STR_EQ(args, ""); /* QEMU never ran */
	launcher_free(l);
}

TEST(emulator_accel_from_the_environment)
{
	char *eif;
	setup(t, &eif);
	struct launcher *l = NULL;
	struct err *err = NULL;
	struct launcher_emulator_options opt = {.qemu = "/bin/false"};
	setenv("ENCLAVER_EMULATOR_ACCEL", "fast", 1);
	CHECK(launcher_emulator_new(&opt, &l, &err) < 0);
	CHECK_ERR_CONTAINS(err, "ENCLAVER_EMULATOR_ACCEL=fast: expected auto, kvm or tcg");
	err_free(&err);
	CHECK(l == NULL);

	/* tcg from the environment: the stand-in runs once, without KVM. */
	setenv("ENCLAVER_EMULATOR_ACCEL", "tcg", 1);
	_cleanup_free_ char *qemu = fake_qemu_accel(t, "exit 1");
	struct launcher_emulator_options opt2 = {.qemu = qemu, .kvm_device = "/dev/null"};
	REQUIRE(launcher_emulator_new(&opt2, &l, &err) == 0);
	struct launch_request req = {.eif_path = eif, .heartbeat_timeout_s = 30};
	struct launch_info info;
	CHECK(launcher_start(l, &req, &info, &err) == 0);
	err_free(&err);
	CHECK_STR_EQ(launcher_emulator_accel(l), "tcg");
	launcher_free(l);
	unsetenv("ENCLAVER_EMULATOR_ACCEL");
	free(eif);
}
