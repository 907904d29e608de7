#!/usr/bin/env bash
# bench-odyn.sh: odyn's relay figures, printed, never asserted: throughput of
# the ingress path (unix socket -> odyn -> 127.0.0.1 echo server and back)
# next to socat doing the same relay in the same run, and odyn's resident
# memory with 10,000 idle ingress connections. Needs a release build.
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
