/* oci_archive: reading oci-archive tarballs (a tar of an OCI layout): every blob streams straight
 * into the cache through the digest check, so nothing from the tar is written under a name it
 * chose. Writing one is archive_write.c's (a layout folder, tarred). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "oci/internal.h"

/* ---------------------------------------------------------------- reading */
struct archive_src {
	struct oci_source base;
	struct oci_manifest index;
};

static int cache_member(struct archive *a, struct oci_cache *cache, const char *file, const char *name,
                        const char *digest, int64_t size, struct err **err)
{
	if (oci_cache_has(cache, digest, size)) {
		archive_read_data_skip(a);
		return 0;
	}
	return oci_tar_member_to_cache(a, cache, file, name, digest, size, NULL, NULL, err);
}

static int scan(struct archive_src *as, const char *file, struct err **err)
{
	struct archive *a;
	if (oci_tar_open(file, &a, err) < 0)
		return -1;
	_cleanup_free_ char *index = NULL, *marker = NULL;
	size_t index_len = 0, marker_len = 0;
	int r = 0;
	for (;;) {
		struct archive_entry *e;
		int rc = archive_read_next_header(a, &e);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
			r = err_set(err, EBADMSG, "%s: %s", file, archive_error_string(a));
			break;
		}
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		const char *name = archive_entry_pathname(e);
		while (str_has_prefix(name, "./"))
			name += 2;
		int64_t size = archive_entry_size(e);
		if (strcmp(name, "index.json") == 0) {
			r = oci_tar_read_small(a, file, name, size, &index, &index_len, err);
		} else if (strcmp(name, "oci-layout") == 0) {
			r = oci_tar_read_small(a, file, name, size, &marker, &marker_len, err);
		} else if (str_has_prefix(name, "blobs/")) {
			const char *rest = name + 6;
			const char *slash = strchr(rest, '/');
			if (slash == NULL)
				continue;
			_cleanup_free_ char *digest = xasprintf("%.*s:%s", (int)(slash - rest), rest, slash + 1);
			if (oci_digest_check(digest, err) < 0) {
				r = err_wrap(err, "%s: member %s", file, name);
				break;
			}
			if (!str_has_prefix(digest, "sha256:")) {
				r = err_set(err, ENOTSUP, "%s: member %s: only sha256 blobs are supported", file, name);
				break;
			}
			r = cache_member(a, as->base.cache, file, name, digest, size, err);
		}
		if (r < 0)
			break;
	}
	archive_read_free(a);
	if (r < 0)
		return -1;
	if (marker == NULL || strstr(marker, "\"1.0.0\"") == NULL)
		return err_set(err, EBADMSG, "%s is not an oci-archive: no oci-layout with imageLayoutVersion 1.0.0",
		               file);
	if (index == NULL)
		return err_set(err, EBADMSG, "%s is not an oci-archive: no index.json", file);
	if (oci_manifest_parse(index, index_len, OCI_MT_INDEX, &as->index, err) < 0)
		return err_wrap(err, "%s: index.json", file);
	if (as->index.kind != OCI_KIND_INDEX)
		return err_set(err, EBADMSG, "%s: index.json is not an image index", file);
	return 0;
}

static int from_cache(struct oci_source *s, const char *digest, int64_t size, struct buf *out, struct err **err)
{
	if (!oci_cache_has(s->cache, digest, size))
		return err_set(err, ENOENT, "%s: the archive lacks manifest %s", s->ref.path, digest);
	return oci_cache_read_manifest(s->cache, digest, out, err);
}

static int asrc_get_manifest(struct oci_source *s, const char *digest, struct buf *out, char **media_type,
                             struct err **err)
{
	struct archive_src *as = (struct archive_src *)s;
	if (digest)
		return from_cache(s, digest, -1, out, err);
	const struct oci_desc *pick;
	if (oci_index_pick(&as->index, "oci-archive", s->ref.path, s->ref.local_tag, &pick, err) < 0)
		return -1;
	if (from_cache(s, pick->digest, pick->size, out, err) < 0)
		return -1;
	*media_type = xstrdup(pick->media_type);
	return 0;
}

static void asrc_free(struct oci_source *s)
{
	struct archive_src *as = (struct archive_src *)s;
	oci_manifest_free(&as->index);
	oci_ref_free(&s->ref);
	free(as);
}

static const struct oci_source_ops archive_src_ops = {
    .blobs_verified = true,
    .get_manifest = asrc_get_manifest,
    .open_blob = oci_tar_source_open_blob,
    .free = asrc_free,
};

int oci_archive_source_open(const struct oci_ref *ref, struct oci_cache *cache, struct oci_source **out,
                            struct err **err)
{
	struct archive_src *as = xcalloc(1, sizeof(*as));
	as->base.ops = &archive_src_ops;
	as->base.cache = cache;
	if (scan(as, ref->path, err) < 0) {
		oci_manifest_free(&as->index);
		free(as);
		return -1;
	}
	*out = &as->base;
	return 0;
}
