#!/usr/bin/env bash
# odyn.sh: the product end to end in the emulator, with odyn as PID 1: a sample app image (the
# static tests/e2e/app.c, written as an OCI layout by testdata/example/make_app_image.py) built
# by `enclaver build` with Debian's kernel bundle and a signature, booted once through the
# emulator launcher (tests/helpers/launcher-probe.c, the calls the outer side makes). Checks the
# heartbeat, the app's output on the log stream (17001), its exit code on the status stream
# (17000), the enclave's connection to a parent port, PCR0/1/2/8 read inside through /dev/nsm
# against `enclaver describe-eif`, the attestation API (odyn on 127.0.0.1:API_PORT, answered by
# QEMU's emulated NSM): the document the app got, sent to the parent, checked by `enclaver
# verify-attestation` (fields, PCRs against describe-eif, and QEMU's missing signature refused),
# a bad request answered 400, and that nothing is left behind. Needs ENCLAVER and QEMU.
set -u
: "${QEMU:?QEMU must name a qemu-system-x86_64 with the nitro-enclave machine}"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
source "$ROOT/tests/cli/helpers/build_fixtures.sh"
# TCG is slow and CI machines are shared: generous bounds, never timed assertions.
BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-400}
RUN_TIMEOUT=${E2E_RUN_TIMEOUT:-900}
PROBE=$(dirname "$ENCLAVER")/../helpers/launcher-probe
# odyn runs inside the enclave: the static release build (the asan variant's is dynamic).
ODYN=$ROOT/build/release/bin/odyn
APP_PORT=5005 # the app tells the parent it is done on this port
APP_CODE=42
API_PORT=9001  # odyn's attestation API inside the enclave (manifest api.listen_port)
CID=23

KB=$TMP/kb
make_kernel_bundle "$KB"
cc -static -O2 -Wall -Wextra -Werror -o "$TMP/app-bin" "$ROOT/tests/e2e/app.c" 2>"$TMP/cc.log" ||
	not_ok "compile the test app" "$(cat "$TMP/cc.log")"
# What the app asks the attestation API for: a fresh nonce, user data and a public key (PEM in
# the request, SubjectPublicKeyInfo DER in the document), and a request with 513 bytes of user
# data (the NSM's limit is 512) that must get a 400.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/api-key.pem" 2>/dev/null &&
	openssl pkey -in "$TMP/api-key.pem" -pubout -out "$TMP/api-pub.pem" &&
	openssl pkey -pubin -in "$TMP/api-pub.pem" -outform DER -out "$TMP/api-pub.der" &&
	openssl rand -out "$TMP/nonce.bin" 32 && openssl rand -out "$TMP/user-data.bin" 100 ||
	not_ok "make the attestation request's key, nonce and user data"
APP_CMD=$(python3 - "$TMP" "$APP_PORT" "$APP_CODE" "$API_PORT" <<'PY'
import base64, json, os, sys
tmp, port, code, api = sys.argv[1:]
b64 = lambda name: base64.b64encode(open(os.path.join(tmp, name), "rb").read()).decode()
body = json.dumps({"nonce": b64("nonce.bin"), "user_data": b64("user-data.bin"),
                   "public_key": open(os.path.join(tmp, "api-pub.pem")).read()})
bad = json.dumps({"user_data": base64.b64encode(b"u" * 513).decode()})
print(json.dumps(["report", port, code, api, body, bad]))
PY
) make_app_image "$TMP/app" v1 "$TMP/app-bin"
cat >"$TMP/enclaver.yaml" <<EOF
version: v1
name: e2e
target: e2e:enclave
sources:
  app: oci:$TMP/app:v1
api:
  listen_port: $API_PORT
signature:
  certificate: $TESTDATA/eif/signing_cert.pem
  key: $TESTDATA/eif/signing_key.pem
EOF
export ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1700000000
check "enclaver build of the sample app (odyn as init, signed)" "$ENCLAVER" build --odyn "$ODYN" \
	--kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/app.eif"
"$ENCLAVER" describe-eif "$TMP/app.eif" >"$TMP/describe.json" 2>"$TMP/describe.err"

export XDG_RUNTIME_DIR=$TMP/run
mkdir -p "$XDG_RUNTIME_DIR"
T_START=$(date +%s)
timeout -k 30 -s INT "$RUN_TIMEOUT" "$PROBE" --eif "$TMP/app.eif" --qemu "$QEMU" --cid $CID --memory-mb 512 \
	--timeout "$BOOT_TIMEOUT" --console "$TMP/console.log" --stream "17000=$TMP/status" \
	--stream "17001=$TMP/log" --parent "$APP_PORT=$TMP/parent" >"$TMP/probe.out" 2>"$TMP/probe.err"
rc=$?
T_END=$(date +%s)
check "the launcher ran the enclave until it stopped (probe exit 0)" test $rc -eq 0
[ $rc -eq 0 ] || echo "# probe: $(cat "$TMP/probe.out" "$TMP/probe.err" | tail -20)"
grep -q '^heartbeat [0-9.]*$' "$TMP/probe.out" && ok "heartbeat answered (odyn's init)" ||
	not_ok "heartbeat answered (odyn's init)" "$(tail -20 "$TMP/console.log")"
check "QEMU exited 0 after odyn rebooted the enclave" grep -qx 'qemu-exit 0' "$TMP/probe.out"

if grep -qx 'app: hello from uid 1000 gid 1000 in /app, GREETING=hi' "$TMP/log"; then
	ok "the app's output arrives on the log stream (User, WorkingDir and Env of the image applied)"
else
	not_ok "the app's output arrives on the log stream (User, WorkingDir and Env of the image applied)" \
		"log: $(head -c 1500 "$TMP/log")" "console: $(grep -v '^\[ *[0-9]' "$TMP/console.log" | tail -15)"
fi
check "status stream: running, then the app's exit code" \
	diff <(printf '{"status":"running"}\n{"status":"exited","code":%d}\n' $APP_CODE) "$TMP/status"
check "the enclave reached the parent's port through listen_parent" grep -qx 'report done' "$TMP/parent"
check "the app got the parent's answer" grep -qx 'app: the parent says: ok' "$TMP/log"
check_nsm_pcrs "$TMP/describe.json" "$TMP/log" 0 1 2 8

# The attestation API, answered by QEMU's NSM. QEMU (hw/virtio/virtio-nsm.c) signs nothing: its
# document has the algorithm -1 and 64 zero bytes for the signature, the certificate and the one
# CA bundle entry, so verify-attestation must refuse it as unsigned while the structure, PCRs
# and nonce pass; --insecure-skip-signature then checks exactly those.
check "the attestation API answered 200" grep -qx 'app: api status: HTTP/1.1 200 OK' "$TMP/log"
sed -n 's/^attestation //p' "$TMP/parent" | python3 -c \
	'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' >"$TMP/doc.cbor"
check "the app sent the document to the parent" test -s "$TMP/doc.cbor"
pcr_args=()
for i in 0 1 2 8; do pcr_args+=(--pcr$i "$(json_get "$TMP/describe.json" "d['Measurements']['PCR$i']")"); done
NONCE_HEX=$(od -An -v -tx1 "$TMP/nonce.bin" | tr -d ' \n')
"$ENCLAVER" verify-attestation "$TMP/doc.cbor" "${pcr_args[@]}" --nonce "$NONCE_HEX" >"$TMP/verify.json" 2>"$TMP/verify.err"
rc=$?
if [ $rc -eq 1 ] && grep -q 'signature: 64 zero bytes (algorithm -1): the document is unsigned, as an emulated NSM' \
	"$TMP/verify.err"; then
	ok "verify-attestation refuses QEMU's document as unsigned (exit 1, reason named)"
else
	not_ok "verify-attestation refuses QEMU's document as unsigned (exit 1, reason named)" "rc=$rc" \
		"$(cat "$TMP/verify.err" "$TMP/verify.json" | head -40)"
fi
check "... its checks: structure, PCRs and nonce pass, signature and chain fail" python3 - "$TMP/verify.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["Checks"]
sys.exit(0 if c == {"Structure": True, "PCRs": True, "Nonce": True, "Signature": False, "CertificateChain": False} else 1)
PY
"$ENCLAVER" verify-attestation "$TMP/doc.cbor" "${pcr_args[@]}" --nonce "$NONCE_HEX" --insecure-skip-signature \
	>"$TMP/skip.json" 2>"$TMP/skip.err"
rc=$?
if [ $rc -eq 0 ] && grep -q 'signature were NOT checked' "$TMP/skip.err"; then
	ok "verify-attestation --insecure-skip-signature: exit 0 with the PCRs and nonce expected, and a warning"
else
	not_ok "verify-attestation --insecure-skip-signature: exit 0 with the PCRs and nonce expected, and a warning" \
		"rc=$rc" "$(cat "$TMP/skip.err" "$TMP/skip.json" | head -40)"
fi
MODULE_ID=$(printf 'i-0000000000000000-enc%016x' $CID) # the machine id= the emulator launcher gives QEMU
# Every field against what was asked for or measured independently: the nonce, user data and
# key the test made, PCR0/1/2/8 from describe-eif, QEMU's 16 locked PCRs (the others zero: no
# parent-role/parent-id), the timestamp within the run.
python3 - "$TMP" "$MODULE_ID" "$T_START" "$T_END" >"$TMP/fields.out" 2>&1 <<'PY'
import base64, json, os, sys
tmp, module_id, t0, t1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
v = json.load(open(os.path.join(tmp, "skip.json")))
d = v["Document"]
m = json.load(open(os.path.join(tmp, "describe.json")))["Measurements"]
b64 = lambda name: base64.b64encode(open(os.path.join(tmp, name), "rb").read()).decode()
bad = []
def want(name, got, exp):
    if got != exp:
        bad.append("%s: got %r, expected %r" % (name, got, exp))
want("Valid", v["Valid"], None)
want("Checks", v["Checks"], {"Structure": True, "PCRs": True, "Nonce": True, "Signature": None, "CertificateChain": None})
want("ModuleId", d["ModuleId"], module_id)
want("Digest", d["Digest"], "SHA384")
want("Nonce", d["Nonce"], b64("nonce.bin"))
want("UserData", d["UserData"], b64("user-data.bin"))
want("PublicKey", d["PublicKey"], b64("api-pub.der"))
want("PCR indexes", sorted(d["PCRs"], key=lambda k: int(k[3:])), ["PCR%d" % i for i in range(16)])
for i in range(16):
    exp = m["PCR%d" % i] if i in (0, 1, 2, 8) else "0" * 96
    want("PCR%d" % i, d["PCRs"].get("PCR%d" % i), exp)
if not (t0 * 1000 <= d["Timestamp"] <= t1 * 1000):
    bad.append("Timestamp %d not within the run [%d, %d] s" % (d["Timestamp"], t0, t1))
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
check "the document's fields: module id, digest, nonce, user data, public key, PCR0-15, timestamp" \
	test -z "$(cat "$TMP/fields.out")"
[ -n "$(cat "$TMP/fields.out")" ] && echo "# $(head -20 "$TMP/fields.out")"
check "a bad request from inside (513 bytes of user data) gets a 400" \
	grep -qx 'app: api bad request: HTTP/1.1 400 Bad Request' "$TMP/log"
check "... saying why" grep -qx 'app: api bad request body: user_data: 513 bytes, at most 512' "$TMP/log"

grep -q Sanitizer "$TMP/probe.err" && not_ok "no sanitizer report" "$(grep -A20 Sanitizer "$TMP/probe.err" | head -40)"
if pgrep -f "$TMP/app.eif" >/dev/null; then not_ok "no process left behind" "$(pgrep -af "$TMP/app.eif")"; else ok "no process left behind"; fi
check "the launcher removed its runtime folder" test -z "$(ls -A "$XDG_RUNTIME_DIR")"

# Figures for docs/emulator.md (no assertions on them).
hb=$(sed -n 's/^heartbeat //p' "$TMP/probe.out")
run=$(sed -n 's/^stream 17000 first-byte //p' "$TMP/probe.out")
doc=$(sed -n 's/^app: api document: \([0-9]*\) bytes$/\1/p' "$TMP/log")
echo "# figures: heartbeat after ${hb:-?} s, app status stream first byte at ${run:-?} s (from start)," \
	"attestation document ${doc:-?} bytes"
done_testing
