/* pipeline: `enclaver build` end to end: manifest, app image through the cache, flatten,
 * both ramdisks, the EIF, the release image and the JSON report, in a private temporary folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "builder/builder.h"
#include "builder/statement.h"
#include "manifest/manifest.h"
#include "eif/eif.h"
#include "keys/keys.h"

#define AWS_BLOBS_DIR "/usr/share/nitro_enclaves/blobs"

static bool bundle_has_kernel(const char *dir)
{
	_cleanup_free_ char *x86 = xasprintf("%s/bzImage", dir);
	_cleanup_free_ char *arm = xasprintf("%s/Image", dir);
	return access(x86, R_OK) == 0 || access(arm, R_OK) == 0;
}

int bld_kernel_bundle_default(const char *cache_dir, char **out, struct err **err)
{
	const char *env = getenv("ENCLAVER_KERNEL_BUNDLE");
	if (env && *env) {
		*out = xstrdup(env);
		return 0;
	}
	if (bundle_has_kernel(AWS_BLOBS_DIR)) {
		*out = xstrdup(AWS_BLOBS_DIR);
		return 0;
	}
	_cleanup_free_ char *cached = xasprintf("%s/kernel-bundle", cache_dir);
	if (bundle_has_kernel(cached)) {
		*out = steal_pointer(&cached);
		return 0;
	}
	return err_set(err, ENOENT,
	               "no kernel bundle (looked in %s and %s): run `enclaver kernel fetch` once to make %s from "
	               "Debian's kernel, or pass --kernel-bundle DIR or set ENCLAVER_KERNEL_BUNDLE",
	               AWS_BLOBS_DIR, cached, cached);
}

/* sha256 of a file, streamed. */
static int file_digest(const char *path, char out[OCI_DIGEST_MAX], struct err **err)
{
	uint64_t size;
	_cleanup_close_ int fd = io_open_regular(path, &size, err);
	if (fd < 0)
		return -1;
	return oci_digest_fd(fd, "sha256", out, NULL, err);
}

/* The image config's "created" as seconds, or -1 when absent or unparsable. */
static int64_t config_created(const json_t *doc)
{
	const char *s = json_string_value(json_object_get(doc, "created"));
	struct tm tm = {0};
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return -1;
	time_t t = timegm(&tm);
	return t < 0 ? -1 : (int64_t)t;
}

/* A step's line for the watcher (oci_progress: nothing without a progress callback). */
#define say(b, ...) oci_progress(&(b)->opts->oci, __VA_ARGS__)

/* A file's size in words ("12.3 MiB"), "?" when it cannot be read. */
static void file_size_text(const char *path, char out[32])
{
	struct stat st;
	if (stat(path, &st) == 0)
		oci_human_size((int64_t)st.st_size, out);
	else
		snprintf(out, 32, "?");
}

/* State of one build, freed by build_free. */
struct build {
	const struct bld_build_opts *opts;
	char *tmp;
	struct oci_cache cache;
	bool cache_open;
	struct manifest *manifest;
	struct bld_kernel_bundle *bundle;
	char *bundle_dir;
	struct oci_platform platform;
	char *platform_text;
	struct oci_image app; /* sources.app, pulled */
	/* sources.sleeve, when the manifest names one (sleeve.config set once pulled). */
	struct oci_image sleeve;
	const char *odyn_path; /* the odyn this build puts in: the user's, sources.odyn's, or the default */
	char *odyn_extracted;  /* b->tmp/odyn when it came from sources.odyn */
	char odyn_image_digest[OCI_DIGEST_MAX];
	char odyn_digest[OCI_DIGEST_MAX];
	int64_t sde;   /* SOURCE_DATE_EPOCH or -1 */
	int64_t epoch; /* the build's time: SOURCE_DATE_EPOCH, else the image's created, else 0 */
	struct eif_measurements measurements;
	struct bld_ramdisk_pending *customer_pending; /* a new cache entry until the EIF is written */
	char customer_key[OCI_DIGEST_MAX];            /* its key in the ramdisk cache */
	bool customer_reused;                         /* from the cache: the EIF writer checks its PCR2 */
	uint8_t customer_pcr2[48];                    /* the PCR2 it measured when it was made */
	struct sign_key *sign_key;                    /* --sign-key, opened before any work */
	char eif_sha256[OCI_DIGEST_MAX], eif_sha384[104]; /* the EIF's bytes, for the statement */
	char *release_blobs; /* the release image's staging folder in the cache, removed at the end */
};

static void build_free(struct build *b)
{
	sign_key_free(b->sign_key);
	bld_ramdisk_pending_free(b->customer_pending); /* before the folders go */
	if (b->tmp) {
		io_remove_tree(b->tmp);
		free(b->tmp);
	}
	if (b->release_blobs) {
		io_remove_tree(b->release_blobs);
		free(b->release_blobs);
	}
	if (b->cache_open)
		oci_cache_close(&b->cache);
	manifest_free(b->manifest);
	bld_kernel_bundle_free(b->bundle);
	free(b->bundle_dir);
	oci_platform_free(&b->platform);
	free(b->platform_text);
	oci_image_free(&b->app);
	oci_image_free(&b->sleeve);
	free(b->odyn_extracted);
}

static int step_kernel_bundle(struct build *b, struct err **err)
{
	if (b->opts->kernel_bundle)
		b->bundle_dir = xstrdup(b->opts->kernel_bundle);
	else if (bld_kernel_bundle_default(b->cache.dir, &b->bundle_dir, err) < 0)
		return -1;
	if (bld_kernel_bundle_load(b->bundle_dir, &b->bundle, err) < 0)
		return -1;
	const char *arch = b->bundle->aarch64 ? "arm64" : "amd64";
	if (b->opts->platform) {
		if (oci_platform_parse(b->opts->platform, &b->platform, err) < 0)
			return err_wrap(err, "--platform");
		if (strcmp(b->platform.architecture, arch) != 0)
			return err_set(err, EINVAL, "--platform %s does not match the kernel bundle %s (an %s kernel)",
			               b->opts->platform, b->bundle_dir, arch);
	} else {
		_cleanup_free_ char *text = xasprintf("linux/%s", arch);
		if (oci_platform_parse(text, &b->platform, err) < 0)
			return -1;
	}
	b->platform_text = oci_platform_format(&b->platform);
	say(b, "kernel bundle %s: %s %s, %s kernel, %zu module(s)", b->bundle_dir, b->bundle->os ? b->bundle->os : "",
	    b->bundle->kernel_version ? b->bundle->kernel_version : "(no config)", arch, b->bundle->n_modules);
	return 0;
}

/* Where odyn comes from: --odyn or $ENCLAVER_ODYN, else the manifest's sources.odyn image (its
 * /usr/local/bin/odyn, else /sbin/odyn, as the original's odyn images and our release images
 * hold it), else the odyn shipped with enclaver. Sets b->odyn_path and its digest. */
static int step_odyn(struct build *b, struct err **err)
{
	const char *src = b->manifest->source_odyn;
	if (src && b->opts->odyn_pinned)
		src = b->opts->odyn_pinned;
	if (b->opts->odyn_path) {
		b->odyn_path = b->opts->odyn_path;
		if (src)
			log_warn("%s: sources.odyn (%s) is overridden by the odyn binary %s", b->manifest->path, src,
			         b->odyn_path);
	} else if (src) {
		_cleanup_free_ char *local = xasprintf("%s/odyn.usr-local-bin", b->tmp);
		_cleanup_free_ char *sbin = xasprintf("%s/odyn.sbin", b->tmp);
		struct bld_image_file files[] = {{.path = "/usr/local/bin/odyn", .out = local, .optional = true},
		                                 {.path = "/sbin/odyn", .out = sbin, .optional = true}};
		struct oci_opts o = b->opts->oci;
		o.platform = b->platform_text;
		say(b, "pulling odyn from %s (%s)", src, b->platform_text);
		if (bld_image_files_extract(src, &o, &b->cache, files, 2, b->tmp, b->odyn_image_digest, err) < 0)
			return err_wrap(err, "%s: sources.odyn", b->manifest->path);
		if (!files[0].found && !files[1].found)
			return err_set(err, ENOENT, "%s: sources.odyn %s: the image has neither /usr/local/bin/odyn nor /sbin/odyn",
			               b->manifest->path, src);
		b->odyn_extracted = steal_pointer(files[0].found ? &local : &sbin);
		b->odyn_path = b->odyn_extracted;
	} else if (b->opts->odyn_default) {
		b->odyn_path = b->opts->odyn_default;
	} else {
		return err_set(err, ENOENT,
		               "no odyn binary: pass --odyn FILE, set ENCLAVER_ODYN or name an odyn image in sources.odyn "
		               "(`make` builds bin/odyn next to enclaver)");
	}
	if (file_digest(b->odyn_path, b->odyn_digest, err) < 0)
		return err_wrap(err, "odyn binary %s", b->odyn_path);
	return 0;
}

/* Pulls an image (sources.KEY) for the build's platform into the build's cache, parsed. */
static int pull_image(struct build *b, const char *key, const char *ref, struct oci_image *img, struct err **err)
{
	struct oci_opts o = b->opts->oci;
	o.platform = b->platform_text;
	say(b, "pulling sources.%s %s (%s)", key, ref, b->platform_text);
	if (oci_pull_image(ref, &o, &b->cache, img, err) < 0)
		return err_wrap(err, "sources.%s %s", key, ref);
	int64_t total = 0;
	for (size_t i = 0; i < img->manifest.n_layers; i++)
		total += img->manifest.layers[i].size;
	char size[32];
	oci_human_size(total, size);
	say(b, "sources.%s %s: image %.19s, %zu layer(s), %s", key, ref, img->digest, img->manifest.n_layers, size);
	return 0;
}

/* Pulls sources.app. */
static int step_pull(struct build *b, struct err **err)
{
	const char *pinned = b->opts->app_pinned;
	return pull_image(b, "app", pinned ? pinned : b->manifest->source_app, &b->app, err);
}

/* Pulls sources.sleeve and checks it is an image for the build's platform: its config's os,
 * architecture (and variant, when both name one) are the release image's. */
static int step_sleeve(struct build *b, struct err **err)
{
	const char *ref = b->manifest->source_sleeve;
	if (pull_image(b, "sleeve", ref, &b->sleeve, err) < 0)
		return err_wrap(err, "%s", b->manifest->path);
	const char *os = json_string_value(json_object_get(b->sleeve.config, "os"));
	const char *arch = json_string_value(json_object_get(b->sleeve.config, "architecture"));
	const char *variant = json_string_value(json_object_get(b->sleeve.config, "variant"));
	_cleanup_free_ char *text =
	    xasprintf("%s/%s%s%s", os ? os : "", arch ? arch : "", variant ? "/" : "", variant ? variant : "");
	struct oci_platform p;
	struct err *bad = NULL;
	if (!os || !arch || oci_platform_parse(text, &p, &bad) < 0) {
		err_free(&bad);
		return err_set(err, EINVAL, "%s: sources.sleeve %s: config has no valid os/architecture (\"%s\")",
		               b->manifest->path, ref, text);
	}
	bool same = strcmp(p.os, b->platform.os) == 0 && strcmp(p.architecture, b->platform.architecture) == 0 &&
	            (!p.variant || !b->platform.variant || strcmp(p.variant, b->platform.variant) == 0);
	oci_platform_free(&p);
	if (!same)
		return err_set(err, EINVAL, "%s: sources.sleeve %s is a %s image; the release image is %s",
		               b->manifest->path, ref, text, b->platform_text);
	return 0;
}

/* The flatten's status line on a terminal: the layer, and bytes of all the layers read. */
struct flatten_status {
	const struct build *b;
	const struct oci_opts *opts;
	size_t layer, n_layers;
	int64_t before, total; /* bytes of the layers done, of all of them */
	int64_t last_ms;
};

static void flatten_status_draw(void *ctx, uint64_t blob_bytes)
{
	struct flatten_status *s = ctx;
	int64_t now = time_monotonic_ms();
	if (now - s->last_ms < 200)
		return;
	s->last_ms = now;
	int64_t done = s->before + (int64_t)blob_bytes;
	if (done > s->total)
		done = s->total; /* the reader's buffer runs ahead of the entries */
	char a[32], b[32];
	oci_human_size(done, a);
	oci_human_size(s->total, b);
	oci_status_line(s->opts, "flattening layer %zu/%zu: %s of %s (%d%%)", s->layer, s->n_layers, a, b,
	                s->total > 0 ? (int)(100 * done / s->total) : 100);
}

static void flatten_layer_done(void *ctx, size_t i)
{
	struct flatten_status *s = ctx;
	const struct oci_desc *d = &s->b->app.manifest.layers[i];
	s->before += d->size;
	s->layer = i + 2;
	char size[32];
	oci_human_size(d->size, size);
	oci_status_clear(s->opts);
	say(s->b, "flattened layer %zu/%zu %.19s (%s)", i + 1, s->n_layers, d->digest, size);
}

static void flatten_writing(void *ctx)
{
	struct flatten_status *s = ctx;
	oci_status_line(s->opts, "writing the customer ramdisk");
}

/* Flattens the layers and writes the customer ramdisk into af (opened, not committed). */
static int step_customer(struct build *b, struct atomic_file *af, struct err **err)
{
	const struct oci_manifest *m = &b->app.manifest;
	struct flatten_status st = {.b = b, .opts = &b->opts->oci, .n_layers = m->n_layers, .layer = 1};
	for (size_t i = 0; i < m->n_layers; i++)
		st.total += m->layers[i].size;
	struct bld_layer *layers = NULL;
	int r = bld_layers_from_cache(&b->cache, m, &layers, err);
	if (r == 0) {
		struct bld_customer_spec spec = {.layers = layers,
		                                 .n_layers = m->n_layers,
		                                 .image_config = b->app.config,
		                                 .odyn_path = b->odyn_path,
		                                 .manifest_data = b->manifest->raw,
		                                 .manifest_len = b->manifest->raw_len,
		                                 .source_date_epoch = b->sde,
		                                 .tmp_dir = b->tmp,
		                                 .progress = oci_status_wanted(&b->opts->oci) ? flatten_status_draw : NULL,
		                                 .layer_done = flatten_layer_done,
		                                 .writing = flatten_writing,
		                                 .ctx = &st};
		r = bld_customer_write_to(af, &spec, err);
		oci_status_clear(&b->opts->oci);
		bld_layers_free(layers, m->n_layers);
	}
	if (r < 0)
		return err_wrap(err, "sources.app %s", b->manifest->source_app);
	char size[32];
	file_size_text(af->tmp_path, size);
	say(b, "customer ramdisk written: %s", size);
	return 0;
}

/* The customer ramdisk's cache key: every input step_customer reads. */
static void customer_key(const struct build *b, char key[OCI_DIGEST_MAX])
{
	struct bld_ramdisk_key *k = bld_ramdisk_key_new();
	for (size_t i = 0; i < b->app.manifest.n_layers; i++) {
		bld_ramdisk_key_add(k, b->app.manifest.layers[i].digest);
		bld_ramdisk_key_add(k, b->app.manifest.layers[i].media_type);
	}
	bld_ramdisk_key_add(k, b->app.manifest.config.digest);
	bld_ramdisk_key_add(k, b->odyn_digest);
	bld_ramdisk_key_add_bytes(k, b->manifest->raw, b->manifest->raw_len);
	bld_ramdisk_key_add_bytes(k, &b->sde, sizeof(b->sde));
	bld_ramdisk_key_final(k, key);
}

/* The customer ramdisk from the cache when a build with the same inputs made it, else made now
 * (into the cache, or the temporary folder with --no-ramdisk-cache). *path: where it is. */
static int step_customer_cached(struct build *b, char **path, struct err **err)
{
	_cleanup_atomic_file_ struct atomic_file af = {.fd = -1};
	if (b->opts->no_ramdisk_cache) {
		*path = xasprintf("%s/customer.cpio", b->tmp);
		if (atomic_file_open(&af, *path, 0644, err) < 0)
			return err_wrap(err, "customer ramdisk");
		if (step_customer(b, &af, err) < 0)
			return -1;
		if (atomic_file_commit(&af, err) < 0)
			return err_wrap(err, "customer ramdisk %s", *path);
		return 0;
	}
	char *key = b->customer_key;
	customer_key(b, key);
	if (bld_ramdisk_cache_lookup(b->cache.dir, key, path, b->customer_pcr2)) {
		say(b, "customer ramdisk unchanged: reusing %s", *path);
		b->customer_reused = true;
		return 0;
	}
	b->customer_reused = false;
	if (bld_ramdisk_cache_prepare(b->cache.dir, err) < 0)
		return -1;
	if (atomic_file_open(&af, *path, 0644, err) < 0)
		return err_wrap(err, "customer ramdisk");
	if (step_customer(b, &af, err) < 0)
		return -1;
	/* Into the cache once the EIF is written from its temporary file (step_customer_commit);
	 * flushing it to disk meanwhile takes that off the build's time. */
	b->customer_pending = bld_ramdisk_pending_start(&af);
	free(*path);
	*path = xstrdup(bld_ramdisk_pending_path(b->customer_pending));
	return 0;
}

/* The new customer ramdisk into the cache, whatever became of the EIF: it is complete. Its PCR2
 * goes first (the EIF's, or measured here when there is no EIF), so a cached ramdisk always has
 * one to be checked against. */
static int step_customer_commit(struct build *b, bool eif_ok, struct err **err)
{
	if (!b->customer_pending)
		return 0;
	_cleanup_free_ char *tmp = xstrdup(bld_ramdisk_pending_path(b->customer_pending));
	uint8_t pcr2[EIF_PCR_MAX];
	if (eif_ok)
		memcpy(pcr2, b->measurements.pcr2, 48);
	int r = eif_ok ? 0 : eif_pcr_of_file(EIF_HASH_SHA384, tmp, pcr2, err);
	if (r == 0)
		r = bld_ramdisk_cache_set_pcr2(b->cache.dir, b->customer_key, pcr2, err);
	if (r == 0)
		r = bld_ramdisk_pending_commit(b->customer_pending, err);
	bld_ramdisk_pending_free(b->customer_pending);
	b->customer_pending = NULL;
	if (r < 0)
		return err_wrap(err, "customer ramdisk %s", tmp);
	bld_ramdisk_cache_prune(b->cache.dir);
	return 0;
}

static int step_bootstrap(struct build *b, const char *out, struct err **err)
{
	/* Debian's kernel has no enclave init: odyn is one when it runs as PID 1. */
	struct bld_bootstrap_spec spec = {.init_path = b->bundle->init_path ? b->bundle->init_path : b->odyn_path,
	                                  .nsm_path = b->bundle->nsm_path,
	                                  .module_paths = (const char *const *)b->bundle->module_paths,
	                                  .n_modules = b->bundle->n_modules};
	if (bld_bootstrap_write(out, &spec, err) < 0)
		return -1;
	char size[32];
	file_size_text(out, size);
	say(b, "bootstrap ramdisk written: %s", size);
	return 0;
}

static int step_eif(struct build *b, const char *out, const char *bootstrap, const char *customer, struct err **err)
{
	const struct manifest *m = b->manifest;
	_cleanup_json_ json_t *docker_info =
	    json_pack("{s:s, s:s, s:s, s:s}", "Image", m->source_app, "Digest", b->app.digest, "ImageID",
	              b->app.manifest.config.digest, "Platform", b->platform_text);
	/* The image version is the target's tag, as nitro-cli takes the docker tag. */
	_cleanup_free_ char *version = NULL;
	struct oci_ref target = {0};
	struct err *ignored = NULL;
	if (m->target && oci_ref_parse(m->target, &target, &ignored) == 0 && target.tag)
		version = xstrdup(target.tag);
	oci_ref_free(&target);
	err_free(&ignored);
	char build_time[32];
	time_format_rfc3339(b->epoch, build_time);
	struct eif_identity id = {.image_name = m->name ? m->name : "enclave",
	                          .image_version = version ? version : "latest",
	                          .build_time = build_time,
	                          .build_tool = "enclaver",
	                          .build_tool_version = ENCLAVER_VERSION,
	                          .os = b->bundle->os ? b->bundle->os : "OS",
	                          .kernel_version = b->bundle->kernel_version ? b->bundle->kernel_version : "kernel",
	                          .docker_info = docker_info};
	struct keys_eif_signer ks = {0};
	if (m->signature_certificate &&
	    keys_eif_signer_open(m->signature_certificate, m->signature_key, NULL, &ks, err) < 0) {
		keys_eif_signer_close(&ks);
		return err_wrap(err, "%s: signature", m->path);
	}
	const struct eif_signer *signer = ks.eif;
	bool is_signed = signer != NULL;
	const char *ramdisks[] = {bootstrap, customer};
	struct eif_build_spec spec = {.kernel_path = b->bundle->kernel_path,
	                              .cmdline = b->bundle->cmdline,
	                              .ramdisk_paths = ramdisks,
	                              .n_ramdisks = 2,
	                              .flags = b->bundle->aarch64 ? EIF_FLAG_ARCH_AARCH64 : 0,
	                              .identity = &id,
	                              .signer = signer,
	                              .alg = EIF_HASH_SHA384,
	                              .expect_pcr2 = b->customer_reused ? b->customer_pcr2 : NULL};
	oci_status_line(&b->opts->oci, "writing the EIF%s", signer ? " (signed)" : "");
	int r = eif_build(out, &spec, &b->measurements, err);
	oci_status_clear(&b->opts->oci);
	keys_eif_signer_close(&ks);
	if (r < 0)
		return -1;
	char size[32], hex[2 * EIF_PCR_MAX + 1];
	file_size_text(out, size);
	say(b, "EIF written: %s%s", size, is_signed ? ", signed" : "");
	/* A warning, not a failure: `enclaver run --memory-mb` can still give it enough. */
	uint64_t need, have = m->memory_mb ? (uint64_t)m->memory_mb : MANIFEST_DEFAULT_MEMORY_MB;
	_cleanup_err_ struct err *me = NULL;
	if (eif_file_memory_needed_mib(out, &need, &me) < 0)
		log_warn("%s: cannot size its memory needs: %s", out, me->msg);
	else if (have < need)
		log_warn(
		    "%s: defaults.memory_mb is %llu MiB%s, but this EIF needs at least %llu MiB (kernel, its "
		    "ramdisks twice while they unpack, and %d MiB for the kernel and the app): the kernel would fail "
		    "to unpack the ramdisk and the app would not be found; set defaults.memory_mb to %llu or more "
		    "(or run with --memory-mb)",
		    m->path, (unsigned long long)have, m->memory_mb ? "" : " (the default)", (unsigned long long)need,
		    EIF_MEMORY_MARGIN_MIB, (unsigned long long)need);
	size_t hl = eif_hash_len(b->measurements.alg);
	const uint8_t *pcrs[] = {b->measurements.pcr0, b->measurements.pcr1, b->measurements.pcr2,
	                         b->measurements.pcr8};
	const int ids[] = {0, 1, 2, 8};
	for (size_t i = 0; i < (b->measurements.has_pcr8 ? 4u : 3u); i++) {
		hex_encode(pcrs[i], hl, hex);
		say(b, "PCR%d %s", ids[i], hex);
	}
	return 0;
}

/* The build's statement (builder/statement.h) with the given subject, in its DSSE envelope:
 * signed with --sign-key, else unsigned. *digest gets the statement's own SHA-256. */
static int step_statement(struct build *b, const char *subject_name, const char *subject_digest, char **envelope,
                          char digest[OCI_DIGEST_MAX], struct err **err)
{
	char kernel_digest[OCI_DIGEST_MAX], runtime_digest[OCI_DIGEST_MAX];
	_cleanup_json_ json_t *kernel_files = NULL;
	if (bld_kernel_bundle_digest(b->bundle, kernel_digest, &kernel_files, err) < 0)
		return err_wrap(err, "statement");
	if (b->opts->runtime_path && !b->opts->eif_only && file_digest(b->opts->runtime_path, runtime_digest, err) < 0)
		return err_wrap(err, "statement: enclaver-run");
	const struct manifest *m = b->manifest;
	struct bld_statement_spec spec = {
	    .subject_name = subject_name,
	    .subject_digest = subject_digest,
	    .platform = b->platform_text,
	    .app_ref = m->source_app,
	    .app_digest = b->app.digest,
	    .app_config_digest = b->app.manifest.config.digest,
	    .odyn_source = b->odyn_extracted    ? BLD_ODYN_IMAGE
	                   : b->opts->odyn_path ? BLD_ODYN_FILE
	                                        : BLD_ODYN_BUNDLED,
	    .odyn_digest = b->odyn_digest,
	    .odyn_image_ref = m->source_odyn,
	    .odyn_image_digest = b->odyn_image_digest,
	    .kernel_digest = kernel_digest,
	    .kernel_files = kernel_files,
	    .kernel_dir = b->bundle_dir,
	    .kernel_version = b->bundle->kernel_version,
	    .kernel_os = b->bundle->os,
	    .manifest_data = m->raw,
	    .manifest_len = m->raw_len,
	    .sleeve_ref = b->sleeve.config ? m->source_sleeve : NULL,
	    .sleeve_digest = b->sleeve.digest,
	    .runtime_digest = b->opts->runtime_path && !b->opts->eif_only ? runtime_digest : NULL,
	    .source_date_epoch = b->sde,
	    .eif_sha256 = b->eif_sha256,
	    .eif_sha384 = b->eif_sha384,
	    .measurements = &b->measurements,
	};
	_cleanup_free_ char *statement = NULL;
	if (bld_statement_make(&spec, &statement, err) < 0 ||
	    bld_statement_envelope(statement, b->sign_key, envelope, err) < 0)
		return err_wrap(err, "statement");
	oci_digest_buf(statement, strlen(statement), digest);
	return 0;
}

/* --eif-only: the statement beside the EIF, <eif>.intoto.jsonl (one envelope, one line). */
static int step_statement_file(struct build *b, const char *eif, json_t *image, struct err **err)
{
	const char *slash = strrchr(eif, '/');
	_cleanup_free_ char *envelope = NULL, *path = xasprintf("%s" BLD_STATEMENT_FILE_SUFFIX, eif);
	char digest[OCI_DIGEST_MAX];
	if (step_statement(b, slash ? slash + 1 : eif, b->eif_sha256, &envelope, digest, err) < 0)
		return -1;
	_cleanup_free_ char *line = xasprintf("%s\n", envelope);
	if (atomic_file_write(path, 0644, line, strlen(line), err) < 0)
		return err_wrap(err, "statement");
	say(b, "statement %.19s written to %s%s", digest, path,
	    b->sign_key ? ", signed" : ", UNSIGNED (no --sign-key)");
	json_object_set_new(
	    image, "Statement",
	    json_pack("{s:s, s:s, s:b}", "Path", path, "Digest", digest, "Signed", b->sign_key != NULL));
	return 0;
}

/* --push: the statement attached to the pushed image (.att tag, and a referrer where the registry
 * has the API); entry (the report's "Written" line) gets "Statement". */
static int step_attest(struct build *b, const char *dst, const char *pushed, const struct oci_opts *o, json_t *entry,
                       struct err **err)
{
	struct oci_ref ref;
	if (oci_ref_parse(dst, &ref, err) < 0)
		return -1;
	_cleanup_free_ char *name = xasprintf("%s/%s", ref.registry, ref.repository);
	bool registry = ref.transport == OCI_TRANSPORT_DOCKER;
	oci_ref_free(&ref);
	if (!registry) { /* cosign's attachments live beside an image in a registry only */
		say(b, "no statement attached: %s is not a registry", dst);
		return 0;
	}
	_cleanup_free_ char *envelope = NULL;
	char digest[OCI_DIGEST_MAX];
	if (step_statement(b, name, pushed, &envelope, digest, err) < 0)
		return -1;
	struct bld_attestation att;
	if (bld_attach_attestation(dst, pushed, envelope, o, &att, err) < 0)
		return -1;
	say(b, "release image %.19s attested%s: %s%s%s", pushed,
	    b->sign_key ? "" : " (UNSIGNED statement: no --sign-key)", att.att_ref,
	    att.referrer ? ", referrer " : " (the registry has no referrers API)", att.referrer ? att.referrer : "");
	json_object_set_new(entry, "Statement",
	                    json_pack("{s:s, s:b, s:s, s:s?, s:b}", "Digest", digest, "Signed", b->sign_key != NULL,
	                              "Attestation", att.att_ref, "Referrer", att.referrer, "ReferrersAPI",
	                              att.referrers_api));
	bld_attestation_free(&att);
	return 0;
}

/* Writes the release image's new blobs once (into a staging folder beside the cache's blobs),
 * then puts it to --output and --push from there; *image gets the report's "Image". */
static int step_release(struct build *b, const char *eif, json_t **image, struct err **err)
{
	const struct eif_measurements *me = &b->measurements;
	size_t hl = eif_hash_len(me->alg);
	char pcr[4][2 * EIF_PCR_MAX + 1];
	hex_encode(me->pcr0, hl, pcr[0]);
	hex_encode(me->pcr1, hl, pcr[1]);
	hex_encode(me->pcr2, hl, pcr[2]);
	if (me->has_pcr8)
		hex_encode(me->pcr8, hl, pcr[3]);
	const char *keys[8] = {"io.enclaver.source.app", "io.enclaver.source.app.digest",
	                       "io.enclaver.pcr0",       "io.enclaver.pcr1",
	                       "io.enclaver.pcr2",       "io.enclaver.pcr8"};
	const char *values[8] = {b->manifest->source_app, b->app.digest, pcr[0], pcr[1], pcr[2], pcr[3]};
	size_t n_labels = me->has_pcr8 ? 6 : 5;
	if (b->sleeve.config) {
		keys[n_labels] = "io.enclaver.source.sleeve";
		values[n_labels++] = b->manifest->source_sleeve;
		keys[n_labels] = "io.enclaver.source.sleeve.digest";
		values[n_labels++] = b->sleeve.digest;
	}
	struct bld_release_sleeve sleeve = {.ref = b->manifest->source_sleeve,
	                                    .digest = b->sleeve.digest,
	                                    .config = b->sleeve.config,
	                                    .layers = b->sleeve.manifest.layers,
	                                    .n_layers = b->sleeve.manifest.n_layers,
	                                    .cache = &b->cache};
	struct bld_release_spec spec = {.sleeve = b->sleeve.manifest_parsed ? &sleeve : NULL,
	                                .runtime_path = b->opts->runtime_path,
	                                .eif_path = eif,
	                                .manifest_data = b->manifest->raw,
	                                .manifest_len = b->manifest->raw_len,
	                                .platform = &b->platform,
	                                .created = b->epoch,
	                                .label_keys = keys,
	                                .label_values = values,
	                                .n_labels = n_labels};
	_cleanup_(bld_release_image_free) struct bld_release_image rel = {0};
	if (oci_cache_staging_create(&b->cache, "release", &b->release_blobs, err) < 0 ||
	    bld_release_write(b->release_blobs, &spec, &rel, err) < 0)
		return -1;
	say(b, "release image %.19s: %zu layer(s)", rel.digest, rel.n_layers);
	json_t *written = json_array();
	char runtime_digest[OCI_DIGEST_MAX];
	if (b->opts->runtime_path && file_digest(b->opts->runtime_path, runtime_digest, err) < 0) {
		json_decref(written);
		return err_wrap(err, "enclaver-run");
	}
	*image = b->opts->runtime_path
	             ? json_pack("{s:s, s:o, s:{s:s, s:s}}", "Digest", rel.digest, "Written", written, "Runtime",
	                         "Path", b->opts->runtime_path, "Digest", runtime_digest)
	             : json_pack("{s:s, s:o, s:s}", "Digest", rel.digest, "Written", written, "Runtime",
	                         "not included: no static enclaver-run was found (ENCLAVER_RUN, or enclaver-run.static "
	                         "next to enclaver); the image holds the EIF and manifest only");
	const char *push = b->opts->push;
	if (push && !*push) {
		if (!b->manifest->target)
			return err_set(err, EINVAL, "--push without a reference needs `target` in %s",
			               b->manifest->path);
		push = b->manifest->target;
	}
	const char *dsts[] = {b->opts->output, push};
	for (size_t i = 0; i < 2; i++) {
		if (!dsts[i])
			continue;
		struct oci_copy_result res;
		say(b, "%s the release image to %s", i ? "pushing" : "writing", dsts[i]);
		struct oci_opts o = b->opts->oci;
		o.mount_from = b->sleeve.config ? b->manifest->source_sleeve : NULL; /* its blobs need not travel */
		if (oci_put_local_image(dsts[i], &o, &b->cache, b->release_blobs, rel.manifest, rel.manifest_len,
		                        OCI_MT_MANIFEST, &res, err) < 0)
			return err_wrap(err, "release image to %s", dsts[i]);
		if (strcmp(res.manifest_digest, rel.digest) != 0) {
			/* A destination that only takes Docker media types would change the digest. */
			log_warn("%s holds the release image as %s", dsts[i], res.manifest_digest);
		}
		say(b, "release image %s to %s (%d blob(s) sent, %d mounted, %d already there)",
		    i ? "pushed" : "written", dsts[i], res.blobs_sent, res.blobs_mounted, res.blobs_skipped);
		json_t *entry = json_pack("{s:s, s:s}", "Reference", dsts[i], "Digest", res.manifest_digest);
		json_array_append_new(written, entry);
		if (i == 1 && b->sign_key) {
			struct bld_image_signature sig;
			int sr = bld_sign_image(dsts[i], res.manifest_digest, b->sign_key, &b->opts->oci, &sig, err);
			if (sr < 0) {
				err_wrap(err, "the release image %s is pushed to %s UNSIGNED: signing it", res.manifest_digest,
				         dsts[i]);
				oci_copy_result_free(&res);
				return -1;
			}
			say(b, "release image %.19s signed: %s", res.manifest_digest, sig.signature_ref);
			json_object_set_new(entry, "Signature", json_string(sig.signature_ref));
			bld_image_signature_free(&sig);
		}
		if (i == 1 && step_attest(b, dsts[i], res.manifest_digest, &b->opts->oci, entry, err) < 0) {
			err_wrap(err, "the release image %s is pushed to %s NOT ATTESTED: attaching its statement",
			         res.manifest_digest, dsts[i]);
			oci_copy_result_free(&res);
			return -1;
		}
		oci_copy_result_free(&res);
	}
	if (!b->opts->output && !push)
		say(b, "release image %.19s not written anywhere: pass --output oci:DIR[:TAG] or --push[=REF]",
		    rel.digest);
	return 0;
}

/* --sign-key: the push goes to a registry (only those hold signatures) and the key opens; with
 * --eif-only it signs the statement beside the EIF. */
static int sign_key_check_push(struct build *b, struct err **err)
{
	if (b->opts->eif_only)
		return sign_key_open(b->opts->sign_key, &b->sign_key, err) < 0 ? err_wrap(err, "--sign-key") : 0;
	const char *push = b->opts->push && *b->opts->push ? b->opts->push : b->manifest->target;
	if (!b->opts->push || !push)
		return err_set(err, EINVAL, "--sign-key signs the pushed image: add --push[=REF]");
	struct oci_ref ref;
	if (oci_ref_parse(push, &ref, err) < 0)
		return -1;
	bool docker = ref.transport == OCI_TRANSPORT_DOCKER;
	oci_ref_free(&ref);
	if (!docker)
		return err_set(err, EINVAL, "--sign-key: %s is not a registry; only images in a registry are signed",
		               push);
	return sign_key_open(b->opts->sign_key, &b->sign_key, err) < 0 ? err_wrap(err, "--sign-key") : 0;
}

static json_t *report_sources(const struct build *b)
{
	json_t *app =
	    json_pack("{s:s, s:s, s:s, s:s}", "Image", b->manifest->source_app, "Digest", b->app.digest,
	              "ImageID", b->app.manifest.config.digest, "Platform", b->platform_text);
	json_t *odyn = b->odyn_extracted
	                   ? json_pack("{s:s, s:s, s:s}", "Image", b->manifest->source_odyn, "ImageDigest",
	                               b->odyn_image_digest, "Digest", b->odyn_digest)
	                   : json_pack("{s:s, s:s}", "Path", b->odyn_path, "Digest", b->odyn_digest);
	json_t *kernel = json_pack("{s:s, s:s?}", "Bundle", b->bundle_dir, "KernelVersion", b->bundle->kernel_version);
	json_t *sources = json_pack("{s:o, s:o, s:o}", "App", app, "Odyn", odyn, "Kernel", kernel);
	if (b->sleeve.config)
		json_object_set_new(sources, "Sleeve",
		                    json_pack("{s:s, s:s, s:s}", "Image", b->manifest->source_sleeve, "Digest",
		                              b->sleeve.digest, "ImageID", b->sleeve.manifest.config.digest));
	return sources;
}

int bld_build(const struct bld_build_opts *opts, json_t **result, struct err **err)
{
	*result = NULL;
	struct build b = {.opts = opts, .sde = -1};
	/* Declared before the first goto: cleanups must not see uninitialised pointers. */
	_cleanup_free_ char *customer = NULL, *bootstrap = NULL, *eif = NULL;
	_cleanup_json_ json_t *image = NULL;
	int r = -1;
	if (manifest_load(opts->manifest_path, &b.manifest, err) < 0)
		goto out;
	if (opts->sde_pinned)
		b.sde = opts->sde;
	else if (getenv("SOURCE_DATE_EPOCH") && time_source_date_epoch(&b.sde, err) < 0)
		goto out;
	/* The signing key before any work: a wrong one must not cost a build, nor leave an image
	 * pushed unsigned. */
	if (opts->sign_key && sign_key_check_push(&b, err) < 0)
		goto out;
	if (oci_cache_open(opts->oci.cache_dir, &b.cache, err) < 0)
		goto out;
	b.cache_open = true;
	if (step_kernel_bundle(&b, err) < 0)
		goto out;

	if (io_tmpdir_create(opts->tmp_dir, "enclaver-build", &b.tmp, err) < 0)
		goto out;
	if (step_odyn(&b, err) < 0 || step_pull(&b, err) < 0)
		goto out;
	/* The sleeve before the long steps: a bad one fails the build early. */
	if (b.manifest->source_sleeve && !opts->eif_only && step_sleeve(&b, err) < 0)
		goto out;
	int64_t created = config_created(b.app.config);
	b.epoch = b.sde >= 0 ? b.sde : created >= 0 ? created : 0;

	bootstrap = xasprintf("%s/bootstrap.cpio", b.tmp);
	eif = opts->eif_only ? xstrdup(opts->eif_only) : xasprintf("%s/application.eif", b.tmp);
	if (step_customer_cached(&b, &customer, err) < 0)
		goto out;
	bool eif_ok = step_bootstrap(&b, bootstrap, err) == 0 && step_eif(&b, eif, bootstrap, customer, err) == 0;
	if (!eif_ok && b.customer_reused && (*err)->code == EBADMSG) {
		/* The cached ramdisk changed since it was made (the EIF writer refused it before putting
		 * the EIF in place): it goes, and this build makes its own. */
		log_warn("cached customer ramdisk %s: %s: removed, flattening the image again", customer, (*err)->msg);
		err_free(err);
		bld_ramdisk_cache_drop(b.cache.dir, b.customer_key);
		free(steal_pointer(&customer));
		if (step_customer_cached(&b, &customer, err) < 0)
			goto out;
		eif_ok = step_eif(&b, eif, bootstrap, customer, err) == 0;
	}
	/* A finished customer ramdisk goes into the cache whatever happened after it. Failing to
	 * file it only costs the next build its shortcut: a warning, never this build's failure
	 * (the EIF may already be in place). */
	struct err *cache_err = NULL;
	if (step_customer_commit(&b, eif_ok, &cache_err) < 0) {
		log_warn("ramdisk cache: %s", cache_err->msg);
		err_free(&cache_err);
	}
	if (!eif_ok)
		goto out;
	if (bld_file_digests(eif, b.eif_sha256, b.eif_sha384, err) < 0)
		goto out;
	if (!opts->eif_only && step_release(&b, eif, &image, err) < 0)
		goto out;
	if (opts->eif_only) {
		image = json_pack("{s:s}", "EIF", opts->eif_only);
		if (step_statement_file(&b, eif, image, err) < 0) {
			err_wrap(err, "the EIF %s is written, its statement is NOT", eif);
			goto out;
		}
	}
	*result = json_pack("{s:o, s:o, s:O}", "Sources", report_sources(&b), "Measurements",
	                    eif_measurements_json(&b.measurements), "Image", image);
	r = 0;
out:
	build_free(&b);
	return r;
}
