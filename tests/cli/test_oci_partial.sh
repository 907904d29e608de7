#!/usr/bin/env bash
# test_oci_partial: a copy to oci:DIR that fails midway leaves the folder as it was (issue 14,
# item 9): a new folder is not there afterwards, an existing layout is byte for byte what it was
# (no new blobs, no index.json change, no oci-layout or blobs/ of its own). The copies fail on a
# source layout blob whose bytes changed (same size: found only by the digest check on the way).
. "$(dirname "$0")/lib.sh"

export ENCLAVER_CACHE_DIR=$TMP/cache
make_app_image() { python3 "$ROOT/testdata/example/make_app_image.py" "$@" >/dev/null; }
# snapshot DIR: every path with its type and mode, and every file's digest.
snapshot() { (cd "$1" && find . -printf '%y %m %p\n' | sort && find . -type f -exec sha256sum {} + | sort); }
# largest_blob LAYOUT: the biggest blob of a layout (a layer).
largest_blob() { ls -S "$1"/blobs/sha256/* | head -1; }

make_app_image "$TMP/a" v1
# Another image whose layers differ (a binary in it), and a copy of it with one changed byte.
head -c 300000 /dev/urandom >"$TMP/binary"
make_app_image "$TMP/b" v2 "$TMP/binary"
cp -r "$TMP/b" "$TMP/bad"
bad_blob=$(largest_blob "$TMP/bad")
python3 -c "
import sys; f = open(sys.argv[1], 'r+b'); f.seek(1000); b = f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 1]))" "$bad_blob"

# ---------------------------------------------------------------- into a new folder
check_fails "a copy from a layout with a changed blob fails" "sha256:$(basename "$bad_blob")" \
	"$ENCLAVER" copy "oci:$TMP/bad:v2" "oci:$TMP/new:v2"
check "the new folder is not there afterwards" test ! -e "$TMP/new"
mkdir -p "$TMP/deep"
check_fails "into a folder inside an existing one: fails too" "sha256:" \
	"$ENCLAVER" copy "oci:$TMP/bad:v2" "oci:$TMP/deep/new:v2"
check "... the existing folder is as it was (empty)" test -z "$(ls -A "$TMP/deep")"

# ---------------------------------------------------------------- into an existing layout
check "a sound copy makes a layout" "$ENCLAVER" copy "oci:$TMP/a:v1" "oci:$TMP/out:v1"
snapshot "$TMP/out" >"$TMP/before"
check_fails "a copy of the changed image into it fails" "sha256:$(basename "$bad_blob")" \
	"$ENCLAVER" copy "oci:$TMP/bad:v2" "oci:$TMP/out:v2"
snapshot "$TMP/out" >"$TMP/after"
check "the layout is byte for byte as before" diff "$TMP/before" "$TMP/after"
check "the layout still gives its image" "$ENCLAVER" copy "oci:$TMP/out:v1" "oci:$TMP/again:v1"
check "a sound copy of the other image into it works afterwards" "$ENCLAVER" copy "oci:$TMP/b:v2" "oci:$TMP/out:v2"
check "... and names both images" test "$(python3 -c "import json; print(len(json.load(open('$TMP/out/index.json'))['manifests']))")" = 2

# ---------------------------------------------------------------- an empty folder
mkdir "$TMP/empty"
check_fails "into an empty folder: fails" "sha256:" "$ENCLAVER" copy "oci:$TMP/bad:v2" "oci:$TMP/empty"
check "... which stays empty (no oci-layout, no blobs/)" test -z "$(ls -A "$TMP/empty")"
done_testing
