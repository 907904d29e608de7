#!/usr/bin/env bash
# test_e2e_aws_init.sh: AWS's own init (nitro-cli 1.5.0's) on the ramdisks `enclaver build` writes,
# booted in the emulator with the custom kernel (tests/e2e/aws-init.sh), when a QEMU with the
# nitro-enclave machine (scripts/build-qemu.sh) and the custom kernel (scripts/kernel-bundle-custom.sh,
# cached) are there; CI makes both first. Without them it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/tests/cli/helpers/e2e_qemu.sh"
need_qemu "e2e AWS init tests"
need_custom_kernel "e2e AWS init tests"
exec bash "$ROOT/tests/e2e/aws-init.sh"
