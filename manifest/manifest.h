/* manifest: enclaver.yaml, the one reader and validator of it (libyaml), for
 * `enclaver build`, `enclaver run`, `enclaver manifest check` and odyn at boot. */
#ifndef ENCLAVER_MANIFEST_H
#define ENCLAVER_MANIFEST_H

#include "common/common.h"
#include "common/egress.h"
#include "wire/wire.h"

/* Parsed strictly (docs/enclaver-yaml.md lists where that differs from Enclaver):
 * unknown keys, duplicate keys, wrong types and out-of-range values are errors
 * naming the file, line and column. An empty value of an optional key (`egress:`,
 * `ingress: ~`) means the key is not set, as in Enclaver. Strings are owned by
 * the manifest; absent optional strings are NULL. */
#define MANIFEST_MAX_BYTES                 (1u << 20)
#define MANIFEST_EGRESS_DEFAULT_PROXY_PORT 10000
#define MANIFEST_DEFAULT_CPU_COUNT         2
#define MANIFEST_DEFAULT_MEMORY_MB         4096
/* The vsock ports odyn and enclaver-run use for status, logs and egress. */
/* Deepest nesting of flow collections ([...], {...}) accepted, checked before libyaml sees the
 * bytes (its time grows with the square of it); a manifest needs 2 or 3. */
#define MANIFEST_MAX_FLOW_DEPTH 64

struct manifest_ingress {
	uint16_t listen_port;
	char *tls_key_file; /* both or neither; as written (paths inside the enclave) */
	char *tls_cert_file;
};

struct manifest_kms_endpoint {
	char *region;
	char *host;
};

struct manifest {
	char *path; /* as given ("-" for stdin) */
	char *dir;  /* the manifest's folder: relative paths resolve here */
	char *raw;  /* the bytes read, for rootfs/etc/enclaver/enclaver.yaml */
	size_t raw_len;

	char *version; /* "v1" */
	char *name;
	char *target;
	char *source_app;
	char *source_odyn;   /* also read from the old key `supervisor` */
	char *source_sleeve; /* also read from the old key `wrapper` */

	/* signature: both paths already joined to dir; NULL when absent. */
	char *signature_certificate;
	char *signature_key;

	int64_t cpu_count; /* 0: not set (the runtime falls back to 2) */
	int64_t memory_mb; /* 0: not set (the runtime falls back to 4096) */

	struct manifest_ingress *ingress;
	size_t n_ingress;

	bool has_egress;            /* an `egress` mapping is given; egress is on only with allow entries */
	uint16_t egress_proxy_port; /* 10000 unless set */
	char **egress_allow;
	size_t n_egress_allow;
	char **egress_deny;
	size_t n_egress_deny;
	/* allow and deny compiled by the policy code odyn and the host enforce with (common/egress.h):
	 * a pattern the manifest accepts is one they can enforce. */
	struct egress_policy egress_policy;

	bool has_kms_proxy;
	uint16_t kms_listen_port;
	struct manifest_kms_endpoint *kms_endpoints;
	size_t n_kms_endpoints;

	bool has_api;
	uint16_t api_listen_port;

	/* restart (odyn's restart policy): NULL / 0 when not set. */
	char *restart_policy; /* "never" | "on-failure" */
	int64_t restart_max;
	int64_t restart_backoff_ms;
};

/* Reads and validates a manifest from a file, or from stdin when path is "-"
 * (relative paths then resolve against the current folder). */
int manifest_load(const char *path, struct manifest **out, struct err **err);
/* The same from bytes in memory; `name` is used in messages, `dir` for paths. */
int manifest_parse(const char *name, const char *dir, const char *data, size_t len, struct manifest **out,
                   struct err **err);
void manifest_free(struct manifest *m);

/* Egress is on (odyn runs its proxy and sets http_proxy for the app) only when `egress.allow` has
 * entries, as in Enclaver: a missing or empty allow list, even with a deny list, means none. */
static inline bool manifest_egress_on(const struct manifest *m)
{
	return m->n_egress_allow > 0;
}

#endif
