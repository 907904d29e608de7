/* fuzz_detached_signature: libFuzzer target for `eif sign --signature FILE`'s parser (DER
 * ECDSA-Sig-Value or raw r || s, from an external signer) and the COSE_Sign1 made from it. */
#include "keys/internal.h"
#include "common/cose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf der = {0}, cose = {0};
	struct err *err = NULL;
	static const uint8_t payload[] = "payload";
	struct cose_alg alg = {COSE_ES384, "ES384", EVP_sha384, 48};
	if (keys_detached_parse(data, size, &der, &err) == 0)
		cose_sign1_assemble(&alg, payload, sizeof(payload), (uint8_t *)der.data, der.len, &cose, &err);
	err_free(&err);
	buf_free(&der);
	buf_free(&cose);
	return 0;
}
