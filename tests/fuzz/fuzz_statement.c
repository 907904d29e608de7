/* fuzz_statement: libFuzzer target for what `enclaver verify-attestation --image` and `enclaver
 * verify` read from a registry: a DSSE envelope (keys/dsse.c), and the in-toto statement inside it
 * (builder/statement.c); the input is tried as both, and the envelope's payload as a statement. */
#include "builder/statement.h"
#include "keys/dsse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err *err = NULL;
	struct dsse_envelope env;
	struct bld_statement st;
	if (dsse_envelope_parse((const char *)data, size, &env, &err) == 0) {
		if (bld_statement_parse(env.payload, env.payload_len, &st, &err) == 0)
			bld_statement_free(&st);
		else
			bld_statement_free(&st);
	}
	err_free(&err);
	dsse_envelope_free(&env);
	if (bld_statement_parse(data, size, &st, &err) < 0)
		err_free(&err);
	bld_statement_free(&st);
	return 0;
}
