#!/usr/bin/env bash
# test_e2e_emulator_tcg.sh: tests/e2e/run.sh again with TCG forced (ENCLAVER_EMULATOR_ACCEL=tcg),
# so the path every machine without a working KVM takes stays tested where KVM boots too.
# Without a QEMU it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/tests/cli/helpers/e2e_qemu.sh"
need_qemu "e2e emulator tests (TCG)"
export ENCLAVER_EMULATOR_ACCEL=tcg
exec bash "$ROOT/tests/e2e/run.sh"
