#!/usr/bin/env bash
# run-emulate.sh: `enclaver run --emulate` end to end (issue 7): the sample app (tests/e2e/app.c)
# built by `enclaver build` with Debian's kernel bundle and odyn as init, run by the real outer
# side on the emulator launcher. Two boots: one serving app (its output on the host's stdout, an
# ingress request answered, a client connected from the start of the boot held and answered once
# the app listens, 3 s after it starts, with one line each from the host and odyn and no
# 'connection refused' line, egress to an allowed loopback server through odyn and the host, a
# denied one refused by odyn and, when odyn is bypassed, by the host; SIGTERM stops the run with
# 109 and nothing left running) and one app that exits 42 (the exit code propagates).
# Needs ENCLAVER and QEMU.
set -u
: "${QEMU:?QEMU must name a qemu-system-x86_64 with the nitro-enclave machine}"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
source "$ROOT/tests/cli/helpers/build_fixtures.sh"
source "$ROOT/tests/cli/helpers/run_lib.sh" # wait_line, build_app
# TCG is slow and CI machines are shared: generous bounds, never timed assertions.
BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-400}
ODYN=$ROOT/build/release/bin/odyn # static: it runs inside the enclave
export ENCLAVER_QEMU=$QEMU ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1700000000
export XDG_RUNTIME_DIR=$TMP/run ENCLAVER_STATE_DIR=$TMP/state
mkdir -p "$XDG_RUNTIME_DIR" "$ENCLAVER_STATE_DIR"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

KB=$TMP/kb
make_kernel_bundle "$KB"
cc -static -O2 -Wall -Wextra -Werror -o "$TMP/app-bin" "$ROOT/tests/e2e/app.c" 2>"$TMP/cc.log" ||
	not_ok "compile the test app" "$(cat "$TMP/cc.log")"

# Loopback servers on the host (the same program in serve mode): the allowed egress target and
# one the policy denies (reachable, so only the policy can refuse it).
ALLOW_PORT=$(free_port)
DENY_PORT=$(free_port)
"$TMP/app-bin" serve "$ALLOW_PORT" none none >"$TMP/allow-server.log" 2>&1 &
pids+=($!)
"$TMP/app-bin" serve "$DENY_PORT" none none >"$TMP/deny-server.log" 2>&1 &
pids+=($!)

build_app serve "[\"serve\", \"8080\", \"127.0.0.1:$ALLOW_PORT\", \"127.0.0.1:$DENY_PORT\", \"3\"]" \
	"$(printf 'ingress:\n  - listen_port: 8080\negress:\n  allow:\n    - "127.0.0.1:%s"\n' "$ALLOW_PORT")"
build_app exit42 '["report", "5005", "42"]' ""

# ---------------------------------------------------------------- the serving app, then SIGTERM
INGRESS=$(free_port)
"$ENCLAVER" run --emulate --eif "$TMP/serve.eif" --manifest "$TMP/serve.yaml" --memory-mb 512 \
	-p "$INGRESS:8080" >"$TMP/serve.out" 2>"$TMP/serve.err" &
run=$!
pids+=($run)
# A client from the start of the boot (it retries only until the host's listener is bound).
python3 "$ROOT/tests/cli/helpers/early_client.py" "$INGRESS" "$TMP/early.out" "$BOOT_TIMEOUT" &
early=$!
pids+=($early)
wait_line "$TMP/early.out" '^connected' $run
check "an early client connects before the app listens" sh -c "! grep -q 'app: serving' '$TMP/serve.out'"
if wait_line "$TMP/serve.out" '^\[app\] app: egress bypass' $run; then
	ok "enclaver run --emulate: the app's output reaches the host's stdout"
else
	not_ok "enclaver run --emulate: the app's output reaches the host's stdout" "$(tail -20 "$TMP/serve.err")"
fi
answer=$(curl -s --max-time 60 "http://127.0.0.1:$INGRESS/")
check "an ingress request to the host port gets the app's answer" test "$answer" = "hello from the enclave"
wait $early
check "the early client is held through the boot and answered once the app listens" \
	grep -q "hello from the enclave" "$TMP/early.out"
[ -s "$TMP/early.out" ] && grep -q "hello from the enclave" "$TMP/early.out" || echo "# early: $(tail -5 "$TMP/early.out")"
check "no 'connection refused' line during the boot" \
	sh -c "! grep -qi 'connection refused' '$TMP/serve.err' '$TMP/serve.out'"
check "the host says once that it holds connections until the enclave is up" \
	test "$(grep -c "ingress 127.0.0.1:$INGRESS -> enclave port 8080: holding connections until the enclave is up" \
		"$TMP/serve.err")" -eq 1
check "odyn says once that it holds them until the app listens" \
	test "$(grep -c '^\[odyn\] warning: ingress vsock:any:8080 -> tcp:127.0.0.1:8080: holding connections until the app listens' \
		"$TMP/serve.out")" -eq 1
check "egress to the allowed loopback server through odyn and the host: 200" \
	grep -q "^\[app\] app: egress allowed 127.0.0.1:$ALLOW_PORT: HTTP/1.1 200 OK" "$TMP/serve.out"
check "egress to a denied server: odyn refuses it (401)" \
	grep -q "^\[app\] app: egress denied 127.0.0.1:$DENY_PORT: HTTP/1.1 401 " "$TMP/serve.out"
check "odyn bypassed (raw frame to the host's vsock 17002): the host refuses by policy" \
	grep -q "^\[app\] app: egress bypass 127.0.0.1:$DENY_PORT: the host answers {\"Err\".*blocked by egress security policy" \
	"$TMP/serve.out"
check "enclaver ps lists the emulated enclave" grep -q '"Launcher": *"emulator"' <("$ENCLAVER" ps 2>&1)
kill -TERM $run
wait $run
rc=$?
check "SIGTERM stops enclaver run --emulate with 109" test $rc -eq 109
[ $rc -eq 109 ] || echo "# run: $(tail -20 "$TMP/serve.err")"
check "the app itself was asked to stop (its SIGTERM line reached the host)" \
	grep -qx '\[app\] app: SIGTERM: stopping' "$TMP/serve.out"

# ---------------------------------------------------------------- the exit code
timeout -k 30 -s INT 900 "$ENCLAVER" run --emulate --eif "$TMP/exit42.eif" --manifest "$TMP/exit42.yaml" \
	--memory-mb 512 >"$TMP/exit42.out" 2>"$TMP/exit42.err"
rc=$?
check "the app's exit code propagates (42)" test $rc -eq 42
[ $rc -eq 42 ] || echo "# run: $(tail -20 "$TMP/exit42.err")"
check "its last line reached the host" grep -qx '\[app\] app: exiting with 42' "$TMP/exit42.out"

grep -q Sanitizer "$TMP"/*.err && not_ok "no sanitizer report" "$(grep -h -A20 Sanitizer "$TMP"/*.err | head -40)"
if pgrep -f "$TMP/(serve|exit42).eif" >/dev/null; then
	not_ok "no QEMU left behind" "$(pgrep -af "$TMP/(serve|exit42).eif")"
else
	ok "no QEMU left behind"
fi
check "the launcher's runtime folders are gone" test -z "$(ls -A "$XDG_RUNTIME_DIR")"
check "the state folder is empty again" test -z "$(ls "$ENCLAVER_STATE_DIR")"
done_testing
