#!/usr/bin/env bash
# test_odyn_api: odyn's attestation API (POST /v1/attestation) as a host
# process. /dev/nsm cannot exist here, so odyn talks to the NSM stand-in
# (tests/helpers/nsm-standin, `--nsm unix:PATH`), which signs documents with
# a test PKI; `enclaver verify-attestation --root` then checks what the API
# returned: signature, chain, nonce, user_data and public_key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"
STANDIN=$(dirname "$ENCLAVER")/../helpers/nsm-standin
[ -x "$STANDIN" ] || { echo "missing $STANDIN"; exit 1; }

mkdir -p "$TMP/pki"
"$STANDIN" "unix:$TMP/nsm" "$TMP/pki" 2>"$TMP/standin.err" &
bg_track $!
wait_for test -S "$TMP/nsm"

AP=$(free_port)
"$ODYN" --no-console --status "unix:$TMP/st" --log "unix:$TMP/log" --linger-ms 0 \
	--nsm "unix:$TMP/nsm" --api-port "$AP" \
	-- sh -c "while [ ! -e '$TMP/stop' ]; do sleep 0.05; done" 2>"$TMP/odyn.err" &
op=$!
bg_track $op
wait_for python3 -c "import socket; socket.create_connection(('127.0.0.1', $AP))"

URL=http://127.0.0.1:$AP/v1/attestation
post() { curl -s -S --max-time 20 -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' "$@"; }

# A key pair whose public half goes into the document.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/k.pem" 2>/dev/null
openssl pkey -in "$TMP/k.pem" -pubout -out "$TMP/pub.pem"
openssl pkey -in "$TMP/k.pem" -pubout -outform DER -out "$TMP/pub.der"
NONCE_HEX=00112233445566778899aabbccddeeff
NONCE_B64=$(printf '%s' "$NONCE_HEX" | xxd -r -p | base64 -w0)
UD_B64=$(printf 'user data from the app' | base64 -w0)
python3 -c "import json,sys; print(json.dumps({'nonce': sys.argv[1], 'user_data': sys.argv[2],
	'public_key': open(sys.argv[3]).read()}))" "$NONCE_B64" "$UD_B64" "$TMP/pub.pem" >"$TMP/req.json"

c=$(post -X POST -H 'Content-Type: application/json' --data-binary @"$TMP/req.json" "$URL")
check "POST /v1/attestation: 200" test "$c" = 200
check "Content-Type is application/cbor" grep -qi '^content-type: application/cbor' "$TMP/head"
cp "$TMP/body" "$TMP/doc.cbor"
"$ENCLAVER" verify-attestation "$TMP/doc.cbor" --root "$TMP/pki/root.pem" --nonce "$NONCE_HEX" \
	--pcr0 "$(printf '00%.0s' $(seq 48))" --pcr1 "$(printf '01%.0s' $(seq 48))" >"$TMP/v.json" 2>"$TMP/v.err"
rc=$?
check "the document verifies (chain, signature, nonce, PCRs)" test $rc -eq 0
check "user_data is the app's" grep -q "\"UserData\": \"$UD_B64\"" "$TMP/v.json"
check "public_key is the PEM key's DER" grep -q "\"PublicKey\": \"$(base64 -w0 "$TMP/pub.der")\"" "$TMP/v.json"

c=$(post -X POST "$URL")
check "no body: 200" test "$c" = 200
"$ENCLAVER" verify-attestation "$TMP/body" --root "$TMP/pki/root.pem" >"$TMP/v2.json" 2>&1
check "no body: the document has no nonce" grep -q '"Nonce": null' "$TMP/v2.json"

# Limits: 512 bytes of nonce pass, 513 do not.
N512=$(head -c 512 /dev/zero | base64 -w0)
N513=$(head -c 513 /dev/zero | base64 -w0)
c=$(post -X POST --data-binary "{\"nonce\": \"$N512\", \"user_data\": \"$N512\"}" "$URL")
check "512-byte nonce and user_data: 200" test "$c" = 200

bad() { # NAME CODE REGEX CURL-ARGS...
	local name=$1 want=$2 re=$3
	shift 3
	local got
	got=$(post "$@")
	if [ "$got" = "$want" ] && grep -Eq -- "$re" "$TMP/body"; then ok "$name"; else
		not_ok "$name" "got $got: $(head -c 300 "$TMP/body")"; fi
}
bad "oversize nonce: 400" 400 "nonce: 513 bytes, at most 512" -X POST --data-binary "{\"nonce\": \"$N513\"}" "$URL"
bad "bad JSON: 400" 400 "not JSON" -X POST --data-binary '{"nonce":' "$URL"
bad "bad base64: 400" 400 "user_data: not valid base64" -X POST --data-binary '{"user_data": "a b"}' "$URL"
bad "bad PEM: 400" 400 "public_key: not a PEM public key" -X POST --data-binary '{"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}' "$URL"
bad "unknown field: 400" 400 'unknown field "nonse"' -X POST --data-binary '{"nonse": "AA=="}' "$URL"
bad "GET: 405" 405 "use POST" "$URL"
bad "other path: 404" 404 "no such endpoint" -X POST "http://127.0.0.1:$AP/v1/other"
head -c 20000 /dev/zero | tr '\0' ' ' >"$TMP/big"
bad "body over the limit: 413" 413 "over 16384 bytes" -X POST --data-binary @"$TMP/big" "$URL"
bad "chunked body: 411" 411 "Content-Length" -X POST -H 'Transfer-Encoding: chunked' --data-binary '{}' "$URL"
printf 'GARBAGE\r\n\r\n' | "$PEER" send "tcp:127.0.0.1:$AP" >"$TMP/g" 2>&1
check "garbage request: 400" grep -q "^HTTP/1.1 400" "$TMP/g"
ask_open "$AP" 'POST /v1/attestation HTTP/1.1\nHost: x\n\n' >"$TMP/g"
check "bare LF line ends: 400, not silence" grep -q "^HTTP/1.1 400" "$TMP/g"
check "the 400 says why" grep -q "bare LF line ending at offset 29" "$TMP/g"

# The NSM gone: a 500 naming the failure, and odyn keeps serving.
kill "${_bg_pids[0]}"
wait "${_bg_pids[0]}" 2>/dev/null
bad "NSM unreachable: 500" 500 "attestation failed" -X POST "$URL"
check "odyn still runs" kill -0 $op

touch "$TMP/stop"
wait $op
check "odyn ends cleanly" test $? -eq 0
check "no key material or documents in odyn's log" bash -c "! grep -q -e '$NONCE_B64' -e '$UD_B64' '$TMP/odyn.err'"

done_testing
