/* odyn: what runs inside the enclave: the init (PID 1), the supervisor of
 * the app, the egress HTTP proxy, ingress forwarding, log and status streams. */
#ifndef ENCLAVER_ODYN_H
#define ENCLAVER_ODYN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"
#include "common/egress.h"
#include "common/transport.h"

/* Well-known vsock ports (enclaver-compat.md). */
#define ODYN_PORT_STATUS 17000
#define ODYN_PORT_LOG    17001
#define ODYN_PORT_EGRESS 17002
#define ODYN_LOG_RING    (128 * 1024)
/* odyn's own exit code when the app could not be started. */
#define ODYN_EXIT_FATAL 108

/* ---------------------------------------------------------------- HTTP request heads */
#define HTTP_HEAD_MAX    (64 * 1024)
#define HTTP_HEADERS_MAX 100
struct http_header {
	const char *name, *value; /* point into the parsed copy */
	size_t name_len, value_len;
};
struct http_request {
	char *head; /* a private copy, NUL-separated pieces */
	const char *method, *target;
	int minor_version; /* HTTP/1.minor */
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t n_headers;
	int64_t content_length; /* -1 when absent */
	bool chunked;
	bool connection_close;
};
/* Returns 0 when the head is incomplete, its length when complete, -1 when malformed. */
ssize_t http_request_parse(const char *data, size_t len, struct http_request *out, struct err **err);
void http_request_free(struct http_request *req);
/* Splits "http://host[:port]/path" into host (brackets removed), port (80
 * by default) and the origin-form path. Caller frees host and path. */
int http_target_split(const char *target, char **host, uint16_t *port, char **path, struct err **err);
/* Splits a CONNECT target "host:port" / "[v6]:port". */
int http_authority_split(const char *authority, char **host, uint16_t *port, struct err **err);

/* ---------------------------------------------------------------- configuration */
enum odyn_restart { ODYN_RESTART_NEVER = 0, ODYN_RESTART_ON_FAILURE };

struct odyn_ingress {
	struct transport_addr listen, target;
};

struct odyn_config {
	char **argv; /* the app's command; NULL-terminated */
	char **env;  /* extra KEY=VALUE for the app, NULL-terminated (may be NULL) */
	char *workdir;
	bool has_user;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	int grace_ms;  /* SIGTERM -> SIGKILL */
	int linger_ms; /* after the app ends, how long to wait for readers */
	enum odyn_restart restart;
	int max_restarts; /* on-failure: 0 = unlimited */
	int backoff_ms;   /* first delay; doubles up to 60 s */
	bool console;     /* copy the app's output to odyn's stdout */
	struct transport_addr status_addr, log_addr;
	bool egress_enabled;
	uint16_t proxy_port;
	struct transport_addr proxy_addr;  /* default tcp:127.0.0.1:proxy_port */
	struct transport_addr egress_addr; /* the host's endpoint: vsock:3:17002 */
	struct egress_policy policy;
	struct odyn_ingress *ingress;
	size_t n_ingress;
};

void odyn_config_init(struct odyn_config *c);
void odyn_config_free(struct odyn_config *c);
/* Parses odyn's command line (everything after the program name). */
int odyn_config_parse_args(struct odyn_config *c, int argc, char **argv, struct err **err);
/* Applies the parts of an enclaver.yaml odyn acts on (egress, ingress, restart). */
int odyn_config_load_manifest(struct odyn_config *c, const char *path, struct err **err);
/* Resolves "uid[:gid]" or "name[:group]" against root/etc/passwd and
 * root/etc/group (numeric ids need no files) into c's user fields. */
int odyn_config_set_user(struct odyn_config *c, const char *spec, const char *root, struct err **err);

/* ---------------------------------------------------------------- running */
/* Runs the supervisor until the app is done; returns odyn's exit code
 * (the app's code, 128 + signal, or ODYN_EXIT_FATAL) or -1 with *err. */
int odyn_run(const struct odyn_config *c, struct err **err);

/* ---------------------------------------------------------------- init (PID 1) */
/* Splits the contents of /cmd or /env: one entry per line, empty lines
 * skipped, a final newline optional, NUL bytes refused. */
int odyn_init_split_lines(const char *data, size_t len, char ***out, struct err **err);
void odyn_strv_free(char **v);
/* From the kernel command line, the parameters for one module
 * ("nsm.foo=1 nsm.bar" -> "foo=1 bar"); '-' and '_' are the same in names. */
char *odyn_init_module_params(const char *cmdline, const char *module);
/* NSM GetRandom: the random bytes of a response ({"GetRandom": {"random":
 * bytes}}), at most cap of them; and init's use of it: seed the kernel's
 * entropy pool (RNDADDENTROPY, needs /dev/nsm). */
ssize_t odyn_nsm_random_parse(const uint8_t *resp, size_t len, uint8_t *out, size_t cap, struct err **err);
int odyn_nsm_seed_entropy(struct err **err);
/* The whole init: mounts, modules, heartbeat, /cmd and /env, switch root;
 * then supervises and powers off. Never returns on success. */
int odyn_init_main(struct err **err);

#endif
