#!/usr/bin/env bash
# odyn.sh: the product end to end in the emulator, with odyn as PID 1: a sample app image (the
# static tests/e2e/app.c, written as an OCI layout by testdata/example/make_app_image.py) built
# by `enclaver build` with Debian's kernel bundle and a signature, booted once through the
# emulator launcher (tests/helpers/launcher-probe.c, the calls the outer side makes). Checks the
# heartbeat, the app's output on the log stream (17001), its exit code on the status stream
# (17000), the enclave's connection to a parent port, PCR0/1/2/8 read inside through /dev/nsm
# against `enclaver describe-eif`, and that nothing is left behind. Needs ENCLAVER and QEMU.
set -u
: "${QEMU:?QEMU must name a qemu-system-x86_64 with the nitro-enclave machine}"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
source "$ROOT/tests/cli/helpers/build_fixtures.sh"
# TCG is slow and CI machines are shared: generous bounds, never timed assertions.
BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-400}
RUN_TIMEOUT=${E2E_RUN_TIMEOUT:-900}
PROBE=$(dirname "$ENCLAVER")/../helpers/launcher-probe
# odyn runs inside the enclave: the static release build (the asan variant's is dynamic).
ODYN=$ROOT/build/release/bin/odyn
APP_PORT=5005 # the app tells the parent it is done on this port
APP_CODE=42

KB=$TMP/kb
make_kernel_bundle "$KB"
cc -static -O2 -Wall -Wextra -Werror -o "$TMP/app-bin" "$ROOT/tests/e2e/app.c" 2>"$TMP/cc.log" ||
	not_ok "compile the test app" "$(cat "$TMP/cc.log")"
APP_CMD="[\"report\", \"$APP_PORT\", \"$APP_CODE\"]" make_app_image "$TMP/app" v1 "$TMP/app-bin"
cat >"$TMP/enclaver.yaml" <<EOF
version: v1
name: e2e
target: e2e:enclave
sources:
  app: oci:$TMP/app:v1
signature:
  certificate: $TESTDATA/eif/signing_cert.pem
  key: $TESTDATA/eif/signing_key.pem
EOF
export ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1700000000
check "enclaver build of the sample app (odyn as init, signed)" "$ENCLAVER" build --odyn "$ODYN" \
	--kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/app.eif"
"$ENCLAVER" describe-eif "$TMP/app.eif" >"$TMP/describe.json" 2>"$TMP/describe.err"

export XDG_RUNTIME_DIR=$TMP/run
mkdir -p "$XDG_RUNTIME_DIR"
timeout -k 30 -s INT "$RUN_TIMEOUT" "$PROBE" --eif "$TMP/app.eif" --qemu "$QEMU" --cid 23 --memory-mb 512 \
	--timeout "$BOOT_TIMEOUT" --console "$TMP/console.log" --stream "17000=$TMP/status" \
	--stream "17001=$TMP/log" --parent "$APP_PORT=$TMP/parent" >"$TMP/probe.out" 2>"$TMP/probe.err"
rc=$?
check "the launcher ran the enclave until it stopped (probe exit 0)" test $rc -eq 0
[ $rc -eq 0 ] || echo "# probe: $(cat "$TMP/probe.out" "$TMP/probe.err" | tail -20)"
grep -q '^heartbeat [0-9.]*$' "$TMP/probe.out" && ok "heartbeat answered (odyn's init)" ||
	not_ok "heartbeat answered (odyn's init)" "$(tail -20 "$TMP/console.log")"
check "QEMU exited 0 after odyn powered the enclave off" grep -qx 'qemu-exit 0' "$TMP/probe.out"

if grep -qx 'app: hello from uid 1000 gid 1000 in /app, GREETING=hi' "$TMP/log"; then
	ok "the app's output arrives on the log stream (User, WorkingDir and Env of the image applied)"
else
	not_ok "the app's output arrives on the log stream (User, WorkingDir and Env of the image applied)" \
		"log: $(head -c 1500 "$TMP/log")" "console: $(grep -v '^\[ *[0-9]' "$TMP/console.log" | tail -15)"
fi
check "status stream: running, then the app's exit code" \
	diff <(printf '{"status":"running"}\n{"status":"exited","code":%d}\n' $APP_CODE) "$TMP/status"
check "the enclave reached the parent's port through listen_parent" grep -qx 'report done' "$TMP/parent"
check "the app got the parent's answer" grep -qx 'app: the parent says: ok' "$TMP/log"
for i in 0 1 2 8; do
	want=$(json_get "$TMP/describe.json" "d['Measurements']['PCR$i']")
	got=$(sed -n "s/^app: PCR$i \([0-9a-f]*\)\$/\1/p" "$TMP/log")
	if [ -n "$want" ] && [ "$got" = "$want" ]; then
		ok "PCR$i from /dev/nsm inside equals describe-eif's"
	else
		not_ok "PCR$i from /dev/nsm inside equals describe-eif's" "nsm: $got" "describe-eif: $want"
	fi
done
grep -q Sanitizer "$TMP/probe.err" && not_ok "no sanitizer report" "$(grep -A20 Sanitizer "$TMP/probe.err" | head -40)"
if pgrep -f "$TMP/app.eif" >/dev/null; then not_ok "no process left behind" "$(pgrep -af "$TMP/app.eif")"; else ok "no process left behind"; fi
check "the launcher removed its runtime folder" test -z "$(ls -A "$XDG_RUNTIME_DIR")"

# Figures for docs/emulator.md (no assertions on them).
hb=$(sed -n 's/^heartbeat //p' "$TMP/probe.out")
run=$(sed -n 's/^stream 17000 first-byte //p' "$TMP/probe.out")
echo "# figures: heartbeat after ${hb:-?} s, app status stream first byte at ${run:-?} s (from start)"
done_testing
