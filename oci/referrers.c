/* referrers: what an OCI 1.1 referrer needs to know of a registry: whether it answers the
 * referrers API (GET /v2/<name>/referrers/<digest> with an image index), and the descriptor of the
 * manifest a referrer's `subject` names (its media type and size, read from the registry, checked
 * against the digest). A registry without the API (distribution 2.x answers 404) is not an error:
 * the caller keeps to the cosign tag alone. */
#include <string.h>

#include "oci/registry.h"

static int open_registry(const struct oci_ref *ref, const struct oci_opts *opts, struct registry **out,
                         struct err **err)
{
	struct oci_registries conf;
	if (oci_registries_load(&conf, err) < 0)
		return -1;
	_cleanup_free_ char *name = oci_ref_name(ref);
	bool insecure = opts->insecure || oci_registries_insecure(&conf, name);
	oci_registries_free(&conf);
	return registry_new(ref->registry, opts, insecure, out, err);
}

int oci_referrers_probe(const char *image, const char *digest, const struct oci_opts *opts, bool *supported,
                        struct oci_desc *subject, struct err **err)
{
	*supported = false;
	memset(subject, 0, sizeof(*subject));
	if (opts->offline)
		return err_set(err, EINVAL, "--offline: cannot reach the registry of %s", image);
	struct oci_ref ref;
	if (oci_ref_parse(image, &ref, err) < 0)
		return -1;
	struct registry *reg = NULL;
	int r = ref.transport == OCI_TRANSPORT_DOCKER ? open_registry(&ref, opts, &reg, err)
	                                              : err_set(err, EINVAL, "%s: not a registry image", image);
	_cleanup_free_ char *scope = xasprintf("repository:%s:pull", ref.repository);
	_cleanup_buf_ struct buf body = {0};
	struct reg_resp resp = {0};
	if (r == 0) {
		_cleanup_free_ char *path = xasprintf("/v2/%s/manifests/%s", ref.repository, digest);
		struct reg_req req = {.url = path,
		                      .scope = scope,
		                      .accept = OCI_MT_MANIFEST ", " OCI_MT_INDEX,
		                      .out = &body,
		                      .out_max = OCI_MANIFEST_MAX};
		r = registry_do(reg, &req, &resp, err);
		if (r == 0 && resp.status != 200)
			r = registry_status_error(reg, digest, &resp, err);
		if (r == 0)
			r = oci_digest_verify_buf(body.data, body.len, digest, err);
		if (r == 0 && !(resp.content_type && (oci_media_type_is_manifest(resp.content_type) ||
		                                      oci_media_type_is_index(resp.content_type))))
			r = err_set(err, EBADMSG, "manifest %s: content type \"%s\"", digest,
			            resp.content_type ? resp.content_type : "");
		if (r == 0) {
			subject->media_type = xstrdup(resp.content_type);
			subject->digest = xstrdup(digest);
			subject->size = (int64_t)body.len;
		}
		reg_resp_free(&resp);
	}
	if (r == 0) {
		_cleanup_free_ char *path = xasprintf("/v2/%s/referrers/%s", ref.repository, digest);
		struct reg_req req = {
		    .url = path, .scope = scope, .accept = OCI_MT_INDEX, .out = &body, .out_max = OCI_MANIFEST_MAX};
		buf_free(&body);
		r = registry_do(reg, &req, &resp, err);
		/* The API answers an image index (empty when nothing refers yet); anything else, a 404
		 * first of all, is a registry without it. */
		if (r == 0 && resp.status == 200 && resp.content_type &&
		    str_has_prefix(resp.content_type, OCI_MT_INDEX))
			*supported = true;
		if (r == 0)
			reg_resp_free(&resp);
	}
	registry_free(reg);
	oci_ref_free(&ref);
	if (r < 0) {
		oci_desc_free(subject);
		return err_wrap(err, "referrers of %s", image);
	}
	return 0;
}
