#!/usr/bin/env bash
# test_eif: the EIF commands as users run them: the golden vectors through
# `enclaver eif build` and `describe-eif`, signing, `pcr`, bad input.
. "$(dirname "$0")/lib.sh"

G=$TESTDATA/eif
CMDLINE=$(cat "$G/cmdline.txt")
golden_build() { # golden_build OUT [extra flags]: case1's inputs and metadata
	local out=$1
	shift
	"$ENCLAVER" eif build --kernel "$G/kernel.bin" --cmdline "$CMDLINE" --ramdisk "$G/ramdisk1.bin" \
		--output "$out" --build-time 2024-01-01T00:00:00+00:00 --build-tool eif_build \
		--build-tool-version 0.3.1 "$@"
}

# Golden cases, byte for byte, and the measurements as eif_build printed them.
golden_build "$TMP/case1.eif" --ramdisk "$G/ramdisk2.bin" >"$TMP/case1.out"
check "case1 EIF is byte-identical" cmp "$TMP/case1.eif" "$G/case1/case1.eif"
check "case1 measurements as eif_build" diff "$TMP/case1.out" <(tail -n +2 "$G/case1/eif_build_stdout.txt")
golden_build "$TMP/case2.eif" --name golden-one --version golden-one --metadata "$G/custom_metadata.json" \
	>"$TMP/case2.out"
check "case2 EIF is byte-identical (custom metadata)" cmp "$TMP/case2.eif" "$G/case2/case2.eif"
check "case2 measurements as eif_build" diff "$TMP/case2.out" <(tail -n +2 "$G/case2/eif_build_stdout.txt")
golden_build "$TMP/case4.eif" --ramdisk "$G/ramdisk2.bin" --arch aarch64 --algo sha256 >"$TMP/case4.out"
check "case4 EIF is byte-identical (aarch64)" cmp "$TMP/case4.eif" "$G/case4/case4.eif"
check "case4 SHA-256 measurements as eif_build" diff "$TMP/case4.out" <(tail -n +2 "$G/case4/eif_build_stdout.txt")

# Rebuilding onto an existing EIF: the same bytes leave the file as it is (same inode, no rewrite);
# different bytes replace it, whole and atomically.
cp "$TMP/case1.eif" "$TMP/again.eif"
ino() { stat -c %i "$1"; }
before=$(ino "$TMP/again.eif")
golden_build "$TMP/again.eif" --ramdisk "$G/ramdisk2.bin" >/dev/null
check "an unchanged rebuild leaves the EIF in place" test "$(ino "$TMP/again.eif")" = "$before"
check "... and it is still case1's bytes" cmp "$TMP/again.eif" "$G/case1/case1.eif"
golden_build "$TMP/again.eif" --ramdisk "$G/ramdisk2.bin" --arch aarch64 --algo sha256 >/dev/null
check "a changed rebuild replaces it (case4's bytes)" cmp "$TMP/again.eif" "$G/case4/case4.eif"
golden_build "$TMP/one-ramdisk.eif" >/dev/null
golden_build "$TMP/again.eif" >/dev/null
check "a shorter EIF replaces a longer one exactly" cmp "$TMP/again.eif" "$TMP/one-ramdisk.eif"
check "no temporary file left beside it" test -z "$(ls "$TMP" | grep 'again.eif.tmp')"

for c in 1 2 3 4; do
	"$ENCLAVER" describe-eif "$G/case$c/case$c.eif" >"$TMP/d$c.json" 2>"$TMP/d$c.err"
	check "describe-eif case$c matches nitro-cli" diff "$TMP/d$c.json" "$G/case$c/describe_eif.json"
done
check "describe-eif accepts --eif-path" "$ENCLAVER" describe-eif --eif-path "$G/case1/case1.eif"

# case3: signed. The signature differs per run (random ECDSA nonce), so
# check what nitro-cli shows: same measurements with PCR8, checks true.
golden_build "$TMP/case3.eif" --ramdisk "$G/ramdisk2.bin" --signing-certificate "$G/signing_cert.pem" \
	--private-key "$G/signing_key.pem" >"$TMP/case3.out"
check "case3 measurements with PCR8 as eif_build" diff "$TMP/case3.out" <(tail -n +2 "$G/case3/eif_build_stdout.txt")
"$ENCLAVER" describe-eif "$TMP/case3.eif" >"$TMP/d3b.json"
check "signed EIF describes as the golden case3" diff "$TMP/d3b.json" "$G/case3/describe_eif.json"

cp "$G/case1/case1.eif" "$TMP/sign.eif"
"$ENCLAVER" eif sign "$TMP/sign.eif" --signing-certificate "$G/signing_cert.pem" --private-key "$G/signing_key.pem" \
	>/dev/null
check "eif sign in place gives case3's description" diff <("$ENCLAVER" describe-eif "$TMP/sign.eif") \
	"$G/case3/describe_eif.json"
"$ENCLAVER" eif sign --eif-path "$TMP/sign.eif" --signing-certificate "$G/signing_cert.pem" \
	--private-key "$G/signing_key.pem" >/dev/null
check "re-signing replaces the signature" diff <("$ENCLAVER" describe-eif "$TMP/sign.eif") \
	"$G/case3/describe_eif.json"
check "no temporary files left beside the EIF" test -z "$(ls "$TMP" | grep tmp-)"

# Other curves choose ES256 and ES512; each verifies and gives its PCR8.
for curve in prime256v1 secp521r1; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:$curve -nodes -keyout "$TMP/$curve.key" \
		-out "$TMP/$curve.pem" -days 30 -subj "/CN=enclaver-test-$curve" 2>/dev/null
	golden_build "$TMP/$curve.eif" --signing-certificate "$TMP/$curve.pem" --private-key "$TMP/$curve.key" \
		>"$TMP/$curve.out"
	check "$curve: signed image verifies" "$ENCLAVER" describe-eif "$TMP/$curve.eif"
	pcr8=$("$ENCLAVER" pcr --signing-certificate "$TMP/$curve.pem" | sed -n 's/.*"PCR8": "\(.*\)".*/\1/p')
	check "$curve: PCR8 matches enclaver pcr" grep -q "\"PCR8\": \"$pcr8\"" "$TMP/$curve.out"
done
check_fails "key of another certificate is refused" "does not match certificate" \
	golden_build "$TMP/x.eif" --signing-certificate "$G/signing_cert.pem" --private-key "$TMP/prime256v1.key"
openssl genrsa -out "$TMP/rsa.key" 2048 2>/dev/null
openssl req -x509 -key "$TMP/rsa.key" -out "$TMP/rsa.pem" -days 1 -subj /CN=rsa 2>/dev/null
check_fails "RSA keys are refused" "not an EC key" \
	golden_build "$TMP/x.eif" --signing-certificate "$TMP/rsa.pem" --private-key "$TMP/rsa.key"
check "failed builds leave no output" test ! -e "$TMP/x.eif"

# pcr, as nitro-cli pcr.
check "pcr --signing-certificate" diff <("$ENCLAVER" pcr --signing-certificate "$G/signing_cert.pem") \
	<(printf '{\n  "PCR8": "%s"\n}\n' 4565d120c57d27c31760569d9091d9ef5b36cef981f169e51256512be7772033371cfb7ff9afaa39d24bca20c7cbfb3c)
sum=$(sha384sum "$G/ramdisk1.bin" | cut -d' ' -f1)
want=$( (head -c 48 /dev/zero; echo "$sum" | xxd -r -p) | sha384sum | cut -d' ' -f1)
check "pcr --input is the extend of the file's SHA-384" \
	grep -q "\"PCR\": \"$want\"" <("$ENCLAVER" pcr --input "$G/ramdisk1.bin")

# Reproducible: SOURCE_DATE_EPOCH fixes BuildTime; same inputs, same bytes.
for i in 1 2; do
	SOURCE_DATE_EPOCH=1704067200 "$ENCLAVER" eif build --kernel "$G/kernel.bin" --cmdline "$CMDLINE" \
		--ramdisk "$G/ramdisk1.bin" --output "$TMP/r$i.eif" >/dev/null
done
check "SOURCE_DATE_EPOCH builds are reproducible" cmp "$TMP/r1.eif" "$TMP/r2.eif"
check "SOURCE_DATE_EPOCH sets BuildTime" grep -q '"BuildTime": "2024-01-01T00:00:00+00:00"' \
	<("$ENCLAVER" describe-eif "$TMP/r1.eif")
check "kernel config sets OS and kernel version" bash -c "printf '#\n#\n# Linux/x86_64 6.12.9 Kernel Configuration\n' \
	>'$TMP/config' && '$ENCLAVER' eif build --kernel '$G/kernel.bin' --cmdline x --ramdisk '$G/ramdisk1.bin' \
	--output '$TMP/k.eif' --kernel-config '$TMP/config' >/dev/null && '$ENCLAVER' describe-eif '$TMP/k.eif' \
	| grep -q '\"KernelVersion\": \"6.12.9\"'"

# Bad input: clear messages, non-zero exits, nothing on stdout.
check_fails "missing ramdisk" "ramdisk 1: open .*/nope: No such file" \
	"$ENCLAVER" eif build --kernel "$G/kernel.bin" --cmdline x --ramdisk "$TMP/nope" --output "$TMP/o.eif"
check_fails "missing required flags" "are required" "$ENCLAVER" eif build --kernel "$G/kernel.bin"
check_fails "bad --arch" "expected x86_64 or aarch64" \
	"$ENCLAVER" eif build --kernel k --cmdline x --ramdisk r --output o --arch mips
head -c 5000 /dev/zero | tr '\0' ' ' >"$TMP/big.json"
check_fails "metadata over 4096 bytes" "larger than the limit of 4096" \
	golden_build "$TMP/o.eif" --metadata "$TMP/big.json"
echo '{"a": }' >"$TMP/bad.json"
check_fails "metadata that is not JSON" "--metadata .*bad.json: line 1, column 7" \
	golden_build "$TMP/o.eif" --metadata "$TMP/bad.json"
check_fails "unsigned key alone" "go together" golden_build "$TMP/o.eif" --private-key "$G/signing_key.pem"
check "no output after failures" test ! -e "$TMP/o.eif"

head -c 100 "$G/case1/case1.eif" >"$TMP/short.eif"
check_fails "describe-eif: truncated" "short.eif: truncated: 100 bytes" "$ENCLAVER" describe-eif "$TMP/short.eif"
check_fails "describe-eif: not an EIF" "offset 0: bad magic" "$ENCLAVER" describe-eif "$G/kernel.bin"
cp "$G/case1/case1.eif" "$TMP/crc.eif"
printf '\x00' | dd of="$TMP/crc.eif" bs=1 seek=1000 conv=notrunc 2>/dev/null
"$ENCLAVER" describe-eif "$TMP/crc.eif" >"$TMP/crc.json" 2>"$TMP/crc.err"
rc=$?
if [ $rc -eq 1 ] && grep -q '"CheckCRC": false' "$TMP/crc.json" && grep -q "CRC mismatch: header says 08d1cb2f" "$TMP/crc.err"; then
	ok "describe-eif: CRC mismatch reported and exit 1"
else
	not_ok "describe-eif: CRC mismatch reported and exit 1" "rc=$rc" "$(cat "$TMP/crc.err")"
fi
check_fails "unknown command" "unknown command 'frobnicate'" "$ENCLAVER" frobnicate
check "enclaver --version" bash -c "'$ENCLAVER' --version | grep -q '^enclaver [0-9]'"

# valgrind (release build only: it cannot run the ASan one): no memory
# errors and no leaks in a signed build, a describe and a re-sign.
if [ "${VARIANT:-release}" = release ] && command -v valgrind >/dev/null; then
	vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99)
	check "valgrind: signed eif build" "${vg[@]}" "$ENCLAVER" eif build --kernel "$G/kernel.bin" --cmdline x \
		--ramdisk "$G/ramdisk1.bin" --ramdisk "$G/ramdisk2.bin" --output "$TMP/vg.eif" \
		--signing-certificate "$G/signing_cert.pem" --private-key "$G/signing_key.pem"
	check "valgrind: describe-eif" "${vg[@]}" "$ENCLAVER" describe-eif "$TMP/vg.eif"
	check "valgrind: eif sign" "${vg[@]}" "$ENCLAVER" eif sign "$TMP/vg.eif" \
		--signing-certificate "$G/signing_cert.pem" --private-key "$G/signing_key.pem"
fi

done_testing
