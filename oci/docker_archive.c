/* docker_archive: reads `docker save` tarballs (manifest.json + config + layer
 * tars) with libarchive, streaming each member into the blob cache, and
 * presents the image as a Docker schema 2 manifest. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <string.h>

#include "oci/internal.h"

/* A member name as docker writes it or a link points at it, without "./". */
static char *clean_name(const char *name)
{
	while (str_has_prefix(name, "./"))
		name += 2;
	return xstrdup(name);
}

struct member {
	char *name;
	char *link;   /* symlink or hardlink target (resolved), or NULL */
	char *digest; /* once cached */
	int64_t size;
};

struct archive_source {
	struct oci_source base;
	struct member *members;
	size_t n_members;
	struct buf manifest;
	char manifest_digest[OCI_DIGEST_MAX];
};

static void members_free(struct archive_source *as)
{
	for (size_t i = 0; i < as->n_members; i++) {
		free(as->members[i].name);
		free(as->members[i].link);
		free(as->members[i].digest);
	}
	free(as->members);
	as->members = NULL;
	as->n_members = 0;
}

static struct member *member_find(struct archive_source *as, const char *name)
{
	for (size_t i = 0; i < as->n_members; i++) {
		if (strcmp(as->members[i].name, name) == 0)
			return &as->members[i];
	}
	return NULL;
}

/* Follows links (at most a few hops) to the member holding the data. */
static struct member *member_resolve(struct archive_source *as, const char *name)
{
	struct member *m = member_find(as, name);
	for (int hops = 0; m && m->link && hops < 8; hops++)
		m = member_find(as, m->link);
	return m && m->link == NULL ? m : NULL;
}

/* Pass 1: the member list (links resolved to names) and manifest.json. */
static int scan_archive(struct archive_source *as, const char *path, char **manifest_json, size_t *manifest_len,
                        struct err **err)
{
	struct archive *a;
	if (oci_tar_open(path, &a, err) < 0)
		return -1;
	int r = 0;
	size_t cap = 0;
	for (;;) {
		struct archive_entry *e;
		int rc = archive_read_next_header(a, &e);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
			r = err_set(err, EBADMSG, "%s: %s", path, archive_error_string(a));
			break;
		}
		_cleanup_free_ char *name = clean_name(archive_entry_pathname(e));
		if (as->n_members == cap) {
			cap = cap ? cap * 2 : 32;
			as->members = xrealloc(as->members, cap * sizeof(*as->members));
		}
		struct member *m = &as->members[as->n_members];
		memset(m, 0, sizeof(*m));
		const char *hard = archive_entry_hardlink(e);
		if (hard) {
			m->link = clean_name(hard);
		} else if (archive_entry_filetype(e) == AE_IFLNK) {
			/* Relative to the link's folder; docker writes "../<id>/layer.tar". */
			const char *target = archive_entry_symlink(e);
			_cleanup_free_ char *dir = xstrdup(name);
			char *slash = strrchr(dir, '/');
			if (slash)
				*slash = '\0';
			else
				dir[0] = '\0';
			while (str_has_prefix(target, "../")) {
				target += 3;
				char *s = strrchr(dir, '/');
				if (s)
					*s = '\0';
				else
					dir[0] = '\0';
			}
			m->link = dir[0] ? xasprintf("%s/%s", dir, target) : clean_name(target);
		} else if (archive_entry_filetype(e) != AE_IFREG) {
			continue;
		}
		m->name = steal_pointer(&name);
		as->n_members++;
		if (strcmp(m->name, "manifest.json") == 0 && m->link == NULL &&
		    oci_tar_read_small(a, path, m->name, archive_entry_size(e), manifest_json, manifest_len, err) < 0) {
			r = -1;
			break;
		}
	}
	archive_read_free(a);
	return r;
}

static bool repo_tag_matches(const char *repo_tag, const char *want)
{
	struct oci_ref r;
	if (oci_ref_parse(repo_tag, &r, NULL) < 0)
		return false;
	_cleanup_free_ char *name = oci_ref_name(&r);
	oci_ref_free(&r);
	return strcmp(name, want) == 0;
}

/* Picks the manifest.json entry the reference names. */
static int pick_image(const struct oci_ref *ref, json_t *list, json_t **out, struct err **err)
{
	const char *path = ref->path;
	if (!json_is_array(list) || json_array_size(list) == 0)
		return err_set(err, EBADMSG, "%s: manifest.json must be a non-empty array", path);
	size_t n = json_array_size(list);
	if (ref->archive_index >= 0) {
		if ((size_t)ref->archive_index >= n)
			return err_set(err, ENOENT, "%s: no image @%d (the archive holds %zu)", path,
			               ref->archive_index, n);
		*out = json_array_get(list, (size_t)ref->archive_index);
		return 0;
	}
	if (ref->local_tag == NULL) {
		if (n > 1) {
			/* Say what there is to choose from: @N and the tags of each. */
			struct buf b = {0};
			for (size_t i = 0; i < n; i++) {
				json_t *tags = json_object_get(json_array_get(list, i), "RepoTags");
				buf_printf(&b, "%s@%zu (", i ? ", " : "", i);
				for (size_t j = 0; j < json_array_size(tags); j++) {
					const char *t = json_string_value(json_array_get(tags, j));
					buf_printf(&b, "%s%s", j ? " " : "", t ? t : "?");
				}
				buf_printf(&b, "%s)", json_array_size(tags) ? "" : "untagged");
			}
			err_set(err, EINVAL, "%s holds %zu images: %s; name one as docker-archive:%s:NAME:TAG or :@N",
			        path, n, buf_str(&b), path);
			buf_free(&b);
			return -1;
		}
		*out = json_array_get(list, 0);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *tags = json_object_get(json_array_get(list, i), "RepoTags");
		for (size_t j = 0; j < json_array_size(tags); j++) {
			const char *t = json_string_value(json_array_get(tags, j));
			if (t && repo_tag_matches(t, ref->local_tag)) {
				*out = json_array_get(list, i);
				return 0;
			}
		}
	}
	return err_set(err, ENOENT, "%s: no image tagged %s", path, ref->local_tag);
}

/* Pass 2: streams the wanted members into the cache, noting their digests. */
static int cache_members(struct archive_source *as, const char *path, struct err **err)
{
	struct archive *a;
	if (oci_tar_open(path, &a, err) < 0)
		return -1;
	int r = 0;
	for (;;) {
		struct archive_entry *e;
		int rc = archive_read_next_header(a, &e);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
			r = err_set(err, EBADMSG, "%s: %s", path, archive_error_string(a));
			break;
		}
		if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
			continue;
		_cleanup_free_ char *name = clean_name(archive_entry_pathname(e));
		struct member *m = member_find(as, name);
		if (m == NULL || m->size != -2 || m->digest)
			continue; /* not wanted (size -2 marks wanted), or a duplicate entry */
		char digest[OCI_DIGEST_MAX];
		if (oci_tar_member_to_cache(a, as->base.cache, path, name, NULL, -1, digest, &m->size, err) < 0) {
			r = -1;
			break;
		}
		m->digest = xstrdup(digest);
	}
	archive_read_free(a);
	return r;
}

static int want_member(struct archive_source *as, const char *path, const char *name, struct member **out,
                       struct err **err)
{
	_cleanup_free_ char *clean = clean_name(name);
	struct member *m = member_resolve(as, clean);
	if (m == NULL)
		return err_set(err, ENOENT, "%s: manifest.json names %s, which the archive lacks", path, name);
	m->size = -2;
	*out = m;
	return 0;
}

/* Layer media type from the first bytes of the cached blob. */
static int layer_media_type(struct oci_cache *cache, const char *digest, const char **mt, struct err **err)
{
	int fd;
	if (oci_cache_open_blob(cache, digest, &fd, err) < 0)
		return -1;
	unsigned char magic[4] = {0};
	ssize_t n = io_read_full(fd, magic, sizeof(magic), err);
	close(fd);
	if (n < 0)
		return -1;
	if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
		*mt = DOCKER_MT_LAYER_GZIP;
	else if (n == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
		return err_set(err, ENOTSUP, "layer %s is zstd-compressed, which Docker schema 2 cannot describe",
		               digest);
	else
		*mt = DOCKER_MT_LAYER;
	return 0;
}

static int build_manifest(struct archive_source *as, const char *path, json_t *image, struct err **err)
{
	const char *config_name = json_string_value(json_object_get(image, "Config"));
	json_t *layers = json_object_get(image, "Layers");
	if (config_name == NULL)
		return err_set(err, EBADMSG, "%s: manifest.json: \"Config\" must be a string", path);
	if (!json_is_array(layers))
		return err_set(err, EBADMSG, "%s: manifest.json: \"Layers\" must be an array", path);
	size_t n = json_array_size(layers);
	struct member *config;
	struct member **lm = xcalloc(n ? n : 1, sizeof(*lm));
	int r = want_member(as, path, config_name, &config, err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		const char *ln = json_string_value(json_array_get(layers, i));
		if (ln == NULL)
			r = err_set(err, EBADMSG, "%s: manifest.json: Layers[%zu] must be a string", path, i);
		else
			r = want_member(as, path, ln, &lm[i], err);
	}
	if (r == 0)
		r = cache_members(as, path, err);
	for (size_t i = 0; r == 0 && i <= n; i++) {
		struct member *m = i == 0 ? config : lm[i - 1];
		if (m->digest == NULL)
			r = err_set(err, EBADMSG, "%s: member %s: no data", path, m->name);
	}
	_cleanup_json_ json_t *doc = NULL;
	if (r == 0) {
		doc = json_pack("{s:i, s:s, s:{s:s, s:I, s:s}, s:[]}", "schemaVersion", 2, "mediaType",
		                DOCKER_MT_MANIFEST, "config", "mediaType", DOCKER_MT_CONFIG, "size",
		                (json_int_t)config->size, "digest", config->digest, "layers");
		json_t *arr = json_object_get(doc, "layers");
		for (size_t i = 0; r == 0 && i < n; i++) {
			const char *mt = NULL;
			r = layer_media_type(as->base.cache, lm[i]->digest, &mt, err);
			if (r == 0)
				json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "mediaType", mt, "size",
				                                     (json_int_t)lm[i]->size, "digest", lm[i]->digest));
		}
	}
	free(lm);
	if (r < 0)
		return -1;
	if (json_serde_write(&as->manifest, doc, 0, err) < 0)
		return -1;
	oci_digest_buf(as->manifest.data, as->manifest.len, as->manifest_digest);
	return 0;
}

static int archive_get_manifest(struct oci_source *s, const char *digest, struct buf *out, char **media_type,
                                struct err **err)
{
	struct archive_source *as = (struct archive_source *)s;
	if (digest && strcmp(digest, as->manifest_digest) != 0)
		return err_set(err, ENOENT, "%s: no manifest %s", s->ref.path, digest);
	buf_append(out, as->manifest.data, as->manifest.len);
	*media_type = xstrdup(DOCKER_MT_MANIFEST);
	return 0;
}

static void archive_source_free(struct oci_source *s)
{
	struct archive_source *as = (struct archive_source *)s;
	members_free(as);
	buf_free(&as->manifest);
	oci_ref_free(&s->ref);
	free(as);
}

static const struct oci_source_ops archive_source_ops = {
    .blobs_verified = true,
    .get_manifest = archive_get_manifest,
    .open_blob = oci_tar_source_open_blob,
    .free = archive_source_free,
};

int oci_docker_archive_source_open(const struct oci_ref *ref, struct oci_cache *cache, struct oci_source **out,
                                   struct err **err)
{
	struct archive_source *as = xcalloc(1, sizeof(*as));
	as->base.ops = &archive_source_ops;
	as->base.cache = cache;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = scan_archive(as, ref->path, &text, &len, err);
	if (r == 0 && text == NULL)
		r = err_set(err, EBADMSG, "%s is not a docker-archive: it has no manifest.json", ref->path);
	_cleanup_json_ json_t *list = NULL;
	if (r == 0) {
		json_error_t je;
		list = json_loadb(text, len, 0, &je);
		if (list == NULL)
			r = err_set(err, EBADMSG, "%s: manifest.json: line %d, column %d: %s", ref->path, je.line,
			            je.column, je.text);
	}
	json_t *image = NULL;
	if (r == 0)
		r = pick_image(ref, list, &image, err);
	if (r == 0)
		r = build_manifest(as, ref->path, image, err);
	if (r < 0) {
		members_free(as);
		buf_free(&as->manifest);
		free(as);
		return -1;
	}
	*out = &as->base;
	return 0;
}
