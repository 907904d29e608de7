/* verify: `enclaver verify IMAGE --key KEY` and `enclaver run --verify-key`: is this release image
 * what the key's holder signed, and is its EIF whole? The tag is resolved to a digest once; the
 * signature is checked for that digest; the EIF is then read out of the image pinned to that digest
 * (a tag moved meanwhile changes nothing) and read whole: structure, CRC, its own signature, PCRs.
 * The report says which check failed first; nothing is trusted before the signature holds, so an
 * unsigned image is not even downloaded. */
#include <string.h>

#include "builder/builder.h"
#include "eif/eif.h"

struct verify {
	const struct bld_verify_opts *o;
	struct oci_ref ref;
	char digest[OCI_DIGEST_MAX];
	json_t *report, *checks;
	char *tmp;
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

/* The EIF (and the manifest) of the signed digest, read whole. */
static int check_eif(struct verify *v, struct err **err)
{
	const struct bld_verify_opts *o = v->o;
	if (io_tmpdir_create(o->tmp_dir, "enclaver-verify", &v->tmp, err) < 0)
		return -1;
	_cleanup_free_ char *eif = o->eif_out ? xstrdup(o->eif_out) : xasprintf("%s/application.eif", v->tmp);
	_cleanup_free_ char *pinned = xasprintf("docker://%s/%s@%s", v->ref.registry, v->ref.repository, v->digest);
	struct bld_image_file files[] = {{.path = BLD_RELEASE_EIF_PATH, .out = eif},
	                                 {.path = "/enclave/enclaver.yaml", .out = o->manifest_out}};
	if (bld_image_files_extract(pinned, &o->oci, NULL, files, o->manifest_out ? 2 : 1, v->tmp, NULL, err) < 0)
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
	else
		json_object_set_new(v->checks, "EIF", json_true());
	eif_image_free(img);
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
		v.checks = json_pack("{s:n, s:n}", "Signature", "EIF");
		v.report = json_pack("{s:b, s:s, s:s, s:O, s:n, s:n, s:n}", "Valid", true, "Image", name, "Digest",
		                     v.digest, "Checks", v.checks, "Problem", "Signature", "Measurements");
		r = check_signature(&v, err);
	}
	if (r == 0 && !failed(&v))
		r = check_eif(&v, err);
	if (r == 0)
		*report = steal_pointer(&v.report);
	if (v.tmp)
		io_remove_tree(v.tmp);
	free(v.tmp);
	json_decref(v.report);
	json_decref(v.checks);
	oci_ref_free(&v.ref);
	return r;
}
