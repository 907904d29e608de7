#!/usr/bin/env bash
# test_trust_image: `enclaver trust IMAGE` on release images made by
# `enclaver build`, from an OCI layout and an OCI archive: the output equals
# `enclaver trust` of the EIF taken out of the image's layer with tar; an
# image without an EIF and a missing image are clear errors.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

build_test_env
printf 'version: v1\nname: hello\ntarget: hello:enclave\nsources:\n  app: oci:%s\n' "$TMP/app:v1" >"$TMP/enclaver.yaml"
if ! "$ENCLAVER" build --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" -o "oci:$TMP/rel:enclave" >/dev/null 2>"$TMP/build.err"; then
	not_ok "build a release image" "$(tail -5 "$TMP/build.err")"
	done_testing
	exit 1
fi
release_eif "$TMP/rel" enclave "$TMP/x"
"$ENCLAVER" trust "$TMP/x/enclave/application.eif" --pcr1 --pcr2 >"$TMP/want.json"
check "trust EIF (the reference) printed PCR0" grep -q RecipientAttestation:PCR0 "$TMP/want.json"

"$ENCLAVER" trust "oci:$TMP/rel:enclave" --pcr1 --pcr2 >"$TMP/got.json" 2>"$TMP/got.err"
check "trust oci:LAYOUT:TAG exits 0" test $? -eq 0
check "trust IMAGE prints what trust EIF prints" cmp "$TMP/want.json" "$TMP/got.json"
"$ENCLAVER" trust "oci:$TMP/rel:enclave" >"$TMP/pcr0.json"
check "PCR0 only by default" bash -c "grep -q RecipientAttestation:PCR0 '$TMP/pcr0.json' && ! grep -q RecipientAttestation:PCR1 '$TMP/pcr0.json'"
tar -C "$TMP/rel" -cf "$TMP/rel.tar" .
"$ENCLAVER" trust "oci-archive:$TMP/rel.tar:enclave" --pcr1 --pcr2 >"$TMP/arch.json" 2>"$TMP/arch.err"
check "trust oci-archive:FILE:TAG equals" cmp "$TMP/want.json" "$TMP/arch.json"
check "no temporary files left" test -z "$(ls -A "$TMPDIR")"

check_fails "an app image has no EIF" "has no /enclave/application.eif" "$ENCLAVER" trust "oci:$TMP/app:v1"
check_fails "a missing layout" "oci:$TMP/nothing" "$ENCLAVER" trust "oci:$TMP/nothing:x"
check_fails "--pcr8 on an unsigned image" "not signed" "$ENCLAVER" trust "oci:$TMP/rel:enclave" --pcr8
check "still no temporary files left" test -z "$(ls -A "$TMPDIR")"

done_testing
