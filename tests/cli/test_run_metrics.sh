#!/usr/bin/env bash
# test_run_metrics: `enclaver run --metrics` against the real odyn (the test-only local launcher,
# whose boot blocks the caller for ENCLAVER_LOCAL_BOOT_MS as a real launcher's does): /livez and
# /healthz through the boot, the app's run, its exit and restart; /metrics checked by promtool
# with the counters moved (ingress bytes, egress allowed and denied by rule, restarts, last exit);
# the server's answers to bad, oversized, slow and too many clients; bad ADDR values.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

use_local_launcher
unset ENCLAVER_LOCAL_BOOT_MS
PROBE="python3 $ROOT/tests/cli/helpers/http_probe.py"

standin_eif "$TMP/app.eif"
EIF=$TMP/app.eif

# --- ADDR values refused before anything starts (usage errors name the value)
for bad in nope 127.0.0.1 ":" ":99999" "1.2.3.4.5:80" "example.com:80"; do
	"$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/none.yaml" --metrics "$bad" >/dev/null 2>"$TMP/bad.err"
	rc=$?
	check "--metrics '$bad' is a usage error (2) naming it" sh -c "[ $rc -eq 2 ] && grep -qF -- '--metrics $bad' '$TMP/bad.err'"
done
# A port in use fails the run before the enclave starts.
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' >"$TMP/busy.port" &
bg_track $!
wait_for test -s "$TMP/busy.port"
BUSY=$(cat "$TMP/busy.port")
printf 'version: v1\nname: plain\ntarget: "oci:x:y"\nsources:\n  app: "oci:x:y"\n' >"$TMP/plain.yaml"
ENCLAVER_LOCAL_CMD='touch '"$TMP"'/started' timeout 60 "$RUNL" run --launcher local --eif "$EIF" \
	--manifest "$TMP/plain.yaml" --metrics "127.0.0.1:$BUSY" >/dev/null 2>"$TMP/busy.err"
rc=$?
check "--metrics on a port in use: the run fails (108) saying so" \
	sh -c "[ $rc -eq 108 ] && grep -q -- '--metrics 127.0.0.1:$BUSY' '$TMP/busy.err'"
check "... before the app started" test ! -e "$TMP/started"

# --- one run: boot, running, exit 3, restart, SIGTERM
EP=$(free_port) # the app's ingress port inside
AP=$(free_port) # an egress target the policy allows
DP=$(free_port) # one it denies
HP=$(free_port) # the host's ingress port
MP=$(free_port) # metrics
cat >"$TMP/m.yaml" <<YAML
version: v1
name: web
target: "oci:x:y"
sources:
  app: "oci:x:y"
ingress:
  - listen_port: $EP
egress:
  proxy_port: $(free_port)
  allow:
    - 127.0.0.1
  deny:
    - "127.0.0.1:$DP"
restart:
  policy: on-failure
  max_restarts: 1
  backoff_ms: 4000
YAML
python3 -m http.server "$AP" --bind 127.0.0.1 --directory "$TMP" >/dev/null 2>&1 &
bg_track $!
python3 -m http.server "$DP" --bind 127.0.0.1 --directory "$TMP" >/dev/null 2>&1 &
bg_track $!
mkdir -p "$TMP/www" && echo "from-the-enclave" >"$TMP/www/index.html"
wait_for curl -sf --max-time 30 "http://127.0.0.1:$AP/"
wait_for curl -sf --max-time 30 "http://127.0.0.1:$DP/"
# The first start serves, makes one allowed and one denied egress request, and exits 3 when told;
# the restart serves until SIGTERM.
cat >"$TMP/app.sh" <<APP
python3 -m http.server $EP --bind 127.0.0.1 --directory "$TMP/www" >/dev/null 2>&1 &
srv=\$!
trap 'kill \$srv; exit 0' TERM
if [ ! -e "$TMP/first-done" ]; then
	curl -s --noproxy '' -o /dev/null "http://127.0.0.1:$AP/"
	curl -s --noproxy '' -o /dev/null "http://127.0.0.1:$DP/"
	touch "$TMP/first-done"
	while [ ! -e "$TMP/exit-now" ]; do sleep 0.05; done
	kill \$srv
	exit 3
fi
touch "$TMP/second-up"
while :; do sleep 0.05; done
APP
mkdir -p "$TMP/sock"
ENCLAVER_LOCAL_BOOT_MS=4000 ENCLAVER_LOCAL_DIR=$TMP/sock ENCLAVER_LOCAL_MANIFEST=$TMP/m.yaml \
	ENCLAVER_LOCAL_CMD="sh $TMP/app.sh" "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" \
	-p "$HP:$EP" --metrics ":$MP" >"$TMP/w.out" 2>"$TMP/w.err" &
wp=$!
bg_track $wp
M="http://127.0.0.1:$MP"
wait_for curl -s --max-time 5 -o /dev/null "$M/livez"
code() { curl -s --max-time 10 -o "$TMP/body" -w '%{http_code}' "$@"; }
# During the (blocking) boot the server answers: live, not ready.
check "during the boot: /livez 200" test "$(code "$M/livez")" = 200
check "during the boot: /healthz 503 (booting)" sh -c "[ $(code "$M/healthz") = 503 ] && grep -q booting '$TMP/body'"
check "during the boot: enclave_state booting" sh -c "curl -s '$M/metrics' | grep -qx 'enclaver_enclave_state{state=\"booting\"} 1'"
check "the boot was still under way (the app had not started)" test ! -e "$TMP/first-done"
wait_for test -e "$TMP/first-done"
wait_for sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' '$M/healthz') = 200 ]"
check "the app running: /healthz 200" test "$(code "$M/healthz")" = 200
wait_for curl -sf --max-time 30 "http://127.0.0.1:$HP/index.html"
check "an ingress request is answered" test "$(curl -s --max-time 30 "http://127.0.0.1:$HP/index.html")" = from-the-enclave
# odyn sends its counters at most once a second.
wait_for sh -c "curl -s '$M/metrics' | grep -q 'result=\"denied\"} 1'"
curl -s -D "$TMP/metrics.head" -o "$TMP/metrics.txt" "$M/metrics"
check "/metrics: Content-Type text/plain; version=0.0.4" grep -qi '^Content-Type: text/plain; version=0.0.4' "$TMP/metrics.head"
check "promtool check metrics accepts the page" sh -c "promtool check metrics <'$TMP/metrics.txt' >'$TMP/promtool.out' 2>&1"
[ -s "$TMP/promtool.out" ] && echo "# promtool: $(head -5 "$TMP/promtool.out")"
check "egress allowed, by rule" grep -qx 'enclaver_egress_connections_total{rule="127.0.0.1",result="allowed"} 1' "$TMP/metrics.txt"
check "egress denied, by rule" grep -qx "enclaver_egress_connections_total{rule=\"127.0.0.1:$DP\",result=\"denied\"} 1" "$TMP/metrics.txt"
bytes() { sed -n "s/^enclaver_ingress_bytes_total{port=\"$EP\",direction=\"$1\"} //p" "$TMP/metrics.txt"; }
check "ingress bytes in (the request) counted for the enclave's port" test "$(bytes in)" -gt 30
check "ingress bytes out (the answer) counted" test "$(bytes out)" -gt 100
check "every family has HELP and TYPE, names enclaver_*, counters *_total" python3 - "$TMP/metrics.txt" <<'PY'
import re, sys
helps, types = {}, {}
for line in open(sys.argv[1]):
    if line.startswith("# HELP "): helps[line.split()[2]] = 1
    elif line.startswith("# TYPE "): types[line.split()[2]] = line.split()[3]
    elif line.strip():
        name = re.match(r"[a-z_]+", line).group(0)
        assert name in types and name in helps, name
for n, t in types.items():
    assert n.startswith("enclaver_"), n
    assert (t == "counter") == n.endswith("_total"), n
assert {"enclaver_enclave_state", "enclaver_enclave_uptime_seconds", "enclaver_enclave_heartbeat_seconds",
        "enclaver_app_restarts_total", "enclaver_app_last_exit_code", "enclaver_ingress_bytes_total",
        "enclaver_egress_connections_total", "enclaver_kms_requests_total"} <= set(types), types
PY

# --- the server under bad input
check "POST /metrics: 405" test "$($PROBE "$MP" raw "$(printf 'POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n' | xxd -p | tr -d '\n')")" = "HTTP/1.1 405 Method Not Allowed"
check "405 says Allow: GET" sh -c "curl -s -D - -o /dev/null -X DELETE '$M/healthz' | grep -qi '^Allow: GET'"
check "an unknown path: 404" test "$(code "$M/nope")" = 404
check "a malformed request line: 400" test "$($PROBE "$MP" raw "$(printf 'GARBAGE\r\n\r\n' | xxd -p)")" = "HTTP/1.1 400 Bad Request"
check "a bare LF: 400" test "$($PROBE "$MP" raw "$(printf 'GET /metrics HTTP/1.1\nHost: x\n\n' | xxd -p)")" = "HTTP/1.1 400 Bad Request"
check "a 70 KB header: 431" test "$($PROBE "$MP" head 70000)" = "HTTP/1.1 431 Request Header Fields Too Large"
check "a query string is ignored: /healthz?x 200" test "$(code "$M/healthz?verbose=1")" = 200
out=$($PROBE "$MP" slow)
check "a head never finished is closed after the 5 s bound ($out)" sh -c "echo '$out' | grep -Eq '^closed after ([4-9]|1[0-5]) s$'"
$PROBE "$MP" flood 16 >"$TMP/flood.out"
check "16 idle clients: a 17th is shed at once" grep -qx "extra: EOF" "$TMP/flood.out"
check "... and once they are gone the server answers again" grep -qx "after: HTTP/1.1 200 OK" "$TMP/flood.out"

# --- the app exits 3: not ready, then the restart
touch "$TMP/exit-now"
wait_for sh -c "curl -s '$M/metrics' | grep -qx 'enclaver_app_last_exit_code 3'"
check "after the app's exit: /healthz 503 (exited)" sh -c "[ $(code "$M/healthz") = 503 ] && grep -q exited '$TMP/body'"
check "after the app's exit: /livez still 200" test "$(code "$M/livez")" = 200
check "after the app's exit: enclave_state exited" sh -c "curl -s '$M/metrics' | grep -qx 'enclaver_enclave_state{state=\"exited\"} 1'"
wait_for test -e "$TMP/second-up"
wait_for sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' '$M/healthz') = 200 ]"
check "the restarted app: /healthz 200 again" test "$(code "$M/healthz")" = 200
check "the restart is counted" sh -c "curl -s '$M/metrics' | grep -qx 'enclaver_app_restarts_total 1'"
curl -s "$M/metrics" >"$TMP/metrics2.txt"
check "counters never go back after the restart (egress allowed still 1)" \
	grep -qx 'enclaver_egress_connections_total{rule="127.0.0.1",result="allowed"} 1' "$TMP/metrics2.txt"
check "promtool accepts the page after the restart" sh -c "promtool check metrics <'$TMP/metrics2.txt' >/dev/null 2>&1"
kill -TERM $wp
wait $wp
rc=$?
check "SIGTERM ends the run with 109" test $rc -eq 109
check "the metrics port is closed with the run" sh -c "! curl -s --max-time 5 '$M/livez' >/dev/null"
grep -q Sanitizer "$TMP"/*.err && not_ok "no sanitizer report" "$(grep -h -A20 Sanitizer "$TMP"/*.err | head -40)"
done_testing
