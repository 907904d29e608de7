/* customer: the customer ramdisk from an image's layer files and config document, the one path
 * `enclaver build` and `enclaver ramdisk customer` share: the app's command from the config, the
 * layers flattened in order, odyn and the manifest added, the cpio written (initramfs.c). */
#include <string.h>

#include "builder/builder.h"

/* An array of strings from an image config object (Entrypoint, Cmd, Env), or none when absent or
 * null; anything else is an error naming config.KEY. The strings are borrowed from cfg. */
static int config_strings(const json_t *cfg, const char *key, const char *const **out, size_t *n,
                          struct err **err)
{
	json_t *v = json_object_get(cfg, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return err_set(err, EINVAL, "config.%s is not an array", key);
	const char **a = xcalloc(json_array_size(v) + 1, sizeof(char *));
	*out = a;
	for (size_t i = 0; i < json_array_size(v); i++) {
		const char *s = json_string_value(json_array_get(v, i));
		if (!s)
			return err_set(err, EINVAL, "config.%s[%zu] is not a string", key, i);
		a[(*n)++] = s;
	}
	return 0;
}

int bld_app_config_parse(const json_t *doc, struct bld_app_config *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	const json_t *cfg = json_object_get(doc, "config");
	if (cfg && (config_strings(cfg, "Entrypoint", &out->entrypoint, &out->n_entrypoint, err) < 0 ||
	            config_strings(cfg, "Cmd", &out->cmd, &out->n_cmd, err) < 0 ||
	            config_strings(cfg, "Env", &out->env, &out->n_env, err) < 0)) {
		bld_app_config_free(out);
		return -1;
	}
	out->working_dir = json_string_value(json_object_get(cfg, "WorkingDir"));
	out->user = json_string_value(json_object_get(cfg, "User"));
	return 0;
}

void bld_app_config_free(struct bld_app_config *app)
{
	free((void *)app->entrypoint);
	free((void *)app->cmd);
	free((void *)app->env);
	memset(app, 0, sizeof(*app));
}

int bld_layers_from_cache(const struct oci_cache *cache, const struct oci_manifest *m, struct bld_layer **out,
                          struct err **err)
{
	struct bld_layer *layers = xcalloc(m->n_layers + 1, sizeof(*layers));
	for (size_t i = 0; i < m->n_layers; i++) {
		const struct oci_desc *d = &m->layers[i];
		/* The cache's copy is checked against its digest before it is read (docs/security.md). */
		if (oci_cache_verify_blob(cache, d->digest, d->size, err) < 0) {
			bld_layers_free(layers, i);
			return err_wrap(err, "layer %zu (%s)", i + 1, d->digest);
		}
		layers[i] = (struct bld_layer){
		    .path = oci_cache_blob_path(cache, d->digest), .media_type = d->media_type, .digest = d->digest, .size = d->size};
	}
	*out = layers;
	return 0;
}

void bld_layers_free(struct bld_layer *layers, size_t n)
{
	for (size_t i = 0; layers && i < n; i++)
		free((char *)layers[i].path);
	free(layers);
}

int bld_customer_write_to(struct atomic_file *af, const struct bld_customer_spec *spec, struct err **err)
{
	struct bld_app_config app;
	if (bld_app_config_parse(spec->image_config, &app, err) < 0)
		return err_wrap(err, "image config");
	/* /cmd and /env now, so an image with nothing to run fails before the long flatten. */
	_cleanup_buf_ struct buf cmd = {0}, env = {0};
	if (bld_initramfs_cmd_env(&app, &cmd, &env, err) < 0) {
		bld_app_config_free(&app);
		return err_wrap(err, "image config");
	}
	struct bld_tree *tree = NULL;
	int r = bld_tree_new(spec->tmp_dir, &tree, err);
	if (r == 0 && spec->progress)
		bld_tree_set_progress(tree, spec->progress, spec->ctx);
	if (r == 0)
		r = bld_tree_apply_layers(tree, spec->layers, spec->n_layers, spec->layer_done, spec->ctx, err);
	if (r == 0) {
		if (spec->writing)
			spec->writing(spec->ctx);
		struct bld_initramfs_spec is = {.tree = tree,
		                                .odyn_path = spec->odyn_path,
		                                .manifest_data = spec->manifest_data,
		                                .manifest_len = spec->manifest_len,
		                                .config = &app,
		                                .source_date_epoch = spec->source_date_epoch};
		r = bld_initramfs_write_to(af, &is, err);
	}
	bld_tree_free(tree);
	bld_app_config_free(&app);
	return r;
}

int bld_customer_write(const char *out_path, const struct bld_customer_spec *spec, struct err **err)
{
	_cleanup_atomic_file_ struct atomic_file af = {.fd = -1};
	if (atomic_file_open(&af, out_path, 0644, err) < 0)
		return err_wrap(err, "customer ramdisk");
	if (bld_customer_write_to(&af, spec, err) < 0 || atomic_file_commit(&af, err) < 0)
		return err_wrap(err, "customer ramdisk %s", out_path);
	return 0;
}
