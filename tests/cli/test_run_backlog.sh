#!/usr/bin/env bash
# test_run_backlog: the host side of `enclaver run` while the enclave does not accept (issue 14,
# item 1): odyn, run as a host process by the test-only local launcher, is stopped with SIGSTOP
# and its ingress listener's backlog filled through the host port; the host refuses what the
# enclave cannot take and keeps serving its egress endpoint (a blocking connect to the enclave
# used to hold the host's whole event loop), and the run still stops on SIGTERM.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

use_local_launcher

standin_eif "$TMP/app.eif"
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
# odyn is the run's child that listens on the guest sockets (waited for: on a loaded machine
# under ASan one look was seen to miss it).
wait_for pgrep -f "$TMP/[s]ock/guest-17000"
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
frame "$TMP/sock/parent-17002.sock" "{\"host\":\"127.0.0.1\",\"port\":$DP}" >"$TMP/frame.out" 2>&1
check "host: the egress endpoint answers while the enclave accepts nothing" grep -q "matches deny rule" "$TMP/frame.out"
wait_for grep -q "enclave port $EP: .*Resource temporarily unavailable" "$TMP/w.err"
check "host: a client the enclave cannot take is refused and logged" \
	grep -q "enclave port $EP: .*Resource temporarily unavailable" "$TMP/w.err"

touch "$TMP/release"
kill -CONT "$OD"

# A target that never answers the connect (listen backlog 1, full, never accepting): the host
# answers Err 110 (ETIMEDOUT) after its 10 s bound instead of holding the request for the
# kernel's two minutes of SYN retries.
stuck_listener "$TMP/stuck.port" 120
frame "$TMP/sock/parent-17002.sock" "{\"host\":\"127.0.0.1\",\"port\":$(cat "$TMP/stuck.port")}" >"$TMP/stuck.frame" 2>&1
check "host egress: a target that never answers the connect gets Err 110 (the bound)" python3 -c '
import json,sys
r=json.loads(open(sys.argv[1]).readline()); assert r["Err"]["os_code"]==110, r' "$TMP/stuck.frame"
kill -TERM $wp
wait_for bash -c "! kill -0 $wp 2>/dev/null"
check "host: the run ends on SIGTERM" bash -c "! kill -0 $wp 2>/dev/null"
check "no sanitizer report" bash -c "! grep -q Sanitizer '$TMP/w.err'"

# The status and log streams connect without blocking too: a stand-in for odyn whose stream
# listeners are full (listen(0) with one connection waiting, made before the socket takes its
# name) and never accept. The host keeps retrying while its egress endpoint answers, and
# SIGTERM ends the run.
cat >"$TMP/fake-odyn" <<'PY'
#!/usr/bin/env python3
import os, socket, sys, time
args = sys.argv[1:]
keep = []
for opt in ("--status", "--log"):
    path = args[args.index(opt) + 1][len("unix:"):]
    l = socket.socket(socket.AF_UNIX); l.bind(path + ".tmp"); l.listen(0)
    while True:
        c = socket.socket(socket.AF_UNIX); c.setblocking(False)
        try:
            c.connect(path + ".tmp")
        except BlockingIOError:
            break
        keep.append(c)
    keep.append(l)
    os.rename(path + ".tmp", path)
time.sleep(600)
PY
chmod +x "$TMP/fake-odyn"
mkdir -p "$TMP/sock2"
ENCLAVER_LOCAL_ODYN=$TMP/fake-odyn ENCLAVER_LOCAL_DIR=$TMP/sock2 ENCLAVER_LOCAL_MANIFEST=$TMP/m.yaml ENCLAVER_LOCAL_CMD=true \
	"$RUNL" run --launcher local --eif "$TMP/app.eif" --manifest "$TMP/m.yaml" -p "0:$EP" >"$TMP/w2.out" 2>"$TMP/w2.err" &
wp2=$!
bg_track $wp2
wait_for test -S "$TMP/sock2/guest-17001.sock"
frame "$TMP/sock2/parent-17002.sock" "{\"host\":\"127.0.0.1\",\"port\":$DP}" >"$TMP/frame2.out" 2>&1
check "host: the egress endpoint answers while the streams cannot connect" grep -q "matches deny rule" "$TMP/frame2.out"
kill -TERM $wp2
wait_for bash -c "! kill -0 $wp2 2>/dev/null"
check "host: that run ends on SIGTERM too" bash -c "! kill -0 $wp2 2>/dev/null"
check "no sanitizer report (second run)" bash -c "! grep -q Sanitizer '$TMP/w2.err'"

done_testing
