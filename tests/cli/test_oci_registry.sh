#!/usr/bin/env bash
# test_oci_registry: pull, push, copy and inspect against a real registry
# (Debian's docker-registry on 127.0.0.1, started and stopped here), with
# skopeo as the peer that reads back what we push and pushes what we pull.
# Fixtures are made by umoci and skopeo; faults by corrupting the registry's
# own storage.
. "$(dirname "$0")/lib.sh"

require_tools docker-registry skopeo umoci htpasswd

registry_start
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

# On a terminal (script(1) gives one) a status line shows the transfers; not
# with -q, and not when stderr is a file (push1.err above).
script -qec "$ENCLAVER push --insecure oci:$L:v1 docker://$R/tty/app:v1" /dev/null >"$TMP/tty-push.out" 2>&1
check "on a terminal, uploads show a status line" grep -q "pushing [0-3]/3 blobs, .* MiB" "$TMP/tty-push.out"
script -qec "env ENCLAVER_CACHE_DIR=$TMP/cache-tty $ENCLAVER pull --insecure $R/tty/app:v1" /dev/null >"$TMP/tty-pull.out" 2>&1
check "on a terminal, downloads show a status line" grep -q "pulling [0-3]/3 blobs, .* MiB" "$TMP/tty-pull.out"
script -qec "$ENCLAVER push -q --insecure oci:$L:v1 docker://$R/tty2/app:v1" /dev/null >"$TMP/tty-quiet.out" 2>&1
check "-q: no status line on a terminal either" test "$(grep -c 'pushing' "$TMP/tty-quiet.out")" = 0
check "stderr not a terminal: no status line" test "$(grep -c 'pushing' "$TMP/push1.err")" = 0

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
# On the cache's file system the layout's blobs are hard links to the cache
# (no second copy of the bytes); on another file system they are copies.
ZLAYER=$(json_get "$TMP/zstd_raw.json" 'd["layers"][0]["digest"][7:]')
check "a pulled layer is the cache's file, linked" \
	test "$TMP/pulled/blobs/sha256/$ZLAYER" -ef "$ENCLAVER_CACHE_DIR/blobs/sha256/$ZLAYER"
if SHM=$(mktemp -d /dev/shm/enclaver-test.XXXXXX 2>/dev/null) && [ "$(stat -f -c %T "$SHM")" != "$(stat -f -c %T "$TMP")" ]; then
	"$ENCLAVER" pull -q --insecure "$R/zstd/app:v1" --output "oci:$SHM/out:z" >/dev/null
	check "on another file system the layer is a copy" \
		test "$(sha "$SHM/out/blobs/sha256/$ZLAYER")" = "$ZLAYER" -a "$(stat -c %h "$SHM/out/blobs/sha256/$ZLAYER")" = 1
	rm -rf "$SHM"
fi
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

# ---------------------------------------------------------------- --all: a whole index
MULTI=$(python3 -c 'import json,sys; print([m for m in json.load(open(sys.argv[1]))["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"]=="multi"][0]["digest"])' "$L/index.json")
"$ENCLAVER" copy -q --all --insecure "oci:$L:multi" "docker://$R/all/app:v1" >"$TMP/all.json"
check "copy --all reports the index digest" test "$(json_get "$TMP/all.json" 'd["digest"]')" = "$MULTI"
"${SK[@]}" inspect --tls-verify=false --raw "docker://$R/all/app:v1" >"$TMP/all_raw.json"
check "copy --all: the registry holds the index byte for byte" cmp "$TMP/all_raw.json" "$L/blobs/sha256/${MULTI:7}"
check "copy --all: the amd64 image is there by digest" "${SK[@]}" inspect --tls-verify=false "docker://$R/all/app@$LAYOUT_V1"
check "copy --all: the arm64 image is there by digest" "${SK[@]}" inspect --tls-verify=false "docker://$R/all/app@$OTHER"
check "copy --all: every blob of both images went up" test "$(json_get "$TMP/all.json" 'd["blobs"]["copied"]')" = 5
"${SK[@]}" copy -q --all --src-tls-verify=false "docker://$R/all/app:v1" "oci:$TMP/skall:v1"
check "skopeo copies the whole index back, digests verified" test -s "$TMP/skall/blobs/sha256/${OTHER:7}"
"$ENCLAVER" copy -q --all --insecure "docker://$R/all/app:v1" "oci:$TMP/allback:v1" >"$TMP/allback.json"
check "copy --all registry to layout keeps the index digest" test "$(json_get "$TMP/allback/index.json" 'd["manifests"][0]["digest"]')" = "$MULTI"
check "copy --all into a layout: both images' manifests" test -s "$TMP/allback/blobs/sha256/${LAYOUT_V1:7}" -a -s "$TMP/allback/blobs/sha256/${OTHER:7}"
check "skopeo reads every platform of the layout we wrote" \
	"${SK[@]}" copy -q --all "oci:$TMP/allback:v1" "oci:$TMP/allback2:v1"
"$ENCLAVER" copy -q --all --insecure "docker://$R/all/app:v1" "docker://$R/all2/app:v1" >"$TMP/allmount.json"
check "copy --all within a registry mounts every blob" test "$(json_get "$TMP/allmount.json" 'd["blobs"]["mounted"]')" = 5
# A Docker manifest list (skopeo writes one with --format v2s2): kept as it is
# by a registry, converted to an OCI index for a layout.
"${SK[@]}" copy -q --all --format v2s2 --dest-tls-verify=false "oci:$L:multi" "docker://$R/dlist/app:v1"
"${SK[@]}" inspect --tls-verify=false --raw "docker://$R/dlist/app:v1" >"$TMP/dlist_raw.json"
check "skopeo made a Docker manifest list" grep -q 'manifest.list.v2+json' "$TMP/dlist_raw.json"
"$ENCLAVER" copy -q --all --insecure "docker://$R/dlist/app:v1" "docker://$R/dlist2/app:v1" >"$TMP/dlist2.json"
check "copy --all of a manifest list keeps its digest" test "$(json_get "$TMP/dlist2.json" 'd["digest"]')" = "sha256:$(sha "$TMP/dlist_raw.json")"
"$ENCLAVER" copy -q --all --insecure "docker://$R/dlist/app:v1" "oci:$TMP/dlistoci:v1" >"$TMP/dlistoci.json"
check "a manifest list into a layout becomes an OCI index" test "$(json_get "$TMP/dlistoci.json" 'd["mediaType"]')" = "application/vnd.oci.image.index.v1+json"
check "skopeo reads every platform of the converted index" \
	"${SK[@]}" copy -q --all "oci:$TMP/dlistoci:v1" "oci:$TMP/dlistoci2:v1"
"$ENCLAVER" copy -q --all --insecure "docker://$R/test/app:v1" "oci:$TMP/allsingle:v1" >"$TMP/allsingle.json"
check "copy --all of a single image copies that image" test "$(json_get "$TMP/allsingle.json" 'd["digest"]')" = "$LAYOUT_V1"

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
# Writing one: from the registry (gzip layers) to what skopeo writes from the same image.
"$ENCLAVER" copy -q --insecure "docker://$R/test/app:v1" "docker-archive:$TMP/ours.tar:test/app:v1" >/dev/null
"${SK[@]}" inspect --raw "docker-archive:$TMP/ours.tar" >"$TMP/ours_raw.json"
check "docker-archive write: skopeo sees the layers and config it writes itself" test \
	"$(json_get "$TMP/ours_raw.json" '[(l["digest"], l["size"]) for l in d["layers"]] + [d["config"]["digest"]]')" = \
	"$(json_get "$M_SK" '[(l["digest"], l["size"]) for l in d["layers"]] + [d["config"]["digest"]]')"
"${SK[@]}" copy -q "docker-archive:$TMP/ours.tar" "docker://$R/viaarchive/app:v1" --dest-tls-verify=false
check "docker-archive write: skopeo pushes from it, the registry checks every digest" \
	"${SK[@]}" inspect --tls-verify=false "docker://$R/viaarchive/app:v1"
check_fails "docker-archive write: --all is refused" "holds single images" \
	"$ENCLAVER" copy --all --insecure "docker://$R/all/app:v1" "docker-archive:$TMP/never.tar"
check "docker-archive write: nothing left of the refused one" test -z "$(find "$TMP" -maxdepth 1 -name 'never.tar*')"
check_fails "docker-archive: an unknown name" "no image tagged docker.io/library/nope:v1" \
	"$ENCLAVER" copy "docker-archive:$TMP/saved.tar:nope:v1" "oci:$TMP/x"
check_fails "docker-archive: not an archive" "no manifest.json|Unrecognized archive" \
	"$ENCLAVER" copy "docker-archive:$L/index.json" "oci:$TMP/x"

# ---------------------------------------------------------------- registries.conf
RC=$TMP/registries.conf
cat >"$RC" <<EOF
unqualified-search-registries = ["$R"]
[[registry]]
location = "$R"
insecure = true
[[registry]]
prefix = "example.invalid/team"
location = "$R/test"
insecure = true
[[registry]]
prefix = "example.invalid/mirrored"
location = "$R/nowhere"
insecure = true
[[registry.mirror]]
location = "$R/nosuch"
insecure = true
[[registry.mirror]]
location = "$R/test"
insecure = true
[[registry]]
prefix = "$R/blocked"
blocked = true
EOF
export CONTAINERS_REGISTRIES_CONF=$RC
"$ENCLAVER" pull -q "$R/test/app:v1" >"$TMP/rc1.json"
check "registries.conf: insecure = true stands in for --insecure" test "$(json_get "$TMP/rc1.json" 'd["digest"]')" = "$LAYOUT_V1"
"$ENCLAVER" pull -q "example.invalid/team/app:v1" >"$TMP/rc2.json"
check "registries.conf: a prefix is pulled from its location" test "$(json_get "$TMP/rc2.json" 'd["digest"]')" = "$LAYOUT_V1"
"$ENCLAVER" pull "example.invalid/mirrored/app:v1" >"$TMP/rc3.json" 2>"$TMP/rc3.err"
check "registries.conf: mirrors in order, the first that has the image" test "$(json_get "$TMP/rc3.json" 'd["digest"]')" = "$LAYOUT_V1"
check "registries.conf: the progress says where it came from" grep -q "from $R/test/app:v1" "$TMP/rc3.err"
"$ENCLAVER" pull -q "test/app:v1" >"$TMP/rc4.json"
check "registries.conf: a short name goes to the unqualified-search registries" test "$(json_get "$TMP/rc4.json" 'd["digest"]')" = "$LAYOUT_V1"
check_fails "registries.conf: a short name nobody has names what it tried" "$R: manifest no/such:v1: not found" \
	"$ENCLAVER" pull "no/such:v1"
check_fails "registries.conf: a blocked registry is refused" "$R/blocked/app:v1 is blocked by $RC" \
	"$ENCLAVER" pull "$R/blocked/app:v1"
"$ENCLAVER" push -q "oci:$L:v1" "docker://$R/rcpush/app:v1" >/dev/null
check "registries.conf: insecure applies to pushes too" "${SK[@]}" inspect --tls-verify=false "docker://$R/rcpush/app:v1"
printf '[[registry]]\nlocation = "%s"\ninsecure = maybe\n' "$R" >"$TMP/bad.conf"
CONTAINERS_REGISTRIES_CONF=$TMP/bad.conf check_fails "registries.conf: a bad file is named with its line" \
	"$TMP/bad.conf:3: expected a string, true/false or an array, not maybe" "$ENCLAVER" pull "$R/test/app:v1"
unset CONTAINERS_REGISTRIES_CONF

# ---------------------------------------------------------------- drop-ins and short-name aliases
# The user's own registries.conf (so the host's /etc/containers is not read),
# its registries.conf.d drop-ins applied in lexical order.
UC=$HOME/.config/containers
mkdir -p "$UC/registries.conf.d"
cat >"$UC/registries.conf" <<EOF
unqualified-search-registries = ["localhost:$PORT", "$R"]
short-name-mode = "enforcing"
[[registry]]
location = "$R"
insecure = true
[[registry]]
prefix = "localhost:$PORT"
location = "$R/nowhere"
insecure = true
EOF
printf '# aliases\n[aliases]\n"myapp" = "%s/test/app"\n"other" = "%s/nowhere/other"\n' "$R" "$R" >"$UC/registries.conf.d/50-alias.conf"
printf '[aliases]\n"other" = "%s/test/app"\n' "$R" >"$UC/registries.conf.d/60-later.conf"
printf 'this is not read\n' >"$UC/registries.conf.d/README"
"$ENCLAVER" pull "myapp:v1" >"$TMP/al1.json" 2>"$TMP/al1.err"
check "short names: an alias from a drop-in is pulled" test "$(json_get "$TMP/al1.json" 'd["digest"]')" = "$LAYOUT_V1"
check "short names: the alias is named with its file and line" \
	grep -qF "short name \"myapp\" is an alias ($UC/registries.conf.d/50-alias.conf:3) for $R/test/app:v1" "$TMP/al1.err"
check "short names: and where it was pulled from" grep -qF "pulling myapp:v1 from $R/test/app:v1" "$TMP/al1.err"
"$ENCLAVER" pull -q "other:v1" >"$TMP/al2.json"
check "short names: a later drop-in replaces an alias" test "$(json_get "$TMP/al2.json" 'd["digest"]')" = "$LAYOUT_V1"
check_fails "short names: enforcing with two search registries is an error listing them" \
	"short name \"test/app\" is ambiguous: short-name-mode is \"enforcing\" \\($UC/registries.conf:2\\).*candidates: localhost:$PORT/test/app:v1, $R/test/app:v1" \
	"$ENCLAVER" pull "test/app:v1"
printf 'short-name-mode = "permissive"\n' >"$UC/registries.conf.d/70-mode.conf"
"$ENCLAVER" pull "test/app:v1" >"$TMP/al3.json" 2>"$TMP/al3.err"
check "short names: permissive tries the search registries in order" test "$(json_get "$TMP/al3.json" 'd["digest"]')" = "$LAYOUT_V1"
check "short names: the first had nothing, the second is named" grep -qF "pulling test/app:v1 from $R/test/app:v1" "$TMP/al3.err"
check "short names: the resolution is named with its file" \
	grep -qF "short name \"test/app\": unqualified-search-registries ($UC/registries.conf:1): 2 to try" "$TMP/al3.err"
printf '\n[aliases]\n"bad" = "no-registry"\n' >"$UC/registries.conf.d/80-bad.conf"
check_fails "short names: a bad drop-in is named with its line" \
	"$UC/registries.conf.d/80-bad.conf:3: alias \"bad\" = \"no-registry\": the value must name a registry" \
	"$ENCLAVER" pull "$R/test/app:v1"
rm "$UC/registries.conf.d/80-bad.conf"
# $CONTAINERS_REGISTRIES_CONF replaces the main file, not the drop-ins.
CONTAINERS_REGISTRIES_CONF=$RC "$ENCLAVER" pull -q "myapp:v1" >"$TMP/al4.json"
check "short names: \$CONTAINERS_REGISTRIES_CONF still takes the user's drop-ins" \
	test "$(json_get "$TMP/al4.json" 'd["digest"]')" = "$LAYOUT_V1"
rm -rf "$UC"

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
# tests/cli/fault_proxy.py sits in front of the same registry and injects them (proxy_start).
WANT=$(json_get "$TMP/sk_raw.json" 'd["layers"][1]["digest"]')

# Uploads run in parallel: the proxy holds each blob PUT until three are in
# flight at once (the image has three blobs), so the push gets through only
# if they were sent together.
proxy_start together:3
check "a push sends its blobs in parallel" "$ENCLAVER" push -q --insecure "oci:$L:v1" "docker://$PR/parallel/app:v1"
check "three uploads were in flight at once" grep -q "upload inflight=3" "$TMP/proxy.log"
check "skopeo reads the parallel push back" "${SK[@]}" inspect --tls-verify=false "docker://$R/parallel/app:v1"
proxy_stop

proxy_start fail500:2
export ENCLAVER_CACHE_DIR=$TMP/cache-500
check "500 twice, then the pull succeeds" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
check "the failed GETs were retried" test "$(grep -c 'GET /v2/fault/app/blobs/' "$TMP/proxy.log")" -ge 5
proxy_stop

proxy_start fail429:2
export ENCLAVER_CACHE_DIR=$TMP/cache-429
check "429 (rate limit) twice, then the pull succeeds" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
proxy_stop

proxy_start fail500:1000
export ENCLAVER_CACHE_DIR=$TMP/cache-500-forever
check_fails "500 every time: gives up with the status" "unexpected HTTP 500: UNAVAILABLE injected fault" \
	"$ENCLAVER" pull --insecure "$PR/fault/app:v1"
check "no layer and nothing half-written in the cache" \
	test -z "$(find "$ENCLAVER_CACHE_DIR/blobs" -name '.tmp-*' -o -name "${WANT:7}")"
proxy_stop

proxy_start drop
export ENCLAVER_CACHE_DIR=$TMP/cache-drop
check "a connection cut mid-blob: the pull resumes" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
check "the retry asked for the rest with Range" grep -q "GET /v2/fault/app/blobs/$WANT range=bytes=[1-9][0-9]*-" "$TMP/proxy.log"
check "the resumed blob is whole and verified" test "sha256:$(sha "$ENCLAVER_CACHE_DIR/blobs/sha256/${WANT:7}")" = "$WANT"
proxy_stop

# A pull killed mid-blob (SIGKILL while the server stalls halfway): what it
# leaves is the blob's partial file, never a blob under its digest; the next
# run continues it with Range from where it stopped and verifies the whole.
proxy_start stall
export ENCLAVER_CACHE_DIR=$TMP/cache-killed
PARTIAL=$ENCLAVER_CACHE_DIR/blobs/sha256/.partial-${WANT:7}
"$ENCLAVER" pull -q --insecure "$PR/fault/app:v1" >/dev/null 2>&1 &
PULL_PID=$!
for _ in $(seq 1 100); do
	[ -n "$(find "$PARTIAL" -size +1k 2>/dev/null)" ] && break
	sleep 0.1
done
kill -9 "$PULL_PID" 2>/dev/null
wait "$PULL_PID" 2>/dev/null
check "killed mid-blob: a partial file is all there is" \
	test -n "$(find "$PARTIAL" -size +1k)" -a ! -e "$ENCLAVER_CACHE_DIR/blobs/sha256/${WANT:7}"
proxy_stop
HAVE=$(stat -c %s "$PARTIAL")
proxy_start fail500:0
check "the next run pulls the image" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
check "it asked only for the rest of the blob, with Range" \
	grep -q "GET /v2/fault/app/blobs/$WANT range=bytes=$HAVE-" "$TMP/proxy.log"
check "the resumed blob hashes to its name" test "sha256:$(sha "$ENCLAVER_CACHE_DIR/blobs/sha256/${WANT:7}")" = "$WANT"
check "and its partial file is gone" test ! -e "$PARTIAL"
proxy_stop
# A partial whose bytes went bad is caught by the digest over the whole blob,
# thrown away, and the blob fetched again from byte 0 in the same pull.
export ENCLAVER_CACHE_DIR=$TMP/cache-badpartial
mkdir -p "$ENCLAVER_CACHE_DIR/blobs/sha256"
head -c 100000 /dev/urandom >"$ENCLAVER_CACHE_DIR/blobs/sha256/.partial-${WANT:7}"
proxy_start fail500:0
check "a corrupt partial: the pull still succeeds" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
check "it asked for the rest, then for the whole blob" \
	test "$(grep "GET /v2/fault/app/blobs/$WANT" "$TMP/proxy.log" | cut -d' ' -f3 | tr '\n' ' ')" = "range=bytes=100000- range=- "
check "the blob hashes to its name" \
	test "sha256:$(sha "$ENCLAVER_CACHE_DIR/blobs/sha256/${WANT:7}")" = "$WANT"
check "the corrupt partial is gone" test ! -e "$ENCLAVER_CACHE_DIR/blobs/sha256/.partial-${WANT:7}"
proxy_stop
# Only once: a registry whose blob itself is bad still fails the pull.
rm -rf "$ENCLAVER_CACHE_DIR"
mkdir -p "$ENCLAVER_CACHE_DIR/blobs/sha256"
head -c 100000 "$TMP/data.orig" >"$ENCLAVER_CACHE_DIR/blobs/sha256/.partial-${WANT:7}"
cp "$DATA" "$TMP/data.good"
printf 'corrupt!' | dd of="$DATA" bs=1 seek=200000 conv=notrunc status=none
check_fails "a partial, then a bad blob in the registry: digest mismatch" "digest mismatch: expected $WANT" \
	"$ENCLAVER" pull --insecure "$R/fault/app:v1"
cp "$TMP/data.good" "$DATA"
check "and no partial kept of it" test ! -e "$ENCLAVER_CACHE_DIR/blobs/sha256/.partial-${WANT:7}"

# A partial that already holds every byte (a run stopped after the last byte
# but before filing it): verified and filed without asking the server, which
# would answer a Range from the blob's end with 416.
export ENCLAVER_CACHE_DIR=$TMP/cache-wholepartial
"$ENCLAVER" pull -q --insecure "$R/fault/app:v1" >/dev/null
BLOBS=$ENCLAVER_CACHE_DIR/blobs/sha256
# (A partial is writable; a filed blob is read-only: as root or not, the test's stand-in must be.)
mv "$BLOBS/${WANT:7}" "$BLOBS/.partial-${WANT:7}" && chmod 0644 "$BLOBS/.partial-${WANT:7}"
proxy_start fail500:0
check "a partial holding the whole blob: the pull succeeds" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
check "without a request for that blob" test "$(grep -c "GET /v2/fault/app/blobs/$WANT" "$TMP/proxy.log")" = 0
check "the blob is filed under its digest" test "sha256:$(sha "$BLOBS/${WANT:7}")" = "$WANT"
check "and its partial is gone" test ! -e "$BLOBS/.partial-${WANT:7}"
proxy_stop
mv "$BLOBS/${WANT:7}" "$BLOBS/.partial-${WANT:7}" && chmod 0644 "$BLOBS/.partial-${WANT:7}"
printf 'X' | dd of="$BLOBS/.partial-${WANT:7}" bs=1 seek=5000 conv=notrunc status=none
check "a whole-length partial with a bad byte: the pull fetches the blob" \
	"$ENCLAVER" pull -q --insecure "$R/fault/app:v1"
check "that partial is gone" test ! -e "$BLOBS/.partial-${WANT:7}"
check "the blob is the right one" test "sha256:$(sha "$BLOBS/${WANT:7}")" = "$WANT"

# A 416 to a ranged GET (the registry's reply also announces a length it never
# sends): the partial cannot be continued, so it is dropped and the blob
# fetched from byte 0 in the same pull.
export ENCLAVER_CACHE_DIR=$TMP/cache-416
mkdir -p "$ENCLAVER_CACHE_DIR/blobs/sha256"
head -c 100000 "$BLOBS/${WANT:7}" >"$ENCLAVER_CACHE_DIR/blobs/sha256/.partial-${WANT:7}"
proxy_start range416
check "a ranged GET answered 416: the pull succeeds" "$ENCLAVER" pull -q --insecure "$PR/fault/app:v1"
check "it asked for the rest first" grep -q "GET /v2/fault/app/blobs/$WANT range=bytes=100000-" "$TMP/proxy.log"
check "then for the whole blob" grep -q "GET /v2/fault/app/blobs/$WANT range=-" "$TMP/proxy.log"
check "the blob hashes to its name" \
	test "sha256:$(sha "$ENCLAVER_CACHE_DIR/blobs/sha256/${WANT:7}")" = "$WANT"
proxy_stop

done_testing
