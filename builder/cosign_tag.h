/* cosign_tag: the small image cosign keeps beside an image in its repository, tagged
 * sha256-<hex>.<suffix> (".sig" for signatures, ".att" for attestations): one layer per
 * attachment, a config whose rootfs names them, the attachments already there kept. Private to
 * builder/ (sign_image.c, attest_image.c). */
#ifndef ENCLAVER_BUILDER_COSIGN_TAG_H
#define ENCLAVER_BUILDER_COSIGN_TAG_H

#include "common/json.h"
#include "oci/oci.h"

struct bld_cosign_layer {
	const char *media_type;
	const char *data;
	size_t len;
	const json_t *annotations; /* the layer's annotations (copied) */
};

/* The image a signature or attestation is for: image parsed into *ref (freed by the caller on
 * success), which must be in a registry (`what` says for what: "signed"), and its manifest digest
 * into digest_out: digest when given (it must agree with a digest the reference names), else what
 * the registry holds for the reference. */
int bld_cosign_subject(const char *image, const char *digest, const char *what, const struct oci_opts *opts,
                       struct oci_ref *ref, char digest_out[OCI_DIGEST_MAX], struct err **err);
/* "docker://registry/repository:sha256-<hex>.<suffix>" for digest. Caller frees. */
char *bld_cosign_tag_ref(const struct oci_ref *ref, const char *digest, const char *suffix);
/* Adds layer to the image at the tag (made when absent): the layers of its media type already there
 * stay; one with the same digest and annotations is not added twice. *tag_ref (may be NULL) gets the tag's reference.
 */
int bld_cosign_tag_push(const struct oci_ref *ref, const char *digest, const char *suffix,
                        const struct bld_cosign_layer *layer, const struct oci_opts *opts, char **tag_ref,
                        struct err **err);

#endif
