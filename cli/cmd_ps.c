/* cmd_ps: `enclaver ps` (the enclaves this host runs, from the state folder; entries of dead run
 * processes pruned) and `enclaver stop ID|NAME` (SIGTERM to the owning run process, then wait). */
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "cli/cli.h"
#include "runtime/outer.h"

static json_t *state_json(const struct outer_state *s)
{
	json_t *ports = json_array();
	for (size_t i = 0; i < s->n_ports; i++) {
		char *p =
		    strchr(s->ports[i].host_addr, ':')
		        ? xasprintf("[%s]:%u:%u", s->ports[i].host_addr, s->ports[i].host_port,
		                    s->ports[i].enclave_port)
		        : xasprintf("%s:%u:%u", s->ports[i].host_addr, s->ports[i].host_port, s->ports[i].enclave_port);
		json_array_append_new(ports, json_string(p));
		free(p);
	}
	/* Image: what the user ran; EIF alone would be the run's private temporary copy. */
	return json_pack("{s:s, s:s, s:I, s:I, s:s, s:o, s:o, s:s, s:I}", "EnclaveID", s->id, "EnclaveName", s->name,
	                 "EnclaveCID", (json_int_t)s->cid, "ProcessID", (json_int_t)s->pid, "Launcher", s->launcher,
	                 "Ports", ports, "Image", s->image ? json_string(s->image) : json_null(), "EIF", s->eif,
	                 "Started", (json_int_t)s->started);
}

/* One entry of `nitro-cli describe-enclaves`: its fields, names and order, so tools written for it
 * read ours. ProcessID is the run process (nitro-cli's: its enclave process); State is RUNNING while
 * that process lives (entries of dead ones are pruned). */
static json_t *describe_json(const struct outer_state *s)
{
	json_t *cpus = outer_cpu_ids_json(s->cpu_ids, s->cpu_count);
	json_t *meas = s->measurements ? json_incref(s->measurements) : json_object();
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:I, s:s, s:s, s:o}", "EnclaveName", s->name, "EnclaveID",
	                 s->id, "ProcessID", (json_int_t)s->pid, "EnclaveCID", (json_int_t)s->cid, "NumberOfCPUs",
	                 (json_int_t)s->cpu_count, "CPUIDs", cpus, "MemoryMiB", (json_int_t)s->memory_mib, "State",
	                 "RUNNING", "Flags", s->debug_mode ? "DEBUG_MODE" : "NONE", "Measurements", meas);
}

int cmd_ps(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	bool describe = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j') {
			describe = true;
			continue;
		}
		if (c == 'h') {
			puts("Usage: enclaver ps [--json]\n\n"
			     "Prints the enclaves `enclaver run` runs on this host as a JSON array (EnclaveID,\n"
			     "EnclaveName, EnclaveCID, ProcessID of the run process, Launcher, Ports, Image (the "
			     "release\n"
			     "image run, null for local files), EIF, Started).\n"
			     "--json prints `nitro-cli describe-enclaves`' fields instead (EnclaveName, EnclaveID,\n"
			     "ProcessID, EnclaveCID, NumberOfCPUs, CPUIDs, MemoryMiB, State, Flags, Measurements).\n"
			     "Entries whose run process is gone are removed. The state folder is /run/enclaver for\n"
			     "root, else $XDG_RUNTIME_DIR/enclaver.");
			return EXIT_OK;
		}
		return cli_usage_error("ps", "unknown option");
	}
	if (optind != argc)
		return cli_usage_error("ps", "unexpected argument \"%s\"", argv[optind]);
	_cleanup_err_ struct err *err = NULL;
	struct outer_state *v;
	size_t n;
	if (outer_state_list(&v, &n, &err) < 0)
		return cli_fail(&err);
	_cleanup_json_ json_t *doc = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(doc, describe ? describe_json(&v[i]) : state_json(&v[i]));
	outer_state_list_free(v, n);
	if (cli_print_json(doc, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0}};
	long timeout_s = 60;
	int c;
	while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (c) {
		case 't': {
			char *end;
			timeout_s = strtol(optarg, &end, 10);
			if (*end || end == optarg || timeout_s < 0 || timeout_s > 86400)
				return cli_usage_error("stop", "--timeout %s: want seconds from 0 to 86400", optarg);
			break;
		}
		case 'h':
			puts("Usage: enclaver stop [--timeout SECONDS] ID|NAME\n\n"
			     "Sends SIGTERM to the `enclaver run` process that owns the enclave (it stops the app and\n"
			     "the enclave and exits 109), waits for it to end (default 60 s) and prints the id.");
			return EXIT_OK;
		default: return cli_usage_error("stop", "unknown option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("stop", "expected one enclave id or name");
	_cleanup_err_ struct err *err = NULL;
	struct outer_state s;
	if (outer_state_find(argv[optind], &s, &err) < 0)
		return cli_fail(&err);
	/* A pidfd names this very process even if the pid is reused while we wait. */
	int pfd = (int)syscall(SYS_pidfd_open, s.pid, 0);
	if (pfd < 0 || syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0) < 0) {
		err_sys(&err, "signal the run process %d of %s", (int)s.pid, s.id);
		if (pfd >= 0)
			close(pfd);
		outer_state_free(&s);
		return cli_fail(&err);
	}
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	int r;
	while ((r = poll(&p, 1, (int)(timeout_s * 1000))) < 0 && errno == EINTR)
		;
	close(pfd);
	if (r == 0) {
		err_set(&err, ETIMEDOUT, "%s (%s): the run process %d is still there after %ld s", s.id, s.name,
		        (int)s.pid, timeout_s);
		outer_state_free(&s);
		return cli_fail(&err);
	}
	printf("%s\n", s.id);
	log_info("stopped %s (%s)", s.id, s.name);
	outer_state_free(&s);
	return EXIT_OK;
}
