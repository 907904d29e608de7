/* verify_signature: the counterpart of sign_image.c, what containers/image's sigstoreSigned policy
 * checks: among the simple-signing layers at sha256-<hex>.sig, one whose
 * dev.cosignproject.cosign/signature verifies over the payload with the key, and whose payload,
 * read only once its signature holds, names this manifest digest and this repository. */
#include <string.h>

#include <openssl/sha.h>

#include "builder/builder.h"
#include "builder/cosign_tag.h"
#include "keys/keys.h"

/* A payload is a few hundred bytes; cosign's annotations-laden ones a few KiB. */
#define PAYLOAD_MAX (64u * 1024)

/* How far a rejected signature got: the report names the furthest, the most telling. */
enum stage { NO_SIGNATURE, NOT_OUR_KEY, BAD_PAYLOAD, OTHER_IMAGE };

/* The payload's docker-reference names the image's repository (a tag or digest in it is not
 * compared: cosign writes none, and the digest is checked on its own). */
static bool same_repository(const char *reference, const struct oci_ref *ref)
{
	struct oci_ref got;
	struct err *e = NULL;
	_cleanup_free_ char *text = xasprintf("docker://%s", reference);
	if (oci_ref_parse(text, &got, &e) < 0) {
		err_free(&e);
		return false;
	}
	bool same = strcmp(got.registry, ref->registry) == 0 && strcmp(got.repository, ref->repository) == 0;
	oci_ref_free(&got);
	return same;
}

/* One layer: 0 when it is a signature of this image by the key, else the stage it failed at and why. */
static enum stage check_layer(const struct oci_artifact_layer *l, const struct oci_ref *ref, const char *digest,
                              EVP_PKEY *key, char **why)
{
	const char *b64 = json_string_value(json_object_get(l->annotations, BLD_COSIGN_SIGNATURE_ANNOTATION));
	if (!b64) {
		*why = xasprintf("layer %s has no %s annotation", l->digest, BLD_COSIGN_SIGNATURE_ANNOTATION);
		return NOT_OUR_KEY;
	}
	_cleanup_free_ uint8_t *sig = NULL;
	size_t sig_len = 0;
	_cleanup_err_ struct err *e = NULL;
	if (base64_decode(b64, strlen(b64), &sig, &sig_len) < 0) {
		*why = xasprintf("layer %s: its signature is not base64", l->digest);
		return NOT_OUR_KEY;
	}
	uint8_t md[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)l->data.data, l->data.len, md);
	if (!keys_verify_digest(key, EVP_sha256(), md, sizeof(md), sig, sig_len)) {
		*why = xstrdup("no signature there verifies with the key (signed by another key, or changed)");
		return NOT_OUR_KEY;
	}
	struct bld_simple_signing p;
	if (bld_simple_signing_parse(l->data.data, l->data.len, &p, &e) < 0) {
		*why = xasprintf("a signature by the key over a payload that is not valid: %s", e->msg);
		return BAD_PAYLOAD;
	}
	enum stage st = OTHER_IMAGE + 1;
	if (strcmp(p.digest, digest) != 0) {
		*why = xasprintf("the key signed %s, not this image's %s", p.digest, digest);
		st = OTHER_IMAGE;
	} else if (!same_repository(p.reference, ref)) {
		*why = xasprintf("the key signed this digest as %s, not as %s/%s", p.reference, ref->registry,
		                 ref->repository);
		st = OTHER_IMAGE;
	} else {
		*why = xstrdup(p.reference);
	}
	bld_simple_signing_free(&p);
	return st;
}

int bld_image_signature_check(const struct oci_ref *ref, const char *digest, EVP_PKEY *key, const struct oci_opts *opts,
                              struct bld_signature_check *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	out->signature_ref = bld_cosign_tag_ref(ref, digest, "sig");
	struct oci_opts quiet = *opts;
	quiet.progress = NULL;
	struct oci_artifact art;
	struct err *e = NULL;
	if (oci_artifact_read(out->signature_ref, &quiet, BLD_SIMPLE_SIGNING_MT, PAYLOAD_MAX, &art, &e) < 0) {
		if (e->code != ENOENT) {
			*err = e;
			return err_wrap(err, "the signatures of %s", digest);
		}
		err_free(&e);
		out->problem = xasprintf("no signature: the registry has no %s for %s", out->signature_ref, digest);
		return 0;
	}
	out->n_signatures = art.n_layers;
	enum stage best = NO_SIGNATURE;
	for (size_t i = 0; i < art.n_layers && !out->verified; i++) {
		char *why = NULL;
		enum stage st = check_layer(&art.layers[i], ref, digest, key, &why);
		if (st > OTHER_IMAGE) {
			out->verified = true;
			out->identity = why;
			free(out->problem);
			out->problem = NULL;
		} else if (st >= best) {
			best = st;
			free(out->problem);
			out->problem = why;
		} else {
			free(why);
		}
	}
	if (!out->verified && art.n_layers == 0)
		out->problem = xasprintf("no signature: %s holds no simple-signing payload%s", out->signature_ref,
		                         art.n_skipped ? " small enough to read" : "");
	oci_artifact_free(&art);
	return 0;
}

void bld_signature_check_free(struct bld_signature_check *c)
{
	free(c->identity);
	free(c->signature_ref);
	free(c->problem);
	memset(c, 0, sizeof(*c));
}
