/* layer_fixture: tests' own layer tars, written with libarchive's writer
 * (pax format) so every entry type, whiteout and hostile name can be made. */
#ifndef ENCLAVER_TEST_LAYER_FIXTURE_H
#define ENCLAVER_TEST_LAYER_FIXTURE_H

#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"

/* Fixture tables list only the fields that matter for each entry. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* type: 'f' file (data), 's' sparse file (data at offset 0, then a hole up to
 * sparse_size bytes), 'd' dir, 'l' symlink (data = target), 'h' hardlink
 * (data = target), 'c'/'b' devices (rmaj/rmin), 'p' fifo. */
struct fx_entry {
	char type;
	const char *name;
	const char *data;
	unsigned mode; /* permission bits; 0 = 0644 files / 0755 dirs */
	unsigned uid, gid;
	long mtime;
	unsigned rmaj, rmin;
	const char *xattr_name, *xattr_value;
	long long sparse_size;
};

enum fx_filter { FX_NONE, FX_GZIP, FX_ZSTD };

static inline int fx_layer(const char *path, enum fx_filter filter, const struct fx_entry *e, size_t n)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_pax(a);
	if (filter == FX_GZIP)
		archive_write_add_filter_gzip(a);
	else if (filter == FX_ZSTD)
		archive_write_add_filter_zstd(a);
	else
		archive_write_add_filter_none(a);
	if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
		archive_write_free(a);
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_uid(ae, e[i].uid);
		archive_entry_set_gid(ae, e[i].gid);
		archive_entry_set_mtime(ae, e[i].mtime ? e[i].mtime : 1600000000, 0);
		unsigned perm = e[i].mode ? e[i].mode : (e[i].type == 'd' ? 0755 : 0644);
		size_t size = 0;
		switch (e[i].type) {
		case 'f':
			archive_entry_set_filetype(ae, AE_IFREG);
			size = e[i].data ? strlen(e[i].data) : 0;
			archive_entry_set_size(ae, (la_int64_t)size);
			break;
		case 's':
			archive_entry_set_filetype(ae, AE_IFREG);
			size = strlen(e[i].data);
			archive_entry_set_size(ae, (la_int64_t)e[i].sparse_size);
			archive_entry_sparse_add_entry(ae, 0, (la_int64_t)size);
			break;
		case 'd': archive_entry_set_filetype(ae, AE_IFDIR); break;
		case 'l':
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_symlink(ae, e[i].data);
			perm = 0777;
			break;
		case 'h':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_hardlink(ae, e[i].data);
			break;
		case 'c':
		case 'b':
			archive_entry_set_filetype(ae, e[i].type == 'c' ? AE_IFCHR : AE_IFBLK);
			archive_entry_set_rdevmajor(ae, e[i].rmaj);
			archive_entry_set_rdevminor(ae, e[i].rmin);
			break;
		case 'p': archive_entry_set_filetype(ae, AE_IFIFO); break;
		}
		archive_entry_set_perm(ae, perm);
		if (e[i].xattr_name)
			archive_entry_xattr_add_entry(ae, e[i].xattr_name, e[i].xattr_value, strlen(e[i].xattr_value));
		if (archive_write_header(a, ae) != ARCHIVE_OK)
			rc = -1;
		if (rc == 0 && size > 0 && archive_write_data(a, e[i].data, size) != (la_ssize_t)size)
			rc = -1;
		archive_entry_free(ae);
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		rc = -1;
	archive_write_free(a);
	return rc;
}

#endif
