#!/usr/bin/env bash
# test_odyn_ingress_hold: odyn's ingress while the app is not listening yet (issue 16, item 5).
# A client that connects before the app listens is held and answered once it does (it used to
# be dropped with a warning per connection); the hold logs one line per port; at most 256 are
# held (one more is refused at once) while other ports are served; an app that never listens
# makes odyn give up after --ingress-hold-ms with one line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

# held CLIENTS SOCKET OUT: opens CLIENTS connections to SOCKET at once, sends a GET on each,
# prints "connected" once all are open, then one line per client: "answered" (an HTTP answer) or
# "closed" (end of stream without one); 60 s bound.
held() {
	python3 - "$@" <<'PY'
import socket, sys, select, time
n, path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ss = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX); s.connect(path)
    s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n"); ss.append(s)
with open(out, "a") as f: f.write("connected\n")
got = {s: b"" for s in ss}
done, end = set(), time.monotonic() + 60
while len(done) < n and time.monotonic() < end:
    r, _, _ = select.select([s for s in ss if s not in done], [], [], 1)
    for s in r:
        try: c = s.recv(65536)
        except OSError: c = b""
        if c: got[s] += c
        else: done.add(s)
with open(out, "a") as f:
    for s in ss:
        f.write(("answered" if got[s].startswith(b"HTTP/1.0 200") and b"hello-from-app" in got[s] else
                 "closed" if s in done else "waiting") + "\n")
PY
}

# one_client SOCKET: one more client; "closed" when odyn closes it within 3 s without a byte.
one_client() {
	timeout 10 python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(3)
print("closed" if s.recv(1) == b"" else "data")' "$1"
}

mkdir -p "$TMP/www"
echo hello-from-app >"$TMP/www/hello.txt"
APP_PORT=$(free_port)
"$PEER" echo tcp:127.0.0.1:0 >"$TMP/echo.port" 2>/dev/null &
bg_track $!
wait_for test -s "$TMP/echo.port"

# ---------------------------------------------------------------- early clients are served
# The app listens 2 s after it starts; five clients connect to the ingress port before that.
"$ODYN" --no-console --status "unix:$TMP/st" --log "unix:$TMP/log" --linger-ms 0 \
	--ingress "unix:$TMP/in=tcp:127.0.0.1:$APP_PORT" \
	-- sh -c "sleep 2; exec python3 -m http.server $APP_PORT --bind 127.0.0.1 --directory '$TMP/www'" \
	2>"$TMP/odyn.err" &
op=$!
bg_track $op
wait_for test -S "$TMP/in"
held 5 "$TMP/in" "$TMP/early.out" &
hp=$!
bg_track $hp
wait_for grep -q connected "$TMP/early.out"
check "the clients connected while the app was not listening yet" \
	python3 -c "import socket, sys
try: socket.create_connection(('127.0.0.1', $APP_PORT), timeout=5)
except ConnectionRefusedError: sys.exit(0)
sys.exit(1)"
wait $hp
check "all five early clients are answered once the app listens" test "$(grep -c '^answered$' "$TMP/early.out")" -eq 5
check "odyn logs one line for the port, not one per connection" \
	test "$(grep -c 'holding connections until the app listens' "$TMP/odyn.err")" -eq 1
check "... naming the port and the bounds" \
	grep -q "ingress unix:$TMP/in -> tcp:127.0.0.1:$APP_PORT: holding connections until the app listens (at most 256, for 30 s)" \
	"$TMP/odyn.err"
check "no 'connection refused' line" sh -c "! grep -q 'refused' '$TMP/odyn.err'"
kill -TERM $op
wait $op
check "odyn stops on SIGTERM" sh -c "! kill -0 $op"
check "no sanitizer report" sh -c "! grep -q Sanitizer '$TMP/odyn.err'"

# ---------------------------------------------------------------- bounded, then given up
# An app that never listens: 256 clients are held, one more is refused at once, another port is
# served meanwhile, and after --ingress-hold-ms odyn closes the held ones with one line.
NEVER=$(free_port)
"$ODYN" --no-console --status "unix:$TMP/st2" --log "unix:$TMP/log2" --linger-ms 0 --ingress-hold-ms 4000 \
	--ingress "unix:$TMP/in2=tcp:127.0.0.1:$NEVER" \
	--ingress "unix:$TMP/in3=tcp:127.0.0.1:$(cat "$TMP/echo.port")" \
	-- sh -c 'sleep 600' 2>"$TMP/odyn2.err" &
op2=$!
bg_track $op2
wait_for test -S "$TMP/in3"
held 256 "$TMP/in2" "$TMP/full.out" &
hp=$!
bg_track $hp
wait_for grep -q connected "$TMP/full.out"
wait_for grep -q 'holding connections until the app listens' "$TMP/odyn2.err"
one_client "$TMP/in2" >"$TMP/over.out" 2>&1
check "one over the limit is refused at once" grep -qx closed "$TMP/over.out"
check "... and logged so" grep -q "256 connections already wait to be accepted" "$TMP/odyn2.err"
echo other-port-works | timeout 20 "$PEER" send "unix:$TMP/in3" >"$TMP/in3.out" 2>&1
check "another port is served while 256 are held" grep -qx other-port-works "$TMP/in3.out"
wait $hp
check "after the bound the held clients are closed" test "$(grep -c '^closed$' "$TMP/full.out")" -eq 256
check "odyn gives up with one line" test "$(grep -c 'still refused after 4 s' "$TMP/odyn2.err")" -eq 1
check "one hold line, no per-connection refusal of the held ones" \
	test "$(grep -c 'holding connections' "$TMP/odyn2.err")" -eq 1 -a "$(grep -c 'refused' "$TMP/odyn2.err")" -eq 2
one_client "$TMP/in2" >"$TMP/late.out" 2>&1
check "after giving up, a new client is refused at once" grep -qx closed "$TMP/late.out"
check "... without a line of its own" test "$(grep -c 'refused' "$TMP/odyn2.err")" -eq 2
log_records "$TMP/log2" >"$TMP/log2.out"
check "the hold is an odyn record on the log stream" \
	grep -qa $'^\x1eodyn warning: .*holding connections until the app listens' "$TMP/log2.out"
check "... and so is the give-up" grep -qa $'^\x1eodyn warning: .*still refused after 4 s' "$TMP/log2.out"
kill -TERM $op2
wait $op2
check "no sanitizer report (second odyn)" sh -c "! grep -q Sanitizer '$TMP/odyn2.err'"

done_testing
