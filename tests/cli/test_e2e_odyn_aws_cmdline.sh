#!/usr/bin/env bash
# test_e2e_odyn_aws_cmdline.sh: odyn as init under AWS's kernel command line on the custom kernel
# booted in the emulator with the custom kernel (tests/e2e/odyn-aws-cmdline.sh), when a QEMU with the
# nitro-enclave machine (scripts/build-qemu.sh) and the custom kernel (scripts/kernel-bundle-custom.sh,
# cached) are there; CI makes both first. Without them it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if ! QEMU=$("$ROOT/scripts/build-qemu.sh" --check 2>/dev/null); then
	echo "e2e odyn-under-AWS-cmdline tests NOT RUN: no qemu-system-x86_64 with the nitro-enclave machine (run scripts/build-qemu.sh)"
	echo "# counts 0 0"
	exit 0
fi
if ! "$ROOT/scripts/kernel-bundle-custom.sh" --check >/dev/null 2>&1; then
	echo "e2e odyn-under-AWS-cmdline tests NOT RUN: the custom kernel is not built (run scripts/kernel-bundle-custom.sh DIR once; it is cached)"
	echo "# counts 0 0"
	exit 0
fi
export QEMU
exec bash "$ROOT/tests/e2e/odyn-aws-cmdline.sh"
