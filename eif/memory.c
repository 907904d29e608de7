/* memory: how much enclave memory an EIF needs to boot, from its section sizes; the one formula
 * `enclaver build` warns with and `enclaver run` refuses with (docs/builder.md#enclave-memory). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "eif/internal.h"

#define MIB (1024ull * 1024ull)

uint64_t eif_memory_needed_mib(uint64_t kernel_bytes, uint64_t ramdisk_bytes)
{
	/* While the kernel unpacks the initramfs, each ramdisk's cpio is still in memory and its files
	 * are already in the root's tmpfs: the ramdisks count twice. The kernel image counts once; its
	 * own working memory, odyn and the app are the fixed margin. */
	uint64_t bytes = kernel_bytes + 2 * ramdisk_bytes;
	return (bytes + MIB - 1) / MIB + EIF_MEMORY_MARGIN_MIB;
}

static uint64_t needed_from_sections(const struct eif_section *secs, unsigned n)
{
	uint64_t kernel = 0, ramdisks = 0;
	for (unsigned i = 0; i < n; i++) {
		if (secs[i].type == EIF_SECTION_KERNEL)
			kernel += secs[i].size;
		else if (secs[i].type == EIF_SECTION_RAMDISK)
			ramdisks += secs[i].size;
	}
	return eif_memory_needed_mib(kernel, ramdisks);
}

uint64_t eif_image_memory_needed_mib(const struct eif_image *img)
{
	return needed_from_sections(img->sections, img->num_sections);
}

int eif_file_memory_needed_mib(const char *path, uint64_t *out, struct err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(err, "%s", path);
	struct eif_header h;
	struct eif_section secs[EIF_MAX_SECTIONS];
	if (eif_scan_layout(fd, (uint64_t)st.st_size, &h, secs, err) < 0)
		return err_wrap(err, "%s", path);
	*out = needed_from_sections(secs, h.num_sections);
	return 0;
}
