#!/usr/bin/env bash
# test_odyn_net: odyn's egress proxy and ingress end to end over unix
# sockets: curl through the proxy to a local HTTP server via the test egress
# host (odyn-peer, which resolves every name to 127.0.0.1), allowed, denied
# and refused cases, CONNECT, keep-alive; ingress with many concurrent
# connections to an echo server.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

# A plain HTTP server with known content.
mkdir -p "$TMP/www"
head -c 100000 /dev/urandom >"$TMP/www/blob"
echo hello-from-origin >"$TMP/www/hello.txt"
python3 -u -m http.server 0 --protocol HTTP/1.1 --bind 127.0.0.1 --directory "$TMP/www" >"$TMP/http.out" 2>"$TMP/http.err" &
bg_track $!
wait_for grep -q "port" "$TMP/http.out"
HP=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$TMP/http.out" | head -n 1)
CLOSED=$(free_port) # nothing listens there

"$PEER" egress-host "unix:$TMP/egress" >/dev/null 2>"$TMP/egress.log" &
bg_track $!
wait_for test -S "$TMP/egress"

PP=$(free_port)
"$ODYN" --no-console --status "unix:$TMP/st" --log "unix:$TMP/log" --linger-ms 0 \
	--egress-host "unix:$TMP/egress" --proxy-port "$PP" \
	--egress-allow allowed.test --egress-allow '**.wild.test' --egress-deny bad.wild.test \
	--egress-allow "127.0.0.1:$HP" --egress-allow "refused.test:$CLOSED" \
	--ingress "unix:$TMP/in=tcp:127.0.0.1:$HP" \
	-- sh -c "echo \"proxy=\$http_proxy\"; while [ ! -e '$TMP/stop' ]; do sleep 0.05; done" &
op=$!
bg_track $op
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $PP))"

X=(curl -s -S --max-time 20 -x "http://127.0.0.1:$PP")
code() { "${X[@]}" -o "$TMP/body" -w '%{http_code}' "$@"; }

# plain HTTP (absolute-form)
check "allowed name: content arrives" cmp <("${X[@]}" "http://allowed.test:$HP/blob") "$TMP/www/blob"
check "allowed by ** pattern" cmp <("${X[@]}" "http://a.b.wild.test:$HP/hello.txt") "$TMP/www/hello.txt"
check "allowed IP with port" cmp <("${X[@]}" "http://127.0.0.1:$HP/hello.txt") "$TMP/www/hello.txt"
check "mixed case and trailing dot" cmp <("${X[@]}" "http://ALLOWED.Test.:$HP/hello.txt") "$TMP/www/hello.txt"
c=$(code "http://denied.test:$HP/hello.txt")
check "unlisted name: 401" test "$c" = 401
check "401 body names the reason" grep -q "denied.test:$HP matches no allow rule" "$TMP/body"
c=$(code "http://bad.wild.test:$HP/hello.txt")
check "deny rule beats ** allow: 401" test "$c" = 401
check "401 body names the deny rule" grep -q 'deny rule "bad.wild.test"' "$TMP/body"
c=$(code "http://127.0.0.1:$CLOSED/")
check "IP allowed only on its port: 401 elsewhere" test "$c" = 401
c=$(code "http://127.1:$HP/hello.txt")
check "legacy address forms are addresses (allowed as 127.0.0.1)" test "$c" = 200
c=$(code "http://refused.test:$CLOSED/")
check "upstream refuses: 503" test "$c" = 503
check "503 body carries the host's error" grep -q "refused.test:$CLOSED" "$TMP/body"
c=$("${X[@]}" -o /dev/null -w '%{http_code}' -d 'some=body' "http://allowed.test:$HP/hello.txt")
check "request with a body is forwarded (server answers 501 to POST)" test "$c" = 501

# keep-alive: two requests to one origin use one tunnel
before=$(grep -c "tunnel to" "$TMP/egress.log")
"${X[@]}" "http://allowed.test:$HP/hello.txt" "http://allowed.test:$HP/hello.txt" >"$TMP/two"
after=$(grep -c "tunnel to" "$TMP/egress.log")
check "keep-alive: both responses" test "$(grep -c hello-from-origin "$TMP/two")" -eq 2
check "keep-alive: one tunnel for two requests" test $((after - before)) -eq 1
"${X[@]}" "http://allowed.test:$HP/hello.txt" "http://x.wild.test:$HP/hello.txt" >"$TMP/two"
check "one proxy connection, two origins" test "$(grep -c hello-from-origin "$TMP/two")" -eq 2

# CONNECT
check "CONNECT to an allowed host" cmp <("${X[@]}" -p "http://x.wild.test:$HP/blob") "$TMP/www/blob"
"${X[@]}" -p -o /dev/null "http://denied.test:$HP/" 2>"$TMP/cerr"
check "CONNECT to a denied host: 401" grep -q "401" "$TMP/cerr"
"${X[@]}" -p -o /dev/null "http://refused.test:$CLOSED/" 2>"$TMP/cerr"
check "CONNECT refused upstream: 503" grep -q "503" "$TMP/cerr"

# garbage and oversized requests
printf 'NOT HTTP\r\n\r\n' | "$PEER" send "tcp:127.0.0.1:$PP" >"$TMP/g" 2>&1
check "garbage request: 400" grep -q "^HTTP/1.1 400" "$TMP/g"
python3 -c "import sys; sys.stdout.write('GET http://allowed.test/ HTTP/1.1\r\nX: ' + 'a'*70000 + '\r\n\r\n')" |
	"$PEER" send "tcp:127.0.0.1:$PP" >"$TMP/g" 2>&1
check "oversized head: 431" grep -q "^HTTP/1.1 431" "$TMP/g"
printf 'GET https://allowed.test/ HTTP/1.1\r\n\r\n' | "$PEER" send "tcp:127.0.0.1:$PP" >"$TMP/g" 2>&1
check "https:// absolute-form: 400" grep -q "^HTTP/1.1 400" "$TMP/g"
ask_open "$PP" "GET http://allowed.test:$HP/hello.txt HTTP/1.1\nHost: allowed.test\n\n" >"$TMP/g"
check "absolute-form with bare LF line ends: 400, not silence" grep -q "^HTTP/1.1 400" "$TMP/g"
check "the 400 says why" grep -q "bare LF line ending" "$TMP/g"
ask_open "$PP" "CONNECT allowed.test:$HP HTTP/1.1\n\n" >"$TMP/g"
check "CONNECT with bare LF line ends: 400, not silence" grep -q "^HTTP/1.1 400" "$TMP/g"
ask_open "$PP" "GET http://allowed.test:$HP/hello.txt HTTP/1.1\r\nHost: allowed.test\n\r\n" >"$TMP/g"
check "one bare LF among CRLFs: 400" grep -q "^HTTP/1.1 400" "$TMP/g"

# odyn's own warnings go on the log stream as `odyn` records (common/logstream.h), bounded: a
# flood of denied requests is answered at full speed, and what exceeds the rate is dropped with a
# count instead of pushing the app's output out of the ring.
python3 - "$PP" "$HP" >"$TMP/flood.out" <<'PY'
import socket, sys, time
t0, codes = time.monotonic(), {}
for i in range(400):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET http://denied%d.test:%s/ HTTP/1.1\r\n\r\n" % (i, sys.argv[2].encode()))
    r = s.recv(100).split(b" ")[1]
    codes[r] = codes.get(r, 0) + 1
    s.close()
print("codes", codes, "seconds", round(time.monotonic() - t0, 1))
PY
check "flood: 400 denied requests all answered 401" grep -q "codes {b'401': 400}" "$TMP/flood.out"
sleep 1.1
"${X[@]}" -o /dev/null "http://denied-after.test:$HP/" # one more warning: the count goes out
python3 - "$TMP/log" >"$TMP/records" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(0.5)
data, end = b"", time.monotonic() + 3
while time.monotonic() < end:
    try:
        c = s.recv(65536)
    except socket.timeout:
        break
    if not c: break
    data += c
sys.stdout.write(data.decode(errors="replace"))
PY
check "the app's output is in the ring, as is" grep -q "^proxy=http://127.0.0.1:$PP" "$TMP/records"
check "a denial is an odyn record on the log stream" \
	grep -qa $'^\x1eodyn warning: egress: blocked by egress security policy: denied0.test' "$TMP/records"
n=$(grep -ca $'^\x1eodyn warning: egress: blocked' "$TMP/records")
check "flood: the records are bounded (64 a second; got $n)" test "$n" -ge 64 -a "$n" -le 256
check "flood: the dropped ones are counted" grep -qaE $'^\x1eodyn warning: [0-9]+ odyn messages dropped' "$TMP/records"

# A record waits (up to 500 ms) for the app to finish its line, so readers that know nothing of
# records see the app's lines whole; an app that never finishes its line does not hold it back.
PP8=$(free_port)
"$ODYN" --no-console --status "unix:$TMP/st8" --log "unix:$TMP/log8" --linger-ms 0 \
	--egress-host "unix:$TMP/egress" --proxy-port "$PP8" --egress-allow allowed.test \
	-- sh -c "printf 'start-'; while [ ! -e '$TMP/go8' ]; do sleep 0.02; done; echo end; printf 'never-ends'; \
	while [ ! -e '$TMP/stop8' ]; do sleep 0.05; done" &
op8=$!
bg_track $op8
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $PP8))"
curl -s -o /dev/null --max-time 20 -x "http://127.0.0.1:$PP8" "http://first.test:$HP/"
touch "$TMP/go8" # the app ends its line and starts one it never ends, likely in one write
sleep 0.3
curl -s -o /dev/null --max-time 20 -x "http://127.0.0.1:$PP8" "http://second.test:$HP/"
sleep 1
log_records "$TMP/log8" >"$TMP/log8.out"
check "a record waits for the end of the app's line: the line stays whole" grep -qax 'start-end' "$TMP/log8.out"
check "... and comes after it" grep -qa $'^\x1eodyn warning: egress: .*first.test' "$TMP/log8.out"
check "an app line that never ends holds no record back" \
	grep -qa $'never-ends\x1eodyn warning: egress: .*second.test' "$TMP/log8.out"
touch "$TMP/stop8"
wait $op8
check "that odyn ends cleanly" test $? -eq 0

# ingress: many concurrent connections through unix -> 127.0.0.1:HP (HTTP GETs)
send_pids=()
for i in $(seq 1 40); do
	printf 'GET /blob HTTP/1.0\r\n\r\n' | "$PEER" send "unix:$TMP/in" >"$TMP/in.$i" 2>&1 &
	send_pids+=($!)
done
for p in "${send_pids[@]}"; do wait "$p"; done
okc=0
for i in $(seq 1 40); do
	tail -c 100000 "$TMP/in.$i" | cmp -s - "$TMP/www/blob" && okc=$((okc + 1))
done
check "ingress: 40 concurrent requests all complete" test $okc -eq 40

# ingress with half-close and back-pressure: 1 MiB each way through odyn to
# an echo server that answers until our EOF, 20 connections at once
"$PEER" echo tcp:127.0.0.1:0 >"$TMP/echo.port" 2>/dev/null &
bg_track $!
wait_for test -s "$TMP/echo.port"
head -c 1048576 /dev/urandom >"$TMP/mib"
"$ODYN" --no-console --status "unix:$TMP/st3" --log "unix:$TMP/log3" --linger-ms 0 \
	--ingress "unix:$TMP/in3=tcp:127.0.0.1:$(cat "$TMP/echo.port")" \
	-- sh -c "while [ ! -e '$TMP/stop3' ]; do sleep 0.05; done" &
op3=$!
bg_track $op3
send_pids=()
for i in $(seq 1 20); do
	"$PEER" send "unix:$TMP/in3" <"$TMP/mib" >"$TMP/echo.$i" 2>&1 &
	send_pids+=($!)
done
for p in "${send_pids[@]}"; do wait "$p"; done
okc=0
for i in $(seq 1 20); do cmp -s "$TMP/echo.$i" "$TMP/mib" && okc=$((okc + 1)); done
check "ingress: 20 x 1 MiB echoed intact through half-close" test $okc -eq 20
touch "$TMP/stop3"
wait $op3
check "ingress odyn ends cleanly" test $? -eq 0

# The app was told where the proxy is.
"$PEER" read "unix:$TMP/log" >"$TMP/applog" 2>"$TMP/applog.err" &
rp=$!
wait_for grep -q connected "$TMP/applog.err"
touch "$TMP/stop"
wait $rp
check "app sees http_proxy" grep -q "proxy=http://127.0.0.1:$PP" "$TMP/applog"
wait $op
check "odyn ends cleanly" test $? -eq 0

# Host egress endpoint gone: 502
PP2=$(free_port)
"$ODYN" --no-console --status "unix:$TMP/st2" --log "unix:$TMP/log2" --linger-ms 0 --egress-host "unix:$TMP/nothing" \
	--proxy-port "$PP2" --egress-allow allowed.test -- sh -c "while [ ! -e '$TMP/stop2' ]; do sleep 0.05; done" &
op=$!
bg_track $op
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $PP2))"
c=$(curl -s --max-time 20 -x "http://127.0.0.1:$PP2" -o /dev/null -w '%{http_code}' "http://allowed.test:$HP/")
check "egress endpoint unreachable: 502" test "$c" = 502
touch "$TMP/stop2"
wait $op
check "second odyn ends cleanly" test $? -eq 0

# The tunnel's connect to the host's egress endpoint is bounded too: an endpoint that never
# answers it (here a TCP listener whose backlog is full) gets the client a 502 after 10 s, not
# a wait of minutes.
stuck_listener "$TMP/stuckhost.port"
PP7=$(free_port)
"$ODYN" --no-console --status "unix:$TMP/st7" --log "unix:$TMP/log7" --linger-ms 0 \
	--egress-host "tcp:127.0.0.1:$(cat "$TMP/stuckhost.port")" --proxy-port "$PP7" --egress-allow allowed.test \
	-- sh -c "while [ ! -e '$TMP/stop7' ]; do sleep 0.05; done" 2>"$TMP/odyn7.err" &
op7=$!
bg_track $op7
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $PP7))"
c=$(curl -s --max-time 60 -x "http://127.0.0.1:$PP7" -o "$TMP/body7" -w '%{http_code}' "http://allowed.test:$HP/")
check "egress endpoint that never accepts: 502 after the bound" test "$c" = 502
check "... saying so" grep -q "did not answer in time" "$TMP/body7"
touch "$TMP/stop7"
wait $op7
check "third odyn ends cleanly" test $? -eq 0

# ingress to an app slower than its clients (listen backlog 1, never accepting): the
# connects beyond its backlog are non-blocking and refused after --ingress-connect-ms,
# while another ingress port and SIGTERM are served meanwhile (a blocking connect froze
# every service of odyn for up to two minutes).
python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(600)' >"$TMP/stuck.port" &
bg_track $!
wait_for test -s "$TMP/stuck.port"
"$ODYN" --no-console --status "unix:$TMP/st5" --log "unix:$TMP/log5" --linger-ms 0 --ingress-connect-ms 1500 \
	--ingress "unix:$TMP/in5=tcp:127.0.0.1:$(cat "$TMP/stuck.port")" \
	--ingress "unix:$TMP/in6=tcp:127.0.0.1:$(cat "$TMP/echo.port")" \
	-- sh -c 'sleep 600' 2>"$TMP/odyn5.err" &
op5=$!
bg_track $op5
wait_for test -S "$TMP/in6"
# Six clients on the stuck port; the script reports how many odyn closed (refused).
python3 -c 'import socket, sys, time, select
ss = []
for _ in range(6):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); ss.append(s)
print("ready", flush=True)
closed, end = set(), time.monotonic() + 60
while len(closed) < 4 and time.monotonic() < end:
    r, _, _ = select.select([s for s in ss if s not in closed], [], [], 1)
    for s in r:
        if s.recv(1) == b"": closed.add(s)
print("closed", len(closed), flush=True)' "$TMP/in5" >"$TMP/stuck.out" &
bg_track $!
wait_for grep -q ready "$TMP/stuck.out"
echo other-port-works | timeout 20 "$PEER" send "unix:$TMP/in6" >"$TMP/in6.out" 2>&1
check "ingress: another port is served while the app does not accept" grep -qx other-port-works "$TMP/in6.out"
wait_for grep -q closed "$TMP/stuck.out"
check "ingress: clients the app does not take are refused after the bound" grep -qx "closed 4" "$TMP/stuck.out"
check "ingress: the refusal is logged with the bound" grep -q "not accepted within 1500 ms" "$TMP/odyn5.err"
log_records "$TMP/log5" >"$TMP/log5.out"
check "ingress: the refusal is an odyn record on the log stream too" \
	grep -qa $'^\x1eodyn warning: .*not accepted within 1500 ms' "$TMP/log5.out"
kill -TERM $op5
wait_for sh -c "! kill -0 $op5"
check "ingress: odyn stops on SIGTERM" sh -c "! kill -0 $op5"
check "ingress: odyn logs no sanitizer report" sh -c "! grep -q Sanitizer '$TMP/odyn5.err'"

done_testing
