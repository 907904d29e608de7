/* initramfs: the customer ramdisk (rootfs/ from the flattened image, odyn, the
 * manifest, /cmd, /env) as a deterministic newc cpio. */
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"

static int add_line(struct buf *b, const char *what, const char *s, struct err **err)
{
	if (strchr(s, '\n'))
		return err_set(err, EINVAL, "%s \"%s\" has a newline, which /cmd and /env cannot carry", what, s);
	buf_puts(b, s);
	buf_putc(b, '\n');
	return 0;
}

int bld_initramfs_cmd_env(const struct bld_app_config *cfg, struct buf *cmd, struct buf *env, struct err **err)
{
	if (cfg->n_entrypoint == 0 && cfg->n_cmd == 0)
		return err_set(err, EINVAL, "the image has neither Entrypoint nor Cmd: nothing to run");
	const char *head[] = {"/sbin/odyn", "--config-dir", "/etc/enclaver", "--ramdisk-marker",
	                      ("/" BLD_RAMDISK_MARKER)}; /* one path: the parentheses say so to clang */
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		buf_puts(cmd, head[i]), buf_putc(cmd, '\n');
	/* WorkingDir and User are odyn's to apply (after the chroot, before exec). */
	if (cfg->working_dir && *cfg->working_dir) {
		buf_puts(cmd, "--workdir\n");
		if (add_line(cmd, "WorkingDir", cfg->working_dir, err) < 0)
			return -1;
	}
	if (cfg->user && *cfg->user) {
		buf_puts(cmd, "--user\n");
		if (add_line(cmd, "User", cfg->user, err) < 0)
			return -1;
	}
	buf_puts(cmd, "--\n");
	/* Docker's rule: Entrypoint then Cmd as its arguments. */
	for (size_t i = 0; i < cfg->n_entrypoint; i++)
		if (add_line(cmd, "Entrypoint argument", cfg->entrypoint[i], err) < 0)
			return -1;
	for (size_t i = 0; i < cfg->n_cmd; i++)
		if (add_line(cmd, "Cmd argument", cfg->cmd[i], err) < 0)
			return -1;
	for (size_t i = 0; i < cfg->n_env; i++) {
		const char *eq = strchr(cfg->env[i], '=');
		if (!eq || eq == cfg->env[i])
			return err_set(err, EINVAL, "Env entry \"%s\" is not KEY=VALUE", cfg->env[i]);
		if (add_line(env, "Env entry", cfg->env[i], err) < 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- writing */

struct link_slot {
	uint32_t nlink;
	uint32_t ino; /* 0 until the first member is written */
};

struct writer {
	struct bld_cpio *cpio;
	struct bld_tree *tree;
	int64_t sde;
	struct link_slot *links; /* indexed by link group */
	size_t n_links;
	size_t n_xattr_nodes;
	const char *xattr_example;
	char *xattr_example_own;
};

static int64_t entry_mtime(const struct writer *w, int64_t mtime)
{
	if (mtime < 0)
		return 0;
	if (w->sde >= 0 && mtime > w->sde)
		return w->sde;
	return mtime > (int64_t)UINT32_MAX ? (int64_t)UINT32_MAX : mtime;
}

static int count_links(struct bld_node *n, const char *path, void *ctx, struct err **err)
{
	(void)path, (void)err;
	struct writer *w = ctx;
	if (!n->link_group)
		return 0;
	if (n->link_group >= w->n_links) {
		size_t want = (size_t)n->link_group + 1;
		w->links = xrealloc(w->links, want * sizeof(*w->links));
		memset(w->links + w->n_links, 0, (want - w->n_links) * sizeof(*w->links));
		w->n_links = want;
	}
	w->links[n->link_group].nlink++;
	return 0;
}

static int write_node(struct bld_node *n, const char *path, void *ctx, struct err **err)
{
	struct writer *w = ctx;
	_cleanup_free_ char *name = xasprintf("rootfs/%s", path);
	struct bld_cpio_entry e = {
	    .name = name,
	    .mode = n->mode,
	    .uid = n->uid,
	    .gid = n->gid,
	    .mtime = entry_mtime(w, n->mtime),
	    .rdev_major = n->rdev_major,
	    .rdev_minor = n->rdev_minor,
	};
	if (n->n_xattrs && w->n_xattr_nodes++ == 0)
		w->xattr_example = w->xattr_example_own = xasprintf("%s (%s)", path, n->xattrs[0].name);
	if (S_ISLNK(n->mode)) {
		e.size = strlen(n->link_target);
		if (bld_cpio_header(w->cpio, &e, err) < 0 || bld_cpio_data(w->cpio, n->link_target, e.size, err) < 0)
			return err_wrap(err, "%s", name);
		return 0;
	}
	bool with_data = S_ISREG(n->mode);
	if (S_ISREG(n->mode) && n->link_group && w->links[n->link_group].nlink > 1) {
		/* One inode for the group; the first member carries the bytes (the
		 * kernel links the later names to it and writes nothing more). */
		struct link_slot *slot = &w->links[n->link_group];
		e.nlink = slot->nlink;
		if (slot->ino == 0)
			slot->ino = bld_cpio_next_ino(w->cpio);
		else
			with_data = false;
		e.ino = slot->ino;
	}
	if (with_data)
		e.size = n->size;
	if (bld_cpio_header(w->cpio, &e, err) < 0)
		return err_wrap(err, "%s", name);
	if (with_data &&
	    bld_cpio_data_from_fd(w->cpio, bld_tree_content_fd(w->tree), (off_t)n->content_off, n->size, err) < 0)
		return err_wrap(err, "%s", name);
	return 0;
}

static int write_text(struct writer *w, const char *name, const struct buf *b, int64_t mtime, struct err **err)
{
	struct bld_cpio_entry e = {.name = name, .mode = S_IFREG | 0644, .mtime = mtime, .size = b->len};
	if (bld_cpio_header(w->cpio, &e, err) < 0 || bld_cpio_data(w->cpio, b->data, b->len, err) < 0)
		return err_wrap(err, "%s", name);
	return 0;
}

static int initramfs_entries(struct writer *w, const struct bld_initramfs_spec *spec, struct err **err)
{
	int64_t added = spec->source_date_epoch >= 0 ? spec->source_date_epoch : BLD_LINUXKIT_MTIME;
	_cleanup_buf_ struct buf cmd = {0}, env = {0};
	if (bld_initramfs_cmd_env(spec->config, &cmd, &env, err) < 0)
		return -1;
	/* linuxkit's files: section; an image's own directories win. */
	static const char *const dirs[] = {"dev", "run", "sys", "var", "proc", "tmp"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (bld_tree_add_dir(spec->tree, dirs[i], 0755, added, err) < 0)
			return -1;
	if (bld_tree_add_file(spec->tree, "sbin/odyn", spec->odyn_path, 0755, added, err) < 0)
		return err_wrap(err, "odyn");
	/* odyn reads the manifest at exactly /etc/enclaver/enclaver.yaml: no symlink of the image may
	 * send it elsewhere (into /proc, /tmp, or a file of the app's own). */
	static const char *const manifest_dirs[] = {"etc", "etc/enclaver"};
	for (size_t i = 0; i < 2; i++) {
		const struct bld_node *d = bld_tree_lookup(spec->tree, manifest_dirs[i]);
		if (d && S_ISLNK(d->mode))
			return err_set(err, EINVAL,
			               "manifest: the image's /%s is a symlink (-> %s); enclaver's manifest goes to "
			               "/etc/enclaver/enclaver.yaml under real directories",
			               manifest_dirs[i], d->link_target);
	}
	if (bld_tree_add_data(spec->tree, "etc/enclaver/enclaver.yaml", spec->manifest_data, spec->manifest_len, 0644,
	                      added, err) < 0)
		return err_wrap(err, "manifest");

	if (write_text(w, "cmd", &cmd, added, err) < 0 || write_text(w, "env", &env, added, err) < 0)
		return -1;
	struct bld_node *root = bld_tree_root(spec->tree);
	struct bld_cpio_entry r = {.name = "rootfs",
	                           .mode = root->mode,
	                           .uid = root->uid,
	                           .gid = root->gid,
	                           .mtime = root->mtime ? entry_mtime(w, root->mtime) : added};
	if (bld_cpio_header(w->cpio, &r, err) < 0)
		return -1;
	if (bld_tree_walk(spec->tree, count_links, w, err) < 0 || bld_tree_walk(spec->tree, write_node, w, err) < 0)
		return -1;
	/* Last: odyn finds it only if the kernel unpacked the whole ramdisk (odyn --ramdisk-marker). */
	static const char marker[] = "the customer ramdisk was unpacked to its end\n";
	struct bld_cpio_entry me = {
	    .name = "rootfs/" BLD_RAMDISK_MARKER, .mode = S_IFREG | 0444, .mtime = added, .size = sizeof(marker) - 1};
	if (bld_cpio_header(w->cpio, &me, err) < 0 || bld_cpio_data(w->cpio, marker, sizeof(marker) - 1, err) < 0)
		return err_wrap(err, "%s", me.name);
	if (w->n_xattr_nodes)
		log_warn("newc cpio cannot carry extended attributes: dropped them from %zu entries (first: %s)",
		         w->n_xattr_nodes, w->xattr_example);
	return bld_cpio_finish(w->cpio, err);
}

int bld_initramfs_write_to(struct atomic_file *af, const struct bld_initramfs_spec *spec, struct err **err)
{
	struct writer w = {.cpio = bld_cpio_new(af->fd), .tree = spec->tree, .sde = spec->source_date_epoch};
	int rc = initramfs_entries(&w, spec, err);
	bld_cpio_free(w.cpio);
	free(w.links);
	free(w.xattr_example_own);
	return rc;
}
