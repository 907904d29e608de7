#!/usr/bin/env bash
# test_build_registry: `enclaver build --push` end to end against a real registry
# (Debian's docker-registry on 127.0.0.1, started and stopped here): the sample app
# image is pushed by skopeo, built from the registry, the release image pushed to the
# manifest's target, read back by skopeo, and the EIF inside described.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"
require_tools docker-registry skopeo

KB=$TMP/kb
make_kernel_bundle "$KB"
make_app_image "$TMP/app" v1

registry_start
registry_env
export SOURCE_DATE_EPOCH=1700000000
unset ENCLAVER_KERNEL_BUNDLE ENCLAVER_ODYN
SK=(skopeo --insecure-policy)

check "skopeo pushes the sample app" "${SK[@]}" copy -q --dest-tls-verify=false "oci:$TMP/app:v1" "docker://$R/hello/app:v1"
printf 'version: v1\nname: hello\ntarget: %s/hello/app:enclave\nsources:\n  app: %s/hello/app:v1\ningress:\n  - listen_port: 8080\n' \
	"$R" "$R" >"$TMP/enclaver.yaml"

B=("$ENCLAVER" build --kernel-bundle "$KB" --tls-verify=false -f "$TMP/enclaver.yaml")
"${B[@]}" --push >"$TMP/out.json" 2>"$TMP/out.err"
check "enclaver build --push exits 0" test $? -eq 0 -a -s "$TMP/out.json"
digest=$(json_get "$TMP/out.json" "d['Image']['Digest']")
check "pushed to the manifest's target" test "$(json_get "$TMP/out.json" "d['Image']['Written'][0]['Reference']")" = "$R/hello/app:enclave"
"${SK[@]}" inspect --tls-verify=false "docker://$R/hello/app:enclave" >"$TMP/sk.json" 2>"$TMP/sk.err"
check "skopeo inspects the pushed release image" test -s "$TMP/sk.json"
check "the registry holds the printed digest" test "$(json_get "$TMP/sk.json" "d['Digest']")" = "$digest"
check "its labels carry PCR0" test "$(json_get "$TMP/sk.json" "d['Labels']['io.enclaver.pcr0']")" = \
	"$(json_get "$TMP/out.json" "d['Measurements']['PCR0']")"
src_digest=$("${SK[@]}" inspect --tls-verify=false "docker://$R/hello/app:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')
check "Sources.App.Digest is the registry's digest of the app" test "$(json_get "$TMP/out.json" "d['Sources']['App']['Digest']")" = "$src_digest"
check "its labels carry the source digest" test "$(json_get "$TMP/sk.json" "d['Labels']['io.enclaver.source.app.digest']")" = "$src_digest"

check "skopeo pulls the release image" "${SK[@]}" copy -q --src-tls-verify=false "docker://$R/hello/app:enclave" "oci:$TMP/pulled:enclave"
release_eif "$TMP/pulled" enclave "$TMP/x"
"$ENCLAVER" describe-eif "$TMP/x/enclave/application.eif" >"$TMP/desc.json" 2>"$TMP/desc.err"
check "describe-eif reads the EIF from the release image" test -s "$TMP/desc.json"
for p in PCR0 PCR1 PCR2; do
	check "the extracted EIF's $p equals the build output" test "$(json_get "$TMP/desc.json" "d['Measurements']['$p']")" = \
		"$(json_get "$TMP/out.json" "d['Measurements']['$p']")"
done
check "the release image holds the manifest" cmp "$TMP/x/enclave/enclaver.yaml" "$TMP/enclaver.yaml"

# A rebuild: the app comes from the cache, the release image is the same.
"${B[@]}" --push="$R/hello/again:enclave" >"$TMP/again.json" 2>/dev/null
check "a rebuild pushes the same release image digest" test "$(json_get "$TMP/again.json" "d['Image']['Digest']")" = "$digest"
"${B[@]}" --offline --output "oci:$TMP/offline:enclave" >"$TMP/offline.json" 2>"$TMP/offline.err"
check "--offline builds from the cache alone" test "$(json_get "$TMP/offline.json" "d['Image']['Digest']")" = "$digest"

# sources.sleeve from the same registry: its layers are mounted into the target repository, not
# uploaded; the pushed image has them first.
make_sleeve "$TMP/sleeve" amd64
check "skopeo pushes the sleeve" "${SK[@]}" copy -q --dest-tls-verify=false "oci:$TMP/sleeve:v1" "docker://$R/base/sleeve:v1"
printf 'version: v1\nname: hello\ntarget: %s/hello/sleeved:enclave\nsources:\n  app: %s/hello/app:v1\n  sleeve: %s/base/sleeve:v1\n' \
	"$R" "$R" "$R" >"$TMP/sleeve.yaml"
"$ENCLAVER" build --kernel-bundle "$KB" --tls-verify=false -f "$TMP/sleeve.yaml" --push >"$TMP/sleeve.json" 2>"$TMP/sleeve.err"
check "build --push with a registry sleeve exits 0" test -s "$TMP/sleeve.json"
check "the sleeve's two layers are mounted from its repository" test "$(grep -c 'mounted from base/sleeve' "$TMP/sleeve.err")" = 2
"${SK[@]}" inspect --raw --tls-verify=false "docker://$R/hello/sleeved:enclave" >"$TMP/sleeved.manifest" 2>/dev/null
"${SK[@]}" inspect --raw --tls-verify=false "docker://$R/base/sleeve:v1" >"$TMP/base.manifest" 2>/dev/null
check "the pushed image starts with the sleeve's layers" test \
	"$(json_get "$TMP/sleeved.manifest" "[l['digest'] for l in d['layers'][:-2]]")" = "$(json_get "$TMP/base.manifest" "[l['digest'] for l in d['layers']]")"
check "the registry holds the printed digest" test "$("${SK[@]}" inspect --tls-verify=false "docker://$R/hello/sleeved:enclave" | \
	python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" = "$(json_get "$TMP/sleeve.json" "d['Image']['Digest']")"

printf 'version: v1\nname: hello\ntarget: %s/hello/app:x\nsources:\n  app: %s/hello/nope:v1\n' "$R" "$R" >"$TMP/missing.yaml"
check_fails "an image that is not in the registry" 'sources.app.*hello/nope' "$ENCLAVER" build --kernel-bundle "$KB" \
	--tls-verify=false -f "$TMP/missing.yaml" --push
check "nothing was pushed for the failed build" test -z "$(curl -s "http://$R/v2/hello/app/tags/list" | grep -o '"x"')"

done_testing
