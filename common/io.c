/* io: reads and writes that survive short transfers and EINTR, small-file
 * reading with a size cap, atomic files (temp + fsync + rename), and private temporary folders. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

ssize_t io_read_full(int fd, void *data, size_t len, struct err **err)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = read(fd, (char *)data + done, len - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, "read");
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int io_write_full(int fd, const void *data, size_t len, struct err **err)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = write(fd, (const char *)data + done, len - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, "write");
		}
		done += (size_t)r;
	}
	return 0;
}

ssize_t io_pread_full(int fd, void *data, size_t len, off_t off, struct err **err)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, (char *)data + done, len - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, "read at offset %lld", (long long)(off + (off_t)done));
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int io_pwrite_full(int fd, const void *data, size_t len, off_t off, struct err **err)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pwrite(fd, (const char *)data + done, len - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, "write at offset %lld", (long long)(off + (off_t)done));
		}
		done += (size_t)r;
	}
	return 0;
}

int io_open_regular(const char *path, uint64_t *size, struct err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(err, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return err_set(err, EINVAL, "%s: not a regular file", path);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	*size = (uint64_t)st.st_size;
	return steal_fd(&fd);
}

int io_read_file(const char *path, size_t max_len, char **out, size_t *out_len, struct err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(err, "stat %s", path);
	if (S_ISDIR(st.st_mode))
		return err_set(err, EISDIR, "%s: is a directory, expected a file", path);
	/* Read one byte past the cap to tell "exactly max_len" from "too big";
	 * the size from fstat is only a hint (pipes, /proc files). */
	struct buf b = {0};
	char chunk[65536];
	for (;;) {
		ssize_t r = io_read_full(fd, chunk, sizeof(chunk), err);
		if (r < 0) {
			buf_free(&b);
			return err_wrap(err, "%s", path);
		}
		buf_append(&b, chunk, (size_t)r);
		if (b.len > max_len) {
			buf_free(&b);
			return err_set(err, EFBIG, "%s: larger than the limit of %zu bytes", path, max_len);
		}
		if ((size_t)r < sizeof(chunk))
			break;
	}
	buf_str(&b);
	*out = b.data;
	if (out_len)
		*out_len = b.len;
	return 0;
}

/* Creates the temporary file beside af->path. */
static int atomic_file_create_tmp(struct atomic_file *af, struct err **err)
{
	af->tmp_path = xasprintf("%s.tmp-XXXXXX", af->path);
	af->fd = mkostemp(af->tmp_path, O_CLOEXEC);
	if (af->fd < 0) {
		int r = err_sys(err, "create a temporary file beside %s", af->path);
		free(af->tmp_path);
		af->tmp_path = NULL;
		return r;
	}
	/* mkostemp makes 0600; the result should look like any created file. */
	mode_t mask = umask(0);
	umask(mask);
	if (fchmod(af->fd, af->mode & ~mask) < 0)
		return err_sys(err, "chmod %s", af->tmp_path);
	return 0;
}

int atomic_file_open(struct atomic_file *af, const char *path, mode_t mode, struct err **err)
{
	*af = (struct atomic_file){.fd = -1, .mode = mode, .path = xstrdup(path)};
	if (atomic_file_create_tmp(af, err) < 0) {
		atomic_file_abort(af);
		return -1;
	}
	return 0;
}

int atomic_file_open_keep(struct atomic_file *af, const char *path, mode_t mode, struct err **err)
{
	int old = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	mode_t mask = umask(0);
	umask(mask);
	if (old < 0 || fstat(old, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 07777) != (mode & ~mask)) {
		if (old >= 0)
			close(old);
		return atomic_file_open(af, path, mode, err);
	}
	*af = (struct atomic_file){.fd = -1, .comparing = true, .old_fd = old, .old_size = (uint64_t)st.st_size, .mode = mode,
	                           .path = xstrdup(path)};
	return 0;
}

/* Leaves keep mode: the bytes compared so far (equal to what was written) go into a new
 * temporary file, which takes every later write. */
static int atomic_file_diverge(struct atomic_file *af, struct err **err)
{
	if (atomic_file_create_tmp(af, err) < 0)
		return -1;
	uint64_t n = af->end < af->old_size ? af->end : af->old_size;
	char buf[1 << 16];
	for (uint64_t done = 0; done < n;) {
		size_t want = n - done < sizeof(buf) ? (size_t)(n - done) : sizeof(buf);
		ssize_t got = io_pread_full(af->old_fd, buf, want, (off_t)done, err);
		if (got < 0)
			return err_wrap(err, "%s", af->path);
		if ((size_t)got != want)
			return err_set(err, EIO, "%s: shrank while being compared", af->path);
		if (io_pwrite_full(af->fd, buf, want, (off_t)done, err) < 0)
			return err_wrap(err, "%s", af->tmp_path);
		done += want;
	}
	close(af->old_fd);
	af->comparing = false;
	return 0;
}

int atomic_file_pwrite(struct atomic_file *af, const void *data, size_t len, uint64_t off, struct err **err)
{
	if (af->comparing) {
		/* Compare in pieces: a match costs a page-cache read, far less than a write. */
		bool same = off + len <= af->old_size;
		char buf[1 << 16];
		for (size_t done = 0; same && done < len;) {
			size_t want = len - done < sizeof(buf) ? len - done : sizeof(buf);
			ssize_t got = io_pread_full(af->old_fd, buf, want, (off_t)(off + done), err);
			if (got < 0)
				return err_wrap(err, "%s", af->path);
			same = (size_t)got == want && memcmp(buf, (const char *)data + done, want) == 0;
			done += want;
		}
		if (same) {
			if (off + len > af->end)
				af->end = off + len;
			return 0;
		}
		if (atomic_file_diverge(af, err) < 0)
			return -1;
	}
	if (io_pwrite_full(af->fd, data, len, (off_t)off, err) < 0)
		return err_wrap(err, "%s", af->tmp_path);
	if (off + len > af->end)
		af->end = off + len;
	return 0;
}

int io_fsync_dir(const char *dir, struct err **err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_sys(err, "open directory %s", dir);
	if (fsync(dfd) < 0 && errno != EINVAL)
		return err_sys(err, "fsync directory %s", dir);
	return 0;
}

static int fsync_parent_dir(const char *path, struct err **err)
{
	_cleanup_free_ char *copy = xstrdup(path);
	return io_fsync_dir(dirname(copy), err);
}

int atomic_file_write(const char *path, mode_t mode, const void *data, size_t len, struct err **err)
{
	struct atomic_file af;
	if (atomic_file_open(&af, path, mode, err) < 0)
		return -1;
	if (io_write_full(af.fd, data, len, err) < 0 || atomic_file_commit(&af, err) < 0) {
		atomic_file_abort(&af);
		return err_wrap(err, "%s", path);
	}
	return 0;
}

int atomic_file_commit(struct atomic_file *af, struct err **err)
{
	if (af->comparing) {
		/* Every write matched: unchanged if the old file is no longer than what was written. */
		if (af->end == af->old_size) {
			close(af->old_fd);
			af->comparing = false;
			af->unchanged = true;
			free(af->path);
			af->path = NULL;
			return 0;
		}
		if (atomic_file_diverge(af, err) < 0)
			return -1;
	}
	if (fsync(af->fd) < 0)
		return err_sys(err, "fsync %s", af->tmp_path);
	if (close(af->fd) < 0) {
		af->fd = -1;
		return err_sys(err, "close %s", af->tmp_path);
	}
	af->fd = -1;
	if (rename(af->tmp_path, af->path) < 0)
		return err_sys(err, "rename %s to %s", af->tmp_path, af->path);
	free(af->tmp_path);
	af->tmp_path = NULL;
	int r = fsync_parent_dir(af->path, err);
	free(af->path);
	af->path = NULL;
	return r;
}

void atomic_file_abort(struct atomic_file *af)
{
	if (af->fd >= 0)
		close(af->fd);
	af->fd = -1;
	if (af->comparing)
		close(af->old_fd);
	af->comparing = false;
	if (af->tmp_path != NULL)
		unlink(af->tmp_path);
	free(af->tmp_path);
	free(af->path);
	af->tmp_path = af->path = NULL;
}

/* ---------------------------------------------------------------- temporary folders */
int io_tmpdir_create(const char *base, const char *name, char **out, struct err **err)
{
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	char *dir = xasprintf("%s/%s.XXXXXX", base, name);
	if (!mkdtemp(dir)) {
		err_sys(err, "create a temporary folder %s", dir);
		free(dir);
		return -1;
	}
	*out = dir;
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

void io_remove_tree(const char *path)
{
	/* FTW_PHYS: a symlink inside is removed, never followed. */
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
