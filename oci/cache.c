/* cache: the content-addressed blob cache every command shares. Blobs enter
 * only through the verifying blob writer, so a file named by a digest holds it. */
#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>

#include "oci/internal.h"

#define STAGING_DIR "staging"

/* What commands killed a day ago or more left in dir (a live pull or build is younger): every
 * entry, or with temps_only the temporary blobs (.tmp-*, .partial-*). Nothing trusts them
 * (temporary blobs are not named by a digest, a staging folder belongs to one build), but they
 * take space. */
static void sweep_stale(const char *dir, bool temps_only)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	time_t now = time(NULL);
	for (struct dirent *de; (de = readdir(d));) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (temps_only && !str_has_prefix(name, ".tmp-") && !str_has_prefix(name, ".partial-"))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && now - st.st_mtime > 24 * 3600) {
			_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
			io_remove_tree(path);
		}
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
	sweep_stale(out->blob_dir, true);
	_cleanup_free_ char *staging = xasprintf("%s/" STAGING_DIR, out->dir);
	sweep_stale(staging, false);
	return 0;
}

int oci_cache_staging_create(const struct oci_cache *c, const char *name, char **dir, struct err **err)
{
	_cleanup_free_ char *base = xasprintf("%s/" STAGING_DIR, c->dir);
	if (oci_mkdir_p(base, err) < 0 || io_tmpdir_create(base, name, dir, err) < 0)
		return err_wrap(err, "blob cache");
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

/* Moves a blob that is not what its name says out of the way: kept for a look, never used. */
static int quarantine(const struct oci_cache *c, const char *digest, const char *why, struct err **err)
{
	_cleanup_free_ char *path = oci_cache_blob_path(c, digest);
	_cleanup_free_ char *qdir = xasprintf("%s/quarantine", c->dir);
	_cleanup_free_ char *qpath = xasprintf("%s/sha256-%s", qdir, oci_digest_hex(digest));
	struct err *ignored = NULL;
	if (oci_mkdir_p(qdir, &ignored) == 0 && rename(path, qpath) == 0)
		return err_set(err, EBADMSG, "cached blob %s is corrupt (%s): moved to %s; pull again to fetch it anew",
		               digest, why, qpath);
	err_free(&ignored);
	if (unlink(path) == 0 || errno == ENOENT)
		return err_set(err, EBADMSG, "cached blob %s is corrupt (%s): removed; pull again to fetch it anew",
		               digest, why);
	return err_set(err, EBADMSG, "cached blob %s is corrupt (%s) and could not be removed (%s): delete %s", digest,
	               why, strerror(errno), path);
}

/* Checks what a cached blob hashed to (and its length) against its name (and the size a
 * descriptor gives, when >= 0). */
static int check_hashed(const struct oci_cache *c, const char *digest, int64_t size, const char *got, int64_t len,
                        struct err **err)
{
	if (size >= 0 && len != size) {
		_cleanup_free_ char *why = xasprintf("%lld bytes, the descriptor says %lld", (long long)len, (long long)size);
		return quarantine(c, digest, why, err);
	}
	if (strcmp(got, digest) != 0) {
		_cleanup_free_ char *why = xasprintf("its bytes hash to %s", got);
		return quarantine(c, digest, why, err);
	}
	return 0;
}

int oci_cache_read_blob(const struct oci_cache *c, const char *digest, int64_t size, size_t max, struct buf *out,
                        struct err **err)
{
	if (!cacheable(digest))
		return err_set(err, EINVAL, "blob %s: only sha256 blobs are cached", digest);
	if (size > (int64_t)max)
		return err_set(err, EFBIG, "blob %s: %lld bytes is over the %zu-byte limit", digest, (long long)size, max);
	_cleanup_free_ char *path = oci_cache_blob_path(c, digest);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, max, &text, &len, err) < 0)
		return -1;
	char got[OCI_DIGEST_MAX];
	oci_digest_buf(text, len, got);
	if (check_hashed(c, digest, size, got, (int64_t)len, err) < 0)
		return -1;
	buf_append(out, text, len);
	return 0;
}

int oci_cache_read_manifest(const struct oci_cache *c, const char *digest, struct buf *out, struct err **err)
{
	return oci_cache_read_blob(c, digest, -1, OCI_MANIFEST_MAX, out, err);
}

int oci_cache_verify_blob(const struct oci_cache *c, const char *digest, int64_t size, struct err **err)
{
	_cleanup_close_ int fd = -1;
	if (oci_cache_open_blob(c, digest, &fd, err) < 0)
		return -1;
	char got[OCI_DIGEST_MAX];
	int64_t len;
	if (oci_digest_fd(fd, "sha256", got, &len, err) < 0)
		return err_wrap(err, "cached blob %s", digest);
	return check_hashed(c, digest, size, got, len, err);
}

static int name_order(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool hex64(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

int oci_cache_verify_all(const struct oci_cache *c, size_t *checked, size_t *bad, struct err **err)
{
	*checked = *bad = 0;
	DIR *d = opendir(c->blob_dir);
	if (d == NULL)
		return err_sys(err, "opendir %s", c->blob_dir);
	/* The names first: quarantining changes the folder under readdir. */
	char **names = NULL;
	size_t n = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", and the temporaries of pulls (.tmp-*, .partial-*): trusted by nothing */
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_order);
	for (size_t i = 0; i < n; i++) {
		if (!hex64(names[i])) {
			log_warn("%s/%s: not a blob name (left alone)", c->blob_dir, names[i]);
			continue;
		}
		_cleanup_free_ char *digest = xasprintf("sha256:%s", names[i]);
		struct err *e = NULL;
		(*checked)++;
		if (oci_cache_verify_blob(c, digest, -1, &e) < 0) {
			(*bad)++;
			log_error("%s", e->msg);
			err_free(&e);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return 0;
}

int oci_cache_put_fd(const struct oci_cache *c, const struct oci_desc *desc, int fd, bool verified, struct err **err)
{
	/* A registry source already streamed it here (verified). */
	if (oci_cache_has(c, desc->digest, desc->size))
		return 0;
	return oci_blob_write_fd(c->blob_dir, desc->digest, desc->size, fd, verified, err);
}
