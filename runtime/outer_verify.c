/* outer_verify: --verify-before-run: the EIF's measurements (recomputed from its sections) against
 * a JSON file from `enclaver build` or describe-eif, or a bare {"PCRn": hex} object. */
#include <errno.h>
#include <string.h>

#include "eif/eif.h"
#include "runtime/outer.h"

#define VERIFY_JSON_MAX (1u << 20)

int outer_measurements_of(const char *eif_path, json_t **measured, struct err **err)
{
	struct eif_image *img = NULL;
	if (eif_image_read(eif_path, &img, err) < 0)
		return err_wrap(err, "measure the EIF");
	*measured = eif_measurements_json(&img->measurements);
	eif_image_free(img);
	return 0;
}

int outer_measurements_verify(const char *eif_path, const char *json_path, json_t **measured, struct err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(json_path, VERIFY_JSON_MAX, &text, &len, err) < 0)
		return err_wrap(err, "--verify-before-run");
	json_error_t je;
	_cleanup_json_ json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return err_set(err, EINVAL, "--verify-before-run %s: line %d column %d: %s", json_path, je.line,
		               je.column, je.text);
	json_t *m = json_object_get(doc, "Measurements");
	if (!m)
		m = doc;
	if (!json_is_object(m))
		return err_set(err, EINVAL, "--verify-before-run %s: want an object with PCR0... (or \"Measurements\")",
		               json_path);
	/* Check the file before reading the EIF: a typo should not wait for a large hash. */
	size_t n_pcrs = 0;
	const char *key;
	json_t *v;
	json_object_foreach(m, key, v)
	{
		if (strcmp(key, "HashAlgorithm") == 0)
			continue;
		const char *s = json_string_value(v);
		if (strcmp(key, "PCR0") && strcmp(key, "PCR1") && strcmp(key, "PCR2") && strcmp(key, "PCR8"))
			return err_set(err, EINVAL,
			               "--verify-before-run %s: unknown key \"%s\" (want PCR0, PCR1, PCR2, PCR8)",
			               json_path, key);
		uint8_t raw[48];
		if (!s || strlen(s) != 96 || hex_decode(s, raw, sizeof(raw)) < 0)
			return err_set(err, EINVAL, "--verify-before-run %s: %s: want 96 hex digits (SHA-384)",
			               json_path, key);
		n_pcrs++;
	}
	if (n_pcrs == 0)
		return err_set(err, EINVAL, "--verify-before-run %s: no PCR0, PCR1, PCR2 or PCR8 to compare",
		               json_path);

	struct eif_image *img = NULL;
	if (eif_image_read(eif_path, &img, err) < 0)
		return err_wrap(err, "--verify-before-run");
	const struct eif_measurements *me = &img->measurements;
	const struct {
		const char *key;
		const uint8_t *pcr;
		bool present;
	} rows[] = {{"PCR0", me->pcr0, true},
	            {"PCR1", me->pcr1, true},
	            {"PCR2", me->pcr2, true},
	            {"PCR8", me->pcr8, me->has_pcr8}};
	struct buf bad = {0};
	for (size_t i = 0; i < 4; i++) {
		const char *want = json_string_value(json_object_get(m, rows[i].key));
		if (!want)
			continue;
		char have[97] = "(none: the EIF is not signed)";
		if (rows[i].present)
			hex_encode(rows[i].pcr, 48, have);
		if (!rows[i].present || strcasecmp(want, have) != 0)
			buf_printf(&bad, "%s%s: expected %s, the EIF has %s", bad.len ? "; " : "", rows[i].key, want,
			           have);
	}
	if (measured && !bad.len)
		*measured = eif_measurements_json(me);
	eif_image_free(img);
	if (bad.len) {
		err_set(err, EPERM, "--verify-before-run %s: %s does not match: %s", json_path, eif_path, bad.data);
		buf_free(&bad);
		return -1;
	}
	return 0;
}
