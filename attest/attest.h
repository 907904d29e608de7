/* attest: Nitro Enclaves attestation documents, checked from outside the
 * enclave: structure, certificate chain to a trusted root, COSE signature,
 * expected PCRs and nonce (what `enclaver verify-attestation` runs). */
#ifndef ENCLAVER_ATTEST_H
#define ENCLAVER_ATTEST_H

#include "common/common.h"
#include "common/json.h"

#define ATTEST_MAX_PCRS 32

/* The document's payload (AWS's AttestationDocument), parsed and checked for
 * the types and sizes the NSM guarantees. Byte fields are owned copies. */
struct attest_doc {
	char *module_id;
	char *digest; /* "SHA384" */
	uint64_t timestamp_ms;
	bool pcr_present[ATTEST_MAX_PCRS];
	uint8_t pcr[ATTEST_MAX_PCRS][64];
	size_t pcr_len[ATTEST_MAX_PCRS];
	uint8_t *certificate; /* DER */
	size_t certificate_len;
	uint8_t **cabundle; /* DER each; [0] is the root */
	size_t *cabundle_len;
	size_t n_cabundle;
	uint8_t *public_key, *user_data, *nonce; /* NULL when absent or null */
	size_t public_key_len, user_data_len, nonce_len;
};

/* What the caller expects; every field is optional. */
struct attest_expect {
	const uint8_t *pcr[ATTEST_MAX_PCRS]; /* NULL: not checked */
	size_t pcr_len[ATTEST_MAX_PCRS];
	const uint8_t *nonce;
	size_t nonce_len;
	const char *root_pem_path; /* NULL: the AWS Nitro Enclaves root (G1) */
	int64_t at_time;           /* check validity at this time (s); 0: the document's timestamp */
	/* Skip the certificate chain and the COSE signature (verify-attestation
	 * --insecure-skip-signature): only for documents that carry none, such as
	 * those of QEMU's emulated NSM. The verdict then proves nothing about origin. */
	bool skip_signature;
};

/* Each check's outcome; `problem` says why the first failing one failed.
 * With expect->skip_signature, chain and signature are not run (`skipped`)
 * and `valid` says only that the checks that ran passed. */
struct attest_verdict {
	bool structure, chain, signature, pcrs, nonce;
	bool skipped; /* chain and signature not checked */
	bool valid;   /* all of them */
	char *problem;
	struct attest_doc *doc; /* NULL when the structure could not be read */
};

/* Verifies a document. Returns 0 whenever a verdict was reached (valid or
 * not: read verdict->valid), -1 only on a failure to check at all. */
int attest_verify(const uint8_t *data, size_t len, const struct attest_expect *expect, struct attest_verdict *verdict,
		  struct err **err);
void attest_verdict_free(struct attest_verdict *v);
/* The verdict as JSON for the CLI. */
json_t *attest_verdict_json(const struct attest_verdict *v);
/* Parses a document's payload (the COSE payload); caller frees with attest_doc_free. */
int attest_doc_parse(const uint8_t *data, size_t len, struct attest_doc **out, struct err **err);
void attest_doc_free(struct attest_doc *doc);

/* The AWS Nitro Enclaves root certificate (G1), PEM. */
extern const char attest_aws_nitro_root_pem[];

#endif
