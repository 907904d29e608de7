#!/usr/bin/env bash
# build-qemu.sh: prints the path of a qemu-system-x86_64 that has the nitro-enclave machine.
# Uses the system QEMU when it has the machine; otherwise builds QEMU 10.0.2 with libcbor from
# Debian's bookworm-backports source tarball once, cached by version under
# ${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/qemu-10.0.2/ (see docs/emulator.md).
#
#   scripts/build-qemu.sh            print the path (build when needed; needs root to install deps)
#   scripts/build-qemu.sh --check    print the path only if one is available now, else exit 1
#
# Build logs go to stderr; stdout carries only the path.
set -euo pipefail

QEMU_VERSION=10.0.2
QEMU_DEB_VERSION='1:10.0.2+ds-2+deb13u1~bpo12+1'
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/qemu-$QEMU_VERSION
OUT=$CACHE/bin/qemu-system-x86_64

say() { echo "build-qemu.sh: $*" >&2; }

has_machine() {
	[ -x "$1" ] && "$1" -machine help 2>/dev/null | grep -q '^nitro-enclave '
}

# use_or_build, as_root (scripts/lib/cached_tool.sh).
. "$(dirname "$0")/lib/cached_tool.sh"
use_or_build qemu-system-x86_64 "$OUT" has_machine "${1:-}"

# enable_backports (scripts/lib/backports.sh): bookworm-backports from the machine's own mirror.
. "$(dirname "$0")/lib/backports.sh"

build_deps=(ninja-build python3-tomli python3-venv libcbor-dev libgnutls28-dev libglib2.0-dev
	libpixman-1-dev libfdt-dev pkg-config flex bison xz-utils gcc make)
bpo_deps=(meson python3-pycotap)
# Firmware: QEMU's option ROMs and qboot (bios-microvm.bin) from Debian's packages.
run_deps=(qemu-system-data seabios)

start=$(date +%s)
say "no qemu-system-x86_64 with the nitro-enclave machine; building QEMU $QEMU_VERSION into $CACHE"
enable_backports --with-source
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends "${build_deps[@]}" "${run_deps[@]}" >&2
as_root apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bpo_deps[@]}" >&2

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$CACHE/src"
cd "$CACHE/src"
# Only the orig tarball is needed: no dpkg-source, no Debian patches (none touch this machine).
# Some mirrors serve the tarball but not the .dsc/.debian.tar: apt-get then fails after fetching
# what we need, so judge by the tarball's presence.
[ -n "$(ls qemu_*.orig.tar.* 2>/dev/null)" ] ||
	apt-get source --download-only "qemu=$QEMU_DEB_VERSION" >&2 || true
tarball=$(ls qemu_*.orig.tar.* 2>/dev/null | head -n 1)
[ -n "$tarball" ] || {
	say "could not download the QEMU $QEMU_DEB_VERSION source tarball"
	exit 1
}
cd "$work"
tar xf "$CACHE/src/$tarball"
src=$(find . -maxdepth 1 -type d -name 'qemu-*' | head -n 1)
cd "$src"
# The +ds tarball has no firmware blobs; meson would otherwise try to unpack edk2's (it sets
# unpack_edk2_blobs = bzip2.found() inside a loop over targets).
sed -i 's/^\( *\)unpack_edk2_blobs = bzip2.found()/\1unpack_edk2_blobs = false/' meson.build
if grep -q 'unpack_edk2_blobs = bzip2' meson.build; then
	say "meson.build: could not turn off unpack_edk2_blobs (QEMU source layout changed?)"
	exit 1
fi
# Only what the nitro-enclave machine needs: TCG (and KVM where available), vhost-user for the
# vsock backend, libcbor + gnutls for the NSM device, fdt; and only the devices that machine
# selects (microvm, virtio-mmio, vhost-user-vsock, virtio-nsm, serial), not every x86 board's.
echo "CONFIG_NITRO_ENCLAVE=y" >configs/devices/x86_64-softmmu/nitro.mak
mkdir build && cd build
nice -n 10 ../configure --python=/usr/bin/python3 --target-list=x86_64-softmmu \
	--without-default-features --without-default-devices --with-devices-x86_64=nitro \
	--enable-libcbor --enable-gnutls --enable-fdt=system \
	--enable-vhost-user --enable-tcg --enable-kvm --disable-docs --disable-werror \
	--disable-install-blobs >&2
nice -n 10 ninja -j"$(nproc)" qemu-system-x86_64 >&2
mkdir -p "$CACHE/bin"
cp qemu-system-x86_64 "$CACHE/bin/.qemu-system-x86_64.tmp"
mv "$CACHE/bin/.qemu-system-x86_64.tmp" "$OUT"
has_machine "$OUT" || {
	say "built $OUT but it lacks the nitro-enclave machine"
	exit 1
}
say "built in $(($(date +%s) - start)) s"
echo "$OUT"
