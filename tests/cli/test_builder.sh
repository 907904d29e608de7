#!/usr/bin/env bash
# test_builder: the builder's pieces through the CLI: `manifest check` (file and
# stdin, bad input), the bootstrap ramdisk against linuxkit's golden, and the
# customer ramdisk from layers made by python's tarfile, read back by an
# independent newc reader and put in an EIF.
. "$(dirname "$0")/lib.sh"

NEWC="python3 $ROOT/tests/cli/helpers/newc.py"

# ---- manifest check
cat >"$TMP/enclaver.yaml" <<'YAML'
version: v1
name: demo
target: registry.example/demo:enclave
sources:
  app: demo:latest
  supervisor: odyn:old
ingress:
  - listen_port: 8443
egress:
  allow: ["**.amazonaws.com", "169.254.169.254"]
YAML
"$ENCLAVER" manifest check -f "$TMP/enclaver.yaml" >"$TMP/m.json" 2>"$TMP/m.err"
check "manifest check prints JSON" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["sources"]["odyn"]=="odyn:old" and d["egress"]["proxy_port"]==10000 and d["ingress"][0]["listen_port"]==8443' "$TMP/m.json"
check "old key name warns" grep -q "sources.supervisor is the old name of sources.odyn" "$TMP/m.err"
"$ENCLAVER" manifest check -f - <"$TMP/enclaver.yaml" >"$TMP/m2.json" 2>/dev/null
check "manifest from stdin reads the same" cmp "$TMP/m.json" "$TMP/m2.json"
printf 'version: v1\nname: x\ntarget: t\nsources:\n  app: a\napi:\n  listen_port: 17002\n' >"$TMP/bad.yaml"
check_fails "reserved port refused with file and field" "bad.yaml:7:16: api.listen_port: port 17002 is reserved" \
	"$ENCLAVER" manifest check -f "$TMP/bad.yaml"
printf 'version: v1\nname: x\ntarget: t\nsources:\n  app: a\n  colour: red\n' | {
	check_fails "unknown key refused with line and column" "<stdin>:6:3: sources: unknown key \"colour\"" \
		"$ENCLAVER" manifest check -f -
}
check_fails "missing manifest" "nope.yaml" "$ENCLAVER" manifest check -f "$TMP/nope.yaml"
# Enclaver's own manifests (testdata/upstream-manifests/SOURCES.md): all accepted but those with a
# spire section, refused with the reason.
for f in "$TESTDATA"/upstream-manifests/*.yaml; do
	case $f in
	*spire*) check_fails "upstream $(basename "$f") refused: spire" 'spire: SPIFFE workload identity via `spire` is not supported yet' \
		"$ENCLAVER" manifest check -f "$f" ;;
	*) check "upstream $(basename "$f") accepted" "$ENCLAVER" manifest check -f "$f" ;;
	esac
done

# ---- bootstrap ramdisk: the golden's synthetic inputs (shared/golden/README.md)
gen() { # gen FILE SEED SIZE: the golden vectors' xorshift32 stream
	python3 - "$@" <<'PY'
import sys
path, seed, n = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3])
x, out = seed, bytearray(n)
for i in range(n):
    x ^= (x << 13) & 0xffffffff; x ^= x >> 17; x ^= (x << 5) & 0xffffffff
    out[i] = x & 0xff
open(path, "wb").write(bytes(out))
PY
}
B=$TMP/bundle
mkdir -p "$B"
gen "$B/init" 0x1111 12345
gen "$B/nsm.ko" 0x2222 2001
gen "$B/bzImage" 0x12345678 300000
printf 'reboot=k panic=30 pci=off nomodules console=ttyS0\n' >"$B/cmdline"
check "bootstrap ramdisk from a bundle" "$ENCLAVER" ramdisk bootstrap --kernel-bundle "$B" -o "$TMP/boot.cpio"
check "bootstrap is byte-identical to linuxkit's" cmp "$TMP/boot.cpio" "$TESTDATA/cpio/bootstrap-synthetic.img"
mkdir -p "$TMP/noinit" && cp "$B/bzImage" "$B/cmdline" "$TMP/noinit/"
check_fails "bundle without init needs --init" "has no init: pass --init" \
	"$ENCLAVER" ramdisk bootstrap --kernel-bundle "$TMP/noinit" -o "$TMP/x.cpio"
check_fails "bundle without kernel" "has no kernel" \
	"$ENCLAVER" ramdisk bootstrap --kernel-bundle "$TMP" -o "$TMP/x.cpio"
check "no partial output" test ! -e "$TMP/x.cpio"

# ---- customer ramdisk from layers python's tarfile writes
python3 - "$TMP" <<'PY'
import io, sys, tarfile
d = sys.argv[1]
def layer(name, entries, mode="w"):
    with tarfile.open(f"{d}/{name}", mode, format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            ti = tarfile.TarInfo(e[1]); ti.mtime = 1700000000; ti.mode = e[3] if len(e) > 3 else 0o644
            data = b""
            if e[0] == "f": data = e[2].encode(); ti.size = len(data)
            elif e[0] == "d": ti.type = tarfile.DIRTYPE; ti.mode = e[3] if len(e) > 3 else 0o755
            elif e[0] == "l": ti.type = tarfile.SYMTYPE; ti.linkname = e[2]; ti.mode = 0o777
            elif e[0] == "h": ti.type = tarfile.LNKTYPE; ti.linkname = e[2]
            t.addfile(ti, io.BytesIO(data))
layer("l1.tar.gz", [("d", "usr/"), ("d", "usr/bin/"), ("f", "usr/bin/app", "#!/bin/sh\necho hello\n", 0o755),
                    ("l", "bin", "usr/bin"), ("f", "etc/motd", "old motd\n"), ("f", "etc/gone", "x"),
                    ("d", "cache/"), ("f", "cache/a", "a")], "w:gz")
layer("l2.tar", [("f", "etc/.wh.gone", ""), ("f", "etc/motd", "new motd\n"), ("f", "cache/.wh..wh..opq", ""),
                 ("f", "cache/b", "b"), ("h", "usr/bin/app-link", "usr/bin/app")])
layer("evil.tar", [("f", "../../evil", "x")])
# Issue 14: image symlinks that would redirect enclaver's own files (the manifest into the app's
# own file via /proc/self/root, or under /tmp, which tmpfs hides at boot; odyn under /run).
layer("redirect-proc.tar", [("l", "etc/enclaver", "/proc/self/root/app/conf"), ("f", "app/conf/enclaver.yaml", "egress: {allow: ['**']}\n")])
layer("redirect-tmp.tar", [("d", "etc/"), ("l", "etc/enclaver", "/tmp")])
layer("redirect-odyn.tar", [("l", "sbin", "/run/sbin")])
with tarfile.open(f"{d}/caps.tar", "w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("usr/bin/ping"); ti.size = 4; ti.mode = 0o755
    ti.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
    t.addfile(ti, io.BytesIO(b"ping"))
open(f"{d}/config.json", "w").write('{"config": {"Entrypoint": ["/usr/bin/app"], "Cmd": ["--flag"], '
    '"Env": ["PATH=/usr/bin:/bin", "GREETING=hi there"], "WorkingDir": "/srv", "User": "1000"}}')
PY
printf '#!/bin/sh\n# stand-in for odyn in this test: the ramdisk only carries it\n' >"$TMP/odyn"
customer() { # customer OUT TMPDIR
	mkdir -p "$2"
	"$ENCLAVER" ramdisk customer --layer "$TMP/l1.tar.gz" --layer "application/vnd.oci.image.layer.v1.tar=$TMP/l2.tar" \
		--image-config "$TMP/config.json" --odyn "$TMP/odyn" -f "$TMP/enclaver.yaml" --tmpdir "$2" -o "$1"
}
check "customer ramdisk" customer "$TMP/c1.cpio" "$TMP/t1"
echo '{"config": {"Env": ["A=1"]}}' >"$TMP/nocmd.json"
check_fails "customer ramdisk of an image with nothing to run: refused before the flatten, nothing written" \
	'image config: .*neither Entrypoint nor Cmd' \
	"$ENCLAVER" ramdisk customer --layer "$TMP/l1.tar.gz" --image-config "$TMP/nocmd.json" --odyn "$TMP/odyn" \
	-f "$TMP/enclaver.yaml" -o "$TMP/nocmd.cpio"
check "no partial ramdisk left" test ! -e "$TMP/nocmd.cpio"
SOURCE_DATE_EPOCH=1600000000 customer "$TMP/c2.cpio" "$TMP/t2" 2>/dev/null
SOURCE_DATE_EPOCH=1600000000 customer "$TMP/c3.cpio" "$TMP/t3" 2>/dev/null
check "customer ramdisk is reproducible (other tmpdir, same bytes)" cmp "$TMP/c2.cpio" "$TMP/c3.cpio"
$NEWC "$TMP/c2.cpio" >"$TMP/c2.list" 2>&1
check "independent reader accepts the framing" test -s "$TMP/c2.list"
names=$(awk -F'\t' '{print $1}' "$TMP/c2.list" | tr '\n' ' ')
check "entries and order" test "$names" = "cmd env rootfs rootfs/bin rootfs/cache rootfs/cache/b rootfs/dev rootfs/etc rootfs/etc/enclaver rootfs/etc/enclaver/enclaver.yaml rootfs/etc/motd rootfs/proc rootfs/run rootfs/sbin rootfs/sbin/odyn rootfs/sys rootfs/tmp rootfs/usr rootfs/usr/bin rootfs/usr/bin/app rootfs/usr/bin/app-link rootfs/var rootfs/etc/enclaver/.ramdisk-complete "
check "all mtimes clamped to SOURCE_DATE_EPOCH" test -z "$(awk -F'\t' '$6 != 1600000000' "$TMP/c2.list")"
check "symlink kept" grep -qP '^rootfs/bin\t120777\t0\t0\t1\t1600000000\t7\t[0-9]+\t0:0\tusr/bin$' "$TMP/c2.list"
app_ino=$(awk -F'\t' '$1=="rootfs/usr/bin/app" {print $8 " " $5}' "$TMP/c2.list")
link_ino=$(awk -F'\t' '$1=="rootfs/usr/bin/app-link" {print $8 " " $5}' "$TMP/c2.list")
check "hardlink is one inode with nlink 2" test "$app_ino" = "$link_ino" -a "${app_ino#* }" = 2
python3 - "$TMP/c2.cpio" "$TMP" >"$TMP/files.out" 2>&1 <<'PY'
import sys
data, d = open(sys.argv[1], "rb").read(), sys.argv[2]
def body(name):
    off = 0
    while True:
        f = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        n = data[off + 110: off + 110 + f[11] - 1].decode()
        off = (off + 110 + f[11] + 3) & ~3
        if n == name: return data[off: off + f[6]]
        off = (off + f[6] + 3) & ~3
assert body("cmd") == b"/sbin/odyn\n--config-dir\n/etc/enclaver\n--ramdisk-marker\n/etc/enclaver/.ramdisk-complete\n--workdir\n/srv\n--user\n1000\n--\n/usr/bin/app\n--flag\n", body("cmd")
assert body("env") == b"PATH=/usr/bin:/bin\nGREETING=hi there\n"
assert body("rootfs/etc/motd") == b"new motd\n"
assert body("rootfs/sbin/odyn") == open(f"{d}/odyn", "rb").read()
assert body("rootfs/etc/enclaver/enclaver.yaml") == open(f"{d}/enclaver.yaml", "rb").read()
print("contents ok")
PY
check "cmd, env, files and manifest contents" grep -q "contents ok" "$TMP/files.out"
check_fails "hostile layer refused, naming layer and entry" "layer 1 .*evil.tar.*: entry 0 \(\.\./\.\./evil\): .* leaves the root" \
	"$ENCLAVER" ramdisk customer --layer "$TMP/evil.tar" --image-config "$TMP/config.json" --odyn "$TMP/odyn" \
	-f "$TMP/enclaver.yaml" -o "$TMP/evil.cpio"
check "no partial ramdisk" test ! -e "$TMP/evil.cpio"
for r in proc tmp; do
	check_fails "image symlink at /etc/enclaver ($r) refused" "manifest: the image's /etc/enclaver is a symlink" \
		"$ENCLAVER" ramdisk customer --layer "$TMP/redirect-$r.tar" --image-config "$TMP/config.json" \
		--odyn "$TMP/odyn" -f "$TMP/enclaver.yaml" -o "$TMP/redirect.cpio"
done
check_fails "image symlink sending odyn under /run refused" "sbin/odyn: .*leads into /run" \
	"$ENCLAVER" ramdisk customer --layer "$TMP/redirect-odyn.tar" --image-config "$TMP/config.json" \
	--odyn "$TMP/odyn" -f "$TMP/enclaver.yaml" -o "$TMP/redirect.cpio"
check "no ramdisk from a redirecting image" test ! -e "$TMP/redirect.cpio"
# A layer whose sparse file claims more than the build folder's disk holds (1 GiB on a 32 MiB
# tmpfs, in a mount namespace of our own): refused from the claim, before a byte is written; the
# disk is not filled. Needs unshare; counted as not run without it.
mkdir -p "$TMP/sparse" && truncate -s 1G "$TMP/sparse/big" && echo hi >"$TMP/sparse/small"
tar --sparse -C "$TMP/sparse" -cf "$TMP/sparse.tar" small big
rm -f "$TMP/sparse/big"
if unshare -rm true 2>/dev/null; then
	mkdir -p "$TMP/small"
	unshare -rm sh -c 'mount -t tmpfs -o size=32m tmpfs "$1" && "$2" ramdisk customer --layer "$3" \
		--image-config "$4" --odyn "$5" -f "$6" --tmpdir "$1" -o "$1/out.cpio"; rc=$?;
		df -B1 --output=used "$1" | tail -1 >"$7"; exit $rc' sh "$TMP/small" "$ENCLAVER" "$TMP/sparse.tar" \
		"$TMP/config.json" "$TMP/odyn" "$TMP/enclaver.yaml" "$TMP/small.used" >"$TMP/.stdout" 2>"$TMP/.stderr"
	if [ $? -ne 0 ] && grep -q "entry .*big.*: a file of 1073741824 bytes (sparse) does not fit: the build folder's file system has [0-9]* bytes free" "$TMP/.stderr"; then
		ok "a sparse claim bigger than the disk is refused before it is written"
	else
		not_ok "a sparse claim bigger than the disk is refused before it is written" "$(head -c 1500 "$TMP/.stderr")"
	fi
	check "the disk was not filled (under 1 MiB used)" test "$(cat "$TMP/small.used")" -lt 1048576
else
	echo "# not run: a sparse claim bigger than the disk (unshare -rm is not permitted here)"
fi
check_fails "layer whose data is not its media type" "media type says zstd but the data is gzip" \
	"$ENCLAVER" ramdisk customer --layer "application/vnd.oci.image.layer.v1.tar+zstd=$TMP/l1.tar.gz" \
	--image-config "$TMP/config.json" --odyn "$TMP/odyn" -f "$TMP/enclaver.yaml" -o "$TMP/x2.cpio"

"$ENCLAVER" ramdisk customer --layer "$TMP/caps.tar" --image-config "$TMP/config.json" --odyn "$TMP/odyn" \
	-f "$TMP/enclaver.yaml" -o "$TMP/caps.cpio" 2>"$TMP/caps.err"
check "file capabilities cannot be carried: the build says so" \
	grep -q "cannot carry extended attributes: dropped them from 1 entries (first: usr/bin/ping (security.capability))" "$TMP/caps.err"

# ---- both ramdisks into an EIF; PCR2 must be the customer ramdisk's own PCR
check "EIF from kernel, bootstrap and customer ramdisks" "$ENCLAVER" eif build --kernel "$B/bzImage" \
	--cmdline "$(cat "$B/cmdline")" --ramdisk "$TMP/boot.cpio" --ramdisk "$TMP/c2.cpio" --output "$TMP/app.eif"
"$ENCLAVER" describe-eif "$TMP/app.eif" >"$TMP/app.json"
"$ENCLAVER" pcr --input "$TMP/c2.cpio" >"$TMP/pcr2.json"
check "PCR2 is the customer ramdisk's PCR" python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert a["Measurements"]["PCR2"]==b["PCR"]' "$TMP/app.json" "$TMP/pcr2.json"

done_testing
