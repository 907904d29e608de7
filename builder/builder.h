/* builder: the pieces of `enclaver build` that turn a manifest, an app image's
 * layers and a kernel bundle into the ramdisks of an EIF (cpio, manifest, flatten, initramfs, bundle). */
#ifndef ENCLAVER_BUILDER_H
#define ENCLAVER_BUILDER_H

#include "common/common.h"
#include "common/json.h"
#include "oci/oci.h"

#include <openssl/types.h>

/* ================================================================ cpio
 * A streaming writer of the newc ("070701") cpio format with linuxkit's
 * conventions (eif-format.md §6), so the bootstrap ramdisk is byte-identical
 * to what nitro-cli's linuxkit writes: inode numbers from 721 up by one per
 * entry (the trailer too), devmajor 3 / devminor 1 on every entry, check 0,
 * header+name and data each padded to 4 bytes, a "TRAILER!!!" entry, and the
 * whole archive zero-padded to a multiple of 512 bytes. */

/* The mtime linuxkit gives to the files it adds itself (2017-04-18T16:30:00Z). */
#define BLD_LINUXKIT_MTIME 1492533000

struct bld_cpio_entry {
	const char *name; /* as stored: no leading "/" */
	uint32_t mode;    /* permission bits | file type (S_IFDIR, S_IFREG...) */
	uint32_t uid, gid;
	uint32_t nlink; /* 0: 2 for directories, else 1 (linuxkit's rule) */
	int64_t mtime;  /* seconds since the epoch, 0..2^32-1 */
	uint64_t size;  /* bytes of data that follow (regular files, symlinks) */
	uint32_t rdev_major, rdev_minor;
	uint32_t ino; /* 0: the next number in sequence */
};

struct bld_cpio; /* opaque; owns a write buffer, not the descriptor */
/* Starts an archive written sequentially to fd (which the caller owns). */
struct bld_cpio *bld_cpio_new(int fd);
void bld_cpio_free(struct bld_cpio *c);
/* Writes an entry's header and name; then exactly e->size bytes of data must
 * follow through bld_cpio_data (for symlinks: the target, no NUL). */
int bld_cpio_header(struct bld_cpio *c, const struct bld_cpio_entry *e, struct err **err);
int bld_cpio_data(struct bld_cpio *c, const void *data, size_t len, struct err **err);
/* Copies the next e->size bytes of fd (from offset off) as the entry's data. */
int bld_cpio_data_from_fd(struct bld_cpio *c, int fd, off_t off, uint64_t len, struct err **err);
/* Takes the next inode number without writing (for hardlink groups). */
uint32_t bld_cpio_next_ino(struct bld_cpio *c);
/* Writes the trailer and the padding to 512 and flushes. */
int bld_cpio_finish(struct bld_cpio *c, struct err **err);
/* Bytes written so far (after finish: the archive's size). */
uint64_t bld_cpio_size(const struct bld_cpio *c);

/* The bootstrap ramdisk nitro-cli makes with linuxkit: `dev` (dir 0755),
 * `init` (0755), `nsm.ko` (0755, when nsm_path is not NULL), then, when the
 * kernel bundle has modules, a `modules` dir (0755) and each module as
 * `modules/NAME` (0644) in the given order (our extension: odyn's init loads
 * them; linuxkit has no such entries). Written atomically to out_path. */
struct bld_bootstrap_spec {
	const char *init_path;
	const char *nsm_path;            /* NULL: none */
	const char *const *module_paths; /* n_modules files; stored under their base names */
	size_t n_modules;
};
/* With modules, `odyn-modules` (0644) lists "/modules/NAME" one per line in
 * the given (dependency) order: odyn's init loads them from that list. */
int bld_bootstrap_write(const char *out_path, const struct bld_bootstrap_spec *spec, struct err **err);

/* The customer ramdisk's last entry (under rootfs/), which odyn checks when the app is not found. */
#define BLD_RAMDISK_MARKER "etc/enclaver/.ramdisk-complete"

/* ================================================================ flatten
 * An image's layers applied in order to an in-memory file tree with OCI
 * whiteout semantics (builder/flatten.c has the rules). Nothing touches the
 * host's file system but one unlinked temporary file, the content store,
 * where regular files' bytes are appended as the layers stream by; nodes keep
 * only (offset, size) into it. Names are cleaned: absolute names become
 * relative, "." and empty parts vanish, and ".." that would leave the root is
 * an error; symlinks are stored, never followed on the host. */
struct bld_xattr {
	char *name;
	void *value;
	size_t size;
};

struct bld_node {
	char *name; /* one path component; "" for the root */
	struct bld_node *parent;
	uint32_t mode; /* file type | permission bits (07777) */
	uint32_t uid, gid;
	int64_t mtime;
	uint32_t rdev_major, rdev_minor; /* character and block devices */
	uint64_t size;                   /* regular files: bytes in the content store */
	uint64_t content_off;            /* regular files: where they start there */
	char *link_target;               /* symlinks */
	uint32_t link_group;             /* != 0: hardlinked with every node of this group */
	uint32_t layer;                  /* index of the layer that last wrote this entry */
	struct bld_xattr *xattrs;
	size_t n_xattrs;
	struct bld_node **children; /* directories: sorted by name (bytewise) */
	size_t n_children, cap_children;
};

struct bld_tree;
/* A tree holding only a root directory (0755, root-owned, mtime 0). The
 * content store is created in tmp_dir (NULL: $TMPDIR, else /tmp). */
int bld_tree_new(const char *tmp_dir, struct bld_tree **out, struct err **err);
void bld_tree_free(struct bld_tree *t);
/* Applies one layer blob. media_type chooses the decompression and must match
 * the data: application/vnd.oci.image.layer.v1.tar[+gzip|+zstd] (and the
 * .nondistributable variants), application/vnd.docker.image.rootfs.diff.tar.gzip
 * (which may also be an uncompressed tar, as docker-archive layers are). On
 * failure the tree is left part-applied: throw it away. */
int bld_tree_apply_layer(struct bld_tree *t, const char *path, const char *media_type, struct err **err);
struct bld_node *bld_tree_root(struct bld_tree *t);
/* The node at a cleaned relative path ("" is the root); symlinks are not
 * followed. NULL when absent. */
struct bld_node *bld_tree_lookup(struct bld_tree *t, const char *path);
/* The descriptor of the content store, for pread at node->content_off. */
int bld_tree_content_fd(const struct bld_tree *t);
/* Bytes appended to the content store so far (replaced files included). */
uint64_t bld_tree_content_size(const struct bld_tree *t);
/* Caps the content store at max bytes (0: no cap but newc's 4 GiB per file); a file whose
 * claimed size would pass it is refused before any of its bytes are written. */
void bld_tree_set_content_max(struct bld_tree *t, uint64_t max);
/* Adds or replaces entries made by the builder itself (not from a layer);
 * missing parents become 0755 root-owned directories with this mtime. A
 * directory that already exists keeps its metadata and children. */
int bld_tree_add_dir(struct bld_tree *t, const char *path, uint32_t perm, int64_t mtime, struct err **err);
int bld_tree_add_data(struct bld_tree *t, const char *path, const void *data, size_t len, uint32_t perm, int64_t mtime,
                      struct err **err);
/* Copies a host file's bytes into the store (streamed). */
int bld_tree_add_file(struct bld_tree *t, const char *path, const char *src_path, uint32_t perm, int64_t mtime,
                      struct err **err);
/* Visits every node but the root, parents before children, siblings in name
 * order; `path` is the node's full relative path. A non-zero return stops. */
typedef int (*bld_tree_visit_fn)(struct bld_node *node, const char *path, void *ctx, struct err **err);
int bld_tree_walk(struct bld_tree *t, bld_tree_visit_fn fn, void *ctx, struct err **err);
/* Called while a layer is applied with how many bytes of the layer blob (as
 * stored: compressed) have been read; for a progress display, which limits its own rate. */
typedef void (*bld_tree_progress_fn)(void *ctx, uint64_t blob_bytes);
void bld_tree_set_progress(struct bld_tree *t, bld_tree_progress_fn fn, void *ctx);
/* Cleans a layer entry name as described above into *out (caller frees). */
int bld_path_clean(const char *name, char **out, struct err **err);
/* An image's layer as a file: path, media type, and for messages its digest (NULL: the path). */
struct bld_layer {
	const char *path;
	const char *media_type;
	const char *digest;
	int64_t size; /* for progress; 0 when unknown */
};
/* An image's layers as the cache holds them, each checked against its digest first (a changed
 * copy is quarantined and named); free with bld_layers_free(layers, m->n_layers). */
int bld_layers_from_cache(const struct oci_cache *cache, const struct oci_manifest *m, struct bld_layer **out,
                          struct err **err);
void bld_layers_free(struct bld_layer *layers, size_t n);
/* Applies the layers in order (bottom first); layer_done (may be NULL) after each. A failure
 * names the layer ("layer 2 (sha256:...)"). */
int bld_tree_apply_layers(struct bld_tree *t, const struct bld_layer *layers, size_t n,
                          void (*layer_done)(void *ctx, size_t i), void *ctx, struct err **err);

/* ================================================================ initramfs
 * The customer ramdisk: the flattened image under rootfs/, with what
 * nitro-cli's linuxkit adds (rootfs/{dev,run,sys,var,proc,tmp} when the image
 * lacks them) plus odyn at rootfs/sbin/odyn, the manifest at
 * rootfs/etc/enclaver/enclaver.yaml, and /cmd and /env for the init. Written
 * in name order (parents first) so the same inputs give the same bytes. */
struct bld_app_config {
	/* From the image config; arrays of n strings, borrowed. */
	const char *const *entrypoint;
	size_t n_entrypoint;
	const char *const *cmd;
	size_t n_cmd;
	const char *const *env; /* "KEY=VALUE" */
	size_t n_env;
	const char *working_dir; /* NULL or "": none */
	const char *user;        /* NULL or "": none */
};

struct bld_initramfs_spec {
	struct bld_tree *tree; /* the flattened image; odyn and the manifest are added to it */
	const char *odyn_path;
	const char *manifest_data;
	size_t manifest_len;
	const struct bld_app_config *config;
	/* SOURCE_DATE_EPOCH, or < 0 when unset: the mtime of every entry the
	 * builder adds, and a ceiling for the image's own mtimes. Unset, added
	 * entries get linuxkit's constant mtime and image entries keep theirs. */
	int64_t source_date_epoch;
};

/* The contents of /cmd and /env, one entry per line, each '\n'-terminated:
 * cmd = /sbin/odyn --config-dir /etc/enclaver [--workdir DIR] [--user USER]
 * -- ENTRYPOINT... CMD... (joined as a container runtime would); env = Env. */
int bld_initramfs_cmd_env(const struct bld_app_config *cfg, struct buf *cmd, struct buf *env, struct err **err);
/* Writes the customer ramdisk into an atomic file the caller opened and commits (or aborts);
 * bld_customer_write is the whole path from an image. */
int bld_initramfs_write_to(struct atomic_file *af, const struct bld_initramfs_spec *spec, struct err **err);

/* ================================================================ kernel bundles
 * A folder with what the EIF needs besides the app (docs/builder.md):
 * bzImage (x86_64) or Image (aarch64), cmdline, optionally init, nsm.ko,
 * modules/ (with modules.order) and the kernel config (bzImage.config,
 * Image.config or config). AWS's blobs folder on Nitro hosts is one;
 * scripts/kernel-bundle-debian.sh makes one from Debian's 6.12 kernel. */
#define BLD_CMDLINE_MAX 2048 /* x86's COMMAND_LINE_SIZE */

struct bld_kernel_bundle {
	char *dir;
	char *kernel_path;
	bool aarch64;        /* the kernel is an arm64 Image */
	char *cmdline;       /* trimmed, as nitro-cli does */
	char *init_path;     /* NULL: the bundle has none (use odyn's init) */
	char *nsm_path;      /* NULL: none at the top level */
	char **module_paths; /* in load order: modules.order, else by name */
	size_t n_modules;
	char *config_path; /* NULL: none */
	char *os;          /* from the config's third line; NULL without one */
	char *kernel_version;
};
int bld_kernel_bundle_load(const char *dir, struct bld_kernel_bundle **out, struct err **err);
void bld_kernel_bundle_free(struct bld_kernel_bundle *b);

/* ================================================================ the pipeline
 * `enclaver build`: manifest -> app image (any oci/ transport, through the
 * cache) -> flattened tree -> customer ramdisk -> bootstrap ramdisk from a
 * kernel bundle -> EIF (signed when the manifest says so) -> release image.
 * Everything intermediate lives in a private temporary folder removed on
 * return; the outputs appear whole or not at all (builder/pipeline.c). */

struct bld_build_opts {
	const char *manifest_path; /* "-": stdin */
	const char *odyn_path;     /* the odyn binary given by the user (--odyn, $ENCLAVER_ODYN): beats sources.odyn */
	const char *odyn_default;  /* without either: the odyn shipped with enclaver (next to the binary) */
	const char *runtime_path;  /* the static enclaver-run put in the release image, or NULL: none */
	const char *kernel_bundle; /* NULL: ENCLAVER_KERNEL_BUNDLE, the AWS blobs, the cache's bundle */
	const char *platform;      /* NULL: the kernel bundle's architecture */
	const char *eif_only;      /* write the EIF here and stop (no release image) */
	const char *output;        /* release image to this reference (oci:DIR[:TAG]...), or NULL */
	const char *push;          /* release image pushed to this reference, or NULL */
	const char *sign_key;      /* --sign-key: the pushed image signed with this key (keys/), or NULL */
	const char *tmp_dir;       /* NULL: $TMPDIR, else /tmp */
	bool no_ramdisk_cache;     /* always flatten; neither read nor keep a cached customer ramdisk */
	/* A rebuild (`enclaver verify --rebuild`): the images pulled instead of sources.app and
	 * sources.odyn (the recorded ones, pinned by digest; the manifest's bytes, which the EIF holds,
	 * stay as recorded), and, with sde_pinned, sde (-1: unset) instead of $SOURCE_DATE_EPOCH. */
	const char *app_pinned, *odyn_pinned;
	bool sde_pinned;
	int64_t sde;
	struct oci_opts oci;       /* cache, credentials, TLS, offline */
};

/* Runs the build; *result is the JSON `enclaver build` prints
 * ({"Sources", "Measurements", "Image"}). */
int bld_build(const struct bld_build_opts *opts, json_t **result, struct err **err);
/* The kernel bundle folder a build uses when none is given: $ENCLAVER_KERNEL_BUNDLE,
 * else /usr/share/nitro_enclaves/blobs when it has a kernel, else CACHE/kernel-bundle.
 * Caller frees; the error lists where it looked. */
int bld_kernel_bundle_default(const char *cache_dir, char **out, struct err **err);

/* ================================================================ image signatures
 * builder/sign_image.c: a cosign-format signature of an image in a registry (simple-signing
 * payload, sha256-<hex>.sig tag, dev.cosignproject.cosign/signature annotation), which
 * containers/image's sigstoreSigned policy verifies, added beside the signatures already there. */
struct sign_key;
struct bld_image_signature {
	char *digest;        /* the manifest digest signed */
	char *identity;      /* the payload's docker-reference: "registry/repository" */
	char *signature_ref; /* "docker://registry/repository:sha256-<hex>.sig" */
};
#define BLD_SIMPLE_SIGNING_MT "application/vnd.dev.cosign.simplesigning.v1+json"
#define BLD_COSIGN_SIGNATURE_ANNOTATION "dev.cosignproject.cosign/signature"
/* digest: the image's manifest digest as pushed, or NULL to ask the registry what image names. */
int bld_sign_image(const char *image, const char *digest, struct sign_key *key, const struct oci_opts *opts,
                   struct bld_image_signature *out, struct err **err);
void bld_image_signature_free(struct bld_image_signature *s);

/* builder/simple_signing.c: the payload signed, as cosign writes it (identity "registry/repo"),
 * and read back strictly, as containers/image reads it: exactly the fields "critical" {"type",
 * "image" {"docker-manifest-digest"}, "identity" {"docker-reference"}} and "optional" (null or an
 * object), the type "cosign container image signature", a valid digest. Errors name the field. */
char *bld_simple_signing_payload(const char *identity, const char *digest);
struct bld_simple_signing {
	char *digest;    /* critical.image.docker-manifest-digest */
	char *reference; /* critical.identity.docker-reference */
};
int bld_simple_signing_parse(const void *data, size_t len, struct bld_simple_signing *out, struct err **err);
void bld_simple_signing_free(struct bld_simple_signing *p);

/* ================================================================ verification
 * builder/verify_signature.c: the image signature, as containers/image's sigstoreSigned policy
 * checks it. Returns -1 only when the check could not be made (the registry failed); a missing or
 * wrong signature is a result: verified false and the problem. */
struct bld_signature_check {
	bool verified;
	char *identity;      /* verified: the payload's docker-reference */
	char *signature_ref; /* where the signatures were looked for */
	size_t n_signatures; /* simple-signing payloads found there */
	char *problem;       /* !verified: why none was accepted */
};
int bld_image_signature_check(const struct oci_ref *ref, const char *digest, EVP_PKEY *key,
                              const struct oci_opts *opts, struct bld_signature_check *out, struct err **err);
void bld_signature_check_free(struct bld_signature_check *c);

/* builder/verify.c: `enclaver verify` and `enclaver run --verify-key`: the image's signature by the
 * key, then the EIF of that very digest, read whole (structure, CRC, its own signature) and
 * measured. */
struct bld_verify_opts {
	const char *image;   /* a registry reference */
	EVP_PKEY *key;       /* keys_public_open */
	struct oci_opts oci;
	const char *tmp_dir; /* NULL: $TMPDIR */
	/* When set, the verified image's EIF and enclaver.yaml are kept here (what run then starts). */
	const char *eif_out, *manifest_out;
	/* --rebuild: the build the statement records, done again (builder/verify_rebuild.c) with this
	 * machine's kernel bundle and odyn (as bld_build_opts: NULL for the defaults). */
	bool rebuild;
	const char *kernel_bundle, *odyn_path, *odyn_default;
};
/* 0 when the checks ran: *report is {"Valid", "Image", "Digest", "Checks", "Problem", "Signature",
 * "Statement", "Measurements", "Rebuild"}, Valid false with the first Problem when one failed. -1 when they could not run
 * (no registry, no such image). */
int bld_verify_image(const struct bld_verify_opts *o, json_t **report, struct err **err);
/* The rebuild: 0 with *report {"Identical", "EIF", "Measurements", "Difference"} and *difference
 * (caller frees) the first difference from the statement, NULL when the EIF is identical; -1 when
 * it could not be done. image_eif is the image's EIF, tmp a private folder. */
struct bld_statement;
int bld_verify_rebuild(const struct bld_verify_opts *o, const struct bld_statement *st, const char *image_eif,
                       const char *tmp, json_t **report, char **difference, struct err **err);

/* ================================================================ files out of an image
 * builder/image_files.c: pulls an image (any oci/ transport, through the cache), applies its
 * layers to a flatten tree and copies the named regular files out, each atomically. Nothing is
 * extracted to disk but the wanted files; symlinks are not followed. */
struct bld_image_file {
	const char *path; /* in the image: "/enclave/application.eif" */
	const char *out;  /* written here */
	bool optional;    /* absent is fine (found tells) rather than an error */
	bool found;       /* out: the image had it */
};
/* cache: the caller's open cache, or NULL to open opts->cache_dir's. digest_out (may be NULL) gets
 * the image's manifest digest. */
int bld_image_files_extract(const char *ref, const struct oci_opts *opts, struct oci_cache *cache,
                            struct bld_image_file *files, size_t n, const char *tmp_dir,
                            char digest_out[OCI_DIGEST_MAX], struct err **err);

/* ================================================================ ramdisk cache
 * The customer ramdisks of the last few builds, kept under CACHE/ramdisks/<key>.cpio
 * (builder/ramdisk_cache.c). The key is a SHA-256 over every input of the ramdisk: this
 * enclaver's version, the layers' digests and media types, the image config's digest, odyn's
 * digest, the manifest's bytes and SOURCE_DATE_EPOCH. The folder is trusted as the blob cache is:
 * it belongs to the user running the build. */
struct bld_ramdisk_key;
struct bld_ramdisk_key *bld_ramdisk_key_new(void);
void bld_ramdisk_key_add(struct bld_ramdisk_key *k, const char *text);
void bld_ramdisk_key_add_bytes(struct bld_ramdisk_key *k, const void *data, size_t len);
/* Writes "sha256:<hex>" and frees k. */
void bld_ramdisk_key_final(struct bld_ramdisk_key *k, char out[OCI_DIGEST_MAX]);
/* The path the ramdisk of `key` has in the cache (present or not). Caller frees. */
char *bld_ramdisk_cache_path(const char *cache_dir, const char *key);
/* True when the ramdisk of `key` is cached with the PCR2 it measured when it was made
 * (<key>.pcr2, SHA-384, hex): *path (caller frees) is set either way, pcr2 when found. A build
 * that reuses it has the EIF writer check that PCR2 (eif_build_spec.expect_pcr2), so a ramdisk
 * changed in the cache is noticed in the pass that writes the EIF, at no extra cost. */
bool bld_ramdisk_cache_lookup(const char *cache_dir, const char *key, char **path, uint8_t pcr2[48]);
/* Records a ramdisk's PCR2 before the ramdisk itself is renamed into place. */
int bld_ramdisk_cache_set_pcr2(const char *cache_dir, const char *key, const uint8_t pcr2[48], struct err **err);
/* Removes a cached ramdisk (and its PCR2): it did not measure what it did when it was made. */
void bld_ramdisk_cache_drop(const char *cache_dir, const char *key);
/* `enclaver cache verify`: every cached ramdisk measured against its recorded PCR2; a ramdisk
 * that differs, or has no PCR2, is removed and named on stderr. *checked and *bad count them. */
int bld_ramdisk_cache_verify(const char *cache_dir, size_t *checked, size_t *bad, struct err **err);
/* Creates CACHE/ramdisks. */
int bld_ramdisk_cache_prepare(const char *cache_dir, struct err **err);
/* Keeps the most recently used few ramdisks and removes the others. */
void bld_ramdisk_cache_prune(const char *cache_dir);
/* A ramdisk on its way into the cache: its temporary file (written, not committed) is flushed to
 * disk on a thread of its own while the build reads it for the EIF, then renamed into place by
 * commit. Takes over *af. free joins the thread and, before commit, removes the file. */
struct bld_ramdisk_pending;
struct bld_ramdisk_pending *bld_ramdisk_pending_start(struct atomic_file *af);
const char *bld_ramdisk_pending_path(const struct bld_ramdisk_pending *p); /* the temporary file */
int bld_ramdisk_pending_commit(struct bld_ramdisk_pending *p, struct err **err);
void bld_ramdisk_pending_free(struct bld_ramdisk_pending *p);

/* ================================================================ release image
 * The OCI image `enclaver build` ships (builder/release.c): the sleeve's layers
 * when there is one (its blobs as they are), a deterministic uncompressed layer
 * with the static enclaver-run at /usr/local/bin, and one holding
 * /enclave/application.eif and /enclave/enclaver.yaml; a config whose
 * Entrypoint is /usr/local/bin/enclaver-run and whose labels carry the PCRs
 * and the source digest. */

/* sources.sleeve: a base image under the release image. Its config is the
 * starting point (Env, WorkingDir, User, Labels... kept; Cmd dropped; history
 * and rootfs.diff_ids extended); its layer blobs travel unchanged, from the cache. */
struct bld_release_sleeve {
	const char *ref;      /* as the manifest names it */
	const char *digest;   /* its manifest digest */
	const json_t *config; /* its image config document */
	const struct oci_desc *layers;
	size_t n_layers;
	const struct oci_cache *cache; /* holds every layer blob */
};

struct bld_release_spec {
	const struct bld_release_sleeve *sleeve; /* NULL: none */
	const char *runtime_path; /* the static enclaver-run for /usr/local/bin (its own layer), or NULL */
	const char *eif_path;
	const char *manifest_data;
	size_t manifest_len;
	const struct oci_platform *platform;
	int64_t created;               /* the build's epoch: every mtime and the config's "created" */
	const char *const *label_keys; /* n_labels labels, also written as manifest annotations */
	const char *const *label_values;
	size_t n_labels;
};
/* The image made: its manifest (an OCI manifest, OCI_MT_MANIFEST) in memory. */
struct bld_release_image {
	char digest[OCI_DIGEST_MAX]; /* the manifest's */
	char *manifest;
	size_t manifest_len;
	size_t n_layers;
};
/* Writes the new blobs (the runtime and EIF layers, the config) once into blob_dir, a folder of
 * blobs by hex (a staging folder, oci_cache_staging_create), and makes the manifest; the sleeve's
 * layers must be in its cache. oci_put_local_image then puts the image anywhere. */
int bld_release_write(const char *blob_dir, const struct bld_release_spec *spec, struct bld_release_image *out,
                      struct err **err);
void bld_release_image_free(struct bld_release_image *img);

/* Where a release image keeps its EIF. */
#define BLD_RELEASE_EIF_PATH "/enclave/application.eif"

/* ================================================================ customer ramdisk
 * The one path from an image (its layer files and config document) to the customer ramdisk:
 * `enclaver build`, `enclaver ramdisk customer`. */
/* The app's command from an image config document (its "config": Entrypoint, Cmd, Env,
 * WorkingDir, User; strings borrowed from doc). Free with bld_app_config_free. */
int bld_app_config_parse(const json_t *doc, struct bld_app_config *out, struct err **err);
void bld_app_config_free(struct bld_app_config *app);
struct bld_customer_spec {
	const struct bld_layer *layers;
	size_t n_layers;
	const json_t *image_config; /* the image config document */
	const char *odyn_path;
	const char *manifest_data; /* the manifest's exact bytes */
	size_t manifest_len;
	int64_t source_date_epoch; /* < 0: unset (bld_initramfs_spec) */
	const char *tmp_dir;       /* the flatten's content store; NULL: $TMPDIR */
	/* For a progress display, all optional: bytes of the current layer read; a layer done; the
	 * layers all flattened and the cpio being written. */
	bld_tree_progress_fn progress;
	void (*layer_done)(void *ctx, size_t i);
	void (*writing)(void *ctx);
	void *ctx;
};
/* Flattens the layers and writes the ramdisk into af (opened by the caller, who commits it). */
int bld_customer_write_to(struct atomic_file *af, const struct bld_customer_spec *spec, struct err **err);
/* The same, atomically to out_path. */
int bld_customer_write(const char *out_path, const struct bld_customer_spec *spec, struct err **err);

#endif
