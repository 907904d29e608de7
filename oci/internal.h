/* internal: what the files of oci/ share and nothing outside may use: image
 * sources and destinations behind one interface, and small helpers. */
#ifndef ENCLAVER_OCI_INTERNAL_H
#define ENCLAVER_OCI_INTERNAL_H

#include <pthread.h>

#include "oci/oci.h"

/* mkdir -p; existing folders are fine. */
int oci_mkdir_p(const char *path, struct err **err);
/* The transfers' status line (oci_status_wanted, in oci.h): one entry per
 * blob with how much of it has travelled. */
struct oci_status_item {
	const char *digest;
	int64_t size, done;
	bool active;
};
void oci_status_draw(const struct oci_opts *opts, const char *verb, const struct oci_status_item *items, size_t n, size_t finished);
/* A NUL-terminated copy of len bytes that need not be a string (header lines). */
char *oci_memdup_str(const void *data, size_t len);

/* Runs fn(ctx, i, err) for every i below n on up to `threads` threads (1:
 * in order, on this one). After a failure no new job starts; running ones
 * finish; the first error is returned. `stop` (may be NULL) is set, atomically,
 * once that first error is kept: running jobs that watch it can give up early,
 * and their own errors are then dropped. */
typedef int (*oci_job_fn)(void *ctx, size_t i, struct err **err);
int oci_parallel_run(size_t n, int threads, oci_job_fn fn, void *ctx, int *stop, struct err **err);

/* A status line (oci_status_draw) redrawn every 200 ms on a thread of its own
 * while the work runs on others: fill() writes the state of the n items (the
 * workers publish it with atomics) and returns how many are finished. start
 * returns false (and draws nothing) when no thread can be had. */
typedef size_t (*oci_status_fill_fn)(void *ctx, struct oci_status_item *items, size_t n);
struct oci_status_thread {
	const struct oci_opts *opts; /* where the status goes */
	const char *verb;
	size_t n;
	oci_status_fill_fn fill;
	void *ctx;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
};
bool oci_status_thread_start(struct oci_status_thread *st, const struct oci_opts *opts, const char *verb, size_t n,
                             oci_status_fill_fn fill, void *ctx);
void oci_status_thread_stop(struct oci_status_thread *st);

/* Where an image is read from. Manifests are small (capped) and travel in
 * memory; blobs travel as file descriptors. */
struct oci_source {
	const struct oci_source_ops *ops;
	struct oci_ref ref;
	const struct oci_opts *opts;
	struct oci_cache *cache;
};
struct oci_source_ops {
	/* digest NULL: the manifest the reference names. *media_type may stay
	 * NULL when the transport has no content type. The bytes are verified
	 * against digest (and the reference's digest) before they are returned. */
	int (*get_manifest)(struct oci_source *s, const char *digest, struct buf *out, char **media_type,
	                    struct err **err);
	/* Optional: make these blobs ready (a registry downloads them in parallel). */
	int (*prepare_blobs)(struct oci_source *s, const struct oci_desc *descs, size_t n, struct err **err);
	/* An fd positioned at the start of the blob. */
	int (*open_blob)(struct oci_source *s, const struct oci_desc *d, int *fd, struct err **err);
	/* Blobs come from the cache, verified when they entered it. */
	bool blobs_verified;
	void (*free)(struct oci_source *s);
};

/* Where an image is written to. */
struct oci_dest {
	const struct oci_dest_ops *ops;
	struct oci_ref ref;
	const struct oci_opts *opts;
	struct oci_cache *cache;
};
struct oci_dest_ops {
	/* Takes only OCI manifests (an OCI layout): Docker schema 2 is converted. */
	bool oci_only;
	/* has_blob, try_mount and put_blob may run on several threads at once. */
	bool concurrent;
	int (*has_blob)(struct oci_dest *d, const struct oci_desc *desc, bool *has, struct err **err);
	/* May return 1 when it took the blob some cheaper way (a cross-repository mount). */
	int (*try_mount)(struct oci_dest *d, const struct oci_desc *desc, const struct oci_ref *from, struct err **err);
	/* fd at the start of the blob; the destination verifies the digest
	 * unless `verified` says the blob came from the cache. A destination
	 * that sends over the network counts the bytes sent in *sent (atomic
	 * stores; NULL: not wanted) for the progress display. */
	int (*put_blob)(struct oci_dest *d, const struct oci_desc *desc, int fd, bool verified, int64_t *sent,
	                struct err **err);
	/* `child`: a platform's manifest under an index being copied whole: stored
	 * by digest only (the index that follows gets the tag). */
	int (*put_manifest)(struct oci_dest *d, const char *data, size_t len, const char *media_type,
	                    const char *digest, bool child, struct err **err);
	int (*commit)(struct oci_dest *d, struct err **err);
	void (*free)(struct oci_dest *d);
};

/* Copies the image an open source names (get_manifest(NULL)) to dst_text as oci_copy_cached does
 * once it opened its source (copy.c); the caller keeps and frees src. */
int oci_copy_source(struct oci_source *src, const char *dst_text, const struct oci_opts *opts, struct oci_cache *cache,
                    struct oci_copy_result *result, struct err **err);
/* A destination by its reference text (copy.c); text NULL: the cache only. */
int oci_dest_open(const char *text, const struct oci_opts *opts, struct oci_cache *cache, struct oci_dest **out,
                  struct err **err);
void oci_dest_freep(struct oci_dest **d);

/* The manifest a reference names (parsed; *digest its digest) and the open source it came from,
 * registries.conf's candidates tried in order as a pull does (copy.c); artifact.c reads blobs. */
int oci_source_open_manifest(const char *text, const struct oci_opts *opts, struct oci_cache *cache,
                             struct oci_source **src, struct oci_manifest *m, char digest[OCI_DIGEST_MAX],
                             struct err **err);

/* A small blob (its size checked by the caller) read whole into out and checked against its digest. */
int oci_source_read_blob(struct oci_source *src, const struct oci_desc *d, struct buf *out, struct err **err);

/* Tars read by the archive sources (tar_read.c): a reader for a plain,
 * gzip or zstd tar; a member of at most OCI_MANIFEST_MAX bytes into *out
 * (replacing what it held); the current member streamed into the cache
 * through the digest check (expected may be NULL: named by what it hashes
 * to); and open_blob for sources whose blobs all went into the cache. */
struct archive;
int oci_tar_open(const char *path, struct archive **out, struct err **err);
int oci_tar_read_small(struct archive *a, const char *file, const char *name, int64_t size, char **out, size_t *len,
                       struct err **err);
int oci_tar_member_to_cache(struct archive *a, const struct oci_cache *c, const char *file, const char *name,
                            const char *expected, int64_t size, char digest_out[OCI_DIGEST_MAX], int64_t *size_out,
                            struct err **err);
int oci_tar_source_open_blob(struct oci_source *s, const struct oci_desc *d, int *fd, struct err **err);

/* The index entry a layout's or an oci-archive's reference names (the only one when untagged);
 * manifest.c. */
int oci_index_pick(const struct oci_manifest *index, const char *transport, const char *where, const char *tag,
                   const struct oci_desc **out, struct err **err);
/* Tars an OCI layout folder into file (deterministic, atomic); archive_write.c. */
int oci_archive_write_dir(const char *dir, const char *file, struct err **err);
int oci_archive_source_open(const struct oci_ref *ref, struct oci_cache *cache, struct oci_source **out,
                            struct err **err);
int oci_layout_source_open(const struct oci_ref *ref, struct oci_source **out, struct err **err);
int oci_layout_dest_open(const struct oci_ref *ref, struct oci_dest **out, struct err **err);
int oci_docker_archive_dest_open(const struct oci_ref *ref, struct oci_dest **out, struct err **err);
/* Streams a blob into the cache through the digest check (nothing to do
 * when it is there already); a verified one (from a staging folder) is
 * hard-linked when it can be, as oci_blob_write_fd does. */
int oci_cache_put_fd(const struct oci_cache *c, const struct oci_desc *desc, int fd, bool verified, struct err **err);
int oci_docker_archive_source_open(const struct oci_ref *ref, struct oci_cache *cache, struct oci_source **out,
                                   struct err **err);
/* insecure: opts->insecure or what registries.conf says for the registry. */
int oci_registry_source_open(const struct oci_ref *ref, const struct oci_opts *opts, bool insecure,
                             struct oci_cache *cache, struct oci_source **out, struct err **err);
int oci_registry_dest_open(const struct oci_ref *ref, const struct oci_opts *opts, bool insecure, struct oci_dest **out,
                           struct err **err);

#endif
