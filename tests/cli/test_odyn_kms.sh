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

start_odyn() { # PORT CA-FILE LOGFILE
	"$ODYN" --no-console --status "unix:$TMP/st.$1" --log "unix:$TMP/log.$1" --linger-ms 0 \
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
KP=$KP_SAVE

"$PEER" read "unix:$TMP/log.$KP" >"$TMP/applog" 2>"$TMP/applog.err" &
rp=$!
wait_for grep -q connected "$TMP/applog.err"
touch "$TMP/stop.$KP" "$TMP/stop.$KP2" "$TMP/stop.$KP3"
wait $rp
check "the app gets AWS_KMS_ENDPOINT" grep -q "endpoint=http://127.0.0.1:$KP" "$TMP/applog"
wait $op
rc=$?
if [ $rc -eq 0 ]; then ok "odyn ends cleanly"; else not_ok "odyn ends cleanly" "exit $rc" "$(tail -c 3000 "$TMP/odyn.err")"; fi

done_testing
