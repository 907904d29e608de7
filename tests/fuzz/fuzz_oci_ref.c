/* fuzz_oci_ref: image reference parsing never crashes, and whatever it
 * accepts formats to a canonical form that parses back to itself. */
#include <string.h>

#include "oci/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xmalloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	struct oci_ref ref;
	struct err *e = NULL;
	if (oci_ref_parse(text, &ref, &e) == 0) {
		char *canon = oci_ref_format(&ref);
		struct oci_ref again;
		if (oci_ref_parse(canon, &again, &e) != 0)
			abort();
		char *canon2 = oci_ref_format(&again);
		if (strcmp(canon, canon2) != 0)
			abort();
		free(canon2);
		free(canon);
		oci_ref_free(&again);
		oci_ref_free(&ref);
	}
	err_free(&e);
	free(text);
	return 0;
}
