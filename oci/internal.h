/* internal: what the files of oci/ share and nothing outside may use: image
 * sources and destinations behind one interface, and small helpers. */
#ifndef ENCLAVER_OCI_INTERNAL_H
#define ENCLAVER_OCI_INTERNAL_H

#include "oci/oci.h"

/* mkdir -p; existing folders are fine. */
int oci_mkdir_p(const char *path, struct err **err);
/* A progress line on stderr ("enclaver: ..."), unless opts->quiet. */
void oci_progress(const struct oci_opts *opts, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A NUL-terminated copy of len bytes that need not be a string (header lines). */
char *oci_memdup_str(const void *data, size_t len);
/* "12.3 MiB" */
void oci_human_size(int64_t n, char out[32]);

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
	int (*has_blob)(struct oci_dest *d, const struct oci_desc *desc, bool *has, struct err **err);
	/* May return 1 when it took the blob some cheaper way (a cross-repository mount). */
	int (*try_mount)(struct oci_dest *d, const struct oci_desc *desc, const struct oci_ref *from, struct err **err);
	/* fd at the start of the blob; the destination verifies the digest
	 * unless `verified` says the blob came from the cache. */
	int (*put_blob)(struct oci_dest *d, const struct oci_desc *desc, int fd, bool verified, struct err **err);
	int (*put_manifest)(struct oci_dest *d, const char *data, size_t len, const char *media_type,
	                    const char *digest, struct err **err);
	int (*commit)(struct oci_dest *d, struct err **err);
	void (*free)(struct oci_dest *d);
};

/* The index entry a layout reference names (the only one when untagged). */
int oci_layout_index_pick(const struct oci_manifest *index, const char *transport, const char *where, const char *tag,
                          const struct oci_desc **out, struct err **err);
/* Tars an OCI layout folder into file (deterministic, atomic). */
int oci_archive_write_dir(const char *dir, const char *file, struct err **err);
int oci_archive_source_open(const struct oci_ref *ref, struct oci_cache *cache, struct oci_source **out,
                            struct err **err);
/* rm -rf, best effort. */
void oci_remove_tree(const char *path);
int oci_layout_source_open(const struct oci_ref *ref, struct oci_source **out, struct err **err);
int oci_layout_dest_open(const struct oci_ref *ref, struct oci_dest **out, struct err **err);
int oci_docker_archive_source_open(const struct oci_ref *ref, struct oci_cache *cache, struct oci_source **out,
                                   struct err **err);
int oci_registry_source_open(const struct oci_ref *ref, const struct oci_opts *opts, struct oci_cache *cache,
                             struct oci_source **out, struct err **err);
int oci_registry_dest_open(const struct oci_ref *ref, const struct oci_opts *opts, struct oci_dest **out,
                           struct err **err);

#endif
