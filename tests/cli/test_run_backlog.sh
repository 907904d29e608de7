#!/usr/bin/env bash
# test_run_backlog: the host side of `enclaver run` while the enclave does not accept (issue 14,
# item 1): odyn, run as a host process by the test-only local launcher, is stopped with SIGSTOP
# and its ingress listener's backlog filled through the host port; the host refuses what the
# enclave cannot take and keeps serving its egress endpoint (a blocking connect to the enclave
# used to hold the host's whole event loop), and the run still stops on SIGTERM.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

RUNL=$(dirname "$ENCLAVER")/../helpers/enclaver-local
[ -x "$RUNL" ] || { echo "missing $RUNL"; exit 1; }
export ENCLAVER_STATE_DIR=$TMP/state ENCLAVER_LOCAL_ODYN=$ODYN
unset ENCLAVER_LOCAL_MANIFEST ENCLAVER_LOCAL_DIR

head -c 70000 /dev/urandom >"$TMP/kernel"
head -c 50000 /dev/urandom >"$TMP/rd1"
"$ENCLAVER" eif build --kernel "$TMP/kernel" --cmdline "console=ttyS0" --ramdisk "$TMP/rd1" --ramdisk "$TMP/rd1" \
	--output "$TMP/app.eif" >/dev/null 2>&1
EP=$(free_port)
DP=$(free_port)
cat >"$TMP/m.yaml" <<YAML
version: v1
name: backlog
target: "oci:$TMP/nowhere:latest"
sources:
  app: "oci:$TMP/nowhere:app"
ingress:
  - listen_port: $EP
egress:
  allow:
    - 127.0.0.1
  deny:
    - "127.0.0.1:$DP"
YAML
HP=$(free_port)
mkdir -p "$TMP/sock"
ENCLAVER_LOCAL_DIR=$TMP/sock ENCLAVER_LOCAL_MANIFEST=$TMP/m.yaml ENCLAVER_LOCAL_CMD="touch $TMP/app-ready; exec sleep 600" \
	"$RUNL" run --launcher local --eif "$TMP/app.eif" --manifest "$TMP/m.yaml" -p "$HP:$EP" >"$TMP/w.out" 2>"$TMP/w.err" &
wp=$!
bg_track $wp
wait_for test -e "$TMP/app-ready"
wait_for test -S "$TMP/sock/guest-$EP.sock"
# odyn is the run's child that listens on the guest sockets.
OD=$(pgrep -f "$TMP/[s]ock/guest-17000" | head -n 1)
check "odyn found" test -n "$OD"
kill -STOP "$OD"

# 1,100 clients on the host port: odyn's listener takes 1,024 waiting connections, no more.
python3 -c 'import socket, sys, time, os
ss = []
for _ in range(1100):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); ss.append(s)
print("ready", flush=True)
while not os.path.exists(sys.argv[2]): time.sleep(0.05)' "$HP" "$TMP/release" >"$TMP/clients.out" 2>&1 &
cp=$!
bg_track $cp
wait_for grep -q ready "$TMP/clients.out"

# The host's egress endpoint still answers (a raw frame for a denied target).
python3 - "$TMP/sock/parent-17002.sock" "{\"host\":\"127.0.0.1\",\"port\":$DP}" >"$TMP/frame.out" 2>&1 <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(sys.argv[1])
body = sys.argv[2].encode()
s.sendall(struct.pack("<H", len(body)) + body)
b = b""
while len(b) < 2: b += s.recv(2 - len(b))
n = struct.unpack("<H", b)[0]
r = b""
while len(r) < n: r += s.recv(n - len(r))
print(r.decode())
PY
check "host: the egress endpoint answers while the enclave accepts nothing" grep -q "matches deny rule" "$TMP/frame.out"
wait_for grep -q "enclave port $EP: .*Resource temporarily unavailable" "$TMP/w.err"
check "host: a client the enclave cannot take is refused and logged" \
	grep -q "enclave port $EP: .*Resource temporarily unavailable" "$TMP/w.err"

touch "$TMP/release"
kill -CONT "$OD"
kill -TERM $wp
wait_for bash -c "! kill -0 $wp 2>/dev/null"
check "host: the run ends on SIGTERM" bash -c "! kill -0 $wp 2>/dev/null"
check "no sanitizer report" bash -c "! grep -q Sanitizer '$TMP/w.err'"

done_testing
