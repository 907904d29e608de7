#!/usr/bin/env bash
# test_odyn_kms: odyn's KMS proxy as a host process against test servers
# owned by this script (tests/cli/kms_test_server.py): an IMDSv2 server and
# an HTTPS KMS that checks SigV4 and encrypts to the attested key with CMS.
# The path is the real one: app (curl, AWS-style JSON 1.1 request) -> odyn
# -> egress tunnel (odyn-peer as the host) -> TLS with a verified
# certificate -> KMS; attestation through the NSM stand-in.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"
STANDIN=$(dirname "$ENCLAVER")/../helpers/nsm-standin
SERVER=$(dirname "$0")/kms_test_server.py

# A CA and a certificate for kms.test (the name the proxy verifies).
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=test-ca -keyout "$TMP/ca.key" -out "$TMP/ca.pem" \
	-days 2 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=kms.test -keyout "$TMP/kms.key" -out "$TMP/kms.csr" 2>/dev/null
printf 'subjectAltName=DNS:kms.test\n' >"$TMP/san"
openssl x509 -req -in "$TMP/kms.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial -days 2 \
	-extfile "$TMP/san" -out "$TMP/kms.pem" 2>/dev/null
# Another CA, for the untrusted-certificate case.
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=other-ca -keyout "$TMP/o.key" -out "$TMP/other-ca.pem" \
	-days 2 2>/dev/null

mkdir -p "$TMP/pki"
"$STANDIN" "unix:$TMP/nsm" "$TMP/pki" 2>"$TMP/standin.err" &
bg_track $!
python3 "$SERVER" imds "$TMP/imds.port" "$TMP/aws.log" 3600 &
bg_track $!
python3 "$SERVER" kms "$TMP/kms.port" "$TMP/aws.log" "$TMP/kms.pem" "$TMP/kms.key" "$TMP/pki/root.pem" \
	"$ENCLAVER" &
bg_track $!
"$PEER" egress-host "unix:$TMP/egress" >/dev/null 2>"$TMP/egress.log" &
bg_track $!
wait_for test -S "$TMP/nsm"
wait_for test -s "$TMP/imds.port"
wait_for test -s "$TMP/kms.port"
wait_for test -S "$TMP/egress"
IMDS_PORT=$(cat "$TMP/imds.port")
KMS_PORT=$(cat "$TMP/kms.port")

# The KMS proxy's own connections pass the egress policy like the app's: IMDS and KMS allowed.
ALLOW=(--egress-allow 169.254.169.254 --egress-allow kms.test)
start_odyn() { # PORT CA-FILE LOGFILE
	"$ODYN" --no-console --status "unix:$TMP/st.$1" --log "unix:$TMP/log.$1" --linger-ms 0 "${ALLOW[@]}" \
		--nsm "unix:$TMP/nsm" --egress-host "unix:$TMP/egress" --proxy-port "$(free_port)" --kms-proxy-port "$1" \
		--imds "169.254.169.254:$IMDS_PORT" --kms-endpoint "us-test-1=kms.test:$KMS_PORT" \
		--kms-ca-file "$2" \
		-- sh -c "echo \"endpoint=\$AWS_KMS_ENDPOINT\"; while [ ! -e '$TMP/stop.$1' ]; do sleep 0.05; done" \
		2>"$3" &
	bg_track $!
	wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $1))"
}
KP=$(free_port)
start_odyn "$KP" "$TMP/ca.pem" "$TMP/odyn.err"
op=${_bg_pids[-1]}

kms() { # ACTION JSON -> body in $TMP/r, prints the status
	curl -s -S --max-time 60 -o "$TMP/r" -w '%{http_code}' -X POST "http://127.0.0.1:$KP/" \
		-H "X-Amz-Target: TrentService.$1" -H 'Content-Type: application/x-amz-json-1.1' \
		-H 'Authorization: AWS4-HMAC-SHA256 Credential=APPKEY/20200101/us-test-1/kms/aws4_request, SignedHeaders=host, Signature=00' \
		--data-binary "$2"
}
field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print('' if v is None else v)" "$TMP/r" "$1"; }
b64() { printf '%s' "$1" | base64 -w0; }

c=$(kms Decrypt "{\"CiphertextBlob\": \"$(b64 blob-1)\", \"KeyId\": \"alias/test\"}")
check "Decrypt: 200" test "$c" = 200
check "Decrypt: Plaintext decrypted from CiphertextForRecipient" test "$(field Plaintext)" = "$(b64 plain:blob-1)"
check "Decrypt: no CiphertextForRecipient left" test -z "$(field CiphertextForRecipient)"
check "KMS saw a Recipient and a valid signature" grep -q "kms Decrypt signed-by AKIDTEST1 recipient=yes" "$TMP/aws.log"

c=$(kms GenerateDataKey '{"KeyId": "alias/test", "KeySpec": "AES_256"}')
check "GenerateDataKey: Plaintext" test "$c" = 200 -a "$(field Plaintext)" = "$(b64 data-key-kkkkkkkkkkkkkkkkkkkkkkk)"
check "GenerateDataKey: CiphertextBlob passes through" test "$(field CiphertextBlob)" = "$(b64 wrapped)"
c=$(kms GenerateDataKeyPair '{"KeyId": "alias/test", "KeyPairSpec": "RSA_2048"}')
check "GenerateDataKeyPair: PrivateKeyPlaintext" test "$c" = 200 -a "$(field PrivateKeyPlaintext)" = "$(b64 private-key-der)"
c=$(kms DeriveSharedSecret '{"KeyId": "alias/test", "KeyAgreementAlgorithm": "ECDH", "PublicKey": "AAAA"}')
check "DeriveSharedSecret: SharedSecret" test "$c" = 200 -a "$(field SharedSecret)" = "$(b64 shared-secret)"
c=$(kms GenerateRandom '{"NumberOfBytes": 8}')
check "GenerateRandom: Plaintext" test "$c" = 200 -a "$(field Plaintext)" = "$(b64 rrrrrrrr)"
c=$(kms ListKeys '{}')
check "other actions are forwarded and re-signed" test "$c" = 200 -a "$(field Action)" = ListKeys
check "... without a Recipient" grep -q "kms ListKeys signed-by AKIDTEST1 recipient=no" "$TMP/aws.log"
check "credentials fetched once while valid" test "$(grep -c 'imds issued' "$TMP/aws.log")" -eq 1
check "IMDSv2: a session token first" grep -q "imds PUT /latest/api/token" "$TMP/aws.log"

# Chunked answers from upstream (as load balancers may send them) are decoded: a Decrypt whose
# CiphertextForRecipient arrives in uneven chunks with an extension and a trailer field.
c=$(kms Decrypt "{\"CiphertextBlob\": \"$(b64 blob-c)\", \"EncryptionContext\": {\"test-reply\": \"chunked\"}}")
check "chunked KMS answer: 200" test "$c" = 200
check "... the Plaintext decrypted from its CiphertextForRecipient" test "$(field Plaintext)" = "$(b64 plain:blob-c)"
check "... KMS did answer chunked" grep -q "kms Decrypt replied chunked" "$TMP/aws.log"
c=$(kms ListKeys '{"EncryptionContext": {"test-reply": "chunked"}}')
check "a chunked answer to a forwarded action passes through decoded" test "$c" = 200 -a "$(field Action)" = ListKeys
c=$(kms Decrypt "{\"CiphertextBlob\": \"$(b64 blob-d)\", \"EncryptionContext\": {\"test-reply\": \"bad-chunked\"}}")
check "a chunk longer than its size: 502" test "$c" = 502
check "... naming the chunked body's problem" grep -q "chunked body: offset [0-9]*: chunk 1 is longer than its size" "$TMP/r"

# The host's /metrics learns of these requests from counters lines on odyn's status stream, sent
# once a reader asks ("counters"), at most one a second: Decrypt answered both ok and with an error.
log_records "$TMP/st.$KP" >"$TMP/st-noask"
check "a status reader that did not ask gets no counters lines" sh -c "! grep -q '\"counters\"' '$TMP/st-noask'"
check "... but the app's status" grep -q '"status":"running"' "$TMP/st-noask"
kms_counted() {
	log_records "$TMP/st.$KP" counters | python3 -c '
import json, sys
last = [json.loads(l) for l in sys.stdin if "\"counters\"" in l][-1]
got = {(a, r): n for a, r, n in last["kms"]}
sys.exit(not (got.get(("Decrypt", "ok"), 0) >= 2 and got.get(("Decrypt", "error"), 0) >= 1))' 2>/dev/null
}
wait_for kms_counted
check "KMS requests are counted by action and result on the status stream" kms_counted

# At most 16 requests at once: 16 TestHold requests are held by the test KMS (it answers chunked
# at once and sends the JSON when released), the 17th is refused with 503 without leaving the
# enclave, and once they are released a new request is served again.
rm -f "$TMP/release"
hold_pids=()
for i in $(seq 16); do
	curl -s -S --max-time 600 -o "$TMP/hold.$i" -w '%{http_code}' -X POST "http://127.0.0.1:$KP/" \
		-H "X-Amz-Target: TrentService.TestHold" -H 'Content-Type: application/x-amz-json-1.1' \
		--data-binary "{\"ReleaseFile\": \"$TMP/release\"}" >"$TMP/hold.$i.code" 2>&1 &
	hold_pids+=($!)
done
held() { [ "$(grep -c 'kms TestHold waiting' "$TMP/aws.log")" -ge 16 ]; }
for _ in 1 2 3 4 5 6 7 8; do wait_for held && break; done
check "16 requests in progress at KMS" held
before=$(grep -c '^kms ' "$TMP/aws.log")
c=$(kms TestHold "{\"ReleaseFile\": \"$TMP/release\"}")
check "the 17th at once: 503" test "$c" = 503
check "... with a JSON error naming the limit" test "$(field __type)" = EnclaverBusy -a \
	"$(field message)" = "kms proxy: 16 requests already in progress (the most it runs at once); retry"
check "... and it never reached KMS" test "$(grep -c '^kms ' "$TMP/aws.log")" -eq "$before"
touch "$TMP/release"
wait "${hold_pids[@]}"
good=0
for i in $(seq 16); do
	[ "$(cat "$TMP/hold.$i.code")" = 200 ] && python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["Action"] != "TestHold")' \
		"$TMP/hold.$i" 2>/dev/null && good=$((good + 1))
done
check "the 16 held requests complete: 200 with KMS's JSON" test $good -eq 16
c=$(kms GenerateRandom '{"NumberOfBytes": 3}')
check "then a new request is served again" test "$c" = 200 -a "$(field Plaintext)" = "$(b64 rrr)"

# The caller's request is checked before anything leaves.
before=$(grep -c '^kms ' "$TMP/aws.log")
c=$(curl -s -o "$TMP/r" -w '%{http_code}' -X POST "http://127.0.0.1:$KP/" -H 'Content-Type: application/x-amz-json-1.1' --data '{}')
check "no X-Amz-Target: 400" test "$c" = 400
c=$(curl -s -o "$TMP/r" -w '%{http_code}' -X POST "http://127.0.0.1:$KP/" -H 'X-Amz-Target: TrentService.Decrypt' -H 'Content-Type: application/x-amz-json-1.1' --data '{"a":')
check "bad JSON: 400" test "$c" = 400
c=$(curl -s -o "$TMP/r" -w '%{http_code}' -X POST "http://127.0.0.1:$KP/" -H 'X-Amz-Target: Other.Decrypt' -H 'Content-Type: application/x-amz-json-1.1' --data '{}')
check "foreign target: 400" test "$c" = 400
c=$(curl -s -o "$TMP/r" -w '%{http_code}' "http://127.0.0.1:$KP/")
check "GET: 400" test "$c" = 400
ask_open "$KP" 'POST / HTTP/1.1\nX-Amz-Target: TrentService.Decrypt\nContent-Length: 2\n\n{}' >"$TMP/r"
check "bare LF line ends: 400, not silence" grep -q "^HTTP/1.1 400" "$TMP/r"
check "nothing malformed reached KMS" test "$(grep -c '^kms ' "$TMP/aws.log")" -eq "$before"

# Key material never in odyn's log.
check "odyn logs no plaintext or secrets" bash -c "! grep -q -e '$(b64 plain:blob-1)' -e secret-1 -e token-1 -e '$(b64 shared-secret)' '$TMP/odyn.err'"

# Credentials close to expiry are refreshed before use.
KP2=$(free_port)
pkill_imds() { kill "${_bg_pids[1]}"; wait "${_bg_pids[1]}" 2>/dev/null; }
pkill_imds
rm -f "$TMP/imds.port"
python3 "$SERVER" imds "$TMP/imds.port" "$TMP/aws.log" 60 &
bg_track $!
wait_for test -s "$TMP/imds.port"
IMDS_PORT=$(cat "$TMP/imds.port")
start_odyn "$KP2" "$TMP/ca.pem" "$TMP/odyn2.err"
KP_SAVE=$KP
KP=$KP2
n0=$(grep -c 'imds issued' "$TMP/aws.log")
kms GenerateRandom '{"NumberOfBytes": 4}' >/dev/null
kms GenerateRandom '{"NumberOfBytes": 4}' >/dev/null
n1=$(grep -c 'imds issued' "$TMP/aws.log")
check "credentials within 5 minutes of expiry are fetched again" test $((n1 - n0)) -eq 2
check "... and used" test "$(field Plaintext)" = "$(b64 rrrr)"

# An untrusted KMS certificate: refused, and nothing is sent.
KP3=$(free_port)
start_odyn "$KP3" "$TMP/other-ca.pem" "$TMP/odyn3.err"
KP=$KP3
c=$(kms Decrypt "{\"CiphertextBlob\": \"$(b64 blob-2)\"}")
check "untrusted KMS certificate: 502" test "$c" = 502
check "... naming the certificate problem" grep -q "certificate" "$TMP/r"

# The egress policy holds for the proxy too: a KMS endpoint it does not allow is refused inside
# with 403 and the reason, before any connection (KMS sees nothing); likewise IMDS.
KP4=$(free_port)
ALLOW=(--egress-allow 169.254.169.254 --egress-allow '*.amazonaws.com')
start_odyn "$KP4" "$TMP/ca.pem" "$TMP/odyn4.err"
KP=$KP4
before=$(grep -c '^kms ' "$TMP/aws.log")
c=$(kms Decrypt "{\"CiphertextBlob\": \"$(b64 blob-3)\"}")
check "a KMS endpoint the egress policy does not allow: 403" test "$c" = 403
check "... EnclaverEgressDenied, naming the endpoint and the missing rule" test "$(field __type)" = EnclaverEgressDenied -a \
	"$(field message)" = "kms.test:$KMS_PORT is blocked by the egress policy: it matches no allow rule (the KMS proxy's connections need egress.allow too)"
check "... and nothing reached KMS" test "$(grep -c '^kms ' "$TMP/aws.log")" -eq "$before"
check "odyn warned at start that the endpoint is not allowed" \
	grep -q "the egress policy does not allow the KMS endpoint kms.test:$KMS_PORT" "$TMP/odyn4.err"
KP5=$(free_port)
ALLOW=(--egress-allow kms.test --egress-deny 169.254.0.0/16)
start_odyn "$KP5" "$TMP/ca.pem" "$TMP/odyn5.err"
KP=$KP5
imds_before=$(grep -c '^imds ' "$TMP/aws.log")
c=$(kms Decrypt "{\"CiphertextBlob\": \"$(b64 blob-4)\"}")
check "IMDS denied by a rule: 403 naming the rule" test "$c" = 403 -a "$(field __type)" = EnclaverEgressDenied -a \
	"$(field message)" = "IMDS PUT /latest/api/token: 169.254.169.254:$IMDS_PORT is blocked by the egress policy: it matches deny rule \"169.254.0.0/16\""
check "... and IMDS saw nothing" test "$(grep -c '^imds ' "$TMP/aws.log")" -eq "$imds_before"
check "odyn warned at start that IMDS is not allowed" grep -q "does not allow IMDS (169.254.169.254:$IMDS_PORT)" \
	"$TMP/odyn5.err"
# Without a console the host learns it from the log stream: odyn's warnings are records there,
# also the ones from the KMS job's thread (common/logstream.h).
log_records "$TMP/log.$KP5" >"$TMP/log5.records"
check "the log stream carries odyn's start warning about IMDS as a record" \
	grep -qa $'^\x1eodyn warning: kms proxy: the egress policy does not allow IMDS' "$TMP/log5.records"
check "... and the KMS job's failure to reach IMDS (from its thread)" \
	grep -qa $'^\x1eodyn warning: kms: IMDS PUT /latest/api/token: 169.254.169.254:'"$IMDS_PORT"' is blocked' "$TMP/log5.records"
KP=$KP_SAVE

"$PEER" read "unix:$TMP/log.$KP" >"$TMP/applog" 2>"$TMP/applog.err" &
rp=$!
wait_for grep -q connected "$TMP/applog.err"
touch "$TMP/stop.$KP" "$TMP/stop.$KP2" "$TMP/stop.$KP3" "$TMP/stop.$KP4" "$TMP/stop.$KP5"
wait $rp
check "the app gets AWS_KMS_ENDPOINT" grep -q "endpoint=http://127.0.0.1:$KP" "$TMP/applog"
wait $op
rc=$?
if [ $rc -eq 0 ]; then ok "odyn ends cleanly"; else not_ok "odyn ends cleanly" "exit $rc" "$(tail -c 3000 "$TMP/odyn.err")"; fi

# The proxy's tunnel to the host's egress endpoint is bounded: an endpoint that never accepts
# (a TCP listener with a full backlog as --egress-host) costs a request 10 s and a 502, not the
# kernel's two minutes of one of the 16 request threads.
stuck_listener "$TMP/stuckhost.port"
KP9=$(free_port)
"$ODYN" --no-console --status "unix:$TMP/st.9" --log "unix:$TMP/log.9" --linger-ms 0 \
	--egress-allow 169.254.169.254 --egress-allow kms.test \
	--nsm "unix:$TMP/nsm" --egress-host "tcp:127.0.0.1:$(cat "$TMP/stuckhost.port")" --proxy-port "$(free_port)" \
	--kms-proxy-port "$KP9" --imds "169.254.169.254:$IMDS_PORT" --kms-endpoint "us-test-1=kms.test:$KMS_PORT" \
	--kms-ca-file "$TMP/ca.pem" -- sh -c "while [ ! -e '$TMP/stop.9' ]; do sleep 0.05; done" 2>"$TMP/odyn9.err" &
op9=$!
bg_track $op9
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $KP9))"
c=$(curl -s -S --max-time 60 -o "$TMP/r9" -w '%{http_code}' -X POST "http://127.0.0.1:$KP9/" \
	-H "X-Amz-Target: TrentService.GenerateRandom" -H 'Content-Type: application/x-amz-json-1.1' \
	--data-binary '{"NumberOfBytes": 8}')
check "egress endpoint that never accepts: 502 after the bound" test "$c" = 502
check "... naming the bound" grep -q "not accepted within 10000 ms" "$TMP/r9"
touch "$TMP/stop.9"
wait $op9

done_testing
