# e2e_qemu.sh: what the tests/cli/test_e2e_*.sh wrappers share (sourced; needs $ROOT): a test that
# needs QEMU with the nitro-enclave machine (scripts/build-qemu.sh; CI runs it first), or the cached
# custom kernel, says it was NOT RUN and counts nothing when they are missing.

# need_qemu WHAT: exports QEMU, or ends the test as not run.
need_qemu() {
	if ! QEMU=$("$ROOT/scripts/build-qemu.sh" --check 2>/dev/null); then
		echo "$1 NOT RUN: no qemu-system-x86_64 with the nitro-enclave machine (run scripts/build-qemu.sh)"
		echo "# counts 0 0"
		exit 0
	fi
	export QEMU
}

# need_custom_kernel WHAT: ends the test as not run unless scripts/kernel-bundle-custom.sh's kernel is cached.
need_custom_kernel() {
	if ! "$ROOT/scripts/kernel-bundle-custom.sh" --check >/dev/null 2>&1; then
		echo "$1 NOT RUN: the custom kernel is not built (run scripts/kernel-bundle-custom.sh DIR once; it is cached)"
		echo "# counts 0 0"
		exit 0
	fi
}
