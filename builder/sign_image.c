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
#include "builder/cosign_tag.h"
#include "common/json.h"
#include "keys/keys.h"

int bld_sign_image(const char *image, const char *digest, struct sign_key *key, const struct oci_opts *opts,
                   struct bld_image_signature *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	struct oci_ref ref;
	char resolved[OCI_DIGEST_MAX];
	if (bld_cosign_subject(image, digest, "signed", opts, &ref, resolved, err) < 0)
		return -1;
	digest = resolved;
	_cleanup_free_ char *identity = xasprintf("%s/%s", ref.registry, ref.repository);
	_cleanup_free_ char *payload = bld_simple_signing_payload(identity, digest);
	_cleanup_(cleanup_bufp) struct buf der = {0};
	uint8_t md[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)payload, strlen(payload), md);
	int r = sign_key_sign_digest(key, EVP_sha256(), md, sizeof(md), &der, err);
	_cleanup_free_ char *sig_b64 = r == 0 ? base64_encode(der.data, der.len) : NULL;
	if (r == 0) {
		_cleanup_json_ json_t *ann = json_pack("{s:s}", BLD_COSIGN_SIGNATURE_ANNOTATION, sig_b64);
		struct bld_cosign_layer layer = {BLD_SIMPLE_SIGNING_MT, payload, strlen(payload), ann};
		r = bld_cosign_tag_push(&ref, digest, "sig", &layer, opts, &out->signature_ref, err);
	}
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
