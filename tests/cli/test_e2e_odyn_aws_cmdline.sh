#!/usr/bin/env bash
# test_e2e_odyn_aws_cmdline.sh: odyn as init under AWS's kernel command line on the custom kernel
# booted in the emulator with the custom kernel (tests/e2e/odyn-aws-cmdline.sh), when a QEMU with the
# nitro-enclave machine (scripts/build-qemu.sh) and the custom kernel (scripts/kernel-bundle-custom.sh,
# cached) are there; CI makes both first. Without them it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/tests/cli/helpers/e2e_qemu.sh"
need_qemu "e2e odyn-under-AWS-cmdline tests"
need_custom_kernel "e2e odyn-under-AWS-cmdline tests"
exec bash "$ROOT/tests/e2e/odyn-aws-cmdline.sh"
