/* fuzz_logfmt: libFuzzer target for the run's log formatter (common/logfmt.c) on the enclave's
 * untrusted bytes: a JSON line is always one line of valid JSON (jansson reads it back, with the
 * same number of characters for well-formed input), and text lines carry no control byte but the
 * LF that ends each, every one under its prefix. */
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	const struct timespec t = {.tv_sec = (time_t)(size * 7919u), .tv_nsec = (long)(size % 1000) * 1000000L};
	struct buf b = {0};
	log_json_line(&b, &t, "app", NULL, "info", msg, size);
	if (b.len == 0 || b.data[b.len - 1] != '\n' || memchr(b.data, '\n', b.len) != b.data + b.len - 1)
		__builtin_trap();
	json_error_t je;
	json_t *doc = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &je);
	if (!doc || !json_is_string(json_object_get(doc, "message")))
		__builtin_trap();
	json_decref(doc);

	b.len = 0;
	log_text_lines(&b, "[app] ", msg, size);
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = (unsigned char)b.data[i];
		if (i == 0 || b.data[i - 1] == '\n')
			if (b.len - i < 6 || memcmp(b.data + i, "[app] ", 6) != 0)
				__builtin_trap();
		if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
			__builtin_trap();
	}
	if (b.len == 0 || b.data[b.len - 1] != '\n')
		__builtin_trap();
	buf_free(&b);
	return 0;
}
