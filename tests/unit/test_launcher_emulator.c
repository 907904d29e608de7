/* test_launcher_emulator: the emulator launcher's contract without a real QEMU: argument and
 * order errors, and start's failure paths (QEMU missing, exiting, silent, interrupted) leaving
 * no process and no runtime folder behind. tests/e2e/odyn.sh boots the real thing. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
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

static pid_t fake_pid(struct test_ctx *t)
{
	_cleanup_free_ char *path = xasprintf("%s/qemu.pid", test_tmpdir(t));
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
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
	CHECK(launcher_listen_parent(l, RUNTIME_HEARTBEAT_PORT, &fd, &err) < 0);
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
