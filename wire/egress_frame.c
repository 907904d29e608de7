/* frame: the egress tunnel handshake with the host (enclaver-compat.md):
 * u16 little-endian length + JSON request {"host","port"}, and the reply
 * "Ok" or {"Err":{"os_code":N,"message":"..."}} in the same framing. */
#include <errno.h>
#include <string.h>

#include "wire/wire.h"
#include "common/json.h"

static void frame_put(struct buf *out, json_t *v)
{
	_cleanup_buf_ struct buf body = {0};
	struct err *e = NULL;
	if (json_serde_write(&body, v, 0, &e) < 0)
		abort(); /* only strings and integers: cannot fail */
	json_decref(v);
	uint8_t len[2] = {(uint8_t)(body.len & 0xff), (uint8_t)(body.len >> 8)};
	buf_append(out, len, 2);
	buf_append(out, body.data, body.len);
}

void egress_frame_request(struct buf *out, const char *host, uint16_t port)
{
	frame_put(out, json_pack("{s:s, s:i}", "host", host, "port", (int)port));
}

void egress_frame_reply_ok(struct buf *out)
{
	frame_put(out, json_string("Ok"));
}

void egress_frame_reply_err(struct buf *out, int os_code, const char *message)
{
	frame_put(out, json_pack("{s:{s:i, s:s}}", "Err", "os_code", os_code, "message", message));
}

/* Common framing: 0 need more, -1 bad, else sets *body and returns the total. */
static ssize_t frame_body(const void *data, size_t len, json_t **body, struct err **err)
{
	const uint8_t *p = data;
	if (len < 2)
		return 0;
	size_t n = (size_t)p[0] | ((size_t)p[1] << 8);
	if (n == 0)
		return err_set(err, EINVAL, "empty frame");
	if (n > EGRESS_FRAME_MAX)
		return err_set(err, EINVAL, "frame of %zu bytes exceeds the limit of %d", n, EGRESS_FRAME_MAX);
	if (len < 2 + n)
		return 0;
	json_error_t je;
	*body = json_loadb((const char *)p + 2, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (*body == NULL)
		return err_set(err, EINVAL, "frame: bad JSON at byte %d: %s", je.position, je.text);
	return (ssize_t)(2 + n);
}

ssize_t egress_frame_parse_reply(const void *data, size_t len, struct egress_reply *out, struct err **err)
{
	_cleanup_json_ json_t *v = NULL;
	ssize_t n = frame_body(data, len, &v, err);
	if (n <= 0)
		return n;
	memset(out, 0, sizeof(*out));
	if (json_is_string(v) && strcmp(json_string_value(v), "Ok") == 0) {
		out->ok = true;
		return n;
	}
	json_t *e = json_object_get(v, "Err");
	json_t *code = json_object_get(e, "os_code"), *msg = json_object_get(e, "message");
	if (!json_is_object(v) || json_object_size(v) != 1 || !json_is_object(e) || (code && !json_is_integer(code)) ||
	    (msg && !json_is_string(msg)))
		return err_set(err, EINVAL, "reply frame: want \"Ok\" or {\"Err\": {\"os_code\", \"message\"}}");
	out->os_code = code ? (int)json_integer_value(code) : 0;
	out->message = xstrdup(msg ? json_string_value(msg) : "unknown error");
	return n;
}

ssize_t egress_frame_parse_request(const void *data, size_t len, char **host, uint16_t *port, struct err **err)
{
	_cleanup_json_ json_t *v = NULL;
	ssize_t n = frame_body(data, len, &v, err);
	if (n <= 0)
		return n;
	json_t *h = json_object_get(v, "host"), *p = json_object_get(v, "port");
	if (!json_is_object(v) || !json_is_string(h) || !json_is_integer(p))
		return err_set(err, EINVAL, "request frame: want {\"host\": string, \"port\": integer}");
	json_int_t pv = json_integer_value(p);
	if (pv < 1 || pv > 65535)
		return err_set(err, EINVAL, "request frame: port %lld out of range", (long long)pv);
	if (json_string_length(h) == 0 || strlen(json_string_value(h)) != json_string_length(h))
		return err_set(err, EINVAL, "request frame: bad host");
	*host = xstrdup(json_string_value(h));
	*port = (uint16_t)pv;
	return n;
}
