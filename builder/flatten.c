/* flatten: OCI layers (tar, gzip, zstd) applied in order to an in-memory tree
 * with whiteouts, hardlinks and cleaned names; file bytes go to a content store.
 *
 * The rules, in the OCI image spec's terms (image-layout "changesets"):
 * - An entry replaces whatever a lower layer had at its path, except that a
 *   directory over a directory only updates the metadata and keeps the
 *   children. A file replacing a directory drops the directory's subtree.
 * - `.wh.NAME` deletes NAME of lower layers; `.wh..wh..opq` hides every
 *   lower-layer child of its directory. Whiteouts never hide what their own
 *   layer added (each node remembers the layer that last wrote it). Other
 *   `.wh..wh.*` names are AUFS bookkeeping and are skipped, as Docker does.
 * - A hardlink names an entry of this or an earlier layer; both then share
 *   the content and a link group (written as one inode in the cpio).
 * - Parents that are symlinks are followed inside the tree (never on the
 *   host), with ".." stopping at the root, as a chroot would; missing parents
 *   are created as 0755 directories. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <archive.h>
#include <archive_entry.h>

#include "builder/builder.h"
#include "builder/gzip_feed.h"

#define MAX_SYMLINK_HOPS 40
#define MAX_NAME         255
#define MAX_PATH         4095

struct bld_tree {
	struct bld_node *root;
	int store_fd;
	uint64_t store_size;
	uint64_t content_max; /* 0: no cap on the store beyond newc's 4 GiB per file */
	uint32_t n_layers; /* layers applied (or being applied) so far */
	uint32_t next_link_group;
	struct bld_gzip_feed *feed;    /* the layer being applied, when gzip_feed inflates it */
	bld_tree_progress_fn progress; /* NULL: none */
	void *progress_ctx;
};

void bld_tree_set_progress(struct bld_tree *t, bld_tree_progress_fn fn, void *ctx)
{
	t->progress = fn;
	t->progress_ctx = ctx;
}

/* Tells the watcher how far into the layer blob (compressed bytes) the reader is. */
static void progress_report(const struct bld_tree *t, struct archive *a)
{
	if (t->progress)
		t->progress(t->progress_ctx,
		            t->feed ? bld_gzip_feed_consumed(t->feed) : (uint64_t)archive_filter_bytes(a, -1));
}

/* ---------------------------------------------------------------- nodes */

static struct bld_node *node_new(const char *name, uint32_t mode)
{
	struct bld_node *n = xcalloc(1, sizeof(*n));
	n->name = xstrdup(name);
	n->mode = mode;
	return n;
}

static void node_clear_xattrs(struct bld_node *n)
{
	for (size_t i = 0; i < n->n_xattrs; i++)
		free(n->xattrs[i].name), free(n->xattrs[i].value);
	free(n->xattrs);
	n->xattrs = NULL;
	n->n_xattrs = 0;
}

static void node_free(struct bld_node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n_children; i++)
		node_free(n->children[i]);
	free(n->children);
	node_clear_xattrs(n);
	free(n->link_target);
	free(n->name);
	free(n);
}

/* Binary search; returns the child or NULL and, in *at, where it is or goes. */
static struct bld_node *child_find(const struct bld_node *dir, const char *name, size_t *at)
{
	size_t lo = 0, hi = dir->n_children;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(dir->children[mid]->name, name);
		if (c == 0) {
			if (at)
				*at = mid;
			return dir->children[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (at)
		*at = lo;
	return NULL;
}

static void child_insert(struct bld_node *dir, struct bld_node *n, size_t at)
{
	if (dir->n_children == dir->cap_children) {
		dir->cap_children = dir->cap_children ? dir->cap_children * 2 : 4;
		dir->children = xrealloc(dir->children, dir->cap_children * sizeof(*dir->children));
	}
	memmove(dir->children + at + 1, dir->children + at, (dir->n_children - at) * sizeof(*dir->children));
	dir->children[at] = n;
	dir->n_children++;
	n->parent = dir;
}

static void child_remove(struct bld_node *dir, size_t at)
{
	node_free(dir->children[at]);
	memmove(dir->children + at, dir->children + at + 1, (dir->n_children - at - 1) * sizeof(*dir->children));
	dir->n_children--;
}

/* Drops every descendant a lower layer wrote (for an opaque directory). */
static void prune_lower(struct bld_node *dir, uint32_t layer)
{
	for (size_t i = dir->n_children; i-- > 0;) {
		struct bld_node *c = dir->children[i];
		if (c->layer < layer)
			child_remove(dir, i);
		else if (S_ISDIR(c->mode))
			prune_lower(c, layer);
	}
}

static bool node_is_within(const struct bld_node *n, const struct bld_node *ancestor)
{
	for (; n; n = n->parent)
		if (n == ancestor)
			return true;
	return false;
}

/* No node may sit at a path over MAX_PATH bytes: nothing in the enclave could name it (PATH_MAX),
 * and since every component takes at least two bytes ("/x") it bounds the tree's depth at
 * 2048 whatever symlinks a layer chains (40 hops of 2046 levels each once made 81,840 levels).
 * Checked where a node is added: `name` goes into `dir`. */
static int check_path_len(const struct bld_node *dir, const char *name, struct err **err)
{
	size_t len = strlen(name);
	for (const struct bld_node *n = dir; n && n->parent; n = n->parent)
		len += strlen(n->name) + 1;
	if (len > MAX_PATH)
		return err_set(err, ENAMETOOLONG,
		               "\"%.64s\" would be at a path over %d bytes (symlinks followed inside the image)", name,
		               MAX_PATH);
	return 0;
}

/* ---------------------------------------------------------------- tree */

int bld_tree_new(const char *tmp_dir, struct bld_tree **out, struct err **err)
{
	*out = NULL;
	const char *dir = tmp_dir ? tmp_dir : getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* File systems without O_TMPFILE: a named file, unlinked at once. */
		_cleanup_free_ char *tmpl = xasprintf("%s/enclaver-store-XXXXXX", dir);
		fd = mkostemp(tmpl, O_CLOEXEC);
		if (fd >= 0)
			unlink(tmpl);
	}
	if (fd < 0)
		return err_sys(err, "create the content store in %s", dir);
	struct bld_tree *t = xcalloc(1, sizeof(*t));
	t->store_fd = fd;
	t->root = node_new("", S_IFDIR | 0755);
	*out = t;
	return 0;
}

void bld_tree_free(struct bld_tree *t)
{
	if (!t)
		return;
	node_free(t->root);
	if (t->store_fd >= 0)
		close(t->store_fd);
	free(t);
}

struct bld_node *bld_tree_root(struct bld_tree *t)
{
	return t->root;
}

int bld_tree_content_fd(const struct bld_tree *t)
{
	return t->store_fd;
}

uint64_t bld_tree_content_size(const struct bld_tree *t)
{
	return t->store_size;
}

void bld_tree_set_content_max(struct bld_tree *t, uint64_t max)
{
	t->content_max = max;
}

/* Whether a file of this many bytes may enter the store: newc says a file's size in 32 bits,
 * and the store may have a cap of its own. Asked with the size an entry claims before any of
 * its bytes are written, and again as they are. */
static int content_fits(const struct bld_tree *t, uint64_t size, bool sparse, struct err **err)
{
	if (size > UINT32_MAX)
		return err_set(err, EFBIG, "a file of %llu bytes%s is over the ramdisk's 4 GiB limit per file (cpio newc)",
		               (unsigned long long)size, sparse ? " (sparse)" : "");
	if (t->content_max && t->store_size + size > t->content_max)
		return err_set(err, EFBIG, "a file of %llu bytes%s takes the image's files over %llu bytes",
		               (unsigned long long)size, sparse ? " (sparse)" : "", (unsigned long long)t->content_max);
	return 0;
}

/* Whether the store's file system has room for a file of this many bytes (claimed, not written
 * yet), with a margin for the ramdisk and EIF written after: a claim the disk cannot hold is
 * refused before a byte of it is written, so no layer can fill the disk, sparse or not. Only
 * big claims are checked (one fstatvfs each): small files cannot get far. */
#define DISK_CHECK_FROM (1u << 20)
#define DISK_MARGIN     (64ull << 20)
static int disk_holds(const struct bld_tree *t, uint64_t size, bool sparse, struct err **err)
{
	struct statvfs sv;
	if (size < DISK_CHECK_FROM || fstatvfs(t->store_fd, &sv) < 0)
		return 0;
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (size + DISK_MARGIN > avail)
		return err_set(err, ENOSPC,
		               "a file of %llu bytes%s does not fit: the build folder's file system has %llu bytes free "
		               "(TMPDIR or --tmpdir chooses the folder)",
		               (unsigned long long)size, sparse ? " (sparse)" : "", (unsigned long long)avail);
	return 0;
}

int bld_path_clean(const char *name, char **out, struct err **err)
{
	*out = NULL;
	_cleanup_buf_ struct buf b = {0};
	size_t depth = 0;
	const char *p = name;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* empty or "." component: nothing */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (depth == 0)
				return err_set(err, EINVAL, "\"%s\" leaves the root with \"..\"", name);
			char *last = memrchr(b.data, '/', b.len);
			b.len = last ? (size_t)(last - b.data) : 0;
			b.data[b.len] = '\0';
			depth--;
		} else {
			if (len > MAX_NAME)
				return err_set(err, ENAMETOOLONG, "\"%.64s...\": a component is over %d bytes", name,
				               MAX_NAME);
			if (b.len)
				buf_putc(&b, '/');
			buf_append(&b, p, len);
			depth++;
		}
		p += len;
		if (*p == '/')
			p++;
	}
	if (b.len > MAX_PATH)
		return err_set(err, ENAMETOOLONG, "\"%.64s...\" is over %d bytes", name, MAX_PATH);
	*out = xstrdup(buf_str(&b));
	return 0;
}

/* The directories the enclave's init mounts over at boot (devtmpfs, proc, sysfs, tmpfs; docs/odyn.md):
 * what the image holds there is hidden at run time, and /proc holds links (self/root, self/cwd)
 * that lead elsewhere, so a builder entry must never be filed in or through them. */
static const char *const runtime_mounts[] = {"dev", "proc", "sys", "run", "tmp"};

static bool is_runtime_mount(const struct bld_tree *t, const struct bld_node *dir, const char *name)
{
	if (dir != t->root)
		return false;
	for (size_t i = 0; i < sizeof(runtime_mounts) / sizeof(runtime_mounts[0]); i++)
		if (!strcmp(name, runtime_mounts[i]))
			return true;
	return false;
}

/* Walks `rel` (components separated by '/', possibly with "." and "..")
 * from `start`; every component must end up a directory. Missing ones are
 * created when `mk` is not NULL (with its metadata), else *out is NULL.
 * `confined` (the builder's own entries): never into a runtime mount point,
 * so the path the tree resolves is the one the kernel resolves at boot. */
static int walk_dirs(struct bld_tree *t, struct bld_node *start, const char *rel, const struct bld_node *mk,
                     bool confined, int *hops, struct bld_node **out, struct err **err)
{
	_cleanup_free_ char *copy = xstrdup(rel);
	struct bld_node *cur = start;
	char *save = NULL;
	*out = NULL;
	for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			cur = cur->parent ? cur->parent : cur; /* the root's ".." is the root */
			continue;
		}
		if (confined && is_runtime_mount(t, cur, comp))
			return err_set(
			    err, EINVAL,
			    "the path leads into /%s, which the enclave mounts over at boot (the image may not "
			    "redirect enclaver's own files there)",
			    comp);
		size_t at;
		struct bld_node *child = child_find(cur, comp, &at);
		if (!child) {
			if (!mk)
				return 0;
			if (check_path_len(cur, comp, err) < 0)
				return -1;
			child = node_new(comp, S_IFDIR | 0755);
			child->mtime = mk->mtime;
			child->layer = mk->layer;
			child_insert(cur, child, at);
		} else if (S_ISLNK(child->mode)) {
			if (++*hops > MAX_SYMLINK_HOPS)
				return err_set(err, ELOOP, "too many symlinks at \"%s\"", comp);
			const char *target = child->link_target;
			struct bld_node *next = NULL;
			if (walk_dirs(t, target[0] == '/' ? t->root : cur, target, mk, confined, hops, &next, err) < 0)
				return err_wrap(err, "symlink %s -> %s", comp, target);
			if (!next)
				return 0;
			child = next;
		} else if (!S_ISDIR(child->mode)) {
			return err_set(err, ENOTDIR, "\"%s\" is not a directory", comp);
		}
		cur = child;
	}
	*out = cur;
	return 0;
}

/* Splits a cleaned non-empty path into its parent ("" for the root) and base. */
static void path_split(char *path, const char **parent, const char **base)
{
	char *slash = strrchr(path, '/');
	if (slash) {
		*slash = '\0';
		*parent = path;
		*base = slash + 1;
	} else {
		*parent = "";
		*base = path;
	}
}

struct bld_node *bld_tree_lookup(struct bld_tree *t, const char *path)
{
	struct bld_node *cur = t->root;
	_cleanup_free_ char *copy = xstrdup(path);
	char *save = NULL;
	for (char *comp = strtok_r(copy, "/", &save); comp && cur; comp = strtok_r(NULL, "/", &save))
		cur = S_ISDIR(cur->mode) ? child_find(cur, comp, NULL) : NULL;
	return cur;
}

static int store_append_fd(struct bld_tree *t, int fd, uint64_t *size, struct err **err)
{
	char chunk[65536];
	uint64_t total = 0;
	for (;;) {
		ssize_t n = io_read_full(fd, chunk, sizeof(chunk), err);
		if (n < 0)
			return -1;
		if (n > 0 && io_pwrite_full(t->store_fd, chunk, (size_t)n, (off_t)(t->store_size + total), err) < 0)
			return err_wrap(err, "content store");
		total += (uint64_t)n;
		if ((size_t)n < sizeof(chunk))
			break;
	}
	*size = total;
	return 0;
}

/* ---------------------------------------------------------------- layers */

static int set_meta(struct bld_node *n, struct archive_entry *ae, struct err **err)
{
	la_int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
	if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
		return err_set(err, ERANGE, "uid/gid %lld/%lld out of range", (long long)uid, (long long)gid);
	n->mode = (n->mode & S_IFMT) | (archive_entry_perm(ae) & 07777);
	n->uid = (uint32_t)uid;
	n->gid = (uint32_t)gid;
	n->mtime = archive_entry_mtime(ae);
	node_clear_xattrs(n);
	const char *xname;
	const void *xval;
	size_t xsize;
	if (archive_entry_xattr_reset(ae) > 0)
		while (archive_entry_xattr_next(ae, &xname, &xval, &xsize) == ARCHIVE_OK) {
			/* libarchive's pax writer stores each xattr twice (LIBARCHIVE.
			 * and SCHILY. keys) and its reader reports both: keep one. */
			bool dup = false;
			for (size_t i = 0; i < n->n_xattrs && !dup; i++)
				dup = !strcmp(n->xattrs[i].name, xname);
			if (dup)
				continue;
			n->xattrs = xrealloc(n->xattrs, (n->n_xattrs + 1) * sizeof(*n->xattrs));
			struct bld_xattr *x = &n->xattrs[n->n_xattrs++];
			x->name = xstrdup(xname);
			x->value = xmalloc(xsize ? xsize : 1);
			memcpy(x->value, xval, xsize);
			x->size = xsize;
		}
	return 0;
}

static int apply_whiteout(struct bld_tree *t, const char *parent, const char *base, uint32_t layer, struct err **err)
{
	int hops = 0;
	struct bld_node *dir = NULL;
	if (!strcmp(base, ".wh..wh..opq")) {
		/* The marker implies its directory: make it if a lower layer had none. */
		struct bld_node mk = {.layer = layer};
		if (walk_dirs(t, t->root, parent, &mk, false, &hops, &dir, err) < 0)
			return -1;
		prune_lower(dir, layer);
		return 0;
	}
	if (str_has_prefix(base, ".wh..wh.")) {
		log_debug("skipping AUFS metadata entry %s/%s", parent, base);
		return 0;
	}
	const char *victim = base + 4;
	if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
		return err_set(err, EINVAL, "whiteout \"%s\" names nothing", base);
	if (walk_dirs(t, t->root, parent, NULL, false, &hops, &dir, err) < 0)
		return -1;
	size_t at;
	struct bld_node *n = dir ? child_find(dir, victim, &at) : NULL;
	if (n && n->layer < layer)
		child_remove(dir, at);
	return 0;
}

static int apply_hardlink(struct bld_tree *t, struct bld_node *dir, const char *base, struct bld_node *existing,
                          size_t at, const char *link, uint32_t layer, struct err **err)
{
	_cleanup_free_ char *clean = NULL;
	if (bld_path_clean(link, &clean, err) < 0)
		return err_wrap(err, "hardlink target");
	if (!*clean)
		return err_set(err, EINVAL, "hardlink to the root");
	const char *tparent, *tbase;
	path_split(clean, &tparent, &tbase);
	int hops = 0;
	struct bld_node *tdir = NULL;
	if (walk_dirs(t, t->root, tparent, NULL, false, &hops, &tdir, err) < 0)
		return err_wrap(err, "hardlink target");
	struct bld_node *target = tdir ? child_find(tdir, tbase, NULL) : NULL;
	if (!target)
		return err_set(err, ENOENT, "hardlink to \"%s\", which no earlier entry made", link);
	if (S_ISDIR(target->mode))
		return err_set(err, EPERM, "hardlink to the directory \"%s\"", link);
	if (target == existing)
		return 0;
	if (existing && node_is_within(target, existing))
		return err_set(err, EINVAL, "hardlink replaces its own target's directory");
	if (!existing && check_path_len(dir, base, err) < 0)
		return -1;
	if (!target->link_group)
		target->link_group = ++t->next_link_group;
	struct bld_node *n = node_new(base, target->mode);
	n->uid = target->uid, n->gid = target->gid, n->mtime = target->mtime;
	n->rdev_major = target->rdev_major, n->rdev_minor = target->rdev_minor;
	n->size = target->size, n->content_off = target->content_off;
	n->link_target = target->link_target ? xstrdup(target->link_target) : NULL;
	n->link_group = target->link_group;
	n->layer = layer;
	for (size_t i = 0; i < target->n_xattrs; i++) {
		n->xattrs = xrealloc(n->xattrs, (n->n_xattrs + 1) * sizeof(*n->xattrs));
		struct bld_xattr *x = &n->xattrs[n->n_xattrs++];
		x->name = xstrdup(target->xattrs[i].name);
		x->value = xmalloc(target->xattrs[i].size ? target->xattrs[i].size : 1);
		memcpy(x->value, target->xattrs[i].value, target->xattrs[i].size);
		x->size = target->xattrs[i].size;
	}
	if (existing)
		child_remove(dir, at);
	child_find(dir, base, &at);
	child_insert(dir, n, at);
	return 0;
}

static int store_append_archive(struct bld_tree *t, struct archive *a, uint64_t *size, struct err **err)
{
	char chunk[65536];
	uint64_t total = 0;
	for (;;) {
		la_ssize_t n = archive_read_data(a, chunk, sizeof(chunk));
		if (n < 0)
			return err_set(err, EIO, "data: %s", archive_error_string(a));
		if (n == 0)
			break;
		if (content_fits(t, total + (uint64_t)n, false, err) < 0) /* more than the entry claimed */
			return -1;
		if (io_pwrite_full(t->store_fd, chunk, (size_t)n, (off_t)(t->store_size + total), err) < 0)
			return err_wrap(err, "content store");
		total += (uint64_t)n;
		progress_report(t, a);
	}
	*size = total;
	return 0;
}

static int apply_entry(struct bld_tree *t, struct archive *a, struct archive_entry *ae, uint32_t layer,
                       struct err **err)
{
	const char *raw = archive_entry_pathname(ae);
	if (!raw)
		return err_set(err, EINVAL, "an entry without a usable name");
	_cleanup_free_ char *path = NULL;
	if (bld_path_clean(raw, &path, err) < 0)
		return -1;
	mode_t type = archive_entry_filetype(ae);
	const char *hardlink = archive_entry_hardlink(ae);
	if (!*path) {
		/* "./" itself: the root directory's metadata. */
		if (hardlink || type != AE_IFDIR)
			return err_set(err, EINVAL, "the root is not a directory here");
		return set_meta(t->root, ae, err);
	}
	const char *parent, *base;
	path_split(path, &parent, &base);
	if (str_has_prefix(base, ".wh."))
		return apply_whiteout(t, parent, base, layer, err);

	int hops = 0;
	struct bld_node mk = {.layer = layer, .mtime = archive_entry_mtime(ae)};
	struct bld_node *dir = NULL;
	if (walk_dirs(t, t->root, parent, &mk, false, &hops, &dir, err) < 0)
		return -1;
	size_t at;
	struct bld_node *existing = child_find(dir, base, &at);
	if (hardlink)
		return apply_hardlink(t, dir, base, existing, at, hardlink, layer, err);

	switch (type) {
	case AE_IFREG:
	case AE_IFDIR:
	case AE_IFLNK:
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO: break;
	default: return err_set(err, EINVAL, "unsupported entry type 0%o", (unsigned)type);
	}
	if (existing && S_ISDIR(existing->mode) && type == AE_IFDIR) {
		existing->layer = layer;
		return set_meta(existing, ae, err);
	}
	if (!existing && check_path_len(dir, base, err) < 0)
		return -1;
	struct bld_node *n = node_new(base, type);
	n->layer = layer;
	if (set_meta(n, ae, err) < 0) {
		node_free(n);
		return -1;
	}
	if (type == AE_IFLNK) {
		const char *target = archive_entry_symlink(ae);
		if (!target || !*target || strlen(target) > MAX_PATH) {
			node_free(n);
			return err_set(err, EINVAL, "symlink with an empty or over-long target");
		}
		n->link_target = xstrdup(target);
		n->size = strlen(target);
	} else if (type == AE_IFCHR || type == AE_IFBLK) {
		n->rdev_major = archive_entry_rdevmajor(ae);
		n->rdev_minor = archive_entry_rdevminor(ae);
	} else if (type == AE_IFREG) {
		/* The size the entry claims, before a byte is written: a sparse entry of a few
		 * KB can claim gigabytes that would otherwise be expanded into the store and
		 * refused by the cpio writer only at the end. */
		bool sparse = archive_entry_sparse_count(ae) > 0;
		if (archive_entry_size_is_set(ae) &&
		    (content_fits(t, (uint64_t)archive_entry_size(ae), sparse, err) < 0 ||
		     disk_holds(t, (uint64_t)archive_entry_size(ae), sparse, err) < 0)) {
			node_free(n);
			return -1;
		}
		n->content_off = t->store_size;
		if (store_append_archive(t, a, &n->size, err) < 0) {
			node_free(n);
			return -1;
		}
		t->store_size += n->size;
	}
	if (existing)
		child_remove(dir, at);
	child_insert(dir, n, at);
	return 0;
}

/* Which decompression a media type implies; the data must agree. */
static int media_filters(const char *mt, int *want, int *also, struct err **err)
{
	static const char oci[] = "application/vnd.oci.image.layer.";
	*also = -1;
	if (str_has_prefix(mt, oci)) {
		const char *rest = mt + strlen(oci);
		if (str_has_prefix(rest, "nondistributable."))
			rest += strlen("nondistributable.");
		if (!strcmp(rest, "v1.tar"))
			return *want = ARCHIVE_FILTER_NONE, 0;
		if (!strcmp(rest, "v1.tar+gzip"))
			return *want = ARCHIVE_FILTER_GZIP, 0;
		if (!strcmp(rest, "v1.tar+zstd"))
			return *want = ARCHIVE_FILTER_ZSTD, 0;
	}
	if (!strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar.gzip") ||
	    !strcmp(mt, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")) {
		*want = ARCHIVE_FILTER_GZIP;
		*also = ARCHIVE_FILTER_NONE; /* docker save writes plain tars */
		return 0;
	}
	/* skopeo's docker-archive and our oci/ docker-archive reader name plain tars so. */
	if (!strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar"))
		return *want = ARCHIVE_FILTER_NONE, 0;
	return err_set(err, EINVAL, "unsupported layer media type \"%s\"", mt);
}

static const char *filter_label(int code)
{
	return code == ARCHIVE_FILTER_NONE   ? "uncompressed"
	       : code == ARCHIVE_FILTER_GZIP ? "gzip"
	       : code == ARCHIVE_FILTER_ZSTD ? "zstd"
	                                     : "another compression";
}

/* The compression the layer data had: gzip_feed hands libarchive what it inflated. */
static int filter_got(const struct bld_tree *t, struct archive *a)
{
	int got = archive_filter_code(a, 0);
	return t->feed && got == ARCHIVE_FILTER_NONE ? ARCHIVE_FILTER_GZIP : got;
}

static int apply_archive(struct bld_tree *t, struct archive *a, const char *path, int want, int also, uint32_t layer,
                         struct err **err)
{
	if (t->feed) {
		if (bld_gzip_feed_attach(t->feed, a, err) < 0)
			return -1;
	} else if (archive_read_open_filename(a, path, 256 * 1024) != ARCHIVE_OK) {
		return err_set(err, archive_errno(a) > 0 ? archive_errno(a) : EIO, "%s", archive_error_string(a));
	}
	bool checked = false;
	for (uint64_t index = 0;; index++) {
		struct archive_entry *ae;
		int r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			break;
		if (!checked) {
			int got = filter_got(t, a);
			if (got != want && got != also)
				return err_set(err, EINVAL, "the media type says %s but the data is %s",
				               filter_label(want), filter_label(got));
			checked = true;
		}
		if (r < ARCHIVE_WARN)
			return err_set(err, EINVAL, "entry %llu: %s", (unsigned long long)index,
			               archive_error_string(a));
		if (r == ARCHIVE_WARN)
			log_debug("%s: entry %llu: %s", path, (unsigned long long)index, archive_error_string(a));
		if (apply_entry(t, a, ae, layer, err) < 0) {
			const char *name = archive_entry_pathname(ae);
			return err_wrap(err, "entry %llu (%s)", (unsigned long long)index, name ? name : "?");
		}
		progress_report(t, a);
	}
	/* The tar may end before the gzip stream does: its CRC is checked all the same. */
	if (t->feed && bld_gzip_feed_finish(t->feed, err) < 0)
		return -1;
	if (!checked) {
		/* An empty layer is legal only as a real (empty) tar. */
		int got = filter_got(t, a);
		if (got != want && got != also)
			return err_set(err, EINVAL, "the media type says %s but the data is %s", filter_label(want),
			               filter_label(got));
	}
	return 0;
}

int bld_tree_apply_layer(struct bld_tree *t, const char *path, const char *media_type, struct err **err)
{
	uint32_t layer = ++t->n_layers;
	int want = ARCHIVE_FILTER_NONE, also = -1;
	if (media_filters(media_type, &want, &also, err) < 0)
		return err_wrap(err, "layer %u (%s)", layer, path);
	struct archive *a = archive_read_new();
	if (!a)
		abort();
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	int rc = 0;
	/* gzip layers (nearly all of them) are inflated on a second core; anything else, or data
	 * that is not what its media type says, goes through libarchive's own filters. */
	if (want == ARCHIVE_FILTER_GZIP)
		rc = bld_gzip_feed_open(path, &t->feed, err);
	if (rc == 0)
		rc = apply_archive(t, a, path, want, also, layer, err);
	archive_read_free(a);
	bld_gzip_feed_free(t->feed);
	t->feed = NULL;
	if (rc < 0)
		return err_wrap(err, "layer %u (%s)", layer, path);
	return 0;
}

/* ---------------------------------------------------------------- builder entries */

static int put_node(struct bld_tree *t, const char *path, struct bld_node *n, struct err **err)
{
	_cleanup_free_ char *clean = NULL;
	if (bld_path_clean(path, &clean, err) < 0 || !*clean) {
		node_free(n);
		return *err ? -1 : err_set(err, EINVAL, "cannot replace the root");
	}
	const char *parent, *base;
	path_split(clean, &parent, &base);
	free(n->name);
	n->name = xstrdup(base);
	n->layer = t->n_layers + 1;
	int hops = 0;
	struct bld_node mk = {.layer = n->layer, .mtime = n->mtime};
	struct bld_node *dir = NULL;
	if (walk_dirs(t, t->root, parent, &mk, true, &hops, &dir, err) < 0) {
		node_free(n);
		return err_wrap(err, "%s", path);
	}
	size_t at;
	struct bld_node *existing = child_find(dir, base, &at);
	if (!existing && check_path_len(dir, base, err) < 0) {
		node_free(n);
		return err_wrap(err, "%s", path);
	}
	bool mount = is_runtime_mount(t, dir, base);
	if (mount && !S_ISDIR(n->mode)) {
		node_free(n);
		return err_set(err, EINVAL, "%s: the enclave mounts over /%s at boot", path, base);
	}
	if (existing && S_ISDIR(n->mode) && (S_ISDIR(existing->mode) || (S_ISLNK(existing->mode) && !mount))) {
		node_free(n);
		return 0;
	}
	if (existing && mount)
		log_warn(
		    "the image's /%s is not a directory (%s): replaced by one, as the enclave mounts over it at boot",
		    base, S_ISLNK(existing->mode) ? "a symlink" : "another type");
	if (existing)
		child_remove(dir, at);
	child_insert(dir, n, at);
	return 0;
}

int bld_tree_add_dir(struct bld_tree *t, const char *path, uint32_t perm, int64_t mtime, struct err **err)
{
	struct bld_node *n = node_new("", S_IFDIR | (perm & 07777));
	n->mtime = mtime;
	return put_node(t, path, n, err);
}

int bld_tree_add_data(struct bld_tree *t, const char *path, const void *data, size_t len, uint32_t perm, int64_t mtime,
                      struct err **err)
{
	if (len && io_pwrite_full(t->store_fd, data, len, (off_t)t->store_size, err) < 0)
		return err_wrap(err, "%s: content store", path);
	struct bld_node *n = node_new("", S_IFREG | (perm & 07777));
	n->mtime = mtime;
	n->content_off = t->store_size;
	n->size = len;
	t->store_size += len;
	return put_node(t, path, n, err);
}

int bld_tree_add_file(struct bld_tree *t, const char *path, const char *src_path, uint32_t perm, int64_t mtime,
                      struct err **err)
{
	_cleanup_close_ int fd = open(src_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, "open %s", src_path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_sys(err, "stat %s", src_path);
	if (!S_ISREG(st.st_mode))
		return err_set(err, EINVAL, "%s is not a regular file", src_path);
	uint64_t size = 0;
	if (store_append_fd(t, fd, &size, err) < 0)
		return err_wrap(err, "copy %s", src_path);
	struct bld_node *n = node_new("", S_IFREG | (perm & 07777));
	n->mtime = mtime;
	n->content_off = t->store_size;
	n->size = size;
	t->store_size += size;
	return put_node(t, path, n, err);
}

/* ---------------------------------------------------------------- walking */

/* Iterative (an explicit stack of directories being listed): the depth is bounded by
 * check_path_len, but the walk should not lean on the C stack for it either. */
int bld_tree_walk(struct bld_tree *t, bld_tree_visit_fn fn, void *ctx, struct err **err)
{
	struct frame {
		struct bld_node *dir;
		size_t next;
		size_t mark; /* path->len before this directory's children */
	};
	_cleanup_buf_ struct buf path = {0};
	_cleanup_free_ struct frame *stack = NULL;
	size_t depth = 0, cap = 0;
	struct frame top = {t->root, 0, 0};
	int r = 0;
	for (;;) {
		if (top.next == top.dir->n_children) {
			if (depth == 0)
				break;
			top = stack[--depth];
			continue;
		}
		struct bld_node *c = top.dir->children[top.next++];
		path.len = top.mark;
		if (path.data)
			path.data[path.len] = '\0';
		if (top.mark)
			buf_putc(&path, '/');
		buf_puts(&path, c->name);
		r = fn(c, buf_str(&path), ctx, err);
		if (r != 0)
			break;
		if (S_ISDIR(c->mode) && c->n_children) {
			if (depth == cap) {
				cap = cap ? cap * 2 : 32;
				stack = xrealloc(stack, cap * sizeof(*stack));
			}
			stack[depth++] = top;
			top = (struct frame){c, 0, path.len};
		}
	}
	return r;
}

int bld_tree_apply_layers(struct bld_tree *t, const struct bld_layer *layers, size_t n,
                          void (*layer_done)(void *ctx, size_t i), void *ctx, struct err **err)
{
	for (size_t i = 0; i < n; i++) {
		if (bld_tree_apply_layer(t, layers[i].path, layers[i].media_type, err) < 0)
			return err_wrap(err, "layer %zu (%s)", i + 1, layers[i].digest ? layers[i].digest : layers[i].path);
		if (layer_done)
			layer_done(ctx, i);
	}
	return 0;
}
