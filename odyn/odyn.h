/* odyn: what runs inside the enclave: the init (PID 1), the supervisor of
 * the app, the egress HTTP proxy, ingress forwarding, log and status streams. */
#ifndef ENCLAVER_ODYN_H
#define ENCLAVER_ODYN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"
#include "common/egress.h"
#include "wire/wire.h"
#include "wire/http.h"
#include "wire/transport.h"

#define ODYN_LOG_RING    (128 * 1024)
/* odyn's own exit code when the app could not be started. */
#define ODYN_EXIT_FATAL 108

/* ---------------------------------------------------------------- NSM
 * The Nitro Secure Module (/dev/nsm): CBOR requests and responses as
 * aws-nitro-enclaves-nsm-api encodes them (nitro-runtime.md). The limits are
 * the NSM's own. */
#define NSM_USER_DATA_MAX  512
#define NSM_NONCE_MAX      512
#define NSM_PUBLIC_KEY_MAX 1024
#define NSM_REQUEST_MAX    0x1000
#define NSM_RESPONSE_MAX   0x3000
#define NSM_MAX_PCRS       32

void nsm_request_get_random(struct buf *out);
void nsm_request_describe_nsm(struct buf *out);
void nsm_request_describe_pcr(struct buf *out, uint16_t index);
/* Every field optional (NULL: sent as null); E2BIG past a limit. */
struct nsm_attest_req {
	const uint8_t *user_data, *nonce, *public_key;
	size_t user_data_len, nonce_len, public_key_len;
};
int nsm_request_attestation(struct buf *out, const struct nsm_attest_req *req, struct err **err);

enum nsm_resp_kind {
	NSM_RESP_ERROR = 1,
	NSM_RESP_GET_RANDOM,
	NSM_RESP_DESCRIBE_PCR,
	NSM_RESP_DESCRIBE_NSM,
	NSM_RESP_ATTESTATION,
};
struct nsm_description {
	uint16_t version_major, version_minor, version_patch;
	char module_id[128];
	uint16_t max_pcrs;
	uint16_t locked_pcrs[NSM_MAX_PCRS];
	size_t n_locked;
	char digest[8]; /* "SHA256", "SHA384" or "SHA512" */
};
/* A decoded response; data points into the input (the random bytes, the
 * PCR's value, or the attestation document). */
struct nsm_response {
	enum nsm_resp_kind kind;
	const uint8_t *data;
	size_t len;
	bool lock;                       /* DescribePCR */
	struct nsm_description describe; /* DescribeNSM */
	char error[32];                  /* Error: the code's name */
};
/* Strict: unknown variants or fields, repeats, missing fields, wrong types
 * and trailing bytes are errors naming the field (and the offset). */
int nsm_response_parse(const uint8_t *data, size_t len, struct nsm_response *out, struct err **err);

/* The device: "/dev/nsm" (or another path), or "unix:PATH" for a test
 * stand-in speaking u32 big-endian length-prefixed CBOR both ways. */
struct nsm;
int nsm_open(const char *where, struct nsm **out, struct err **err);
void nsm_close(struct nsm *d);
/* One raw exchange; *resp_len is the buffer's size in, the response's out. */
int nsm_call(struct nsm *d, const struct buf *req, uint8_t *resp, size_t *resp_len, struct err **err);
/* The requests; an NSM Error answer becomes an error naming its code. */
int nsm_get_random(struct nsm *d, uint8_t *out, size_t cap, size_t *n, struct err **err);
int nsm_describe_pcr(struct nsm *d, uint16_t index, bool *lock, uint8_t out[64], size_t *len, struct err **err);
int nsm_describe(struct nsm *d, struct nsm_description *out, struct err **err);
/* Appends the attestation document (COSE_Sign1) to doc. */
int nsm_attest(struct nsm *d, const struct nsm_attest_req *req, struct buf *doc, struct err **err);

/* ---------------------------------------------------------------- attestation API
 * The body of POST /v1/attestation: a JSON object with optional "nonce" and
 * "user_data" (base64, at most 512 bytes each once decoded) and
 * "public_key" (PEM SubjectPublicKeyInfo, sent to the NSM as DER, at most
 * 1024 bytes); null is the same as absent, an empty body is {}. Unknown
 * fields are refused (a misspelt field would silently attest nothing). */
struct odyn_api_request {
	uint8_t *nonce, *user_data, *public_key; /* NULL when absent */
	size_t nonce_len, user_data_len, public_key_len;
};
int odyn_api_parse_request(const uint8_t *body, size_t len, struct odyn_api_request *out, struct err **err);
void odyn_api_request_free(struct odyn_api_request *r);

/* ---------------------------------------------------------------- configuration */
enum odyn_restart { ODYN_RESTART_NEVER = 0, ODYN_RESTART_ON_FAILURE };

/* The default bound on an ingress client's connect to the app. */
#define ODYN_INGRESS_CONNECT_MS 10000
/* How long ingress clients are held while the app refuses their connects (not listening yet:
 * still starting), before odyn gives up on them. */
#define ODYN_INGRESS_HOLD_MS 30000

struct odyn_ingress {
	struct transport_addr listen, target;
	char *tls_cert_file, *tls_key_file; /* both set: TLS is terminated here (PEM files) */
};

struct odyn_kms_endpoint {
	char *region, *host;
};

struct odyn_config {
	char **argv; /* the app's command; NULL-terminated */
	char **env;  /* extra KEY=VALUE for the app, NULL-terminated (may be NULL) */
	char *workdir;
	/* A file the builder writes last into the customer ramdisk: missing when the kernel ran out of
	 * memory while unpacking it, so an app "not found" is explained (NULL: not checked). */
	char *ramdisk_marker;
	bool has_user;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	int grace_ms;           /* SIGTERM -> SIGKILL */
	int linger_ms;          /* after the app ends, how long to wait for readers */
	int ingress_connect_ms; /* how long an ingress client waits for the app to accept */
	int ingress_hold_ms;    /* how long clients are held while the app refuses (0: not held) */
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
	char *nsm_path; /* "/dev/nsm", or "unix:PATH" for a test stand-in */
	bool api_enabled;
	uint16_t api_port;
	struct transport_addr api_addr; /* tcp:127.0.0.1:api_port */
	bool kms_enabled;
	uint16_t kms_port;
	struct transport_addr kms_addr; /* tcp:127.0.0.1:kms_port */
	struct odyn_kms_endpoint *kms_endpoints;
	size_t n_kms_endpoints;
	char *kms_region;  /* NULL: from IMDS */
	char *kms_ca_file; /* NULL: the system's CA certificates */
	char *imds;        /* HOST:PORT of the instance metadata service */
};

void odyn_config_init(struct odyn_config *c);
void odyn_config_free(struct odyn_config *c);
/* Parses odyn's command line (everything after the program name). */
int odyn_config_parse_args(struct odyn_config *c, int argc, char **argv, struct err **err);
/* Applies the parts of an enclaver.yaml odyn acts on (egress, ingress, restart). */
int odyn_config_load_manifest(struct odyn_config *c, const char *path, struct err **err);
/* kms_proxy.endpoints: the host (HOST or HOST:PORT) for a region. */
void odyn_config_add_kms_endpoint(struct odyn_config *c, const char *region, const char *host);
/* Resolves "uid[:gid]" or "name[:group]" against root/etc/passwd and
 * root/etc/group (numeric ids need no files) into c's user fields. */
int odyn_config_set_user(struct odyn_config *c, const char *spec, const char *root, struct err **err);

/* ---------------------------------------------------------------- running */
/* Runs the supervisor until the app is done; returns odyn's exit code
 * (the app's code, 128 + signal, or ODYN_EXIT_FATAL) or -1 with *err. */
int odyn_run(const struct odyn_config *c, struct err **err);

/* ---------------------------------------------------------------- init (PID 1) */
enum odyn_mode {
	ODYN_MODE_INIT,       /* the enclave's init, then the supervisor of /cmd */
	ODYN_MODE_HELP,       /* -h / --help */
	ODYN_MODE_SUPERVISOR, /* odyn [options] -- COMMAND */
};
/* What odyn is asked to be. As PID 1 it is always init, whatever argv holds:
 * the kernel hands init every command-line word it does not know (AWS's
 * cmdline has "nomodules"), and AWS's init ignores its arguments too. */
enum odyn_mode odyn_mode_choose(pid_t pid, int argc, char *const *argv);
/* Splits the contents of /cmd or /env: one entry per line, empty lines
 * skipped, a final newline optional, NUL bytes refused. */
int odyn_init_split_lines(const char *data, size_t len, char ***out, struct err **err);
void odyn_strv_free(char **v);
/* From the kernel command line, the parameters for one module
 * ("nsm.foo=1 nsm.bar" -> "foo=1 bar"); '-' and '_' are the same in names. */
char *odyn_init_module_params(const char *cmdline, const char *module);
/* The boot heartbeat: connects to the parent (vsock:3:9000 in an enclave), sends 0xB7 and expects
 * it back; the connect and the answer each give up after timeout_ms (ETIMEDOUT, naming parent). */
struct transport_addr;
int odyn_init_heartbeat(const struct transport_addr *parent, int timeout_ms, struct err **err);
/* Init's use of the NSM: seed the kernel's entropy pool with the bytes of a
 * GetRandom (RNDADDENTROPY, needs /dev/nsm). */
int odyn_nsm_seed_entropy(struct err **err);
/* The whole init: mounts, modules, heartbeat, /cmd and /env, switch root;
 * then supervises and reboots (which ends the enclave). Returns only when
 * the reboot failed. */
int odyn_init_main(struct err **err);

#endif
