/* init: a tiny static init for the end-to-end test EIF (a test fixture, not the product's init).
 * Loads the vsock/NSM modules, sends the heartbeat, prints the PCRs read from /dev/nsm, runs the
 * vsock data tests the harness expects (tests/e2e/run.sh), then reboots (QEMU exits). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PARENT_CID     3
#define HEARTBEAT_PORT 9000
#define SINK_PORT      5001 /* host: checks the pattern we send, answers "ok N" */
#define ECHO_PORT      7000 /* ours: the host sends data, we echo it */
#define SINK_BYTES     (8u << 20)

static void say(const char *fmt, ...)
{
	va_list ap;
	char line[512];
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(1, "E2E: ", 5) < 0 || write(1, line, (size_t)n) < 0)
		return;
}

static void die(const char *what)
{
	say("FAIL %s: %s", what, strerror(errno));
	sync();
	reboot(RB_AUTOBOOT);
	_exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_names(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* /modules/NN-name.ko in name order: the order kernel-debian.sh wrote them in. */
static void load_modules(void)
{
	struct dirent **names;
	int n = scandir("/modules", &names, NULL, cmp_names);
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char path[300];
			snprintf(path, sizeof(path), "/modules/%s", names[i]->d_name);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) < 0)
				say("module %s: %s", names[i]->d_name, strerror(errno));
			if (fd >= 0)
				close(fd);
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

static int vsock_connect(unsigned port)
{
	struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = PARENT_CID, .svm_port = port};
	/* The transport probes asynchronously after its module loads: retry for a while. */
	for (int tries = 0; tries < 300; tries++) {
		int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(100 * 1000);
	}
	return -1;
}

static int write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

#include "nsm_pcr.h"

static void print_pcrs(void)
{
	int fd = -1;
	for (int tries = 0; tries < 100 && fd < 0; tries++) {
		fd = open("/dev/nsm", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			usleep(100 * 1000);
	}
	if (fd < 0) {
		say("FAIL open /dev/nsm: %s", strerror(errno));
		return;
	}
	static const unsigned pcrs[] = {0, 1, 2, 3, 4, 8};
	for (size_t i = 0; i < sizeof(pcrs) / sizeof(pcrs[0]); i++) {
		uint8_t v[48];
		int locked;
		if (nsm_describe_pcr_bounded(fd, pcrs[i], v, &locked, 30) < 0) {
			int e = errno;
			say("FAIL DescribePCR %u: %s", pcrs[i], strerror(e));
			if (e == ETIMEDOUT) {
				/* NSM stopped answering: asking again would cost 30 s a PCR. */
				nsm_print_virtio_interrupts(say);
				say("FAIL NSM did not answer within 30 s: the remaining PCRs are not read");
				break;
			}
			continue;
		}
		char hex[97];
		for (int k = 0; k < 48; k++)
			snprintf(hex + 2 * k, 3, "%02x", v[k]);
		say("PCR%u %s locked=%d", pcrs[i], hex, locked);
	}
	close(fd);
}

/* ---------------------------------------------------------------- data tests */
static uint8_t pattern(uint64_t i)
{
	return (uint8_t)((i * 7 + (i >> 12)) % 251);
}

static void sink_test(void)
{
	int fd = vsock_connect(SINK_PORT);
	if (fd < 0) {
		say("FAIL connect to the sink: %s", strerror(errno));
		return;
	}
	static uint8_t chunk[65536];
	double t0 = now_s();
	for (uint64_t off = 0; off < SINK_BYTES; off += sizeof(chunk)) {
		for (size_t k = 0; k < sizeof(chunk); k++)
			chunk[k] = pattern(off + k);
		if (write_all(fd, chunk, sizeof(chunk)) < 0) {
			say("FAIL sink write: %s", strerror(errno));
			close(fd);
			return;
		}
	}
	shutdown(fd, SHUT_WR);
	char answer[64] = {0};
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(answer) - 1 && (r = read(fd, answer + got, sizeof(answer) - 1 - got)) > 0)
		got += (size_t)r;
	answer[strcspn(answer, "\n")] = '\0';
	say("sink sent %u bytes in %.2f s (guest clock), host says: %s", SINK_BYTES, now_s() - t0, answer);
	close(fd);
}

/* Echoes one connection on ECHO_PORT, in a child process. */
static pid_t echo_server(void)
{
	int l = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = ECHO_PORT};
	if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(l, 4) < 0)
		die("echo server");
	pid_t pid = fork();
	if (pid != 0) {
		close(l);
		return pid;
	}
	int c = accept(l, NULL, NULL);
	if (c < 0)
		_exit(1);
	static uint8_t data[65536];
	uint64_t total = 0;
	ssize_t n;
	while ((n = read(c, data, sizeof(data))) > 0) {
		if (write_all(c, data, (size_t)n) < 0)
			_exit(1);
		total += (uint64_t)n;
	}
	say("echoed %llu bytes", (unsigned long long)total);
	close(c);
	_exit(0);
}

int main(void)
{
	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) < 0 && errno != EBUSY)
		die("mount /dev");
	int con = open("/dev/console", O_RDWR);
	if (con >= 0) {
		dup2(con, 0);
		dup2(con, 1);
		dup2(con, 2);
		if (con > 2)
			close(con);
	}
	say("init started");
	load_modules();
	pid_t echo = echo_server();

	int hb = vsock_connect(HEARTBEAT_PORT);
	if (hb < 0)
		die("heartbeat connect");
	uint8_t b = 0xB7;
	if (write_all(hb, &b, 1) < 0 || read(hb, &b, 1) != 1 || b != 0xB7)
		die("heartbeat exchange");
	close(hb);
	say("heartbeat ok");

	print_pcrs();
	sink_test();

	/* The host connects to our echo port after seeing the heartbeat; give it time. */
	int status = 0;
	for (int i = 0; i < 3000; i++) {
		if (waitpid(echo, &status, WNOHANG) == echo)
			break;
		usleep(100 * 1000);
	}
	say("done");
	sync();
	reboot(RB_AUTOBOOT);
	return 0;
}
