#!/usr/bin/env bash
# example.sh: the README's built-in example, run as a user would: the example app
# (testdata/example/hello.c) and manifest (testdata/example/enclaver.yaml) built by `enclaver
# build` into a release image (an OCI layout), then `enclaver run --emulate IMAGE -p PORT:8080`
# with the default accelerator choice: the app's greeting reaches the host's stdout, the ingress
# port answers, and SIGTERM ends the run with 109, nothing left running. Needs ENCLAVER and QEMU.
set -u
: "${QEMU:?QEMU must name a qemu-system-x86_64 with the nitro-enclave machine}"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
source "$ROOT/tests/cli/helpers/build_fixtures.sh"
BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-400}
ODYN=$ROOT/build/release/bin/odyn # static: it runs inside the enclave
export ENCLAVER_QEMU=$QEMU ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1704067200
export XDG_RUNTIME_DIR=$TMP/run ENCLAVER_STATE_DIR=$TMP/state
mkdir -p "$XDG_RUNTIME_DIR" "$ENCLAVER_STATE_DIR"
run=
cleanup() {
	[ -z "$run" ] || kill "$run" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

KB=$TMP/kb
make_kernel_bundle "$KB"
make_example_release "$TMP"

PORT=$(free_port)
"$ENCLAVER" -v run --emulate "oci:$TMP/release:enclave" -p "$PORT:8080" >"$TMP/run.out" 2>"$TMP/run.err" &
run=$!
for _ in $(seq $((BOOT_TIMEOUT * 10))); do
	grep -q '^\[app\] hello: serving' "$TMP/run.out" 2>/dev/null && break
	kill -0 $run 2>/dev/null || break
	sleep 0.1
done
check "the example's greeting reaches the host's stdout" grep -qx '\[app\] hello, world' "$TMP/run.out"
answer=$(curl -s --max-time 60 "http://127.0.0.1:$PORT/")
if [ "$answer" = "hello, world" ]; then
	ok "the example's ingress port answers on the host ($(sed -n 's/.*heartbeat after \([0-9.]*\) s (\([a-z]*\)[;)].*/heartbeat after \1 s under \2/p' "$TMP/run.err"))"
else
	not_ok "the example's ingress port answers on the host" "got: $answer" "$(tail -20 "$TMP/run.err")"
fi
kill -TERM $run
wait $run
rc=$?
run=
check "SIGTERM stops the run with 109" test $rc -eq 109
grep -q Sanitizer "$TMP/run.err" && not_ok "no sanitizer report" "$(grep -A20 Sanitizer "$TMP/run.err" | head -40)"
check "the launcher's runtime folder is gone" test -z "$(ls -A "$XDG_RUNTIME_DIR")"
check "the state folder is empty again" test -z "$(ls "$ENCLAVER_STATE_DIR")"
done_testing
