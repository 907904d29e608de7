/* verify_rebuild: `enclaver verify --rebuild`: the build a signed statement records, done again
 * by bld_build in a private folder (an EIF only): the recorded enclaver.yaml bytes, sources.app
 * (and sources.odyn's image) pulled by the recorded digests, the recorded SOURCE_DATE_EPOCH and
 * platform, and this machine's kernel bundle and odyn binary. The result is compared with the
 * record in the order a reader looks for a cause: the inputs, then the PCRs, then the EIF's bytes,
 * the first difference named (for bytes, the offset and the section it falls in). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "builder/statement.h"
#include "eif/eif.h"

/* A registry image pinned to digest; another transport's reference as written (the digest it
 * holds now is compared with the record once pulled). */
static char *pinned(const char *uri, const char *digest)
{
	struct oci_ref ref;
	struct err *e = NULL;
	if (!uri || !digest || oci_ref_parse(uri, &ref, &e) < 0) {
		err_free(&e);
		return uri ? xstrdup(uri) : NULL;
	}
	char *out = ref.transport == OCI_TRANSPORT_DOCKER && !ref.digest
	                ? xasprintf("docker://%s/%s@%s", ref.registry, ref.repository, digest)
	                : xstrdup(uri);
	oci_ref_free(&ref);
	return out;
}

/* The statement the rebuild wrote beside its EIF (unsigned: it is ours). */
static int rebuilt_statement(const char *eif, struct bld_statement *out, struct err **err)
{
	_cleanup_free_ char *path = xasprintf("%s" BLD_STATEMENT_FILE_SUFFIX, eif), *text = NULL;
	size_t len = 0;
	if (io_read_file(path, 16u << 20, &text, &len, err) < 0)
		return -1;
	if (bld_statement_open(text, len, NULL, out, err) < 0)
		return err_wrap(err, "the rebuild's statement");
	return 0;
}

/* The first input whose digest differs (the inputs of an EIF: not the release image's runtime). */
static char *input_difference(const struct bld_statement *want, const struct bld_statement *got)
{
	for (size_t i = 0; i < want->n_deps; i++) {
		const struct bld_statement_dep *w = &want->deps[i];
		if (strcmp(w->name, BLD_DEP_RUNTIME) == 0 || strcmp(w->name, BLD_DEP_SLEEVE) == 0)
			continue;
		const struct bld_statement_dep *g = NULL;
		for (size_t j = 0; j < got->n_deps && !g; j++)
			if (strcmp(got->deps[j].name, w->name) == 0)
				g = &got->deps[j];
		const char *gd = g && g->sha256 ? g->sha256 : "(none)", *wd = w->sha256 ? w->sha256 : "(none)";
		if (strcmp(gd, wd) != 0)
			return xasprintf("input %s: the rebuild used %s, the statement records %s%s", w->name, gd, wd,
			                 strcmp(w->name, BLD_DEP_KERNEL) == 0
			                     ? " (give --kernel-bundle the recorded bundle)"
			                 : strcmp(w->name, BLD_DEP_ODYN) == 0 ? " (give --odyn the recorded binary)"
			                                                      : "");
	}
	return NULL;
}

/* The header's CRC (its last 4 bytes) covers the whole file: it differs whenever anything does, so
 * the difference named is the first one elsewhere. */
static bool in_crc(uint64_t off)
{
	return off >= EIF_HEADER_SIZE - 4 && off < EIF_HEADER_SIZE;
}

/* The first byte where the two files differ (the CRC aside), and the section of b it falls in;
 * *out NULL when they are the same. */
static int byte_difference(const char *a, const char *b, char **out, struct err **err)
{
	*out = NULL;
	uint64_t size;
	_cleanup_close_ int fa = io_open_regular(a, &size, err);
	if (fa < 0)
		return -1;
	_cleanup_close_ int fb = io_open_regular(b, &size, err);
	if (fb < 0)
		return -1;
	static _Thread_local char ba[1 << 16], bb[1 << 16];
	uint64_t off = 0;
	bool found = false;
	while (!found) {
		ssize_t na = io_read_full(fa, ba, sizeof(ba), err),
		        nb = na < 0 ? -1 : io_read_full(fb, bb, sizeof(bb), err);
		if (na < 0 || nb < 0)
			return -1;
		size_t n = (size_t)(na < nb ? na : nb), i = 0;
		while (i < n && (ba[i] == bb[i] || in_crc(off + i)))
			i++;
		found = i < n || na != nb;
		off += i;
		if (n == 0 && !found)
			return 0; /* identical but for the CRC: cannot be, as the CRC covers the rest */
	}
	struct eif_image *img = NULL;
	const char *where = "the header";
	char section[64] = "";
	struct err *e = NULL;
	if (eif_image_read(b, &img, &e) == 0) {
		for (uint16_t s = 0; s < img->num_sections; s++) {
			const struct eif_section *sec = &img->sections[s];
			if (off >= sec->offset && off < sec->offset + EIF_SECTION_HEADER_SIZE + sec->size) {
				snprintf(section, sizeof(section), "section %u (%s)", s,
				         eif_section_type_name(sec->type));
				where = section;
			}
		}
		eif_image_free(img);
	}
	err_free(&e);
	*out = xasprintf("the EIF's bytes differ first at offset %llu, in %s", (unsigned long long)off, where);
	return 0;
}

int bld_verify_rebuild(const struct bld_verify_opts *o, const struct bld_statement *st, const char *image_eif,
                       const char *tmp, json_t **report, char **difference, struct err **err)
{
	*report = NULL;
	*difference = NULL;
	if (!st->manifest || !st->manifest->content)
		return err_set(err, EINVAL, "the statement records no enclaver.yaml bytes to rebuild from");
	_cleanup_free_ char *dir = xasprintf("%s/rebuild", tmp);
	if (mkdir(dir, 0700) < 0)
		return err_sys(err, "mkdir %s", dir);
	_cleanup_free_ char *yaml = xasprintf("%s/enclaver.yaml", dir), *eif = xasprintf("%s/application.eif", dir);
	if (atomic_file_write(yaml, 0600, st->manifest->content, st->manifest->content_len, err) < 0)
		return -1;
	_cleanup_free_ char *app = pinned(st->app ? st->app->uri : NULL, st->app ? st->app->sha256 : NULL);
	const json_t *odyn_ann = st->odyn ? st->odyn->annotations : NULL;
	_cleanup_free_ char *odyn = pinned(json_string_value(json_object_get(odyn_ann, "uri")),
	                                   json_string_value(json_object_get(odyn_ann, "imageDigest")));
	struct bld_build_opts bo = {
	    .manifest_path = yaml,
	    .odyn_path = o->odyn_path,
	    .odyn_default = o->odyn_default,
	    .kernel_bundle = o->kernel_bundle,
	    .platform = st->platform,
	    .eif_only = eif,
	    .tmp_dir = tmp,
	    .no_ramdisk_cache = true, /* every byte made anew */
	    .oci = o->oci,
	    .app_pinned = app,
	    .odyn_pinned = odyn,
	    .sde_pinned = true,
	    .sde = st->source_date_epoch,
	};
	_cleanup_json_ json_t *built = NULL;
	if (bld_build(&bo, &built, err) < 0)
		return err_wrap(err, "the rebuild");
	struct bld_statement got = {0};
	if (rebuilt_statement(eif, &got, err) < 0) {
		bld_statement_free(&got);
		return -1;
	}
	struct eif_expected want;
	eif_expected_from(&st->measurements, &want);
	_cleanup_err_ struct err *pcrs = NULL;
	int r = 0;
	*difference = input_difference(st, &got);
	if (!*difference && eif_expected_check(&got.measurements, &want, &pcrs) < 0)
		*difference = xasprintf("the rebuilt EIF's PCRs differ: %s", pcrs->msg);
	if (!*difference && strcmp(got.eif_sha384, st->eif_sha384) != 0)
		r = byte_difference(image_eif, eif, difference, err);
	if (r == 0)
		*report = json_pack("{s:b, s:{s:s, s:s}, s:o, s:s?}", "Identical", *difference == NULL, "EIF", "sha256",
		                    got.eif_sha256, "sha384", got.eif_sha384, "Measurements",
		                    eif_measurements_json(&got.measurements), "Difference", *difference);
	bld_statement_free(&got);
	return r;
}
