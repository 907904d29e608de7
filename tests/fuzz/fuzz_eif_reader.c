/* fuzz_eif_reader: libFuzzer target for the whole EIF reader (header,
 * section walk, metadata JSON, signature CBOR, COSE, certificate), fed
 * through an in-memory file so the real file-based code path runs. */
#include <sys/mman.h>

#include "eif/eif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("eif", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (io_write_full(fd, data, size, NULL) == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		struct eif_image *img = NULL;
		struct err *e = NULL;
		if (eif_image_read(path, &img, &e) == 0) {
			json_t *doc = NULL;
			if (eif_image_describe(img, &doc, &e) == 0) {
				struct buf b = {0};
				json_serde_write(&b, doc, JSON_SERDE_PRETTY, NULL);
				buf_free(&b);
				json_decref(doc);
			}
			eif_image_free(img);
		}
		err_free(&e);
	}
	close(fd);
	return 0;
}
