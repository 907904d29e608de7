/* oci: container images without a daemon: references, digests, manifests,
 * the blob cache, OCI layouts, docker-archive tarballs and the registry client. */
#ifndef ENCLAVER_OCI_H
#define ENCLAVER_OCI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"
#include "common/json.h"

/* ---------------------------------------------------------------- media types */
#define OCI_MT_MANIFEST      "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_INDEX         "application/vnd.oci.image.index.v1+json"
#define OCI_MT_CONFIG        "application/vnd.oci.image.config.v1+json"
#define OCI_MT_LAYER         "application/vnd.oci.image.layer.v1.tar"
#define OCI_MT_LAYER_GZIP    "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCI_MT_LAYER_ZSTD    "application/vnd.oci.image.layer.v1.tar+zstd"
#define DOCKER_MT_MANIFEST   "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_MT_LIST       "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MT_CONFIG     "application/vnd.docker.container.image.v1+json"
#define DOCKER_MT_LAYER      "application/vnd.docker.image.rootfs.diff.tar"
#define DOCKER_MT_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* A layer's media type as an OCI manifest writes it: Docker's become their OCI twins (the
 * bytes, and so the digest, stay), OCI's stay; NULL when there is no equivalent. */
const char *oci_layer_media_type_oci(const char *mt);

/* Manifests above this size are refused (the distribution server's own cap). */
#define OCI_MANIFEST_MAX (4 * 1024 * 1024)
/* An image config is read whole (build, inspect, docker-archive): larger ones are refused as
 * the manifest naming them is read, before anything is fetched or cached. */
#define OCI_CONFIG_MAX (16 * 1024 * 1024)

/* ---------------------------------------------------------------- references
 * Docker-style names with a transport in front:
 *   [docker://]NAME[:TAG][@DIGEST]   a registry (the default transport)
 *   oci:DIR[:TAG]                    an OCI image layout
 *   oci-archive:FILE[:TAG]           a tar of an OCI image layout
 *   docker-archive:FILE[:NAME:TAG|:@N]  a `docker save` tarball
 * NAME gets docker's defaults: docker.io as the registry and library/ for
 * one-component names there; a name with neither tag nor digest means :latest. */
enum oci_transport {
	OCI_TRANSPORT_DOCKER,
	OCI_TRANSPORT_OCI,
	OCI_TRANSPORT_OCI_ARCHIVE,
	OCI_TRANSPORT_DOCKER_ARCHIVE,
};

struct oci_ref {
	enum oci_transport transport;
	/* docker: */
	char *registry;   /* "docker.io", "127.0.0.1:5000", "[::1]:5000" */
	char *repository; /* "library/alpine" */
	char *tag;        /* NULL when only a digest was given */
	char *digest;     /* "sha256:<hex>" or NULL */
	char *short_name; /* the name as written when it named no registry ("alpine"), else NULL */
	/* local transports: */
	char *path;        /* the directory or tar file */
	char *local_tag;   /* oci: the ref.name; docker-archive: "name:tag"; NULL if none */
	int archive_index; /* docker-archive ":@N", else -1 */
};

/* Parses a reference; on error names what is wrong ("invalid reference
 * \"x\": tag ..."). Free with oci_ref_free. */
int oci_ref_parse(const char *text, struct oci_ref *out, struct err **err);
void oci_ref_free(struct oci_ref *ref);
/* The canonical form: "docker://docker.io/library/alpine:3.19@sha256:..." or
 * "oci:DIR:TAG". Caller frees. */
char *oci_ref_format(const struct oci_ref *ref);
/* A docker reference without transport ("docker.io/library/alpine:3.19"). */
char *oci_ref_name(const struct oci_ref *ref);
/* Checks a tag against docker's grammar ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}). */
bool oci_tag_valid(const char *tag);

/* ---------------------------------------------------------------- digests */
#define OCI_DIGEST_MAX 136 /* "sha512:" + 128 hex + NUL, rounded */

/* Checks "sha256:<64 lowercase hex>" (or sha512 with 128); the error says
 * which part is wrong. */
int oci_digest_check(const char *digest, struct err **err);
/* The hex part of a valid digest (after the ':'). */
const char *oci_digest_hex(const char *digest);

/* Streaming digester (sha256 or sha512, chosen by the expected digest). */
struct oci_digester;
struct oci_digester *oci_digester_new(const char *algorithm); /* "sha256" or "sha512"; NULL if unknown */
void oci_digester_update(struct oci_digester *d, const void *data, size_t len);
/* Writes "algo:hex" into out; the digester can not be used afterwards. */
void oci_digester_final(struct oci_digester *d, char out[OCI_DIGEST_MAX]);
void oci_digester_free(struct oci_digester *d);
/* sha256 of a buffer as "sha256:<hex>". */
void oci_digest_buf(const void *data, size_t len, char out[OCI_DIGEST_MAX]);
/* Verifies a buffer against an expected digest: "digest mismatch: expected X, got Y". */
int oci_digest_verify_buf(const void *data, size_t len, const char *expected, struct err **err);
/* The digest of a file's bytes from offset 0 to its end ("sha256" or "sha512"), and how many
 * there were (size may be NULL). */
int oci_digest_fd(int fd, const char *algorithm, char out[OCI_DIGEST_MAX], int64_t *size, struct err **err);

/* ---------------------------------------------------------------- manifests */
struct oci_platform {
	char *os;           /* "linux" */
	char *architecture; /* "amd64", "arm64" (normalised) */
	char *variant;      /* "v8" or NULL */
};
/* "os/arch[/variant]"; arch aliases (x86_64, aarch64) normalised. */
int oci_platform_parse(const char *text, struct oci_platform *out, struct err **err);
/* The platform this binary runs on. */
void oci_platform_host(struct oci_platform *out);
void oci_platform_free(struct oci_platform *p);
/* "linux/arm64/v8". Caller frees. */
char *oci_platform_format(const struct oci_platform *p);

struct oci_desc {
	char *media_type;
	char *digest;
	int64_t size;
	struct oci_platform platform; /* index entries only; os NULL when absent */
	char *ref_name;               /* annotation org.opencontainers.image.ref.name, or NULL */
};
void oci_desc_free(struct oci_desc *d);
/* Parses a descriptor object; `where` names it in errors ("layers[2]"). */
int oci_desc_parse(const json_t *obj, const char *where, struct oci_desc *out, struct err **err);

enum oci_manifest_kind { OCI_KIND_IMAGE, OCI_KIND_INDEX };
struct oci_manifest {
	enum oci_manifest_kind kind;
	char *media_type; /* from the document, else the transport's, else inferred */
	/* image: */
	struct oci_desc config;
	struct oci_desc *layers;
	size_t n_layers;
	/* index: */
	struct oci_desc *manifests;
	size_t n_manifests;
	json_t *json; /* the parsed document */
};
/* Parses an image manifest or index (OCI or Docker schema 2). content_type
 * is the transport's (HTTP Content-Type) or NULL. Schema 1 and unknown
 * documents are refused with a message saying so. */
int oci_manifest_parse(const char *data, size_t len, const char *content_type, struct oci_manifest *out,
                       struct err **err);
void oci_manifest_free(struct oci_manifest *m);
/* Picks the index entry for a platform (architecture variants normalised:
 * arm64 without a variant is v8). The error lists what the index offers. */
int oci_index_select(const struct oci_manifest *index, const struct oci_platform *want, const struct oci_desc **out,
                     struct err **err);
bool oci_media_type_is_index(const char *mt);
bool oci_media_type_is_manifest(const char *mt);

/* ---------------------------------------------------------------- blob files
 * A blob written where it belongs only once its digest checks out: streamed
 * into a temp file beside the target, hashed on the way, fsync'd, renamed.
 * On mismatch (or abort) nothing is left. */
struct oci_blob_writer;
/* dir is the folder of blobs named by hex (".../blobs/sha256"); expected may
 * be NULL (then the blob is named by what it hashes to), expected_size -1 if unknown. */
int oci_blob_writer_open(const char *dir, const char *expected, int64_t expected_size, struct oci_blob_writer **out,
                         struct err **err);
int oci_blob_writer_write(struct oci_blob_writer *w, const void *data, size_t len, struct err **err);
/* Like _open (expected required), but continues DIR/.partial-<hex>, what an
 * earlier download of this blob kept, and _written says how far it got. */
int oci_blob_writer_resume(const char *dir, const char *expected, int64_t expected_size, struct oci_blob_writer **out,
                           struct err **err);
/* Frees w keeping what it holds when it is a resumable partial (and not
 * empty); otherwise the same as _abort. */
void oci_blob_writer_keep(struct oci_blob_writer *w);
int64_t oci_blob_writer_written(const struct oci_blob_writer *w);
/* Verifies and renames; *digest_out (optional) gets the digest. Frees w. */
int oci_blob_writer_commit(struct oci_blob_writer *w, char digest_out[OCI_DIGEST_MAX], struct err **err);
/* Throws the partial blob away and frees w (NULL is fine). */
void oci_blob_writer_abort(struct oci_blob_writer *w);
/* One blob at once: a buffer, or an fd from its start (verified: a blob
 * from the cache, only its size is checked, and it is hard-linked instead
 * of copied when dir is on the cache's file system), through a writer. */
int oci_blob_write_buf(const char *dir, const char *expected, const void *data, size_t len,
                       char digest_out[OCI_DIGEST_MAX], struct err **err);
int oci_blob_write_fd(const char *dir, const char *expected, int64_t size, int fd, bool verified, struct err **err);
/* Copies an fd through a writer. */
int oci_blob_writer_copy_fd(struct oci_blob_writer *w, int fd, struct err **err);
/* Copies a blob already verified (one from the cache) without hashing it
 * again, in the kernel where it can; the size is still checked. */
int oci_blob_writer_copy_verified(struct oci_blob_writer *w, int fd, struct err **err);

/* ---------------------------------------------------------------- blob cache
 * Content-addressed, shared by all commands: DIR/blobs/sha256/<hex> holds
 * verified blobs; DIR/refs/<registry>/<repository>/<tag> the last digest a
 * tag resolved to (for --offline). Default DIR: $ENCLAVER_CACHE_DIR, else
 * $XDG_CACHE_HOME/enclaver, else ~/.cache/enclaver. */
struct oci_cache {
	char *dir;
	char *blob_dir; /* DIR/blobs/sha256 */
};
int oci_cache_open(const char *dir, struct oci_cache *out, struct err **err);
void oci_cache_close(struct oci_cache *c);
/* Path of a blob (whether present or not). Caller frees. */
char *oci_cache_blob_path(const struct oci_cache *c, const char *digest);
/* Appends a cached manifest (at most OCI_MANIFEST_MAX bytes) to out, its digest checked. */
int oci_cache_read_manifest(const struct oci_cache *c, const char *digest, struct buf *out, struct err **err);
/* A cached blob of at most max bytes (a config), its size (-1: any) and digest checked. */
int oci_cache_read_blob(const struct oci_cache *c, const char *digest, int64_t size, size_t max, struct buf *out,
                        struct err **err);
/* Re-hashes a cached blob: 0 when the file holds what its name and size (-1: any) say. A blob
 * that does not is moved to DIR/quarantine/ (so the next pull fetches it anew) and the error,
 * EBADMSG, says so. The cache trusts a name once a verified blob got it; this catches what
 * changed it since (docs/security.md#the-blob-cache). */
int oci_cache_verify_blob(const struct oci_cache *c, const char *digest, int64_t size, struct err **err);
/* `enclaver cache verify`: every blob of the cache re-hashed, what fails moved to DIR/quarantine/
 * and named on stderr. *checked and *bad count them. */
int oci_cache_verify_all(const struct oci_cache *c, size_t *checked, size_t *bad, struct err **err);
/* A private folder of blobs (named by hex, as DIR/blobs/sha256) in the cache folder, for an image
 * being made (a build's release image): its new blobs are written there once, on the cache's file
 * system, and put to each destination from there (oci_put_local_image), so a layout beside the
 * cache hard-links them. Kept apart from the cache's blobs so that they go with the image: the
 * caller removes the folder (io_remove_tree); one a day old (a killed build's) goes at a later
 * oci_cache_open. *dir: CACHE/staging/NAME.XXXXXX. */
int oci_cache_staging_create(const struct oci_cache *c, const char *name, char **dir, struct err **err);
/* True when the blob is present with the given size (-1: any size). */
bool oci_cache_has(const struct oci_cache *c, const char *digest, int64_t size);
/* Opens a cached blob for reading. */
int oci_cache_open_blob(const struct oci_cache *c, const char *digest, int *fd, struct err **err);
int oci_cache_put_buf(const struct oci_cache *c, const void *data, size_t len, const char *expected,
                      char digest_out[OCI_DIGEST_MAX], struct err **err);
int oci_cache_tag_set(const struct oci_cache *c, const struct oci_ref *ref, const char *digest, struct err **err);
/* *digest_out is malloc'd; ENOENT when not cached. */
int oci_cache_tag_get(const struct oci_cache *c, const struct oci_ref *ref, char **digest_out, struct err **err);

/* ---------------------------------------------------------------- credentials */
struct oci_creds {
	char *username;
	char *password; /* or an identity (refresh) token when identity_token */
	bool identity_token;
	char *source; /* where they came from, for messages: "--creds", "/path/auth.json" */
};
void oci_creds_free(struct oci_creds *c);
/* Finds credentials for a registry host in docker/podman order: cli (the
 * --creds "user:pass", may be NULL), $REGISTRY_AUTH_FILE,
 * $XDG_RUNTIME_DIR/containers/auth.json, $XDG_CONFIG_HOME/containers/auth.json,
 * $DOCKER_CONFIG/config.json (default ~/.docker/config.json). In a file:
 * credHelpers[host], then auths[host].auth, then credsStore. Found nothing:
 * returns 0 with out->username NULL and out->source listing what was tried. */
int oci_creds_lookup(const char *registry, const char *cli, struct oci_creds *out, struct err **err);

/* ---------------------------------------------------------------- registries.conf
 * containers-registries.conf(5) version 2 with its drop-in folders
 * (containers-registries.conf.d(5)), as podman reads them. */
enum oci_mirror_pull { OCI_MIRROR_ALL, OCI_MIRROR_DIGEST_ONLY, OCI_MIRROR_TAG_ONLY };
struct oci_registry_mirror {
	char *location;
	bool insecure;
	enum oci_mirror_pull pull_from;
};
struct oci_registry_conf { /* one [[registry]] table */
	char *prefix;      /* "example.com/ns", "*.example.com" (defaults to location) */
	char *location;    /* where the prefix really lives; NULL for a wildcard without one */
	bool insecure, blocked, mirror_by_digest_only;
	struct oci_registry_mirror *mirrors;
	size_t n_mirrors;
	char *path; /* the file it came from, and */
	int line;   /* where the table starts, for messages */
};
/* short-name-mode; UNSET behaves as PERMISSIVE (podman's default). */
enum oci_short_name_mode {
	OCI_SHORT_NAME_UNSET,
	OCI_SHORT_NAME_ENFORCING,
	OCI_SHORT_NAME_PERMISSIVE,
	OCI_SHORT_NAME_DISABLED,
};
struct oci_registry_alias { /* one [aliases] entry */
	char *name;         /* the short name: "myapp", "team/app" */
	char *value;        /* "quay.io/team/app" (docker.io names get library/); NULL: erased by a later file */
	char *path;
	int line;
};
/* Where a setting came from: "FILE:LINE", or NULL when it was never set. */
struct oci_conf_origin {
	char *path;
	int line;
};
struct oci_registries {
	char *path;    /* the main file read, or NULL when there was none */
	char **search; /* unqualified-search-registries */
	size_t n_search;
	struct oci_conf_origin search_from; /* which file set it (a later file replaces it whole) */
	enum oci_short_name_mode short_name_mode;
	struct oci_conf_origin mode_from;
	struct oci_registry_conf *regs;
	size_t n_regs;
	struct oci_registry_alias *aliases;
	size_t n_aliases;
	char **files; /* every file read, in order: the main file, then the drop-ins */
	size_t n_files;
};
/* Parses the text of one registries.conf; errors name path:line and what is
 * wrong. Version 1 tables and unknown settings are refused. */
int oci_registries_parse(const char *path, const char *text, size_t len, struct oci_registries *out, struct err **err);
/* Reads what podman reads, `etc` being the system folder (normally
 * "/etc/containers"): the main file is $CONTAINERS_REGISTRIES_CONF (which
 * must exist), else $HOME/.config/containers/registries.conf, else
 * ETC/registries.conf (none: an empty configuration). Then the drop-ins,
 * `*.conf` in lexical order from ETC/registries.conf.d and then
 * $HOME/.config/containers/registries.conf.d, except that a user main file
 * brings only the user's drop-ins. A later file replaces the settings it
 * sets, the [[registry]] tables with its prefixes and the aliases it names.
 * Last, the aliases of recorded_aliases (podman's short-name-aliases.conf;
 * NULL: none), which win over the others; a missing file has none. */
int oci_registries_load_at(const char *etc, const char *recorded_aliases, struct oci_registries *out, struct err **err);
/* Where podman records short-name choices: /var/cache/containers/ for root,
 * else $XDG_CACHE_HOME (or ~/.cache)/containers/short-name-aliases.conf. */
char *oci_short_name_aliases_path(void);
/* oci_registries_load_at("/etc/containers", oci_short_name_aliases_path()). */
int oci_registries_load(struct oci_registries *out, struct err **err);
void oci_registries_free(struct oci_registries *c);
/* Merges a later file into c (as a drop-in does); `later` is emptied. */
void oci_registries_merge(struct oci_registries *c, struct oci_registries *later);
/* The [[registry]] with the longest prefix of name ("host/repo[:tag|@digest]"),
 * or NULL; *matched (optional) gets the prefix's length in name. */
const struct oci_registry_conf *oci_registries_find(const struct oci_registries *c, const char *name, size_t *matched);
/* The full names a registry reference may mean, in the order to try them,
 * as podman resolves a short name in a session without a terminal: a name
 * with a registry is itself; a short name ("myapp", "team/app") is its alias
 * when one is set, else its name under the one unqualified-search registry,
 * else (several) an error in enforcing mode and all of them in order in
 * permissive or disabled mode; with no search registries, docker.io as
 * docker does. *why (may be NULL) says how a short name was resolved, with
 * the file and line. Names are "host/repo:tag[@digest]", docker.io's with
 * library/. */
int oci_registries_resolve(const struct oci_registries *c, const struct oci_ref *ref, char ***names, size_t *n,
                           char **why, struct err **err);
void oci_names_free(char **names, size_t n);
/* Where a pull of name goes, in order: the mirrors that serve it (by
 * digest or tag), then the location. Blocked names are an error. */
struct oci_endpoint {
	char *name; /* "host/repo[:tag|@digest]" */
	bool insecure;
	bool mirror;
};
int oci_registries_endpoints(const struct oci_registries *c, const char *name, bool by_digest,
                             struct oci_endpoint **out, size_t *n_out, struct err **err);
void oci_endpoints_free(struct oci_endpoint *e, size_t n);
bool oci_registries_insecure(const struct oci_registries *c, const char *name);

/* ---------------------------------------------------------------- copying */
/* What long operations tell the person watching goes through the caller's callback (as curl's
 * XFERINFOFUNCTION): library code never draws on the terminal; the CLI does (cli/progress.c). */
enum oci_progress_kind {
	OCI_PROGRESS_LINE,   /* a step done: "blob sha256:0123...: copied 1.2 MiB" */
	OCI_PROGRESS_STATUS, /* the state of a long step, to redraw in place; sent only when
	                        progress_status is set, at most about 5 times a second */
	OCI_PROGRESS_CLEAR,  /* that long step ended: its status is stale */
};
typedef void (*oci_progress_fn)(void *ctx, enum oci_progress_kind kind, const char *text);

struct oci_opts {
	const char *cache_dir;    /* NULL: the default */
	const char *creds;        /* "user:pass" or NULL */
	const char *platform;     /* "os/arch[/variant]" or NULL for the host */
	const char *cert_dir;     /* extra CA certificates (*.crt), or NULL */
	bool insecure;            /* no TLS verification; plain HTTP allowed */
	bool offline;             /* the cache only */
	oci_progress_fn progress; /* NULL: nothing reported */
	void *progress_ctx;
	bool progress_status; /* also send OCI_PROGRESS_STATUS (the watcher has a terminal) */
	bool all;             /* copy: a whole index, every platform's image (else the one platform's) */
	int parallel;         /* concurrent blob transfers; 0: default (6) */
	int64_t chunk_size;   /* push: blobs above this go up in PATCH chunks; 0: default */
	/* push: a registry reference whose repository holds some of the blobs (a base image): those
	 * the destination lacks are mounted from it when the source is not that registry. NULL: none. */
	const char *mount_from;
};

/* What a copy did, for the CLI's report. */
struct oci_copy_result {
	char *manifest_digest; /* what the destination now holds */
	char *media_type;
	int64_t bytes_sent; /* blob bytes transferred to the destination */
	int blobs_sent, blobs_skipped, blobs_mounted;
};
void oci_copy_result_free(struct oci_copy_result *r);

/* Copies one image (the platform's, when src is an index; with opts->all
 * the whole index) from any transport to any transport. dst may be NULL:
 * pull into the cache only. */
int oci_copy(const char *src, const char *dst, const struct oci_opts *opts, struct oci_copy_result *result,
             struct err **err);

/* The same with a cache the caller opened (and keeps for what it reads next). */
int oci_copy_cached(const char *src, const char *dst, const struct oci_opts *opts, struct oci_cache *cache,
                    struct oci_copy_result *result, struct err **err);

/* The digest of the manifest a reference names (an index's own, not a platform's), read from
 * wherever the reference points (registries.conf mirrors included). */
int oci_resolve_digest(const char *ref, const struct oci_opts *opts, char digest[OCI_DIGEST_MAX], struct err **err);

/* An image made here, written to dst (any transport; a tag or digest reference) as a copy of
 * cached blobs is: what the destination lacks is sent (a registry mounts opts->mount_from's
 * blobs when it can, a layout hard-links each file on the cache's file system), the manifest
 * goes last, and a layout is put back as it was should anything fail. The manifest is in memory;
 * the blobs it names are in blob_dir (a staging folder, oci_cache_staging_create; NULL: none) or
 * the cache, written there by the verifying blob writer. result as oci_copy's. */
int oci_put_local_image(const char *dst, const struct oci_opts *opts, struct oci_cache *cache, const char *blob_dir,
                        const char *manifest, size_t manifest_len, const char *media_type,
                        struct oci_copy_result *result, struct err **err);

/* The same for an image made in memory: its blobs (the config and layers its manifest names) go
 * into the cache first. digest gets the manifest's. */
struct oci_blob {
	const void *data;
	size_t len;
};
int oci_put_image(const char *dst, const struct oci_opts *opts, const struct oci_blob *blobs, size_t n,
                  const char *manifest, size_t manifest_len, const char *media_type, char digest[OCI_DIGEST_MAX],
                  struct err **err);

/* ---------------------------------------------------------------- attached artifacts
 * What cosign attaches beside an image in its repository (signatures at sha256-<hex>.sig,
 * attestations at sha256-<hex>.att): a small image whose layers of one media type are read whole
 * (artifact.c), each checked against its digest, with its descriptor's annotations. */
struct oci_artifact_layer {
	char *digest;
	json_t *annotations; /* the descriptor's "annotations" object, or NULL */
	struct buf data;
};
struct oci_artifact {
	char digest[OCI_DIGEST_MAX]; /* the artifact's manifest's */
	struct oci_artifact_layer *layers;
	size_t n_layers;
	size_t n_skipped; /* layers of the media type not read: over max_size, or too many */
};
/* ENOENT (from the registry's 404) when ref names nothing. */
int oci_artifact_read(const char *ref, const struct oci_opts *opts, const char *media_type, size_t max_size,
                      struct oci_artifact *out, struct err **err);
void oci_artifact_free(struct oci_artifact *a);

/* OCI 1.1 referrers (oci/referrers.c): *supported when image's registry answers the referrers API
 * for its repository; *subject gets the descriptor of the manifest `digest` (media type and size as
 * the registry serves it, checked against the digest) for a referrer's `subject`. Free it with
 * oci_desc_free. */
int oci_referrers_probe(const char *image, const char *digest, const struct oci_opts *opts, bool *supported,
                        struct oci_desc *subject, struct err **err);

/* ---------------------------------------------------------------- pulling an image to use
 * What a build needs of an image, once: pulled into the cache (opts->platform's image of an index)
 * and read back parsed, its manifest and config checked against their digests. A copy changed in
 * the cache since it was filed is quarantined and pulled once more. */
struct oci_image {
	char digest[OCI_DIGEST_MAX];  /* the image manifest's */
	char *media_type;             /* the manifest's */
	struct oci_manifest manifest; /* kind OCI_KIND_IMAGE */
	bool manifest_parsed;
	json_t *config;                /* the config document, a JSON object */
	struct oci_copy_result pulled; /* what the pull did */
};
int oci_pull_image(const char *ref, const struct oci_opts *opts, struct oci_cache *cache, struct oci_image *out,
                   struct err **err);
void oci_image_free(struct oci_image *img);

/* ---------------------------------------------------------------- progress
 * Reporting through opts->progress (above); each does nothing without one. */
void oci_progress(const struct oci_opts *opts, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when a status is wanted: a callback that asked for OCI_PROGRESS_STATUS. */
bool oci_status_wanted(const struct oci_opts *opts);
/* Sends a status (callers check oci_status_wanted and limit the rate), or its end. */
void oci_status_line(const struct oci_opts *opts, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void oci_status_clear(const struct oci_opts *opts);
/* "12.3 MiB" */
void oci_human_size(int64_t n, char out[32]);

/* Describes an image as JSON: name, digest, media type, manifest, config,
 * layers, and the platforms when the reference is an index. */
int oci_inspect(const char *ref, const struct oci_opts *opts, json_t **out, struct err **err);

#endif
