/* expected: measurements an EIF is expected to have, read from a JSON file (`enclaver build`'s
 * report or describe-eif's output, both with "Measurements", or a bare {"PCRn": hex} object), and
 * the comparison with an EIF's own. --verify-before-run and verify-attestation --pcrs-from read the
 * same files through this one reader. */
#include <errno.h>
#include <string.h>

#include "eif/internal.h"

#define EXPECTED_JSON_MAX (1u << 20)

const char *const eif_expected_names[EIF_EXPECTED_PCRS] = {"PCR0", "PCR1", "PCR2", "PCR8"};
const int eif_expected_index[EIF_EXPECTED_PCRS] = {0, 1, 2, 8};

int eif_expected_load(const char *json_path, const char *option, struct eif_expected *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(json_path, EXPECTED_JSON_MAX, &text, &len, err) < 0)
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
		for (int k = 0; k < EIF_EXPECTED_PCRS; k++)
			if (strcmp(key, eif_expected_names[k]) == 0)
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

int eif_expected_check(const struct eif_measurements *me, const struct eif_expected *want, struct err **err)
{
	const uint8_t *pcrs[EIF_EXPECTED_PCRS] = {me->pcr0, me->pcr1, me->pcr2, me->pcr8};
	const bool present[EIF_EXPECTED_PCRS] = {true, true, true, me->has_pcr8};
	_cleanup_buf_ struct buf bad = {0};
	for (size_t i = 0; i < EIF_EXPECTED_PCRS; i++) {
		if (!want->has[i])
			continue;
		char have[97] = "(none: the EIF is not signed)", wanted[97];
		if (present[i])
			hex_encode(pcrs[i], 48, have);
		hex_encode(want->pcr[i], 48, wanted);
		if (!present[i] || memcmp(want->pcr[i], pcrs[i], 48) != 0)
			buf_printf(&bad, "%s%s: expected %s, the EIF has %s", bad.len ? "; " : "", eif_expected_names[i],
			           wanted, have);
	}
	if (bad.len)
		return err_set(err, EPERM, "%s", bad.data);
	return 0;
}

void eif_expected_from(const struct eif_measurements *m, struct eif_expected *out)
{
	memset(out, 0, sizeof(*out));
	const uint8_t *pcrs[EIF_EXPECTED_PCRS] = {m->pcr0, m->pcr1, m->pcr2, m->pcr8};
	for (size_t i = 0; i < EIF_EXPECTED_PCRS; i++) {
		out->has[i] = i < 3 || m->has_pcr8;
		if (out->has[i])
			memcpy(out->pcr[i], pcrs[i], 48);
	}
}
