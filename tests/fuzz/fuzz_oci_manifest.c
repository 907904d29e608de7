/* fuzz_oci_manifest: manifest/index parsing and platform selection on
 * arbitrary bytes: errors, never crashes or leaks. */
#include "oci/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oci_manifest m;
	struct err *e = NULL;
	if (oci_manifest_parse((const char *)data, size, NULL, &m, &e) == 0) {
		if (m.kind == OCI_KIND_INDEX) {
			struct oci_platform p;
			oci_platform_host(&p);
			const struct oci_desc *d;
			(void)oci_index_select(&m, &p, &d, &e);
			oci_platform_free(&p);
		}
		oci_manifest_free(&m);
	}
	err_free(&e);
	return 0;
}
