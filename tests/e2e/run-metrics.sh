#!/usr/bin/env bash
# run-metrics.sh: `enclaver run --emulate --metrics` end to end: the sample app (tests/e2e/app.c)
# built by `enclaver build` with Debian's kernel bundle and odyn as init, one boot. /healthz is 503
# while QEMU boots the enclave (/livez 200), 200 once odyn reports the app running; an ingress
# request and the app's allowed and denied egress requests move their counters; promtool accepts
# the page; the app exits 3 (ingress command EXIT3) and /healthz is 503 until the manifest's
# restart policy starts it again; SIGTERM ends the run with 109 and nothing left running.
# Needs ENCLAVER, QEMU and promtool.
set -u
: "${QEMU:?QEMU must name a qemu-system-x86_64 with the nitro-enclave machine}"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
source "$ROOT/tests/cli/helpers/build_fixtures.sh"
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
# until_ok CMD...: until CMD succeeds, the run ends, or the boot bound.
until_ok() {
	for _ in $(seq $((BOOT_TIMEOUT * 10))); do
		"$@" && return 0
		kill -0 "$run" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
code() { curl -s --max-time 10 -o "$TMP/body" -w '%{http_code}' "$@"; }
is_code() { [ "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$2")" = "$1" ]; }
scrape_has() { curl -s --max-time 10 "$M/metrics" | grep -qxF -- "$1"; }

KB=$TMP/kb
make_kernel_bundle "$KB"
cc -static -O2 -Wall -Wextra -Werror -o "$TMP/app-bin" "$ROOT/tests/e2e/app.c" 2>"$TMP/cc.log" ||
	not_ok "compile the test app" "$(cat "$TMP/cc.log")"
ALLOW_PORT=$(free_port)
DENY_PORT=$(free_port)
"$TMP/app-bin" serve "$ALLOW_PORT" none none >"$TMP/allow-server.log" 2>&1 &
pids+=($!)
"$TMP/app-bin" serve "$DENY_PORT" none none >"$TMP/deny-server.log" 2>&1 &
pids+=($!)

APP_CMD="[\"serve\", \"8080\", \"127.0.0.1:$ALLOW_PORT\", \"127.0.0.1:$DENY_PORT\"]" \
	make_app_image "$TMP/img" v1 "$TMP/app-bin"
cat >"$TMP/m.yaml" <<YAML
version: v1
name: metrics
target: metrics:enclave
sources:
  app: oci:$TMP/img:v1
ingress:
  - listen_port: 8080
egress:
  allow:
    - "127.0.0.1:$ALLOW_PORT"
restart:
  policy: on-failure
  max_restarts: 1
  backoff_ms: 15000
YAML
check "enclaver build of the app" "$ENCLAVER" build --odyn "$ODYN" --kernel-bundle "$KB" -f "$TMP/m.yaml" \
	--eif-only "$TMP/app.eif"

INGRESS=$(free_port)
MP=$(free_port)
M="http://127.0.0.1:$MP"
"$ENCLAVER" run --emulate --eif "$TMP/app.eif" --manifest "$TMP/m.yaml" --memory-mb 512 -p "$INGRESS:8080" \
	--metrics "127.0.0.1:$MP" >"$TMP/run.out" 2>"$TMP/run.err" &
run=$!
pids+=($run)
until_ok curl -s --max-time 5 -o /dev/null "$M/livez"
check "during the boot: /livez 200" test "$(code "$M/livez")" = 200
check "during the boot: /healthz 503 (booting)" sh -c "[ $(code "$M/healthz") = 503 ] && grep -q booting '$TMP/body'"
check "... while the app has not started yet" sh -c "! grep -q 'app: serving' '$TMP/run.out'"
if until_ok is_code 200 "$M/healthz"; then
	ok "once odyn reports the app running: /healthz 200"
else
	not_ok "once odyn reports the app running: /healthz 200" "$(tail -20 "$TMP/run.err")"
fi
until_ok grep -q '^\[app\] app: egress bypass' "$TMP/run.out"
check "an ingress request gets the app's answer" \
	test "$(curl -s --max-time 60 "http://127.0.0.1:$INGRESS/")" = "hello from the enclave"
until_ok scrape_has "enclaver_egress_connections_total{rule=\"(default)\",result=\"denied\"} 1"
curl -s "$M/metrics" >"$TMP/metrics.txt"
check "egress allowed, by rule" grep -qxF "enclaver_egress_connections_total{rule=\"127.0.0.1:$ALLOW_PORT\",result=\"allowed\"} 1" "$TMP/metrics.txt"
check "egress denied (no rule matched)" grep -qxF 'enclaver_egress_connections_total{rule="(default)",result="denied"} 1' "$TMP/metrics.txt"
bytes() { sed -n "s/^enclaver_ingress_bytes_total{port=\"8080\",direction=\"$1\"} //p" "$TMP/metrics.txt"; }
check "ingress bytes each way counted for port 8080 ($(bytes in) in, $(bytes out) out)" \
	sh -c "[ '$(bytes in)' -gt 0 ] && [ '$(bytes out)' -gt 20 ]"
check "the heartbeat's time is reported" grep -q '^enclaver_enclave_heartbeat_seconds [0-9]' "$TMP/metrics.txt"
if promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1; then
	ok "promtool check metrics accepts the live enclave's page"
else
	not_ok "promtool check metrics accepts the live enclave's page" "$(cat "$TMP/promtool.out")"
fi

# The app exits 3; odyn restarts it 15 s later.
echo EXIT3 | timeout 30 python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),30); s.sendall(b"EXIT3\n"); s.shutdown(1); s.recv(1)' "$INGRESS"
if until_ok scrape_has "enclaver_app_last_exit_code 3"; then
	ok "the app's exit code is reported (3)"
else
	not_ok "the app's exit code is reported (3)" "$(tail -20 "$TMP/run.err")"
fi
check "after the app's exit: /healthz 503 (exited)" sh -c "[ $(code "$M/healthz") = 503 ] && grep -q exited '$TMP/body'"
check "after the app's exit: /livez 200" test "$(code "$M/livez")" = 200
until_ok is_code 200 "$M/healthz"
check "the restarted app: /healthz 200" test "$(code "$M/healthz")" = 200
check "the restart is counted" scrape_has "enclaver_app_restarts_total 1"
kill -TERM $run
wait $run
rc=$?
check "SIGTERM stops the run with 109" test $rc -eq 109
check "the metrics port is closed with the run" sh -c "! curl -s --max-time 5 '$M/livez' >/dev/null"
grep -q Sanitizer "$TMP"/*.err && not_ok "no sanitizer report" "$(grep -h -A20 Sanitizer "$TMP"/*.err | head -40)"
if pgrep -f "$TMP/app.eif" >/dev/null; then
	not_ok "no QEMU left behind" "$(pgrep -af "$TMP/app.eif")"
else
	ok "no QEMU left behind"
fi
check "the state folder is empty again" test -z "$(ls "$ENCLAVER_STATE_DIR")"
done_testing
