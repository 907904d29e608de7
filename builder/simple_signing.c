/* simple_signing: the payload cosign signs for an image (sigstore "simple signing"): written for
 * `enclaver sign` and read back, strictly, by `enclaver verify`. The reader takes outside data
 * (a registry's blob) and applies containers/image's rules: exactly the fields it knows, the one
 * signature type, a valid digest; every error names the field. */
#include <string.h>

#include "builder/builder.h"

#define SIMPLE_SIGNING_TYPE "cosign container image signature"

char *bld_simple_signing_payload(const char *identity, const char *digest)
{
	/* Field for field what cosign writes. The reference grammar (oci_ref_parse) and the digest
	 * check admit no character JSON would need to escape. */
	return xasprintf("{\"critical\":{\"identity\":{\"docker-reference\":\"%s\"},\"image\":{\"docker-manifest-"
	                 "digest\":\"%s\"},\"type\":\"" SIMPLE_SIGNING_TYPE "\"},\"optional\":null}",
	                 identity, digest);
}

/* obj must be an object with exactly the n keys named. */
static int exact_fields(const json_t *obj, const char *where, const char *const *keys, size_t n, struct err **err)
{
	if (!json_is_object(obj))
		return err_set(err, EINVAL, "%s: not a JSON object", where);
	for (size_t i = 0; i < n; i++)
		if (!json_object_get(obj, keys[i]))
			return err_set(err, EINVAL, "%s: no \"%s\"", where, keys[i]);
	if (json_object_size(obj) != n) {
		const char *key;
		json_t *v;
		json_object_foreach((json_t *)obj, key, v)
		{
			bool known = false;
			for (size_t i = 0; i < n; i++)
				known |= strcmp(key, keys[i]) == 0;
			if (!known)
				return err_set(err, EINVAL, "%s: unknown field \"%s\"", where, key);
		}
	}
	return 0;
}

static const char *string_field(const json_t *obj, const char *key, const char *where, struct err **err)
{
	const char *s = json_string_value(json_object_get(obj, key));
	if (!s)
		err_set(err, EINVAL, "%s.%s: not a string", where, key);
	return s;
}

static int parse_optional(const json_t *opt, struct err **err)
{
	/* cosign writes null; containers/image reads creator and timestamp and ignores the rest. */
	if (json_is_null(opt))
		return 0;
	if (!json_is_object(opt))
		return err_set(err, EINVAL, "optional: neither null nor an object");
	const json_t *creator = json_object_get(opt, "creator"), *ts = json_object_get(opt, "timestamp");
	if (creator && !json_is_string(creator))
		return err_set(err, EINVAL, "optional.creator: not a string");
	/* A JSON number without a fractional part (Go reads it as a float64 first). */
	double v = json_is_real(ts) ? json_real_value(ts) : 0;
	bool whole = json_is_real(ts) && v > -9.2e18 && v < 9.2e18 && v == (double)(int64_t)v;
	if (ts && !json_is_integer(ts) && !whole)
		return err_set(err, EINVAL, "optional.timestamp: not an integer");
	return 0;
}

int bld_simple_signing_parse(const void *data, size_t len, struct bld_simple_signing *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	json_error_t je;
	_cleanup_json_ json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return err_set(err, EINVAL, "simple-signing payload: byte %d: %s", je.position, je.text);
	static const char *const top[] = {"critical", "optional"};
	static const char *const critical[] = {"type", "image", "identity"};
	static const char *const image[] = {"docker-manifest-digest"};
	static const char *const identity[] = {"docker-reference"};
	const json_t *c = json_object_get(doc, "critical");
	const char *type, *digest, *reference;
	if (exact_fields(doc, "the payload", top, 2, err) < 0 ||
	    parse_optional(json_object_get(doc, "optional"), err) < 0 ||
	    exact_fields(c, "critical", critical, 3, err) < 0 || !(type = string_field(c, "type", "critical", err)))
		return err_wrap(err, "simple-signing payload");
	if (strcmp(type, SIMPLE_SIGNING_TYPE) != 0)
		return err_set(err, EINVAL, "simple-signing payload: critical.type \"%s\": not \"%s\"", type,
		               SIMPLE_SIGNING_TYPE);
	const json_t *im = json_object_get(c, "image"), *id = json_object_get(c, "identity");
	if (exact_fields(im, "critical.image", image, 1, err) < 0 ||
	    !(digest = string_field(im, "docker-manifest-digest", "critical.image", err)) ||
	    exact_fields(id, "critical.identity", identity, 1, err) < 0 ||
	    !(reference = string_field(id, "docker-reference", "critical.identity", err)))
		return err_wrap(err, "simple-signing payload");
	if (oci_digest_check(digest, err) < 0)
		return err_wrap(err, "simple-signing payload: critical.image.docker-manifest-digest");
	out->digest = xstrdup(digest);
	out->reference = xstrdup(reference);
	return 0;
}

void bld_simple_signing_free(struct bld_simple_signing *p)
{
	free(p->digest);
	free(p->reference);
	memset(p, 0, sizeof(*p));
}
