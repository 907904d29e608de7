#!/usr/bin/env bash
# install-deps.sh: installs every build and test dependency from Debian's
# packages. Run as root on Debian bookworm; safe to run again (apt skips what
# is installed, and the package lists are refreshed only when stale).
set -euo pipefail

packages=(
	# build
	build-essential pkg-config clang libclang-rt-14-dev
	libssl-dev libjansson-dev zlib1g-dev libarchive-dev libzstd-dev libcurl4-openssl-dev libyaml-dev
	# ISA-L: gzip layers inflated (and EIF CRC32s) several times faster than zlib
	libisal-dev
	# tests and tools the tests drive
	openssl xxd python3 valgrind ca-certificates
	# OCI tests: a real registry, peers to cross-check (skopeo also fetches the cosign-format
	# signatures of test_sign_image), htpasswd for basic auth
	docker-registry skopeo umoci apache2-utils curl
	# make bench
	bc time
	# emulator end-to-end tests (QEMU's own build deps are installed by scripts/build-qemu.sh)
	cpio xz-utils
	# scripts/kernel-bundle-custom.sh (building a kernel; with build-essential, bc, libssl-dev and
	# xz-utils above; linux-source-6.12 itself is fetched by the script with apt-get download)
	flex bison libelf-dev
	# odyn tests: a peer to compare the ingress relay with
	socat
	# docs/guide-no-fly-list.md and its test: a Debian python3 root file system without Docker
	# (umoci, above, packs it into an OCI layout)
	mmdebstrap
	# EIF signing with a PKCS#11 key: OpenSSL 3's pkcs11 provider (bookworm-backports), a software
	# token to generate the test key in, and pkcs11-tool to do it
	pkcs11-provider softhsm2 opensc
	# tests/cli/test_container.sh: the release image under a container engine (runc: crun refuses
	# the cgroup hybrid mode here; catatonit: `podman kube play`'s pause container), the
	# deployment files checked with real tools
	podman runc catatonit systemd python3-yaml
	# --metrics tests: promtool checks the /metrics page (Debian's prometheus package carries it)
	prometheus
)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root (apt-get install)" >&2
	exit 1
fi
as_root() { "$@"; }
say() { echo "install-deps.sh: $*" >&2; }
. "$(dirname "$0")/lib/backports.sh"

# kernel-bundle-custom.sh downloads linux-source-6.12 (bookworm-security, bookworm-backports):
# refresh the lists when apt does not know it yet.
kernel_source_known() {
	apt-cache policy linux-source-6.12 2>/dev/null | grep -q '^ *Candidate: [0-9]'
}
kernel_source_known || apt-get update -qq || true
# pkcs11-provider is only in bookworm-backports: enable it on the machine's own mirror entry.
bpo_known() {
	apt-cache policy pkcs11-provider 2>/dev/null | grep -q '^ *Candidate: [0-9]'
}
if ! bpo_known; then
	enable_backports
	apt-get update -qq
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps.sh: all ${#packages[@]} packages present"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the lists when they are older than a day (or absent).
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
	apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
