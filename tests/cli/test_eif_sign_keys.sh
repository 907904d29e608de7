#!/usr/bin/env bash
# test_eif_sign_keys: EIF signing with keys where users keep them (docs/cli.md#signing-keys):
# detached signing (eif measure, an external signer, eif sign --signature) byte-identical to
# signing in one step; an AWS KMS key ARN against a loopback KMS stand-in that checks the SigV4
# signature of every request (tests/cli/kms_test_server.py sign); a PKCS#11 URI naming an EC
# P-384 key generated inside SoftHSM2, through OpenSSL's pkcs11 provider. Every failure leaves
# the EIF as it was, and no PIN or AWS secret reaches the output.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

G=$TESTDATA/eif
BASE=$G/case1/case1.eif
CERT=$G/signing_cert.pem
KEY=$G/signing_key.pem

json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$@"; }
describe_ok() { # describe_ok EIF CERT: the signature checks with the stored certificate, PCR8 is CERT's
	"$ENCLAVER" describe-eif "$1" >"$TMP/desc.json" || return 1
	"$ENCLAVER" pcr --signing-certificate "$2" >"$TMP/pcr8.json" || return 1
	[ "$(json "$TMP/desc.json" '["SignatureCheck"]')" = True ] &&
		[ "$(json "$TMP/desc.json" '["CheckCRC"]')" = True ] &&
		[ "$(json "$TMP/desc.json" '["Measurements"]["PCR8"]')" = "$(json "$TMP/pcr8.json" '["PCR8"]')" ]
}
# The COSE signature (r || s) of a signed EIF, read with a CBOR decoder of this test's own.
cose_rs() {
	python3 - "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack(">H", data[26:28])[0]
offs = struct.unpack(">32Q", data[28:28 + 256])
def item(b, i):
    m, a = b[i] >> 5, b[i] & 31
    i += 1
    if a >= 24:
        k = 1 << (a - 24)
        a, i = int.from_bytes(b[i:i + k], "big"), i + k
    if m == 0:
        return a, i
    if m == 2:
        return b[i:i + a], i + a
    if m == 3:
        return b[i:i + a].decode(), i + a
    if m == 4:
        out = []
        for _ in range(a):
            v, i = item(b, i)
            out.append(v)
        return out, i
    if m == 5:
        out = {}
        for _ in range(a):
            k, i = item(b, i)
            out[k], i = item(b, i)
        return out, i
    raise ValueError("major %d" % m)
for o in offs[:n]:
    typ, _, size = struct.unpack(">HHQ", data[o:o + 12])
    if typ == 4:
        entries, _ = item(data[o + 12:o + 12 + size], 0)
        cose, _ = item(bytes(entries[0]["signature"]), 0)
        sys.stdout.buffer.write(cose[3])
EOF
}
rs_to_der() { # rs_to_der RAW DER: the same (r, s) as an ECDSA-Sig-Value
	python3 - "$1" "$2" <<'EOF'
import sys
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
raw = open(sys.argv[1], "rb").read()
h = len(raw) // 2
open(sys.argv[2], "wb").write(encode_dss_signature(int.from_bytes(raw[:h], "big"), int.from_bytes(raw[h:], "big")))
EOF
}
unchanged() { cmp -s "$1" "$2"; }
no_temp_files() { [ -z "$(ls -A "$1" | grep -F '.tmp')" ]; }

# ---------------------------------------------------------------- detached signing
mkdir -p "$TMP/det"
cp "$BASE" "$TMP/det/a.eif"
"$ENCLAVER" eif measure "$TMP/det/a.eif" --signing-certificate "$CERT" --output "$TMP/det/tbs.bin" \
	>"$TMP/det/measure.json" 2>"$TMP/det/measure.err"
check "eif measure prints what signs the EIF" test -s "$TMP/det/measure.json"
"$ENCLAVER" describe-eif "$BASE" >"$TMP/det/base.json"
check "... for this EIF's PCR0" test "$(json "$TMP/det/measure.json" '["PCR0"]')" = \
	"$(json "$TMP/det/base.json" '["Measurements"]["PCR0"]')"
check "... with the certificate's algorithm (P-384: ES384 over SHA-384)" test \
	"$(json "$TMP/det/measure.json" '["Algorithm"]') $(json "$TMP/det/measure.json" '["DigestAlgorithm"]')" = \
	"ES384 SHA384"
check "... the digest is SHA-384 of the Sig_structure --output wrote" test \
	"$(json "$TMP/det/measure.json" '["Digest"]')" = "$(openssl dgst -sha384 -r "$TMP/det/tbs.bin" | cut -d' ' -f1)"
check "... which is also printed in hex" test "$(json "$TMP/det/measure.json" '["ToBeSigned"]')" = \
	"$(xxd -p "$TMP/det/tbs.bin" | tr -d '\n')"
check "the Sig_structure is [\"Signature1\", {1: -35}, h'', PcrInfo{0, PCR0}]" python3 - "$TMP/det/tbs.bin" \
	"$(json "$TMP/det/measure.json" '["PCR0"]')" <<'EOF'
import sys
b = open(sys.argv[1], "rb").read()
pcr0 = bytes.fromhex(sys.argv[2])
assert b.startswith(b"\x84\x6aSignature1\x44\xa1\x01\x38\x22\x40"), b[:20].hex()
assert b"register_index" in b and b"register_value" in b
# The payload ends with PCR0 as serde writes a Vec<u8>: one CBOR uint per byte.
serde = b"".join(bytes([x]) if x < 24 else bytes([0x18, x]) for x in pcr0)
assert b.endswith(serde), "payload does not end with PCR0"
EOF

# An external signer: openssl over the digest (as an HSM or KMS given a DIGEST would).
xxd -r -p <<<"$(json "$TMP/det/measure.json" '["Digest"]')" >"$TMP/det/digest.bin"
openssl pkeyutl -sign -inkey "$KEY" -in "$TMP/det/digest.bin" -out "$TMP/det/sig.der"
"$ENCLAVER" eif sign "$TMP/det/a.eif" --signing-certificate "$CERT" --signature "$TMP/det/sig.der" \
	>"$TMP/det/sign.out" 2>"$TMP/det/sign.err"
check "eif sign --signature attaches an external signer's signature" describe_ok "$TMP/det/a.eif" "$CERT"
check "... and prints the measurements with PCR8" test "$(json "$TMP/det/sign.out" '["PCR8"]')" = \
	"$(json "$TMP/pcr8.json" '["PCR8"]')"
check "the attached signature is the external one" test "$(cose_rs "$TMP/det/a.eif" | xxd -p | tr -d '\n')" = \
	"$(python3 -c '
import sys
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
r, s = decode_dss_signature(open(sys.argv[1], "rb").read())
print((r.to_bytes(48, "big") + s.to_bytes(48, "big")).hex())' "$TMP/det/sig.der")"
# openssl dgst signs the Sig_structure itself (hashing it): the same thing, another way in.
cp "$BASE" "$TMP/det/b.eif"
openssl dgst -sha384 -sign "$KEY" -out "$TMP/det/sig2.der" "$TMP/det/tbs.bin"
"$ENCLAVER" eif sign "$TMP/det/b.eif" --signing-certificate "$CERT" --signature "$TMP/det/sig2.der" >/dev/null
check "a signature over the Sig_structure bytes (openssl dgst -sign) attaches too" describe_ok "$TMP/det/b.eif" "$CERT"

# Byte identity with one-step signing: ECDSA is randomized, so the one-step signature's own
# (r, s) is taken out of its EIF and attached to the unsigned EIF, as DER and as raw r || s.
cp "$BASE" "$TMP/det/one.eif"
"$ENCLAVER" eif sign "$TMP/det/one.eif" --signing-certificate "$CERT" --private-key "$KEY" >/dev/null
cose_rs "$TMP/det/one.eif" >"$TMP/det/one.rs"
rs_to_der "$TMP/det/one.rs" "$TMP/det/one.der"
for form in rs der; do
	cp "$BASE" "$TMP/det/two-$form.eif"
	"$ENCLAVER" eif sign "$TMP/det/two-$form.eif" --signing-certificate "$CERT" \
		--signature "$TMP/det/one.$form" >/dev/null
	check "detached signing is byte-identical to one-step signing ($form signature)" \
		cmp "$TMP/det/two-$form.eif" "$TMP/det/one.eif"
done
check "the one-step signature is 96 bytes of r || s" test "$(stat -c %s "$TMP/det/one.rs")" = 96
# And measure then sign works on an EIF that is already signed (the signature is replaced).
cp "$TMP/det/one.eif" "$TMP/det/re.eif"
"$ENCLAVER" eif measure "$TMP/det/re.eif" --signing-certificate "$CERT" >"$TMP/det/re.json"
check "eif measure of a signed EIF gives the same Sig_structure" test \
	"$(json "$TMP/det/re.json" '["Digest"]')" = "$(json "$TMP/det/measure.json" '["Digest"]')"

# Signatures that do not belong: refused, the EIF left as it was.
cp "$BASE" "$TMP/det/c.eif"
"$ENCLAVER" eif measure "$G/case2/case2.eif" --signing-certificate "$CERT" >"$TMP/det/other.json"
xxd -r -p <<<"$(json "$TMP/det/other.json" '["Digest"]')" >"$TMP/det/other.bin"
openssl pkeyutl -sign -inkey "$KEY" -in "$TMP/det/other.bin" -out "$TMP/det/other.der"
check_fails "a signature over another EIF's PCR0 is refused" \
	"the signature from the signature in .*other.der is not one of this image's PCR0" \
	"$ENCLAVER" eif sign "$TMP/det/c.eif" --signing-certificate "$CERT" --signature "$TMP/det/other.der"
check "... and the EIF is unchanged" unchanged "$TMP/det/c.eif" "$BASE"
openssl ecparam -name secp384r1 -genkey -noout -out "$TMP/det/k2.pem" 2>/dev/null
openssl pkeyutl -sign -inkey "$TMP/det/k2.pem" -in "$TMP/det/digest.bin" -out "$TMP/det/k2.der"
check_fails "a signature by another key is refused" "does not verify with the key" \
	"$ENCLAVER" eif sign "$TMP/det/c.eif" --signing-certificate "$CERT" --signature "$TMP/det/k2.der"
head -c 50 /dev/urandom >"$TMP/det/junk.sig"
check_fails "a file that is no signature is refused, naming it" "junk.sig: 50 bytes that are neither" \
	"$ENCLAVER" eif sign "$TMP/det/c.eif" --signing-certificate "$CERT" --signature "$TMP/det/junk.sig"
check_fails "a missing signature file is named" "--signature: .*nope.sig" \
	"$ENCLAVER" eif sign "$TMP/det/c.eif" --signing-certificate "$CERT" --signature "$TMP/det/nope.sig"
check "... the EIF is still unchanged" unchanged "$TMP/det/c.eif" "$BASE"
check "... and no temporary file is left" no_temp_files "$TMP/det"
check_fails "--private-key and --signature together are a usage error" "one of --private-key or --signature" \
	"$ENCLAVER" eif sign "$TMP/det/c.eif" --signing-certificate "$CERT" --signature "$TMP/det/sig.der" \
	--private-key "$KEY"
check_fails "eif measure needs the certificate" "--signing-certificate are required" \
	"$ENCLAVER" eif measure "$TMP/det/c.eif"
check_fails "eif measure of a non-EIF names it" "junk.sig: truncated" \
	"$ENCLAVER" eif measure "$TMP/det/junk.sig" --signing-certificate "$CERT" --output "$TMP/det/not-an-eif"
check "... and writes no --output" test ! -e "$TMP/det/not-an-eif"
check_fails "a wrong PEM key is refused before any work" "does not match certificate" \
	"$ENCLAVER" eif sign "$TMP/det/c.eif" --signing-certificate "$CERT" --private-key "$TMP/det/k2.pem"
check_fails "a missing PEM key is named" "signing key .*absent.pem" \
	"$ENCLAVER" eif sign "$TMP/det/c.eif" --signing-certificate "$CERT" --private-key "$TMP/det/absent.pem"

# ---------------------------------------------------------------- AWS KMS
mkdir -p "$TMP/kms"
SERVER=$(dirname "$0")/kms_test_server.py
ARN=arn:aws:kms:us-test-1:111122223333:key/test-sign
openssl ecparam -name secp384r1 -genkey -noout -out "$TMP/kms/key.pem" 2>/dev/null
openssl req -new -x509 -key "$TMP/kms/key.pem" -subj /CN=kms-signer -days 1 -sha384 -out "$TMP/kms/cert.pem"
python3 "$SERVER" sign "$TMP/kms/port" "$TMP/kms/log" "$TMP/kms/key.pem" "$TMP/kms/mode" &
bg_track $!
wait_for test -s "$TMP/kms/port"
SECRET=secret-41f7
kms() { # kms [VAR=VALUE...] -- ARGS: enclaver with the stand-in's endpoint and credentials
	local envs=(AWS_ACCESS_KEY_ID=AKIDTEST41f7 AWS_SECRET_ACCESS_KEY=$SECRET AWS_SESSION_TOKEN=token-41f7
		AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$(cat "$TMP/kms/port"))
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" "$ENCLAVER" "$@"
}
cp "$BASE" "$TMP/kms/a.eif"
kms -- eif sign "$TMP/kms/a.eif" --signing-certificate "$TMP/kms/cert.pem" --private-key "$ARN" \
	>"$TMP/kms/out" 2>"$TMP/kms/err"
check "eif sign --private-key with a KMS key ARN" describe_ok "$TMP/kms/a.eif" "$TMP/kms/cert.pem"
check "... asked GetPublicKey, then Sign once, each with a valid SigV4 signature" test \
	"$(grep -c 'signed-by AKIDTEST41f7' "$TMP/kms/log") $(grep -c REJECTED "$TMP/kms/log")" = "2 0"
check "... Sign got the SHA-384 digest eif measure prints (MessageType DIGEST)" grep -q \
	"kms Sign ECDSA_SHA_384 digest $(kms -- eif measure "$BASE" --signing-certificate "$TMP/kms/cert.pem" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" "$TMP/kms/log"
kms -- eif build --kernel "$G/kernel.bin" --cmdline "$(cat "$G/cmdline.txt")" --ramdisk "$G/ramdisk1.bin" \
	--output "$TMP/kms/built.eif" --signing-certificate "$TMP/kms/cert.pem" --private-key "$ARN" >/dev/null 2>&1
check "eif build --private-key with a KMS key ARN" describe_ok "$TMP/kms/built.eif" "$TMP/kms/cert.pem"
cp "$BASE" "$TMP/kms/c.eif"
env AWS_ACCESS_KEY_ID=AKIDTESTP3 AWS_SECRET_ACCESS_KEY=secret-P3 AWS_SESSION_TOKEN= \
	AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$TMP/kms/port") "$ENCLAVER" eif sign "$TMP/kms/c.eif" \
	--signing-certificate "$TMP/kms/cert.pem" --private-key "$ARN" >/dev/null 2>&1
check "long-term credentials (no session token), the endpoint from AWS_ENDPOINT_URL" \
	describe_ok "$TMP/kms/c.eif" "$TMP/kms/cert.pem"
check "... signed by them" grep -q "kms Sign signed-by AKIDTESTP3" "$TMP/kms/log"
kms_fails() { # kms_fails NAME PATTERN [VAR=VALUE...] -- ARGS: fails, the EIF unchanged, no secret shown
	local name=$1 pattern=$2
	shift 2
	cp "$BASE" "$TMP/kms/b.eif"
	check_fails "$name" "$pattern" kms "$@"
	check "... $name: the EIF is unchanged" unchanged "$TMP/kms/b.eif" "$BASE"
	check "... $name: no AWS secret in the output" sh -c "! grep -q -e '$SECRET' -e token-41f7 '$TMP/.stderr' '$TMP/.stdout'"
}
SIGN=(eif sign "$TMP/kms/b.eif" --signing-certificate "$TMP/kms/cert.pem" --private-key)
kms_fails "wrong AWS credentials: KMS's error" "KMS GetPublicKey: HTTP 400 InvalidSignatureException" \
	AWS_SECRET_ACCESS_KEY=secret-wrong -- "${SIGN[@]}" "$ARN"
kms_fails "a key KMS does not have" "HTTP 400 NotFoundException: Key .*key/nothing' does not exist" \
	-- "${SIGN[@]}" arn:aws:kms:us-test-1:111122223333:key/nothing
echo fail >"$TMP/kms/mode"
kms_fails "KMS refusing Sign" "KMS Sign: HTTP 400 KMSInvalidStateException: .* is pending deletion" -- \
	"${SIGN[@]}" "$ARN"
check_fails "... and eif build writes no EIF" "KMSInvalidStateException" kms -- eif build --kernel "$G/kernel.bin" \
	--cmdline x --ramdisk "$G/ramdisk1.bin" --output "$TMP/kms/never.eif" \
	--signing-certificate "$TMP/kms/cert.pem" --private-key "$ARN"
check "... none at all (no temporary file either)" test -z "$(ls "$TMP/kms" | grep never)"
echo other-key >"$TMP/kms/mode"
kms_fails "KMS answering with another key's signature" "is not one of this image's PCR0 by the certificate's key" \
	-- "${SIGN[@]}" "$ARN"
rm -f "$TMP/kms/mode"
kms_fails "a certificate that is not the KMS key's" "does not match certificate" \
	-- eif sign "$TMP/kms/b.eif" --signing-certificate "$CERT" --private-key "$ARN"
kms_fails "no AWS credentials" "no AWS credentials: set AWS_ACCESS_KEY_ID" AWS_ACCESS_KEY_ID= -- "${SIGN[@]}" "$ARN"
kms_fails "a malformed ARN" "not a KMS key ARN" -- "${SIGN[@]}" arn:aws:kms:us-test-1:1234:key/test-sign
# ARNs as eif_build matches them: the other partitions and key:ID reach KMS, whole (KeyId is the
# ARN); anything else is refused before any request.
for arn in arn:aws-cn:kms:cn-north-1:111122223333:key/abcd1234 \
	arn:aws-us-gov:kms:us-gov-west-1:111122223333:key:5678efgh; do
	kms_fails "ARN $arn is sent whole" "NotFoundException: Key '$arn' does not exist" -- "${SIGN[@]}" "$arn"
done
for arn in arn:invalid:kms:us-east-1:123456789012:key/abcd1234 arn:aws:kms::123456789012:key/abcd1234 \
	arn:aws:kms:us-east-1:12345678901:key/abcd1234 arn:aws:kms:us-east-1:1234567890123:key/abcd1234 \
	arn:aws:kms:us-east-1:123456789012:alias/abcd1234 arn:aws:kms:us-east-1:123456789012:key/abc@1234 \
	arn:aws:kms:us-east-1:123456789012:key/ arn:aws:kms:us-east-1:123456789012:key-abcd1234; do
	check_fails "ARN $arn is refused" "signing key $arn: not a KMS key ARN" kms -- "${SIGN[@]}" "$arn"
done
kms_fails "KMS unreachable" "KMS GetPublicKey at http://127.0.0.1:1: " AWS_ENDPOINT_URL_KMS=http://127.0.0.1:1 \
	-- "${SIGN[@]}" "$ARN"
check "every request the stand-in refused was refused for a reason it logged" test \
	"$(grep -c REJECTED "$TMP/kms/log")" -ge 4

# ---------------------------------------------------------------- PKCS#11 (SoftHSM2)
P11_PROVIDER=$(find /usr/lib -name pkcs11.so -path '*ossl-modules*' 2>/dev/null | head -n 1)
SOFTHSM=$(find /usr/lib -name libsofthsm2.so 2>/dev/null | head -n 1)
if [ -z "$P11_PROVIDER" ] || [ -z "$SOFTHSM" ] || ! command -v pkcs11-tool >/dev/null; then
	not_ok "PKCS#11: pkcs11-provider, softhsm2 and opensc are installed (scripts/install-deps.sh)"
	done_testing
	exit
fi
mkdir -p "$TMP/p11/tokens"
export SOFTHSM2_CONF=$TMP/p11/softhsm2.conf
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$TMP/p11/tokens" \
	>"$SOFTHSM2_CONF"
export PKCS11_PROVIDER_MODULE=$SOFTHSM
PIN=pin-5e2d9a
SO_PIN=so-pin-77c1
URI="pkcs11:token=enclaver-test;object=eif-signer;type=private"
P11_CERT=$CERT # the token's own certificate once it is made
p11_fails() { # p11_fails NAME PATTERN URI [VAR=VALUE...]: refused, EIF unchanged, no PIN shown
	local name=$1 pattern=$2 uri=$3
	shift 3
	cp "$BASE" "$TMP/p11/x.eif"
	check_fails "$name" "$pattern" env "$@" "$ENCLAVER" eif sign "$TMP/p11/x.eif" \
		--signing-certificate "$P11_CERT" --private-key "$uri"
	check "... $name: the EIF is unchanged" unchanged "$TMP/p11/x.eif" "$BASE"
	check "... $name: no PIN in the output" \
		sh -c "! grep -q -e '$PIN' -e wrong-pin-3b8f -e '$SO_PIN' '$TMP/.stderr' '$TMP/.stdout'"
}
# The URI's PIN attributes are read before any token is asked.
p11_fails "a pin-source file that is missing" "pin-source: .*no-pin-file" "$URI?pin-source=file:$TMP/p11/no-pin-file"
p11_fails "a pin-source that is not a file: URI" 'pin-source "https://x": expected file:' "$URI?pin-source=https://x"
p11_fails "a bad %-escape in the PIN" "a bad %-escape in a PIN attribute" "$URI?pin-value=$PIN%zz"
# ASan cannot load a PKCS#11 module: the provider dlopens it with RTLD_DEEPBIND, which the
# sanitizer runtime refuses (google/sanitizers issue 611). The token tests run on release.
if [ "${VARIANT:-release}" = asan ]; then
	echo "# skip: PKCS#11 token tests under ASan (it refuses the provider's RTLD_DEEPBIND dlopen)"
	done_testing
	exit
fi

softhsm2-util --init-token --free --label enclaver-test --pin "$PIN" --so-pin "$SO_PIN" >/dev/null
# The key is generated inside the token: its private half is never outside it.
pkcs11-tool --module "$SOFTHSM" --token-label enclaver-test --login --pin "$PIN" --keypairgen \
	--key-type EC:secp384r1 --label eif-signer --id 01 >/dev/null 2>&1
pkcs11-tool --module "$SOFTHSM" --token-label enclaver-test --login --pin "$PIN" --list-objects --type privkey \
	>"$TMP/p11/objects" 2>&1
check "the P-384 key was generated in the token, sensitive and never extractable" \
	grep -q "never extractable" "$TMP/p11/objects"
# openssl's own use of the provider (making the certificate) goes through a configuration file.
cat >"$TMP/p11/openssl.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
pkcs11 = pkcs11_sect
[default_sect]
activate = 1
[pkcs11_sect]
module = $P11_PROVIDER
pkcs11-module-path = $SOFTHSM
pkcs11-module-quirks = no-deinit
activate = 1
EOF
OPENSSL_CONF=$TMP/p11/openssl.cnf openssl req -new -x509 -key "$URI?pin-value=$PIN" -subj /CN=hsm-signer -days 1 \
	-sha384 -out "$TMP/p11/cert.pem" 2>"$TMP/p11/req.err"
check "a self-signed certificate made by the token through the provider" test -s "$TMP/p11/cert.pem"
p11_sign() { # p11_sign EIF URI [VAR=VALUE...]: eif sign with the token's certificate
	local eif=$1 uri=$2
	shift 2
	cp "$BASE" "$eif"
	env "$@" "$ENCLAVER" eif sign "$eif" --signing-certificate "$TMP/p11/cert.pem" --private-key "$uri" \
		>"$TMP/p11/out" 2>"$TMP/p11/err"
}
p11_sign "$TMP/p11/a.eif" "$URI?pin-value=$PIN"
check "eif sign with a PKCS#11 URI, the PIN in ?pin-value=" describe_ok "$TMP/p11/a.eif" "$TMP/p11/cert.pem"
check "... PCR8 is the token certificate's" test "$(json "$TMP/p11/out" '["PCR8"]')" = \
	"$(json "$TMP/pcr8.json" '["PCR8"]')"
printf '%s\n' "$PIN" >"$TMP/p11/pin"
p11_sign "$TMP/p11/b.eif" "$URI?pin-source=file:$TMP/p11/pin"
check "... the PIN from ?pin-source=file:" describe_ok "$TMP/p11/b.eif" "$TMP/p11/cert.pem"
p11_sign "$TMP/p11/c.eif" "$URI" ENCLAVER_PKCS11_PIN="$PIN"
check "... the PIN from ENCLAVER_PKCS11_PIN" describe_ok "$TMP/p11/c.eif" "$TMP/p11/cert.pem"
p11_sign "$TMP/p11/d.eif" "$URI" ENCLAVER_PKCS11_PIN="$PIN" OPENSSL_CONF="$TMP/p11/openssl.cnf" \
	PKCS11_PROVIDER_MODULE=
check "... the provider set up by OPENSSL_CONF instead of PKCS11_PROVIDER_MODULE" \
	describe_ok "$TMP/p11/d.eif" "$TMP/p11/cert.pem"
check "... and nothing crashed on the way out (SoftHSM2 and OpenSSL's exit handlers)" \
	sh -c "! grep -qi -e 'segmentation' -e sanitizer '$TMP/p11/err'"
ENCLAVER_PKCS11_PIN=$PIN "$ENCLAVER" eif build --kernel "$G/kernel.bin" --cmdline "$(cat "$G/cmdline.txt")" \
	--ramdisk "$G/ramdisk1.bin" --output "$TMP/p11/built.eif" --signing-certificate "$TMP/p11/cert.pem" \
	--private-key "$URI" >/dev/null 2>&1
check "eif build --private-key with a PKCS#11 URI" describe_ok "$TMP/p11/built.eif" "$TMP/p11/cert.pem"

# The token as a detached signer: openssl signs eif measure's digest through the provider.
cp "$BASE" "$TMP/p11/det.eif"
"$ENCLAVER" eif measure "$TMP/p11/det.eif" --signing-certificate "$TMP/p11/cert.pem" >"$TMP/p11/m.json"
xxd -r -p <<<"$(json "$TMP/p11/m.json" '["Digest"]')" >"$TMP/p11/digest.bin"
OPENSSL_CONF=$TMP/p11/openssl.cnf openssl pkeyutl -sign -inkey "$URI?pin-value=$PIN" -in "$TMP/p11/digest.bin" \
	-out "$TMP/p11/sig.der" 2>/dev/null
"$ENCLAVER" eif sign "$TMP/p11/det.eif" --signing-certificate "$TMP/p11/cert.pem" --signature "$TMP/p11/sig.der" \
	>/dev/null 2>&1
check "a detached signature made in the token attaches" describe_ok "$TMP/p11/det.eif" "$TMP/p11/cert.pem"

P11_CERT=$TMP/p11/cert.pem
p11_fails "a wrong PIN" "signing key $URI: the token refused the PIN" "$URI?pin-value=wrong-pin-3b8f"
p11_fails "a wrong PIN from ENCLAVER_PKCS11_PIN" "the token refused the PIN" "$URI" \
	ENCLAVER_PKCS11_PIN=wrong-pin-3b8f
p11_fails "a URI naming no key" "object=nothing-here;type=private: the URI names no private key" \
	"pkcs11:token=enclaver-test;object=nothing-here;type=private?pin-value=$PIN"
p11_fails "a URI naming no token" "token=no-such-token.*names no private key" \
	"pkcs11:token=no-such-token;object=eif-signer;type=private?pin-value=$PIN"
p11_fails "no PIN given" "the token asks for a PIN" "$URI"
check_fails "the token's key with another certificate is refused" "does not match certificate" \
	"$ENCLAVER" eif sign "$TMP/p11/x.eif" --signing-certificate "$CERT" --private-key "$URI?pin-value=$PIN"
ENCLAVER_PKCS11_PIN=wrong-pin-3b8f "$ENCLAVER" eif build --kernel "$G/kernel.bin" --cmdline x \
	--ramdisk "$G/ramdisk1.bin" --output "$TMP/p11/never.eif" --signing-certificate "$TMP/p11/cert.pem" \
	--private-key "$URI" >"$TMP/p11/never.out" 2>&1
check "eif build with a wrong PIN writes nothing" test -z "$(ls "$TMP/p11" | grep never.eif)"
check "... and does not show the PIN" sh -c "! grep -q wrong-pin-3b8f '$TMP/p11/never.out'"

# Memory checks where ASan cannot go: valgrind over the token paths (release build).
if command -v valgrind >/dev/null; then
	vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99)
	cp "$BASE" "$TMP/p11/vg.eif"
	check "valgrind: eif sign with a PKCS#11 URI" "${vg[@]}" "$ENCLAVER" eif sign "$TMP/p11/vg.eif" \
		--signing-certificate "$TMP/p11/cert.pem" --private-key "$URI?pin-value=$PIN"
	"${vg[@]}" "$ENCLAVER" eif sign "$TMP/p11/vg.eif" --signing-certificate "$TMP/p11/cert.pem" \
		--private-key "$URI?pin-value=wrong-pin-3b8f" >/dev/null 2>"$TMP/p11/vg.err"
	rc=$?
	if [ $rc -eq 1 ]; then ok "valgrind: a wrong PIN fails cleanly"; else
		not_ok "valgrind: a wrong PIN fails cleanly" "exit $rc" "$(head -c 2000 "$TMP/p11/vg.err")"; fi
fi

done_testing
