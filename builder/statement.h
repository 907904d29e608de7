/* statement: the signed measurement statement of a build (docs/trust-chain.md). An in-toto
 * Statement v1 whose subject is the release image (or, for `--eif-only`, the EIF) and whose
 * predicate is SLSA provenance v1: resolvedDependencies are every input a rebuild needs, by
 * digest (the app image, odyn, the kernel bundle, enclaver.yaml with its bytes, the sleeve, the
 * static enclaver-run), and the byproduct is the EIF with its SHA-256, SHA-384 and PCR0/1/2/8. It
 * travels in a DSSE envelope (keys/dsse.h), attached to the image as cosign attaches attestations
 * (the `sha256-<hex>.att` tag, and an OCI 1.1 referrer where the registry has the referrers API)
 * or written beside the EIF as `<eif>.intoto.jsonl`. Same inputs, same statement bytes. */
#ifndef ENCLAVER_BUILDER_STATEMENT_H
#define ENCLAVER_BUILDER_STATEMENT_H

#include <openssl/evp.h>

#include "common/common.h"
#include "common/json.h"
#include "eif/eif.h"
#include "oci/oci.h"

#define BLD_INTOTO_STATEMENT_V1  "https://in-toto.io/Statement/v1"
#define BLD_SLSA_PROVENANCE_V1   "https://slsa.dev/provenance/v1"
#define BLD_STATEMENT_BUILD_TYPE "urn:enclaver:build-type:enclaver-build:v1"
#define BLD_STATEMENT_BUILDER_ID "urn:enclaver:builder:enclaver"
/* What `--eif-only` writes beside the EIF: "<eif>" BLD_STATEMENT_FILE_SUFFIX. */
#define BLD_STATEMENT_FILE_SUFFIX ".intoto.jsonl"

/* The resolvedDependencies' names. */
#define BLD_DEP_APP      "app"
#define BLD_DEP_ODYN     "odyn"
#define BLD_DEP_KERNEL   "kernel-bundle"
#define BLD_DEP_MANIFEST "enclaver.yaml"
#define BLD_DEP_SLEEVE   "sleeve"
#define BLD_DEP_RUNTIME  "enclaver-run"
/* The byproduct's. */
#define BLD_BYPRODUCT_EIF "application.eif"

/* ---------------------------------------------------------------- making one */
/* Where odyn came from: a binary the user named (--odyn, $ENCLAVER_ODYN), sources.odyn's image,
 * or the odyn shipped with enclaver. */
enum bld_odyn_source { BLD_ODYN_FILE, BLD_ODYN_IMAGE, BLD_ODYN_BUNDLED };

struct bld_statement_spec {
	/* The subject: a registry image ("registry/repository" and its manifest digest), or the EIF
	 * (its file name and SHA-256, "sha256:<hex>"). */
	const char *subject_name;
	const char *subject_digest;
	const char *platform; /* "linux/amd64" */
	/* sources.app */
	const char *app_ref, *app_digest, *app_config_digest;
	/* odyn: the binary's digest; for BLD_ODYN_IMAGE also sources.odyn and its manifest digest */
	enum bld_odyn_source odyn_source;
	const char *odyn_digest, *odyn_image_ref, *odyn_image_digest;
	/* the kernel bundle: its digest and files (bld_kernel_bundle_digest), folder, kernel version, os */
	const char *kernel_digest;
	const json_t *kernel_files;
	const char *kernel_dir, *kernel_version, *kernel_os;
	/* enclaver.yaml's exact bytes */
	const char *manifest_data;
	size_t manifest_len;
	/* sources.sleeve, or NULL */
	const char *sleeve_ref, *sleeve_digest;
	/* the static enclaver-run in the release image, or NULL */
	const char *runtime_digest;
	int64_t source_date_epoch; /* < 0: unset */
	/* the EIF: its digests ("sha256:<hex>", "sha384:<hex>") and measurements */
	const char *eif_sha256, *eif_sha384;
	const struct eif_measurements *measurements;
};
/* The statement as compact JSON with sorted keys (caller frees). */
int bld_statement_make(const struct bld_statement_spec *spec, char **json_out, struct err **err);

struct bld_kernel_bundle;
/* The kernel bundle's digest: SHA-256 over the sorted lines "<sha256 hex>  <name>\n" of the files
 * the EIF takes from it (kernel, cmdline as read, init, nsm.ko, modules/NAME, the kernel config);
 * *files (may be NULL; caller frees) maps each name to "sha256:<hex>". */
int bld_kernel_bundle_digest(const struct bld_kernel_bundle *b, char out[OCI_DIGEST_MAX], json_t **files,
                             struct err **err);

/* SHA-256 and SHA-384 of a file, "sha256:<hex>" / "sha384:<hex>", in one pass. */
int bld_file_digests(const char *path, char sha256[OCI_DIGEST_MAX], char sha384[104], struct err **err);

/* ---------------------------------------------------------------- reading one */
struct bld_statement_dep {
	char *name;
	char *uri;        /* NULL when absent */
	char *sha256;     /* "sha256:<hex>", NULL when absent */
	uint8_t *content; /* the decoded `content`, NULL when absent */
	size_t content_len;
	json_t *annotations; /* borrowed from doc; NULL when absent */
};

struct bld_statement {
	json_t *doc;          /* the whole statement */
	char *subject_name;   /* subject[0] */
	char *subject_digest; /* "sha256:<hex>" */
	char *build_type;
	char *platform;            /* externalParameters.platform */
	char *enclaver_version;    /* runDetails.builder.version.enclaver */
	int64_t source_date_epoch; /* internalParameters.SOURCE_DATE_EPOCH; -1 when null */
	struct bld_statement_dep *deps;
	size_t n_deps;
	/* by name among deps (NULL when the statement has none) */
	const struct bld_statement_dep *app, *odyn, *kernel, *manifest, *sleeve, *runtime;
	/* the EIF byproduct */
	char *eif_sha256, *eif_sha384;        /* "sha256:<hex>", "sha384:<hex>" */
	struct eif_measurements measurements; /* alg SHA-384; has_pcr8 when the EIF is signed */
};
/* Parses untrusted statement JSON (the DSSE payload): _type, predicateType and buildType must be
 * ours; every error names the field ("predicate.runDetails.byproducts[0].annotations.pcr0: ...").
 * Free with bld_statement_free (also after a failed parse). */
int bld_statement_parse(const void *data, size_t len, struct bld_statement *out, struct err **err);
void bld_statement_free(struct bld_statement *s);

/* ---------------------------------------------------------------- attaching and fetching */
struct sign_key;
/* The DSSE envelope (one line of JSON, no newline) of a statement; key NULL: unsigned. */
int bld_statement_envelope(const char *statement, struct sign_key *key, char **envelope_out, struct err **err);

struct bld_attestation {
	char *att_ref;      /* "docker://registry/repository:sha256-<hex>.att" */
	char *referrer;     /* the referrer manifest's digest; NULL when not pushed */
	bool referrers_api; /* the registry answered the referrers API */
};
/* Attaches an envelope to image@digest as cosign does: a layer of media type DSSE_MEDIA_TYPE
 * (annotations dev.cosignproject.cosign/signature "" and predicateType) in the image tagged
 * sha256-<hex>.att, beside the attestations already there; then, when the registry answers the
 * referrers API, the same envelope once more as an OCI 1.1 referrer (a manifest with `subject`
 * and artifactType DSSE_MEDIA_TYPE). */
int bld_attach_attestation(const char *image, const char *digest, const char *envelope, const struct oci_opts *opts,
                           struct bld_attestation *out, struct err **err);
void bld_attestation_free(struct bld_attestation *a);

/* One envelope (a `.att` layer, a line of an .intoto.jsonl file) opened: parsed, its signature
 * verified with pub (NULL: not verified, for reading an unsigned statement; the caller then trusts
 * nothing in it), and its statement parsed into *out (free with bld_statement_free, also after a
 * failure). */
int bld_statement_open(const char *envelope, size_t len, EVP_PKEY *pub, struct bld_statement *out, struct err **err);

/* The statement an image carries that verifies with pub: fetches the envelopes at the image's
 * sha256-<hex>.att tag (each size-capped before it is fetched), verifies each against pub, parses
 * the statement and checks its subject is the image's digest (digest when the caller resolved it
 * already, else what the registry holds for image). An error says why none would do: ENOENT none
 * attached; EPERM unsigned, signed by another key, another digest. */
int bld_image_statement(const char *image, const char *digest, const struct oci_opts *opts, EVP_PKEY *pub,
                        struct bld_statement *out, struct err **err);

#endif
