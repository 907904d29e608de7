/* fuzz_simple_signing: libFuzzer target for the simple-signing payload reader (`enclaver verify`
 * reads it from a registry's signature layer). */
#include "builder/builder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bld_simple_signing p;
	struct err *err = NULL;
	if (bld_simple_signing_parse(data, size, &p, &err) == 0)
		bld_simple_signing_free(&p);
	err_free(&err);
	return 0;
}
