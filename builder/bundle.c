/* bundle: reads a kernel bundle folder (kernel, cmdline, init, nsm.ko,
 * modules in load order, kernel config) and checks it before a build uses it. */
#include <ctype.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "eif/eif.h"

/* "regular" = 1, absent = 0, anything else an error naming the file. */
static int regular_file(const char *path, struct err **err)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_sys(err, "stat %s", path);
	}
	if (!S_ISREG(st.st_mode))
		return err_set(err, EINVAL, "%s is not a regular file", path);
	return 1;
}

static int load_cmdline(struct bld_kernel_bundle *b, struct err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/cmdline", b->dir), *data = NULL;
	size_t len = 0;
	int r = regular_file(path, err);
	if (r < 0)
		return -1;
	if (r == 0)
		return err_set(err, ENOENT, "kernel bundle %s has no cmdline", b->dir);
	if (io_read_file(path, 64 * 1024, &data, &len, err) < 0)
		return -1;
	if (memchr(data, '\0', len))
		return err_set(err, EINVAL, "%s: contains a NUL byte", path);
	size_t start = 0, end = len;
	while (start < end && isspace((unsigned char)data[start]))
		start++;
	while (end > start && isspace((unsigned char)data[end - 1]))
		end--;
	if (end - start >= BLD_CMDLINE_MAX)
		return err_set(err, E2BIG, "%s: %zu bytes, over the kernel's %d", path, end - start,
		               BLD_CMDLINE_MAX - 1);
	b->cmdline = strndup(data + start, end - start);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .ko files of modules/, sorted; *n = 0 when the folder is absent. */
static int list_modules(const char *dir, char ***names, size_t *n, struct err **err)
{
	*names = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_sys(err, "open %s", dir);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len > 3 && strcmp(de->d_name + len - 3, ".ko") == 0) {
			*names = xrealloc(*names, (*n + 1) * sizeof(char *));
			(*names)[(*n)++] = xstrdup(de->d_name);
		} else if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			log_warn("%s/%s: not a .ko file (compressed modules must be decompressed); ignored", dir,
			         de->d_name);
		}
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(char *), name_cmp);
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int load_modules(struct bld_kernel_bundle *b, struct err **err)
{
	_cleanup_free_ char *mdir = xasprintf("%s/modules", b->dir),
	                    *order_path = xasprintf("%s/modules.order", b->dir);
	char **names = NULL;
	size_t n = 0;
	if (list_modules(mdir, &names, &n, err) < 0)
		return -1;
	int r = regular_file(order_path, err);
	if (r < 0) {
		free_names(names, n);
		return -1;
	}
	if (r == 0) {
		if (n > 1)
			log_warn("kernel bundle %s has no modules.order: loading modules by name", b->dir);
		b->module_paths = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			b->module_paths[b->n_modules++] = xasprintf("%s/%s", mdir, names[i]);
		free_names(names, n);
		return 0;
	}
	_cleanup_free_ char *order = NULL;
	size_t len = 0;
	if (io_read_file(order_path, 1 << 20, &order, &len, err) < 0) {
		free_names(names, n);
		return -1;
	}
	bool *used = xcalloc(n + 1, sizeof(bool));
	b->module_paths = xcalloc(n + 1, sizeof(char *));
	int rc = 0;
	size_t line_no = 0;
	char *save = NULL;
	for (char *line = strtok_r(order, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
		line_no++;
		line[strcspn(line, "\r")] = '\0';
		if (!*line)
			continue;
		char **hit = n ? bsearch(&line, names, n, sizeof(char *), name_cmp) : NULL;
		if (!hit)
			rc = err_set(err, ENOENT, "%s:%zu: %s is not in %s", order_path, line_no, line, mdir);
		else if (used[hit - names])
			rc = err_set(err, EINVAL, "%s:%zu: %s listed twice", order_path, line_no, line);
		else {
			used[hit - names] = true;
			b->module_paths[b->n_modules++] = xasprintf("%s/%s", mdir, line);
		}
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!used[i])
			rc = err_set(err, EINVAL, "%s: %s/%s is not listed, so its load order is unknown", order_path,
			             mdir, names[i]);
	free(used);
	free_names(names, n);
	return rc;
}

/* 1 when the kernel's .config says "# CONFIG_MODULES is not set", 0 otherwise. Read line by line:
 * the config is some 100 KB of text. */
static int config_without_modules(const char *path, struct err **err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return err_sys(err, "%s", path);
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, "# CONFIG_MODULES is not set") == 0)
			return 1;
		if (strcmp(line, "CONFIG_MODULES=y") == 0)
			return 0;
	}
	if (ferror(f))
		return err_sys(err, "%s", path);
	return 0;
}

static int load_bundle(struct bld_kernel_bundle *b, struct err **err)
{
	struct stat st;
	if (stat(b->dir, &st) < 0)
		return err_sys(err, "kernel bundle %s", b->dir);
	if (!S_ISDIR(st.st_mode))
		return err_set(err, ENOTDIR, "kernel bundle %s is not a folder", b->dir);
	_cleanup_free_ char *bz = xasprintf("%s/bzImage", b->dir), *img = xasprintf("%s/Image", b->dir);
	int has_bz = regular_file(bz, err), has_img = has_bz < 0 ? -1 : regular_file(img, err);
	if (has_bz < 0 || has_img < 0)
		return -1;
	if (has_bz && has_img)
		return err_set(err, EINVAL, "kernel bundle %s has both bzImage and Image: which architecture?", b->dir);
	if (!has_bz && !has_img)
		return err_set(err, ENOENT, "kernel bundle %s has no kernel (bzImage for x86_64, Image for aarch64)",
		               b->dir);
	b->aarch64 = has_img;
	b->kernel_path = steal_pointer(has_bz ? &bz : &img);
	if (load_cmdline(b, err) < 0)
		return -1;
	const char *optional[] = {"init", "nsm.ko"};
	char **slots[] = {&b->init_path, &b->nsm_path};
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", b->dir, optional[i]);
		int r = regular_file(p, err);
		if (r < 0)
			return -1;
		if (r)
			*slots[i] = steal_pointer(&p);
	}
	if (load_modules(b, err) < 0)
		return -1;
	const char *configs[] = {b->aarch64 ? "Image.config" : "bzImage.config", "config"};
	for (size_t i = 0; i < 2 && !b->config_path; i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", b->dir, configs[i]);
		int r = regular_file(p, err);
		if (r < 0)
			return -1;
		if (r)
			b->config_path = steal_pointer(&p);
	}
	if (b->config_path && eif_kernel_config_identity(b->config_path, &b->os, &b->kernel_version, err) < 0)
		return -1;
	/* AWS's init skips an absent /nsm.ko but dies (the kernel panics) when one is there and does not
	 * load: refuse the bundle now rather than have the enclave die at boot. */
	if (b->config_path && (b->nsm_path || b->n_modules)) {
		int off = config_without_modules(b->config_path, err);
		if (off < 0)
			return -1;
		if (off)
			return err_set(
			    err, EINVAL,
			    "kernel bundle %s: %s: the kernel has no module support (CONFIG_MODULES is not set "
			    "in %s), and AWS's init dies when /nsm.ko is there and does not load: leave it out "
			    "(the kernel must then have NSM built in)",
			    b->dir, b->nsm_path ? "nsm.ko" : "modules/", b->config_path);
	}
	return 0;
}

int bld_kernel_bundle_load(const char *dir, struct bld_kernel_bundle **out, struct err **err)
{
	*out = NULL;
	struct bld_kernel_bundle *b = xcalloc(1, sizeof(*b));
	b->dir = xstrdup(dir);
	if (load_bundle(b, err) < 0) {
		bld_kernel_bundle_free(b);
		return -1;
	}
	*out = b;
	return 0;
}

void bld_kernel_bundle_free(struct bld_kernel_bundle *b)
{
	if (!b)
		return;
	free(b->dir), free(b->kernel_path), free(b->cmdline), free(b->init_path), free(b->nsm_path);
	free_names(b->module_paths, b->n_modules);
	free(b->config_path), free(b->os), free(b->kernel_version);
	free(b);
}
