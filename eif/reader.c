/* reader: validates an EIF from outside (every size and offset checked
 * against the file before use), recomputes its CRC and PCRs from the
 * sections in file order (hashing on a worker thread, as the writer does),
 * and checks its signature. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "eif/internal.h"

typedef unsigned long long ull;

int eif_scan_layout(int fd, uint64_t file_size, struct eif_header *h, struct eif_section *secs, struct err **err)
{
	uint8_t raw[EIF_HEADER_SIZE];
	if (file_size < EIF_HEADER_SIZE)
		return err_set(err, EINVAL, "truncated: %llu bytes, shorter than the %d-byte EIF header", (ull)file_size,
			       EIF_HEADER_SIZE);
	ssize_t got = io_pread_full(fd, raw, sizeof(raw), 0, err);
	if (got < 0)
		return -1;
	if (got != EIF_HEADER_SIZE)
		return err_set(err, EINVAL, "truncated while reading the header");
	if (eif_header_decode(raw, h, err) < 0)
		return -1;
	if (h->version != EIF_VERSION)
		return err_set(err, EINVAL, "offset 4: EIF version %u is not supported (version %d expected)", h->version,
			       EIF_VERSION);
	if (h->num_sections == 0 || h->num_sections > EIF_MAX_SECTIONS)
		return err_set(err, EINVAL, "offset 26: num_sections is %u, expected 1 to %d", h->num_sections,
			       EIF_MAX_SECTIONS);
	uint64_t pos = EIF_HEADER_SIZE;
	int kernels = 0, cmdlines = 0, ramdisks = 0, metadatas = 0, signatures = 0;
	for (int i = 0; i < h->num_sections; i++) {
		/* Sections follow each other back to back from the header on; the
		 * table must agree with that walk, which rules out overlaps and gaps. */
		if (h->offsets[i] != pos) {
			if (h->offsets[i] < pos && i > 0)
				return err_set(err, EINVAL,
					       "offset %d: section %d starts at %llu, overlapping section %d which ends at %llu",
					       28 + 8 * i, i, (ull)h->offsets[i], i - 1, (ull)pos);
			return err_set(err, EINVAL, "offset %d: section %d is at %llu in the table but at %llu in the file",
				       28 + 8 * i, i, (ull)h->offsets[i], (ull)pos);
		}
		if (file_size - pos < EIF_SECTION_HEADER_SIZE)
			return err_set(err, EINVAL, "offset %llu: section %d header runs past the end of the file (%llu bytes)",
				       (ull)pos, i, (ull)file_size);
		uint8_t sh[EIF_SECTION_HEADER_SIZE];
		ssize_t n = io_pread_full(fd, sh, sizeof(sh), (off_t)pos, err);
		if (n < 0)
			return -1;
		if (n != (ssize_t)sizeof(sh))
			return err_set(err, EIO, "offset %llu: file shrank while being read", (ull)pos);
		struct eif_section *s = &secs[i];
		s->type = get_be16(sh);
		s->flags = get_be16(sh + 2);
		s->size = get_be64(sh + 4);
		s->offset = pos;
		if (s->type == EIF_SECTION_INVALID || s->type > EIF_SECTION_METADATA)
			return err_set(err, EINVAL, "offset %llu: section %d has unknown type %u", (ull)pos, i, s->type);
		if (s->size > file_size - pos - EIF_SECTION_HEADER_SIZE)
			return err_set(err, EINVAL,
				       "offset %llu: section %d (%s) of %llu bytes runs past the end of the file (%llu bytes)",
				       (ull)pos, i, eif_section_type_name(s->type), (ull)s->size, (ull)file_size);
		if (h->sizes[i] != s->size)
			return err_set(err, EINVAL, "offset %d: section %d (%s) is %llu bytes in the table but %llu in its header",
				       284 + 8 * i, i, eif_section_type_name(s->type), (ull)h->sizes[i], (ull)s->size);
		switch (s->type) {
		case EIF_SECTION_KERNEL: kernels++; break;
		case EIF_SECTION_CMDLINE: cmdlines++; break;
		case EIF_SECTION_METADATA: metadatas++; break;
		case EIF_SECTION_SIGNATURE: signatures++; break;
		case EIF_SECTION_RAMDISK:
			/* PCR1 covers kernel, cmdline and the first ramdisk, in that order. */
			if (kernels == 0 || cmdlines == 0)
				return err_set(err, EINVAL, "offset %llu: ramdisk before the kernel and cmdline sections",
					       (ull)pos);
			ramdisks++;
			break;
		}
		pos += EIF_SECTION_HEADER_SIZE + s->size;
	}
	if (pos != file_size)
		return err_set(err, EINVAL, "offset %llu: %llu bytes after the last section", (ull)pos, (ull)(file_size - pos));
	if (kernels != 1 || cmdlines != 1 || ramdisks == 0 || metadatas > 1 || signatures > 1)
		return err_set(err, EINVAL,
			       "sections: %d kernel, %d cmdline, %d ramdisk, %d metadata, %d signature (expected 1, 1, "
			       "at least 1, at most 1, at most 1)",
			       kernels, cmdlines, ramdisks, metadatas, signatures);
	return 0;
}

/* Reads a small section whole (metadata, signature). */
static int read_small_section(int fd, const struct eif_section *s, uint32_t max, uint8_t **out, struct err **err)
{
	if (s->size > max)
		return err_set(err, EFBIG, "offset %llu: %s section of %llu bytes exceeds the %u-byte limit", (ull)s->offset,
			       eif_section_type_name(s->type), (ull)s->size, max);
	_cleanup_free_ uint8_t *data = xmalloc((size_t)s->size + 1);
	ssize_t got = io_pread_full(fd, data, (size_t)s->size, (off_t)(s->offset + EIF_SECTION_HEADER_SIZE), err);
	if (got < 0)
		return -1;
	if ((uint64_t)got != s->size)
		return err_set(err, EIO, "offset %llu: file shrank while being read", (ull)s->offset);
	data[s->size] = 0;
	*out = steal_pointer(&data);
	return 0;
}

static int parse_metadata(const uint8_t *data, const struct eif_section *s, json_t **out, struct err **err)
{
	json_error_t jerr;
	json_t *doc = json_loadb((const char *)data, (size_t)s->size, JSON_REJECT_DUPLICATES, &jerr);
	uint64_t at = s->offset + EIF_SECTION_HEADER_SIZE;
	if (doc == NULL)
		return err_set(err, EINVAL, "offset %llu: metadata is not valid JSON (byte %d: %s)",
			       (ull)(at + (uint64_t)(jerr.position > 0 ? jerr.position : 0)), jerr.position, jerr.text);
	const json_t *build = json_object_get(doc, "BuildMetadata");
	static const char *const fields[] = {"ImageName", "ImageVersion"};
	static const char *const build_fields[] = {"BuildTime", "BuildTool", "BuildToolVersion", "OperatingSystem",
						   "KernelVersion"};
	bool ok = json_is_object(doc) && json_is_object(build) && json_object_get(doc, "DockerInfo") &&
		  json_object_get(doc, "CustomMetadata");
	for (size_t i = 0; ok && i < 2; i++)
		ok = json_is_string(json_object_get(doc, fields[i]));
	for (size_t i = 0; ok && i < 5; i++)
		ok = json_is_string(json_object_get(build, build_fields[i]));
	if (!ok) {
		json_decref(doc);
		return err_set(err, EINVAL, "offset %llu: metadata lacks the fields of EIF v4 identity information",
			       (ull)at);
	}
	*out = doc;
	return 0;
}

int eif_image_read(const char *path, struct eif_image **out, struct err **err)
{
	uint64_t file_size;
	_cleanup_close_ int fd = io_open_regular(path, &file_size, err);
	if (fd < 0)
		return -1;

	struct eif_header h;
	struct eif_image *img = xcalloc(1, sizeof(*img));
	struct eif_pcr_state pcr = {0};
	struct eif_signature_section sig = {0};
	struct eif_hash_pipe *pipe = NULL;
	int r = -1;
	if (eif_scan_layout(fd, file_size, &h, img->sections, err) < 0)
		goto done;
	img->version = h.version;
	img->flags = h.flags;
	img->default_mem = h.default_mem;
	img->default_cpus = h.default_cpus;
	img->num_sections = h.num_sections;
	img->file_size = file_size;
	img->crc_stored = h.crc;

	uint8_t raw[EIF_HEADER_SIZE];
	if (io_pread_full(fd, raw, sizeof(raw), 0, err) < 0)
		goto done;
	uint32_t crc = (uint32_t)crc32(0L, raw, 544);
	if (eif_pcr_init(&pcr, EIF_HASH_SHA384, err) < 0)
		goto done;
	/* Buffers no larger than the file needs: small images stay cheap. */
	uint64_t chunk = img->file_size < EIF_IO_CHUNK ? img->file_size : EIF_IO_CHUNK;
	if (eif_hash_pipe_start(&pipe, &pcr, (size_t)chunk, err) < 0)
		goto done;
	bool boot_ended = false;
	for (int i = 0; i < h.num_sections; i++) {
		const struct eif_section *s = &img->sections[i];
		uint8_t sh[EIF_SECTION_HEADER_SIZE];
		eif_section_header_encode(s->type, s->size, sh);
		put_be16(sh + 2, s->flags);
		crc = (uint32_t)crc32(crc, sh, sizeof(sh));
		if (s->type == EIF_SECTION_METADATA || s->type == EIF_SECTION_SIGNATURE) {
			_cleanup_free_ uint8_t *data = NULL;
			uint32_t max = s->type == EIF_SECTION_METADATA ? EIF_MAX_METADATA_SIZE : EIF_MAX_SIGNATURE_SIZE;
			if (read_small_section(fd, s, max, &data, err) < 0)
				goto done;
			crc = (uint32_t)crc32_z(crc, data, (size_t)s->size);
			if (s->type == EIF_SECTION_METADATA) {
				if (parse_metadata(data, s, &img->metadata, err) < 0)
					goto done;
			} else if (eif_signature_section_decode(data, (size_t)s->size, s->offset + EIF_SECTION_HEADER_SIZE, &sig,
								err) < 0) {
				goto done;
			}
			continue;
		}
		enum eif_pipe_op op = s->type != EIF_SECTION_RAMDISK || !boot_ended ? EIF_PIPE_BOOT : EIF_PIPE_APP;
		for (uint64_t done = 0; done < s->size;) {
			size_t want = s->size - done < chunk ? (size_t)(s->size - done) : (size_t)chunk;
			uint64_t at = s->offset + EIF_SECTION_HEADER_SIZE + done;
			uint8_t *b = eif_hash_pipe_buffer(pipe);
			ssize_t got = io_pread_full(fd, b, want, (off_t)at, err);
			if (got < 0 || (size_t)got != want) {
				eif_hash_pipe_release(pipe, b);
				if (got >= 0)
					err_set(err, EIO, "offset %llu: file shrank while being read", (ull)at);
				goto done;
			}
			crc = (uint32_t)crc32_z(crc, b, want);
			eif_hash_pipe_submit(pipe, b, want, op);
			done += want;
		}
		if (s->type == EIF_SECTION_RAMDISK && !boot_ended) {
			eif_hash_pipe_submit(pipe, NULL, 0, EIF_PIPE_END_BOOT);
			boot_ended = true;
		}
	}
	if (eif_hash_pipe_drain(pipe, err) < 0)
		goto done;
	img->crc_computed = crc;
	if (eif_pcr_finish(&pcr, sig.cert_der, sig.cert_der_len, &img->measurements, err) < 0)
		goto done;
	if (sig.cose != NULL) {
		struct err *why = NULL;
		img->is_signed = true;
		img->signature_ok = eif_signature_verify(&sig, img->measurements.pcr0, &why) == 0;
		if (why) {
			img->signature_problem = xstrdup(why->msg);
			err_free(&why);
		}
		img->cert_pem = (char *)steal_pointer(&sig.cert_pem);
		img->cert_pem_len = sig.cert_pem_len;
	}
	*out = steal_pointer(&img);
	r = 0;
done:
	eif_hash_pipe_stop(pipe);
	eif_pcr_free(&pcr);
	eif_signature_section_free(&sig);
	eif_image_free(img);
	if (r < 0)
		err_wrap(err, "%s", path);
	return r;
}

void eif_image_free(struct eif_image *img)
{
	if (img == NULL)
		return;
	json_decref(img->metadata);
	free(img->signature_problem);
	free(img->cert_pem);
	free(img);
}
