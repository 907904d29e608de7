#!/usr/bin/env bash
# test_cache_verify: what a build reads from the cache is checked (issue 14, item 6): a cached
# manifest or config edited in place (same size) is quarantined and pulled again, a cached
# layer that changed is refused by name, a cached customer ramdisk that changed is noticed by
# its PCR2 and made again, so the EIF's PCR2 stays what the image gives; `enclaver cache
# verify` re-hashes the whole cache, moves aside what fails and exits 1, then 0.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

build_test_env
printf 'version: v1\nname: hello\ntarget: hello:enclave\nsources:\n  app: oci:%s:v1\n' "$TMP/app" >"$TMP/enclaver.yaml"
C=$ENCLAVER_CACHE_DIR
pcr2() { json_get "$1" "d['Measurements']['PCR2']"; }
# flip FILE OFFSET: changes one byte in place (same size), as a disk or a hand would.
flip() { python3 -c "
import sys; f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 1]))" "$1" "$2"; }
# edit FILE OLD NEW: replaces bytes of the same length in place.
edit() { python3 -c "
import sys; p = sys.argv[1]; d = open(p, 'rb').read(); assert len(sys.argv[2]) == len(sys.argv[3]) and sys.argv[2].encode() in d
open(p, 'wb').write(d.replace(sys.argv[2].encode(), sys.argv[3].encode(), 1))" "$1" "$2" "$3"; }
read -r MANIFEST CONFIG LAYER < <(python3 - "$TMP/app" <<'PY'
import json, sys
root = sys.argv[1]
m = json.load(open(root + "/index.json"))["manifests"][0]["digest"]
man = json.load(open(root + "/blobs/sha256/" + m[7:]))
print(m[7:], man["config"]["digest"][7:], man["layers"][-1]["digest"][7:])
PY
)

"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/a.eif" >"$TMP/a.json" 2>"$TMP/a.log"
P=$(pcr2 "$TMP/a.json")
check "the first build gives a PCR2" test -n "$P"
check "cache verify: a sound cache passes (exit 0)" "$ENCLAVER" cache verify
"$ENCLAVER" cache verify >"$TMP/v0.out" 2>&1
check "cache verify counts blobs and the customer ramdisk" grep -q "blob(s), 0 corrupt; 1 customer ramdisk(s), 0 corrupt" "$TMP/v0.out"

# ---------------------------------------------------------------- config edited in place
grep -q 'GREETING=hi' "$C/blobs/sha256/$CONFIG" || not_ok "the sample image's config holds GREETING=hi"
edit "$C/blobs/sha256/$CONFIG" GREETING=hi GREETING=ho
"${B[@]}" -f "$TMP/enclaver.yaml" --no-ramdisk-cache --eif-only "$TMP/b.eif" >"$TMP/b.json" 2>"$TMP/b.log"
check "a config changed in the cache: the build names it" grep -q "cached blob sha256:$CONFIG is corrupt" "$TMP/b.log"
check "... quarantines it and pulls it again" test -f "$C/quarantine/sha256-$CONFIG"
check "... and PCR2 is the image's, not the edit's" test "$(pcr2 "$TMP/b.json")" = "$P"
check "... the cache holds the real config again" test "$(sha256sum <"$C/blobs/sha256/$CONFIG" | cut -d' ' -f1)" = "$CONFIG"

# ---------------------------------------------------------------- manifest edited in place
flip "$C/blobs/sha256/$MANIFEST" 20
"${B[@]}" -f "$TMP/enclaver.yaml" --no-ramdisk-cache --eif-only "$TMP/m.eif" >"$TMP/m.json" 2>"$TMP/m.log"
check "a manifest changed in the cache: named, pulled again, same PCR2" \
	bash -c "grep -q 'cached blob sha256:$MANIFEST is corrupt' '$TMP/m.log' && test '$(pcr2 "$TMP/m.json" 2>/dev/null)' = '$P'"

# ---------------------------------------------------------------- cached customer ramdisk
rd=$(ls "$C"/ramdisks/*.cpio)
size=$(stat -c %s "$rd")
flip "$rd" $((size / 2))
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/c.eif" >"$TMP/c.json" 2>"$TMP/c.log"
check "a customer ramdisk changed in the cache: the build notices it" grep -q "cached customer ramdisk .* flattening the image again" "$TMP/c.log"
check "... and PCR2 is the image's" test "$(pcr2 "$TMP/c.json")" = "$P"
check "... describe-eif agrees" test "$("$ENCLAVER" describe-eif "$TMP/c.eif" | json_get /dev/stdin "d['Measurements']['PCR2']")" = "$P"
check "... the cache holds a sound ramdisk again" test "$(ls "$C"/ramdisks/*.cpio | wc -l)" = 1
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/d.eif" >"$TMP/d.json" 2>"$TMP/d.log"
check "... which the next build reuses" grep -q "customer ramdisk unchanged: reusing" "$TMP/d.log"
check "... with the same PCR2" test "$(pcr2 "$TMP/d.json")" = "$P"

# ---------------------------------------------------------------- a layer
flip "$C/blobs/sha256/$LAYER" 100
check_fails "a layer changed in the cache is refused by name" "cached blob sha256:$LAYER is corrupt" \
	"${B[@]}" -f "$TMP/enclaver.yaml" --no-ramdisk-cache --eif-only "$TMP/e.eif"
check "... and quarantined" test -f "$C/quarantine/sha256-$LAYER"
"${B[@]}" -f "$TMP/enclaver.yaml" --no-ramdisk-cache --eif-only "$TMP/e.eif" >"$TMP/e.json" 2>"$TMP/e.log"
check "the next build pulls it again: same PCR2" test "$(pcr2 "$TMP/e.json")" = "$P"

# ---------------------------------------------------------------- cache verify
flip "$C/blobs/sha256/$CONFIG" 10
rd=$(ls "$C"/ramdisks/*.cpio)
flip "$rd" 200
printf 'x' >"$C/blobs/sha256/.partial-abc"
if "$ENCLAVER" cache verify >"$TMP/v1.out" 2>"$TMP/v1.err"; then rc=0; else rc=$?; fi
check "cache verify: corruption found exits 1" test "$rc" = 1
check "... names the blob" grep -q "cached blob sha256:$CONFIG is corrupt" "$TMP/v1.err"
check "... names the ramdisk" grep -q "cached ramdisk $rd is corrupt" "$TMP/v1.err"
check "... counts both" grep -q "1 corrupt; 1 customer ramdisk(s), 1 corrupt" "$TMP/v1.out"
check "... the blob is in quarantine, the ramdisk removed" \
	bash -c "test -f '$C/quarantine/sha256-$CONFIG' && test ! -e '$C/blobs/sha256/$CONFIG' && test ! -e '$rd'"
check "... the temporary of a pull is left alone" test -f "$C/blobs/sha256/.partial-abc"
check "cache verify again: exit 0" "$ENCLAVER" cache verify
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/f.eif" >"$TMP/f.json" 2>"$TMP/f.log"
check "a build after it: same PCR2" test "$(pcr2 "$TMP/f.json")" = "$P"
check_fails "cache verify takes no argument" "unexpected argument" "$ENCLAVER" cache verify extra
check "no temporary files left" test -z "$(ls -A "$TMPDIR")"
done_testing
