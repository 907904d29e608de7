/* fuzz_status_line: libFuzzer target for the status-line decoder (wire/status.c), which the host
 * runs on whatever an enclave (possibly compromised) writes on its status stream, counters lines
 * included; and the metrics page those counters reach (runtime/metrics.c). */
#include <stdlib.h>
#include <string.h>

#include "runtime/outer_internal.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outer_metrics *m;
	if (m == NULL && outer_metrics_start("127.0.0.1:0", 0, &m, NULL) < 0)
		abort();
	struct wire_status st;
	struct err *e = NULL;
	if (wire_status_decode((const char *)data, size, &st, &e) < 0) {
		if (e == NULL || st.counters != NULL)
			__builtin_trap(); /* a refusal says why and keeps nothing */
		err_free(&e);
		return 0;
	}
	if (st.kind == WIRE_STATUS_COUNTERS) {
		/* What was taken is within the documented bounds. */
		if (st.n_counters > WIRE_COUNTERS_MAX)
			__builtin_trap();
		for (size_t i = 0; i < st.n_counters; i++)
			if (!wire_counter_label_ok(st.counters[i].label[0]) ||
			    !wire_counter_label_ok(st.counters[i].label[1]))
				__builtin_trap();
	}
	outer_metrics_status(m, &st);
	struct buf page = {0};
	outer_metrics_render(m, &page);
	/* Every sample line is name{labels} value: no raw newline from a label splits one. */
	for (const char *p = buf_str(&page); *p; p = strchr(p, '\n') + 1)
		if (*p != '#' && strncmp(p, "enclaver_", 9) != 0)
			__builtin_trap();
	buf_free(&page);
	wire_status_free(&st);
	return 0;
}
