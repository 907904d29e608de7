#!/usr/bin/env bash
# test_run_emulator_connect: `enclaver run --emulate` connects into the guest without waiting on
# its event loop (issue 14, item 1). The emulator's connect goes through the vsock backend's socket
# ("CONNECT <port>", answered "OK <port>" once the guest accepted); it used to wait for that answer
# on the loop, so one guest port slow to answer held every other ingress client, the streams and
# signals. A stand-in for QEMU (helpers/fake_qemu_guest.py) plays the guest behind that socket:
# one port never answers, one echoes, one refuses twice (nothing listens yet) and then echoes;
# the status stream's first connect is never answered either.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

export ENCLAVER_STATE_DIR=$TMP/state ENCLAVER_EMULATOR_ACCEL=tcg XDG_RUNTIME_DIR=$TMP/xdg
export ENCLAVER_QEMU=$ROOT/tests/cli/helpers/fake_qemu_guest.py
mkdir -p "$XDG_RUNTIME_DIR"
standin_eif "$TMP/app.eif"
cat >"$TMP/m.yaml" <<YAML
version: v1
name: emuconnect
target: "oci:$TMP/nowhere:latest"
sources:
  app: "oci:$TMP/nowhere:app"
YAML
# Ingress on the three ports (ingress is held until the status stream says the app runs).
cat >>"$TMP/m.yaml" <<YAML
ingress:
  - listen_port: 7001
  - listen_port: 7002
  - listen_port: 7003
YAML
export FAKE_STUCK=7001 FAKE_ECHO=7002 FAKE_REFUSE=7003 FAKE_STATUS_SILENT=1 FAKE_LOG=$TMP/connects.log
HS=$(free_port)
HE=$(free_port)
HR=$(free_port)
"$ENCLAVER" run --emulate --eif "$TMP/app.eif" --manifest "$TMP/m.yaml" -p "$HS:$FAKE_STUCK" -p "$HE:$FAKE_ECHO" \
	-p "$HR:$FAKE_REFUSE" >"$TMP/w.out" 2>"$TMP/w.err" &
wp=$!
bg_track $wp
# The status stream's first connect is given up at its bound (10 s) and made again; the second
# is answered, and its "running" lets the held ingress go (which the clients below need).
wait_for sh -c "test \$(grep -c 'CONNECT 17000' '$FAKE_LOG') -ge 2"
check "a status connect the guest never answers is given up and made again" \
	test "$(grep -c "CONNECT 17000" "$FAKE_LOG")" -eq 2

# client PORT SEND OUT: connects, sends SEND, writes what comes back to OUT, then "closed" at the
# end of the connection (60 s bound).
client() {
	python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(60)
out = open(sys.argv[3], "a", buffering=1)
s.sendall(sys.argv[2].encode())
try:
    while True:
        b = s.recv(4096)
        if not b: break
        out.write(b.decode(errors="replace") + "\n")
except (socket.timeout, ConnectionResetError): pass
out.write("closed\n")' "$@" &
	bg_track $!
}

# A client of the port whose guest never answers: its connect waits (the guest has its line).
client "$HS" stuck "$TMP/stuck.out"
wait_for grep -q "CONNECT $FAKE_STUCK" "$FAKE_LOG"
check "the guest was asked for the stuck port" grep -q "CONNECT $FAKE_STUCK" "$FAKE_LOG"
# Meanwhile another port is served: its answer comes while the stuck client still waits.
client "$HE" ping "$TMP/echo.out"
wait_for grep -q ping "$TMP/echo.out"
check "another ingress port is answered while one port's connect waits for the guest" grep -q ping "$TMP/echo.out"
check "... and the stuck client is still waiting then (nothing on the loop waited for it)" \
	sh -c "! grep -q closed '$TMP/stuck.out'"
# A port refused twice by the guest (nothing listens there yet) holds its client and retries.
client "$HR" hello "$TMP/refused.out"
wait_for grep -q hello "$TMP/refused.out"
check "a refused port's client is held and answered once the guest accepts" grep -q hello "$TMP/refused.out"
check "... after the guest refused it twice" test "$(grep -c "CONNECT $FAKE_REFUSE" "$FAKE_LOG")" -eq 3
check "... with one line saying the connections are held" \
	test "$(grep -c "enclave port $FAKE_REFUSE: holding connections until the enclave listens" "$TMP/w.err")" -eq 1
# The stuck client is closed at the host's bound, with a line naming the port.
wait_for grep -q closed "$TMP/stuck.out"
check "the stuck client is closed at the bound" grep -q closed "$TMP/stuck.out"
check "... with a line naming its port" grep -q "enclave port $FAKE_STUCK: not accepted within 10000 ms" "$TMP/w.err"
check "the stuck client got nothing from the guest" sh -c "! grep -q stuck '$TMP/stuck.out'"

kill -TERM $wp
wait_for sh -c "! kill -0 $wp 2>/dev/null"
check "the run stops on SIGTERM" sh -c "! kill -0 $wp 2>/dev/null"
check "no sanitizer report" sh -c "! grep -q Sanitizer '$TMP/w.err'"
[ $_fail -eq 0 ] || tail -n 30 "$TMP/w.err"

done_testing
