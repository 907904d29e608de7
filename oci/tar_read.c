/* tar_read: what the two archive sources (docker-archive, oci-archive) share:
 * opening a tar that may be gzip or zstd compressed, reading a small member
 * into memory, streaming a member into the cache, and their blobs' reads. */
#include <archive.h>
#include <archive_entry.h>

#include "oci/internal.h"

int oci_tar_open(const char *path, struct archive **out, struct err **err)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	/* `docker save | gzip` is common for transfers to air-gapped hosts. */
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_none(a);
	if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
		int r = err_set(err, archive_errno(a) ? archive_errno(a) : EIO, "open %s: %s", path,
		                archive_error_string(a));
		archive_read_free(a);
		return r;
	}
	*out = a;
	return 0;
}

int oci_tar_read_small(struct archive *a, const char *file, const char *name, int64_t size, char **out, size_t *len,
                       struct err **err)
{
	if (size < 0 || size > OCI_MANIFEST_MAX)
		return err_set(err, EFBIG, "%s: %s is larger than %d bytes", file, name, OCI_MANIFEST_MAX);
	free(*out);
	*out = xmalloc((size_t)size + 1);
	la_ssize_t got = archive_read_data(a, *out, (size_t)size);
	if (got != size)
		return err_set(err, EBADMSG, "%s: %s: truncated", file, name);
	(*out)[size] = '\0';
	*len = (size_t)size;
	return 0;
}

int oci_tar_member_to_cache(struct archive *a, const struct oci_cache *c, const char *file, const char *name,
                            const char *expected, int64_t size, char digest_out[OCI_DIGEST_MAX], int64_t *size_out,
                            struct err **err)
{
	struct oci_blob_writer *w;
	if (oci_blob_writer_open(c->blob_dir, expected, size, &w, err) < 0)
		return err_wrap(err, "%s", file);
	char *chunk = xmalloc(1 << 20);
	int r = 0;
	for (;;) {
		la_ssize_t n = archive_read_data(a, chunk, 1 << 20);
		if (n < 0) {
			r = err_set(err, EBADMSG, "%s: member %s: %s", file, name, archive_error_string(a));
			break;
		}
		if (n == 0)
			break;
		if (oci_blob_writer_write(w, chunk, (size_t)n, err) < 0) {
			r = err_wrap(err, "%s: member %s", file, name);
			break;
		}
	}
	free(chunk);
	if (r < 0) {
		oci_blob_writer_abort(w);
		return -1;
	}
	if (size_out)
		*size_out = oci_blob_writer_written(w);
	if (oci_blob_writer_commit(w, digest_out, err) < 0)
		return err_wrap(err, "%s: member %s", file, name);
	return 0;
}

int oci_tar_source_open_blob(struct oci_source *s, const struct oci_desc *d, int *fd, struct err **err)
{
	if (!oci_cache_has(s->cache, d->digest, d->size))
		return err_set(err, ENOENT, "%s: the archive lacks blob %s (%lld bytes)", s->ref.path, d->digest,
		               (long long)d->size);
	return oci_cache_open_blob(s->cache, d->digest, fd, err);
}
