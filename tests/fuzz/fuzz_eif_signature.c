/* fuzz_eif_signature: libFuzzer target for the signature section decoder
 * (serde_cbor layout, COSE_Sign1, certificate) and the verifier, directly,
 * so the fuzzer spends its time in the CBOR rather than the file walk. */
#include "eif/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eif_signature_section sig;
	struct err *e = NULL;
	static const uint8_t pcr0[48];
	if (eif_signature_section_decode(data, size, 0, &sig, &e) == 0) {
		eif_signature_verify(&sig, pcr0, &e);
		eif_signature_section_free(&sig);
	}
	err_free(&e);
	return 0;
}
