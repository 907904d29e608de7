#!/usr/bin/env bash
# test_e2e_odyn.sh: an `enclaver build` EIF booted through the emulator launcher with odyn as
# PID 1 (tests/e2e/odyn.sh) when a QEMU with the nitro-enclave machine is available
# (scripts/build-qemu.sh makes one; CI runs it first). Without one it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/tests/cli/helpers/e2e_qemu.sh"
need_qemu "e2e odyn tests"
exec bash "$ROOT/tests/e2e/odyn.sh"
