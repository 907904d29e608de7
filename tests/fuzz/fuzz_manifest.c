/* fuzz_manifest: enclaver.yaml parser on arbitrary bytes: it must fail cleanly
 * or succeed, never crash, leak or read out of bounds. */
#include "manifest/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	log_set_level(LOG_ERROR);
	struct manifest *m = NULL;
	struct err *e = NULL;
	if (manifest_parse("fuzz.yaml", ".", (const char *)data, size, &m, &e) == 0)
		manifest_free(m);
	else
		err_free(&e);
	return 0;
}
