/* eif: the AWS Nitro Enclaves image format (EIF v4): write, read, measure
 * (PCR0/1/2/8) and sign, byte-identical to the reference tools. */
#ifndef ENCLAVER_EIF_H
#define ENCLAVER_EIF_H

#include <openssl/types.h>

#include "common/common.h"
#include "common/json.h"

#define EIF_MAGIC ".eif"
#define EIF_VERSION 4
#define EIF_HEADER_SIZE 548
#define EIF_SECTION_HEADER_SIZE 12
#define EIF_MAX_SECTIONS 32
#define EIF_FLAG_ARCH_AARCH64 0x1
#define EIF_DEFAULT_MEM 1073741824ULL
#define EIF_DEFAULT_CPUS 2ULL

enum eif_section_type {
	EIF_SECTION_INVALID = 0,
	EIF_SECTION_KERNEL = 1,
	EIF_SECTION_CMDLINE = 2,
	EIF_SECTION_RAMDISK = 3,
	EIF_SECTION_SIGNATURE = 4,
	EIF_SECTION_METADATA = 5,
};
const char *eif_section_type_name(uint16_t type);

/* ---------------------------------------------------------------- measurements */
enum eif_hash_alg { EIF_HASH_SHA384 = 0, EIF_HASH_SHA256, EIF_HASH_SHA512 };
/* "sha256" | "sha384" | "sha512"; -1 for anything else. */
int eif_hash_alg_parse(const char *name);
size_t eif_hash_len(enum eif_hash_alg alg);

#define EIF_PCR_MAX 64
struct eif_measurements {
	enum eif_hash_alg alg;
	uint8_t pcr0[EIF_PCR_MAX]; /* kernel, cmdline and every ramdisk */
	uint8_t pcr1[EIF_PCR_MAX]; /* kernel, cmdline and the first (bootstrap) ramdisk */
	uint8_t pcr2[EIF_PCR_MAX]; /* the other (application) ramdisks */
	uint8_t pcr8[EIF_PCR_MAX]; /* the signing certificate (DER), when signed */
	bool has_pcr8;
};
/* The JSON object the reference tools print: {"HashAlgorithm": "Sha384 { ... }",
 * "PCR0": hex, "PCR1": hex, "PCR2": hex[, "PCR8": hex]} (keys sorted). */
json_t *eif_measurements_json(const struct eif_measurements *m);
/* A TPM-style extend from zero of one hash: H(zeros || H(data)), for files
 * (`enclaver pcr --input`) and certificates (PCR8). */
int eif_pcr_of_bytes(enum eif_hash_alg alg, const void *data, size_t len, uint8_t *out, struct err **err);
/* The same over a file's contents, streamed (`nitro-cli pcr --input`). */
int eif_pcr_of_file(enum eif_hash_alg alg, const char *path, uint8_t *out, struct err **err);

/* ---------------------------------------------------------------- metadata */
/* The identity recorded in the metadata section; strings are borrowed. */
struct eif_identity {
	const char *image_name;
	const char *image_version;
	const char *build_time; /* RFC 3339 */
	const char *build_tool;
	const char *build_tool_version;
	const char *os;
	const char *kernel_version;
	const json_t *docker_info; /* NULL is written as null */
	const json_t *custom;      /* NULL is written as null */
};
/* The metadata section payload exactly as the reference (serde_json) writes it. */
int eif_metadata_encode(const struct eif_identity *id, struct buf *out, struct err **err);
/* OS and kernel version from a kernel .config's third line, as the reference
 * reads "# Linux/x86_64 6.12.9 Kernel Configuration". Caller frees both. */
int eif_kernel_config_identity(const char *config_path, char **os, char **kernel_version, struct err **err);

/* ---------------------------------------------------------------- signing */
/* What makes the signature: given the digest (md) of the bytes to sign, a DER
 * ECDSA-Sig-Value. keys/ makes one from a PEM file, a PKCS#11 URI, an AWS KMS key or a
 * signature made elsewhere (detached signing). */
struct eif_sign_fn {
	int (*sign)(void *ctx, const EVP_MD *md, const uint8_t *digest, size_t digest_len, struct buf *der,
		    struct err **err);
	void *ctx;
	EVP_PKEY *pub;    /* the key's public half, checked against the certificate; NULL: unknown */
	const char *name; /* the key, for messages (no PINs or secrets) */
};
/* A signing certificate (EC P-256, P-384 or P-521; the curve chooses ES256, ES384 or ES512)
 * and what signs for it. fn->ctx and fn->pub must outlive the signer. Every signature made is
 * verified with the certificate before the image is written. */
struct eif_signer;
int eif_signer_new(const char *cert_path, const struct eif_sign_fn *fn, struct eif_signer **out, struct err **err);
void eif_signer_free(struct eif_signer *s);
/* What a signer signs for an EIF (detached signing, `enclaver eif measure`): the COSE
 * Sig_structure over PcrInfo{0, PCR0} for the certificate's algorithm, and its digest. */
struct eif_to_sign {
	uint8_t pcr0[48];
	const char *cose_alg;    /* "ES384" ... */
	const char *digest_name; /* "SHA2-384" ... */
	struct buf tbs;          /* the Sig_structure (caller frees) */
	uint8_t digest[64];
	size_t digest_len;
};
int eif_to_sign_of_file(const char *eif_path, const char *cert_path, struct eif_to_sign *out, struct err **err);
/* PCR8 of a PEM certificate file, as `nitro-cli pcr --signing-certificate`. */
int eif_pcr8_of_certificate_file(const char *pem_path, uint8_t out[48], struct err **err);

/* ---------------------------------------------------------------- writing */
struct eif_build_spec {
	const char *kernel_path;
	const char *cmdline; /* written without a terminating NUL */
	const char *const *ramdisk_paths; /* in order; the first is the bootstrap ramdisk */
	size_t n_ramdisks;                /* >= 1 */
	uint16_t flags;                   /* EIF_FLAG_ARCH_AARCH64 or 0 */
	const struct eif_identity *identity;
	const struct eif_signer *signer; /* NULL: unsigned */
	enum eif_hash_alg alg;           /* measurement hash; signing needs SHA-384 */
	/* NULL, or the PCR2 the application ramdisks must give (one measured when a cached ramdisk
	 * was made): a different one refuses the EIF before it is put in place. */
	const uint8_t *expect_pcr2;
};
/* Writes the EIF atomically (temp file, fsync, rename) and measures it in the
 * same pass, reading each input once. */
int eif_build(const char *output_path, const struct eif_build_spec *spec, struct eif_measurements *out,
	      struct err **err);
/* Signs an existing EIF, replacing any signature, atomically in place. */
int eif_sign_file(const char *path, const struct eif_signer *signer, struct eif_measurements *out,
		  struct err **err);

/* ---------------------------------------------------------------- memory */
/* Enclave memory an EIF needs to boot and start its app, in MiB (docs/builder.md#enclave-memory):
 * the kernel image once, the ramdisks twice (the cpio in memory and its files unpacked into the
 * root's tmpfs at the same time), rounded up, plus EIF_MEMORY_MARGIN_MIB for the running kernel,
 * odyn and the app. `enclaver build` warns and `enclaver run` refuses below it. */
#define EIF_MEMORY_MARGIN_MIB 128
uint64_t eif_memory_needed_mib(uint64_t kernel_bytes, uint64_t ramdisk_bytes);
/* The same from an EIF's section table (reads the headers only). */
int eif_file_memory_needed_mib(const char *path, uint64_t *out, struct err **err);

/* ---------------------------------------------------------------- reading */
struct eif_section {
	uint16_t type;
	uint16_t flags;
	uint64_t offset; /* file offset of the 12-byte section header */
	uint64_t size;   /* payload size */
};

struct eif_image {
	uint16_t version;
	uint16_t flags;
	uint64_t default_mem;
	uint64_t default_cpus;
	uint16_t num_sections;
	struct eif_section sections[EIF_MAX_SECTIONS];
	uint64_t file_size;
	uint32_t crc_stored;
	uint32_t crc_computed;
	struct eif_measurements measurements; /* SHA-384, recomputed from the sections */
	json_t *metadata;                     /* the parsed metadata section, or NULL */
	/* Signature section, when present. */
	bool is_signed;
	bool signature_ok;       /* the COSE signature verifies and signs this PCR0 */
	char *signature_problem; /* why signature_ok is false, or NULL */
	char *cert_pem;          /* the signing certificate as stored (PEM) */
	size_t cert_pem_len;
};
/* Reads and validates an EIF: structure errors fail with the offset; a CRC
 * or signature mismatch is reported in the result, not as a failure. */
int eif_image_read(const char *path, struct eif_image **out, struct err **err);
void eif_image_free(struct eif_image *img);
/* What `nitro-cli describe-eif` prints, as a JSON tree in its key order. */
int eif_image_describe(const struct eif_image *img, json_t **out, struct err **err);
/* eif_memory_needed_mib from an image already read. */
uint64_t eif_image_memory_needed_mib(const struct eif_image *img);

/* ---------------------------------------------------------------- expected measurements
 * What an EIF should measure, from a JSON file: `enclaver build`'s report or describe-eif's output
 * (both have "Measurements"), or a bare {"PCR0": hex, ...} object; in the order PCR0, PCR1, PCR2,
 * PCR8. --verify-before-run and verify-attestation --pcrs-from read it. */
#define EIF_EXPECTED_PCRS 4
extern const char *const eif_expected_names[EIF_EXPECTED_PCRS]; /* "PCR0" ... "PCR8" */
extern const int eif_expected_index[EIF_EXPECTED_PCRS];          /* 0, 1, 2, 8 */
struct eif_expected {
	bool has[EIF_EXPECTED_PCRS];
	uint8_t pcr[EIF_EXPECTED_PCRS][48];
};
/* Unknown keys, malformed values and a file without any PCR are errors; `option` starts every
 * message. */
int eif_expected_load(const char *json_path, const char *option, struct eif_expected *out, struct err **err);
/* Every PCR `want` has must equal the measured one (PCR8 absent: the EIF is unsigned); the error
 * (EPERM) names each one that differs with both values. */
int eif_expected_check(const struct eif_measurements *m, const struct eif_expected *want, struct err **err);
/* The expectation that an EIF measures exactly m (PCR0, 1, 2, and PCR8 when m has one). */
void eif_expected_from(const struct eif_measurements *m, struct eif_expected *out);

#endif
