/* test_bundle: kernel bundle folders made here: a complete one, AWS's blobs
 * layout, and the broken ones a build must refuse with a clear message. */
#include <fcntl.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "tests/harness.h"

static void put(const char *dir, const char *name, const char *text)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	io_write_full(fd, text, strlen(text), NULL);
	close(fd);
}

static char *bundle_dir(struct test_ctx *t, const char *name)
{
	char *d = xasprintf("%s/%s", test_tmpdir(t), name);
	mkdir(d, 0755);
	return d;
}

TEST(bundle_debian_layout)
{
	_cleanup_free_ char *d = bundle_dir(t, "deb");
	put(d, "bzImage", "kernel");
	put(d, "cmdline", "  console=ttyS0 reboot=k\n\n");
	put(d, "bzImage.config",
	    "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 6.12.95 Kernel Configuration\n");
	_cleanup_free_ char *m = xasprintf("%s/modules", d);
	mkdir(m, 0755);
	put(m, "vsock.ko", "v");
	put(m, "a_transport.ko", "t");
	put(d, "modules.order", "vsock.ko\na_transport.ko\n");
	struct bld_kernel_bundle *b = NULL;
	struct err *e = NULL;
	REQUIRE(bld_kernel_bundle_load(d, &b, &e) == 0);
	CHECK(!b->aarch64);
	CHECK_STR_EQ(b->cmdline, "console=ttyS0 reboot=k");
	CHECK(b->init_path == NULL && b->nsm_path == NULL);
	REQUIRE(b->n_modules == 2);
	_cleanup_free_ char *first = xasprintf("%s/vsock.ko", m);
	CHECK_STR_EQ(b->module_paths[0], first);
	CHECK_STR_EQ(b->os, "Linux");
	CHECK_STR_EQ(b->kernel_version, "6.12.95");
	bld_kernel_bundle_free(b);
}

TEST(bundle_aws_blobs_layout)
{
	_cleanup_free_ char *d = bundle_dir(t, "aws");
	put(d, "bzImage", "k");
	put(d, "cmdline", "reboot=k panic=30 pci=off nomodules console=ttyS0");
	put(d, "init", "i");
	put(d, "nsm.ko", "n");
	put(d, "bzImage.config", "#\n#\n# Linux/x86_64 4.14.256-197.484.amzn2.x86_64 Kernel Configuration\n");
	struct bld_kernel_bundle *b = NULL;
	struct err *e = NULL;
	REQUIRE(bld_kernel_bundle_load(d, &b, &e) == 0);
	CHECK(b->init_path && b->nsm_path);
	CHECK_INT_EQ(b->n_modules, 0);
	CHECK_STR_EQ(b->kernel_version, "4.14.256");
	bld_kernel_bundle_free(b);
}

TEST(bundle_arm64_without_config)
{
	_cleanup_free_ char *d = bundle_dir(t, "arm");
	put(d, "Image", "k");
	put(d, "cmdline", "");
	struct bld_kernel_bundle *b = NULL;
	struct err *e = NULL;
	REQUIRE(bld_kernel_bundle_load(d, &b, &e) == 0);
	CHECK(b->aarch64);
	CHECK_STR_EQ(b->cmdline, "");
	CHECK(b->config_path == NULL && b->os == NULL);
	bld_kernel_bundle_free(b);
}

static void refused(struct test_ctx *t, const char *dir, const char *needle)
{
	struct bld_kernel_bundle *b = NULL;
	struct err *e = NULL;
	CHECK(bld_kernel_bundle_load(dir, &b, &e) < 0);
	CHECK(b == NULL);
	CHECK_ERR_CONTAINS(e, needle);
	err_free(&e);
}

/* issue 15: AWS's init panics the enclave when /nsm.ko is there and does not load; a kernel with
 * modules off (the custom kernel, NSM built in) never loads one, so the bundle is refused. */
TEST(bundle_nsm_ko_without_module_support_refused)
{
	_cleanup_free_ char *d = bundle_dir(t, "custom-aws-init");
	put(d, "bzImage", "k");
	put(d, "cmdline", "reboot=k panic=30 pci=off nomodules console=ttyS0");
	put(d, "init", "i");
	put(d, "bzImage.config",
	    "#\n# Linux/x86 6.12.118 Kernel Configuration\nCONFIG_NSM=y\n# CONFIG_MODULES is not set\n");
	struct bld_kernel_bundle *b = NULL;
	struct err *e = NULL;
	REQUIRE(bld_kernel_bundle_load(d, &b, &e) == 0); /* without nsm.ko: fine */
	bld_kernel_bundle_free(b);
	put(d, "nsm.ko", "n");
	refused(t, d, "nsm.ko: the kernel has no module support (CONFIG_MODULES is not set");
	/* a kernel with modules takes it (AWS's own bundle) */
	put(d, "bzImage.config", "#\n# Linux/x86 4.14.256 Kernel Configuration\nCONFIG_MODULES=y\n");
	REQUIRE(bld_kernel_bundle_load(d, &b, &e) == 0);
	CHECK(b->nsm_path != NULL);
	bld_kernel_bundle_free(b);
}

TEST(bundle_broken_ones_refused)
{
	_cleanup_free_ char *missing = xasprintf("%s/none", test_tmpdir(t));
	refused(t, missing, "none");
	_cleanup_free_ char *nokernel = bundle_dir(t, "nokernel");
	put(nokernel, "cmdline", "x");
	refused(t, nokernel, "has no kernel");
	_cleanup_free_ char *both = bundle_dir(t, "both");
	put(both, "bzImage", "k");
	put(both, "Image", "k");
	refused(t, both, "both bzImage and Image");
	_cleanup_free_ char *nocmd = bundle_dir(t, "nocmd");
	put(nocmd, "bzImage", "k");
	refused(t, nocmd, "has no cmdline");
	_cleanup_free_ char *longcmd = bundle_dir(t, "longcmd");
	put(longcmd, "bzImage", "k");
	char big[3000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(longcmd, "cmdline", big);
	refused(t, longcmd, "over the kernel's 2047");
	_cleanup_free_ char *kdir = bundle_dir(t, "kdir");
	_cleanup_free_ char *kd = xasprintf("%s/bzImage", kdir);
	mkdir(kd, 0755);
	refused(t, kdir, "bzImage is not a regular file");
	_cleanup_free_ char *badorder = bundle_dir(t, "badorder");
	put(badorder, "bzImage", "k");
	put(badorder, "cmdline", "c");
	_cleanup_free_ char *m = xasprintf("%s/modules", badorder);
	mkdir(m, 0755);
	put(m, "a.ko", "a");
	put(m, "b.ko", "b");
	put(badorder, "modules.order", "a.ko\nc.ko\n");
	refused(t, badorder, "modules.order:2: c.ko is not in");
	put(badorder, "modules.order", "a.ko\n");
	refused(t, badorder, "b.ko is not listed");
	put(badorder, "modules.order", "a.ko\nb.ko\na.ko\n");
	refused(t, badorder, "listed twice");
	_cleanup_free_ char *badconfig = bundle_dir(t, "badconfig");
	put(badconfig, "bzImage", "k");
	put(badconfig, "cmdline", "c");
	put(badconfig, "bzImage.config", "one line\n");
	refused(t, badconfig, "fewer than 3 lines");
}
