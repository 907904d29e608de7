#!/usr/bin/env bash
# test_e2e_guide.sh: docs/guide-no-fly-list.md run as written (tests/e2e/guide-no-fly-list.sh) when
# a QEMU with the nitro-enclave machine is available (scripts/build-qemu.sh makes one; CI runs it
# first). Without one it says so and counts nothing.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if ! QEMU=$("$ROOT/scripts/build-qemu.sh" --check 2>/dev/null); then
	echo "e2e guide test NOT RUN: no qemu-system-x86_64 with the nitro-enclave machine (run scripts/build-qemu.sh)"
	echo "# counts 0 0"
	exit 0
fi
export QEMU
exec bash "$ROOT/tests/e2e/guide-no-fly-list.sh"
