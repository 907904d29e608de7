/* status: the status lines odyn writes and the host reads (wire/wire.h). Both sides go through
 * this one encoder and decoder, so a field cannot be spelt two ways. */
#include <errno.h>
#include <string.h>

#include "common/json.h"
#include "wire/wire.h"

static const char *const counter_family_key[] = {[WIRE_COUNTER_EGRESS] = "egress", [WIRE_COUNTER_KMS] = "kms"};
#define N_FAMILIES (sizeof(counter_family_key) / sizeof(counter_family_key[0]))

bool wire_counter_label_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > WIRE_COUNTER_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

bool wire_counter_is(const struct wire_counter *c, enum wire_counter_family f, const char *a, const char *b)
{
	return c->family == f && !strcmp(c->label[0], a) && !strcmp(c->label[1], b);
}

size_t wire_counter_find(const struct wire_counter *v, size_t n, enum wire_counter_family f, const char *a,
                         const char *b)
{
	size_t i = 0;
	while (i < n && !wire_counter_is(&v[i], f, a, b))
		i++;
	return i;
}

static json_t *counters_pack(const struct wire_status *s)
{
	json_t *v = json_pack("{s:s}", "status", "counters");
	for (size_t f = 0; f < N_FAMILIES; f++) {
		json_t *a = json_array();
		for (size_t i = 0; i < s->n_counters; i++) {
			const struct wire_counter *c = &s->counters[i];
			if (c->family == f)
				json_array_append_new(a,
				                      json_pack("[s,s,I]", c->label[0], c->label[1], (json_int_t)c->n));
		}
		json_object_set_new(v, counter_family_key[f], a);
	}
	return v;
}

/* One family's array into out->counters; the line's checks (wire.h). */
static int counters_decode(json_t *v, enum wire_counter_family f, struct wire_status *out, struct err **err)
{
	json_t *arr = json_object_get(v, counter_family_key[f]);
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return err_set(err, EINVAL, "counters: \"%s\" is not an array", counter_family_key[f]);
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		const char *where = counter_family_key[f];
		if (out->n_counters == WIRE_COUNTERS_MAX)
			return err_set(err, E2BIG, "counters: more than %d entries", WIRE_COUNTERS_MAX);
		json_t *n = json_array_get(e, 2);
		if (!json_is_array(e) || json_array_size(e) != 3 || !json_is_integer(n) || json_integer_value(n) < 0)
			return err_set(err, EINVAL, "counters: %s[%zu] is not [label, label, count >= 0]", where, i);
		struct wire_counter *c = &out->counters[out->n_counters];
		c->family = f;
		c->n = (uint64_t)json_integer_value(n);
		for (size_t k = 0; k < 2; k++) {
			const char *l = json_string_value(json_array_get(e, k));
			if (l == NULL || !wire_counter_label_ok(l))
				return err_set(err, EINVAL,
				               "counters: %s[%zu] label %zu is not 1 to %d printable ASCII bytes",
				               where, i, k, WIRE_COUNTER_LABEL_MAX);
			memcpy(c->label[k], l, strlen(l) + 1);
		}
		if (wire_counter_find(out->counters, out->n_counters, f, c->label[0], c->label[1]) < out->n_counters)
			return err_set(err, EINVAL, "counters: %s[%zu] repeats an entry", where, i);
		out->n_counters++;
	}
	return 0;
}

void wire_status_encode(const struct wire_status *s, struct buf *out)
{
	json_t *v;
	switch (s->kind) {
	case WIRE_STATUS_RUNNING: v = json_pack("{s:s}", "status", "running"); break;
	case WIRE_STATUS_EXITED: v = json_pack("{s:s, s:i}", "status", "exited", "code", s->code); break;
	case WIRE_STATUS_SIGNALED: v = json_pack("{s:s, s:i}", "status", "signaled", "signal", s->code); break;
	case WIRE_STATUS_COUNTERS: v = counters_pack(s); break;
	default: v = json_pack("{s:s, s:s}", "status", "fatal", "error", s->error ? s->error : "fatal error"); break;
	}
	/* Strings and integers only: serialising cannot fail, and an error message that is not valid
	 * UTF-8 was refused by json_pack (v NULL): send the line without it. */
	if (!v)
		v = json_pack("{s:s, s:s}", "status", "fatal", "error", "fatal error (message not UTF-8)");
	struct err *e = NULL;
	if (json_serde_write(out, v, 0, &e) < 0)
		abort();
	json_decref(v);
	buf_putc(out, '\n');
}

int wire_status_decode(const char *line, size_t len, struct wire_status *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	json_error_t je;
	_cleanup_json_ json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	const char *st = json_string_value(json_object_get(v, "status"));
	if (!st)
		return err_set(err, EINVAL, "a malformed line");
	json_t *code = json_object_get(v, "code"), *sig = json_object_get(v, "signal"), *msg = json_object_get(v, "error");
	if (strcmp(st, "running") == 0) {
		out->kind = WIRE_STATUS_RUNNING;
	} else if (strcmp(st, "exited") == 0 && json_is_integer(code)) {
		out->kind = WIRE_STATUS_EXITED;
		out->code = (int)json_integer_value(code);
	} else if (strcmp(st, "signaled") == 0 && json_is_integer(sig)) {
		out->kind = WIRE_STATUS_SIGNALED;
		out->code = (int)json_integer_value(sig);
	} else if (strcmp(st, "counters") == 0) {
		out->kind = WIRE_STATUS_COUNTERS;
		out->counters = xcalloc(WIRE_COUNTERS_MAX, sizeof(*out->counters));
		for (size_t f = 0; f < N_FAMILIES; f++)
			if (counters_decode(v, (enum wire_counter_family)f, out, err) < 0) {
				wire_status_free(out);
				return -1;
			}
	} else if (strcmp(st, "fatal") == 0) {
		out->kind = WIRE_STATUS_FATAL;
		out->error = xstrdup(json_is_string(msg) ? json_string_value(msg) : "fatal error");
	} else {
		return err_set(err, EINVAL, "an unknown status");
	}
	return 0;
}

void wire_status_free(struct wire_status *s)
{
	free(s->error);
	s->error = NULL;
	free(s->counters);
	s->counters = NULL;
	s->n_counters = 0;
}
