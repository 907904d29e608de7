/* cpio: a streaming newc cpio writer with linuxkit's exact conventions, and
 * the bootstrap ramdisk (dev, init, nsm.ko[, modules]) built with it. */
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"

#define CPIO_FIRST_INO 721 /* linuxkit's gocpio starts here */
#define CPIO_DEV_MAJOR 3   /* linuxkit writes these constants on every entry */
#define CPIO_DEV_MINOR 1
#define CPIO_BUF_SIZE  (256 * 1024)

struct bld_cpio {
	int fd;
	uint32_t next_ino;
	uint64_t written;  /* bytes handed to the buffer so far */
	uint64_t pending;  /* data bytes the current entry still expects */
	uint32_t data_pad; /* padding owed after the current entry's data */
	size_t used;
	uint8_t buf[CPIO_BUF_SIZE];
};

struct bld_cpio *bld_cpio_new(int fd)
{
	struct bld_cpio *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->next_ino = CPIO_FIRST_INO;
	return c;
}

void bld_cpio_free(struct bld_cpio *c)
{
	free(c);
}

uint64_t bld_cpio_size(const struct bld_cpio *c)
{
	return c->written;
}

uint32_t bld_cpio_next_ino(struct bld_cpio *c)
{
	return c->next_ino++;
}

static int cpio_flush(struct bld_cpio *c, struct err **err)
{
	if (c->used == 0)
		return 0;
	if (io_write_full(c->fd, c->buf, c->used, err) < 0)
		return err_wrap(err, "write cpio");
	c->used = 0;
	return 0;
}

static int cpio_put(struct bld_cpio *c, const void *data, size_t len, struct err **err)
{
	const uint8_t *p = data;
	while (len > 0) {
		if (c->used == sizeof(c->buf) && cpio_flush(c, err) < 0)
			return -1;
		size_t n = sizeof(c->buf) - c->used;
		if (n > len)
			n = len;
		memcpy(c->buf + c->used, p, n);
		c->used += n;
		c->written += n;
		p += n;
		len -= n;
	}
	return 0;
}

static int cpio_pad(struct bld_cpio *c, size_t n, struct err **err)
{
	static const uint8_t zeros[512];
	return cpio_put(c, zeros, n, err);
}

static int cpio_end_data(struct bld_cpio *c, struct err **err)
{
	if (c->pending == 0 && c->data_pad > 0) {
		uint32_t pad = c->data_pad;
		c->data_pad = 0;
		return cpio_pad(c, pad, err);
	}
	return 0;
}

int bld_cpio_header(struct bld_cpio *c, const struct bld_cpio_entry *e, struct err **err)
{
	if (c->pending != 0)
		return err_set(err, EINVAL, "cpio: entry %s started with %llu bytes of the previous one missing",
		               e->name, (unsigned long long)c->pending);
	size_t name_len = strlen(e->name);
	if (name_len == 0)
		return err_set(err, EINVAL, "cpio: an entry without a name");
	if (name_len >= 4096) /* the kernel's PATH_MAX, NUL included */
		return err_set(err, ENAMETOOLONG, "cpio: %.64s...: a name of %zu bytes (the kernel takes at most 4095)",
		               e->name, name_len);
	/* newc has 32-bit fields: refuse what it cannot say rather than wrap. */
	if (e->size > UINT32_MAX)
		return err_set(err, EFBIG, "cpio: %s: %llu bytes is over newc's 4 GiB limit", e->name,
		               (unsigned long long)e->size);
	if (e->mtime < 0 || e->mtime > (int64_t)UINT32_MAX)
		return err_set(err, ERANGE, "cpio: %s: mtime %lld outside newc's range", e->name, (long long)e->mtime);
	uint32_t nlink = e->nlink ? e->nlink : (S_ISDIR(e->mode) ? 2 : 1);
	uint32_t ino = e->ino ? e->ino : c->next_ino++;
	char hdr[111];
	int n = snprintf(hdr, sizeof(hdr), "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x", ino, e->mode,
	                 e->uid, e->gid, nlink, (uint32_t)e->mtime, (uint32_t)e->size, CPIO_DEV_MAJOR, CPIO_DEV_MINOR,
	                 e->rdev_major, e->rdev_minor, (uint32_t)(name_len + 1), 0u);
	if (n != 110)
		return err_set(err, EINVAL, "cpio: %s: header formatting", e->name);
	if (cpio_put(c, hdr, 110, err) < 0 || cpio_put(c, e->name, name_len + 1, err) < 0)
		return -1;
	size_t head = 110 + name_len + 1;
	if (cpio_pad(c, (4 - head % 4) % 4, err) < 0)
		return -1;
	c->pending = e->size;
	c->data_pad = (4 - e->size % 4) % 4;
	return cpio_end_data(c, err);
}

int bld_cpio_data(struct bld_cpio *c, const void *data, size_t len, struct err **err)
{
	if (len > c->pending)
		return err_set(err, EINVAL, "cpio: %zu bytes of data where %llu were declared", len,
		               (unsigned long long)c->pending);
	if (cpio_put(c, data, len, err) < 0)
		return -1;
	c->pending -= len;
	return cpio_end_data(c, err);
}

int bld_cpio_data_from_fd(struct bld_cpio *c, int fd, off_t off, uint64_t len, struct err **err)
{
	if (len > c->pending)
		return err_set(err, EINVAL, "cpio: %llu bytes of data where %llu were declared",
		               (unsigned long long)len, (unsigned long long)c->pending);
	/* Read straight into the free part of the write buffer: one copy. */
	while (len > 0) {
		if (c->used == sizeof(c->buf) && cpio_flush(c, err) < 0)
			return -1;
		size_t room = sizeof(c->buf) - c->used;
		size_t want = len < room ? (size_t)len : room;
		ssize_t got = io_pread_full(fd, c->buf + c->used, want, off, err);
		if (got < 0)
			return -1;
		if ((size_t)got != want)
			return err_set(err, EIO, "cpio: source ended %llu bytes early",
			               (unsigned long long)(len - got));
		c->used += want;
		c->written += want;
		c->pending -= want;
		off += (off_t)want;
		len -= want;
	}
	return cpio_end_data(c, err);
}

int bld_cpio_finish(struct bld_cpio *c, struct err **err)
{
	if (c->pending != 0)
		return err_set(err, EINVAL, "cpio: last entry is %llu bytes short", (unsigned long long)c->pending);
	struct bld_cpio_entry trailer = {.name = "TRAILER!!!", .mode = 0, .nlink = 1, .mtime = 0};
	if (bld_cpio_header(c, &trailer, err) < 0)
		return -1;
	if (cpio_pad(c, (512 - c->written % 512) % 512, err) < 0)
		return -1;
	return cpio_flush(c, err);
}

/* ---------------------------------------------------------------- bootstrap */

static int bootstrap_add_file(struct bld_cpio *c, const char *name, const char *path, uint32_t perm, struct err **err)
{
	uint64_t size;
	_cleanup_close_ int fd = io_open_regular(path, &size, err);
	if (fd < 0)
		return -1;
	struct bld_cpio_entry e = {.name = name, .mode = S_IFREG | perm, .mtime = BLD_LINUXKIT_MTIME, .size = size};
	if (bld_cpio_header(c, &e, err) < 0 || bld_cpio_data_from_fd(c, fd, 0, e.size, err) < 0)
		return err_wrap(err, "%s", path);
	return 0;
}

static int bootstrap_add_dir(struct bld_cpio *c, const char *name, struct err **err)
{
	struct bld_cpio_entry e = {.name = name, .mode = S_IFDIR | 0755, .mtime = BLD_LINUXKIT_MTIME};
	return bld_cpio_header(c, &e, err);
}

static int bootstrap_entries(struct bld_cpio *c, const struct bld_bootstrap_spec *spec, struct err **err)
{
	if (bootstrap_add_dir(c, "dev", err) < 0 || bootstrap_add_file(c, "init", spec->init_path, 0755, err) < 0)
		return -1;
	if (spec->nsm_path && bootstrap_add_file(c, "nsm.ko", spec->nsm_path, 0755, err) < 0)
		return -1;
	if (spec->n_modules == 0)
		return 0;
	if (bootstrap_add_dir(c, "modules", err) < 0)
		return -1;
	for (size_t i = 0; i < spec->n_modules; i++) {
		_cleanup_free_ char *copy = xstrdup(spec->module_paths[i]);
		_cleanup_free_ char *name = xasprintf("modules/%s", basename(copy));
		if (bootstrap_add_file(c, name, spec->module_paths[i], 0644, err) < 0)
			return -1;
	}
	_cleanup_buf_ struct buf list = {0};
	for (size_t i = 0; i < spec->n_modules; i++) {
		_cleanup_free_ char *copy = xstrdup(spec->module_paths[i]);
		buf_printf(&list, "/modules/%s\n", basename(copy));
	}
	struct bld_cpio_entry e = {
	    .name = "odyn-modules", .mode = S_IFREG | 0644, .mtime = BLD_LINUXKIT_MTIME, .size = list.len};
	if (bld_cpio_header(c, &e, err) < 0 || bld_cpio_data(c, list.data, list.len, err) < 0)
		return err_wrap(err, "odyn-modules");
	return 0;
}

int bld_bootstrap_write(const char *out_path, const struct bld_bootstrap_spec *spec, struct err **err)
{
	_cleanup_atomic_file_ struct atomic_file af = {.fd = -1};
	if (atomic_file_open(&af, out_path, 0644, err) < 0)
		return err_wrap(err, "bootstrap ramdisk");
	struct bld_cpio *c = bld_cpio_new(af.fd);
	int rc = bootstrap_entries(c, spec, err);
	if (rc == 0)
		rc = bld_cpio_finish(c, err);
	bld_cpio_free(c);
	if (rc < 0 || atomic_file_commit(&af, err) < 0)
		return err_wrap(err, "bootstrap ramdisk %s", out_path);
	return 0;
}
