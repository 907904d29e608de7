#!/usr/bin/env bash
# kernel-debian.sh: a bootable enclave kernel for the emulator and the end-to-end tests: Debian
# bookworm-backports' linux-image 6.12 (fetched with apt-get download, unpacked with dpkg-deb -x,
# never installed), cached under ${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/kernel-debian-<version>/.
#
#   scripts/kernel-debian.sh    prints the folder holding:
#     vmlinuz        the kernel
#     modules/*.ko   decompressed modules the enclave's init loads, in load order (modules.order):
#                    nsm, virtio_mmio, vsock and the virtio vsock transport, with their dependencies
#     config         the kernel's .config
#     version        the package version
# Debian's kernel has no VIRTIO_MMIO_CMDLINE_DEVICES: boot it with the machine's acpi=on.
set -euo pipefail

WANT_MODULES=(nsm virtio_mmio vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport)
say() { echo "kernel-debian.sh: $*" >&2; }

# The newest 6.12 image in bookworm-backports, as its metapackage names it, unless pinned.
if [ -z "${KERNEL_PACKAGE:-}" ]; then
	bpo=$(apt-cache madison linux-image-amd64 2>/dev/null | awk -F'|' '/bookworm-backports/ {gsub(/ /, "", $2); print $2; exit}')
	if [ -z "$bpo" ]; then
		say "bookworm-backports is not in the apt sources (run scripts/build-qemu.sh, which adds it, and apt-get update)"
		exit 1
	fi
	KERNEL_PACKAGE=$(apt-cache show "linux-image-amd64=$bpo" | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -n 1)
fi
version=$(apt-cache show "$KERNEL_PACKAGE" | sed -n 's/^Version: //p' | head -n 1)
[ -n "$version" ] || {
	say "package $KERNEL_PACKAGE not found"
	exit 1
}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/kernel-debian-$version
if [ -f "$CACHE/.complete" ]; then
	echo "$CACHE"
	exit 0
fi

mkdir -p "$(dirname "$CACHE")"
work=$(mktemp -d "$(dirname "$CACHE")/kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "fetching $KERNEL_PACKAGE $version"
(cd "$work" && apt-get download "$KERNEL_PACKAGE=$version" >&2)
dpkg-deb -x "$work"/*.deb "$work/root"
kver=$(ls "$work/root/lib/modules" | head -n 1)
moddir=$work/root/lib/modules/$kver
out=$work/out
mkdir -p "$out/modules"
cp "$work/root/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$work/root/boot/config-$kver" "$out/config"
echo "$version" >"$out/version"
# Dependency closure from each module's own "depends=" (.modinfo): the package ships no
# modules.dep (the install runs depmod), and we need no kmod on the host.
unpack_ko() { # unpack_ko PATH DEST
	case "$1" in
	*.ko.xz) xz -dc "$1" >"$2" ;;
	*.ko.zst) zstd -qdc "$1" >"$2" ;;
	*.ko) cp "$1" "$2" ;;
	*) say "unknown module compression: $1"; exit 1 ;;
	esac
}
declare -A seen=()
order=()
mkdir -p "$work/ko"
add() {
	local name=$1 path deps d
	[ -n "${seen[$name]:-}" ] && return 0
	seen[$name]=1
	path=$(find "$moddir" \( -name "$name.ko*" -o -name "${name//_/-}.ko*" \) | head -n 1)
	if [ -z "$path" ]; then
		if grep -qE "/${name//_/[-_]}\.ko$" "$moddir/modules.builtin"; then return 0; fi
		say "module $name is neither a module nor built into $kver"
		exit 1
	fi
	unpack_ko "$path" "$work/ko/$name.ko"
	deps=$(tr '\0' '\n' <"$work/ko/$name.ko" | sed -n 's/^depends=//p' | head -n 1)
	for d in ${deps//,/ }; do add "${d//-/_}"; done
	order+=("$name")
}
for m in "${WANT_MODULES[@]}"; do add "$m"; done
i=0
for name in "${order[@]}"; do
	mv "$work/ko/$name.ko" "$(printf '%s/modules/%02d-%s.ko' "$out" "$i" "$name")"
	i=$((i + 1))
done
touch "$out/.complete"
rm -rf "$CACHE"
mv "$out" "$CACHE"
say "kernel $kver with ${#order[@]} modules in $CACHE"
echo "$CACHE"
