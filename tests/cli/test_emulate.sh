#!/usr/bin/env bash
# test_emulate.sh: `enclaver emulate` argument checks and failure paths that need no QEMU build:
# usage errors, a missing EIF, and a QEMU that exits at once (the backend and runtime folder
# must be cleaned up, with no leak under ASan).
source "$(dirname "$0")/lib.sh"

check_fails "emulate without --eif" "--eif is required" "$ENCLAVER" emulate
check_fails "emulate with a bad --forward" "expected PORT=unix:PATH" "$ENCLAVER" emulate --eif x --forward 9000=udp:1
check_fails "emulate with a bad --listen" "expected unix:PATH=PORT" "$ENCLAVER" emulate --eif x --listen tcp:0=5
check_fails "emulate with CID 3 (the parent's)" "--cid 3" "$ENCLAVER" emulate --eif x --cid 3
check_fails "emulate with a missing EIF" "nope.eif: No such file" "$ENCLAVER" emulate --eif "$TMP/nope.eif" --qemu /bin/false
cp "$TESTDATA/eif/case1/case1.eif" "$TMP/a.eif"
export XDG_RUNTIME_DIR=$TMP/run
mkdir -p "$XDG_RUNTIME_DIR"
check_fails "emulate reports a QEMU that exits before the heartbeat" "QEMU exited \(status 1\) before the enclave's heartbeat" \
	"$ENCLAVER" emulate --eif "$TMP/a.eif" --qemu /bin/false
check_fails "emulate reports a QEMU it cannot run" "exec $TMP/none: No such file" \
	"$ENCLAVER" emulate --eif "$TMP/a.eif" --qemu "$TMP/none"
if [ -z "$(ls -A "$XDG_RUNTIME_DIR")" ]; then ok "emulate removes its runtime folder"; else not_ok "emulate removes its runtime folder" "$(ls -la "$XDG_RUNTIME_DIR")"; fi
check "emulate --help" "$ENCLAVER" emulate --help
done_testing
