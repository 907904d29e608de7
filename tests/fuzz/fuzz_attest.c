/* fuzz_attest: libFuzzer target for attestation document verification
 * (COSE_Sign1, the payload map, certificates) on untrusted bytes. */
#include "attest/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct attest_expect expect = {0};
	uint8_t pcr0[48] = {0};
	expect.pcr[0] = pcr0;
	expect.pcr_len[0] = sizeof(pcr0);
	struct attest_verdict v;
	if (attest_verify(data, size, &expect, &v, NULL) == 0) {
		json_t *j = attest_verdict_json(&v);
		json_decref(j);
		attest_verdict_free(&v);
	}
	return 0;
}
