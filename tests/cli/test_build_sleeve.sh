#!/usr/bin/env bash
# test_build_sleeve: `enclaver build` with sources.sleeve: the release image goes on top of a
# base image (an OCI layout and a docker-archive written here without Docker): its layers
# first and unchanged, its config kept (Env, WorkingDir, Labels) but for our Entrypoint and
# labels, umoci's unpack shows its files plus /enclave/*; reproducible; a missing, bad or
# wrong-platform sleeve fails naming sources.sleeve and leaves nothing behind.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

build_test_env

make_sleeve "$TMP/sleeve" amd64
make_sleeve "$TMP/sleeve-arm" arm64

manifest() { # manifest FILE SLEEVE
	printf 'version: v1\nname: hello\ntarget: hello:enclave\nsources:\n  app: oci:%s/app:v1\n  sleeve: %s\n' "$TMP" "$2" >"$1"
}
manifest "$TMP/enclaver.yaml" "oci:$TMP/sleeve:v1"
"${B[@]}" -f "$TMP/enclaver.yaml" --output "oci:$TMP/rel:enclave" >"$TMP/r1.json" 2>"$TMP/r1.err"
check "build with an OCI layout sleeve exits 0" test -s "$TMP/r1.json"
check "no 'not supported' warning any more" bash -c "! grep -qi 'sleeve.*not supported' '$TMP/r1.err'"
digest=$(json_get "$TMP/r1.json" "d['Image']['Digest']")
sleeve_digest=$(python3 -c "import json; print(json.load(open('$TMP/sleeve/index.json'))['manifests'][0]['digest'])")
check "the report names the sleeve and its digest" test "$(json_get "$TMP/r1.json" "d['Sources']['Sleeve']['Digest']")" = "$sleeve_digest"

# Manifests and configs as skopeo reads them (not through our code).
skopeo inspect --raw "oci:$TMP/rel:enclave" >"$TMP/rel.manifest" 2>/dev/null
skopeo inspect --config "oci:$TMP/rel:enclave" >"$TMP/rel.config" 2>/dev/null
skopeo inspect --raw "oci:$TMP/sleeve:v1" >"$TMP/sleeve.manifest" 2>/dev/null
skopeo inspect --config "oci:$TMP/sleeve:v1" >"$TMP/sleeve.config" 2>/dev/null
check "skopeo's digest of the result is the printed one" test \
	"$(skopeo inspect "oci:$TMP/rel:enclave" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" = "$digest"
sl_layers=$(json_get "$TMP/sleeve.manifest" "[l['digest'] for l in d['layers']]")
check "four layers: the sleeve's two, the runtime, the EIF" test "$(json_get "$TMP/rel.manifest" "len(d['layers'])")" = 4
check "the sleeve's layers come first, same digests, same order" test \
	"$(json_get "$TMP/rel.manifest" "[l['digest'] for l in d['layers'][:2]]")" = "$sl_layers"
check "the sleeve's layers keep their sizes and media type" test \
	"$(json_get "$TMP/rel.manifest" "[(l['size'], l['mediaType']) for l in d['layers'][:2]]")" = \
	"$(json_get "$TMP/sleeve.manifest" "[(l['size'], l['mediaType']) for l in d['layers']]")"
for l in $(json_get "$TMP/sleeve.manifest" "' '.join(l['digest'][7:] for l in d['layers'])"); do
	check "sleeve blob ${l:0:12} copied byte for byte" cmp "$TMP/rel/blobs/sha256/$l" "$TMP/sleeve/blobs/sha256/$l"
done
check "diff_ids: one per layer" test "$(json_get "$TMP/rel.config" "len(d['rootfs']['diff_ids'])")" = 4
check "diff_ids: the sleeve's first" test "$(json_get "$TMP/rel.config" "d['rootfs']['diff_ids'][:2]")" = \
	"$(json_get "$TMP/sleeve.config" "d['rootfs']['diff_ids']")"
check "history: the sleeve's, then one per layer of ours" test \
	"$(json_get "$TMP/rel.config" "len([h for h in d['history'] if not h.get('empty_layer')])")" = 4
check "history keeps the sleeve's entries" test "$(json_get "$TMP/rel.config" "d['history'][:3]")" = \
	"$(json_get "$TMP/sleeve.config" "d['history']")"
check "Env kept" test "$(json_get "$TMP/rel.config" "d['config']['Env']")" = "$(json_get "$TMP/sleeve.config" "d['config']['Env']")"
check "WorkingDir kept" test "$(json_get "$TMP/rel.config" "d['config']['WorkingDir']")" = /srv/www
check "the sleeve's label kept" test "$(json_get "$TMP/rel.config" "d['config']['Labels']['org.example.sleeve']")" = yes
check "our labels added (PCR0)" test "$(json_get "$TMP/rel.config" "d['config']['Labels']['io.enclaver.pcr0']")" = \
	"$(json_get "$TMP/r1.json" "d['Measurements']['PCR0']")"
check "label io.enclaver.source.sleeve.digest" test \
	"$(json_get "$TMP/rel.config" "d['config']['Labels']['io.enclaver.source.sleeve.digest']")" = "$sleeve_digest"
check "Entrypoint is enclaver-run" test "$(json_get "$TMP/rel.config" "d['config']['Entrypoint']")" = "['/usr/local/bin/enclaver-run']"
check "the sleeve's Cmd is dropped" test "$(json_get "$TMP/rel.config" "'Cmd' in d['config']")" = False
check "created is SOURCE_DATE_EPOCH" test "$(json_get "$TMP/rel.config" "d['created']")" = 2023-11-14T22:13:20Z
check "annotation org.opencontainers.image.base.digest" test \
	"$(json_get "$TMP/rel.manifest" "d['annotations']['org.opencontainers.image.base.digest']")" = "$sleeve_digest"

# The file system a runtime would see.
check "umoci unpacks the result" umoci unpack --rootless --image "$TMP/rel:enclave" "$TMP/bundle"
check "unpacked: the sleeve's file" cmp "$TMP/bundle/rootfs/etc/sleeve-release" "$TMP/sl1/etc/sleeve-release"
check "unpacked: the sleeve's second layer" cmp "$TMP/bundle/rootfs/srv/www/index.html" "$TMP/sl2/srv/www/index.html"
check "unpacked: enclaver-run" cmp "$TMP/bundle/rootfs/usr/local/bin/enclaver-run" "$(dirname "$ENCLAVER")/enclaver-run.static"
check "unpacked: the sleeve's /usr/bin/helper next to it" test -x "$TMP/bundle/rootfs/usr/bin/helper"
check "unpacked: the manifest" cmp "$TMP/bundle/rootfs/enclave/enclaver.yaml" "$TMP/enclaver.yaml"
"$ENCLAVER" describe-eif "$TMP/bundle/rootfs/enclave/application.eif" >"$TMP/desc.json" 2>/dev/null
check "unpacked: the EIF's PCR0 is the build's" test "$(json_get "$TMP/desc.json" "d['Measurements']['PCR0']")" = \
	"$(json_get "$TMP/r1.json" "d['Measurements']['PCR0']")"
check "the runtime config's args are enclaver-run alone" test \
	"$(json_get "$TMP/bundle/config.json" "d['process']['args']")" = "['/usr/local/bin/enclaver-run']"
check "the runtime config keeps the sleeve's Env" grep -q 'SLEEVE=1' "$TMP/bundle/config.json"

# Same inputs, same digest; the same EIF as without a sleeve (the sleeve is outside the enclave).
"${B[@]}" -f "$TMP/enclaver.yaml" --output "oci:$TMP/rel2:enclave" --tmpdir "$TMP" --no-ramdisk-cache >"$TMP/r2.json" 2>/dev/null
check "reproducible: the same release image digest" test "$(json_get "$TMP/r2.json" "d['Image']['Digest']")" = "$digest"
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/same.eif" >/dev/null 2>&1
check "the sleeve is outside the enclave: the image's EIF is the --eif-only build's" \
	cmp "$TMP/bundle/rootfs/enclave/application.eif" "$TMP/same.eif"

# A docker-archive sleeve (Docker media types): the same blobs, OCI media types in our manifest.
check "skopeo writes the sleeve as a docker-archive" skopeo --insecure-policy copy -q "oci:$TMP/sleeve:v1" "docker-archive:$TMP/sleeve.tar:sleeve:v1"
manifest "$TMP/da.yaml" "docker-archive:$TMP/sleeve.tar"
"${B[@]}" -f "$TMP/da.yaml" --output "oci:$TMP/rel-da:enclave" >"$TMP/da.json" 2>"$TMP/da.err"
check "build with a docker-archive sleeve exits 0" test -s "$TMP/da.json"
skopeo inspect --raw "oci:$TMP/rel-da:enclave" >"$TMP/da.manifest" 2>/dev/null
skopeo inspect --config "oci:$TMP/rel-da:enclave" >"$TMP/da.config" 2>/dev/null
check "docker-archive sleeve: its diff_ids first" test "$(json_get "$TMP/da.config" "d['rootfs']['diff_ids'][:2]")" = \
	"$(json_get "$TMP/sleeve.config" "d['rootfs']['diff_ids']")"
check "docker-archive sleeve: OCI layer media types" test \
	"$(json_get "$TMP/da.manifest" "sorted(set(l['mediaType'].startswith('application/vnd.oci.image.layer.') for l in d['layers']))")" = "[True]"
check "docker-archive sleeve: Env kept" test "$(json_get "$TMP/da.config" "d['config']['Env']")" = \
	"$(json_get "$TMP/sleeve.config" "d['config']['Env']")"

# Bad sleeves: a clear message naming sources.sleeve, nothing written.
manifest "$TMP/missing.yaml" "oci:$TMP/no-such-sleeve:v1"
check_fails "a sleeve that does not exist" 'sources\.sleeve.*no-such-sleeve' "${B[@]}" -f "$TMP/missing.yaml" --output "oci:$TMP/out"
manifest "$TMP/notag.yaml" "oci:$TMP/sleeve:nosuchtag"
check_fails "a sleeve tag that does not exist" 'sources\.sleeve.*nosuchtag' "${B[@]}" -f "$TMP/notag.yaml" --output "oci:$TMP/out"
manifest "$TMP/arm.yaml" "oci:$TMP/sleeve-arm:v1"
check_fails "a sleeve for another platform is refused" 'sources\.sleeve.*arm64.*linux/amd64' "${B[@]}" -f "$TMP/arm.yaml" --output "oci:$TMP/out"
cp -r "$TMP/sleeve" "$TMP/sleeve-bad"
python3 - "$TMP/sleeve-bad" <<'PY'
import hashlib, json, os, sys
# A config whose diff_ids do not match the layer count: rewritten with its manifest and index.
lay = sys.argv[1]; b = lambda d: os.path.join(lay, "blobs", "sha256", d[7:])
idx = json.load(open(os.path.join(lay, "index.json")))
man = json.load(open(b(idx["manifests"][0]["digest"])))
cfg = json.load(open(b(man["config"]["digest"])))
cfg["rootfs"]["diff_ids"] = cfg["rootfs"]["diff_ids"][:1]
def put(obj):
    data = json.dumps(obj).encode(); d = "sha256:" + hashlib.sha256(data).hexdigest()
    open(b(d), "wb").write(data); return d, len(data)
man["config"]["digest"], man["config"]["size"] = put(cfg)
idx["manifests"][0]["digest"], idx["manifests"][0]["size"] = put(man)
json.dump(idx, open(os.path.join(lay, "index.json"), "w"))
PY
manifest "$TMP/bad.yaml" "oci:$TMP/sleeve-bad:v1"
check_fails "a sleeve whose diff_ids do not match its layers" 'sources\.sleeve.*diff_ids' "${B[@]}" -f "$TMP/bad.yaml" --output "oci:$TMP/out"
check "no output left behind by failures" test ! -e "$TMP/out"
check "no temporary folders left behind" test -z "$(ls -A "$TMPDIR")"
check "--eif-only ignores the sleeve (no release image)" "${B[@]}" -f "$TMP/arm.yaml" --eif-only "$TMP/eif-only.eif"

done_testing
