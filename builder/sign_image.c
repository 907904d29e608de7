/* sign_image: signs a pushed image the way cosign does, so that the container tools'
 * sigstore verification (containers/image's `sigstoreSigned` policy, as skopeo, podman and
 * CRI-O use it) accepts it. The signed payload is a "simple signing" document naming the
 * repository and the manifest digest; the signature is ECDSA (DER) over the payload's SHA-256.
 * Both go into a small OCI image tagged sha256-<hex>.sig in the image's own repository: one
 * layer, the payload, with the signature base64'd in its `dev.cosignproject.cosign/signature`
 * annotation; signatures already there (other keys') stay beside it. The key is anything keys/
 * opens (PEM file, PKCS#11 URI, KMS ARN). */
#include <string.h>

#include <openssl/sha.h>

#include "builder/builder.h"
#include "common/json.h"
#include "keys/keys.h"

/* The simple-signing layers already at the signature tag (other keys' signatures): kept, as
 * cosign keeps them, so that each signer's verifier still finds its own. None when the tag is
 * not there yet. */
static int earlier_layers(const char *sig_ref, const struct oci_opts *opts, json_t *layers, struct err **err)
{
	struct oci_opts quiet = *opts;
	quiet.progress = NULL;
	_cleanup_json_ json_t *doc = NULL;
	struct err *e = NULL;
	if (oci_inspect(sig_ref, &quiet, &doc, &e) < 0) {
		if (e->code == ENOENT) {
			err_free(&e);
			return 0;
		}
		*err = e;
		return err_wrap(err, "the signatures already at %s", sig_ref);
	}
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(json_object_get(doc, "manifest"), "layers"), i, l) {
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		if (mt && strcmp(mt, BLD_SIMPLE_SIGNING_MT) == 0)
			json_array_append(layers, l);
	}
	return 0;
}

/* The signature image: the earlier signatures' layers and ours, a config whose rootfs names
 * them (as cosign's does), and the manifest. */
static int sig_image_push(const struct oci_ref *ref, const char *digest, const char *payload, const char *sig_b64,
                          const struct oci_opts *opts, char **sig_ref, struct err **err)
{
	char payload_digest[OCI_DIGEST_MAX], config_digest[OCI_DIGEST_MAX], manifest_digest[OCI_DIGEST_MAX];
	size_t payload_len = strlen(payload);
	oci_digest_buf(payload, payload_len, payload_digest);
	_cleanup_free_ char *ref_text = bld_attached_ref(ref, digest, "sig");
	_cleanup_json_ json_t *layers = json_array();
	if (earlier_layers(ref_text, opts, layers, err) < 0)
		return -1;
	json_t *ours = json_pack("{s:s, s:I, s:s, s:{s:s}}", "mediaType", BLD_SIMPLE_SIGNING_MT, "size",
	                         (json_int_t)payload_len, "digest", payload_digest, "annotations",
	                         BLD_COSIGN_SIGNATURE_ANNOTATION, sig_b64);
	json_array_append_new(layers, ours);
	json_t *diff_ids = json_array();
	size_t i;
	json_t *l;
	json_array_foreach(layers, i, l) json_array_append(diff_ids, json_object_get(l, "digest"));
	_cleanup_json_ json_t *config_doc = json_pack(
	    "{s:s, s:{}, s:s, s:[{s:s}], s:s, s:{s:s, s:o}}", "architecture", "", "config", "created",
	    "0001-01-01T00:00:00Z", "history", "created", "0001-01-01T00:00:00Z", "os", "", "rootfs", "type", "layers",
	    "diff_ids", diff_ids);
	_cleanup_free_ char *config = json_dumps(config_doc, JSON_COMPACT | JSON_SORT_KEYS);
	oci_digest_buf(config, strlen(config), config_digest);
	_cleanup_json_ json_t *manifest_doc =
	    json_pack("{s:i, s:s, s:{s:s, s:I, s:s}, s:O}", "schemaVersion", 2, "mediaType", OCI_MT_MANIFEST, "config",
	              "mediaType", OCI_MT_CONFIG, "size", (json_int_t)strlen(config), "digest", config_digest, "layers",
	              layers);
	_cleanup_free_ char *manifest = json_dumps(manifest_doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	/* The earlier layers' blobs are in the repository already: only the new ones go up. */
	struct oci_blob blobs[] = {{OCI_MT_CONFIG, config, strlen(config)}, {BLD_SIMPLE_SIGNING_MT, payload, payload_len}};
	if (oci_put_image(ref_text, opts, blobs, 2, manifest, strlen(manifest), OCI_MT_MANIFEST, manifest_digest,
	                  err) < 0)
		return -1;
	*sig_ref = steal_pointer(&ref_text);
	return 0;
}

int bld_sign_image(const char *image, const char *digest, struct sign_key *key, const struct oci_opts *opts,
                   struct bld_image_signature *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	struct oci_ref ref;
	if (oci_ref_parse(image, &ref, err) < 0)
		return -1;
	int r = 0;
	char resolved[OCI_DIGEST_MAX];
	if (ref.transport != OCI_TRANSPORT_DOCKER)
		r = err_set(err, EINVAL, "%s: only images in a registry can be signed (a docker:// reference)", image);
	else if (digest == NULL) {
		r = oci_resolve_digest(image, opts, resolved, err);
		digest = resolved;
	}
	if (r == 0 && ref.digest && strcmp(ref.digest, digest) != 0)
		r = err_set(err, EINVAL, "%s names %s but the registry holds %s", image, ref.digest, digest);
	if (r == 0)
		r = oci_digest_check(digest, err);
	_cleanup_free_ char *identity = r == 0 ? xasprintf("%s/%s", ref.registry, ref.repository) : NULL;
	_cleanup_free_ char *payload = r == 0 ? bld_simple_signing_payload(identity, digest) : NULL;
	_cleanup_(cleanup_bufp) struct buf der = {0};
	if (r == 0) {
		uint8_t md[SHA256_DIGEST_LENGTH];
		SHA256((const uint8_t *)payload, strlen(payload), md);
		r = sign_key_sign_digest(key, EVP_sha256(), md, sizeof(md), &der, err);
	}
	_cleanup_free_ char *sig_b64 = r == 0 ? base64_encode(der.data, der.len) : NULL;
	if (r == 0)
		r = sig_image_push(&ref, digest, payload, sig_b64, opts, &out->signature_ref, err);
	if (r == 0) {
		out->digest = xstrdup(digest);
		out->identity = steal_pointer(&identity);
	}
	oci_ref_free(&ref);
	return r;
}

void bld_image_signature_free(struct bld_image_signature *s)
{
	free(s->digest);
	free(s->identity);
	free(s->signature_ref);
	memset(s, 0, sizeof(*s));
}
