#!/usr/bin/env bash
# bench-odyn.sh: odyn's relay figures, printed, never asserted: throughput of
# the ingress path (unix socket -> odyn -> 127.0.0.1 echo server and back)
# next to socat doing the same relay in the same run; the egress path (app ->
# odyn's proxy, CONNECT -> the host's egress endpoint over a unix socket ->
# echo server): throughput, round-trip latency and connection rate next to
# socat relaying TCP to the same server; odyn's resident memory with 10,000
# idle ingress connections. Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
ODYN=build/release/bin/odyn
PEER=build/release/helpers/odyn-peer
[ -x "$ODYN" ] && [ -x "$PEER" ] || { echo "build first: make VARIANT=release unit-tests" >&2; exit 1; }
T=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
# Two descriptors per relayed connection: 10,000 need more than the usual 20,000.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

"$PEER" echo tcp:127.0.0.1:0 >"$T/port" &
pids+=($!)
while [ ! -s "$T/port" ]; do sleep 0.05; done
EP=$(cat "$T/port")
"$ODYN" --no-console --status "unix:$T/st" --log "unix:$T/log" --linger-ms 0 \
	--ingress "unix:$T/odyn=tcp:127.0.0.1:$EP" -- sh -c "while [ ! -e '$T/stop' ]; do sleep 0.2; done" &
odyn_pid=$!
pids+=($odyn_pid)
if command -v socat >/dev/null; then
	socat "UNIX-LISTEN:$T/socat,fork" "TCP:127.0.0.1:$EP" &
	pids+=($!)
fi
while [ ! -S "$T/odyn" ]; do sleep 0.05; done
[ -z "$(command -v socat)" ] || while [ ! -S "$T/socat" ]; do sleep 0.05; done

MB=${BENCH_MB:-256}
through() { # through SOCKET: MB/s for MB bytes there and back
	local t0 t1
	t0=$(date +%s.%N)
	head -c $((MB * 1024 * 1024)) /dev/zero | "$PEER" send "unix:$1" | wc -c >"$T/n"
	t1=$(date +%s.%N)
	[ "$(cat "$T/n")" -eq $((MB * 1024 * 1024)) ] || echo "  (short echo: $(cat "$T/n") bytes)"
	python3 -c "print(f'{$MB / ($t1 - $t0):.0f}')"
}
echo "ingress relay, ${MB} MiB echoed through the relay (both directions):"
echo "  odyn:  $(through "$T/odyn") MiB/s"
if [ -S "$T/socat" ]; then echo "  socat: $(through "$T/socat") MiB/s"; else echo "  socat: not installed"; fi

# Egress: odyn's HTTP proxy tunnels (CONNECT) through the host side (odyn-peer's egress-host, the
# test stand-in for enclaver run's endpoint) to the echo server.
"$PEER" egress-host "unix:$T/egress" >/dev/null 2>&1 &
pids+=($!)
while [ ! -S "$T/egress" ]; do sleep 0.05; done
PP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ODYN" --no-console --status "unix:$T/st2" --log "unix:$T/log2" --linger-ms 0 \
	--egress-host "unix:$T/egress" --proxy-port "$PP" --egress-allow "127.0.0.1:$EP" \
	-- sh -c "while [ ! -e '$T/stop' ]; do sleep 0.2; done" &
pids+=($!)
SP=
if command -v socat >/dev/null; then
	SP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	socat "TCP-LISTEN:$SP,bind=127.0.0.1,fork,reuseaddr" "TCP:127.0.0.1:$EP" &
	pids+=($!)
fi
cat >"$T/egress.py" <<'PY'
import socket, statistics, sys, threading, time
port, target, mb = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def conn():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if target != "-":
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("proxy closed")
            head += chunk
        if b" 200 " not in head.split(b"\r\n")[0]:
            raise SystemExit(head.split(b"\r\n")[0].decode())
    return s
# throughput: MB echoed both ways at once
s = conn()
total = mb << 20
got = 0
def reader():
    global got
    while got < total:
        n = len(s.recv(1 << 16))
        if n == 0:
            break
        got += n
t = threading.Thread(target=reader)
t0 = time.monotonic(); t.start()
block = b"\0" * (1 << 16)
for _ in range(total >> 16):
    s.sendall(block)
t.join(); t1 = time.monotonic(); s.close()
# latency: 1000 round trips of 64 bytes on one connection
s = conn(); rtt = []
for _ in range(1000):
    a = time.monotonic(); s.sendall(b"x" * 64); n = 0
    while n < 64:
        n += len(s.recv(64 - n))
    rtt.append(time.monotonic() - a)
s.close()
# connection rate: 200 connections opened, one round trip each, closed
c0 = time.monotonic()
for _ in range(200):
    s = conn(); s.sendall(b"y"); s.recv(1); s.close()
c1 = time.monotonic()
print(f"{mb / (t1 - t0):.0f} MiB/s, round trip median {statistics.median(rtt) * 1e6:.0f} us, {200 / (c1 - c0):.0f} connections/s")
PY
while ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $PP))" 2>/dev/null; do sleep 0.05; done
echo "egress path, ${MB} MiB echoed (both directions), 64-byte round trips, new connections:"
echo "  odyn (proxy CONNECT -> host endpoint): $(python3 "$T/egress.py" "$PP" "127.0.0.1:$EP" "$MB")"
if [ -n "$SP" ]; then
	echo "  socat (TCP relay):                     $(python3 "$T/egress.py" "$SP" - "$MB")"
else
	echo "  socat: not installed"
fi

rss() { awk '/VmRSS/ {print $2}' "/proc/$odyn_pid/status"; }
before=$(rss)
# 10,000 when the descriptor limit allows (two per connection inside odyn).
N=$(( $(ulimit -n) / 2 - 100 ))
[ "$N" -gt 10000 ] && N=10000
python3 - "$T/odyn" "$N" <<'PY' &
import socket, sys, time
conns = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    conns.append(s)
time.sleep(2)  # let odyn accept and connect them all
open(sys.argv[1] + ".ready", "w").close()
time.sleep(5)
PY
pypid=$!
while [ ! -e "$T/odyn.ready" ]; do sleep 0.1; done
after=$(rss)
wait $pypid
echo "$N idle ingress connections: odyn RSS ${before} KiB before, ${after} KiB with them open"
touch "$T/stop"
