/* fuzz_registries_conf: registries.conf parsing never crashes or leaks; what
 * it accepts can be merged as a drop-in, resolves short names, and maps names
 * to endpoints without crashing either. */
#include <string.h>

#include "oci/oci.h"

static void use(const struct oci_registries *c)
{
#define ZEROS64 "0000000000000000000000000000000000000000000000000000000000000000"
	static const char *const refs[] = {"docker://app", "docker://team/app:v1",
	                                   ("docker://x.example/a/b@sha256:" ZEROS64)};
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		struct oci_ref ref;
		struct err *e = NULL;
		if (oci_ref_parse(refs[i], &ref, &e) < 0) {
			err_free(&e);
			continue;
		}
		char **names = NULL, *why = NULL;
		size_t n = 0;
		if (oci_registries_resolve(c, &ref, &names, &n, &why, &e) == 0) {
			for (size_t k = 0; k < n; k++) {
				struct oci_endpoint *eps = NULL;
				size_t n_eps = 0;
				if (oci_registries_endpoints(c, names[k], i == 2, &eps, &n_eps, &e) == 0)
					oci_endpoints_free(eps, n_eps);
				err_free(&e);
				(void)oci_registries_insecure(c, names[k]);
			}
			oci_names_free(names, n);
			free(why);
		}
		err_free(&e);
		oci_ref_free(&ref);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oci_registries c, later;
	struct err *e = NULL;
	if (oci_registries_parse("fuzz.conf", (const char *)data, size, &c, &e) < 0) {
		/* Every refusal names the file. */
		if (e == NULL || strstr(e->msg, "fuzz.conf") == NULL)
			abort();
		err_free(&e);
		return 0;
	}
	use(&c);
	/* The same text as a drop-in over itself. */
	if (oci_registries_parse("fuzz.d/x.conf", (const char *)data, size, &later, &e) == 0) {
		oci_registries_merge(&c, &later);
		use(&c);
	}
	err_free(&e);
	oci_registries_free(&c);
	return 0;
}
