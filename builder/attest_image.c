/* attest_image: a build's statement on its way to and from a registry. Attached as cosign
 * attaches attestations (`cosign attest`): the DSSE envelope is a layer of media type
 * application/vnd.dsse.envelope.v1+json with the annotations cosign writes (an empty
 * dev.cosignproject.cosign/signature, and predicateType), in the image tagged sha256-<hex>.att
 * (builder/cosign_tag.c, shared with image signatures). Where the registry answers the OCI 1.1
 * referrers API, the same layer goes up once more as a referrer (a manifest with `subject` and
 * artifactType), which is where newer tools look. Read back: the .att layers, each envelope
 * verified with the caller's public key before its statement is trusted. */
#include <string.h>

#include "builder/builder.h"
#include "builder/cosign_tag.h"
#include "builder/statement.h"
#include "keys/dsse.h"

/* The OCI 1.1 empty descriptor a referrer without a config of its own names. */
#define OCI_MT_EMPTY     "application/vnd.oci.empty.v1+json"
#define OCI_EMPTY_DIGEST "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
/* Envelopes above this are not read (ours are a few KiB). */
#define MAX_ENVELOPE (4u << 20)

int bld_statement_envelope(const char *statement, struct sign_key *key, char **envelope_out, struct err **err)
{
	return dsse_envelope_make(DSSE_PAYLOAD_TYPE_INTOTO, statement, strlen(statement), key, envelope_out, err);
}

/* The referrer: the envelope layer under a manifest whose subject is the image. */
static int push_referrer(const struct oci_ref *ref, const struct oci_desc *subject, const char *envelope,
                         const json_t *annotations, const struct oci_opts *opts, char digest[OCI_DIGEST_MAX],
                         struct err **err)
{
	char layer_digest[OCI_DIGEST_MAX];
	size_t len = strlen(envelope);
	oci_digest_buf(envelope, len, layer_digest);
	_cleanup_json_ json_t *doc = json_pack(
	    "{s:i, s:s, s:s, s:{s:s, s:s, s:i}, s:[{s:s, s:s, s:I, s:O}], s:{s:s, s:s, s:I}, s:O}", "schemaVersion", 2,
	    "mediaType", OCI_MT_MANIFEST, "artifactType", DSSE_MEDIA_TYPE, "config", "mediaType", OCI_MT_EMPTY,
	    "digest", OCI_EMPTY_DIGEST, "size", 2, "layers", "mediaType", DSSE_MEDIA_TYPE, "digest", layer_digest,
	    "size", (json_int_t)len, "annotations", annotations, "subject", "mediaType", subject->media_type, "digest",
	    subject->digest, "size", (json_int_t)subject->size, "annotations", annotations);
	_cleanup_free_ char *manifest = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	oci_digest_buf(manifest, strlen(manifest), digest);
	_cleanup_free_ char *dst = xasprintf("docker://%s/%s@%s", ref->registry, ref->repository, digest);
	struct oci_blob blobs[] = {{"{}", 2}, {envelope, len}};
	return oci_put_image(dst, opts, blobs, 2, manifest, strlen(manifest), OCI_MT_MANIFEST, digest, err);
}

int bld_attach_attestation(const char *image, const char *digest, const char *envelope, const struct oci_opts *opts,
                           struct bld_attestation *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	struct oci_ref ref;
	char checked[OCI_DIGEST_MAX];
	if (bld_cosign_subject(image, digest, "attested", opts, &ref, checked, err) < 0)
		return -1;
	/* The predicate type for the annotation, from the statement itself. */
	struct dsse_envelope env = {0};
	int r = dsse_envelope_parse(envelope, strlen(envelope), &env, err);
	_cleanup_json_ json_t *stmt = r == 0 ? json_loadb((const char *)env.payload, env.payload_len, 0, NULL) : NULL;
	const char *ptype = json_string_value(json_object_get(stmt, "predicateType"));
	if (r == 0 && ptype == NULL)
		r = err_set(err, EINVAL, "the envelope's statement has no predicateType");
	_cleanup_json_ json_t *ann =
	    r == 0 ? json_pack("{s:s, s:s}", "dev.cosignproject.cosign/signature", "", "predicateType", ptype) : NULL;
	if (r == 0) {
		struct bld_cosign_layer layer = {DSSE_MEDIA_TYPE, envelope, strlen(envelope), ann};
		r = bld_cosign_tag_push(&ref, digest, "att", &layer, opts, &out->att_ref, err);
	}
	struct oci_desc subject = {0};
	if (r == 0)
		r = oci_referrers_probe(image, digest, opts, &out->referrers_api, &subject, err);
	if (r == 0 && out->referrers_api) {
		char rd[OCI_DIGEST_MAX];
		r = push_referrer(&ref, &subject, envelope, ann, opts, rd, err);
		if (r == 0)
			out->referrer = xstrdup(rd);
		else
			err_wrap(err, "the OCI 1.1 referrer");
	}
	oci_desc_free(&subject);
	dsse_envelope_free(&env);
	oci_ref_free(&ref);
	if (r < 0) {
		bld_attestation_free(out);
		return err_wrap(err, "attest %s@%s", image, digest);
	}
	return 0;
}

void bld_attestation_free(struct bld_attestation *a)
{
	free(a->att_ref);
	free(a->referrer);
	memset(a, 0, sizeof(*a));
}

int bld_statement_open(const char *envelope, size_t len, EVP_PKEY *pub, struct bld_statement *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	struct dsse_envelope e;
	int r = dsse_envelope_parse(envelope ? envelope : "", len, &e, err);
	if (r == 0 && pub)
		r = dsse_envelope_verify(&e, DSSE_PAYLOAD_TYPE_INTOTO, pub, NULL, err);
	else if (r == 0 && strcmp(e.payload_type, DSSE_PAYLOAD_TYPE_INTOTO) != 0)
		r = err_set(err, EINVAL, "DSSE envelope: payloadType is \"%s\", not \"%s\"", e.payload_type,
		            DSSE_PAYLOAD_TYPE_INTOTO);
	if (r == 0)
		r = bld_statement_parse(e.payload, e.payload_len, out, err);
	dsse_envelope_free(&e);
	return r;
}

/* Why one envelope would not do, for the error when none does. */
static int check_envelope(const struct buf *env, EVP_PKEY *pub, const char *digest, struct bld_statement *out,
                          struct err **err)
{
	int r = bld_statement_open(env->data, env->len, pub, out, err);
	if (r == 0 && strcmp(out->subject_digest, digest) != 0)
		r = err_set(err, EPERM, "its subject is %s, not this image (%s)", out->subject_digest, digest);
	if (r < 0)
		bld_statement_free(out);
	return r;
}

int bld_image_statement(const char *image, const char *digest, const struct oci_opts *opts, EVP_PKEY *pub,
                        struct bld_statement *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	char resolved[OCI_DIGEST_MAX];
	struct oci_ref ref;
	if (bld_cosign_subject(image, digest, "attested", opts, &ref, resolved, err) < 0)
		return -1;
	_cleanup_free_ char *tag = bld_cosign_tag_ref(&ref, resolved, "att");
	oci_ref_free(&ref);
	struct oci_opts quiet = *opts;
	quiet.progress = NULL;
	/* Read as the signatures are: each envelope's size checked against MAX_ENVELOPE from its
	 * descriptor before a byte of it is fetched, so a hostile .att costs no more than that. */
	struct oci_artifact art = {0};
	struct err *e = NULL;
	if (oci_artifact_read(tag, &quiet, DSSE_MEDIA_TYPE, MAX_ENVELOPE, &art, &e) < 0) {
		if (e->code != ENOENT) {
			*err = e;
			return err_wrap(err, "the attestations at %s", tag);
		}
		err_free(&e); /* no .att tag: no attestation */
	}
	if (art.n_layers == 0) {
		oci_artifact_free(&art);
		return err_set(err, ENOENT, "%s (%s) has no attestation (no sha256-%s.att)", image, resolved,
		               oci_digest_hex(resolved));
	}
	_cleanup_buf_ struct buf why = {0};
	for (size_t i = 0; i < art.n_layers; i++) {
		if (check_envelope(&art.layers[i].data, pub, resolved, out, &e) == 0) {
			oci_artifact_free(&art);
			return 0;
		}
		buf_printf(&why, "%sattestation %zu: %s", i ? "; " : "", i + 1, e->msg);
		err_free(&e);
	}
	oci_artifact_free(&art);
	return err_set(err, EPERM, "%s (%s): no attestation verifies with this key: %s", image, resolved,
	               buf_str(&why));
}
