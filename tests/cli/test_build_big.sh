#!/usr/bin/env bash
# test_build_big: a 2.2 GB app image builds (Enclaver's linuxkit step fails near 1 GB): the
# image holds one 2.2 GB file (sparse on disk, zeros in the layer, so the fixture is cheap) and
# a marker file after it; the EIF is valid, its customer ramdisk is over 2 GiB (offsets past
# 2^31), PCR2 is checked against a streamed SHA-384 computed here, and the marker file after the
# big one comes through whole.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

KB=$TMP/kb
make_kernel_bundle "$KB"
export ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1700000000 TMPDIR=$TMP/tmp
unset ENCLAVER_KERNEL_BUNDLE ENCLAVER_ODYN
mkdir -p "$TMPDIR" "$TMP/root/app"
BIG=$((2200 * 1000 * 1000))
truncate -s "$BIG" "$TMP/root/app/big.bin"
printf '#!/bin/sh\necho big\n' >"$TMP/root/app/run.sh"
printf 'after the big file\n' >"$TMP/root/app/zz-marker.txt"
chmod 0755 "$TMP/root/app/run.sh"
# No --sparse: the layer carries the zeros as a regular 2.2 GB entry, as a real image would.
tar -C "$TMP/root" --sort=name --mtime=@1700000000 --owner=0 --group=0 -cf - app | gzip -1 >"$TMP/layer.tar.gz"
rm -f "$TMP/root/app/big.bin"
python3 "$ROOT/scripts/lib/layout-from-layer.py" "$TMP/layer.tar.gz" "$TMP/app" v1
rm -f "$TMP/layer.tar.gz"
printf 'version: v1\nname: big\ntarget: big:enclave\nsources:\n  app: oci:%s:v1\n' "$TMP/app" >"$TMP/enclaver.yaml"

if "$ENCLAVER" build --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --no-ramdisk-cache --eif-only "$TMP/big.eif" \
	>"$TMP/big.json" 2>"$TMP/big.log"; then
	ok "a 2.2 GB image builds"
else
	not_ok "a 2.2 GB image builds" "$(tail -5 "$TMP/big.log")"
fi
check "describe-eif validates it (CRC over the whole file)" "$ENCLAVER" describe-eif "$TMP/big.eif"
"$ENCLAVER" describe-eif "$TMP/big.eif" >"$TMP/big.desc" 2>/dev/null || true

# The customer ramdisk, streamed: its size, PCR2 from it, and the marker's bytes.
python3 - "$TMP/big.eif" "$BIG" >"$TMP/check.out" <<'PY'
import hashlib, struct, sys
f = open(sys.argv[1], "rb")
head = f.read(28 + 256)
n = struct.unpack(">H", head[26:28])[0]
offs = struct.unpack(">32Q", head[28:28 + 256])[:n]
ram = []
for off in offs:
    f.seek(off)
    t, _flags, size = struct.unpack(">HHQ", f.read(12))
    if t == 3:
        ram.append((off + 12, size))
start, size = ram[1]
print("size", size)
f.seek(start)
h = hashlib.sha384()
left, pos, marker, big_size = size, 0, None, None
# Walk the newc entries while hashing: headers are read, file data is hashed in 1 MiB chunks.
def rd(k):
    global left
    b = f.read(k); left -= len(b); h.update(b); return b
while left > 0:
    hdr = rd(110)
    if hdr[:6] != b"070701":
        break
    fsize, nsize = int(hdr[54:62], 16), int(hdr[94:102], 16)
    name = rd(nsize)[:-1].decode()
    rd((4 - (110 + nsize) % 4) % 4)
    if name == "TRAILER!!!":
        break
    if name == "rootfs/app/big.bin":
        big_size = fsize
    data = b""
    k = fsize
    while k > 0:
        chunk = rd(min(k, 1 << 20)); k -= len(chunk)
        if name == "rootfs/app/zz-marker.txt":
            data += chunk
    if name == "rootfs/app/zz-marker.txt":
        marker = data
    rd((4 - fsize % 4) % 4)
while left > 0:
    rd(min(left, 1 << 20))
print("big", big_size)
print("marker", marker)
print("pcr2", hashlib.sha384(b"\0" * 48 + h.digest()).hexdigest())
PY
check "the customer ramdisk is over 2 GiB" test "$(awk '/^size/ {print ($2 > 2147483648)}' "$TMP/check.out")" = 1
check "the big file keeps its 2.2 GB size" grep -qx "big $BIG" "$TMP/check.out"
check "the file after it comes through whole" grep -qx "marker b'after the big file\\\\n'" "$TMP/check.out"
check "PCR2 equals a streamed SHA-384 of the customer ramdisk" test \
	"$(awk '/^pcr2/ {print $2}' "$TMP/check.out")" = "$(json_get "$TMP/big.json" "d['Measurements']['PCR2']")"
check "describe-eif agrees on PCR2" test \
	"$(json_get "$TMP/big.desc" "d['Measurements']['PCR2']")" = "$(json_get "$TMP/big.json" "d['Measurements']['PCR2']")"
check "the temporary folder is empty afterwards" test -z "$(ls -A "$TMPDIR")"
done_testing
