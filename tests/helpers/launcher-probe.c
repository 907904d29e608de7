/* launcher-probe: drives the emulator launcher (runtime/launcher.h) the way the outer side does,
 * for tests/e2e/odyn.sh and the benchmark: boots an EIF, reads guest ports into files, accepts the
 * enclave's connections to parent ports, and reports what happened and when. Not a test itself.
 *
 * launcher-probe --eif FILE [--qemu PATH] [--cid N] [--memory-mb N] [--timeout S] [--console FILE]
 *                [--no-acpi] [--stream PORT=FILE]... [--parent PORT=FILE]...
 *   --no-acpi: the machine without ACPI, for kernels that take the devices from the command line
 *   --stream: connect_guest(PORT) (retried while refused) and copy it to FILE until its end
 *   --parent: listen_parent(PORT); each connection's bytes are appended to FILE, and once every
 *             --stream is connected the probe answers it "ok\n"
 * Prints "name value" lines (heartbeat, stream connects and first bytes, in seconds from the call
 * to start; exit status); exit 0 when the enclave stopped by itself, 1 on errors, 3 on timeout. */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "runtime/launcher.h"
#include "runtime/runtime.h"

#define MAX_PORTS 8

struct stream {
	uint32_t port;
	const char *path;
	int fd, out;
	bool connected, eof, first;
};
struct parent {
	uint32_t port;
	const char *path;
	int listen_fd, out;
	int conns[MAX_PORTS];
	bool answered[MAX_PORTS];
	int n_conns;
};

static double t0;
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - t0;
}

static int fail(struct err *e)
{
	fprintf(stderr, "launcher-probe: %s\n", e ? e->msg : "failed");
	err_free(&e);
	return 1;
}

static int parse_port_file(char *arg, uint32_t *port, const char **path)
{
	char *eq = strchr(arg, '=');
	if (!eq)
		return -1;
	*eq = '\0';
	*port = (uint32_t)strtoul(arg, NULL, 10);
	*path = eq + 1;
	return *port ? 0 : -1;
}

static void copy_out(int from, int to, bool *eof)
{
	char data[65536];
	ssize_t n = read(from, data, sizeof(data));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		*eof = true;
		return;
	}
	struct err *e = NULL;
	if (io_write_full(to, data, (size_t)n, &e) < 0)
		err_free(&e);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"eif", required_argument, NULL, 'e'},     {"qemu", required_argument, NULL, 'q'},
	    {"cid", required_argument, NULL, 'c'},     {"memory-mb", required_argument, NULL, 'm'},
	    {"timeout", required_argument, NULL, 't'}, {"console", required_argument, NULL, 'o'},
	    {"stream", required_argument, NULL, 's'},  {"parent", required_argument, NULL, 'p'},
	    {"no-acpi", no_argument, NULL, 'n'},       {0},
	};
	struct launch_request req = {.heartbeat_timeout_s = 400};
	struct launcher_emulator_options opt = {.acpi = true};
	struct stream streams[MAX_PORTS] = {0};
	struct parent parents[MAX_PORTS] = {0};
	int n_streams = 0, n_parents = 0, timeout = 600;
	const char *console_path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'e': req.eif_path = optarg; break;
		case 'q': opt.qemu = optarg; break;
		case 'c': req.cid = strtoull(optarg, NULL, 10); break;
		case 'm': req.memory_mb = (unsigned)atoi(optarg); break;
		case 't': timeout = atoi(optarg); break;
		case 'o': console_path = optarg; break;
		case 'n': opt.acpi = false; break;
		case 's':
			if (n_streams == MAX_PORTS ||
			    parse_port_file(optarg, &streams[n_streams].port, &streams[n_streams].path))
				return 2;
			streams[n_streams].fd = streams[n_streams].out = -1;
			n_streams++;
			break;
		case 'p':
			if (n_parents == MAX_PORTS ||
			    parse_port_file(optarg, &parents[n_parents].port, &parents[n_parents].path))
				return 2;
			parents[n_parents].listen_fd = parents[n_parents].out = -1;
			parents[n_parents].n_conns = 0;
			n_parents++;
			break;
		default: return 2;
		}
	}
	if (!req.eif_path)
		return 2;
	req.debug_mode = console_path != NULL;
	signal(SIGPIPE, SIG_IGN);
	/* The launcher's start() gives up when SIGINT/SIGTERM are pending: block them and read them. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	struct err *err = NULL;
	struct launcher *l = NULL;
	if (launcher_emulator_new(&opt, &l, &err) < 0)
		return fail(err);
	int rc = 1;
	_cleanup_close_ int console_out = -1;
	for (int i = 0; i < n_parents; i++) {
		struct parent *p = &parents[i];
		p->out = open(p->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (p->out < 0) {
			err_sys(&err, "%s", p->path);
			goto out;
		}
		if (launcher_listen_parent(l, p->port, &p->listen_fd, &err) < 0)
			goto out;
	}
	for (int i = 0; i < n_streams; i++) {
		struct stream *s = &streams[i];
		s->out = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->out < 0) {
			err_sys(&err, "%s", s->path);
			goto out;
		}
	}
	if (console_path) {
		console_out = open(console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (console_out < 0) {
			err_sys(&err, "%s", console_path);
			goto out;
		}
	}
	t0 = 0;
	t0 = now_s();
	struct launch_info info;
	if (launcher_start(l, &req, &info, &err) < 0)
		goto out;
	printf("heartbeat %.2f\n", info.heartbeat_s);
	printf("enclave_id %s cid %llu cpus %u memory_mib %llu\n", info.enclave_id, (unsigned long long)info.cid,
	       info.cpu_count, (unsigned long long)info.memory_mib);
	fflush(stdout);

	bool exited = false;
	double deadline = now_s() + timeout, next_retry = 0;
	while (!exited) {
		if (now_s() > deadline) {
			printf("timeout\n");
			rc = 3;
			goto out;
		}
		/* Connect the streams not yet connected (odyn listens some time after the heartbeat). */
		bool all_connected = true;
		for (int i = 0; i < n_streams; i++) {
			struct stream *s = &streams[i];
			if (s->connected)
				continue;
			all_connected = false;
			if (now_s() < next_retry)
				continue;
			if (launcher_connect_guest(l, s->port, &s->fd, &err) < 0) {
				if (err->code != ECONNREFUSED) {
					err_wrap(&err, "stream %u", s->port);
					goto out;
				}
				err_free(&err);
				continue;
			}
			s->connected = true;
			printf("stream %u connected %.2f\n", s->port, now_s());
			fflush(stdout);
		}
		if (!all_connected)
			next_retry = now_s() + 0.1;
		struct pollfd pfd[2 + 2 * MAX_PORTS + MAX_PORTS * MAX_PORTS];
		int n = 0;
		pfd[n++] = (struct pollfd){.fd = launcher_exit_fd(l), .events = POLLIN};
		int console_fd = launcher_console_fd(l);
		pfd[n++] = (struct pollfd){.fd = console_out >= 0 ? console_fd : -1, .events = POLLIN};
		for (int i = 0; i < n_streams; i++)
			pfd[n++] = (struct pollfd){.fd = streams[i].connected && !streams[i].eof ? streams[i].fd : -1,
			                           .events = POLLIN};
		for (int i = 0; i < n_parents; i++) {
			pfd[n++] = (struct pollfd){.fd = parents[i].listen_fd, .events = POLLIN};
			for (int k = 0; k < parents[i].n_conns; k++)
				pfd[n++] = (struct pollfd){.fd = parents[i].conns[k], .events = POLLIN};
		}
		if (poll(pfd, (nfds_t)n, all_connected ? 1000 : 100) < 0 && errno != EINTR) {
			err_sys(&err, "poll");
			goto out;
		}
		int k = 2;
		if (pfd[1].revents) {
			bool eof = false;
			copy_out(console_fd, console_out, &eof);
		}
		for (int i = 0; i < n_streams; i++, k++) {
			struct stream *s = &streams[i];
			if (!pfd[k].revents)
				continue;
			if (!s->first) {
				s->first = true;
				printf("stream %u first-byte %.2f\n", s->port, now_s());
				fflush(stdout);
			}
			copy_out(s->fd, s->out, &s->eof);
		}
		for (int i = 0; i < n_parents; i++) {
			struct parent *p = &parents[i];
			if (pfd[k++].revents && p->n_conns < MAX_PORTS) {
				int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0) {
					p->answered[p->n_conns] = false;
					p->conns[p->n_conns++] = fd;
					printf("parent %u connection %.2f\n", p->port, now_s());
					fflush(stdout);
				}
			}
			for (int j = 0; j < p->n_conns; j++, k++) {
				if (p->conns[j] >= 0 && pfd[k].revents) {
					bool eof = false;
					copy_out(p->conns[j], p->out, &eof);
					if (eof) {
						close(p->conns[j]);
						p->conns[j] = -1;
					}
				}
				if (p->conns[j] >= 0 && all_connected && !p->answered[j]) {
					p->answered[j] = true;
					if (send(p->conns[j], "ok\n", 3, MSG_NOSIGNAL) != 3)
						printf("parent %u answer failed\n", p->port);
				}
			}
		}
		if (pfd[0].revents)
			exited = true;
	}
	/* The enclave stopped: read what the streams still hold, then stop and reap QEMU. */
	for (int i = 0; i < n_streams; i++) {
		struct stream *s = &streams[i];
		while (s->connected && !s->eof)
			copy_out(s->fd, s->out, &s->eof);
	}
	if (launcher_stop(l, &err) < 0)
		goto out;
	if (console_out >= 0) {
		int fd = launcher_console_fd(l);
		bool eof = false;
		while (fd >= 0 && !eof)
			copy_out(fd, console_out, &eof);
	}
	int st = launcher_emulator_qemu_status(l);
	printf("qemu-exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	rc = 0;
out:
	if (err)
		rc = fail(err);
	launcher_free(l);
	for (int i = 0; i < n_streams; i++) {
		if (streams[i].fd >= 0)
			close(streams[i].fd);
		if (streams[i].out >= 0)
			close(streams[i].out);
	}
	for (int i = 0; i < n_parents; i++) {
		if (parents[i].listen_fd >= 0)
			close(parents[i].listen_fd);
		if (parents[i].out >= 0)
			close(parents[i].out);
		for (int j = 0; j < parents[i].n_conns; j++)
			if (parents[i].conns[j] >= 0)
				close(parents[i].conns[j]);
	}
	printf("done\n");
	return rc;
}
