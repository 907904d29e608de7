#!/usr/bin/env bash
# test_oci_local: the local formats without a registry: docker-archive
# tarballs written here with tar(1) in `docker save`'s own layout (digests
# derived with sha256sum), OCI layouts, and bad input of every kind: clear
# errors, no partial output, nothing untrusted in the cache.
. "$(dirname "$0")/lib.sh"

export ENCLAVER_CACHE_DIR=$TMP/cache
sha() { sha256sum "$1" | cut -d' ' -f1; }
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---------------------------------------------------------------- a docker save archive by hand
A=$TMP/archive
mkdir -p "$A/src1/etc" "$A/src2/usr" "$A/img/aaa" "$A/img/bbb" "$A/img/ccc"
echo one >"$A/src1/etc/one"
head -c 100000 /dev/urandom >"$A/src2/usr/data"
tar -C "$A/src1" -cf "$A/img/aaa/layer.tar" .
tar -C "$A/src2" -cf "$A/img/bbb/layer.tar" .
# docker save stores a repeated layer once and links to it.
ln -s ../aaa/layer.tar "$A/img/ccc/layer.tar"
D1=$(sha "$A/img/aaa/layer.tar")
D2=$(sha "$A/img/bbb/layer.tar")
S1=$(stat -c %s "$A/img/aaa/layer.tar")
S2=$(stat -c %s "$A/img/bbb/layer.tar")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s","sha256:%s"]}}' \
	"$D1" "$D2" "$D1" >"$A/img/cfg.json"
CFG=$(sha "$A/img/cfg.json")
mv "$A/img/cfg.json" "$A/img/$CFG.json"
printf '[{"Config":"%s.json","RepoTags":["example.com/app:v1","app:latest"],"Layers":["aaa/layer.tar","bbb/layer.tar","ccc/layer.tar"]}]' \
	"$CFG" >"$A/img/manifest.json"
tar -C "$A/img" -cf "$TMP/save.tar" manifest.json "$CFG.json" aaa bbb ccc
gzip -c "$TMP/save.tar" >"$TMP/save.tar.gz"

"$ENCLAVER" copy -q "docker-archive:$TMP/save.tar" "oci:$TMP/out:v1" >"$TMP/r1.json"
M=$TMP/out/blobs/sha256/$(json_get "$TMP/r1.json" 'd["digest"][7:]')
check "docker-archive into a layout: converted to an OCI manifest" test "$(json_get "$M" 'd["mediaType"]')" = "application/vnd.oci.image.manifest.v1+json"
check "docker-archive: layers as sha256sum sees the tars, links followed" test \
	"$(json_get "$M" '" ".join(l["digest"][7:] + ":" + str(l["size"]) for l in d["layers"])')" = "$D1:$S1 $D2:$S2 $D1:$S1"
check "docker-archive: the config as sha256sum sees it" test "$(json_get "$M" 'd["config"]["digest"]')" = "sha256:$CFG"
check "docker-archive: uncompressed layers say so" test "$(json_get "$M" 'd["layers"][0]["mediaType"]')" = "application/vnd.oci.image.layer.v1.tar"
check "skopeo reads the layout written from the archive" skopeo --insecure-policy inspect "oci:$TMP/out:v1"
"$ENCLAVER" copy -q "docker-archive:$TMP/save.tar.gz:app" "oci:$TMP/outgz:v1" >"$TMP/r2.json"
check "a gzip'd archive, picked by a short RepoTag, gives the same manifest" test \
	"$(json_get "$TMP/r2.json" 'd["digest"]')" = "$(json_get "$TMP/r1.json" 'd["digest"]')"
"$ENCLAVER" copy -q "docker-archive:$TMP/save.tar:example.com/app:v1" "oci:$TMP/outname" >"$TMP/r3.json"
check "picked by its full RepoTag" test "$(json_get "$TMP/r3.json" 'd["digest"]')" = "$(json_get "$TMP/r1.json" 'd["digest"]')"
check "picked by @0" "$ENCLAVER" copy -q "docker-archive:$TMP/save.tar:@0" "oci:$TMP/outidx"
"$ENCLAVER" inspect "docker-archive:$TMP/save.tar" >"$TMP/insp.json"
check "inspect a docker-archive" test "$(json_get "$TMP/insp.json" 'd["config"]["rootfs"]["diff_ids"][1]')" = "sha256:$D2"
check "the archive itself reads as Docker schema 2" test "$(json_get "$TMP/insp.json" 'd["mediaType"]')" = "application/vnd.docker.distribution.manifest.v2+json"

# ---------------------------------------------------------------- several images in one archive
# What `docker save a b` writes: one manifest.json entry per image.
mkdir -p "$A/img/ddd"
head -c 50000 /dev/urandom >"$A/src2/usr/more"
tar -C "$A/src2" -cf "$A/img/ddd/layer.tar" .
D3=$(sha "$A/img/ddd/layer.tar")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$D3" >"$A/img/cfg2.json"
CFG2=$(sha "$A/img/cfg2.json")
mv "$A/img/cfg2.json" "$A/img/$CFG2.json"
printf '[{"Config":"%s.json","RepoTags":["example.com/app:v1","app:latest"],"Layers":["aaa/layer.tar","bbb/layer.tar","ccc/layer.tar"]},{"Config":"%s.json","RepoTags":["other:v2"],"Layers":["ddd/layer.tar"]}]' \
	"$CFG" "$CFG2" >"$A/img/manifest.json"
tar -C "$A/img" -cf "$TMP/save2.tar" manifest.json "$CFG.json" "$CFG2.json" aaa bbb ccc ddd
"$ENCLAVER" inspect "docker-archive:$TMP/save2.tar:other:v2" >"$TMP/two-tag.json"
check "several images: picked by a RepoTag" test "$(json_get "$TMP/two-tag.json" 'd["config"]["rootfs"]["diff_ids"]')" = "['sha256:$D3']"
check "several images: the manifest names the second config" test \
	"$(json_get "$TMP/two-tag.json" 'd["manifest"]["config"]["digest"]')" = "sha256:$CFG2"
"$ENCLAVER" inspect "docker-archive:$TMP/save2.tar:docker.io/library/other:v2" >"$TMP/two-full.json"
check "several images: the full name finds the same image" test \
	"$(json_get "$TMP/two-full.json" 'd["digest"]')" = "$(json_get "$TMP/two-tag.json" 'd["digest"]')"
"$ENCLAVER" inspect "docker-archive:$TMP/save2.tar:@1" >"$TMP/two-idx.json"
check "several images: @1 is the second" test "$(json_get "$TMP/two-idx.json" 'd["digest"]')" = "$(json_get "$TMP/two-tag.json" 'd["digest"]')"
"$ENCLAVER" copy -q "docker-archive:$TMP/save2.tar:example.com/app:v1" "oci:$TMP/two-first:v1" >"$TMP/two-first.json"
check "several images: the first, copied, is the single-image archive's image" test \
	"$(json_get "$TMP/two-first.json" 'd["digest"]')" = "$(json_get "$TMP/r1.json" 'd["digest"]')"
check "several images: skopeo reads the same layers by tag" test \
	"$(skopeo --insecure-policy inspect "docker-archive:$TMP/save2.tar:other:v2" | json_get /dev/stdin '" ".join(l[7:] for l in d["Layers"])')" = "$D3"
check_fails "several images: no name is an error listing the tags" \
	"save2.tar holds 2 images: @0 \(example.com/app:v1 app:latest\), @1 \(other:v2\); name one" \
	"$ENCLAVER" inspect "docker-archive:$TMP/save2.tar"
check_fails "several images: an unknown tag" "no image tagged docker.io/library/other:v3" \
	"$ENCLAVER" inspect "docker-archive:$TMP/save2.tar:other:v3"

# ---------------------------------------------------------------- bad archives
bad_archive() { # NAME: builds $TMP/bad-NAME.tar from $A/bad
	tar -C "$A/bad" -cf "$TMP/bad-$1.tar" .
}
no_output() { test ! -e "$TMP/never" && test -z "$(find "$ENCLAVER_CACHE_DIR" -name '.tmp-*')"; }
mkdir -p "$A/bad" && cp "$A/img/aaa/layer.tar" "$A/bad/layer.tar" && bad_archive nomanifest
check_fails "an archive without manifest.json" "is not a docker-archive: it has no manifest.json" \
	"$ENCLAVER" copy "docker-archive:$TMP/bad-nomanifest.tar" "oci:$TMP/never"
echo '[{"Config":' >"$A/bad/manifest.json" && bad_archive badjson
check_fails "a malformed manifest.json" "bad-badjson.tar: manifest.json: line" \
	"$ENCLAVER" copy "docker-archive:$TMP/bad-badjson.tar" "oci:$TMP/never"
echo '{}' >"$A/bad/manifest.json" && bad_archive notarray
check_fails "manifest.json not an array" "manifest.json must be a non-empty array" \
	"$ENCLAVER" copy "docker-archive:$TMP/bad-notarray.tar" "oci:$TMP/never"
printf '[{"Config":"layer.tar","Layers":["missing/layer.tar"]}]' >"$A/bad/manifest.json" && bad_archive missing
check_fails "a layer the archive lacks is named" "names missing/layer.tar, which the archive lacks" \
	"$ENCLAVER" copy "docker-archive:$TMP/bad-missing.tar" "oci:$TMP/never"
printf '[{"Config":"layer.tar","Layers":[]},{"Config":"layer.tar","Layers":[]}]' >"$A/bad/manifest.json" && bad_archive two
check_fails "two images need a name" "holds 2 images: @0 \\(untagged\\), @1 \\(untagged\\); name one" \
	"$ENCLAVER" copy "docker-archive:$TMP/bad-two.tar" "oci:$TMP/never"
check_fails "an index past the end" "no image @5 \(the archive holds 2\)" \
	"$ENCLAVER" copy "docker-archive:$TMP/bad-two.tar:@5" "oci:$TMP/never"
printf '[{"Config":7,"Layers":[]}]' >"$A/bad/manifest.json" && bad_archive config
check_fails "a Config that is not a string" "\"Config\" must be a string" \
	"$ENCLAVER" copy "docker-archive:$TMP/bad-config.tar" "oci:$TMP/never"
head -c 70000 "$TMP/save.tar" >"$TMP/truncated.tar"
check_fails "a truncated archive" "truncated|Truncated|premature|EOF|no manifest.json" \
	"$ENCLAVER" copy "docker-archive:$TMP/truncated.tar" "oci:$TMP/never"
head -c 5000 /dev/urandom >"$TMP/noise.tar"
check_fails "not an archive at all" "noise.tar" "$ENCLAVER" copy "docker-archive:$TMP/noise.tar" "oci:$TMP/never"
check_fails "a missing file" "Failed to open .*nope.tar" "$ENCLAVER" copy "docker-archive:$TMP/nope.tar" "oci:$TMP/never"
check "no partial output and no temporary blobs after all that" no_output

# ---------------------------------------------------------------- OCI layouts
"$ENCLAVER" copy -q "docker-archive:$TMP/save.tar" "oci:$TMP/multi:second" >/dev/null
"$ENCLAVER" copy -q "oci:$TMP/out:v1" "oci:$TMP/multi:first" >/dev/null
check "a layout keeps every name it was given" test \
	"$(json_get "$TMP/multi/index.json" '",".join(sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in d["manifests"]))')" = "first,second"
"$ENCLAVER" copy -q "oci:$TMP/out:v1" "oci:$TMP/multi:first" >/dev/null
check "writing a name again replaces its entry" test "$(json_get "$TMP/multi/index.json" 'len(d["manifests"])')" = 2
check_fails "two images need a name" "holds 2 images: name one as oci:" "$ENCLAVER" inspect "oci:$TMP/multi"
check_fails "an unknown name lists the names" "no image named \"third\" \(it has: second, first\)" \
	"$ENCLAVER" inspect "oci:$TMP/multi:third"
for b in "$TMP"/multi/blobs/sha256/*; do [ "$(sha "$b")" = "$(basename "$b")" ] || not_ok "layout blob $b"; done
check "the layout written by copy is byte-identical to its source's blobs" cmp "$M" "$TMP/multi/blobs/sha256/$(basename "$M")"

# Damaged layouts: a short blob, a blob with the wrong bytes, a bad index.json.
cp -r "$TMP/out" "$TMP/short"
chmod u+w "$TMP/short/blobs/sha256/$D2" # blobs are written read-only
truncate -s 100 "$TMP/short/blobs/sha256/$D2"
check_fails "a blob shorter than its descriptor" "blob sha256:$D2: .* has 100 bytes, the manifest says $S2" \
	"$ENCLAVER" copy "oci:$TMP/short:v1" "oci:$TMP/dst-short:v1"
check "the destination did not get it" test ! -e "$TMP/dst-short/blobs/sha256/$D2"
cp -r "$TMP/out" "$TMP/flipped"
chmod u+w "$TMP/flipped/blobs/sha256/$D2"
printf 'X' | dd of="$TMP/flipped/blobs/sha256/$D2" bs=1 seek=600 conv=notrunc status=none
check_fails "a blob with the wrong bytes" "digest mismatch: expected sha256:$D2" \
	"$ENCLAVER" copy "oci:$TMP/flipped:v1" "oci:$TMP/dst-flipped:v1"
check "the destination did not keep it" test ! -e "$TMP/dst-flipped/blobs/sha256/$D2"
check "the destination's index.json was not written" test ! -e "$TMP/dst-flipped/index.json"
cp -r "$TMP/out" "$TMP/badindex"
echo '{"schemaVersion":2,"manifests":[{"digest":"sha256:zz"}]}' >"$TMP/badindex/index.json"
check_fails "a bad index.json names the file and field" "badindex/index.json: manifests\[0\]: missing \"mediaType\"" \
	"$ENCLAVER" inspect "oci:$TMP/badindex"
echo '{"imageLayoutVersion":"2.0.0"}' >"$TMP/badindex/oci-layout"
check_fails "an unknown layout version" "unsupported imageLayoutVersion" "$ENCLAVER" inspect "oci:$TMP/badindex"

# ---------------------------------------------------------------- oci-archive
"$ENCLAVER" copy -q "oci:$TMP/out:v1" "oci-archive:$TMP/oa.tar:v1" >"$TMP/oa.json"
check "oci-archive: written, and skopeo reads the same manifest digest" test \
	"$(skopeo --insecure-policy inspect "oci-archive:$TMP/oa.tar:v1" | json_get /dev/stdin 'd["Digest"]')" = "$(json_get "$TMP/oa.json" 'd["digest"]')"
"$ENCLAVER" copy -q "oci:$TMP/out:v1" "oci-archive:$TMP/oa2.tar:v1" >/dev/null
check "oci-archive: byte-identical when written twice" cmp "$TMP/oa.tar" "$TMP/oa2.tar"
check "oci-archive: no temporary folder left beside it" test -z "$(find "$TMP" -maxdepth 1 -name 'oa.tar.tmp-*')"
skopeo --insecure-policy copy -q "oci:$TMP/out:v1" "oci-archive:$TMP/skoa.tar:named"
"$ENCLAVER" copy -q "oci-archive:$TMP/skoa.tar:named" "oci:$TMP/fromoa:v1" >"$TMP/fromoa.json"
# (skopeo recompresses on the way, so compare with the index it wrote.)
tar -xOf "$TMP/skoa.tar" index.json >"$TMP/skoa-index.json"
check "oci-archive: read what skopeo wrote, the digest its index names" test \
	"$(json_get "$TMP/fromoa.json" 'd["digest"]')" = "$(json_get "$TMP/skoa-index.json" 'd["manifests"][0]["digest"]')"
check_fails "oci-archive: an unknown name" "no image named \"other\" \(it has: named\)" \
	"$ENCLAVER" inspect "oci-archive:$TMP/skoa.tar:other"
mkdir -p "$TMP/oabad/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$TMP/oabad/oci-layout"
echo '{"schemaVersion":2,"manifests":[]}' >"$TMP/oabad/index.json"
echo 'not what the name says' >"$TMP/oabad/blobs/sha256/$D1"
tar -C "$TMP/oabad" -cf "$TMP/oabad.tar" .
check_fails "oci-archive: a blob whose bytes do not match its name" "digest mismatch: expected sha256:$D1" \
	"$ENCLAVER" inspect "oci-archive:$TMP/oabad.tar"
check "oci-archive: the bad blob is not in the cache" test ! -e "$ENCLAVER_CACHE_DIR/blobs/sha256/$D1.bad" -a \
	"$(sha "$ENCLAVER_CACHE_DIR/blobs/sha256/$D1")" = "$D1"
check_fails "oci-archive: a tar that is no layout" "is not an oci-archive" "$ENCLAVER" inspect "oci-archive:$TMP/save.tar"

# ---------------------------------------------------------------- docker-archive writing
"$ENCLAVER" copy -q "oci:$TMP/out:v1" "docker-archive:$TMP/w1.tar:example.com/app:v1" >"$TMP/w1.json"
tar -xOf "$TMP/w1.tar" manifest.json >"$TMP/w1-manifest.json"
check "docker-archive write: manifest.json names the config by its digest" \
	test "$(json_get "$TMP/w1-manifest.json" 'd[0]["Config"]')" = "$CFG.json"
check "docker-archive write: layers named by diff_id, a repeated layer stored once" test \
	"$(json_get "$TMP/w1-manifest.json" '" ".join(d[0]["Layers"])'),$(tar -tf "$TMP/w1.tar" | grep -c '\.tar$')" = "$D1.tar $D2.tar $D1.tar,2"
check "docker-archive write: the RepoTag" test "$(json_get "$TMP/w1-manifest.json" 'd[0]["RepoTags"]')" = "['example.com/app:v1']"
check "docker-archive write: the layer files are the original tars" \
	test "$(tar -xOf "$TMP/w1.tar" "$D2.tar" | sha256sum | cut -d' ' -f1)" = "$D2"
check "docker-archive write: the config byte for byte" test "$(tar -xOf "$TMP/w1.tar" "$CFG.json" | sha256sum | cut -d' ' -f1)" = "$CFG"
tar -xOf "$TMP/w1.tar" repositories >"$TMP/w1-repos.json"
check "docker-archive write: repositories points the tag at the top layer" \
	test "$(json_get "$TMP/w1-repos.json" 'd["example.com/app"]["v1"]')" = "$D1"
"$ENCLAVER" copy -q "docker-archive:$TMP/w1.tar" "oci:$TMP/w1back:v1" >"$TMP/w1back.json"
check "docker-archive write: our reader gives back the same image" \
	test "$(json_get "$TMP/w1back.json" 'd["digest"]')" = "$(json_get "$TMP/r1.json" 'd["digest"]')"
check "docker-archive write: skopeo reads it, the same layers" test \
	"$(skopeo --insecure-policy inspect "docker-archive:$TMP/w1.tar" | json_get /dev/stdin '" ".join(l[7:] for l in d["Layers"])')" = "$D1 $D2 $D1"
"$ENCLAVER" copy -q "oci:$TMP/out:v1" "docker-archive:$TMP/w2.tar:example.com/app:v1" >/dev/null
check "docker-archive write: byte-identical when written twice" cmp "$TMP/w1.tar" "$TMP/w2.tar"
check "docker-archive write: entries dated 0 without SOURCE_DATE_EPOCH" \
	test "$(tar -tvf "$TMP/w1.tar" --full-time | awk '{print $4}' | sort -u)" = "1970-01-01"
SOURCE_DATE_EPOCH=1700000000 "$ENCLAVER" copy -q "oci:$TMP/out:v1" "docker-archive:$TMP/w3.tar" >/dev/null
check "docker-archive write: entries dated SOURCE_DATE_EPOCH" \
	test "$(TZ=UTC tar -tvf "$TMP/w3.tar" --full-time | awk '{print $4 " " $5}' | sort -u)" = "2023-11-14 22:13:20"
check "docker-archive write: no name, no RepoTags and no repositories" test \
	"$(tar -xOf "$TMP/w3.tar" manifest.json | json_get /dev/stdin 'd[0]["RepoTags"]'),$(tar -tf "$TMP/w3.tar" | grep -c '^repositories$')" = "[],0"
# A gzip layer is written uncompressed, checked against the config's diff_ids.
G=$TMP/gz
mkdir -p "$G/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$G/oci-layout"
python3 - "$G" "$A/img/bbb/layer.tar" <<'PY'
import gzip, hashlib, json, sys
root, layer = sys.argv[1], sys.argv[2]
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{root}/blobs/sha256/{d}", "wb").write(data)
    return "sha256:" + d, len(data)
raw = open(layer, "rb").read()
gz = gzip.compress(raw, mtime=0)
def image(name, diff_id):
    cfg = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode())
    lay = put(gz)
    m = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg[0], "size": cfg[1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": lay[0], "size": lay[1]}]}).encode())
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m[0], "size": m[1],
            "annotations": {"org.opencontainers.image.ref.name": name}}
good = image("good", "sha256:" + hashlib.sha256(raw).hexdigest())
bad = image("bad", "sha256:" + "0" * 64)
json.dump({"schemaVersion": 2, "manifests": [good, bad]}, open(f"{root}/index.json", "w"))
PY
"$ENCLAVER" copy -q "oci:$G:good" "docker-archive:$TMP/gz.tar:gz:v1" >/dev/null
check "docker-archive write: a gzip layer goes in uncompressed, named by its diff_id" \
	test "$(tar -xOf "$TMP/gz.tar" "$D2.tar" | sha256sum | cut -d' ' -f1)" = "$D2"
check_fails "docker-archive write: a layer that does not match its diff_id is refused" \
	"uncompresses to sha256:$D2, but the config's diff_ids say sha256:0000" \
	"$ENCLAVER" copy "oci:$G:bad" "docker-archive:$TMP/never.tar:gz:v1"
check "docker-archive write: nothing is left of the refused archive" \
	test -z "$(find "$TMP" -maxdepth 1 -name 'never.tar*')"
check_fails "docker-archive write: @N names no image to write" "name the image to write by NAME:TAG" \
	"$ENCLAVER" copy "oci:$TMP/out:v1" "docker-archive:$TMP/x.tar:@0"
check_fails "usage: copy needs two references" "expected SRC and DEST" "$ENCLAVER" copy "oci:$TMP/out:v1"
check_fails "usage: --tls-verify takes a boolean" "--tls-verify takes true or false" \
	"$ENCLAVER" pull --tls-verify=maybe x
check_fails "usage: bad --platform" "--platform: platform \"linux\": expected os/arch" \
	"$ENCLAVER" pull --platform linux "oci:$TMP/out:v1"

done_testing
