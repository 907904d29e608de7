/* manifest: OCI image manifests and indexes and their Docker schema 2
 * equivalents (jansson), descriptors, and picking a platform from an index. */
#include <string.h>
#include <sys/utsname.h>

#include "oci/oci.h"

bool oci_media_type_is_index(const char *mt)
{
	return mt && (strcmp(mt, OCI_MT_INDEX) == 0 || strcmp(mt, DOCKER_MT_LIST) == 0);
}

bool oci_media_type_is_manifest(const char *mt)
{
	return mt && (strcmp(mt, OCI_MT_MANIFEST) == 0 || strcmp(mt, DOCKER_MT_MANIFEST) == 0);
}

/* ---------------------------------------------------------------- platforms */
static const char *normalise_arch(const char *a)
{
	if (strcmp(a, "x86_64") == 0 || strcmp(a, "x86-64") == 0)
		return "amd64";
	if (strcmp(a, "aarch64") == 0)
		return "arm64";
	return a;
}

void oci_platform_free(struct oci_platform *p)
{
	if (p == NULL)
		return;
	free(p->os);
	free(p->architecture);
	free(p->variant);
	memset(p, 0, sizeof(*p));
}

int oci_platform_parse(const char *text, struct oci_platform *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *copy = xstrdup(text);
	char *parts[4] = {0};
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (n == 3)
			return err_set(err, EINVAL, "platform \"%s\": expected os/arch[/variant]", text);
		parts[n++] = tok;
	}
	if (n < 2 || text[0] == '/' || text[strlen(text) - 1] == '/' || strstr(text, "//"))
		return err_set(err, EINVAL, "platform \"%s\": expected os/arch[/variant]", text);
	for (int i = 0; i < n; i++) {
		for (char *p = parts[i]; *p; p++) {
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
				return err_set(err, EINVAL, "platform \"%s\": invalid character '%c'", text, *p);
		}
	}
	out->os = xstrdup(parts[0]);
	out->architecture = xstrdup(normalise_arch(parts[1]));
	out->variant = n == 3 ? xstrdup(parts[2]) : NULL;
	return 0;
}

void oci_platform_host(struct oci_platform *out)
{
	memset(out, 0, sizeof(*out));
	struct utsname u;
	out->os = xstrdup("linux");
	out->architecture = xstrdup(uname(&u) == 0 ? normalise_arch(u.machine) : "amd64");
	if (strcmp(out->architecture, "arm64") == 0)
		out->variant = xstrdup("v8");
}

char *oci_platform_format(const struct oci_platform *p)
{
	if (p->variant)
		return xasprintf("%s/%s/%s", p->os ? p->os : "?", p->architecture ? p->architecture : "?", p->variant);
	return xasprintf("%s/%s", p->os ? p->os : "?", p->architecture ? p->architecture : "?");
}

/* arm64 without a variant is v8; other architectures compare as written. */
static const char *effective_variant(const char *arch, const char *variant)
{
	if (variant && *variant)
		return variant;
	if (arch && strcmp(arch, "arm64") == 0)
		return "v8";
	return NULL;
}

static bool platform_matches(const struct oci_platform *have, const struct oci_platform *want)
{
	if (have->os == NULL || have->architecture == NULL)
		return false;
	if (strcmp(have->os, want->os) != 0 || strcmp(normalise_arch(have->architecture), want->architecture) != 0)
		return false;
	const char *wv = effective_variant(want->architecture, want->variant);
	const char *hv = effective_variant(want->architecture, have->variant);
	if (wv == NULL)
		return true;
	return hv != NULL && strcmp(wv, hv) == 0;
}

int oci_index_select(const struct oci_manifest *index, const struct oci_platform *want, const struct oci_desc **out,
                     struct err **err)
{
	for (size_t i = 0; i < index->n_manifests; i++) {
		const struct oci_desc *d = &index->manifests[i];
		if (platform_matches(&d->platform, want) && oci_media_type_is_manifest(d->media_type)) {
			*out = d;
			return 0;
		}
	}
	_cleanup_buf_ struct buf offered = {0};
	for (size_t i = 0; i < index->n_manifests; i++) {
		if (index->manifests[i].platform.os == NULL)
			continue;
		_cleanup_free_ char *p = oci_platform_format(&index->manifests[i].platform);
		buf_printf(&offered, "%s%s", offered.len ? ", " : "", p);
	}
	_cleanup_free_ char *w = oci_platform_format(want);
	return err_set(err, ENOENT, "no image for platform %s in the index (it has: %s)", w,
	               offered.len ? buf_str(&offered) : "no platforms");
}

/* ---------------------------------------------------------------- descriptors */
void oci_desc_free(struct oci_desc *d)
{
	if (d == NULL)
		return;
	free(d->media_type);
	free(d->digest);
	oci_platform_free(&d->platform);
	free(d->ref_name);
	memset(d, 0, sizeof(*d));
}

static int get_string(const json_t *obj, const char *key, const char *where, bool required, char **out,
                      struct err **err)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL) {
		if (required)
			return err_set(err, EBADMSG, "%s: missing \"%s\"", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return err_set(err, EBADMSG, "%s: \"%s\" must be a string", where, key);
	*out = xstrdup(json_string_value(v));
	return 0;
}

int oci_desc_parse(const json_t *obj, const char *where, struct oci_desc *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(obj))
		return err_set(err, EBADMSG, "%s: must be an object", where);
	if (get_string(obj, "mediaType", where, true, &out->media_type, err) < 0 ||
	    get_string(obj, "digest", where, true, &out->digest, err) < 0)
		goto fail;
	if (oci_digest_check(out->digest, err) < 0) {
		err_wrap(err, "%s", where);
		goto fail;
	}
	json_t *size = json_object_get(obj, "size");
	if (!json_is_integer(size) || json_integer_value(size) < 0) {
		err_set(err, EBADMSG, "%s: \"size\" must be a non-negative integer", where);
		goto fail;
	}
	out->size = json_integer_value(size);
	json_t *plat = json_object_get(obj, "platform");
	if (plat) {
		_cleanup_free_ char *pw = xasprintf("%s.platform", where);
		if (!json_is_object(plat)) {
			err_set(err, EBADMSG, "%s: must be an object", pw);
			goto fail;
		}
		if (get_string(plat, "os", pw, true, &out->platform.os, err) < 0 ||
		    get_string(plat, "architecture", pw, true, &out->platform.architecture, err) < 0 ||
		    get_string(plat, "variant", pw, false, &out->platform.variant, err) < 0)
			goto fail;
	}
	json_t *ann = json_object_get(obj, "annotations");
	if (ann && !json_is_object(ann)) {
		err_set(err, EBADMSG, "%s: \"annotations\" must be an object", where);
		goto fail;
	}
	json_t *name = json_object_get(ann, "org.opencontainers.image.ref.name");
	if (json_is_string(name))
		out->ref_name = xstrdup(json_string_value(name));
	return 0;
fail:
	oci_desc_free(out);
	return -1;
}

static int parse_desc_array(const json_t *doc, const char *key, struct oci_desc **out, size_t *n, struct err **err)
{
	json_t *arr = json_object_get(doc, key);
	if (!json_is_array(arr))
		return err_set(err, EBADMSG, "\"%s\" must be an array", key);
	size_t count = json_array_size(arr);
	*out = xcalloc(count ? count : 1, sizeof(**out));
	*n = 0;
	for (size_t i = 0; i < count; i++) {
		_cleanup_free_ char *where = xasprintf("%s[%zu]", key, i);
		if (oci_desc_parse(json_array_get(arr, i), where, &(*out)[i], err) < 0)
			return -1;
		*n = i + 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- manifests */
void oci_manifest_free(struct oci_manifest *m)
{
	if (m == NULL)
		return;
	free(m->media_type);
	oci_desc_free(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		oci_desc_free(&m->layers[i]);
	free(m->layers);
	for (size_t i = 0; i < m->n_manifests; i++)
		oci_desc_free(&m->manifests[i]);
	free(m->manifests);
	json_decref(m->json);
	memset(m, 0, sizeof(*m));
}

/* Content types that say nothing about the document. */
static bool content_type_generic(const char *ct)
{
	return ct == NULL || *ct == '\0' || str_has_prefix(ct, "application/json") ||
	       str_has_prefix(ct, "text/plain") || str_has_prefix(ct, "application/octet-stream");
}

static int manifest_parse(const char *data, size_t len, const char *content_type, struct oci_manifest *m,
                          struct err **err)
{
	if (len > OCI_MANIFEST_MAX)
		return err_set(err, EFBIG, "manifest of %zu bytes is over the %d-byte limit", len, OCI_MANIFEST_MAX);
	if (len == 0)
		return err_set(err, EBADMSG, "the manifest is empty");
	json_error_t je;
	m->json = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (m->json == NULL)
		return err_set(err, EBADMSG, "manifest is not valid JSON: line %d, column %d: %s", je.line, je.column,
		               je.text);
	if (!json_is_object(m->json))
		return err_set(err, EBADMSG, "manifest is not a JSON object");
	json_t *sv = json_object_get(m->json, "schemaVersion");
	if (json_is_integer(sv) && json_integer_value(sv) == 1)
		return err_set(err, ENOTSUP,
		               "Docker schema 1 manifests are not supported (re-push the image with a "
		               "current tool)");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return err_set(err, EBADMSG, "manifest: \"schemaVersion\" must be 2");
	json_t *mt = json_object_get(m->json, "mediaType");
	if (mt && !json_is_string(mt))
		return err_set(err, EBADMSG, "manifest: \"mediaType\" must be a string");
	const char *type = mt ? json_string_value(mt) : NULL;
	if (type == NULL && !content_type_generic(content_type)) {
		/* Strip parameters ("; charset=utf-8"). */
		type = content_type;
	}
	_cleanup_free_ char *type_copy = NULL;
	if (type) {
		type_copy = xstrndup(type, strcspn(type, "; "));
		type = type_copy;
	}
	if (type == NULL) {
		/* OCI lets mediaType be absent: tell the two kinds by shape. */
		if (json_object_get(m->json, "manifests"))
			type = OCI_MT_INDEX;
		else if (json_object_get(m->json, "config") && json_object_get(m->json, "layers"))
			type = OCI_MT_MANIFEST;
		else
			return err_set(err, EBADMSG,
			               "manifest has no mediaType and is neither an image manifest nor an "
			               "index");
	}
	if (strstr(type, "distribution.manifest.v1"))
		return err_set(err, ENOTSUP, "Docker schema 1 manifests are not supported");
	m->media_type = xstrdup(type);
	if (oci_media_type_is_index(type)) {
		m->kind = OCI_KIND_INDEX;
		return parse_desc_array(m->json, "manifests", &m->manifests, &m->n_manifests, err);
	}
	if (!oci_media_type_is_manifest(type))
		return err_set(err, ENOTSUP, "unsupported manifest media type \"%s\"", type);
	m->kind = OCI_KIND_IMAGE;
	if (oci_desc_parse(json_object_get(m->json, "config"), "config", &m->config, err) < 0)
		return -1;
	if (m->config.size > OCI_CONFIG_MAX)
		return err_set(err, EFBIG, "config %s: %lld bytes is over the %d-byte limit", m->config.digest,
		               (long long)m->config.size, OCI_CONFIG_MAX);
	return parse_desc_array(m->json, "layers", &m->layers, &m->n_layers, err);
}

int oci_manifest_parse(const char *data, size_t len, const char *content_type, struct oci_manifest *out,
                       struct err **err)
{
	memset(out, 0, sizeof(*out));
	if (manifest_parse(data, len, content_type, out, err) < 0) {
		oci_manifest_free(out);
		return -1;
	}
	return 0;
}

const char *oci_layer_media_type_oci(const char *mt)
{
	if (strcmp(mt, DOCKER_MT_LAYER) == 0)
		return OCI_MT_LAYER;
	if (strcmp(mt, DOCKER_MT_LAYER_GZIP) == 0)
		return OCI_MT_LAYER_GZIP;
	if (str_has_prefix(mt, "application/vnd.oci.image.layer."))
		return mt;
	return NULL;
}

int oci_index_pick(const struct oci_manifest *index, const char *transport, const char *where, const char *tag,
                   const struct oci_desc **out, struct err **err)
{
	const struct oci_desc *pick = NULL;
	for (size_t i = 0; i < index->n_manifests; i++) {
		const struct oci_desc *d = &index->manifests[i];
		if (tag ? (d->ref_name && strcmp(d->ref_name, tag) == 0) : true) {
			if (pick && !tag)
				return err_set(err, EINVAL,
				               "%s holds %zu images: name one as %s:%s:NAME (see its index.json)",
				               where, index->n_manifests, transport, where);
			pick = d;
		}
	}
	if (pick == NULL) {
		_cleanup_buf_ struct buf names = {0};
		for (size_t i = 0; i < index->n_manifests; i++) {
			if (index->manifests[i].ref_name)
				buf_printf(&names, "%s%s", names.len ? ", " : "", index->manifests[i].ref_name);
		}
		if (tag)
			return err_set(err, ENOENT, "%s: no image named \"%s\" (it has: %s)", where, tag,
			               names.len ? buf_str(&names) : "no named images");
		return err_set(err, ENOENT, "%s: the layout holds no image", where);
	}
	*out = pick;
	return 0;
}
