/* statement: makes and reads the in-toto statement of a build (builder/statement.h). Making it
 * is deterministic: jansson with sorted keys and no clock (the one time, startedOn, is
 * SOURCE_DATE_EPOCH's). Reading takes untrusted JSON and names the field in every error. */
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "builder/builder.h"
#include "builder/statement.h"

/* ---------------------------------------------------------------- digests */
int bld_file_digests(const char *path, char sha256[OCI_DIGEST_MAX], char sha384[104], struct err **err)
{
	uint64_t size;
	_cleanup_close_ int fd = io_open_regular(path, &size, err);
	if (fd < 0)
		return -1;
	EVP_MD_CTX *c256 = EVP_MD_CTX_new(), *c384 = EVP_MD_CTX_new();
	if (!c256 || !c384 || EVP_DigestInit_ex(c256, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(c384, EVP_sha384(), NULL) != 1)
		out_of_memory("digest");
	_cleanup_free_ uint8_t *chunk = xmalloc(1 << 20);
	int r = 0;
	for (;;) {
		ssize_t n = io_read_full(fd, chunk, 1 << 20, err);
		if (n < 0) {
			r = err_wrap(err, "read %s", path);
			break;
		}
		EVP_DigestUpdate(c256, chunk, (size_t)n);
		EVP_DigestUpdate(c384, chunk, (size_t)n);
		if (n < 1 << 20)
			break;
	}
	uint8_t md[48];
	char hex[97];
	if (r == 0) {
		EVP_DigestFinal_ex(c256, md, NULL);
		hex_encode(md, 32, hex);
		snprintf(sha256, OCI_DIGEST_MAX, "sha256:%s", hex);
		EVP_DigestFinal_ex(c384, md, NULL);
		hex_encode(md, 48, hex);
		snprintf(sha384, 104, "sha384:%s", hex);
	}
	EVP_MD_CTX_free(c256);
	EVP_MD_CTX_free(c384);
	return r;
}

/* A bundle file's name in the digest: its path under the bundle folder, else its base name. */
static const char *bundle_name(const struct bld_kernel_bundle *b, const char *path)
{
	size_t n = strlen(b->dir);
	if (strncmp(path, b->dir, n) == 0 && path[n] == '/')
		return path + n + 1;
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int bld_kernel_bundle_digest(const struct bld_kernel_bundle *b, char out[OCI_DIGEST_MAX], json_t **files_out,
                             struct err **err)
{
	_cleanup_free_ char *cmdline = xasprintf("%s/cmdline", b->dir);
	size_t n = 0, cap = 5 + b->n_modules;
	_cleanup_free_ const char **paths = xcalloc(cap, sizeof(*paths));
	paths[n++] = b->kernel_path;
	paths[n++] = cmdline;
	if (b->init_path)
		paths[n++] = b->init_path;
	if (b->nsm_path)
		paths[n++] = b->nsm_path;
	if (b->config_path)
		paths[n++] = b->config_path;
	for (size_t i = 0; i < b->n_modules; i++)
		paths[n++] = b->module_paths[i];
	_cleanup_json_ json_t *files = json_object();
	_cleanup_free_ char **lines = xcalloc(n, sizeof(*lines));
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		char d[OCI_DIGEST_MAX];
		uint64_t size;
		_cleanup_close_ int fd = io_open_regular(paths[i], &size, err);
		r = fd < 0 ? -1 : oci_digest_fd(fd, "sha256", d, NULL, err);
		if (r < 0)
			break;
		const char *name = bundle_name(b, paths[i]);
		json_object_set_new(files, name, json_string(d));
		lines[i] = xasprintf("%s  %s\n", oci_digest_hex(d), name);
	}
	if (r == 0) {
		qsort(lines, n, sizeof(*lines), cmp_str);
		_cleanup_buf_ struct buf all = {0};
		for (size_t i = 0; i < n; i++)
			buf_puts(&all, lines[i]);
		oci_digest_buf(all.data, all.len, out);
		if (files_out)
			*files_out = json_incref(files);
	}
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	return r < 0 ? err_wrap(err, "kernel bundle %s", b->dir) : 0;
}

/* ---------------------------------------------------------------- making */
/* {"<algorithm>": "<hex>"} from "<algorithm>:<hex>". */
static json_t *digest_set(const char *digest)
{
	const char *colon = strchr(digest, ':');
	_cleanup_free_ char *alg = xstrndup(digest, colon ? (size_t)(colon - digest) : 0);
	return json_pack("{s:s}", colon ? alg : "sha256", colon ? colon + 1 : digest);
}

static json_t *dep(const char *name, const char *uri, const char *digest)
{
	json_t *d = json_pack("{s:s, s:o}", "name", name, "digest", digest_set(digest));
	if (uri)
		json_object_set_new(d, "uri", json_string(uri));
	return d;
}

static const char *odyn_source_name(enum bld_odyn_source s)
{
	switch (s) {
	case BLD_ODYN_IMAGE: return "image";
	case BLD_ODYN_BUNDLED: return "bundled";
	default: return "file";
	}
}

static json_t *resolved_dependencies(const struct bld_statement_spec *s)
{
	json_t *deps = json_array();
	json_t *app = dep(BLD_DEP_APP, s->app_ref, s->app_digest);
	json_object_set_new(app, "annotations", json_pack("{s:s}", "imageID", s->app_config_digest));
	json_array_append_new(deps, app);

	json_t *odyn = dep(BLD_DEP_ODYN, s->odyn_source == BLD_ODYN_IMAGE ? s->odyn_image_ref : NULL, s->odyn_digest);
	json_t *oa = json_pack("{s:s}", "source", odyn_source_name(s->odyn_source));
	if (s->odyn_source == BLD_ODYN_IMAGE)
		json_object_set_new(oa, "imageDigest", json_string(s->odyn_image_digest));
	if (s->odyn_source == BLD_ODYN_BUNDLED)
		json_object_set_new(oa, "enclaverVersion", json_string(ENCLAVER_VERSION));
	json_object_set_new(odyn, "annotations", oa);
	json_array_append_new(deps, odyn);

	json_t *kernel = dep(BLD_DEP_KERNEL, NULL, s->kernel_digest);
	json_t *ka = json_pack("{s:s, s:O}", "path", s->kernel_dir, "files", s->kernel_files);
	if (s->kernel_version)
		json_object_set_new(ka, "kernelVersion", json_string(s->kernel_version));
	if (s->kernel_os)
		json_object_set_new(ka, "os", json_string(s->kernel_os));
	json_object_set_new(kernel, "annotations", ka);
	json_array_append_new(deps, kernel);

	char md[OCI_DIGEST_MAX];
	oci_digest_buf(s->manifest_data, s->manifest_len, md);
	json_t *manifest = dep(BLD_DEP_MANIFEST, NULL, md);
	_cleanup_free_ char *content = base64_encode(s->manifest_data, s->manifest_len);
	json_object_set_new(manifest, "content", json_string(content));
	json_object_set_new(manifest, "mediaType", json_string("application/yaml"));
	json_array_append_new(deps, manifest);

	if (s->sleeve_ref)
		json_array_append_new(deps, dep(BLD_DEP_SLEEVE, s->sleeve_ref, s->sleeve_digest));
	if (s->runtime_digest)
		json_array_append_new(deps, dep(BLD_DEP_RUNTIME, NULL, s->runtime_digest));
	return deps;
}

static json_t *eif_byproduct(const struct bld_statement_spec *s)
{
	const struct eif_measurements *m = s->measurements;
	size_t hl = eif_hash_len(m->alg);
	char hex[2 * EIF_PCR_MAX + 1];
	json_t *ann = json_object();
	const uint8_t *pcrs[] = {m->pcr0, m->pcr1, m->pcr2, m->pcr8};
	const char *names[] = {"pcr0", "pcr1", "pcr2", "pcr8"};
	for (size_t i = 0; i < (m->has_pcr8 ? 4u : 3u); i++) {
		hex_encode(pcrs[i], hl, hex);
		json_object_set_new(ann, names[i], json_string(hex));
	}
	json_t *digest = digest_set(s->eif_sha256);
	const char *colon = strchr(s->eif_sha384, ':');
	json_object_set_new(digest, "sha384", json_string(colon ? colon + 1 : s->eif_sha384));
	return json_pack("{s:s, s:o, s:s, s:o}", "name", BLD_BYPRODUCT_EIF, "digest", digest, "mediaType",
	                 "application/vnd.aws.nitro.enclave.eif", "annotations", ann);
}

int bld_statement_make(const struct bld_statement_spec *s, char **json_out, struct err **err)
{
	*json_out = NULL;
	if (s->measurements->alg != EIF_HASH_SHA384)
		return err_set(err, EINVAL, "statement: the EIF's PCRs must be SHA-384");
	json_t *sources = json_pack("{s:s}", "app", s->app_ref);
	if (s->odyn_source == BLD_ODYN_IMAGE)
		json_object_set_new(sources, "odyn", json_string(s->odyn_image_ref));
	if (s->sleeve_ref)
		json_object_set_new(sources, "sleeve", json_string(s->sleeve_ref));
	json_t *sde = s->source_date_epoch >= 0 ? json_integer(s->source_date_epoch) : json_null();
	json_t *metadata = json_object();
	if (s->source_date_epoch >= 0) {
		time_t t = (time_t)s->source_date_epoch;
		struct tm tm;
		char when[32];
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(metadata, "startedOn", json_string(when));
	}
	json_t *subject = json_pack("[{s:s, s:o}]", "name", s->subject_name, "digest", digest_set(s->subject_digest));
	_cleanup_json_ json_t *doc = json_pack(
	    "{s:s, s:o, s:s, s:{s:{s:s, s:{s:s, s:o}, s:{s:o, s:s}, s:o}, s:{s:{s:s, s:{s:s}}, s:o, s:[o]}}}", "_type",
	    BLD_INTOTO_STATEMENT_V1, "subject", subject, "predicateType", BLD_SLSA_PROVENANCE_V1, "predicate",
	    "buildDefinition", "buildType", BLD_STATEMENT_BUILD_TYPE, "externalParameters", "platform", s->platform,
	    "sources", sources, "internalParameters", "SOURCE_DATE_EPOCH", sde, "enclaverVersion", ENCLAVER_VERSION,
	    "resolvedDependencies", resolved_dependencies(s), "runDetails", "builder", "id", BLD_STATEMENT_BUILDER_ID,
	    "version", "enclaver", ENCLAVER_VERSION, "metadata", metadata, "byproducts", eif_byproduct(s));
	if (doc == NULL)
		return err_set(err, EINVAL, "statement: a field is missing (an input without a digest)");
	*json_out = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (*json_out == NULL)
		out_of_memory("statement");
	return 0;
}

/* ---------------------------------------------------------------- reading */
/* The member `key` of obj, of the given jansson type; "where" is obj's path for messages. */
static int member(const json_t *obj, const char *where, const char *key, json_type type, bool optional, json_t **out,
                  struct err **err)
{
	static const char *const names[] = {"an object", "an array", "a string", "an integer",
	                                    "a number",  "true",     "false",    "null"};
	*out = json_object_get(obj, key);
	if (*out == NULL || (optional && json_is_null(*out))) {
		*out = NULL;
		return optional ? 0 : err_set(err, EINVAL, "statement: %s%s%s: missing", where, *where ? "." : "", key);
	}
	if (json_typeof(*out) != type)
		return err_set(err, EINVAL, "statement: %s%s%s: not %s", where, *where ? "." : "", key, names[type]);
	return 0;
}

static int string_member(const json_t *obj, const char *where, const char *key, bool optional, char **out,
                         struct err **err)
{
	json_t *v;
	if (member(obj, where, key, JSON_STRING, optional, &v, err) < 0)
		return -1;
	*out = v ? xstrdup(json_string_value(v)) : NULL;
	return 0;
}

/* A digest set's entry for alg as "alg:hex", checked (hex of the right length). */
static int digest_member(const json_t *set, const char *where, const char *alg, size_t hex_len, bool optional,
                         char **out, struct err **err)
{
	char *hex = NULL;
	if (string_member(set, where, alg, optional, &hex, err) < 0)
		return -1;
	if (hex == NULL)
		return 0;
	bool ok = strlen(hex) == hex_len;
	for (size_t i = 0; ok && i < hex_len; i++)
		ok = (hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f');
	if (!ok) {
		free(hex);
		return err_set(err, EINVAL, "statement: %s.%s: not %zu lowercase hex digits", where, alg, hex_len);
	}
	*out = xasprintf("%s:%s", alg, hex);
	free(hex);
	return 0;
}

static int parse_dep(const json_t *d, const char *where, struct bld_statement_dep *out, struct err **err)
{
	if (!json_is_object(d))
		return err_set(err, EINVAL, "statement: %s: not an object", where);
	json_t *digest, *content, *ann;
	if (string_member(d, where, "name", false, &out->name, err) < 0 ||
	    string_member(d, where, "uri", true, &out->uri, err) < 0 ||
	    member(d, where, "digest", JSON_OBJECT, false, &digest, err) < 0 ||
	    member(d, where, "content", JSON_STRING, true, &content, err) < 0 ||
	    member(d, where, "annotations", JSON_OBJECT, true, &ann, err) < 0)
		return -1;
	_cleanup_free_ char *dwhere = xasprintf("%s.digest", where);
	if (digest_member(digest, dwhere, "sha256", 64, false, &out->sha256, err) < 0)
		return -1;
	if (content) {
		const char *c = json_string_value(content);
		if (base64_decode(c, strlen(c), &out->content, &out->content_len) < 0)
			return err_set(err, EINVAL, "statement: %s.content: not base64 (RFC 4648, padded)", where);
		char actual[OCI_DIGEST_MAX];
		oci_digest_buf(out->content, out->content_len, actual);
		if (strcmp(actual, out->sha256) != 0)
			return err_set(err, EINVAL, "statement: %s.content: its digest is %s, not digest.sha256 %s",
			               where, actual, out->sha256);
	}
	out->annotations = ann;
	return 0;
}

static int parse_pcr(const json_t *ann, const char *where, const char *key, bool optional, uint8_t pcr[48],
                     bool *present, struct err **err)
{
	_cleanup_free_ char *hex = NULL;
	if (string_member(ann, where, key, optional, &hex, err) < 0)
		return -1;
	if (present)
		*present = hex != NULL;
	if (hex && (strlen(hex) != 96 || hex_decode(hex, pcr, 48) < 0))
		return err_set(err, EINVAL, "statement: %s.%s: not a SHA-384 PCR (96 hex digits)", where, key);
	return 0;
}

static int parse_byproducts(struct bld_statement *s, const json_t *run, struct err **err)
{
	const char *where = "predicate.runDetails";
	json_t *bps;
	if (member(run, where, "byproducts", JSON_ARRAY, false, &bps, err) < 0)
		return -1;
	size_t i;
	json_t *bp;
	json_array_foreach(bps, i, bp)
	{
		char w[64];
		snprintf(w, sizeof(w), "predicate.runDetails.byproducts[%zu]", i);
		json_t *name = json_is_object(bp) ? json_object_get(bp, "name") : NULL;
		if (!json_is_string(name) || strcmp(json_string_value(name), BLD_BYPRODUCT_EIF) != 0)
			continue;
		json_t *digest, *ann;
		if (member(bp, w, "digest", JSON_OBJECT, false, &digest, err) < 0 ||
		    member(bp, w, "annotations", JSON_OBJECT, false, &ann, err) < 0)
			return -1;
		char dw[80], aw[96];
		snprintf(dw, sizeof(dw), "%s.digest", w);
		snprintf(aw, sizeof(aw), "%s.annotations", w);
		struct eif_measurements *m = &s->measurements;
		m->alg = EIF_HASH_SHA384;
		if (digest_member(digest, dw, "sha256", 64, false, &s->eif_sha256, err) < 0 ||
		    digest_member(digest, dw, "sha384", 96, false, &s->eif_sha384, err) < 0 ||
		    parse_pcr(ann, aw, "pcr0", false, m->pcr0, NULL, err) < 0 ||
		    parse_pcr(ann, aw, "pcr1", false, m->pcr1, NULL, err) < 0 ||
		    parse_pcr(ann, aw, "pcr2", false, m->pcr2, NULL, err) < 0 ||
		    parse_pcr(ann, aw, "pcr8", true, m->pcr8, &m->has_pcr8, err) < 0)
			return -1;
		return 0;
	}
	return err_set(err, EINVAL, "statement: %s.byproducts: no \"%s\"", where, BLD_BYPRODUCT_EIF);
}

static int parse_subject(struct bld_statement *s, struct err **err)
{
	json_t *subjects;
	if (member(s->doc, "", "subject", JSON_ARRAY, false, &subjects, err) < 0)
		return -1;
	if (json_array_size(subjects) != 1)
		return err_set(err, EINVAL, "statement: subject: %zu entries, not 1", json_array_size(subjects));
	json_t *subj = json_array_get(subjects, 0), *digest;
	if (!json_is_object(subj))
		return err_set(err, EINVAL, "statement: subject[0]: not an object");
	if (string_member(subj, "subject[0]", "name", false, &s->subject_name, err) < 0 ||
	    member(subj, "subject[0]", "digest", JSON_OBJECT, false, &digest, err) < 0 ||
	    digest_member(digest, "subject[0].digest", "sha256", 64, false, &s->subject_digest, err) < 0)
		return -1;
	return 0;
}

/* A string member that must equal want. */
static int expect_string(const json_t *obj, const char *where, const char *key, const char *want, struct err **err)
{
	_cleanup_free_ char *v = NULL;
	if (string_member(obj, where, key, false, &v, err) < 0)
		return -1;
	if (strcmp(v, want) != 0)
		return err_set(err, EINVAL, "statement: %s%s%s: \"%s\", not \"%s\"", where, *where ? "." : "", key, v,
		               want);
	return 0;
}

static int parse_deps(struct bld_statement *s, const json_t *bd, struct err **err)
{
	json_t *deps;
	if (member(bd, "predicate.buildDefinition", "resolvedDependencies", JSON_ARRAY, false, &deps, err) < 0)
		return -1;
	s->n_deps = 0;
	s->deps = xcalloc(json_array_size(deps) + 1, sizeof(*s->deps));
	size_t i;
	json_t *d;
	json_array_foreach(deps, i, d)
	{
		char w[80];
		snprintf(w, sizeof(w), "predicate.buildDefinition.resolvedDependencies[%zu]", i);
		struct bld_statement_dep *out = &s->deps[s->n_deps++];
		if (parse_dep(d, w, out, err) < 0)
			return -1;
		static const char *const names[] = {BLD_DEP_APP,      BLD_DEP_ODYN,   BLD_DEP_KERNEL,
		                                    BLD_DEP_MANIFEST, BLD_DEP_SLEEVE, BLD_DEP_RUNTIME};
		const struct bld_statement_dep **slots[] = {&s->app,      &s->odyn,   &s->kernel,
		                                            &s->manifest, &s->sleeve, &s->runtime};
		for (size_t k = 0; k < 6; k++) {
			if (strcmp(out->name, names[k]) != 0)
				continue;
			if (*slots[k])
				return err_set(err, EINVAL, "statement: %s.name: a second \"%s\"", w, names[k]);
			*slots[k] = out;
		}
	}
	const struct bld_statement_dep *need[] = {s->app, s->odyn, s->kernel, s->manifest};
	const char *need_names[] = {BLD_DEP_APP, BLD_DEP_ODYN, BLD_DEP_KERNEL, BLD_DEP_MANIFEST};
	for (size_t k = 0; k < 4; k++)
		if (need[k] == NULL)
			return err_set(err, EINVAL,
			               "statement: predicate.buildDefinition.resolvedDependencies: no \"%s\"",
			               need_names[k]);
	if (s->manifest->content == NULL)
		return err_set(err, EINVAL,
		               "statement: predicate.buildDefinition.resolvedDependencies: \"%s\" has no content",
		               BLD_DEP_MANIFEST);
	return 0;
}

int bld_statement_parse(const void *data, size_t len, struct bld_statement *s, struct err **err)
{
	memset(s, 0, sizeof(*s));
	s->source_date_epoch = -1;
	json_error_t je;
	s->doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (s->doc == NULL)
		return err_set(err, EINVAL, "statement: not JSON: %s (line %d, column %d)", je.text, je.line,
		               je.column);
	if (!json_is_object(s->doc))
		return err_set(err, EINVAL, "statement: not a JSON object");
	json_t *pred, *bd, *run, *ext, *intp, *builder, *version, *sde;
	const char *P = "predicate", *BD = "predicate.buildDefinition", *RD = "predicate.runDetails";
	if (expect_string(s->doc, "", "_type", BLD_INTOTO_STATEMENT_V1, err) < 0 ||
	    expect_string(s->doc, "", "predicateType", BLD_SLSA_PROVENANCE_V1, err) < 0 || parse_subject(s, err) < 0 ||
	    member(s->doc, "", "predicate", JSON_OBJECT, false, &pred, err) < 0 ||
	    member(pred, P, "buildDefinition", JSON_OBJECT, false, &bd, err) < 0 ||
	    member(pred, P, "runDetails", JSON_OBJECT, false, &run, err) < 0 ||
	    string_member(bd, BD, "buildType", false, &s->build_type, err) < 0)
		return -1;
	if (strcmp(s->build_type, BLD_STATEMENT_BUILD_TYPE) != 0)
		return err_set(err, EINVAL, "statement: %s.buildType: \"%s\", not enclaver's \"%s\"", BD, s->build_type,
		               BLD_STATEMENT_BUILD_TYPE);
	if (member(bd, BD, "externalParameters", JSON_OBJECT, false, &ext, err) < 0 ||
	    string_member(ext, "predicate.buildDefinition.externalParameters", "platform", false, &s->platform, err) <
	        0 ||
	    member(bd, BD, "internalParameters", JSON_OBJECT, false, &intp, err) < 0 ||
	    member(intp, "predicate.buildDefinition.internalParameters", "SOURCE_DATE_EPOCH", JSON_INTEGER, true, &sde,
	           err) < 0 ||
	    member(run, RD, "builder", JSON_OBJECT, false, &builder, err) < 0 ||
	    member(builder, "predicate.runDetails.builder", "version", JSON_OBJECT, false, &version, err) < 0 ||
	    string_member(version, "predicate.runDetails.builder.version", "enclaver", false, &s->enclaver_version,
	                  err) < 0)
		return -1;
	if (sde) {
		if (json_integer_value(sde) < 0)
			return err_set(
			    err, EINVAL,
			    "statement: predicate.buildDefinition.internalParameters.SOURCE_DATE_EPOCH: negative");
		s->source_date_epoch = json_integer_value(sde);
	}
	if (parse_deps(s, bd, err) < 0 || parse_byproducts(s, run, err) < 0)
		return -1;
	return 0;
}

void bld_statement_free(struct bld_statement *s)
{
	for (size_t i = 0; i < s->n_deps; i++) {
		free(s->deps[i].name);
		free(s->deps[i].uri);
		free(s->deps[i].sha256);
		free(s->deps[i].content);
	}
	free(s->deps);
	free(s->subject_name);
	free(s->subject_digest);
	free(s->build_type);
	free(s->platform);
	free(s->enclaver_version);
	free(s->eif_sha256);
	free(s->eif_sha384);
	json_decref(s->doc);
	memset(s, 0, sizeof(*s));
	s->source_date_epoch = -1;
}
