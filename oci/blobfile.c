/* blobfile: writes a blob into a content-addressed folder so that it is there
 * complete and verified, or not at all (temp file, hash while streaming, fsync, rename). */
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "oci/internal.h"

struct oci_blob_writer {
	int fd;
	char *dir;
	char *tmp_path;
	char *expected;
	int64_t expected_size;
	int64_t written;
	int64_t synced; /* bytes handed to writeback so far */
	bool trusted;   /* filled from an already verified blob: no hash to compare */
	bool partial;   /* tmp_path is the digest's resumable .partial- file */
	struct oci_digester *digester;
	/* Small writes (curl hands over 16 KiB at a time) are gathered into
	 * one write(2) per WRITE_BUF: far fewer system calls per blob. */
	char *buf;
	size_t buf_len;
};

#define SYNC_STEP (8 << 20)
#define WRITE_BUF (1 << 20)

/* Start writeback as we go, so the fsync at commit has little left to do
 * and a large blob does not stall the pull at the end. */
static void writer_writeback(struct oci_blob_writer *w)
{
	if (w->written - w->synced >= SYNC_STEP) {
		(void)sync_file_range(w->fd, w->synced, w->written - w->synced, SYNC_FILE_RANGE_WRITE);
		w->synced = w->written;
	}
}

/* Writes out what the buffer holds; w->written already counts it. */
static int writer_flush(struct oci_blob_writer *w, struct err **err)
{
	if (w->buf_len == 0)
		return 0;
	if (io_write_full(w->fd, w->buf, w->buf_len, err) < 0)
		return err_wrap(err, "%s", w->tmp_path);
	w->buf_len = 0;
	writer_writeback(w);
	return 0;
}

int oci_blob_writer_open(const char *dir, const char *expected, int64_t expected_size, struct oci_blob_writer **out,
                         struct err **err)
{
	const char *algo = "sha256";
	_cleanup_free_ char *algo_buf = NULL;
	if (expected) {
		if (oci_digest_check(expected, err) < 0)
			return -1;
		algo = algo_buf = xstrndup(expected, (size_t)(strchr(expected, ':') - expected));
	}
	struct oci_blob_writer *w = xcalloc(1, sizeof(*w));
	w->dir = xstrdup(dir);
	w->tmp_path = xasprintf("%s/.tmp-XXXXXX", dir);
	w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
	if (w->fd < 0) {
		int r = err_sys(err, "create a temporary blob in %s", dir);
		free(w->tmp_path);
		w->tmp_path = NULL;
		oci_blob_writer_abort(w);
		return r;
	}
	w->expected = expected ? xstrdup(expected) : NULL;
	w->expected_size = expected_size;
	w->digester = oci_digester_new(algo);
	*out = w;
	return 0;
}

/* The partial file of an earlier download, hashed so far: the digest is
 * still taken over every byte at commit, so a partial whose bytes went bad
 * fails the check and is thrown away like any other mismatch. */
static int partial_load(struct oci_blob_writer *w, struct err **err)
{
	struct stat st;
	if (fstat(w->fd, &st) < 0)
		return err_sys(err, "stat %s", w->tmp_path);
	if (w->expected_size >= 0 && st.st_size > w->expected_size) {
		if (ftruncate(w->fd, 0) < 0)
			return err_sys(err, "truncate %s", w->tmp_path);
		st.st_size = 0;
	}
	char *chunk = xmalloc(1 << 20);
	int64_t off = 0;
	while (off < st.st_size) {
		ssize_t n = pread(w->fd, chunk, 1 << 20, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		oci_digester_update(w->digester, chunk, (size_t)n);
		off += n;
	}
	free(chunk);
	if (off != st.st_size || lseek(w->fd, off, SEEK_SET) < 0)
		return err_sys(err, "read %s", w->tmp_path);
	w->written = w->synced = off;
	return 0;
}

int oci_blob_writer_resume(const char *dir, const char *expected, int64_t expected_size, struct oci_blob_writer **out,
                           struct err **err)
{
	if (oci_digest_check(expected, err) < 0)
		return -1;
	_cleanup_free_ char *path = xasprintf("%s/.partial-%s", dir, oci_digest_hex(expected));
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	/* Another process downloading the same blob holds it: go on alone. */
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
		return oci_blob_writer_open(dir, expected, expected_size, out, err);
	struct oci_blob_writer *w = xcalloc(1, sizeof(*w));
	w->fd = steal_fd(&fd);
	w->dir = xstrdup(dir);
	w->tmp_path = steal_pointer(&path);
	w->partial = true;
	w->expected = xstrdup(expected);
	w->expected_size = expected_size;
	_cleanup_free_ char *algo = xstrndup(expected, (size_t)(strchr(expected, ':') - expected));
	w->digester = oci_digester_new(algo);
	if (partial_load(w, err) < 0) {
		oci_blob_writer_abort(w);
		return -1;
	}
	if (w->written)
		log_debug("blob %s: %lld bytes from an earlier download", expected, (long long)w->written);
	*out = w;
	return 0;
}

void oci_blob_writer_keep(struct oci_blob_writer *w)
{
	if (w == NULL)
		return;
	struct err *e = NULL;
	bool flushed = writer_flush(w, &e) == 0;
	err_free(&e);
	if (w->partial && flushed && w->written > 0 && fsync(w->fd) == 0) {
		free(w->tmp_path);
		w->tmp_path = NULL; /* so abort leaves the file */
	}
	oci_blob_writer_abort(w);
}

int oci_blob_writer_write(struct oci_blob_writer *w, const void *data, size_t len, struct err **err)
{
	if (w->expected_size >= 0 && w->written + (int64_t)len > w->expected_size)
		return err_set(err, EBADMSG, "blob %s: more data than the expected %lld bytes",
		               w->expected ? w->expected : "(new)", (long long)w->expected_size);
	oci_digester_update(w->digester, data, len);
	if (w->buf_len == 0 && len >= WRITE_BUF) { /* large already: straight through */
		if (io_write_full(w->fd, data, len, err) < 0)
			return err_wrap(err, "%s", w->tmp_path);
		w->written += (int64_t)len;
		writer_writeback(w);
		return 0;
	}
	if (w->buf == NULL)
		w->buf = xmalloc(WRITE_BUF);
	while (len > 0) {
		size_t n = len < WRITE_BUF - w->buf_len ? len : WRITE_BUF - w->buf_len;
		memcpy(w->buf + w->buf_len, data, n);
		w->buf_len += n;
		w->written += (int64_t)n;
		data = (const char *)data + n;
		len -= n;
		if (w->buf_len == WRITE_BUF && writer_flush(w, err) < 0)
			return -1;
	}
	return 0;
}

int64_t oci_blob_writer_written(const struct oci_blob_writer *w)
{
	return w->written;
}

int oci_blob_writer_copy_fd(struct oci_blob_writer *w, int fd, struct err **err)
{
	char *chunk = xmalloc(1 << 20);
	int r = 0;
	for (;;) {
		ssize_t n = io_read_full(fd, chunk, 1 << 20, err);
		if (n < 0 || (n > 0 && oci_blob_writer_write(w, chunk, (size_t)n, err) < 0)) {
			r = -1;
			break;
		}
		if (n < (1 << 20))
			break;
	}
	free(chunk);
	return r;
}

static int writer_finish(struct oci_blob_writer *w, char digest_out[OCI_DIGEST_MAX], struct err **err)
{
	if (writer_flush(w, err) < 0)
		return -1;
	char got[OCI_DIGEST_MAX];
	oci_digester_final(w->digester, got);
	if (w->expected_size >= 0 && w->written != w->expected_size)
		return err_set(err, EBADMSG, "blob %s: size mismatch: expected %lld bytes, got %lld",
		               w->expected ? w->expected : got, (long long)w->expected_size, (long long)w->written);
	if (w->trusted)
		memcpy(got, w->expected, strlen(w->expected) + 1);
	else if (w->expected && strcmp(w->expected, got) != 0)
		return err_set(err, EBADMSG, "digest mismatch: expected %s, got %s", w->expected, got);
	/* Blobs are content named by their digest: read-only for everyone,
	 * so nothing edits one in place (a layout's blob may be the cache's
	 * file, hard-linked), whatever mode mkostemp or a partial had. */
	if (fchmod(w->fd, 0444) < 0)
		return err_sys(err, "chmod %s", w->tmp_path);
	if (fsync(w->fd) < 0)
		return err_sys(err, "fsync %s", w->tmp_path);
	_cleanup_free_ char *final = xasprintf("%s/%s", w->dir, oci_digest_hex(got));
	if (rename(w->tmp_path, final) < 0)
		return err_sys(err, "rename %s to %s", w->tmp_path, final);
	free(w->tmp_path);
	w->tmp_path = NULL;
	(void)io_fsync_dir(w->dir, NULL); /* best effort: the blob is in place either way */
	if (digest_out)
		memcpy(digest_out, got, strlen(got) + 1);
	return 0;
}

int oci_blob_writer_copy_verified(struct oci_blob_writer *w, int fd, struct err **err)
{
	if (w->expected == NULL || w->written != 0)
		return err_set(err, EINVAL, "a verified copy needs a fresh writer with an expected digest");
	/* In-kernel copy (a reflink on filesystems that share extents). */
	for (;;) {
		ssize_t n = copy_file_range(fd, NULL, w->fd, NULL, 1 << 30, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (w->written == 0 &&
			    (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
				return oci_blob_writer_copy_fd(w, fd, err); /* not here: hash on the way */
			return err_sys(err, "copy into %s", w->tmp_path);
		}
		if (n == 0)
			break;
		w->written += n;
		if (w->expected_size >= 0 && w->written > w->expected_size)
			return err_set(err, EBADMSG, "blob %s: more data than the expected %lld bytes", w->expected,
			               (long long)w->expected_size);
	}
	w->trusted = true;
	return 0;
}

int oci_blob_writer_commit(struct oci_blob_writer *w, char digest_out[OCI_DIGEST_MAX], struct err **err)
{
	int r = writer_finish(w, digest_out, err);
	oci_blob_writer_abort(w);
	return r;
}

void oci_blob_writer_abort(struct oci_blob_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path)
		unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->dir);
	free(w->expected);
	oci_digester_free(w->digester);
	free(w->buf);
	free(w);
}

int oci_mkdir_p(const char *path, struct err **err)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return err_sys(err, "create directory %s", p);
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return err_sys(err, "create directory %s", p);
	return 0;
}

int oci_blob_write_buf(const char *dir, const char *expected, const void *data, size_t len,
                       char digest_out[OCI_DIGEST_MAX], struct err **err)
{
	struct oci_blob_writer *w;
	if (oci_blob_writer_open(dir, expected, (int64_t)len, &w, err) < 0)
		return -1;
	if (oci_blob_writer_write(w, data, len, err) < 0) {
		oci_blob_writer_abort(w);
		return -1;
	}
	return oci_blob_writer_commit(w, digest_out, err);
}

/* A blob of the cache goes into another folder as a hard link when both are
 * on one file system: no byte copied, nothing to fsync but the folder. Safe
 * because a blob file is never written in place: every writer renames a new
 * file in. 0 when linked (or that folder already links the same file). */
static int blob_link(const char *dir, const char *expected, int64_t size, int fd)
{
	struct stat src, dst;
	if (fstat(fd, &src) < 0 || !S_ISREG(src.st_mode) || src.st_size != size)
		return -1; /* the copy reports what is wrong */
	_cleanup_free_ char *final = xasprintf("%s/%s", dir, oci_digest_hex(expected));
	if (stat(final, &dst) == 0)
		return dst.st_dev == src.st_dev && dst.st_ino == src.st_ino ? 0 : -1;
	/* linkat of an fd without CAP_DAC_READ_SEARCH goes through /proc. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, final, AT_SYMLINK_FOLLOW) < 0)
		return -1;
	(void)io_fsync_dir(dir, NULL);
	return 0;
}

int oci_blob_write_fd(const char *dir, const char *expected, int64_t size, int fd, bool verified, struct err **err)
{
	if (verified && expected && blob_link(dir, expected, size, fd) == 0)
		return 0;
	struct oci_blob_writer *w;
	if (oci_blob_writer_open(dir, expected, size, &w, err) < 0)
		return -1;
	int r = verified ? oci_blob_writer_copy_verified(w, fd, err) : oci_blob_writer_copy_fd(w, fd, err);
	if (r < 0) {
		oci_blob_writer_abort(w);
		return -1;
	}
	return oci_blob_writer_commit(w, NULL, err);
}
