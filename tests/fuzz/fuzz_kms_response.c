/* fuzz_kms_response: libFuzzer target for the KMS proxy's upstream response parser and its chunked
 * decoder (odyn/kms_client.c, odyn/chunked.c), which read whatever comes back through the tunnel. */
#include <stdlib.h>
#include <string.h>

#include "odyn/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* As kms_http_exchange hands it over: a private copy, NUL after the end. */
	char *raw = malloc(size + 1);
	if (raw == NULL)
		return 0;
	memcpy(raw, data, size);
	raw[size] = '\0';
	struct kms_http_response r;
	struct err *e = NULL;
	if (kms_http_response_parse(raw, size, &r, &e) == 0) {
		/* The body must lie inside the input, and a decoded body is never longer than it. */
		if (r.body < raw || r.body + r.body_len > raw + size)
			__builtin_trap();
	}
	err_free(&e);
	/* The decoder on its own too, with a small limit so the limit path is reached. */
	memcpy(raw, data, size);
	size_t n;
	if (http_chunked_decode(raw, size, 4096, &n, &e) == 0 && (n > size || n > 4096))
		__builtin_trap();
	err_free(&e);
	free(raw);
	return 0;
}
