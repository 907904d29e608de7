#!/usr/bin/env bash
# bench-run.sh: the whole emulated enclave path, figures only (nothing asserted): boot time to
# the heartbeat and to the app's start, then ingress and egress throughput and connection rate
# through `enclaver run --emulate` (the outer side's ingress listener and egress endpoint, the
# vsock backend, QEMU's virtio-vsock, odyn's relay and proxy, the app) next to the same traffic
# over a direct loopback connection to the same server program, in the same run.
# One boot. Needs a release build, QEMU (scripts/build-qemu.sh) and Debian's kernel package
# (scripts/kernel-bundle-debian.sh); without QEMU it says so and exits 0.
#   BENCH_RUN_MB (default 64): bytes per throughput figure; BENCH_RUN_CONNS (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ENCLAVER=$ROOT/build/release/bin/enclaver
ODYN=$ROOT/build/release/bin/odyn
[ -x "$ENCLAVER" ] && [ -x "$ODYN" ] || { echo "build first: make" >&2; exit 1; }
if ! QEMU=$(scripts/build-qemu.sh --check 2>/dev/null); then
	echo "bench-run: no qemu-system-x86_64 with the nitro-enclave machine (scripts/build-qemu.sh): skipped"
	exit 0
fi
MB=${BENCH_RUN_MB:-64}
CONNS=${BENCH_RUN_CONNS:-100}
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-run.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The sample app (tests/e2e/app.c) inside, and the same program on the host as the loopback
# server: the egress target and the direct reference.
scripts/kernel-bundle-debian.sh "$T/kb" >"$T/kb.log" 2>&1 || { cat "$T/kb.log"; exit 1; }
cc -static -O2 -o "$T/app-bin" tests/e2e/app.c
HOST_PORT=$(free_port)   # the host app (egress target, direct reference)
INGRESS_PORT=$(free_port) # host side of the enclave's ingress port 8080
APP_CMD="[\"serve\", \"8080\", \"127.0.0.1:$HOST_PORT\", \"127.0.0.2:$HOST_PORT\"]" \
	python3 testdata/example/make_app_image.py "$T/app" v1 "$T/app-bin" >/dev/null
cat >"$T/enclaver.yaml" <<EOF
version: v1
name: bench
target: bench:enclave
sources:
  app: oci:$T/app:v1
ingress:
  - listen_port: 8080
egress:
  allow:
    - 127.0.0.1
EOF
ENCLAVER_CACHE_DIR=$T/cache "$ENCLAVER" build --odyn "$ODYN" --kernel-bundle "$T/kb" -f "$T/enclaver.yaml" \
	--eif-only "$T/app.eif" >/dev/null

"$T/app-bin" serve "$HOST_PORT" none none >"$T/host-app.log" 2>&1 &
pids+=($!)
export ENCLAVER_QEMU=$QEMU ENCLAVER_STATE_DIR=$T/state
mkdir -p "$ENCLAVER_STATE_DIR"
t_start=$(date +%s.%N)
"$ENCLAVER" -v run --emulate --eif "$T/app.eif" --manifest "$T/enclaver.yaml" --memory-mb 1024 \
	-p "$INGRESS_PORT:8080" >"$T/app.out" 2>"$T/run.log" &
emu=$!
pids+=($emu)

python3 - "$T" "$t_start" "$INGRESS_PORT" "$HOST_PORT" "$MB" "$CONNS" "$emu" <<'PY'
import os, re, socket, sys, time
T, t_start, ingress, host, MB, CONNS, emu = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
N = MB << 20

def alive():
    try:
        os.kill(emu, 0)
        return True
    except OSError:
        return False

# Boot: the heartbeat from the launcher's log, the app's start from its first line on stdout.
hb = running = None
while (hb is None or running is None) and alive():
    m = re.search(r"heartbeat after ([0-9.]+) s", open(T + "/run.log").read())
    hb = float(m.group(1)) if m else None
    if running is None and "app: serving" in open(T + "/app.out").read():
        running = time.time() - t_start
    time.sleep(0.05)
if hb is None or running is None:
    sys.exit("bench-run: the enclave did not boot:\n" + open(T + "/run.log").read()[-2000:])
print(f"boot (TCG): heartbeat {hb:.1f} s after QEMU's start; the app's first output line on the host {running:.1f} s after `enclaver run --emulate` started")

def connect(port):
    for _ in range(600):
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench-run: nothing answers on {port}")

def request(port, line, payload=0):
    """Sends a command line (and payload bytes), returns (seconds, answer bytes count, answer)."""
    t0 = time.time()
    s = connect(port)
    s.sendall(line.encode() + b"\n")
    block = b"x" * 65536
    left = payload
    while left:
        k = min(left, len(block))
        s.sendall(block[:k])
        left -= k
    if payload:
        s.shutdown(socket.SHUT_WR)
    got, head = 0, b""
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got += len(d)
        if len(head) < 200:
            head += d[:200]
    s.close()
    return time.time() - t0, got, head

# The app in the enclave serves once odyn runs it; wait for its first answer.
for _ in range(600):
    if b" 200 " in request(ingress, "GET / HTTP/1.0")[2]:
        break
    time.sleep(0.1)

def mibs(sec):
    return MB / sec

rows = []
def row(name, enclave_s, direct_s, unit):
    if unit == "MiB/s":
        a, b = mibs(enclave_s), mibs(direct_s)
    else:
        a, b = CONNS / enclave_s, CONNS / direct_s
    rows.append((name, a, b, unit))

# Ingress: host -> enclave (SINK) and enclave -> host (SOURCE).
e, _, ans = request(ingress, "SINK", N); d, _, _ = request(host, "SINK", N)
assert ans.strip() == str(N).encode(), ans
row(f"ingress host->enclave, {MB} MiB", e, d, "MiB/s")
e, got, _ = request(ingress, f"SOURCE {N}"); d, got2, _ = request(host, f"SOURCE {N}")
assert got == N and got2 == N, (got, got2)
row(f"ingress enclave->host, {MB} MiB", e, d, "MiB/s")
t0 = time.time()
for _ in range(CONNS):
    _, _, a = request(ingress, "GET / HTTP/1.0")
    assert b" 200 " in a, a
e = time.time() - t0
t0 = time.time()
for _ in range(CONNS):
    request(host, "GET / HTTP/1.0")
d = time.time() - t0
row(f"ingress connections (request + answer each), {CONNS}", e, d, "conn/s")
# Egress: the app sends through odyn's proxy, the vsock backend and the outer side's egress
# endpoint (policy checked) to the host app; the direct figure is the same transfer from a host
# client.
e, _, ans = request(ingress, f"EGRESS 127.0.0.1:{host} {N}"); d, _, _ = request(host, "SINK", N)
assert ans.strip() == str(N).encode(), ans
row(f"egress enclave->host, {MB} MiB", e, d, "MiB/s")
e, _, ans = request(ingress, f"EGRESSCONN 127.0.0.1:{host} {CONNS}")
assert ans.strip() == str(CONNS).encode(), ans
t0 = time.time()
for _ in range(CONNS):
    request(host, "GET / HTTP/1.0")
d = time.time() - t0
row(f"egress connections (CONNECT + request each), {CONNS}", e, d, "conn/s")

print(f"{'path':<52} {'emulated':>10} {'loopback':>10}  ratio")
for name, a, b, unit in rows:
    print(f"{name:<52} {a:>10.1f} {b:>10.1f}  {a / b:.3f}  ({unit})")
PY
kill -TERM $emu 2>/dev/null || true
wait $emu 2>/dev/null || true
grep -E 'vsock: [0-9]+ connections' "$T/run.log" | sed 's/^.*emulator: /backend: /' || true
