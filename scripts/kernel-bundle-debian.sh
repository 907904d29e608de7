#!/usr/bin/env bash
# kernel-bundle-debian.sh: makes a kernel bundle folder from Debian bookworm-backports'
# linux-image 6.12 (kernel, cmdline, config, the enclave's modules decompressed, in load order).
#
# Usage: scripts/kernel-bundle-debian.sh [--init FILE] OUT_DIR
#
# The bundle (read by builder/bundle.c, documented in docs/builder.md):
#   bzImage          the kernel
#   bzImage.config   its .config (gives the EIF metadata's OS and KernelVersion)
#   cmdline          the kernel command line (AWS's, without "nomodules")
#   modules/*.ko     nsm, virtio_mmio, vsock and the virtio vsock transport, with their
#                    dependencies, decompressed (the kernel's finit_module would need
#                    its own xz support otherwise)
#   modules.order    their base names, one a line, dependencies first
#   init             only with --init: Debian has no enclave init, so the builder uses
#                    odyn's init unless the bundle carries one
# The .deb is downloaded with `apt-get download` (never installed) and cached under
# ${XDG_CACHE_HOME:-~/.cache}/enclaver/debian-kernel/. Takes bookworm-backports' kernel when
# the apt sources have it (add it to the Suites: line of the Debian entry), else the newest
# linux-image-6.12.*+deb12-amd64 bookworm itself has. Needs dpkg and xz.
# ENCLAVER_DEBIAN_KERNEL_PKG names another linux-image package; ENCLAVER_DEBIAN_KERNEL_CACHE another
# folder for the .deb (`enclaver kernel fetch` runs this script with CACHE/debian-kernel). When apt
# knows no 6.12 image (offline, no lists), the newest linux-image-6.12.*.deb already in that folder
# is used.
set -euo pipefail

init=
while [ $# -gt 0 ]; do
	case $1 in
	--init) init=${2:?--init needs a file}; shift 2 ;;
	-h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "kernel-bundle-debian.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
out=${1:?usage: kernel-bundle-debian.sh [--init FILE] OUT_DIR}
[ -z "$init" ] || [ -f "$init" ] || { echo "kernel-bundle-debian.sh: --init $init: no such file" >&2; exit 1; }
for tool in apt-get apt-cache dpkg xz; do
	command -v "$tool" >/dev/null || { echo "kernel-bundle-debian.sh: needs $tool" >&2; exit 1; }
done

cache=${ENCLAVER_DEBIAN_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/debian-kernel}
mkdir -p "$cache"

# The versioned image package the backports metapackage points at, e.g.
# linux-image-6.12.95+deb12-amd64.
pkg=${ENCLAVER_DEBIAN_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	meta_version=$(apt-cache madison linux-image-amd64 | awk -F'|' '$2 ~ /^ *6\.12\..*bpo12/ {gsub(/ /, "", $2); print $2; exit}')
	if [ -n "$meta_version" ]; then
		pkg=$(apt-cache depends "linux-image-amd64=$meta_version" | awk '/Depends: linux-image-6\.12/ {print $2; exit}')
	else
		# Without backports: bookworm's own 6.12 images (its security updates carry them).
		pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | awk '{print $1}' | sort -V | tail -n 1)
	fi
	if [ -z "$pkg" ]; then
		# Offline: a .deb someone put in the cache.
		local_deb=$(ls "$cache"/linux-image-6.12.*_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
		[ -z "$local_deb" ] || pkg=$(basename "$local_deb" | cut -d_ -f1)
	fi
	if [ -z "$pkg" ]; then
		echo "kernel-bundle-debian.sh: no linux-image 6.12 in the apt sources and no linux-image-6.12.*.deb in $cache: enable bookworm-backports and run apt-get update, or put the .deb there" >&2
		exit 1
	fi
fi

deb=$(ls "$cache/${pkg}_"*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
	echo "kernel-bundle-debian.sh: downloading $pkg" >&2
	(cd "$cache" && apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed' >&2) || true
	deb=$(ls "$cache/${pkg}_"*.deb 2>/dev/null | head -n 1 || true)
	[ -n "$deb" ] || { echo "kernel-bundle-debian.sh: apt-get download $pkg failed" >&2; exit 1; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kernel-bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg -x "$deb" "$work/root"
kver=$(ls "$work/root/lib/modules" | head -n 1)
[ -n "$kver" ] && [ -f "$work/root/boot/vmlinuz-$kver" ] || { echo "kernel-bundle-debian.sh: $deb has no kernel" >&2; exit 1; }
moddir=$work/root/lib/modules/$kver

stage=$work/bundle
mkdir -p "$stage/modules"
cp "$work/root/boot/vmlinuz-$kver" "$stage/bzImage"
cp "$work/root/boot/config-$kver" "$stage/bzImage.config"
printf '%s\n' "reboot=k panic=30 pci=off console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on" >"$stage/cmdline"
[ -z "$init" ] || install -m 0755 "$init" "$stage/init"

# Depth-first over each module's "depends=" (from its .modinfo section), so
# every module comes after what it needs.
declare -A done_mods=()
order=()
module_file() {
	local name=$1 alt=${1//_/-}
	find "$moddir" \( -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" -o -name "$alt.ko" -o -name "$alt.ko.xz" -o -name "$alt.ko.zst" \) -print -quit
}
decompress() {
	case $1 in
	*.xz) xz -dc "$1" ;;
	*.zst) zstd -dc "$1" ;;
	*) cat "$1" ;;
	esac
}
add_module() {
	local name=$1
	[ -z "${done_mods[$name]:-}" ] || return 0
	done_mods[$name]=1
	local f
	f=$(module_file "$name")
	if [ -z "$f" ]; then
		if grep -q "/$name.ko" "$moddir/modules.builtin" 2>/dev/null || grep -q "/${name//_/-}.ko" "$moddir/modules.builtin" 2>/dev/null; then
			return 0 # built into the kernel
		fi
		echo "kernel-bundle-debian.sh: module $name not found in $pkg" >&2
		exit 1
	fi
	decompress "$f" >"$stage/modules/$name.ko"
	local deps dep
	deps=$(tr '\0' '\n' <"$stage/modules/$name.ko" | sed -n 's/^depends=//p' | head -n 1)
	for dep in ${deps//,/ }; do
		add_module "$dep"
	done
	order+=("$name.ko")
}
for m in nsm virtio_mmio vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport; do
	add_module "$m"
done
printf '%s\n' "${order[@]}" >"$stage/modules.order"

# Appear complete or not at all.
rm -rf "$out.tmp.$$"
mv "$stage" "$out.tmp.$$"
rm -rf "$out"
mv "$out.tmp.$$" "$out"
echo "kernel-bundle-debian.sh: $out: Linux $kver, modules: ${order[*]}" >&2
