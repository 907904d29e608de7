/* json: JSON through jansson: the cleanup helper, and output byte-compatible with Rust's serde_json
 * (common/json_serde.c). Apart from common.h so that code without JSON does not pull jansson in. */
#ifndef ENCLAVER_COMMON_JSON_H
#define ENCLAVER_COMMON_JSON_H

#include <jansson.h>

#include "common/common.h"

void cleanup_json_decrefp(json_t **j);
#define _cleanup_json_ _cleanup_(cleanup_json_decrefp)

/* ---------------------------------------------------------------- JSON
 * Byte-compatible with Rust's serde_json, which the reference tools use:
 * escapes only '"', '\\' and control characters (\b \f \n \r \t, else
 * \u00xx), keeps UTF-8 as is, prints floats in shortest round-trip form
 * (ryu), and "pretty" means two-space indentation with ": ". */
enum json_serde_flags {
	JSON_SERDE_PRETTY = 1 << 0,
	/* Sort object keys bytewise, as serde_json's Value (a BTreeMap) does.
	 * Without it objects keep their insertion order, as a Rust struct does. */
	JSON_SERDE_SORT_KEYS = 1 << 1,
};
int json_serde_write(struct buf *out, const json_t *value, unsigned flags, struct err **err);
/* A deep copy whose objects list their keys in serde_json's (bytewise) order,
 * for a serde_json::Value nested in a struct whose fields keep their order. */
json_t *json_sorted_copy(const json_t *value);

#endif
