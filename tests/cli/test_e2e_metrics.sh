#!/usr/bin/env bash
# test_e2e_metrics.sh: `enclaver run --emulate --metrics` end to end (tests/e2e/run-metrics.sh) when a
# QEMU with the nitro-enclave machine is available. Without one it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/tests/cli/helpers/e2e_qemu.sh"
need_qemu "e2e metrics tests"
exec bash "$ROOT/tests/e2e/run-metrics.sh"
