/* writer: builds an EIF in one streaming pass (each input read once into a
 * buffer that is CRC'd and written here while a worker thread hashes it for
 * the PCRs) and re-signs existing ones. Output goes to a temporary file that
 * is renamed into place when complete. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <isa-l/crc.h>
#include <zlib.h>

#include "eif/internal.h"

enum feed { FEED_NONE, FEED_BOOT, FEED_APP };

/* zlib's CRC32 (the EIF's), through ISA-L's carry-less multiply code: about ten times zlib's
 * speed, which keeps the CRC off the critical path of a build. Sections are still combined with
 * zlib's crc32_combine64. (Not used by eif/reader.c, which the static enclaver-run links: Debian
 * ships ISA-L as a shared library only.) */
static uint32_t section_crc(uint32_t crc, const void *data, size_t len)
{
	return crc32_gzip_refl(crc, (const unsigned char *)data, len);
}

struct writer {
	struct atomic_file out;
	uint64_t pos; /* where the next section header goes */
	uint32_t body_crc; /* of everything after the header written so far */
	uint32_t sec_crc;  /* of the section being written, its header included */
	struct eif_header hdr;
	struct eif_pcr_state pcr;
	struct eif_hash_pipe *pipe; /* owns the hashing of pcr until drained */
	bool boot_ended;
};

static int writer_open(struct writer *w, const char *path, uint16_t flags, enum eif_hash_alg alg, struct err **err)
{
	memset(w, 0, sizeof(*w));
	/* An unchanged rebuild leaves the existing EIF as it is (no 1 GB rewrite and fsync). */
	if (atomic_file_open_keep(&w->out, path, 0644, err) < 0)
		return -1;
	if (eif_pcr_init(&w->pcr, alg, err) < 0) {
		atomic_file_abort(&w->out);
		return -1;
	}
	if (eif_hash_pipe_start(&w->pipe, &w->pcr, EIF_IO_CHUNK, err) < 0) {
		eif_pcr_free(&w->pcr);
		atomic_file_abort(&w->out);
		return -1;
	}
	w->pos = EIF_HEADER_SIZE;
	w->hdr.version = EIF_VERSION;
	w->hdr.flags = flags;
	w->hdr.default_mem = EIF_DEFAULT_MEM;
	w->hdr.default_cpus = EIF_DEFAULT_CPUS;
	return 0;
}

static void writer_close(struct writer *w)
{
	atomic_file_abort(&w->out);
	eif_hash_pipe_stop(w->pipe); /* before the state it hashes into goes */
	w->pipe = NULL;
	eif_pcr_free(&w->pcr);
}

/* CRCs a chunk of a pipe buffer here and hands the buffer over to the
 * hashing thread (or back to the pipe when the section is not measured). */
static void writer_feed(struct writer *w, enum feed feed, uint8_t *buf, size_t len)
{
	w->sec_crc = section_crc(w->sec_crc, buf, len);
	if (feed == FEED_NONE)
		eif_hash_pipe_release(w->pipe, buf);
	else
		eif_hash_pipe_submit(w->pipe, buf, len, feed == FEED_BOOT ? EIF_PIPE_BOOT : EIF_PIPE_APP);
}

static int writer_begin_section(struct writer *w, uint16_t type, uint64_t size, struct err **err)
{
	int i = w->hdr.num_sections;
	if (i == EIF_MAX_SECTIONS)
		return err_set(err, E2BIG, "an EIF holds at most %d sections", EIF_MAX_SECTIONS);
	uint8_t sh[EIF_SECTION_HEADER_SIZE];
	eif_section_header_encode(type, size, sh);
	if (atomic_file_pwrite(&w->out, sh, sizeof(sh), w->pos, err) < 0)
		return -1;
	w->sec_crc = section_crc(0, sh, sizeof(sh));
	w->hdr.offsets[i] = w->pos;
	w->hdr.sizes[i] = size;
	w->hdr.num_sections++;
	w->pos += EIF_SECTION_HEADER_SIZE;
	return 0;
}

/* Folds the finished section into the file CRC. Keeping a CRC per section
 * lets eif_sign_file check the old file's CRC without a second read. */
static void writer_end_section(struct writer *w)
{
	uint64_t len = EIF_SECTION_HEADER_SIZE + w->hdr.sizes[w->hdr.num_sections - 1];
	w->body_crc = (uint32_t)crc32_combine64(w->body_crc, w->sec_crc, (z_off64_t)len);
}

static int writer_put_bytes(struct writer *w, uint16_t type, enum feed feed, const void *data, size_t len,
			    struct err **err)
{
	if (writer_begin_section(w, type, len, err) < 0)
		return -1;
	if (atomic_file_pwrite(&w->out, data, len, w->pos, err) < 0)
		return -1;
	w->pos += len;
	if (feed == FEED_NONE) {
		w->sec_crc = section_crc(w->sec_crc, data, len);
	} else {
		for (size_t done = 0; done < len;) {
			size_t n = len - done < EIF_IO_CHUNK ? len - done : EIF_IO_CHUNK;
			uint8_t *b = eif_hash_pipe_buffer(w->pipe);
			memcpy(b, (const uint8_t *)data + done, n);
			writer_feed(w, feed, b, n);
			done += n;
		}
	}
	writer_end_section(w);
	return 0;
}

/* Copies `size` bytes of in_fd from in_off into a new section. */
static int writer_put_fd(struct writer *w, uint16_t type, enum feed feed, int in_fd, uint64_t in_off, uint64_t size,
			 struct err **err)
{
	if (writer_begin_section(w, type, size, err) < 0)
		return -1;
	uint64_t done = 0;
	while (done < size) {
		size_t want = size - done < EIF_IO_CHUNK ? (size_t)(size - done) : EIF_IO_CHUNK;
		uint8_t *b = eif_hash_pipe_buffer(w->pipe);
		ssize_t got = io_pread_full(in_fd, b, want, (off_t)(in_off + done), err);
		if (got < 0 || (size_t)got != want) {
			eif_hash_pipe_release(w->pipe, b);
			if (got < 0)
				return -1;
			return err_set(err, EIO, "file shrank while being read (%llu of %llu bytes)",
				       (unsigned long long)(done + (uint64_t)got), (unsigned long long)size);
		}
		/* Written before it is handed over: the hashing thread may reuse
		 * the buffer as soon as it has hashed it. */
		if (atomic_file_pwrite(&w->out, b, want, w->pos, err) < 0) {
			eif_hash_pipe_release(w->pipe, b);
			return -1;
		}
		writer_feed(w, feed, b, want);
		w->pos += want;
		done += want;
	}
	writer_end_section(w);
	return 0;
}

static int writer_put_file(struct writer *w, uint16_t type, enum feed feed, const char *path, struct err **err)
{
	uint64_t size;
	_cleanup_close_ int fd = io_open_regular(path, &size, err);
	if (fd < 0)
		return -1;
	if (writer_put_fd(w, type, feed, fd, 0, size, err) < 0)
		return err_wrap(err, "%s", path);
	/* A file that grew while we read it would be measured only in part. */
	uint8_t probe;
	ssize_t extra = pread(fd, &probe, 1, (off_t)size);
	if (extra > 0)
		return err_set(err, EIO, "%s: file grew while being read", path);
	return 0;
}

static void writer_end_boot(struct writer *w)
{
	w->boot_ended = true;
	eif_hash_pipe_submit(w->pipe, NULL, 0, EIF_PIPE_END_BOOT);
}

/* Measures, signs when asked, writes the header and renames into place. */
static int writer_finish(struct writer *w, const struct eif_signer *signer, const uint8_t *expect_pcr2,
			 struct eif_measurements *m, struct err **err)
{
	const uint8_t *der = NULL;
	size_t der_len = 0;
	if (signer != NULL)
		eif_signer_cert_der(signer, &der, &der_len);
	if (eif_hash_pipe_drain(w->pipe, err) < 0 || eif_pcr_finish(&w->pcr, der, der_len, m, err) < 0)
		return -1;
	if (expect_pcr2 && memcmp(m->pcr2, expect_pcr2, eif_hash_len(m->alg)) != 0) {
		char got[2 * EIF_PCR_MAX + 1], want[2 * EIF_PCR_MAX + 1];
		hex_encode(m->pcr2, eif_hash_len(m->alg), got);
		hex_encode(expect_pcr2, eif_hash_len(m->alg), want);
		return err_set(err, EBADMSG, "the application ramdisks measure PCR2 %s, not the %s expected", got, want);
	}
	if (signer != NULL) {
		if (m->alg != EIF_HASH_SHA384)
			return err_set(err, EINVAL, "signing needs SHA-384 measurements (PCR0 is what the enclave checks)");
		_cleanup_buf_ struct buf sig = {0};
		if (eif_signature_section_encode(signer, m->pcr0, &sig, err) < 0 ||
		    writer_put_bytes(w, EIF_SECTION_SIGNATURE, FEED_NONE, sig.data, sig.len, err) < 0)
			return err_wrap(err, "signature section");
	}
	uint8_t header[EIF_HEADER_SIZE];
	eif_header_encode(&w->hdr, header);
	w->hdr.crc = eif_crc_combine_header(header, w->body_crc, w->pos - EIF_HEADER_SIZE);
	eif_header_encode(&w->hdr, header);
	if (atomic_file_pwrite(&w->out, header, sizeof(header), 0, err) < 0 || atomic_file_commit(&w->out, err) < 0)
		return -1;
	if (w->out.unchanged)
		log_info("EIF unchanged: the existing file already holds these bytes");
	return 0;
}

int eif_build(const char *output_path, const struct eif_build_spec *spec, struct eif_measurements *out,
	      struct err **err)
{
	if (spec->n_ramdisks == 0)
		return err_set(err, EINVAL, "an EIF needs at least one ramdisk");
	if (3 + spec->n_ramdisks + (spec->signer ? 1 : 0) > EIF_MAX_SECTIONS)
		return err_set(err, E2BIG, "%zu ramdisks: an EIF holds at most %d sections (%d ramdisks)", spec->n_ramdisks,
			       EIF_MAX_SECTIONS, EIF_MAX_SECTIONS - 3 - (spec->signer ? 1 : 0));
	_cleanup_buf_ struct buf meta = {0};
	if (eif_metadata_encode(spec->identity, &meta, err) < 0)
		return -1;
	struct writer w;
	if (writer_open(&w, output_path, spec->flags, spec->alg, err) < 0)
		return err_wrap(err, "write %s", output_path);
	int r = -1;
	if (writer_put_file(&w, EIF_SECTION_KERNEL, FEED_BOOT, spec->kernel_path, err) < 0) {
		err_wrap(err, "kernel");
		goto done;
	}
	if (writer_put_bytes(&w, EIF_SECTION_CMDLINE, FEED_BOOT, spec->cmdline, strlen(spec->cmdline), err) < 0 ||
	    writer_put_bytes(&w, EIF_SECTION_METADATA, FEED_NONE, meta.data, meta.len, err) < 0)
		goto done;
	for (size_t i = 0; i < spec->n_ramdisks; i++) {
		if (writer_put_file(&w, EIF_SECTION_RAMDISK, i == 0 ? FEED_BOOT : FEED_APP, spec->ramdisk_paths[i], err) <
		    0) {
			err_wrap(err, "ramdisk %zu", i + 1);
			goto done;
		}
		if (i == 0)
			writer_end_boot(&w);
	}
	r = writer_finish(&w, spec->signer, spec->expect_pcr2, out, err);
done:
	writer_close(&w);
	if (r < 0)
		err_wrap(err, "write %s", output_path);
	return r;
}

int eif_sign_file(const char *path, const struct eif_signer *signer, struct eif_measurements *out, struct err **err)
{
	uint64_t size;
	_cleanup_close_ int fd = io_open_regular(path, &size, err);
	if (fd < 0)
		return -1;
	struct eif_header h;
	struct eif_section secs[EIF_MAX_SECTIONS];
	if (eif_scan_layout(fd, size, &h, secs, err) < 0)
		return err_wrap(err, "%s", path);
	struct writer w;
	if (writer_open(&w, path, h.flags, EIF_HASH_SHA384, err) < 0)
		return err_wrap(err, "sign %s", path);
	/* The old file's CRC is checked on the way through: re-signing must not
	 * bless an image that was damaged. */
	uint8_t old_header[EIF_HEADER_SIZE];
	uint32_t old_crc = 0;
	int r = -1;
	if (io_pread_full(fd, old_header, sizeof(old_header), 0, err) < 0)
		goto done;
	old_crc = (uint32_t)crc32(0L, old_header, 544);
	w.hdr.default_mem = h.default_mem;
	w.hdr.default_cpus = h.default_cpus;
	w.hdr.version = h.version;
	for (int i = 0; i < h.num_sections; i++) {
		const struct eif_section *s = &secs[i];
		if (s->type == EIF_SECTION_SIGNATURE) {
			/* Read only for the CRC check: it is replaced. */
			uint8_t sh[EIF_SECTION_HEADER_SIZE];
			eif_section_header_encode(s->type, s->size, sh);
			old_crc = (uint32_t)crc32(old_crc, sh, sizeof(sh));
			if (s->size > EIF_MAX_SIGNATURE_SIZE) {
				err_set(err, EFBIG, "offset %llu: signature section larger than %u bytes",
					(unsigned long long)s->offset, EIF_MAX_SIGNATURE_SIZE);
				goto done;
			}
			_cleanup_free_ uint8_t *old = xmalloc(s->size ? (size_t)s->size : 1);
			if (io_pread_full(fd, old, (size_t)s->size, (off_t)(s->offset + EIF_SECTION_HEADER_SIZE), err) < 0)
				goto done;
			old_crc = (uint32_t)crc32_z(old_crc, old, (size_t)s->size);
			continue;
		}
		enum feed feed = FEED_NONE;
		if (s->type == EIF_SECTION_KERNEL || s->type == EIF_SECTION_CMDLINE)
			feed = FEED_BOOT;
		else if (s->type == EIF_SECTION_RAMDISK)
			feed = w.boot_ended ? FEED_APP : FEED_BOOT;
		if (writer_put_fd(&w, s->type, feed, fd, s->offset + EIF_SECTION_HEADER_SIZE, s->size, err) < 0) {
			err_wrap(err, "section %d (%s)", i, eif_section_type_name(s->type));
			goto done;
		}
		if (s->type == EIF_SECTION_RAMDISK && !w.boot_ended)
			writer_end_boot(&w);
		/* The section just copied is byte-identical in the old file. */
		old_crc = (uint32_t)crc32_combine64(old_crc, w.sec_crc, (z_off64_t)(EIF_SECTION_HEADER_SIZE + s->size));
	}
	if (old_crc != h.crc) {
		err_set(err, EINVAL, "CRC mismatch (stored %08x, computed %08x): refusing to sign a damaged image", h.crc,
			old_crc);
		goto done;
	}
	r = writer_finish(&w, signer, NULL, out, err);
done:
	writer_close(&w);
	if (r < 0)
		err_wrap(err, "sign %s", path);
	return r;
}
