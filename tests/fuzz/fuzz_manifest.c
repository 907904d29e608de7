/* fuzz_manifest: enclaver.yaml parser on arbitrary bytes: it must fail cleanly
 * or succeed, never crash, leak or read out of bounds. */
#include "builder/builder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	log_set_level(LOG_ERROR);
	struct bld_manifest *m = NULL;
	struct err *e = NULL;
	if (bld_manifest_parse("fuzz.yaml", ".", (const char *)data, size, &m, &e) == 0)
		bld_manifest_free(m);
	else
		err_free(&e);
	return 0;
}
