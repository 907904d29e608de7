/* outer_verify: --verify-before-run: the EIF's measurements (recomputed from its sections) against
 * a JSON file from `enclaver build` or describe-eif, or a bare {"PCRn": hex} object. */
#include <errno.h>
#include <string.h>

#include "eif/eif.h"
#include "runtime/outer.h"

#define VERIFY_JSON_MAX (1u << 20)

const char *const outer_pcr_names[OUTER_PCRS] = {"PCR0", "PCR1", "PCR2", "PCR8"};

int outer_measurements_of(const char *eif_path, json_t **measured, struct err **err)
{
	struct eif_image *img = NULL;
	if (eif_image_read(eif_path, &img, err) < 0)
		return err_wrap(err, "measure the EIF");
	*measured = eif_measurements_json(&img->measurements);
	eif_image_free(img);
	return 0;
}

int outer_measurements_load(const char *json_path, const char *option, struct outer_expected_pcrs *out,
                            struct err **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(json_path, VERIFY_JSON_MAX, &text, &len, err) < 0)
		return err_wrap(err, "%s", option);
	json_error_t je;
	_cleanup_json_ json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return err_set(err, EINVAL, "%s %s: line %d column %d: %s", option, json_path, je.line, je.column,
		               je.text);
	json_t *m = json_object_get(doc, "Measurements");
	if (!m)
		m = doc;
	if (!json_is_object(m))
		return err_set(err, EINVAL, "%s %s: want an object with PCR0... (or \"Measurements\")", option,
		               json_path);
	size_t n_pcrs = 0;
	const char *key;
	json_t *v;
	json_object_foreach(m, key, v)
	{
		if (strcmp(key, "HashAlgorithm") == 0)
			continue;
		int i = -1;
		for (int k = 0; k < OUTER_PCRS; k++)
			if (strcmp(key, outer_pcr_names[k]) == 0)
				i = k;
		if (i < 0)
			return err_set(err, EINVAL, "%s %s: unknown key \"%s\" (want PCR0, PCR1, PCR2, PCR8)", option,
			               json_path, key);
		const char *s = json_string_value(v);
		if (!s || strlen(s) != 96 || hex_decode(s, out->pcr[i], sizeof(out->pcr[i])) < 0)
			return err_set(err, EINVAL, "%s %s: %s: want 96 hex digits (SHA-384)", option, json_path, key);
		out->has[i] = true;
		n_pcrs++;
	}
	if (n_pcrs == 0)
		return err_set(err, EINVAL, "%s %s: no PCR0, PCR1, PCR2 or PCR8 to compare", option, json_path);
	return 0;
}

int outer_measurements_verify(const char *eif_path, const char *json_path, json_t **measured, struct err **err)
{
	/* Check the file before reading the EIF: a typo should not wait for a large hash. */
	struct outer_expected_pcrs want;
	if (outer_measurements_load(json_path, "--verify-before-run", &want, err) < 0)
		return -1;
	struct eif_image *img = NULL;
	if (eif_image_read(eif_path, &img, err) < 0)
		return err_wrap(err, "--verify-before-run");
	const struct eif_measurements *me = &img->measurements;
	const uint8_t *pcrs[OUTER_PCRS] = {me->pcr0, me->pcr1, me->pcr2, me->pcr8};
	const bool present[OUTER_PCRS] = {true, true, true, me->has_pcr8};
	struct buf bad = {0};
	for (size_t i = 0; i < OUTER_PCRS; i++) {
		if (!want.has[i])
			continue;
		char have[97] = "(none: the EIF is not signed)", wanted[97];
		if (present[i])
			hex_encode(pcrs[i], 48, have);
		hex_encode(want.pcr[i], 48, wanted);
		if (!present[i] || memcmp(want.pcr[i], pcrs[i], 48) != 0)
			buf_printf(&bad, "%s%s: expected %s, the EIF has %s", bad.len ? "; " : "", outer_pcr_names[i],
			           wanted, have);
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
