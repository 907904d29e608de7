/* archive_write: an OCI layout folder as an oci-archive tar, deterministically (sorted names, zero
 * times and owners) and atomically; the layout destination writes oci-archive: references this way. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "oci/internal.h"

static int add_entry(struct archive *a, const char *dir, const char *name, bool is_dir, struct err **err)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_mtime(e, 0, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	int r = 0;
	_cleanup_close_ int fd = -1;
	if (is_dir) {
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_perm(e, 0755);
	} else {
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			archive_entry_free(e);
			return err_sys(err, "%s", path);
		}
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, st.st_size);
	}
	if (archive_write_header(a, e) != ARCHIVE_OK)
		r = err_set(err, EIO, "tar %s: %s", name, archive_error_string(a));
	archive_entry_free(e);
	if (r < 0 || is_dir)
		return r;
	char *chunk = xmalloc(1 << 20);
	for (;;) {
		ssize_t n = io_read_full(fd, chunk, 1 << 20, err);
		if (n < 0) {
			r = -1;
			break;
		}
		if (n > 0 && archive_write_data(a, chunk, (size_t)n) != n) {
			r = err_set(err, EIO, "tar %s: %s", name, archive_error_string(a));
			break;
		}
		if (n < (1 << 20))
			break;
	}
	free(chunk);
	return r;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int oci_archive_write_dir(const char *dir, const char *file, struct err **err)
{
	_cleanup_free_ char *blob_dir = xasprintf("%s/blobs/sha256", dir);
	DIR *d = opendir(blob_dir);
	if (d == NULL)
		return err_sys(err, "%s", blob_dir);
	char **names = NULL;
	size_t n = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", and unfinished ".tmp-" blobs */
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xasprintf("blobs/sha256/%s", de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	_cleanup_atomic_file_ struct atomic_file af = {.fd = -1};
	int r = atomic_file_open(&af, file, 0644, err);
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	if (r == 0 && archive_write_open_fd(a, af.fd) != ARCHIVE_OK)
		r = err_set(err, EIO, "%s: %s", file, archive_error_string(a));
	if (r == 0)
		r = add_entry(a, dir, "oci-layout", false, err);
	if (r == 0)
		r = add_entry(a, dir, "index.json", false, err);
	if (r == 0)
		r = add_entry(a, dir, "blobs", true, err);
	if (r == 0)
		r = add_entry(a, dir, "blobs/sha256", true, err);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = add_entry(a, dir, names[i], false, err);
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = err_set(err, EIO, "%s: %s", file, archive_error_string(a));
	archive_write_free(a);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (r == 0)
		r = atomic_file_commit(&af, err);
	return r < 0 ? err_wrap(err, "write %s", file) : 0;
}
