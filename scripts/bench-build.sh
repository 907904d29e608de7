#!/usr/bin/env bash
# bench-build.sh: `enclaver build` of a cached one-layer app image (about 250 MB, then about
# 1 GB), next to the daemonless peer chain on the same image in the same run:
# `umoci unpack --rootless` + `find | cpio -o -H newc` + the EIF write and measure. Then a
# rebuild with nothing changed, and the same writing the release image to an OCI layout. Prints
# figures and ratios only; asserts nothing.
#
# Usage: scripts/bench-build.sh [ENCLAVER]   (default bin/enclaver; bin/odyn next to it)
# The kernel bundle: $ENCLAVER_KERNEL_BUNDLE, else the cache's (made by
# scripts/kernel-bundle-debian.sh on first use, as `make example` does).
set -euo pipefail
cd "$(dirname "$0")/.."
enclaver=$(realpath "${1:-bin/enclaver}")
odyn=$(dirname "$enclaver")/odyn
cache=${ENCLAVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/enclaver}
kernel=${ENCLAVER_KERNEL_BUNDLE:-$cache/kernel-bundle}
[ -e "$kernel/bzImage" ] || scripts/kernel-bundle-debian.sh "$kernel" >&2
export SOURCE_DATE_EPOCH=1704067200
w=$(mktemp -d "${TMPDIR:-/tmp}/bench-build.XXXXXX")
trap 'chmod -R u+w "$w" 2>/dev/null; rm -rf "$w"' EXIT

# run NAME CMD...: runs CMD under GNU time; prints wall, CPU, peak RSS and the bytes it wrote to
# disk (the kernel's count of dirtied blocks; 0 on tmpfs); leaves "wall" in $w/NAME.
run() {
	local name=$1
	shift
	/usr/bin/time -f '%e %U %S %M %O' -o "$w/$name.time" "$@" >/dev/null
	read -r wall user sys rss blocks <"$w/$name.time"
	printf '  %-40s wall %7.2fs  cpu %7.2fs  peak RSS %6.0f MiB  written %6.0f MiB\n' "$name" "$wall" \
		"$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc)" "$(echo "$blocks / 2048" | bc)"
	echo "$wall" >"$w/$name.wall"
}
wall() { cat "$w/$1.wall"; }
ratio() { printf '  %-40s %.2fx\n' "$1" "$(echo "scale=4; $(wall "$2") / $(wall "$3")" | bc)"; }

# chain SIZE: the peer chain on the image in $w/layout-SIZE.
chain() {
	local s=$1 b="$w/bundle-$s"
	umoci unpack --rootless --image "$w/layout-$s:b" "$b" >/dev/null
	(cd "$b/rootfs" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible) >"$w/chain-$s.cpio"
	"$enclaver" eif build --kernel "$kernel/bzImage" --cmdline "$(cat "$kernel/cmdline")" \
		--ramdisk "$w/bootstrap.cpio" --ramdisk "$w/chain-$s.cpio" --output "$w/chain-$s.eif" >/dev/null
	chmod -R u+w "$b"
	rm -rf "$b" "$w/chain-$s.cpio" "$w/chain-$s.eif"
}
export -f chain
export w enclaver kernel

"$enclaver" ramdisk bootstrap --kernel-bundle "$kernel" --init "$odyn" --output "$w/bootstrap.cpio" >/dev/null
for spec in "250MB usr/lib/gcc" "1GB usr/share usr/include"; do
	read -r size dirs <<<"$spec"
	# shellcheck disable=SC2086 # dirs is a word list on purpose
	tar -C / -cf - $dirs 2>/dev/null | gzip -1 >"$w/layer.tar.gz"
	python3 scripts/lib/layout-from-layer.py "$w/layer.tar.gz" "$w/layout-$size" b
	rm "$w/layer.tar.gz"
	printf 'version: v1\nname: bench\ntarget: bench:enclave\nsources:\n  app: oci:%s:b\n' \
		"$w/layout-$size" >"$w/enclaver-$size.yaml"
	echo "image $size: $(du -sh "$w/layout-$size" | cut -f1) gzip, from /$dirs"
	build=("$enclaver" -q build -f "$w/enclaver-$size.yaml" --offline --kernel-bundle "$kernel" --odyn "$odyn"
		--cache-dir "$w/cache" --tmpdir "$w" --eif-only "$w/ours-$size.eif")
	run "enclaver build ($size)" "${build[@]}"
	run "enclaver rebuild, unchanged ($size)" "${build[@]}"
	# The same rebuild with the release image (enclaver-run next to enclaver, the EIF) written to
	# an OCI layout instead: what the release step costs.
	release=("${build[@]:0:${#build[@]}-2}" --output "oci:$w/release-$size:b")
	run "rebuild, release image to oci: ($size)" "${release[@]}"
	rm -rf "$w/release-$size"
	run "umoci+cpio+eif chain ($size)" bash -c "chain $size"
	ratio "build / chain ($size)" "enclaver build ($size)" "umoci+cpio+eif chain ($size)"
	run "sha384sum of our EIF ($size)" sha384sum "$w/ours-$size.eif"
	ratio "rebuild / hashing floor ($size)" "enclaver rebuild, unchanged ($size)" "sha384sum of our EIF ($size)"
	rm -rf "$w/layout-$size" "$w/ours-$size.eif" "$w/cache"
done
echo "targets (issue 3): build <= 0.25x the chain; peak RSS < 128 MiB at 1 GB; rebuild < 2 s + hashing floor"
