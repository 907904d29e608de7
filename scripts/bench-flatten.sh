#!/usr/bin/env bash
# bench-flatten.sh: flatten + customer ramdisk of one big gzip layer, next to the
# daemonless peer `umoci unpack --rootless` of the same layer; prints figures only.
#
# Usage: scripts/bench-flatten.sh [ENCLAVER] [DIRS...]
#   ENCLAVER  the binary (default bin/enclaver); DIRS: what the layer holds
#   (default usr/share usr/include of this machine, about 1 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
enclaver=$(realpath "${1:-bin/enclaver}")
shift || true
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(usr/share usr/include)
w=$(mktemp -d "${TMPDIR:-/tmp}/bench-flatten.XXXXXX")
trap 'rm -rf "$w"' EXIT

tar -C / -cf - "${dirs[@]}" 2>/dev/null | gzip -1 >"$w/layer.tar.gz"
printf '{"config":{"Cmd":["/bin/sh"]}}' >"$w/config.json"
printf 'stand-in' >"$w/odyn"
printf 'version: v1\nname: bench\ntarget: bench:enclave\nsources:\n  app: bench\n' >"$w/enclaver.yaml"
mkdir -p "$w/store"

figures() { # figures NAME TIMEFILE
	awk -v n="$1" -F': ' '/Elapsed/ {wall=$2} /User time/ {u=$2} /System time/ {s=$2}
		/Maximum resident/ {rss=$2} END {printf "%-28s wall %s  cpu %.1fs  peak RSS %.0f MiB\n", n, wall, u+s, rss/1024}' "$2"
}

echo "layer: $(du -h "$w/layer.tar.gz" | cut -f1) gzip, $(zcat "$w/layer.tar.gz" | wc -c | numfmt --to=iec) tar, $(tar -tzf "$w/layer.tar.gz" | wc -l) entries"
/usr/bin/time -v "$enclaver" ramdisk customer --layer "$w/layer.tar.gz" --image-config "$w/config.json" \
	--odyn "$w/odyn" -f "$w/enclaver.yaml" --tmpdir "$w/store" -o "$w/customer.cpio" 2>"$w/ours.time"
figures "enclaver ramdisk customer" "$w/ours.time"

if command -v umoci >/dev/null; then
	python3 - "$w" <<'PY'
import gzip, hashlib, json, os, shutil, sys
w = sys.argv[1]; lay = f"{w}/layout"; os.makedirs(f"{lay}/blobs/sha256")
def sha(path, opener=open):
    h = hashlib.sha256()
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""): h.update(chunk)
    return h.hexdigest()
def blob(b):
    d = hashlib.sha256(b).hexdigest(); open(f"{lay}/blobs/sha256/{d}", "wb").write(b); return d, len(b)
dig, diff = sha(f"{w}/layer.tar.gz"), sha(f"{w}/layer.tar.gz", gzip.open)
shutil.copy(f"{w}/layer.tar.gz", f"{lay}/blobs/sha256/{dig}")
cd, cs = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}}).encode())
md, ms = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + dig,
                "size": os.path.getsize(f"{w}/layer.tar.gz")}]}).encode())
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "b"}}]},
    open(f"{lay}/index.json", "w"))
open(f"{lay}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
	/usr/bin/time -v umoci unpack --rootless --image "$w/layout:b" "$w/bundle" >/dev/null 2>"$w/umoci.time"
	figures "umoci unpack --rootless" "$w/umoci.time"
	echo "(the peer chain would still need find | cpio -o -H newc on top of umoci's unpack)"
fi
