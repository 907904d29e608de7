/* fuzz_http_request: libFuzzer target for the request-head parser (wire/http.c), the one every
 * odyn server reads a client with (egress proxy, attestation API, KMS proxy), and the target
 * splitting the egress proxy applies to what it accepts. */
#include <stdlib.h>
#include <string.h>

#include "odyn/odyn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request r;
	struct err *e = NULL;
	ssize_t n = http_request_parse((const char *)data, size, &r, &e);
	if (n < 0 && e == NULL)
		__builtin_trap(); /* a refusal always says why */
	if (n > 0) {
		/* An accepted head lies inside the input, ends in CRLF CRLF and has no bare LF. */
		if ((size_t)n > size || n < 4 || memcmp(data + n - 4, "\r\n\r\n", 4) != 0)
			__builtin_trap();
		for (ssize_t i = 0; i < n; i++)
			if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
				__builtin_trap();
		if (r.method[0] == '\0' || r.target[0] == '\0' || r.n_headers > HTTP_HEADERS_MAX)
			__builtin_trap();
		char *host = NULL, *path = NULL;
		uint16_t port;
		if (strcmp(r.method, "CONNECT") == 0) {
			if (http_authority_split(r.target, &host, &port, &e) == 0 && host[0] == '\0')
				__builtin_trap();
		} else if (http_target_split(r.target, &host, &port, &path, &e) == 0 &&
		           (host[0] == '\0' || path[0] != '/')) {
			__builtin_trap();
		}
		free(host);
		free(path);
		err_free(&e);
		http_request_free(&r);
	}
	err_free(&e);
	return 0;
}
