/* cache: the content-addressed blob cache every command shares. Blobs enter
 * only through the verifying blob writer, so a file named by a digest holds it. */
#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>

#include "oci/internal.h"

/* Temporary blobs of pulls killed long ago: nothing trusts them (they are
 * not named by a digest), but they take space. A day-old one is no live pull. */
static void sweep_stale_temps(const char *blob_dir)
{
	DIR *d = opendir(blob_dir);
	if (d == NULL)
		return;
	time_t now = time(NULL);
	for (struct dirent *de; (de = readdir(d));) {
		if (!str_has_prefix(de->d_name, ".tmp-") && !str_has_prefix(de->d_name, ".partial-"))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && now - st.st_mtime > 24 * 3600)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

int oci_cache_open(const char *dir, struct oci_cache *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	if (dir == NULL || *dir == '\0') {
		const char *env = getenv("ENCLAVER_CACHE_DIR");
		const char *xdg = getenv("XDG_CACHE_HOME");
		const char *home = getenv("HOME");
		if (env && *env)
			out->dir = xstrdup(env);
		else if (xdg && *xdg == '/')
			out->dir = xasprintf("%s/enclaver", xdg);
		else if (home && *home)
			out->dir = xasprintf("%s/.cache/enclaver", home);
		else
			return err_set(err, EINVAL, "no cache directory: set XDG_CACHE_HOME or HOME");
	} else {
		out->dir = xstrdup(dir);
	}
	out->blob_dir = xasprintf("%s/blobs/sha256", out->dir);
	if (oci_mkdir_p(out->blob_dir, err) < 0) {
		err_wrap(err, "blob cache");
		oci_cache_close(out);
		return -1;
	}
	sweep_stale_temps(out->blob_dir);
	return 0;
}

void oci_cache_close(struct oci_cache *c)
{
	if (c == NULL)
		return;
	free(c->dir);
	free(c->blob_dir);
	memset(c, 0, sizeof(*c));
}

char *oci_cache_blob_path(const struct oci_cache *c, const char *digest)
{
	return xasprintf("%s/%s", c->blob_dir, oci_digest_hex(digest));
}

/* Only sha256 blobs are cached; other algorithms always travel. */
static bool cacheable(const char *digest)
{
	return str_has_prefix(digest, "sha256:") && oci_digest_check(digest, NULL) == 0;
}

bool oci_cache_has(const struct oci_cache *c, const char *digest, int64_t size)
{
	if (!cacheable(digest))
		return false;
	_cleanup_free_ char *path = oci_cache_blob_path(c, digest);
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	return size < 0 || st.st_size == size;
}

int oci_cache_open_blob(const struct oci_cache *c, const char *digest, int *fd, struct err **err)
{
	if (!cacheable(digest))
		return err_set(err, EINVAL, "blob %s: only sha256 blobs are cached", digest);
	_cleanup_free_ char *path = oci_cache_blob_path(c, digest);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return err_sys(err, "blob %s: open %s", digest, path);
	return 0;
}

int oci_cache_put_buf(const struct oci_cache *c, const void *data, size_t len, const char *expected,
                      char digest_out[OCI_DIGEST_MAX], struct err **err)
{
	/* Content-addressed: a blob already there is these bytes (a re-pull
	 * would otherwise write and fsync the same manifest again). */
	if (expected && oci_cache_has(c, expected, (int64_t)len)) {
		if (digest_out)
			memcpy(digest_out, expected, strlen(expected) + 1);
		return 0;
	}
	return oci_blob_write_buf(c->blob_dir, expected, data, len, digest_out, err);
}

static char *tag_path(const struct oci_cache *c, const struct oci_ref *ref)
{
	return xasprintf("%s/refs/%s/%s/%s", c->dir, ref->registry, ref->repository, ref->tag);
}

int oci_cache_tag_set(const struct oci_cache *c, const struct oci_ref *ref, const char *digest, struct err **err)
{
	if (ref->transport != OCI_TRANSPORT_DOCKER || ref->tag == NULL)
		return 0;
	_cleanup_free_ char *now = NULL;
	if (oci_cache_tag_get(c, ref, &now, NULL) == 0 && strcmp(now, digest) == 0)
		return 0; /* unchanged: no rewrite, no fsync */
	_cleanup_free_ char *path = tag_path(c, ref);
	_cleanup_free_ char *dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
	if (oci_mkdir_p(dir, err) < 0)
		return -1;
	_cleanup_free_ char *line = xasprintf("%s\n", digest);
	return atomic_file_write(path, 0644, line, strlen(line), err);
}

int oci_cache_tag_get(const struct oci_cache *c, const struct oci_ref *ref, char **digest_out, struct err **err)
{
	_cleanup_free_ char *path = tag_path(c, ref);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, 256, &text, &len, err) < 0)
		return -1;
	text[strcspn(text, "\n")] = '\0';
	if (oci_digest_check(text, err) < 0)
		return err_wrap(err, "cached tag %s", path);
	*digest_out = steal_pointer(&text);
	return 0;
}

int oci_cache_read_manifest(const struct oci_cache *c, const char *digest, struct buf *out, struct err **err)
{
	_cleanup_free_ char *path = oci_cache_blob_path(c, digest);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, OCI_MANIFEST_MAX, &text, &len, err) < 0)
		return -1;
	buf_append(out, text, len);
	return 0;
}

int oci_cache_put_fd(const struct oci_cache *c, const struct oci_desc *desc, int fd, struct err **err)
{
	/* A registry source already streamed it here (verified). */
	if (oci_cache_has(c, desc->digest, desc->size))
		return 0;
	return oci_blob_write_fd(c->blob_dir, desc->digest, desc->size, fd, false, err);
}
