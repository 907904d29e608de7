# odyn_lib.sh: helpers for the odyn test scripts (sourced after lib.sh):
# the binaries under test and waiting for conditions without timed assertions.
ODYN=$(dirname "$ENCLAVER")/odyn
PEER=$(dirname "$ENCLAVER")/../helpers/odyn-peer
[ -x "$ODYN" ] || { echo "missing $ODYN"; exit 1; }
[ -x "$PEER" ] || { echo "missing $PEER"; exit 1; }
# Kills the background processes a script started (by pid) on exit.
_bg_pids=()
bg_track() { _bg_pids+=("$1"); }
bg_cleanup() {
	local p
	for p in "${_bg_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${_bg_pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap bg_cleanup EXIT

# log_records SOCKET [LINE]: what odyn's log (or status) stream at unix SOCKET holds (app lines and
# odyn's records), read until it is quiet for 1 s (10 s bound); LINE is sent first (a command such
# as the status stream's "counters").
log_records() {
	timeout 10 python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(1)
if len(sys.argv) > 2: s.sendall(sys.argv[2].encode() + b"\n")
try:
    while True:
        c = s.recv(65536)
        if not c: break
        sys.stdout.buffer.write(c)
except socket.timeout: pass' "$@"
}

# The host's egress endpoint (vsock 17002) spoken to directly, as an app bypassing odyn would:
frame() { # frame SOCKET JSON [PAYLOAD]: prints the reply frame's JSON, then what follows (60 s bound)
	python3 - "$@" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(sys.argv[1])
body = sys.argv[2].encode()
s.sendall(struct.pack("<H", len(body)) + body + (sys.argv[3].encode() if len(sys.argv) > 3 else b""))
def read(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: break
        b += c
    return b
n = struct.unpack("<H", read(2))[0]
print(read(n).decode())
if len(sys.argv) > 3:
    s.shutdown(socket.SHUT_WR)
    rest = b""
    while True:
        c = s.recv(65536)
        if not c: break
        rest += c
    print(rest.decode(errors="replace"))
PY
}

# stuck_listener FILE [SECONDS]: a 127.0.0.1 TCP listener whose backlog is full, so a connect to it
# never completes (for SECONDS, 300 by default); its port goes to FILE. Tracked for cleanup.
stuck_listener() {
	python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
fill = [socket.create_connection(s.getsockname()) for _ in range(2)]
extra = []
for _ in range(2):
    c = socket.socket(); c.setblocking(False); c.connect_ex(s.getsockname()); extra.append(c)
print(s.getsockname()[1], flush=True); time.sleep(float(sys.argv[1]))' "${2:-300}" >"$1" &
	bg_track $!
	wait_for test -s "$1"
}

# ask_open PORT TEXT: sends TEXT (printf escapes) to 127.0.0.1:PORT without closing its side, and
# prints the first reply that arrives within 10 s ("no answer" if none: silence is what is tested).
ask_open() {
	python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
try:
    b = s.recv(65536)
    print(b.decode(errors="replace") if b else "no answer (closed)")
except socket.timeout:
    print("no answer (timeout)")' "$1" "$2"
}

# standin_eif OUT: an EIF of random bytes (kernel and one ramdisk, twice) for runs under the
# local launcher, which never boots it.
standin_eif() {
	head -c 70000 /dev/urandom >"$TMP/standin-kernel"
	head -c 50000 /dev/urandom >"$TMP/standin-rd"
	"$ENCLAVER" eif build --kernel "$TMP/standin-kernel" --cmdline "console=ttyS0" --ramdisk "$TMP/standin-rd" \
		--ramdisk "$TMP/standin-rd" --output "$1" >/dev/null 2>&1
}

# use_local_launcher: for the tests of `enclaver run` with the test-only local launcher
# (tests/helpers/launcher_local.c): RUNL, the CLI built with it; a state folder of the test's
# own; odyn from this build; no socket folder or manifest from the caller's environment.
use_local_launcher() {
	RUNL=$(dirname "$ENCLAVER")/../helpers/enclaver-local
	[ -x "$RUNL" ] || { echo "missing $RUNL"; exit 1; }
	export ENCLAVER_STATE_DIR=$TMP/state ENCLAVER_LOCAL_ODYN=$ODYN
	unset ENCLAVER_LOCAL_MANIFEST ENCLAVER_LOCAL_DIR
}
