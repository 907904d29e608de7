#!/usr/bin/env bash
# test_odyn_supervisor: the supervisor as a normal process over unix sockets: status
# lines, exit codes, signals, escalation, orphans, log replay, restarts,
# environment, working directory and user.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

S=unix:$TMP/status
L=unix:$TMP/log
# Not a function: a background function runs in a subshell, and $! would
# then name the subshell rather than odyn.
O=("$ODYN" --no-console --status "$S" --log "$L")
# valid_json_lines FILE: every line parses as a JSON object.
valid_json_lines() { python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$1"; }

# --- exit codes and status lines
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
rp=$!
"${O[@]}" --linger-ms 30000 -- sh -c 'echo out; echo err >&2; exit 3'
rc=$?
wait $rp
check "app exit code is odyn's" test $rc -eq 3
check "status: running then exited 3" diff "$TMP/st" <(printf '%s\n' '{"status":"running"}' '{"status":"exited","code":3}')
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
rp=$!
"${O[@]}" --linger-ms 30000 -- sh -c 'kill -9 $$'
rc=$?
wait $rp
check "killed app: odyn exits 128+9" test $rc -eq 137
check "status: signaled with the number" diff "$TMP/st" <(printf '%s\n' '{"status":"running"}' '{"status":"signaled","signal":9}')

# --- the host's "stop" line on the status stream: the app gets SIGTERM (as on SIGTERM to odyn)
"${O[@]}" --linger-ms 30000 -- sh -c 'trap "echo bye; exit 4" TERM; touch "$0.ready"; while :; do sleep 0.05; done' "$TMP/stopper" &
op=$!
wait_for test -e "$TMP/stopper.ready"
python3 - "$TMP/status" >"$TMP/st" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"bogus\nstop\n")
data = b""
while True:
    c = s.recv(4096)
    if not c: break
    data += c
sys.stdout.write(data.decode())
PY
wait $op
rc=$?
check "status stream 'stop': the app's TERM trap ran (exit 4)" test $rc -eq 4
check "status stream 'stop': reported as exited 4" diff "$TMP/st" <(printf '%s\n' '{"status":"running"}' '{"status":"exited","code":4}')

# --- fatal: a command that cannot start, with characters that need escaping
bad=$'/nonexistent/"quoted"\\back\nline'
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
rp=$!
"${O[@]}" --linger-ms 30000 -- "$bad" 2>/dev/null
rc=$?
wait $rp
check "unstartable app: exit 108" test $rc -eq 108
check "fatal status is valid JSON" valid_json_lines "$TMP/st"
check "fatal status carries the error" python3 -c '
import json,sys
l=[json.loads(x) for x in open(sys.argv[1])]
assert l == [{"status":"fatal","error":"start "+sys.argv[2]+": exec: No such file or directory"}], l' "$TMP/st" "$bad"
check "no stale sockets left" test ! -e "$TMP/status" -a ! -e "$TMP/log"

# --- an app not found in a root whose last ramdisk entry (--ramdisk-marker) is missing: the kernel
# ran out of memory unpacking the ramdisk; odyn says so instead of only "No such file"
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
rp=$!
"${O[@]}" --linger-ms 30000 --ramdisk-marker "$TMP/no-marker" -- /usr/bin/not-unpacked 2>"$TMP/mk.err"
rc=$?
wait $rp
check "incomplete ramdisk: exit 108" test $rc -eq 108
check "incomplete ramdisk: the fatal status says the memory is too small, and what to change" python3 -c '
import json,sys
l=[json.loads(x) for x in open(sys.argv[1])]
e=l[-1]["error"]
assert l[-1]["status"]=="fatal", l
assert e.startswith("start /usr/bin/not-unpacked: exec: No such file or directory: the enclave'"'"'s memory is too small to unpack its ramdisk"), e
assert sys.argv[2] in e and "--memory-mb" in e and "defaults.memory_mb" in e, e' "$TMP/st" "$TMP/no-marker"
: >"$TMP/marker"
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
rp=$!
"${O[@]}" --linger-ms 30000 --ramdisk-marker "$TMP/marker" -- /usr/bin/not-there 2>/dev/null
rc=$?
wait $rp
check "complete ramdisk, app missing: exit 108, the plain error" python3 -c '
import json,sys
l=[json.loads(x) for x in open(sys.argv[1])]
assert l == [{"status":"fatal","error":"start /usr/bin/not-there: exec: No such file or directory"}], l' "$TMP/st"
check "complete ramdisk, app missing: exit code" test $rc -eq 108
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
rp=$!
"${O[@]}" --linger-ms 30000 --ramdisk-marker "$TMP/no-marker" -- sh -c 'exit 5' 2>/dev/null
rc=$?
wait $rp
check "marker missing but the app found: it runs (only a missing app is explained)" test $rc -eq 5

# --- log: 128 KiB ring replayed to late readers, live for early ones, many readers
cat >"$TMP/app.sh" <<APP
while [ ! -e "$TMP/go" ]; do sleep 0.02; done
head -c 300000 /dev/urandom | base64 >"$TMP/full"
cat "$TMP/full"
touch "$TMP/printed"
while [ ! -e "$TMP/go2" ]; do sleep 0.02; done
echo tail-line
APP
"${O[@]}" --linger-ms 30000 -- sh "$TMP/app.sh" &
op=$!
for i in 1 2 3 4 5; do
	"$PEER" read "$L" >"$TMP/early$i" 2>"$TMP/early$i.err" &
done
for i in 1 2 3 4 5; do wait_for grep -q connected "$TMP/early$i.err"; done
touch "$TMP/go"
wait_for test -e "$TMP/printed"
for i in 1 2 3; do
	"$PEER" read "$L" >"$TMP/late$i" 2>"$TMP/late$i.err" &
	wait_for grep -q connected "$TMP/late$i.err"
done
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
touch "$TMP/go2"
wait $op
rc=$?
wait
check "log app exits 0" test $rc -eq 0
echo tail-line >>"$TMP/full"
for i in 1 2 3 4 5; do
	check "early reader $i got the whole output" cmp "$TMP/early$i" "$TMP/full"
done
for i in 1 2 3; do
	check "late reader $i got a tail of at least 128 KiB" python3 -c '
import sys
full=open(sys.argv[1],"rb").read(); got=open(sys.argv[2],"rb").read()
assert len(got) >= 131072 and full.endswith(got), (len(full), len(got))' "$TMP/full" "$TMP/late$i"
done
"$PEER" read "$L" >"$TMP/after" 2>"$TMP/after.err" &
"$PEER" read "$S" >/dev/null 2>&1 &
# The app waits until the reader is connected: more than the 128 KiB ring
# must reach a reader that was there from the start, however loaded the machine.
"${O[@]}" --linger-ms 30000 -- sh -c 'while [ ! -e "$1" ]; do sleep 0.02; done
head -c 200000 /dev/zero | tr "\0" x; echo' sh "$TMP/go3" >/dev/null &
op=$!
wait_for grep -q connected "$TMP/after.err"
touch "$TMP/go3"
wait $op
wait
check "an early reader gets all 200001 bytes" test "$(wc -c <"$TMP/after")" -eq 200001

# --- signals: SIGTERM forwarded; the app's own handler decides the exit
cat >"$TMP/trap.sh" <<'APP'
trap 'echo got-term; exit 7' TERM
echo ready
while :; do sleep 0.02; done
APP
"$PEER" read "$L" >"$TMP/tlog" 2>/dev/null &
"${O[@]}" --linger-ms 30000 -- sh "$TMP/trap.sh" &
op=$!
wait_for grep -q ready "$TMP/tlog"
"$PEER" read "$S" >"$TMP/st" 2>"$TMP/st.err" &
wait_for grep -q connected "$TMP/st.err"
kill -TERM $op
wait $op
rc=$?
wait
check "SIGTERM reaches the app, its exit code is kept" test $rc -eq 7
check "the app saw SIGTERM" grep -q got-term "$TMP/tlog"
check "status after SIGTERM" diff "$TMP/st" <(printf '%s\n' '{"status":"running"}' '{"status":"exited","code":7}')

# --- escalation: an app ignoring SIGTERM is killed after the grace period
cat >"$TMP/ignore.sh" <<'APP'
trap '' TERM INT
echo ready
while :; do sleep 0.02; done
APP
"$PEER" read "$L" >"$TMP/ilog" 2>/dev/null &
"${O[@]}" --linger-ms 30000 --grace-ms 200 -- sh "$TMP/ignore.sh" &
op=$!
wait_for grep -q ready "$TMP/ilog"
"$PEER" read "$S" >"$TMP/st" 2>"$TMP/st.err" &
wait_for grep -q connected "$TMP/st.err"
kill -INT $op
wait $op
rc=$?
wait
check "SIGINT ignored: SIGKILL after the grace period" test $rc -eq 137
check "status says signal 9" grep -qx '{"status":"signaled","signal":9}' "$TMP/st"

# --- orphans: reparented to odyn (subreaper) and reaped; leftovers killed
cat >"$TMP/orphans.sh" <<APP
( sleep 300 & echo \$! >"$TMP/orphan.pid" )
for i in 1 2 3 4 5 6 7 8; do ( true & ) ; done
touch "$TMP/spawned"
while [ ! -e "$TMP/done" ]; do sleep 0.02; done
APP
"${O[@]}" --linger-ms 0 -- sh "$TMP/orphans.sh" &
op=$!
wait_for test -e "$TMP/spawned"
orphan=$(cat "$TMP/orphan.pid")
check "an orphan is re-parented to odyn" test "$(ps -o ppid= -p "$orphan" | tr -d ' ')" = "$op"
zombies() { ps -o stat= --ppid "$op" | grep -c Z; }
check "exited orphans are reaped (no zombies under odyn)" wait_for test "$(zombies)" = 0
touch "$TMP/done"
wait $op
rc=$?
check "orphan app exits 0" test $rc -eq 0
check "orphans left in the app's group are killed at the end" wait_for sh -c "! kill -0 $orphan"

# --- restart policy
cat >"$TMP/flaky.sh" <<APP
echo run >>"$TMP/runs"
[ \$(wc -l <"$TMP/runs") -ge \$1 ] && exit 0
exit 1
APP
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
"${O[@]}" --linger-ms 30000 --restart on-failure --max-restarts 2 --restart-backoff-ms 10 -- sh "$TMP/flaky.sh" 99
rc=$?
wait
check "on-failure, limit 2: three runs" test "$(wc -l <"$TMP/runs")" -eq 3
check "on-failure, limit reached: the last failure is odyn's code" test $rc -eq 1
check "status shows each run" diff "$TMP/st" <(for i in 1 2 3; do printf '%s\n' '{"status":"running"}' '{"status":"exited","code":1}'; done)
rm -f "$TMP/runs"
"${O[@]}" --linger-ms 0 --restart on-failure --restart-backoff-ms 10 -- sh "$TMP/flaky.sh" 2
rc=$?
check "on-failure stops after a success" test $rc -eq 0 -a "$(wc -l <"$TMP/runs")" -eq 2
rm -f "$TMP/runs"
"${O[@]}" --linger-ms 0 -- sh "$TMP/flaky.sh" 2
check "never (default): one run" test "$(wc -l <"$TMP/runs")" -eq 1

# --- environment, working directory, user, proxy variables
mkdir -p "$TMP/wd"
FROM_ODYN=kept "${O[@]}" --linger-ms 0 --env FOO=bar --env 'SPACE=a b' --workdir "$TMP/wd" --proxy-port 10123 \
	--egress-host unix:$TMP/none -- sh -c 'echo "$FOO|$SPACE|$FROM_ODYN|$(pwd)|$http_proxy|$HTTPS_PROXY|$no_proxy" >out' \
	2>/dev/null
check "env, workdir, proxy variables reach the app" diff "$TMP/wd/out" \
	<(echo "bar|a b|kept|$TMP/wd|http://127.0.0.1:10123|http://127.0.0.1:10123|localhost,127.0.0.1")
if [ "$(id -u)" = 0 ]; then
	chmod 777 "$TMP/wd"
	"${O[@]}" --linger-ms 0 --workdir "$TMP/wd" --user 65534:65533 -- sh -c 'echo "$(id -u) $(id -g) $(id -G)" >user'
	check "numeric user and group" diff "$TMP/wd/user" <(echo "65534 65533 65533")
	"${O[@]}" --linger-ms 0 --workdir "$TMP/wd" --user nobody -- sh -c 'echo "$(id -u) $(id -g)" >named'
	check "user by name from /etc/passwd" diff "$TMP/wd/named" <(echo "65534 $(id -g nobody)")
	check_fails "unknown user name" 'user "no-such-user" not found' "${O[@]}" --user no-such-user -- true
else
	ok "user tests need root (skipped)"
fi

# --- a setup failure (proxy port taken) is reported on the status stream
"$PEER" echo tcp:127.0.0.1:0 >"$TMP/echo.port" &
ep=$!
wait_for test -s "$TMP/echo.port"
"$PEER" read "$S" >"$TMP/st" 2>/dev/null &
"${O[@]}" --linger-ms 30000 --egress-host "unix:$TMP/none" --proxy-port "$(cat "$TMP/echo.port")" -- true 2>/dev/null
rc=$?
kill $ep
wait
check "setup failure: exit 108" test $rc -eq 108
check "setup failure: fatal status names the cause" grep -q '^{"status":"fatal","error":"egress proxy: listen on tcp:127.0.0.1:[0-9]*: bind: Address already in use"}$' "$TMP/st"

# --- the manifest: egress settings from --config-dir
mkdir -p "$TMP/conf"
# A whole manifest: odyn reads it with manifest/, the parser the build checked it with.
printf 'version: v1\nname: t\ntarget: t:enclave\nsources: {app: t}\negress:\n  proxy_port: 3129\n  allow: [example.com]\n' \
	>"$TMP/conf/enclaver.yaml"
"${O[@]}" --linger-ms 0 --config-dir "$TMP/conf" --egress-host "unix:$TMP/none" --workdir "$TMP/wd" \
	-- sh -c 'echo "$HTTPS_PROXY" >from-manifest'
check "proxy port from the manifest reaches the app" diff "$TMP/wd/from-manifest" <(echo http://127.0.0.1:3129)
# Egress is on only when egress.allow has entries (as in Enclaver): with a deny list alone odyn
# starts no proxy and the app gets no proxy variables.
printf 'version: v1\nname: t\ntarget: t:enclave\nsources: {app: t}\negress:\n  proxy_port: 3129\n  deny: [bad.example]\n' \
	>"$TMP/conf/enclaver.yaml"
"${O[@]}" --linger-ms 0 --config-dir "$TMP/conf" --workdir "$TMP/wd" \
	-- sh -c 'echo "[$http_proxy|$https_proxy|$HTTP_PROXY|$HTTPS_PROXY]" >deny-only'
check "deny-only egress: no proxy variables for the app" diff "$TMP/wd/deny-only" <(echo "[|||]")
printf 'version: v1\nname: t\ntarget: t:enclave\nsources: {app: t}\negress:\n  allow:\n' >"$TMP/conf/enclaver.yaml"
"${O[@]}" --linger-ms 0 --config-dir "$TMP/conf" --workdir "$TMP/wd" -- sh -c 'echo "[$http_proxy]" >empty-allow'
check "empty allow: odyn starts, no proxy variables" diff "$TMP/wd/empty-allow" <(echo "[]")
printf 'version: v1\nname: t\ntarget: t:enclave\nsources: {app: t}\negress: {allow: [bad..name]}\n' \
	>"$TMP/conf/enclaver.yaml"
check_fails "bad manifest: odyn refuses to start" 'egress.allow\[0\]' "${O[@]}" --config-dir "$TMP/conf" -- true
# A manifest nested 100,000 flow levels deep (libyaml's time grows with the square of it) is
# refused before libyaml parses it, naming the file, line and column.
python3 -c 'import sys; sys.stdout.write("version: v1\nname: t\ntarget: t:enclave\nsources: {app: t}\negress:\n  allow: " + "[" * 100000 + "]" * 100000 + "\n")' \
	>"$TMP/conf/enclaver.yaml"
check_fails "deeply nested manifest: odyn refuses to start" 'conf/enclaver.yaml:6:74: flow collections .* nested deeper than 64' \
	"${O[@]}" --config-dir "$TMP/conf" -- true
# Without its manifest odyn does not start (an image that redirected /etc/enclaver, to /proc/self
# or /tmp, would otherwise run its app with no policy at all).
mkdir -p "$TMP/noconf"
check_fails "no manifest in --config-dir: odyn refuses to start" 'no manifest .*noconf/enclaver.yaml' \
	"${O[@]}" --config-dir "$TMP/noconf" -- true
check_fails "--config-dir naming nothing: odyn refuses to start" 'no manifest' "${O[@]}" --config-dir "$TMP/nothing-here" -- true

# --- the release binary is static (the app's file system may have no libc)
if [ "${VARIANT:-release}" = release ]; then
	# No program interpreter and no dynamic section: nothing to load at run time.
	check "release odyn is statically linked" sh -c "! readelf -lW '$ODYN' | grep -q INTERP && readelf -d '$ODYN' | grep -q 'no dynamic section'"
else
	ok "static check only for the release build"
fi

# --- bad command lines
check_fails "unknown restart policy" 'want never or on-failure' "$ODYN" --restart sometimes -- true
check_fails "bad transport" 'unknown transport' "$ODYN" --status foo:bar -- true
check_fails "ingress on an internal port" 'odyn.s own' "$ODYN" --ingress 17001 -- true
check_fails "bad egress pattern" 'egress-allow.*bad port' "$ODYN" --egress-allow 'a.com:99999' -- true
"$ODYN" >/dev/null 2>&1
check "no command: usage, exit 2" test $? -eq 2

done_testing
