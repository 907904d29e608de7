/* format: the EIF header and section header byte layouts (all big-endian,
 * no padding) and the file CRC, per docs/eif-format.md. */
#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "eif/internal.h"

const char *eif_section_type_name(uint16_t type)
{
	switch (type) {
	case EIF_SECTION_KERNEL: return "kernel";
	case EIF_SECTION_CMDLINE: return "cmdline";
	case EIF_SECTION_RAMDISK: return "ramdisk";
	case EIF_SECTION_SIGNATURE: return "signature";
	case EIF_SECTION_METADATA: return "metadata";
	default: return "invalid";
	}
}

void eif_header_encode(const struct eif_header *h, uint8_t out[EIF_HEADER_SIZE])
{
	memset(out, 0, EIF_HEADER_SIZE);
	memcpy(out, EIF_MAGIC, 4);
	put_be16(out + 4, h->version);
	put_be16(out + 6, h->flags);
	put_be64(out + 8, h->default_mem);
	put_be64(out + 16, h->default_cpus);
	/* 24: two reserved bytes stay zero */
	put_be16(out + 26, h->num_sections);
	for (int i = 0; i < EIF_MAX_SECTIONS; i++) {
		put_be64(out + 28 + 8 * i, h->offsets[i]);
		put_be64(out + 284 + 8 * i, h->sizes[i]);
	}
	/* 540: four unused bytes stay zero */
	put_be32(out + 544, h->crc);
}

int eif_header_decode(const uint8_t in[EIF_HEADER_SIZE], struct eif_header *h, struct err **err)
{
	if (memcmp(in, EIF_MAGIC, 4) != 0)
		return err_set(err, EINVAL, "offset 0: bad magic %02x %02x %02x %02x (expected 2e 65 69 66, \".eif\")",
			       in[0], in[1], in[2], in[3]);
	h->version = get_be16(in + 4);
	h->flags = get_be16(in + 6);
	h->default_mem = get_be64(in + 8);
	h->default_cpus = get_be64(in + 16);
	h->num_sections = get_be16(in + 26);
	for (int i = 0; i < EIF_MAX_SECTIONS; i++) {
		h->offsets[i] = get_be64(in + 28 + 8 * i);
		h->sizes[i] = get_be64(in + 284 + 8 * i);
	}
	h->crc = get_be32(in + 544);
	return 0;
}

void eif_section_header_encode(uint16_t type, uint64_t size, uint8_t out[EIF_SECTION_HEADER_SIZE])
{
	put_be16(out, type);
	put_be16(out + 2, 0);
	put_be64(out + 4, size);
}

uint32_t eif_crc_combine_header(const uint8_t header[EIF_HEADER_SIZE], uint32_t body_crc, uint64_t body_len)
{
	/* The CRC covers header[0:544] then the rest of the file: the CRC field
	 * itself (544..548) is the only gap. */
	uLong head = crc32(0L, header, 544);
	return (uint32_t)crc32_combine64(head, body_crc, (z_off64_t)body_len);
}
