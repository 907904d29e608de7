#!/usr/bin/env bash
# test_oci_registry: pull, push, copy and inspect against a real registry
# (Debian's docker-registry on 127.0.0.1, started and stopped here), with
# skopeo as the peer that reads back what we push and pushes what we pull.
# Fixtures are made by umoci and skopeo; faults by corrupting the registry's
# own storage.
. "$(dirname "$0")/lib.sh"

for tool in docker-registry skopeo umoci htpasswd; do
	if ! command -v "$tool" >/dev/null; then
		not_ok "$tool is installed (scripts/install-deps.sh)"
		done_testing
		exit 1
	fi
done

REG=$TMP/reg
mkdir -p "$REG"
PROXY_PID=
trap '[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null; "$ROOT/scripts/test-registry.sh" stop "$REG"; rm -rf "$TMP"' EXIT
PORT=$("$ROOT/scripts/test-registry.sh" start "$REG" plain) || { not_ok "registry starts"; done_testing; exit 1; }
R=127.0.0.1:$PORT
export ENCLAVER_CACHE_DIR=$TMP/cache
# No credentials from the host running the tests.
export HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config
unset REGISTRY_AUTH_FILE DOCKER_CONFIG
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
SK=(skopeo --insecure-policy)

sha() { sha256sum "$1" | cut -d' ' -f1; }
# json_get FILE EXPR: a value from a JSON file (python3 expression on `d`).
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---------------------------------------------------------------- fixtures (umoci)
F=$TMP/fx
mkdir -p "$F/one/etc" "$F/two/bin" "$F/three/opt"
echo hello >"$F/one/etc/hello"
head -c 3000000 /dev/urandom >"$F/two/bin/big"
head -c 200000 /dev/urandom >"$F/three/opt/data"
L=$F/layout
umoci init --layout "$L"
umoci new --image "$L:v1"
umoci insert --image "$L:v1" "$F/one" / >/dev/null
umoci insert --image "$L:v1" "$F/two" / >/dev/null
umoci new --image "$L:other"
umoci insert --image "$L:other" "$F/three" / >/dev/null
LAYOUT_V1=$(python3 -c 'import json,sys; print([m["digest"] for m in json.load(open(sys.argv[1]))["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"]=="v1"][0])' "$L/index.json")

# ---------------------------------------------------------------- push, then skopeo reads back
"$ENCLAVER" push --insecure "oci:$L:v1" "docker://$R/test/app:v1" >"$TMP/push1.json" 2>"$TMP/push1.err"
check "push an OCI layout to the registry" test "$(json_get "$TMP/push1.json" 'd["blobs"]["copied"]')" = 3
check "push reports the layout's manifest digest" test "$(json_get "$TMP/push1.json" 'd["digest"]')" = "$LAYOUT_V1"
check "progress lines on stderr, one per blob" test "$(grep -c 'copied' "$TMP/push1.err")" = 3
"${SK[@]}" inspect --tls-verify=false --raw "docker://$R/test/app:v1" >"$TMP/sk_raw.json"
check "skopeo reads back the same manifest bytes" test "sha256:$(sha "$TMP/sk_raw.json")" = "$LAYOUT_V1"
"${SK[@]}" copy -q --src-tls-verify=false "docker://$R/test/app:v1" "oci:$TMP/skback:v1"
check "skopeo pulls what we pushed, digests verified" test -s "$TMP/skback/index.json"

"$ENCLAVER" push -q --insecure "oci:$L:v1" "docker://$R/test/app:v1" >"$TMP/push2.json" 2>"$TMP/push2.err"
check "second push sends no blob" test "$(json_get "$TMP/push2.json" 'd["blobs"]["copied"]'),$(json_get "$TMP/push2.json" 'd["blobs"]["skipped"]')" = "0,3"
check "--quiet prints no progress" test ! -s "$TMP/push2.err"

# Chunked upload: a chunk size far below the 3 MB layer.
"$ENCLAVER" push -q --insecure --chunk-size 1048576 "oci:$L:v1" "docker://$R/chunked/app:v1" >"$TMP/push3.json"
check "chunked (PATCH) upload of a 3 MB layer" test "$(json_get "$TMP/push3.json" 'd["blobs"]["copied"]')" = 3
"${SK[@]}" copy -q --src-tls-verify=false "docker://$R/chunked/app:v1" "oci:$TMP/skchunk:v1"
check "skopeo verifies the chunked upload" test -s "$TMP/skchunk/index.json"

"$ENCLAVER" copy -q --insecure "docker://$R/test/app:v1" "docker://$R/mounted/app:v1" >"$TMP/mount.json"
check "copy within a registry mounts every blob" test "$(json_get "$TMP/mount.json" 'd["blobs"]["mounted"]')" = 3
check "nothing was downloaded for the mount" test ! -e "$ENCLAVER_CACHE_DIR/blobs/sha256/$(json_get "$TMP/sk_raw.json" 'd["layers"][1]["digest"][7:]')"

# ---------------------------------------------------------------- skopeo pushes, we pull
"${SK[@]}" copy -q --dest-tls-verify=false --dest-compress-format zstd "oci:$L:other" "docker://$R/zstd/app:v1"
"${SK[@]}" inspect --tls-verify=false --raw "docker://$R/zstd/app:v1" >"$TMP/zstd_raw.json"
check "skopeo made a zstd layer" grep -q 'tar+zstd' "$TMP/zstd_raw.json"
"$ENCLAVER" pull -q --insecure "$R/zstd/app:v1" --output "oci:$TMP/pulled:z" >"$TMP/pull1.json"
check "pull what skopeo pushed: same manifest digest" test "$(json_get "$TMP/pull1.json" 'd["digest"]')" = "sha256:$(sha "$TMP/zstd_raw.json")"
ok_all=1
for b in "$TMP"/pulled/blobs/sha256/*; do
	[ "$(sha "$b")" = "$(basename "$b")" ] || ok_all=0
done
check "every pulled blob hashes to its name" test $ok_all = 1
check "skopeo reads the layout we wrote" "${SK[@]}" inspect "oci:$TMP/pulled:z"
"${SK[@]}" copy -q "oci:$TMP/pulled:z" "oci:$TMP/skcopy:z"
check "skopeo copies our layout with the same manifest" cmp "$TMP/pulled/blobs/sha256/$(json_get "$TMP/pull1.json" 'd["digest"][7:]')" "$TMP/zstd_raw.json"

# Second pull comes from the cache; --offline works from it alone.
"$ENCLAVER" pull --insecure "$R/zstd/app:v1" >"$TMP/pull2.json" 2>"$TMP/pull2.err"
check "a second pull downloads nothing" test ! -s "$TMP/pull2.err"
"$ENCLAVER" pull -q --offline "$R/zstd/app:v1" --output "oci:$TMP/offline:z" >"$TMP/pull3.json"
check "--offline pulls from the cache" test "$(json_get "$TMP/pull3.json" 'd["digest"]')" = "sha256:$(sha "$TMP/zstd_raw.json")"
check_fails "--offline without the image says so" "was never pulled" "$ENCLAVER" pull --offline "$R/never/pulled:v9"

# inspect
"$ENCLAVER" inspect --insecure "$R/test/app:v1" >"$TMP/inspect.json"
check "inspect: digest" test "$(json_get "$TMP/inspect.json" 'd["digest"]')" = "$LAYOUT_V1"
check "inspect: layers" test "$(json_get "$TMP/inspect.json" 'len(d["layers"])')" = 2
check "inspect: config" test "$(json_get "$TMP/inspect.json" 'd["config"]["architecture"]')" = "$(json_get "$TMP/skback/blobs/sha256/$(json_get "$TMP/sk_raw.json" 'd["config"]["digest"][7:]')" 'd["architecture"]')"

# ---------------------------------------------------------------- multi-platform index
# An index by hand: v1 as linux/amd64, other as linux/arm64/v8.
OTHER=$(python3 -c 'import json,sys; print([m for m in json.load(open(sys.argv[1]))["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"]=="other"][0]["digest"])' "$L/index.json")
python3 - "$L" "$LAYOUT_V1" "$OTHER" <<'PY'
import json, hashlib, os, sys
lay, a, b = sys.argv[1:]
size = lambda d: os.path.getsize(f"{lay}/blobs/sha256/{d[7:]}")
idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": a, "size": size(a),
     "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": b, "size": size(b),
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}
raw = json.dumps(idx).encode()
d = hashlib.sha256(raw).hexdigest()
open(f"{lay}/blobs/sha256/{d}", "wb").write(raw)
top = json.load(open(f"{lay}/index.json"))
top["manifests"].append({"mediaType": idx["mediaType"], "digest": "sha256:" + d, "size": len(raw),
                         "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(top, open(f"{lay}/index.json", "w"))
PY
"${SK[@]}" copy -q --all --dest-tls-verify=false "oci:$L:multi" "docker://$R/multi/app:v1"
"$ENCLAVER" pull -q --insecure --platform linux/arm64 "$R/multi/app:v1" >"$TMP/arm.json"
check "--platform linux/arm64 picks the arm64 image" test "$(json_get "$TMP/arm.json" 'd["digest"]')" = "$OTHER"
"$ENCLAVER" pull -q --insecure --platform linux/amd64 "$R/multi/app:v1" >"$TMP/amd.json"
check "--platform linux/amd64 picks the amd64 image" test "$(json_get "$TMP/amd.json" 'd["digest"]')" = "$LAYOUT_V1"
"$ENCLAVER" inspect --insecure "$R/multi/app:v1" >"$TMP/multi.json"
check "inspect lists the index's platforms" test "$(json_get "$TMP/multi.json" '",".join(m["platform"] for m in d["manifests"])')" = "linux/amd64,linux/arm64/v8"
check_fails "a platform the index lacks is named" "no image for platform linux/s390x.*linux/arm64/v8" \
	"$ENCLAVER" pull --insecure --platform linux/s390x "$R/multi/app:v1"
"$ENCLAVER" pull -q --platform linux/arm64 "oci:$L:multi" --output "oci:$TMP/fromidx:arm" >"$TMP/idx.json"
check "platform selection from a local layout index" test "$(json_get "$TMP/idx.json" 'd["digest"]')" = "$OTHER"

# ---------------------------------------------------------------- docker-archive
"${SK[@]}" copy -q "oci:$L:v1" "docker-archive:$TMP/saved.tar:test/app:v1"
"$ENCLAVER" copy -q "docker-archive:$TMP/saved.tar" "oci:$TMP/fromarchive:v1" >"$TMP/da.json"
# skopeo's view of the same archive (it labels uncompressed layers .tar.gzip,
# so compare digests and sizes, not media types).
"${SK[@]}" inspect --raw "docker-archive:$TMP/saved.tar" >"$TMP/sk_archive.json"
M_OURS=$TMP/fromarchive/blobs/sha256/$(json_get "$TMP/da.json" 'd["digest"][7:]')
M_SK=$TMP/sk_archive.json
check "docker-archive: the same layer digests and sizes as skopeo reads" test \
	"$(json_get "$M_OURS" '[(l["digest"], l["size"]) for l in d["layers"]]')" = "$(json_get "$M_SK" '[(l["digest"], l["size"]) for l in d["layers"]]')"
check "docker-archive: the same config digest as skopeo reads" test \
	"$(json_get "$M_OURS" 'd["config"]["digest"]')" = "$(json_get "$M_SK" 'd["config"]["digest"]')"
check "docker-archive: layers are the config's diff_ids" test \
	"$(json_get "$M_OURS" '[l["digest"] for l in d["layers"]]')" = "$(json_get "$TMP/fromarchive/blobs/sha256/$(json_get "$M_OURS" 'd["config"]["digest"][7:]')" 'd["rootfs"]["diff_ids"]')"
"$ENCLAVER" copy -q "docker-archive:$TMP/saved.tar:test/app:v1" "docker://$R/fromarchive/app:v1" --insecure >/dev/null
check "docker-archive by name to the registry, skopeo reads it" "${SK[@]}" inspect --tls-verify=false "docker://$R/fromarchive/app:v1"
check_fails "docker-archive: an unknown name" "no image tagged docker.io/library/nope:v1" \
	"$ENCLAVER" copy "docker-archive:$TMP/saved.tar:nope:v1" "oci:$TMP/x"
check_fails "docker-archive: not an archive" "no manifest.json|Unrecognized archive" \
	"$ENCLAVER" copy "docker-archive:$L/index.json" "oci:$TMP/x"

# ---------------------------------------------------------------- faults
check_fails "unknown tag: not found, with the name" "not found.*MANIFEST_UNKNOWN|manifest test/app:nope" \
	"$ENCLAVER" pull --insecure "$R/test/app:nope"
check_fails "unknown repository" "not found" "$ENCLAVER" pull --insecure "$R/no/such:v1"
check_fails "bad reference" "invalid reference \"$R/Bad:v1\": repository name must be lowercase" \
	"$ENCLAVER" pull --insecure "$R/Bad:v1"
check_fails "plain HTTP without --insecure is refused" "TLS failure" "$ENCLAVER" pull "$R/test/app:v1"

# A layer corrupted in the registry's storage (same size): the pull fails on
# the digest and the cache keeps nothing of it.
export ENCLAVER_CACHE_DIR=$TMP/cache-fault
"${SK[@]}" copy -q --dest-tls-verify=false "oci:$L:v1" "docker://$R/fault/app:v1"
BIG=$(json_get "$TMP/sk_raw.json" 'd["layers"][1]["digest"][7:]')
DATA=$REG/storage/docker/registry/v2/blobs/sha256/${BIG:0:2}/$BIG/data
cp "$DATA" "$TMP/data.orig"
printf 'corrupt!' | dd of="$DATA" bs=1 seek=1000 conv=notrunc status=none
check_fails "a blob with the wrong content is rejected" "digest mismatch: expected sha256:$BIG, got sha256:" \
	"$ENCLAVER" pull --insecure "$R/fault/app:v1"
check "the corrupt blob is not in the cache" test ! -e "$ENCLAVER_CACHE_DIR/blobs/sha256/$BIG"
check "no temporary files are left in the cache" test -z "$(find "$ENCLAVER_CACHE_DIR/blobs" -name '.tmp-*')"
cp "$TMP/data.orig" "$DATA"
"$ENCLAVER" pull -q --insecure "$R/fault/app:v1" >/dev/null
check "once repaired, the same pull succeeds" test "$(sha "$ENCLAVER_CACHE_DIR/blobs/sha256/$BIG")" = "$BIG"

# A manifest corrupted in storage: the registry's digest header and the bytes disagree.
MDATA=$REG/storage/docker/registry/v2/blobs/sha256/${LAYOUT_V1:7:2}/${LAYOUT_V1:7}/data
cp "$MDATA" "$TMP/m.orig"
sed -i 's/"schemaVersion"/"schemaVersion" /' "$MDATA"
check_fails "a manifest whose bytes do not match its digest is rejected" "digest mismatch" \
	"$ENCLAVER" pull --insecure "$R/fault/app:v1"
cp "$TMP/m.orig" "$MDATA"

# A malformed manifest (whose digest is right) in a layout.
BADL=$TMP/badlayout
mkdir -p "$BADL/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$BADL/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":' >"$BADL/m"
MD=$(sha "$BADL/m")
mv "$BADL/m" "$BADL/blobs/sha256/$MD"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d}]}' \
	"$MD" "$(stat -c %s "$BADL/blobs/sha256/$MD")" >"$BADL/index.json"
check_fails "a truncated manifest is a clear error" "manifest sha256:$MD: manifest is not valid JSON" \
	"$ENCLAVER" inspect "oci:$BADL"
check_fails "not a layout" "is not an OCI image layout" "$ENCLAVER" inspect "oci:$TMP"

# ---------------------------------------------------------------- network faults
# tests/cli/fault_proxy.py sits in front of the same registry and injects them.
start_proxy() {
	rm -f "$TMP/proxy.port" "$TMP/proxy.log"
	python3 "$ROOT/tests/cli/fault_proxy.py" "$TMP/proxy.port" "$PORT" "$1" "$TMP/proxy.log" &
	PROXY_PID=$!
	for _ in $(seq 1 100); do
		[ -s "$TMP/proxy.port" ] && break
		sleep 0.05
	done
	PR=127.0.0.1:$(cat "$TMP/proxy.port")
}
stop_proxy() {
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
}
WANT=$(json_get "$TMP/sk_raw.json" 'd["layers"][1]["digest"]')

start_proxy fail500:2
export ENCLAVER_CACHE_DIR=$TMP/cache-500
check "500 twice, then the pull succeeds" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
check "the failed GETs were retried" test "$(grep -c 'GET /v2/fault/app/blobs/' "$TMP/proxy.log")" -ge 5
stop_proxy

start_proxy fail429:2
export ENCLAVER_CACHE_DIR=$TMP/cache-429
check "429 (rate limit) twice, then the pull succeeds" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
stop_proxy

start_proxy fail500:1000
export ENCLAVER_CACHE_DIR=$TMP/cache-500-forever
check_fails "500 every time: gives up with the status" "unexpected HTTP 500: UNAVAILABLE injected fault" \
	"$ENCLAVER" pull --insecure "$PR/fault/app:v1"
check "no layer and nothing half-written in the cache" \
	test -z "$(find "$ENCLAVER_CACHE_DIR/blobs" -name '.tmp-*' -o -name "${WANT:7}")"
stop_proxy

start_proxy drop
export ENCLAVER_CACHE_DIR=$TMP/cache-drop
check "a connection cut mid-blob: the pull resumes" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
check "the retry asked for the rest with Range" grep -q "GET /v2/fault/app/blobs/$WANT range=bytes=[1-9][0-9]*-" "$TMP/proxy.log"
check "the resumed blob is whole and verified" test "sha256:$(sha "$ENCLAVER_CACHE_DIR/blobs/sha256/${WANT:7}")" = "$WANT"
stop_proxy

# A pull killed mid-blob (SIGKILL while the server stalls halfway): what it
# leaves is a temporary file, never a blob under its digest; the next pull
# fetches it whole.
start_proxy stall
export ENCLAVER_CACHE_DIR=$TMP/cache-killed
"$ENCLAVER" pull -q --insecure "$PR/fault/app:v1" >/dev/null 2>&1 &
PULL_PID=$!
for _ in $(seq 1 100); do
	[ -n "$(find "$ENCLAVER_CACHE_DIR/blobs/sha256" -name '.tmp-*' -size +1k 2>/dev/null)" ] && break
	sleep 0.1
done
kill -9 "$PULL_PID" 2>/dev/null
wait "$PULL_PID" 2>/dev/null
check "killed mid-blob: a partial temporary file is all there is" \
	test -n "$(find "$ENCLAVER_CACHE_DIR/blobs/sha256" -name '.tmp-*' -size +1k)" -a ! -e "$ENCLAVER_CACHE_DIR/blobs/sha256/${WANT:7}"
stop_proxy
check "the next pull fetches the blob whole" "$ENCLAVER" pull -q --insecure "$R/fault/app:v1"
check "and it hashes to its name" test "sha256:$(sha "$ENCLAVER_CACHE_DIR/blobs/sha256/${WANT:7}")" = "$WANT"

done_testing
