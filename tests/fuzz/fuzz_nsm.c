/* fuzz_nsm: libFuzzer target for the NSM response decoder (odyn/nsm.c), which
 * reads whatever the device (or a compromised stand-in) answers. */
#include "odyn/odyn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nsm_response r;
	struct err *e = NULL;
	if (nsm_response_parse(data, size, &r, &e) == 0) {
		/* Whatever the decoder hands out must lie inside the input. */
		if (r.data && (r.data < data || r.data + r.len > data + size))
			__builtin_trap();
	}
	err_free(&e);
	return 0;
}
