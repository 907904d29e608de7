#!/usr/bin/env bash
# test_e2e_emulator_tcg.sh: tests/e2e/run.sh again with TCG forced (ENCLAVER_EMULATOR_ACCEL=tcg),
# so the path every machine without a working KVM takes stays tested where KVM boots too.
# Without a QEMU it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if ! QEMU=$("$ROOT/scripts/build-qemu.sh" --check 2>/dev/null); then
	echo "e2e emulator tests (TCG) NOT RUN: no qemu-system-x86_64 with the nitro-enclave machine (run scripts/build-qemu.sh)"
	echo "# counts 0 0"
	exit 0
fi
export QEMU ENCLAVER_EMULATOR_ACCEL=tcg
exec bash "$ROOT/tests/e2e/run.sh"
