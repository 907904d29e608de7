/* cmd_kernel: `enclaver kernel fetch`: makes the default kernel bundle (CACHE/kernel-bundle) from
 * Debian's linux-image package with scripts/kernel-bundle-debian.sh, which is built into the binary
 * so an installed enclaver needs no source tree (docs/builder.md#kernel-bundles). */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "oci/oci.h"

/* The script's bytes, from the source tree at compile time (the Makefile makes this object depend
 * on it). */
__asm__(".section .rodata\n"
        "enclaver_kernel_script:\n"
        ".incbin \"scripts/kernel-bundle-debian.sh\"\n"
        "enclaver_kernel_script_end:\n"
        ".byte 0\n"
        ".previous\n");
extern const char enclaver_kernel_script[] __asm__("enclaver_kernel_script");
extern const char enclaver_kernel_script_end[] __asm__("enclaver_kernel_script_end");

static void kernel_usage(FILE *f)
{
	fputs("Usage: enclaver kernel fetch [--cache-dir DIR] [--init FILE] [--force]\n"
	      "\n"
	      "Makes the kernel bundle `enclaver build` uses by default, CACHE/kernel-bundle, from Debian's\n"
	      "linux-image 6.12 package (bookworm-backports, else bookworm): `apt-get download` (nothing is\n"
	      "installed), then the kernel, its config, AWS's cmdline and the enclave's modules. The .deb\n"
	      "is kept in CACHE/debian-kernel/; offline, put it there yourself. Needs apt-get, dpkg, xz.\n"
	      "\n"
	      "Options:\n"
	      "  --cache-dir DIR   the cache (default $ENCLAVER_CACHE_DIR, else $XDG_CACHE_HOME/enclaver,\n"
	      "                    else ~/.cache/enclaver)\n"
	      "  --init FILE       an init to put in the bundle (default: none; the builder uses odyn's)\n"
	      "  --force           make it again even when CACHE/kernel-bundle exists\n",
	      f);
}

/* Runs the built-in script with bash; 0 when it exited 0. Its messages go to our stderr. */
static int run_script(const char *deb_cache, const char *init, const char *out, struct err **err)
{
	_cleanup_free_ char *text =
	    xstrndup(enclaver_kernel_script, (size_t)(enclaver_kernel_script_end - enclaver_kernel_script));
	char *argv[8];
	size_t n = 0;
	argv[n++] = "bash";
	argv[n++] = "-c";
	argv[n++] = text;
	argv[n++] = "enclaver kernel fetch";
	if (init) {
		argv[n++] = "--init";
		argv[n++] = (char *)init;
	}
	argv[n++] = (char *)out;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		return err_sys(err, "fork");
	if (pid == 0) {
		setenv("ENCLAVER_DEBIAN_KERNEL_CACHE", deb_cache, 1);
		execvp("bash", argv);
		fprintf(stderr, "enclaver kernel fetch: bash: %s\n", strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return err_sys(err, "waitpid");
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	return err_set(err, EIO,
	               "no kernel bundle made (the reason is above). Without network or Debian's apt sources: "
	               "download the package linux-image-6.12.*+deb12-amd64 (a .deb from Debian bookworm-backports, "
	               "https://packages.debian.org/bookworm-backports/linux-image-amd64) into %s/ and run `enclaver "
	               "kernel fetch` again; or give `enclaver build --kernel-bundle DIR` a bundle of your own "
	               "(docs/builder.md#kernel-bundles)",
	               deb_cache);
}

static int kernel_fetch(int argc, char **argv)
{
	static const struct option opts[] = {{"cache-dir", required_argument, NULL, 'c'},
	                                     {"init", required_argument, NULL, 'i'},
	                                     {"force", no_argument, NULL, 'f'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {0}};
	const char *cache_dir = NULL, *init = NULL;
	bool force = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cache_dir = optarg; break;
		case 'i': init = optarg; break;
		case 'f': force = true; break;
		case 'h': kernel_usage(stdout); return EXIT_OK;
		default: return cli_usage_error("kernel fetch", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage_error("kernel fetch", "unexpected argument \"%s\"", argv[optind]);
	_cleanup_err_ struct err *err = NULL;
	struct oci_cache cache = {0};
	if (oci_cache_open(cache_dir, &cache, &err) < 0)
		return cli_fail(&err);
	_cleanup_free_ char *out = xasprintf("%s/kernel-bundle", cache.dir);
	_cleanup_free_ char *debs = xasprintf("%s/debian-kernel", cache.dir);
	_cleanup_free_ char *kernel = xasprintf("%s/bzImage", out);
	oci_cache_close(&cache);
	if (!force && access(kernel, R_OK) == 0) {
		log_info("%s already has a kernel (--force makes it again)", out);
		puts(out);
		return EXIT_OK;
	}
	if (run_script(debs, init, out, &err) < 0)
		return cli_fail(&err);
	puts(out);
	return EXIT_OK;
}

int cmd_kernel(int argc, char **argv)
{
	return cli_one_subcommand(argc, argv, "fetch", kernel_fetch, kernel_usage);
}
