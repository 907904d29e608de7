/* eif/internal.h: pieces shared by the EIF writer, reader and signer; not
 * part of the module's API. */
#ifndef ENCLAVER_EIF_INTERNAL_H
#define ENCLAVER_EIF_INTERNAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "eif/eif.h"

/* Copy buffer for streaming sections: large enough to amortise syscalls,
 * small enough to stay in L2 next to the hash state. */
#define EIF_IO_CHUNK (1u << 20)
/* Caps on the sections read into memory. */
#define EIF_MAX_METADATA_SIZE (1u << 20)
#define EIF_MAX_SIGNATURE_SIZE (1u << 20)

static inline void put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static inline void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}
static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get_be32(const uint8_t *p) { return (uint32_t)get_be16(p) << 16 | get_be16(p + 2); }
static inline uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }

/* ---------------------------------------------------------------- header */
struct eif_header {
	uint16_t version, flags;
	uint64_t default_mem, default_cpus;
	uint16_t num_sections;
	uint64_t offsets[EIF_MAX_SECTIONS];
	uint64_t sizes[EIF_MAX_SECTIONS];
	uint32_t crc;
};
void eif_header_encode(const struct eif_header *h, uint8_t out[EIF_HEADER_SIZE]);
/* Checks the magic; everything else is the caller's to validate. */
int eif_header_decode(const uint8_t in[EIF_HEADER_SIZE], struct eif_header *h, struct err **err);
void eif_section_header_encode(uint16_t type, uint64_t size, uint8_t out[EIF_SECTION_HEADER_SIZE]);
/* CRC over header[0:544] followed by `body_len` bytes whose CRC is body_crc. */
uint32_t eif_crc_combine_header(const uint8_t header[EIF_HEADER_SIZE], uint32_t body_crc, uint64_t body_len);

/* ---------------------------------------------------------------- PCRs
 * Feeds section payloads in file order: boot data (kernel, cmdline, first
 * ramdisk) goes to PCR0 and PCR1, app ramdisks to PCR0 and PCR2. PCR1's input
 * is a prefix of PCR0's, so PCR1 is a copy of PCR0's state taken at the end of
 * the boot data rather than a second hash of the same bytes. */
struct eif_pcr_state {
	enum eif_hash_alg alg;
	EVP_MD_CTX *image; /* PCR0 */
	EVP_MD_CTX *boot;  /* PCR1, NULL until eif_pcr_end_boot */
	EVP_MD_CTX *app;   /* PCR2 */
};
int eif_pcr_init(struct eif_pcr_state *s, enum eif_hash_alg alg, struct err **err);
int eif_pcr_feed_boot(struct eif_pcr_state *s, const void *data, size_t len, struct err **err);
int eif_pcr_end_boot(struct eif_pcr_state *s, struct err **err);
int eif_pcr_feed_app(struct eif_pcr_state *s, const void *data, size_t len, struct err **err);
/* The two halves of eif_pcr_feed_app (PCR0's and PCR2's), which touch disjoint state: two
 * threads may run them at once on the same data. */
int eif_pcr_feed_app_image(struct eif_pcr_state *s, const void *data, size_t len, struct err **err);
int eif_pcr_feed_app_pcr2(struct eif_pcr_state *s, const void *data, size_t len, struct err **err);
/* cert_der may be NULL (unsigned). Frees the state. */
int eif_pcr_finish(struct eif_pcr_state *s, const uint8_t *cert_der, size_t cert_len, struct eif_measurements *out,
		   struct err **err);
void eif_pcr_free(struct eif_pcr_state *s);
const EVP_MD *eif_hash_md(enum eif_hash_alg alg);

/* Worker threads that feed section data to a PCR state while the caller
 * does the I/O (one for PCR0/PCR1, one for PCR2: app data is hashed twice). Take a buffer (`chunk` bytes; blocks while all are in
 * flight), fill it, submit it; or release it unsubmitted. Submissions are
 * hashed in order; drain waits for all of them and returns the first error. */
enum eif_pipe_op { EIF_PIPE_BOOT, EIF_PIPE_APP, EIF_PIPE_END_BOOT };
struct eif_hash_pipe;
int eif_hash_pipe_start(struct eif_hash_pipe **out, struct eif_pcr_state *pcr, size_t chunk, struct err **err);
uint8_t *eif_hash_pipe_buffer(struct eif_hash_pipe *p);
void eif_hash_pipe_submit(struct eif_hash_pipe *p, uint8_t *buffer, size_t len, enum eif_pipe_op op);
void eif_hash_pipe_release(struct eif_hash_pipe *p, uint8_t *buffer);
int eif_hash_pipe_drain(struct eif_hash_pipe *p, struct err **err);
/* Stops the threads (after the queued work) and frees everything. */
void eif_hash_pipe_stop(struct eif_hash_pipe *p);

/* ---------------------------------------------------------------- signature */
/* The signature section payload for a PCR0 (48 bytes, SHA-384). */
int eif_signature_section_encode(const struct eif_signer *s, const uint8_t pcr0[48], struct buf *out,
				 struct err **err);
/* Parsed signature section: certificate (PEM as stored, and DER) and the
 * COSE_Sign1 bytes. */
struct eif_signature_section {
	uint8_t *cert_pem;
	size_t cert_pem_len;
	uint8_t *cose;
	size_t cose_len;
	uint8_t *cert_der;
	size_t cert_der_len;
};
int eif_signature_section_decode(const uint8_t *data, size_t len, uint64_t file_off, struct eif_signature_section *out,
				 struct err **err);
void eif_signature_section_free(struct eif_signature_section *s);
/* Verifies the COSE_Sign1 against the certificate and checks that it signs
 * PcrInfo{0, pcr0}. Returns 0 when valid; -1 with the reason otherwise. */
int eif_signature_verify(const struct eif_signature_section *s, const uint8_t pcr0[48], struct err **err);
/* PEM text -> certificate DER (caller frees *der with OPENSSL_free). */
int eif_cert_pem_to_der(const uint8_t *pem, size_t len, uint8_t **der, size_t *der_len, struct err **err);
/* The signer's certificate DER (borrowed). */
void eif_signer_cert_der(const struct eif_signer *s, const uint8_t **der, size_t *len);


/* ---------------------------------------------------------------- layout
 * Validates the header and walks the section headers in file order, checking
 * each against the header's table and the file size; reads no payload. */
int eif_scan_layout(int fd, uint64_t file_size, struct eif_header *h, struct eif_section *sections, struct err **err);

#endif
