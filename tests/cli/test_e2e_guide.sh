#!/usr/bin/env bash
# test_e2e_guide.sh: docs/guide-no-fly-list.md run as written (tests/e2e/guide-no-fly-list.sh) when
# a QEMU with the nitro-enclave machine is available (scripts/build-qemu.sh makes one; CI runs it
# first). Without one it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/tests/cli/helpers/e2e_qemu.sh"
need_qemu "e2e guide test"
exec bash "$ROOT/tests/e2e/guide-no-fly-list.sh"
