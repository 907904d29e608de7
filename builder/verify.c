/* verify: `enclaver verify IMAGE --key KEY` and `enclaver run --verify-key`: is this release image
 * what the key's holder signed and stated, and is its EIF the one the statement records? The tag
 * is resolved to a digest once; the signature and the statement are checked for that digest; the
 * EIF is then read out of the image pinned to that digest (a tag moved meanwhile changes nothing)
 * and read whole (structure, CRC, its own signature), its PCRs and SHA-384 compared with the
 * statement's; --rebuild last (verify_rebuild.c). The report says which check failed first;
 * nothing is trusted before the signature holds, so an unsigned image is not even downloaded. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "builder/builder.h"
#include "builder/statement.h"
#include "eif/eif.h"

struct verify {
	const struct bld_verify_opts *o;
	struct oci_ref ref;
	char digest[OCI_DIGEST_MAX];
	char *pinned; /* "docker://registry/repository@digest": everything after the signature reads this */
	json_t *report, *checks;
	struct bld_statement st;
	bool have_st;
	char *tmp;
	char *eif; /* the image's EIF, read out */
};

/* Records a failed check: the first problem is the one reported. */
static void fail(struct verify *v, const char *check, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct verify *v, const char *check, const char *fmt, ...)
{
	json_object_set_new(v->checks, check, json_false());
	json_object_set_new(v->report, "Valid", json_false());
	if (!json_is_null(json_object_get(v->report, "Problem")))
		return;
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	json_object_set_new(v->report, "Problem", json_string(msg ? msg : check));
}

static bool failed(const struct verify *v)
{
	return json_is_false(json_object_get(v->report, "Valid"));
}

static int check_signature(struct verify *v, struct err **err)
{
	struct bld_signature_check sc;
	if (bld_image_signature_check(&v->ref, v->digest, v->o->key, &v->o->oci, &sc, err) < 0)
		return -1;
	json_object_set_new(v->report, "Signature",
	                    json_pack("{s:s, s:s?, s:I}", "Ref", sc.signature_ref, "Identity", sc.identity, "Payloads",
	                              (json_int_t)sc.n_signatures));
	if (sc.verified)
		json_object_set_new(v->checks, "Signature", json_true());
	else
		fail(v, "Signature", "%s", sc.problem);
	bld_signature_check_free(&sc);
	return 0;
}

/* The statement attached to the signed digest (the .att tag) and signed by the same key. */
static int check_statement(struct verify *v, struct err **err)
{
	struct oci_opts quiet = v->o->oci;
	quiet.progress = NULL;
	struct err *e = NULL;
	if (bld_image_statement(v->pinned, v->digest, &quiet, v->o->key, &v->st, &e) < 0) {
		/* ENOENT: none attached; EPERM: none verifies with the key or names this digest. */
		if (e->code != ENOENT && e->code != EPERM) {
			*err = e;
			return err_wrap(err, "the statement of %s", v->digest);
		}
		fail(v, "Statement", "%s", e->msg);
		err_free(&e);
		return 0;
	}
	v->have_st = true;
	const struct bld_statement *st = &v->st;
	json_t *deps = json_array();
	for (size_t i = 0; i < st->n_deps; i++)
		json_array_append_new(deps, json_pack("{s:s, s:s?, s:s?}", "Name", st->deps[i].name, "Uri",
		                                      st->deps[i].uri, "Digest", st->deps[i].sha256));
	json_t *sde = st->source_date_epoch < 0 ? json_null() : json_integer(st->source_date_epoch);
	json_object_set_new(v->report, "Statement",
	                    json_pack("{s:s, s:s?, s:s?, s:o, s:o, s:{s:s, s:s}, s:o}", "Subject", st->subject_digest,
	                              "Platform", st->platform, "Enclaver", st->enclaver_version, "SourceDateEpoch",
	                              sde, "Dependencies", deps, "EIF", "sha256", st->eif_sha256, "sha384",
	                              st->eif_sha384, "Measurements", eif_measurements_json(&st->measurements)));
	json_object_set_new(v->checks, "Statement", json_true());
	return 0;
}

/* The EIF is the one the statement records: its PCRs, then its bytes (SHA-384). */
static int check_eif_statement(struct verify *v, const char *eif, const struct eif_measurements *m, struct err **err)
{
	const struct eif_measurements *want = &v->st.measurements;
	struct eif_expected exp;
	eif_expected_from(want, &exp);
	_cleanup_err_ struct err *e = NULL;
	if (eif_expected_check(m, &exp, &e) < 0 || (m->has_pcr8 && !want->has_pcr8)) {
		fail(v, "EIF", "the EIF's PCRs are not the statement's: %s",
		     e ? e->msg : "PCR8: the statement has none");
		return 0;
	}
	char sha256[OCI_DIGEST_MAX], sha384[104];
	if (bld_file_digests(eif, sha256, sha384, err) < 0)
		return -1;
	if (strcmp(sha384, v->st.eif_sha384) != 0)
		fail(v, "EIF", "the EIF is not the one the statement records: it is %s, the statement says %s", sha384,
		     v->st.eif_sha384);
	return 0;
}

/* The EIF (and the manifest) of the signed digest, read whole. */
static int check_eif(struct verify *v, struct err **err)
{
	const struct bld_verify_opts *o = v->o;
	if (io_tmpdir_create(o->tmp_dir, "enclaver-verify", &v->tmp, err) < 0)
		return -1;
	v->eif = o->eif_out ? xstrdup(o->eif_out) : xasprintf("%s/application.eif", v->tmp);
	const char *eif = v->eif;
	struct bld_image_file files[] = {{.path = BLD_RELEASE_EIF_PATH, .out = eif},
	                                 {.path = "/enclave/enclaver.yaml", .out = o->manifest_out}};
	if (bld_image_files_extract(v->pinned, &o->oci, NULL, files, o->manifest_out ? 2 : 1, v->tmp, NULL, err) < 0)
		return err_wrap(err, "the signed image's EIF");
	struct eif_image *img = NULL;
	_cleanup_err_ struct err *e = NULL;
	if (eif_image_read(eif, &img, &e) < 0) {
		fail(v, "EIF", "%s in %s@%s: %s", BLD_RELEASE_EIF_PATH, v->ref.repository, v->digest, e->msg);
		return 0;
	}
	json_object_set_new(v->report, "Measurements", eif_measurements_json(&img->measurements));
	if (img->crc_stored != img->crc_computed)
		fail(v, "EIF", "%s: its CRC is %08x, its bytes give %08x: the file was changed after it was written",
		     BLD_RELEASE_EIF_PATH, img->crc_stored, img->crc_computed);
	else if (img->is_signed && !img->signature_ok)
		fail(v, "EIF", "%s: its signature section does not verify: %s", BLD_RELEASE_EIF_PATH,
		     img->signature_problem ? img->signature_problem : "?");
	else if (v->have_st && check_eif_statement(v, eif, &img->measurements, err) < 0) {
		eif_image_free(img);
		return -1;
	}
	if (!failed(v))
		json_object_set_new(v->checks, "EIF", json_true());
	eif_image_free(img);
	return 0;
}

/* --rebuild: only once everything else holds (the statement it rebuilds is then the signer's). */
static int check_rebuild(struct verify *v, struct err **err)
{
	_cleanup_json_ json_t *rep = NULL;
	_cleanup_free_ char *diff = NULL;
	if (bld_verify_rebuild(v->o, &v->st, v->eif, v->tmp, &rep, &diff, err) < 0)
		return -1;
	json_object_set(v->report, "Rebuild", rep);
	if (diff)
		fail(v, "Rebuild", "%s", diff);
	else
		json_object_set_new(v->checks, "Rebuild", json_true());
	return 0;
}

int bld_verify_image(const struct bld_verify_opts *o, json_t **report, struct err **err)
{
	struct verify v = {.o = o};
	if (oci_ref_parse(o->image, &v.ref, err) < 0)
		return -1;
	int r = 0;
	if (v.ref.transport != OCI_TRANSPORT_DOCKER)
		r = err_set(err, EINVAL, "%s: signatures live in a registry: give a docker:// reference", o->image);
	if (r == 0)
		r = oci_resolve_digest(o->image, &o->oci, v.digest, err);
	if (r == 0) {
		_cleanup_free_ char *name = oci_ref_format(&v.ref);
		v.pinned = xasprintf("docker://%s/%s@%s", v.ref.registry, v.ref.repository, v.digest);
		v.checks = json_pack("{s:n, s:n, s:n}", "Signature", "Statement", "EIF");
		v.report = json_pack("{s:b, s:s, s:s, s:O, s:n, s:n, s:n, s:n}", "Valid", true, "Image", name, "Digest",
		                     v.digest, "Checks", v.checks, "Problem", "Signature", "Statement", "Measurements");
		if (o->rebuild) {
			json_object_set_new(v.checks, "Rebuild", json_null());
			json_object_set_new(v.report, "Rebuild", json_null());
		}
		r = check_signature(&v, err);
	}
	if (r == 0 && !failed(&v))
		r = check_statement(&v, err);
	if (r == 0 && !failed(&v))
		r = check_eif(&v, err);
	if (r == 0 && !failed(&v) && o->rebuild)
		r = check_rebuild(&v, err);
	if (r == 0)
		*report = steal_pointer(&v.report);
	if (v.tmp)
		io_remove_tree(v.tmp);
	free(v.tmp);
	free(v.pinned);
	free(v.eif);
	bld_statement_free(&v.st);
	json_decref(v.report);
	json_decref(v.checks);
	oci_ref_free(&v.ref);
	return r;
}
