/* status: the status lines odyn writes and the host reads (wire/wire.h). Both sides go through
 * this one encoder and decoder, so a field cannot be spelt two ways. */
#include <errno.h>
#include <string.h>

#include "common/json.h"
#include "wire/wire.h"

void wire_status_encode(const struct wire_status *s, struct buf *out)
{
	json_t *v;
	switch (s->kind) {
	case WIRE_STATUS_RUNNING: v = json_pack("{s:s}", "status", "running"); break;
	case WIRE_STATUS_EXITED: v = json_pack("{s:s, s:i}", "status", "exited", "code", s->code); break;
	case WIRE_STATUS_SIGNALED: v = json_pack("{s:s, s:i}", "status", "signaled", "signal", s->code); break;
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
}
