#!/usr/bin/env bash
# kernel-bundle-custom.sh: makes a kernel bundle with a small custom kernel built from Debian's
# linux-source-6.12: tinyconfig + scripts/kernel/enclave.config, everything built in, no modules.
#
# Usage: scripts/kernel-bundle-custom.sh [--init FILE] OUT_DIR
#        scripts/kernel-bundle-custom.sh --check   (prints the cached kernel's folder, or exit 1)
#
# The bundle (read by builder/bundle.c, see docs/builder.md): bzImage, bzImage.config, cmdline
# (AWS's), and init only with --init. The kernel boots under QEMU's nitro-enclave machine in about
# 4 s with no ACPI, PCI or modules (qemu-nitro.md). The source .deb (apt-get download, never
# installed) and the built kernel are cached under ${XDG_CACHE_HOME:-~/.cache}/enclaver/, keyed by
# the source version and the config fragment's hash, so a rebuild is a copy. The first build takes
# about 10 minutes on 2 cores (run it under nice on shared machines). Needs: apt-get, dpkg, xz,
# make, gcc, flex, bison, bc, libelf-dev, libssl-dev. ENCLAVER_LINUX_SOURCE_PKG names another
# linux-source package (default linux-source-6.12).
set -euo pipefail

init=
check=
while [ $# -gt 0 ]; do
	case $1 in
	--init) init=${2:?--init needs a file}; shift 2 ;;
	--check) check=1; shift ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "kernel-bundle-custom.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ -n "$check" ] || out=${1:?usage: kernel-bundle-custom.sh [--init FILE] OUT_DIR}
[ -z "$init" ] || [ -f "$init" ] || { echo "kernel-bundle-custom.sh: --init $init: no such file" >&2; exit 1; }
say() { echo "kernel-bundle-custom.sh: $*" >&2; }
here=$(cd "$(dirname "$0")" && pwd)
work=
stage=
cleanup() { rm -rf "${work:-}" "${stage:-}"; }
trap cleanup EXIT
fragment=$here/kernel/enclave.config

pkg=${ENCLAVER_LINUX_SOURCE_PKG:-linux-source-6.12}
version=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
	say "no $pkg in the apt sources (it is in bookworm-backports and bookworm's security updates): run apt-get update"
	exit 1
fi
key="$version-$(sha256sum "$fragment" | cut -c1-12)"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/custom-kernel
built=$cache/$key
if [ -n "$check" ]; then
	[ -f "$built/.complete" ] && echo "$built" && exit 0
	exit 1
fi
mkdir -p "$cache"

if [ ! -f "$built/.complete" ]; then
	deb=$(ls "$cache/${pkg}_"*.deb 2>/dev/null | grep -F "_${version//:/%3a}_" | head -n 1 || true)
	if [ -z "$deb" ]; then
		say "downloading $pkg $version"
		(cd "$cache" && apt-get download -q "$pkg=$version" 2>&1 | grep -v unsandboxed >&2) || true
		deb=$(ls "$cache/${pkg}_"*.deb 2>/dev/null | grep -F "_${version//:/%3a}_" | head -n 1 || true)
		[ -n "$deb" ] || { say "apt-get download $pkg=$version failed"; exit 1; }
	fi
	work=$(mktemp -d "$cache/build.XXXXXX")
	dpkg -x "$deb" "$work/deb"
	tarball=$(ls "$work"/deb/usr/src/linux-source-*.tar.xz | head -n 1)
	say "unpacking $(basename "$tarball")"
	tar -C "$work" -xJf "$tarball"
	src=$(ls -d "$work"/linux-source-*/ | head -n 1)
	say "configuring: tinyconfig + $(basename "$fragment")"
	make -C "$src" -s tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment" >"$work/merge.log" 2>&1
	make -C "$src" -s olddefconfig >/dev/null
	# What the enclave cannot boot without must have stuck; options newer kernels dropped
	# (RANDOM_TRUST_CPU is a boot parameter since 6.2) only warn. CGROUPS: AWS's init mounts a
	# tmpfs on /sys/fs/cgroup and reads /proc/cgroups, which exist only with it, and dies otherwise.
	for opt in BLK_DEV_INITRD SERIAL_8250_CONSOLE DEVTMPFS VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES VSOCKETS \
		VIRTIO_VSOCKETS NSM BINFMT_ELF UNIX CGROUPS UNIX98_PTYS TMPFS; do
		grep -qx "CONFIG_$opt=y" "$src/.config" || {
			say "CONFIG_$opt did not stick; merge_config said:"
			tail -n 20 "$work/merge.log" >&2
			exit 1
		}
	done
	grep -q '^CONFIG_MODULES=y' "$src/.config" && { say "CONFIG_MODULES is on"; exit 1; }
	while IFS= read -r line; do
		case $line in CONFIG_*=y) grep -qx "$line" "$src/.config" || say "note: $line is not in this kernel's config" ;; esac
	done <"$fragment"
	say "building bzImage ($(nproc) jobs)"
	make -C "$src" -s -j"$(nproc)" bzImage >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; exit 1; }
	rm -rf "$built.tmp"
	mkdir -p "$built.tmp"
	cp "$src/arch/x86/boot/bzImage" "$built.tmp/bzImage"
	cp "$src/.config" "$built.tmp/bzImage.config"
	touch "$built.tmp/.complete"
	rm -rf "$built"
	mv "$built.tmp" "$built"
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/kernel-bundle.XXXXXX")
chmod 0755 "$stage"
cp "$built/bzImage" "$built/bzImage.config" "$stage/"
printf '%s\n' "reboot=k panic=30 pci=off nomodules console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on" >"$stage/cmdline"
[ -z "$init" ] || install -m 0755 "$init" "$stage/init"
rm -rf "$out.tmp.$$"
cp -r "$stage" "$out.tmp.$$"
rm -rf "$out"
mv "$out.tmp.$$" "$out"
say "$out: $(sed -n 3p "$built/bzImage.config" | sed 's/^# //'), $(stat -c %s "$built/bzImage") bytes"
