#!/usr/bin/env bash
# test_run_logs: what `enclaver run` prints about its enclave, against the real odyn started as a
# host process by the test-only local launcher (tests/helpers/launcher_local.c): --log-format json
# (every line one object: time, source, level, message; the host's own lines, odyn's records, the
# app's output and the console), the app's hostile bytes in both formats (no forged line, no raw
# control byte), and the lifecycle a fleet's engine relies on: the manifest's restart policy (each
# restart on the log), SIGTERM with odyn's grace period, and an enclave that dies (108).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"
. "$(dirname "$0")/helpers/run_lib.sh"

use_local_launcher

standin_eif "$TMP/app.eif"
EIF=$TMP/app.eif
printf 'version: v1\nname: plain\ntarget: "oci:x:y"\nsources:\n  app: "oci:x:y"\n' >"$TMP/plain.yaml"
printf 'version: v1\nname: crashy\ntarget: "oci:x:y"\nsources:\n  app: "oci:x:y"\nrestart:\n  policy: on-failure\n  max_restarts: 2\n  backoff_ms: 50\n' \
	>"$TMP/restart.yaml"

# run_local NAME CMD [ARGS...]: enclaver run with the local launcher in the foreground.
run_local() {
	local out=$1 cmd=$2
	shift 2
	ENCLAVER_LOCAL_CMD=$cmd timeout -k 10 300 "$RUNL" run --launcher local --eif "$EIF" "$@" >"$TMP/$out.out" 2>"$TMP/$out.err"
}
# start_bg NAME CMD MANIFEST [VAR=VALUE...]: the run in the background (run=its pid), its sockets
# in $TMP/NAME, until the app printed "up".
start_bg() {
	local name=$1 cmd=$2 manifest=$3
	shift 3
	mkdir -p "$TMP/$name"
	env ENCLAVER_LOCAL_DIR="$TMP/$name" ENCLAVER_LOCAL_CMD="$cmd" "$@" \
		"$RUNL" run --launcher local --eif "$EIF" --manifest "$manifest" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	run=$!
	bg_track $run
	wait_for grep -qx '\[app\] up' "$TMP/$name.out"
}
# app_gone NAME: ends what is left of the app of start_bg NAME once its odyn was killed (the
# app's own process group; with a real enclave it goes with the enclave).
app_gone() {
	local p
	for p in $(pgrep -f 'while :; do sleep 0.1; done'); do
		grep -qz "ENCLAVER_LOCAL_DIR=$TMP/$1" "/proc/$p/environ" 2>/dev/null && kill -KILL "$p"
	done
}
# has FILE SOURCE LEVEL MESSAGE_REGEX: a line of that source and level whose message matches
# (Python's re: \xNN and \uNNNN name characters).
has() {
	python3 - "$@" <<'PY'
import json, re, sys
path, source, level, rx = sys.argv[1:]
for raw in open(path, "rb"):
    d = json.loads(raw)
    if d["source"] == source and d["level"] == level and re.fullmatch(rx, d["message"], re.S):
        sys.exit(0)
sys.exit(1)
PY
}

# The app's hostile output: ill-formed UTF-8, an escape sequence, a CR that would overwrite the
# line on a terminal, NUL, and what looks like a host line or a JSON object after a newline.
HOSTILE='printf "bad \377\376 \033[2K\rfake\000nul\n{\"time\":\"x\",\"source\":\"host\",\"level\":\"error\",\"message\":\"forged\"}\n"; printf "to stderr\n" >&2; printf "\036odyn forged record\n"; exit 3'

# ---------------------------------------------------------------- --log-format json
run_local j "$HOSTILE" --manifest "$TMP/plain.yaml" --log-format json
rc=$?
check "json: the app's exit code still propagates (3)" test $rc -eq 3
check "json: every line on stdout and stderr is one object: time, source, level, message" \
	json_lines "$TMP/j.out" "$TMP/j.err"
check "json: the app's line, bad bytes as U+FFFD, ESC, CR and NUL escaped" \
	has "$TMP/j.out" app info 'bad \ufffd\ufffd \x1b\[2K\rfake\x00nul'
check "json: what the app printed after a newline is an app object, not a host one" \
	has "$TMP/j.out" app info '\{"time":"x","source":"host","level":"error","message":"forged"\}'
check "json: nothing on stdout is from the host" sh -c "! grep -q '\"source\":\"host\"' '$TMP/j.out'"
check "json: the app's stderr is relayed as an app line" has "$TMP/j.out" app info 'to stderr'
check "json: an RS byte from the app cannot forge odyn's record" sh -c "! grep -q '\"source\":\"odyn\"' '$TMP/j.out'"
check "json: the host's launch line" has "$TMP/j.err" host info 'the enclave plain started: local-enc.*, CID [0-9]+, 2 CPUs, 1024 MiB'
check "json: the host's final warning" has "$TMP/j.err" host warn 'the app exited with code 3'
check "json: no raw control byte but the line feeds" sh -c "! LC_ALL=C grep -q '[[:cntrl:]]' '$TMP/j.out' '$TMP/j.err'"
run_local jv 'echo hi' --manifest "$TMP/plain.yaml" --log-format json -v
check "json: -v adds the host's info lines, as objects" has "$TMP/jv.err" host info 'the app is running'
check "json -v: every line one object" json_lines "$TMP/jv.out" "$TMP/jv.err"
run_local jd 'echo on-the-console' --manifest "$TMP/plain.yaml" --log-format json --debug-mode
check "json: --debug-mode's console lines are objects of source console, on stderr" \
	has "$TMP/jd.err" console info 'on-the-console'
check "json --debug-mode: every line one object" json_lines "$TMP/jd.out" "$TMP/jd.err"
ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$TMP/missing.eif" --manifest "$TMP/plain.yaml" \
	--log-format json >"$TMP/je.out" 2>"$TMP/je.err"
check "json: a run that cannot start says why in one error object" has "$TMP/je.err" host error '.*missing\.eif.*'
check "json: the error too is one object a line" json_lines "$TMP/je.err"
"$ENCLAVER" run --log-format xml --eif "$EIF" --manifest "$TMP/plain.yaml" >/dev/null 2>"$TMP/jx.err"
check "--log-format xml is a usage error" test $? -eq 2
check "it names the choices" grep -q 'want text or json' "$TMP/jx.err"
"$ENCLAVER" run --help >"$TMP/help.out"
check "enclaver run --help lists --log-format" grep -q -- '--log-format text|json' "$TMP/help.out"
"$(dirname "$ENCLAVER")/enclaver-run" --help >"$TMP/help2.out"
check "enclaver-run --help lists --log-format" grep -q -- '--log-format text|json' "$TMP/help2.out"

# ---------------------------------------------------------------- text: the same bytes
run_local t "$HOSTILE" --manifest "$TMP/plain.yaml"
check "text: exit 3" test $? -eq 3
check "text: the app's control bytes are shown as \\xNN, its line stays one [app] line" \
	env LC_ALL=C grep -qxF $'[app] bad \377\376 \\x1b[2K\\x0dfake\\x00nul' "$TMP/t.out"
check "text: every stdout line is an [app] line" test "$(grep -vc '^\[app\] ' "$TMP/t.out")" -eq 0
check "text: no raw control byte on stdout" sh -c "! LC_ALL=C grep -q '[[:cntrl:]]' '$TMP/t.out'"

# A host name in an egress frame is the enclave's too (an app can bypass odyn and speak to the
# host's 17002 endpoint): in the host's own messages it cannot start a line either.
printf 'version: v1\nname: eg\ntarget: "oci:x:y"\nsources:\n  app: "oci:x:y"\negress:\n  allow:\n    - 127.0.0.1\n' >"$TMP/eg.yaml"
start_bg eg 'echo up; while :; do sleep 0.1; done' "$TMP/eg.yaml" ENCLAVER_LOCAL_MANIFEST=$TMP/eg.yaml
frame "$TMP/eg/parent-17002.sock" '{"host":"evil.example\nenclaver: error: forged\r","port":80}' >"$TMP/eg.frame" 2>&1
kill -TERM $run
wait $run
check "text: a host name with a newline from the enclave is refused by the host" grep -q 'Err' "$TMP/eg.frame"
check "text: ... and cannot start a host line of its own" sh -c "! grep -q '^enclaver: error: forged' '$TMP/eg.err'"
check "text: ... its second part is under the true prefix, the CR escaped" \
	grep -q '^enclaver: warning: enclaver: error: forged\\x0d' "$TMP/eg.err"

# ---------------------------------------------------------------- restarts
ENCLAVER_LOCAL_MANIFEST=$TMP/restart.yaml run_local r 'echo "run at $(date +%s%N)"; exit 5' --manifest "$TMP/restart.yaml" --log-format json
rc=$?
check "restart policy: the app ran 3 times (2 restarts)" test "$(grep -c '"message":"run at' "$TMP/r.out")" -eq 3
check "restart policy: each restart is odyn's warning on the host's log, counted" \
	test "$(grep -cE '"source":"odyn","level":"warn","message":"the app failed: restart [12] of 2 in [0-9]+ ms"' "$TMP/r.out")" -eq 2
check "restart policy: odyn says when it gives up" \
	has "$TMP/r.out" odyn warn 'the app failed after 2 restarts: no more \(restart.max_restarts\)'
check "restart policy: the last exit code is the run's (5)" test $rc -eq 5
run_local rn 'echo once; exit 5' --manifest "$TMP/plain.yaml"
check "no restart policy: one run" test "$(grep -c '^\[app\] once$' "$TMP/rn.out")" -eq 1
check "no restart policy: no restart line" sh -c "! grep -q 'restart' '$TMP/rn.out'"

# ---------------------------------------------------------------- SIGTERM and the grace period
# The local launcher gives odyn --grace-ms 5000 (the enclave's odyn: 10000).
LOOP='echo up; while :; do sleep 0.1; done'
start_bg q "trap 'echo bye; exit 0' TERM; $LOOP" "$TMP/plain.yaml"
end_timed $run kill -TERM $run
echo "# measured: SIGTERM to exit with an app that stops on SIGTERM: $END_S s"
check "SIGTERM, an app that stops: exit 109 after its last line" sh -c "test $END_RC -eq 109 && grep -qx '\[app\] bye' '$TMP/q.out'"
check "SIGTERM, an app that stops: no grace period waited (< 4 s)" python3 -c "assert $END_S < 4, $END_S"

start_bg s "trap 'echo got-term' TERM; $LOOP" "$TMP/plain.yaml"
end_timed $run kill -TERM $run
echo "# measured: SIGTERM to exit with the app ignoring it (grace 5 s here): $END_S s"
check "SIGTERM: exit 109" test $END_RC -eq 109
check "SIGTERM: the app got it" grep -qx '\[app\] got-term' "$TMP/s.out"
check "SIGTERM: after the grace period odyn killed it" \
	grep -qx '\[odyn\] warning: app still running 5000 ms after the stop signal: SIGKILL' "$TMP/s.out"
check "SIGTERM: the grace period was honoured, and the run ended well inside the run's 30 s bound" \
	python3 -c "assert 5 <= $END_S < 30, $END_S"

# An app that outlives the run's own bound (odyn's grace 60 s here): 30 s after SIGTERM the run
# stops the enclave itself, so an engine's 45 s stop timeout is never reached. The launcher stops
# the "enclave" as Nitro does (at once).
start_bg s2 "trap 'echo got-term' TERM; $LOOP" "$TMP/plain.yaml" ENCLAVER_LOCAL_STOP_KILL=1 ENCLAVER_LOCAL_GRACE_MS=60000
end_timed $run kill -TERM $run
app_gone s2
echo "# measured: SIGTERM to exit when the app outlives the run's 30 s bound: $END_S s"
check "SIGTERM past the bound: exit 109" test $END_RC -eq 109
check "SIGTERM past the bound: the run says it stops the enclave" \
	grep -q 'the app did not stop within 30000 ms: stopping the enclave' "$TMP/s2.err"
check "SIGTERM past the bound: ended 30 s after SIGTERM, inside the deploy/ files' 45 s" \
	python3 -c "assert 30 <= $END_S < 45, $END_S"

# ---------------------------------------------------------------- the enclave dies
start_bg d "$LOOP" "$TMP/plain.yaml"
end_timed $run kill -KILL "$(pgrep -f "$TMP/d/guest-17000.sock" | head -1)"
app_gone d
check "a dead enclave: exit 108" test $END_RC -eq 108
check "a dead enclave: the message says so" grep -q 'the enclave stopped without reporting the app.s exit status' "$TMP/d.err"

check "state folder empty after the runs" test -z "$(ls "$TMP/state" 2>/dev/null | grep json)"
done_testing
