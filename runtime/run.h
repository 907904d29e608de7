/* run: `enclaver run` and `enclaver-run` end to end, as builder's bld_build is `enclaver build`:
 * find the EIF and the manifest (a release image through a caller's fetcher, or local files),
 * check them (measurements, memory), pick a CID, start the enclave through a launcher, and run the
 * outer side (outer.h) until it stops. The CLI parses options into run_options and prints.
 * docs/run.md. */
#ifndef ENCLAVER_RUNTIME_RUN_H
#define ENCLAVER_RUNTIME_RUN_H

#include "runtime/outer.h"

struct run_options;

/* Makes the launcher a run uses; `nitro` and `emulator` are built in, a test binary registers its
 * own (tests/helpers/launcher_local.c) before main runs. */
typedef int (*run_launcher_new_fn)(const struct run_options *o, struct launcher **out, struct err **err);
void run_launcher_register(const char *name, run_launcher_new_fn fn);
bool run_launcher_known(const char *name);

/* Writes a release image's /enclave/application.eif and /enclave/enclaver.yaml to eif_path and
 * yaml_path (tmp_dir is a private scratch folder). The registry client lives above runtime/:
 * `enclaver run` passes one, the static enclaver-run (local files only) none. */
typedef int (*run_fetch_fn)(void *ctx, const char *image, const char *tmp_dir, const char *eif_path,
                            const char *yaml_path, struct err **err);

struct run_options {
	/* What to run, one of: a release image; a manifest whose `target` names one; local files. */
	const char *image;
	const char *manifest_file; /* its `target` is the image (when image and eif are NULL) */
	const char *eif, *manifest;
	run_fetch_fn fetch;        /* NULL: local files only */
	void *fetch_ctx;

	const struct outer_port *ports; /* -p; none: the manifest's ingress ports on 127.0.0.1 */
	size_t n_ports;
	unsigned cpu_count, memory_mb; /* 0: the manifest's defaults, else the launcher's */
	uint64_t cid;                  /* 0: picked */
	bool debug_mode;
	const char *verify;   /* --verify-before-run: a measurements JSON the EIF must match */
	const char *launcher; /* a registered launcher's name; NULL: "nitro" */
	enum emu_accel accel; /* the emulator's */
	const char *name;     /* NULL: the manifest's name, else the EIF's file name */
	const char *metrics;  /* --metrics HOST:PORT or :PORT (outer_metrics_addr); NULL: none */

	/* Called once the enclave started, before the outer side runs (the CLI prints nitro-cli's
	 * run-enclave JSON). May be NULL. */
	void (*on_started)(void *ctx, const struct launch_info *info);
	void *ctx;
};

/* Runs the enclave to its end. Returns 0 with *exit_code the app's (or 107/108/109, see
 * outer_exit_code) when the enclave ran; -1 with *exit_code OUTER_EXIT_FATAL (or
 * OUTER_EXIT_INTERRUPTED for SIGINT/SIGTERM during the boot) when it could not run. */
int run_enclave(const struct run_options *o, int *exit_code, struct err **err);

#endif
