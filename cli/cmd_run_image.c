/* cmd_run_image: `enclaver run`: cli/cmd_run.c's options plus the registry side, reading a
 * release image (any oci/ transport, through the cache) for its EIF and manifest; with
 * --verify-key, only those of the digest whose signature by the key holds (builder/verify.c). */
#include "builder/builder.h"
#include "cli/run.h"
#include "keys/keys.h"

struct fetch_ctx {
	const struct oci_opts *oci;
	EVP_PKEY *key; /* --verify-key, or NULL */
};

static int fetch_release(void *ctx, const char *image, const char *tmp, const char *eif, const char *yaml,
                         struct err **err)
{
	const struct fetch_ctx *f = ctx;
	if (!f->key) {
		struct bld_image_file files[] = {{.path = BLD_RELEASE_EIF_PATH, .out = eif},
		                                 {.path = "/enclave/enclaver.yaml", .out = yaml}};
		return bld_image_files_extract(image, f->oci, NULL, files, 2, tmp, NULL, err);
	}
	struct bld_verify_opts vo = {
	    .image = image, .key = f->key, .oci = *f->oci, .tmp_dir = tmp, .eif_out = eif, .manifest_out = yaml};
	_cleanup_json_ json_t *report = NULL;
	if (bld_verify_image(&vo, &report, err) < 0)
		return err_wrap(err, "--verify-key");
	const char *digest = json_string_value(json_object_get(report, "Digest"));
	if (!json_is_true(json_object_get(report, "Valid")))
		return err_set(err, EPERM, "--verify-key: %s (%s) is not verified: %s", image, digest,
		               json_string_value(json_object_get(report, "Problem")));
	log_info("--verify-key: %s is %s, signed by the key; its EIF reads whole", image, digest);
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = {.cmd = "run", .run = {.fetch = fetch_release}};
	struct fetch_ctx f = {.oci = &o.oci};
	o.run.fetch_ctx = &f;
	int r = run_parse(argc, argv, false, &o);
	if (r >= 0) {
		free(o.ports);
		return r;
	}
	if (o.verify_key) {
		struct err *err = NULL;
		if (keys_public_open(o.verify_key, &f.key, &err) < 0) {
			free(o.ports);
			err_wrap(&err, "--verify-key");
			cli_fail(&err);
			return OUTER_EXIT_FATAL; /* as every error of a run */
		}
	}
	r = run_main(&o);
	EVP_PKEY_free(f.key);
	return r;
}
