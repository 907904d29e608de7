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
# A stand-in for QEMU that prints a console line and never sends a heartbeat: exercises the
# heartbeat timeout and the SIGINT path (process management only; tests/e2e boots the real one).
printf '#!/bin/sh\necho "fake console: $$"\nexec sleep 120\n' >"$TMP/fakeqemu"
chmod +x "$TMP/fakeqemu"
check_fails "emulate gives up without a heartbeat and shows the console" "no heartbeat from the enclave within 1 s; console ends with:" \
	"$ENCLAVER" emulate --eif "$TMP/a.eif" --qemu "$TMP/fakeqemu" --heartbeat-timeout 1
pid=$(sed -n 's/^fake console: //p' "$TMP/.stderr")
if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then ok "the stand-in QEMU was stopped"; else not_ok "the stand-in QEMU was stopped" "pid '$pid'"; fi
"$ENCLAVER" emulate --eif "$TMP/a.eif" --qemu "$TMP/fakeqemu" --debug-mode >"$TMP/console" 2>"$TMP/err" &
emu=$!
for _ in $(seq 100); do grep -q 'fake console' "$TMP/console" && break; sleep 0.1; done
kill -INT $emu
wait $emu
rc=$?
pid=$(sed -n 's/^fake console: //p' "$TMP/console")
if [ $rc -eq 109 ]; then ok "SIGINT stops emulate with exit 109"; else not_ok "SIGINT stops emulate with exit 109 (got $rc)" "$(cat "$TMP/err")"; fi
if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then ok "SIGINT stops QEMU too"; else not_ok "SIGINT stops QEMU too" "pid '$pid'"; fi
grep -q Sanitizer "$TMP/err" && not_ok "no sanitizer report after SIGINT" "$(cat "$TMP/err")"
if [ -z "$(ls -A "$XDG_RUNTIME_DIR")" ]; then ok "emulate removes its runtime folder"; else not_ok "emulate removes its runtime folder" "$(ls -la "$XDG_RUNTIME_DIR")"; fi
check "emulate --help" "$ENCLAVER" emulate --help
done_testing
