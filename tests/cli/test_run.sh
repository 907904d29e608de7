#!/usr/bin/env bash
# test_run: `enclaver run`'s outer side against the real odyn, started as a host process by the
# test-only local launcher (unix sockets for vsock; tests/helpers/launcher_local.c): app output,
# exit codes, ingress, egress allowed/denied by odyn and by the host, SIGTERM, ps/stop, several
# enclaves, --verify-before-run, release images, and bad input.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

use_local_launcher

# A small EIF (random kernel and ramdisks: nothing boots it here, it is measured and checked).
head -c 70000 /dev/urandom >"$TMP/kernel"
head -c 50000 /dev/urandom >"$TMP/rd1"
head -c 30000 /dev/urandom >"$TMP/rd2"
"$ENCLAVER" eif build --kernel "$TMP/kernel" --cmdline "console=ttyS0" --ramdisk "$TMP/rd1" --ramdisk "$TMP/rd2" \
	--output "$TMP/app.eif" >"$TMP/measurements.json" 2>/dev/null
# The shape `enclaver build` prints: the measurements under "Measurements".
python3 -c 'import json,sys; json.dump({"Sources": {}, "Measurements": json.load(open(sys.argv[1])), "Image": {}}, open(sys.argv[2], "w"))' \
	"$TMP/measurements.json" "$TMP/build.json"
"$ENCLAVER" describe-eif "$TMP/app.eif" >"$TMP/describe.json"
EIF=$TMP/app.eif

EP=$(free_port) # the app's ingress port inside
AP=$(free_port) # an egress target the policy allows
DP=$(free_port) # one it denies
cat >"$TMP/m.yaml" <<YAML
version: v1
name: web
target: "oci:$TMP/nowhere:latest"
sources:
  app: "oci:$TMP/nowhere:app"
ingress:
  - listen_port: $EP
egress:
  proxy_port: $(free_port)
  allow:
    - 127.0.0.1
    - localhost
    - host
  deny:
    - "127.0.0.1:$DP"
YAML
printf 'version: v1\nname: plain\ntarget: "oci:x:y"\nsources:\n  app: "oci:x:y"\n' >"$TMP/plain.yaml"

# reap PID: waits for a background run to end, at most 60 s (then kills it: a hung run fails the
# checks that follow instead of hanging the suite); returns its exit status.
reap() {
	wait_for bash -c "! kill -0 $1 2>/dev/null" || wait_for bash -c "! kill -0 $1 2>/dev/null" ||
		{ echo "run $1 still there: killing it"; kill -KILL "$1"; }
	wait "$1"
}

# run_local NAME_OF_OUT CMD [ARGS...]: enclaver run with the local launcher in the foreground.
run_local() {
	local out=$1 cmd=$2
	shift 2
	# (timeout: a hung run fails instead of hanging the suite; how long it takes is not tested)
	ENCLAVER_LOCAL_CMD=$cmd timeout -k 10 300 "$RUNL" run --launcher local --eif "$EIF" "$@" >"$TMP/$out.out" 2>"$TMP/$out.err"
}

# --- output and exit codes
run_local a 'echo hello-out; echo hello-err >&2; printf "no newline"' --manifest "$TMP/plain.yaml"
rc=$?
check "exit 0 propagates" test $rc -eq 0
check "app stdout reaches our stdout, prefixed" grep -qx '\[app\] hello-out' "$TMP/a.out"
check "app stderr reaches our stdout, prefixed" grep -qx '\[app\] hello-err' "$TMP/a.out"
check "a last line without a newline is printed" grep -qx '\[app\] no newline' "$TMP/a.out"
check "launch info is nitro-cli's run-enclave JSON on stderr" python3 -c '
import json,sys
t=open(sys.argv[1]).read(); d=json.loads(t[t.index("{"):t.rindex("}")+1])
assert list(d)==["EnclaveName","EnclaveID","ProcessID","EnclaveCID","NumberOfCPUs","CPUIDs","MemoryMiB"], d
assert d["EnclaveName"]=="plain" and d["NumberOfCPUs"]==len(d["CPUIDs"])' "$TMP/a.err"
check "nothing but app lines on stdout" test "$(grep -vc '^\[app\] ' "$TMP/a.out")" -eq 0
run_local dbg 'echo on-the-console' --manifest "$TMP/plain.yaml" --debug-mode
check "--debug-mode: the console is streamed to stderr, each line marked [console]" \
	grep -qx '\[console\] on-the-console' "$TMP/dbg.err"
check "--debug-mode: no console line without the mark" sh -c "! grep -qx 'on-the-console' '$TMP/dbg.err'"
check "--debug-mode: the app's log still reaches stdout" grep -qx '\[app\] on-the-console' "$TMP/dbg.out"
run_local b 'exit 3' --manifest "$TMP/plain.yaml"
check "exit 3 propagates" test $? -eq 3
run_local c 'kill -9 $$' --manifest "$TMP/plain.yaml"
check "app killed by a signal: 107" test $? -eq 107
run_local d 'exec:/nonexistent/app' --manifest "$TMP/plain.yaml"
rc=$?
check "app that cannot start (odyn fatal): 108" test $rc -eq 108
check "the fatal error is reported" grep -q 'odyn: .*nonexistent' "$TMP/d.err"
check "state folder empty after runs" test -z "$(ls "$TMP/state" 2>/dev/null | grep json)"

# --- one enclave with ingress and egress, stopped by `enclaver stop`
python3 -m http.server "$AP" --bind 127.0.0.1 --directory "$TMP" >/dev/null 2>&1 &
bg_track $!
python3 -m http.server "$DP" --bind 127.0.0.1 --directory "$TMP" >/dev/null 2>&1 &
bg_track $!
echo allowed-body >"$TMP/hello.txt"
mkdir -p "$TMP/www" && echo "from-the-enclave" >"$TMP/www/index.html"
wait_for curl -sf --max-time 30 "http://127.0.0.1:$AP/hello.txt"
wait_for curl -sf --max-time 30 "http://127.0.0.1:$DP/hello.txt"
cat >"$TMP/app.sh" <<APP
python3 -m http.server $EP --bind 127.0.0.1 --directory "$TMP/www" >/dev/null 2>&1 &
echo \$! >"$TMP/app-server.pid"
# through odyn's proxy (the environment names it; --noproxy '' overrides no_proxy for 127.0.0.1)
curl -s --noproxy '' -o "$TMP/eg-allowed.body" -w '%{http_code}' "http://127.0.0.1:$AP/hello.txt" >"$TMP/eg-allowed.code"
curl -s --noproxy '' -o "$TMP/eg-denied.body" -w '%{http_code}' "http://127.0.0.1:$DP/hello.txt" >"$TMP/eg-denied.code"
# the parent by the name "host", with Python's urllib and the proxy environment odyn sets (no_proxy
# names 127.0.0.1, so that address would bypass the proxy; "host" goes through it)
python3 - "$AP" "$DP" >"$TMP/eg-host.out" 2>&1 <<'PY'
import sys, urllib.request, urllib.error
for port in sys.argv[1:]:
    try:
        r = urllib.request.urlopen("http://host:%s/hello.txt" % port, timeout=60)
        print(port, r.status, r.read().decode().strip())
    except urllib.error.HTTPError as e:
        print(port, e.code, e.read().decode().strip())
PY
touch "$TMP/app-ready"
while :; do sleep 0.05; done
APP
HP=$(free_port)
mkdir -p "$TMP/sock1"
ENCLAVER_LOCAL_DIR=$TMP/sock1 ENCLAVER_LOCAL_MANIFEST=$TMP/m.yaml ENCLAVER_LOCAL_CMD="sh $TMP/app.sh" \
	"$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" -p "$HP:$EP" >"$TMP/w.out" 2>"$TMP/w.err" &
wp=$!
bg_track $wp
wait_for test -e "$TMP/app-ready"
wait_for curl -sf --max-time 30 "http://127.0.0.1:$HP/index.html"
check "ingress: a request to the host port gets the app's answer" \
	test "$(curl -s --max-time 60 "http://127.0.0.1:$HP/index.html")" = from-the-enclave
check "egress: allowed target through odyn and the host: 200" test "$(cat "$TMP/eg-allowed.code")" = 200
check "egress: the allowed body arrived" grep -qx allowed-body "$TMP/eg-allowed.body"
check "egress: denied target refused by odyn: 401" test "$(cat "$TMP/eg-denied.code")" = 401
check "egress: odyn's refusal reaches the host's stdout as an [odyn] line (no --debug-mode)" \
	grep -q "^\[odyn\] warning: egress: blocked by egress security policy: 127.0.0.1:$DP matches deny rule" "$TMP/w.out"
check "egress: \"host\" reaches the parent's loopback (python urllib through the proxy)" \
	grep -qx "$AP 200 allowed-body" "$TMP/eg-host.out"
check "egress: \"host\" stays under the host's deny rules by address (503)" \
	grep -q "^$DP 503 .*127.0.0.1.*deny rule" "$TMP/eg-host.out"
# odyn bypassed: a raw client speaks the 17002 frame protocol to the host's endpoint.
E=$TMP/sock1/parent-17002.sock
frame "$E" "{\"host\":\"127.0.0.1\",\"port\":$DP}" >"$TMP/raw-denied" 2>&1
check "host side refuses a denied target when odyn is bypassed" python3 -c '
import json,sys
r=json.loads(open(sys.argv[1]).readline())
assert r["Err"]["os_code"]==13 and "matches deny rule" in r["Err"]["message"], r' "$TMP/raw-denied"
frame "$E" '{"host":"192.0.2.1","port":80}' >"$TMP/raw-default" 2>&1
check "host side refuses what no rule allows" grep -q 'matches no allow rule' "$TMP/raw-default"
frame "$E" "{\"host\":\"127.1\",\"port\":$DP}" >"$TMP/raw-legacy" 2>&1
check "host side reads 127.1 as 127.0.0.1 (deny rule still applies)" grep -q 'matches deny rule' "$TMP/raw-legacy"
frame "$E" '{"host":"127.0.0.1"}' >"$TMP/raw-bad" 2>&1
check "host side answers a malformed frame with Err" grep -q 'bad request frame' "$TMP/raw-bad"
frame "$E" "{\"host\":\"127.0.0.1\",\"port\":$AP}" $'GET /hello.txt HTTP/1.0\r\n\r\n' >"$TMP/raw-ok" 2>&1
check "host side tunnels an allowed target" python3 -c '
import sys
t=open(sys.argv[1]).read().split("\n")
assert t[0]=="\"Ok\"" and "200" in t[1] and "allowed-body" in "\n".join(t), t' "$TMP/raw-ok"
# Names are resolved on a resolver thread (runtime/resolve.c), then the addresses re-checked.
frame "$E" "{\"host\":\"localhost\",\"port\":$AP}" $'GET /hello.txt HTTP/1.0\r\n\r\n' >"$TMP/raw-name" 2>&1
check "host side resolves an allowed name and tunnels to it" python3 -c '
import sys
t=open(sys.argv[1]).read().split("\n")
assert t[0]=="\"Ok\"" and "allowed-body" in "\n".join(t), t' "$TMP/raw-name"
frame "$E" "{\"host\":\"localhost\",\"port\":$DP}" >"$TMP/raw-name-denied" 2>&1
check "host side refuses an allowed name resolving to a denied address" \
	grep -q 'localhost resolves to 127.0.0.1, which matches deny rule' "$TMP/raw-name-denied"
CLOSED=$(free_port)
frame "$E" "{\"host\":\"127.0.0.1\",\"port\":$CLOSED}" >"$TMP/raw-refused" 2>&1
check "host side reports a refused connection as Err 111" python3 -c '
import json,sys
r=json.loads(open(sys.argv[1]).readline()); assert r["Err"]["os_code"]==111, r' "$TMP/raw-refused"

# ps and stop
"$ENCLAVER" ps >"$TMP/ps1.json"
check "ps lists the running enclave" python3 -c '
import json,sys
v=json.load(open(sys.argv[1])); assert len(v)==1 and v[0]["EnclaveName"]=="web" and v[0]["ProcessID"]==int(sys.argv[2]), v
assert v[0]["Ports"]==["127.0.0.1:%s:%s" % (sys.argv[3], sys.argv[4])], v
assert v[0]["Image"] is None and v[0]["EIF"]==sys.argv[5], v' "$TMP/ps1.json" "$wp" "$HP" "$EP" "$EIF"
# ps --json: nitro-cli describe-enclaves' fields, names and order; Measurements are the EIF's
"$ENCLAVER" ps --json >"$TMP/ps1-describe.json"
check "ps --json has describe-enclaves' fields" python3 -c '
import json,sys
v=json.load(open(sys.argv[1])); d=json.load(open(sys.argv[3]))
assert len(v)==1, v
e=v[0]
assert list(e)==["EnclaveName","EnclaveID","ProcessID","EnclaveCID","NumberOfCPUs","CPUIDs","MemoryMiB","State","Flags","Measurements"], list(e)
assert e["EnclaveName"]=="web" and e["ProcessID"]==int(sys.argv[2]) and e["State"]=="RUNNING" and e["Flags"]=="NONE", e
assert e["NumberOfCPUs"]==len(e["CPUIDs"])==2 and e["MemoryMiB"]>0, e
assert e["Measurements"]==d["Measurements"], (e["Measurements"], d["Measurements"])' "$TMP/ps1-describe.json" "$wp" "$TMP/describe.json"
check "stop by name" "$ENCLAVER" stop web
reap $wp
rc=$?
check "stopped run exits 109" test $rc -eq 109
# (a bounded wait: the killed server may be a zombie until init reaps it)
check "the app's server is gone after stop" wait_for bash -c "! kill -0 $(cat "$TMP/app-server.pid") 2>/dev/null"
# (this run's own socket path: other test runs on the machine have odyns of their own)
check "no odyn left from the stopped run" bash -c "! pgrep -f '$TMP/[s]ock1/guest-17000' >/dev/null"
check "ps is empty after stop" test "$("$ENCLAVER" ps)" = "[]"
check "the app's log reached stdout before the stop" test -s "$TMP/w.out" -o -e "$TMP/app-ready"

# --- several enclaves at once; conflicts refused; SIGTERM to the run process
cat >"$TMP/loop.sh" <<'APP'
trap 'echo got-term; exit 5' TERM
echo started
while :; do sleep 0.05; done
APP
H1=$(free_port)
ENCLAVER_LOCAL_CMD="exec sh $TMP/loop.sh" "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" \
	--name one --cid 77 -p "$H1:$EP" >"$TMP/one.out" 2>"$TMP/one.err" &
p1=$!
bg_track $p1
wait_for grep -q started "$TMP/one.out"
H2=$(free_port)
ENCLAVER_LOCAL_CMD="sh $TMP/loop.sh" "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" \
	--name two --cid 78 -p "$H2:$EP" --debug-mode --cpu-count 4 --memory-mb 2048 >"$TMP/two.out" 2>"$TMP/two.err" &
p2=$!
bg_track $p2
wait_for grep -q started "$TMP/two.out"
check "two enclaves listed" test "$("$ENCLAVER" ps | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2
check "ps --json: CPUs, memory and the debug flag as the run asked" python3 -c '
import json,subprocess,sys
v={e["EnclaveName"]: e for e in json.loads(subprocess.check_output([sys.argv[1],"ps","--json"]))}
two=v["two"]; one=v["one"]
assert two["EnclaveCID"]==78 and two["NumberOfCPUs"]==4 and two["CPUIDs"]==[0,1,2,3] and two["MemoryMiB"]==2048, two
assert two["Flags"]=="DEBUG_MODE" and one["Flags"]=="NONE" and one["EnclaveCID"]==77, v
assert two["Measurements"]["PCR0"]==one["Measurements"]["PCR0"] and len(two["Measurements"]["PCR0"])==96, v' "$ENCLAVER"
check_fails "ps refuses an unknown option" 'unknown option' "$ENCLAVER" ps --jsonx
check_fails "a CID in use is refused" 'CID 77 is in use by enclave' \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" --name three --cid 77 -p 0:$EP
check_fails "a host port in use is refused" "host port 127.0.0.1:$H1 is in use by enclave" \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" --name three -p "$H1:$EP"
check_fails "a name in use is refused" 'the name two is taken' \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" --name two -p 0:$EP
kill -TERM $p1
reap $p1
check "SIGTERM: graceful stop, exit 109" test $? -eq 109
check "SIGTERM: the app got its own SIGTERM and its last words were printed" grep -qx '\[app\] got-term' "$TMP/one.out"
check "SIGTERM: reported as a stop by signal 15" grep -q 'stopped by signal 15' "$TMP/one.err"
check "the other enclave still runs" kill -0 $p2
check "ps shows only the other one" python3 -c '
import json,subprocess,sys
v=json.loads(subprocess.check_output([sys.argv[1],"ps"])); assert [e["EnclaveName"] for e in v]==["two"], v' "$ENCLAVER"
# A run process that died without cleaning up: its entry is pruned.
kill -KILL $p2
wait $p2 2>/dev/null
check "ps prunes the entry of a dead run process" test "$("$ENCLAVER" ps 2>/dev/null)" = "[]"
check_fails "stop of an unknown enclave" 'no running enclave has the id or name "nope"' "$ENCLAVER" stop nope
pkill -KILL -f "$TMP/loop.sh" 2>/dev/null # the SIGKILLed run could not stop its odyn

# --- no --cid: the run picks the lowest free CID from 16 (the emulator takes the CID it is given;
# a second emulated enclave used to get 16 again and be refused), held while the first still runs
H3=$(free_port)
ENCLAVER_LOCAL_CMD="exec sh $TMP/loop.sh" "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" \
	--name c1 -p "$H3:$EP" >"$TMP/c1.out" 2>"$TMP/c1.err" &
p3=$!
bg_track $p3
wait_for grep -q started "$TMP/c1.out"
H4=$(free_port)
ENCLAVER_LOCAL_CMD="exec sh $TMP/loop.sh" "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" \
	--name c2 -p "$H4:$EP" >"$TMP/c2.out" 2>"$TMP/c2.err" &
p4=$!
bg_track $p4
wait_for grep -q started "$TMP/c2.out"
check "two runs without --cid: CIDs 16 and 17" python3 -c '
import json,subprocess,sys
v={e["EnclaveName"]: e["EnclaveCID"] for e in json.loads(subprocess.check_output([sys.argv[1],"ps"]))}
assert v=={"c1":16,"c2":17}, v' "$ENCLAVER"
check_fails "--cid 16 is still refused while c1 has it" 'CID 16 is in use by enclave' \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/m.yaml" --name c3 --cid 16 -p 0:$EP
kill -TERM $p3
reap $p3
check "the first run stopped (109)" test $? -eq 109
run_local c4 'echo picked' --manifest "$TMP/plain.yaml" --name c4
check "a third run gets the freed CID 16 (launch info)" python3 -c '
import json,sys
t=open(sys.argv[1]).read(); d=json.loads(t[t.index("{"):t.rindex("}")+1])
assert d["EnclaveCID"]==16, d' "$TMP/c4.err"
kill -TERM $p4
reap $p4
check "the second run stopped (109)" test $? -eq 109

# --- --verify-before-run
run_local v1 'echo verified' --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/build.json"
check "verify: eif build's JSON matches: the app runs" test $? -eq 0 -a "$(cat "$TMP/v1.out")" = "[app] verified"
run_local v2 'echo verified' --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/describe.json"
check "verify: describe-eif's JSON matches" test $? -eq 0
run_local v3 'echo verified' --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/measurements.json"
check "verify: a bare measurements object (eif build's) matches" test $? -eq 0
python3 - "$TMP/build.json" "$TMP/bad-pcrs.json" <<'PY'
import json,sys
d=json.load(open(sys.argv[1])); m=d["Measurements"]
for k in ("PCR0","PCR2"):
    m[k] = ("0" if m[k][0] != "0" else "1") + m[k][1:]
json.dump(d, open(sys.argv[2],"w"))
PY
check_fails "verify: a mismatch is refused, naming PCR0" 'PCR0: expected' \
	env ENCLAVER_LOCAL_CMD="touch $TMP/must-not-run" "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/bad-pcrs.json"
check "verify: the mismatch names PCR2 too" grep -q 'PCR2: expected' "$TMP/.stderr"
check "verify: the mismatch does not name PCR1" bash -c "! grep -q 'PCR1:' '$TMP/.stderr'"
check "verify: nothing ran after a mismatch" test ! -e "$TMP/must-not-run"
printf '{"PCR8": "%s"}' "$(printf 'ab%.0s' $(seq 48))" >"$TMP/pcr8.json"
check_fails "verify: PCR8 asked of an unsigned EIF" 'PCR8: expected .* not signed' \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/pcr8.json"
echo '{"Measurements": {"PCR0": ' >"$TMP/trunc.json"
check_fails "verify: truncated JSON names the file and line" 'trunc.json: line [0-9]+ column' \
	"$ENCLAVER" run --eif "$EIF" --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/trunc.json"
echo '{"PCR0": "abc"}' >"$TMP/short.json"
check_fails "verify: a short PCR is refused" 'PCR0: want 96 hex digits' \
	"$ENCLAVER" run --eif "$EIF" --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/short.json"
echo '{"PCR9": "00"}' >"$TMP/key.json"
check_fails "verify: an unknown key is refused" 'unknown key "PCR9"' \
	"$ENCLAVER" run --eif "$EIF" --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/key.json"
echo '{"HashAlgorithm": "x"}' >"$TMP/none.json"
check_fails "verify: no PCR at all is refused" 'no PCR0, PCR1, PCR2 or PCR8' \
	"$ENCLAVER" run --eif "$EIF" --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/none.json"
echo '[1,2]' >"$TMP/array.json"
check_fails "verify: a JSON array is refused" 'want an object' \
	"$ENCLAVER" run --eif "$EIF" --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/array.json"
check_fails "verify: a missing file is named" 'nothing.json' \
	"$ENCLAVER" run --eif "$EIF" --manifest "$TMP/plain.yaml" --verify-before-run "$TMP/nothing.json"

# --- a release image on an oci: layout (made here with Python's tarfile): EIF and manifest read
# from the flattened layers; a later layer's manifest wins; a whiteout removes the EIF.
cat >"$TMP/mkimage.py" <<'PY'
import hashlib, io, json, os, sys, tarfile
out, eif, old_yaml, new_yaml, tag, whiteout = sys.argv[1:7]
os.makedirs(out + "/blobs/sha256", exist_ok=True)
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(out + "/blobs/sha256/" + d, "wb").write(data)
    return "sha256:" + d, len(data)
def layer(files):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files:
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    return b.getvalue()
layers = [layer([("enclave/application.eif", open(eif, "rb").read()), ("enclave/enclaver.yaml", open(old_yaml, "rb").read())]),
          layer([("enclave/enclaver.yaml", open(new_yaml, "rb").read())])]
if whiteout == "1":
    layers.append(layer([("enclave/.wh.application.eif", b"")]))
descs = []
for l in layers:
    d, n = blob(l)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
cfg = {"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/usr/local/bin/enclaver-run"]},
       "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in descs]}}
cd, cn = blob(json.dumps(cfg).encode())
man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": descs}
md, mn = blob(json.dumps(man).encode())
idx_path = out + "/index.json"
idx = json.load(open(idx_path)) if os.path.exists(idx_path) else {"schemaVersion": 2, "manifests": []}
idx["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                         "annotations": {"org.opencontainers.image.ref.name": tag}})
json.dump(idx, open(idx_path, "w"))
open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
sed 's/^name: plain/name: old-layer/' "$TMP/plain.yaml" >"$TMP/old.yaml"
sed 's/^name: plain/name: from-image/' "$TMP/plain.yaml" >"$TMP/new.yaml"
python3 "$TMP/mkimage.py" "$TMP/rel" "$EIF" "$TMP/old.yaml" "$TMP/new.yaml" rel 0
python3 "$TMP/mkimage.py" "$TMP/rel" "$EIF" "$TMP/old.yaml" "$TMP/new.yaml" gone 1
mkdir -p "$TMP/tmpdir"
TMPDIR=$TMP/tmpdir ENCLAVER_LOCAL_CMD='echo from-release-image' "$RUNL" run --launcher local --cache-dir "$TMP/cache" \
	--verify-before-run "$TMP/build.json" "oci:$TMP/rel:rel" >"$TMP/img.out" 2>"$TMP/img.err"
check "release image: runs, and the extracted EIF verifies" test $? -eq 0 -a "$(cat "$TMP/img.out")" = "[app] from-release-image"
check "release image: the later layer's manifest is used" grep -q '"EnclaveName": "from-image"' "$TMP/img.err"
check "release image: the temporary folder is removed" test -z "$(ls -A "$TMP/tmpdir")"
# ps names the image that was run, not only the run's temporary copy of its EIF
ENCLAVER_LOCAL_CMD="touch $TMP/img-up; while [ ! -e $TMP/img-go ]; do sleep 0.05; done" "$RUNL" run --launcher local \
	--cache-dir "$TMP/cache" "oci:$TMP/rel:rel" >"$TMP/imgps.out" 2>"$TMP/imgps.err" &
ip=$!
bg_track $ip
wait_for test -e "$TMP/img-up"
"$ENCLAVER" ps >"$TMP/ps-img.json"
touch "$TMP/img-go"
reap $ip
check "ps: a run from a release image shows its reference as Image" python3 -c '
import json,sys
v=json.load(open(sys.argv[1])); assert len(v)==1 and v[0]["Image"]==sys.argv[2], v
assert list(v[0])==["EnclaveID","EnclaveName","EnclaveCID","ProcessID","Launcher","Ports","Image","EIF","Started"], v' \
	"$TMP/ps-img.json" "oci:$TMP/rel:rel"
printf 'version: v1\nname: by-target\ntarget: "oci:%s:rel"\nsources:\n  app: "oci:x:y"\n' "$TMP/rel" >"$TMP/bytarget.yaml"
ENCLAVER_LOCAL_CMD='echo by-target' "$RUNL" run --launcher local --cache-dir "$TMP/cache" -f "$TMP/bytarget.yaml" \
	>"$TMP/t.out" 2>"$TMP/t.err"
check_fails "release image: too little memory names the image, not its temporary EIF" \
	"oci:$TMP/rel:rel needs at least 129 MiB" \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --cache-dir "$TMP/cache" --memory-mb 64 "oci:$TMP/rel:rel"
check "run -f FILE runs the manifest's target" test $? -eq 0 -a "$(cat "$TMP/t.out")" = "[app] by-target"
check_fails "release image: a whited-out EIF is reported" 'has no /enclave/application.eif' \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --cache-dir "$TMP/cache" "oci:$TMP/rel:gone"
check_fails "release image: a missing image is reported" 'release image: oci:.*nope' \
	"$ENCLAVER" run --cache-dir "$TMP/cache" "oci:$TMP/nope:rel"
check_fails "run -f with a missing manifest names it" 'nonexistent.yaml' "$ENCLAVER" run -f "$TMP/nonexistent.yaml"

# --- bad -p strings and other usage errors
for bad in 80 a:80 80:b 1.2.3:80:80 80:80:80:80 70000:80 80:0 80:17001 '[::1:80:80' '[zz]:80:80' ':80' '80:' \
	'999.1.1.1:80:80'; do
	check_fails "-p '$bad' is refused" '^enclaver run: -p' "$ENCLAVER" run --eif "$EIF" --manifest "$TMP/plain.yaml" -p "$bad"
done
check_fails "--eif without --manifest" 'go together' "$ENCLAVER" run --eif "$EIF"
check_fails "an unknown launcher" 'not a launcher of this build' "$ENCLAVER" run --launcher local --eif "$EIF" --manifest "$TMP/plain.yaml"
check_fails "a host port in use is named" "ingress -p 127.0.0.1:$AP:$EP \\(is the port in use" \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/plain.yaml" -p "127.0.0.1:$AP:$EP"

# --- too little memory for the EIF is refused before the launch, with the MiB it needs (kernel
# 70000 B + ramdisks 2 x 80000 B round up to 1 MiB, plus the 128 MiB margin: 129)
check_fails "--memory-mb below the EIF's needs: refused, names the MiB and the option" \
	'needs at least 129 MiB .* enclave would get 100 MiB \(--memory-mb\): give --memory-mb 129 or more, or set defaults.memory_mb' \
	env ENCLAVER_LOCAL_CMD='echo started' "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/plain.yaml" --memory-mb 100
check "the refused run did not start the app" bash -c "! grep -q started '$TMP/.stdout'"
printf 'version: v1\nname: small\ntarget: "oci:x:y"\nsources:\n  app: "oci:x:y"\ndefaults:\n  memory_mb: 64\n' >"$TMP/small.yaml"
check_fails "defaults.memory_mb below the EIF's needs: refused, names the field" \
	"would get 64 MiB \\(the manifest's defaults.memory_mb\\): give --memory-mb 129" \
	env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$EIF" --manifest "$TMP/small.yaml"
check_fails "the emulator launcher is held to the same check (refused before QEMU is looked for)" \
	'needs at least 129 MiB .*give --memory-mb 129' \
	"$ENCLAVER" run --emulate --eif "$EIF" --manifest "$TMP/plain.yaml" --memory-mb 100
check "the memory refusal is exit 108" test "$(env ENCLAVER_LOCAL_CMD=true "$RUNL" run --launcher local --eif "$EIF" \
	--manifest "$TMP/small.yaml" >/dev/null 2>&1; echo $?)" = 108
run_local mem129 'echo fits' --manifest "$TMP/small.yaml" --memory-mb 129
check "--memory-mb at exactly the EIF's needs runs" grep -qx '\[app\] fits' "$TMP/mem129.out"

# --- enclaver-run: the entrypoint's flags and subcommands
ERUN=$(dirname "$ENCLAVER")/enclaver-run
check "enclaver-run print-manifest prints the manifest" \
	bash -c "'$ERUN' print-manifest --manifest-file '$TMP/m.yaml' | cmp - '$TMP/m.yaml'"
check "enclaver-run describe-eif is describe-eif's JSON" \
	bash -c "'$ERUN' describe-eif --eif-file '$EIF' | cmp - '$TMP/describe.json'"
check_fails "enclaver-run takes no IMAGE" 'unexpected argument' "$ERUN" some-image
check_fails "enclaver-run defaults to /enclave/" '/enclave/enclaver.yaml' "$ERUN"
"$ERUN" --help >"$TMP/erun.help"
check "enclaver-run --help lists no image-pulling options" bash -c "! grep -Eq -- '--creds|--platform|--cache-dir|--offline|Pulling IMAGE' '$TMP/erun.help'"
check "enclaver-run --help lists its own" grep -q -- '--eif-file' "$TMP/erun.help"
"$ENCLAVER" run --help >"$TMP/run.help"
check "enclaver run --help still lists them" grep -q -- '--creds' "$TMP/run.help"
check_fails "enclaver-run refuses an image-pulling option, naming it" '--creds pulls images: enclaver-run runs the files in its own image' \
	"$ERUN" --creds u:p --eif-file "$EIF" --manifest-file "$TMP/plain.yaml"
check_fails "enclaver-run refuses -f" '-f: give --manifest-file' "$ERUN" -f "$TMP/plain.yaml"

check "no sanitizer report from any run" bash -c "! grep -l 'Sanitizer' '$TMP'/*.err"

done_testing
