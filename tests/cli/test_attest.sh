#!/usr/bin/env bash
# test_attest: `enclaver verify-attestation` against documents signed by a
# test PKI (tests/tools/make_attestation), and `enclaver trust`.
. "$(dirname "$0")/lib.sh"

make_att=$ROOT/build/${VARIANT:-release}/tests/tools/make_attestation
PCR0=$(printf 'ab%.0s' $(seq 48))
NONCE=0011223344556677
"$make_att" "$TMP" "$PCR0" "$NONCE" || { not_ok "make test documents"; done_testing; exit; }
va() { "$ENCLAVER" verify-attestation "$@"; }

# The PKI itself is sound by OpenSSL's own verifier: our "valid" is not vacuous.
check "test PKI verifies with openssl" openssl verify -CAfile "$TMP/root.pem" -untrusted "$TMP/intermediate.pem" \
	"$TMP/leaf.pem"

va "$TMP/valid.cbor" --root "$TMP/root.pem" --pcr0 "$PCR0" --nonce "$NONCE" >"$TMP/v.json"
rc=$?
if [ $rc -eq 0 ] && grep -q '"Valid": true' "$TMP/v.json" && grep -q "\"PCR0\": \"$PCR0\"" "$TMP/v.json" &&
	grep -q '"UserData": "aGVsbG8="' "$TMP/v.json" && grep -q '"PublicKey": null' "$TMP/v.json"; then
	ok "valid document, expected PCR0 and nonce"
else
	not_ok "valid document, expected PCR0 and nonce" "rc=$rc" "$(cat "$TMP/v.json")"
fi
check "--pcr N=HEX form" va "$TMP/valid.cbor" --root "$TMP/root.pem" --pcr "0=$PCR0" \
	--pcr 1=010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101
# --pcrs-from: the build's JSON report instead of PCRs pasted by hand (the reader
# --verify-before-run uses)
P1=010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101
printf '{"Sources": {}, "Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "%s", "PCR1": "%s"}, "Image": {}}' \
	"$PCR0" "$P1" >"$TMP/build.json"
printf '{"Measurements": {"PCR0": "00%s"}}' "${PCR0:2}" >"$TMP/build-other.json"
check "--pcrs-from the build's report: valid" va "$TMP/valid.cbor" --root "$TMP/root.pem" --pcrs-from "$TMP/build.json"
check_fails "--pcrs-from: a PCR that differs is named" "PCR0: expected 00ab" \
	va "$TMP/valid.cbor" --root "$TMP/root.pem" --pcrs-from "$TMP/build-other.json"
check "--pcrs-from: a PCR given with --pcr0 takes that value" \
	va "$TMP/valid.cbor" --root "$TMP/root.pem" --pcrs-from "$TMP/build-other.json" --pcr0 "$PCR0"
printf '{"Measurements": {"PCR9": "00"}}' >"$TMP/bad-pcrs.json"
check_fails "--pcrs-from: a bad file is named with the key" "--pcrs-from .*bad-pcrs.json: unknown key \"PCR9\"" \
	va "$TMP/valid.cbor" --root "$TMP/root.pem" --pcrs-from "$TMP/bad-pcrs.json"
check_fails "--pcrs-from: a missing file is named" "--pcrs-from.*nowhere.json" \
	va "$TMP/valid.cbor" --root "$TMP/root.pem" --pcrs-from "$TMP/nowhere.json"
base64 -w 76 "$TMP/valid.cbor" >"$TMP/valid.b64"
check "base64 input" va "$TMP/valid.b64" --root "$TMP/root.pem"
check "document on stdin" bash -c "'$ENCLAVER' verify-attestation - --root '$TMP/root.pem' <'$TMP/valid.cbor'"

check_fails "PCR0 mismatch" "PCR0: expected 00ab" va "$TMP/valid.cbor" --root "$TMP/root.pem" --pcr0 "00${PCR0:2}"
check_fails "PCR absent" "PCR20: expected .*the document has none" va "$TMP/valid.cbor" --root "$TMP/root.pem" \
	--pcr "20=$PCR0"
check_fails "nonce mismatch" "nonce: the document's nonce is not the expected one" \
	va "$TMP/valid.cbor" --root "$TMP/root.pem" --nonce 00
check_fails "tampered signature" "signature: the COSE signature does not verify" \
	va "$TMP/tampered.cbor" --root "$TMP/root.pem"
check_fails "signed by another key" "signature: the COSE signature does not verify" \
	va "$TMP/wrong-key.cbor" --root "$TMP/root.pem"
check_fails "leaf expired at the document's time" "certificate chain: certificate has expired" \
	va "$TMP/expired.cbor" --root "$TMP/root.pem"
check "--at-time moves the validity check" va "$TMP/expired.cbor" --root "$TMP/root.pem" --at-time "$(date +%s)"
check_fails "another root" "cabundle starts with a root other than the trusted one" \
	va "$TMP/valid.cbor" --root "$TMP/other-root.pem"
check_fails "AWS root by default" "cabundle starts with a root other than the trusted one" va "$TMP/valid.cbor"
check_fails "truncated document" "structure: .*(ends|past the end)" va "$TMP/truncated.cbor" --root "$TMP/root.pem"
printf 'ab!d' >"$TMP/junk"
check_fails "junk input" "not valid base64" va "$TMP/junk"
printf 'abc' >"$TMP/short"
check_fails "short junk input" "neither a CBOR attestation document nor base64" va "$TMP/short"
printf 'notanattestation' >"$TMP/b64junk"
check_fails "base64 that is not CBOR" "structure: COSE_Sign1: offset 0" va "$TMP/b64junk"
check_fails "bad --pcr0 hex" "is not hex" va "$TMP/valid.cbor" --pcr0 xyz

# QEMU's emulated NSM signs nothing (emulated.cbor has its shape): refused with the reason named,
# while structure, PCRs and nonce pass; --insecure-skip-signature checks only those, loudly.
va "$TMP/emulated.cbor" --pcr0 "$PCR0" --nonce "$NONCE" >"$TMP/e.json" 2>"$TMP/e.err"
rc=$?
if [ $rc -eq 1 ] && grep -q 'signature: 64 zero bytes (algorithm -1): the document is unsigned, as an emulated NSM' \
	"$TMP/e.err" && grep -q '"Structure": true' "$TMP/e.json" && grep -q '"PCRs": true' "$TMP/e.json" &&
	grep -q '"Nonce": true' "$TMP/e.json" && grep -q '"Signature": false' "$TMP/e.json" &&
	grep -q '"CertificateChain": false' "$TMP/e.json" && grep -q '"Valid": false' "$TMP/e.json"; then
	ok "an unsigned (emulated NSM) document: refused as unsigned, structure/PCRs/nonce pass"
else
	not_ok "an unsigned (emulated NSM) document: refused as unsigned, structure/PCRs/nonce pass" "rc=$rc" \
		"$(cat "$TMP/e.err" "$TMP/e.json")"
fi
va "$TMP/emulated.cbor" --insecure-skip-signature --pcr0 "$PCR0" --nonce "$NONCE" >"$TMP/s.json" 2>"$TMP/s.err"
rc=$?
if [ $rc -eq 0 ] && grep -q 'warning: --insecure-skip-signature: the certificate chain and the signature were NOT checked' \
	"$TMP/s.err" && grep -q '"Valid": null' "$TMP/s.json" && grep -q '"Signature": null' "$TMP/s.json" &&
	grep -q '"CertificateChain": null' "$TMP/s.json" && grep -q '"Unverified": "certificate chain and signature' \
	"$TMP/s.json" && grep -q '"PCRs": true' "$TMP/s.json"; then
	ok "--insecure-skip-signature: exit 0 on structure/PCRs/nonce, Valid null, a warning"
else
	not_ok "--insecure-skip-signature: exit 0 on structure/PCRs/nonce, Valid null, a warning" "rc=$rc" \
		"$(cat "$TMP/s.err" "$TMP/s.json")"
fi
check_fails "--insecure-skip-signature still checks PCRs" "PCR0: expected 00ab" \
	va "$TMP/emulated.cbor" --insecure-skip-signature --pcr0 "00${PCR0:2}"
check_fails "--insecure-skip-signature still checks the nonce" "nonce: the document's nonce is not the expected one" \
	va "$TMP/emulated.cbor" --insecure-skip-signature --nonce 00
check_fails "--insecure-skip-signature still checks the structure" "structure: " \
	va "$TMP/truncated.cbor" --insecure-skip-signature

# A failing check still prints the verdict for scripts.
va "$TMP/tampered.cbor" --root "$TMP/root.pem" >"$TMP/t.json" 2>/dev/null
check "failed verdict is printed" grep -q '"Signature": false' "$TMP/t.json"

# trust: the measurements and a policy condition naming them.
G=$TESTDATA/eif
"$ENCLAVER" trust "$G/case3/case3.eif" --pcr8 >"$TMP/trust.json"
check "trust: PCR0 condition" grep -q '"kms:RecipientAttestation:PCR0": "bab6e924' "$TMP/trust.json"
check "trust: PCR8 condition" grep -q '"kms:RecipientAttestation:PCR8": "4565d120' "$TMP/trust.json"
check "trust: no PCR1 condition unless asked" bash -c "! grep -q 'RecipientAttestation:PCR1' '$TMP/trust.json'"
check_fails "trust --pcr8 on an unsigned image" "not signed" "$ENCLAVER" trust "$G/case1/case1.eif" --pcr8
cp "$G/case1/case1.eif" "$TMP/bad.eif"
printf '\x00' | dd of="$TMP/bad.eif" bs=1 seek=2000 conv=notrunc 2>/dev/null
check_fails "trust refuses a damaged image" "CRC mismatch: refusing" "$ENCLAVER" trust "$TMP/bad.eif"

done_testing
