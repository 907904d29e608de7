#!/usr/bin/env bash
# test_e2e_lifecycle.sh: restarts, SIGTERM with the grace period, a dead enclave and JSON logs of
# `enclaver run --emulate` / `enclaver-run --emulate` (tests/e2e/run-lifecycle.sh) when a QEMU with
# the nitro-enclave machine is available (scripts/build-qemu.sh makes one; CI runs it first).
# Without one it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/tests/cli/helpers/e2e_qemu.sh"
need_qemu "e2e lifecycle tests"
exec bash "$ROOT/tests/e2e/run-lifecycle.sh"
