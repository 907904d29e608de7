/* cmd_ramdisk: developer entry points to the builder's pieces, one at a time (`enclaver
 * build` runs them all): `enclaver ramdisk bootstrap|customer` and `enclaver manifest check`. */
#include <getopt.h>
#include <string.h>

#include "builder/builder.h"
#include "manifest/manifest.h"
#include "cli/cli.h"

static void ramdisk_usage(FILE *f)
{
	fputs("Usage:\n"
	      "  enclaver ramdisk bootstrap --kernel-bundle DIR [--init FILE] --output FILE\n"
	      "  enclaver ramdisk customer --layer [MEDIA_TYPE=]FILE... --image-config FILE --odyn FILE\n"
	      "                            -f MANIFEST|- --output FILE [--tmpdir DIR]\n"
	      "\n"
	      "The two ramdisks `enclaver build` puts in an EIF, from local files (see docs/builder.md):\n"
	      "  bootstrap  dev, init, nsm.ko[, modules] from a kernel bundle, as nitro-cli's linuxkit\n"
	      "             writes it (--init supplies or replaces the bundle's init)\n"
	      "  customer   the image's layers (in order, bottom first; the media type defaults from\n"
	      "             the name: .tar, .tar.gz/.tgz, .tar.zst) flattened under rootfs/, with odyn,\n"
	      "             the manifest, and cmd/env from the image config's Entrypoint, Cmd, Env,\n"
	      "             WorkingDir and User. SOURCE_DATE_EPOCH sets the added entries' mtime.\n"
	      "Pass both to `enclaver eif build --ramdisk BOOTSTRAP --ramdisk CUSTOMER`.\n",
	      f);
}

enum { OPT_BUNDLE = 256, OPT_INIT, OPT_OUTPUT, OPT_LAYER, OPT_CONFIG, OPT_ODYN, OPT_TMPDIR, OPT_HELP };

static int bootstrap_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"kernel-bundle", required_argument, NULL, OPT_BUNDLE},
	    {"init", required_argument, NULL, OPT_INIT},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *bundle_dir = NULL, *init = NULL, *output = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_BUNDLE: bundle_dir = optarg; break;
		case OPT_INIT: init = optarg; break;
		case 'o': output = optarg; break;
		case 'h': ramdisk_usage(stdout); return EXIT_OK;
		default: return cli_usage_error("ramdisk", "bad option");
		}
	}
	if (!bundle_dir || !output || optind != argc)
		return cli_usage_error("ramdisk", "bootstrap needs --kernel-bundle and --output");
	struct err *err = NULL;
	struct bld_kernel_bundle *b = NULL;
	if (bld_kernel_bundle_load(bundle_dir, &b, &err) < 0)
		return cli_fail(&err);
	log_info("kernel bundle %s: %s %s, %s kernel, %zu module(s)%s%s", bundle_dir, b->os ? b->os : "unknown OS",
	         b->kernel_version ? b->kernel_version : "(no config)", b->aarch64 ? "aarch64" : "x86_64", b->n_modules,
	         b->nsm_path ? ", nsm.ko" : "", b->init_path ? ", init" : "");
	const char *init_path = init ? init : b->init_path;
	int rc = EXIT_OK;
	if (!init_path) {
		err_set(&err, ENOENT, "kernel bundle %s has no init: pass --init (odyn's init)", bundle_dir);
		rc = cli_fail(&err);
	} else {
		struct bld_bootstrap_spec spec = {.init_path = init_path,
		                                  .nsm_path = b->nsm_path,
		                                  .module_paths = (const char *const *)b->module_paths,
		                                  .n_modules = b->n_modules};
		if (bld_bootstrap_write(output, &spec, &err) < 0)
			rc = cli_fail(&err);
	}
	bld_kernel_bundle_free(b);
	return rc;
}

/* The media type a layer file's name implies. */
static const char *media_type_of(const char *path)
{
	size_t n = strlen(path);
#define ENDS(s) (n >= strlen(s) && strcmp(path + n - strlen(s), s) == 0)
	if (ENDS(".tar.gz") || ENDS(".tgz"))
		return "application/vnd.oci.image.layer.v1.tar+gzip";
	if (ENDS(".tar.zst"))
		return "application/vnd.oci.image.layer.v1.tar+zstd";
	return "application/vnd.oci.image.layer.v1.tar";
#undef ENDS
}

static int customer_run(const char *const *layer_args, size_t n_layers, const char *config_path, const char *odyn,
                        const char *manifest_path, const char *output, const char *tmpdir, struct err **err)
{
	_cleanup_free_ char *cfg_text = NULL;
	size_t len;
	if (io_read_file(config_path, 16u << 20, &cfg_text, &len, err) < 0)
		return err_wrap(err, "--image-config");
	json_error_t jerr;
	_cleanup_json_ json_t *doc = json_loadb(cfg_text, len, 0, &jerr);
	if (!doc)
		return err_set(err, EINVAL, "%s: line %d, column %d: %s", config_path, jerr.line, jerr.column,
		               jerr.text);
	int64_t sde = -1;
	if (getenv("SOURCE_DATE_EPOCH") && time_source_date_epoch(&sde, err) < 0)
		return -1;
	struct manifest *m = NULL;
	if (manifest_load(manifest_path, &m, err) < 0)
		return -1;
	/* --layer [MEDIA_TYPE=]FILE */
	_cleanup_free_ struct bld_layer *layers = xcalloc(n_layers + 1, sizeof(*layers));
	_cleanup_free_ char **types = xcalloc(n_layers + 1, sizeof(*types));
	for (size_t i = 0; i < n_layers; i++) {
		const char *arg = layer_args[i], *eq = strchr(arg, '=');
		layers[i].path = arg;
		if (eq && str_has_prefix(arg, "application/")) {
			types[i] = xstrndup(arg, (size_t)(eq - arg));
			layers[i].path = eq + 1;
		}
		layers[i].media_type = types[i] ? types[i] : media_type_of(layers[i].path);
	}
	struct bld_customer_spec spec = {.layers = layers,
	                                 .n_layers = n_layers,
	                                 .image_config = doc,
	                                 .odyn_path = odyn,
	                                 .manifest_data = m->raw,
	                                 .manifest_len = m->raw_len,
	                                 .source_date_epoch = sde,
	                                 .tmp_dir = tmpdir};
	int rc = bld_customer_write(output, &spec, err);
	for (size_t i = 0; i < n_layers; i++)
		free(types[i]);
	manifest_free(m);
	return rc;
}

static int customer_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"layer", required_argument, NULL, OPT_LAYER},
	    {"image-config", required_argument, NULL, OPT_CONFIG},
	    {"odyn", required_argument, NULL, OPT_ODYN},
	    {"file", required_argument, NULL, 'f'},
	    {"output", required_argument, NULL, 'o'},
	    {"tmpdir", required_argument, NULL, OPT_TMPDIR},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_free_ const char **layers = xcalloc((size_t)argc + 1, sizeof(char *));
	size_t n_layers = 0;
	const char *config = NULL, *odyn = NULL, *manifest = NULL, *output = NULL, *tmpdir = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_LAYER: layers[n_layers++] = optarg; break;
		case OPT_CONFIG: config = optarg; break;
		case OPT_ODYN: odyn = optarg; break;
		case 'f': manifest = optarg; break;
		case 'o': output = optarg; break;
		case OPT_TMPDIR: tmpdir = optarg; break;
		case 'h': ramdisk_usage(stdout); return EXIT_OK;
		default: return cli_usage_error("ramdisk", "bad option");
		}
	}
	if (!n_layers || !config || !odyn || !manifest || !output || optind != argc)
		return cli_usage_error("ramdisk",
		                       "customer needs --layer, --image-config, --odyn, -f MANIFEST and --output");
	struct err *err = NULL;
	if (customer_run(layers, n_layers, config, odyn, manifest, output, tmpdir, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}

int cmd_ramdisk(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("ramdisk", "which ramdisk: bootstrap or customer?");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		ramdisk_usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "bootstrap"))
		return bootstrap_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "customer"))
		return customer_main(argc - 1, argv + 1);
	return cli_usage_error("ramdisk", "unknown ramdisk \"%s\"", argv[1]);
}

/* ---------------------------------------------------------------- manifest check */

static json_t *strv_json(char **v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *manifest_json(const struct manifest *m)
{
	json_t *o = json_object();
	json_object_set_new(o, "version", json_string(m->version));
	json_object_set_new(o, "name", json_string(m->name));
	json_object_set_new(o, "target", json_string(m->target));
	json_t *src = json_object();
	json_object_set_new(src, "app", json_string(m->source_app));
	if (m->source_odyn)
		json_object_set_new(src, "odyn", json_string(m->source_odyn));
	if (m->source_sleeve)
		json_object_set_new(src, "sleeve", json_string(m->source_sleeve));
	json_object_set_new(o, "sources", src);
	if (m->signature_certificate)
		json_object_set_new(
		    o, "signature",
		    json_pack("{s:s,s:s}", "certificate", m->signature_certificate, "key", m->signature_key));
	json_object_set_new(
	    o, "defaults",
	    json_pack("{s:I,s:I}", "cpu_count", (json_int_t)(m->cpu_count ? m->cpu_count : MANIFEST_DEFAULT_CPU_COUNT),
	              "memory_mb", (json_int_t)(m->memory_mb ? m->memory_mb : MANIFEST_DEFAULT_MEMORY_MB)));
	json_t *ingress = json_array();
	for (size_t i = 0; i < m->n_ingress; i++) {
		json_t *in = json_pack("{s:i}", "listen_port", m->ingress[i].listen_port);
		if (m->ingress[i].tls_key_file)
			json_object_set_new(in, "tls",
			                    json_pack("{s:s,s:s}", "key_file", m->ingress[i].tls_key_file, "cert_file",
			                              m->ingress[i].tls_cert_file));
		json_array_append_new(ingress, in);
	}
	json_object_set_new(o, "ingress", ingress);
	if (m->has_egress)
		json_object_set_new(o, "egress",
		                    json_pack("{s:i,s:o,s:o}", "proxy_port", m->egress_proxy_port, "allow",
		                              strv_json(m->egress_allow, m->n_egress_allow), "deny",
		                              strv_json(m->egress_deny, m->n_egress_deny)));
	if (m->has_kms_proxy) {
		json_t *eps = json_object();
		for (size_t i = 0; i < m->n_kms_endpoints; i++)
			json_object_set_new(eps, m->kms_endpoints[i].region, json_string(m->kms_endpoints[i].host));
		json_object_set_new(o, "kms_proxy",
		                    json_pack("{s:i,s:o}", "listen_port", m->kms_listen_port, "endpoints", eps));
	}
	if (m->has_api)
		json_object_set_new(o, "api", json_pack("{s:i}", "listen_port", m->api_listen_port));
	return o;
}

int cmd_manifest(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"file", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
			fputs(
			    "Usage: enclaver manifest check [-f FILE|-]\n\n"
			    "Reads enclaver.yaml (default ./enclaver.yaml; - for stdin) as `enclaver build` will and\n"
			    "prints it as JSON with the defaults filled in, or the first error with its line and "
			    "column.\n",
			    stdout);
			return EXIT_OK;
		}
		return cli_usage_error("manifest", "want: manifest check [-f FILE|-]");
	}
	argc--, argv++;
	const char *path = "enclaver.yaml";
	int c;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		if (c == 'f')
			path = optarg;
		else if (c == 'h')
			return cmd_manifest(2, (char *[]){"manifest", "--help", NULL});
		else
			return cli_usage_error("manifest", "bad option");
	}
	if (optind != argc)
		return cli_usage_error("manifest", "unexpected argument \"%s\"", argv[optind]);
	struct err *err = NULL;
	struct manifest *m = NULL;
	if (manifest_load(path, &m, &err) < 0)
		return cli_fail(&err);
	_cleanup_json_ json_t *doc = manifest_json(m);
	manifest_free(m);
	if (cli_print_json(doc, &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}
