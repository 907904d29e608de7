#!/usr/bin/env bash
# build-skopeo.sh: prints the path of a skopeo whose sigstore verification works (policy.json
# "sigstoreSigned"), for tests/cli/test_sign_image.sh's acceptance checks.
#
# Debian bookworm's skopeo 1.9.3 (and podman) link a containers/image 5.23.1 built with the
# Debian patch disable-sigstore.patch, which makes every sigstoreSigned requirement fail with
# "Debian-local change: sigstore disabled". This builds the same skopeo 1.9.3 against the same
# containers/image with only that patch reverted, once, offline, from Debian's packages alone:
# the two source packages (bookworm deb-src), Debian's Go 1.19 and the golang-*-dev packages
# the build imports (sigstore/sigstore 1.4.0 and go-tuf from bookworm-backports), unpacked with
# dpkg -x into a GOPATH (nothing is installed but golang-go). Cached by version under
# ${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/skopeo-1.9.3-sigstore/ (see docs/security.md).
#
#   scripts/build-skopeo.sh            print the path (build when needed; needs root for apt)
#   scripts/build-skopeo.sh --check    print the path only if one is available now, else exit 1
#
# Build logs go to stderr; stdout carries only the path.
set -euo pipefail

SKOPEO_VERSION=1.9.3
SKOPEO_DEB_VERSION=1.9.3+ds1-1
IMAGE_DEB_VERSION=5.23.1-4 # golang-github-containers-image, the library every bookworm tool links
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/skopeo-$SKOPEO_VERSION-sigstore
OUT=$CACHE/bin/skopeo
DISABLED='Debian-local change: sigstore disabled'

# The Go packages skopeo 1.9.3 imports (go list -deps) beyond its own and containers/image's
# source, by the Debian package that holds them. A missing one makes the build stop naming it.
GO_DEBS=(
	golang-github-acarl005-stripansi-dev golang-github-burntsushi-toml-dev
	golang-github-cespare-xxhash-dev golang-github-containerd-stargz-snapshotter-dev
	golang-github-containers-common-dev golang-github-containers-ocicrypt-dev
	golang-github-containers-storage-dev golang-github-coreos-bbolt-dev
	golang-github-cyphar-filepath-securejoin-dev golang-github-docker-distribution-dev
	golang-github-docker-docker-credential-helpers-dev golang-github-docker-docker-dev
	golang-github-docker-go-connections-dev golang-github-docker-go-units-dev
	golang-github-docker-libtrust-dev golang-github-fullsailor-pkcs7-dev golang-github-ghodss-yaml-dev
	golang-github-gogo-protobuf-dev golang-github-google-go-intervals-dev golang-github-google-uuid-dev
	golang-github-gorilla-mux-dev golang-github-hashicorp-errwrap-dev
	golang-github-hashicorp-go-multierror-dev golang-github-json-iterator-go-dev
	golang-github-klauspost-compress-dev golang-github-klauspost-pgzip-dev
	golang-github-mattn-go-runewidth-dev golang-github-moby-sys-dev golang-github-modern-go-concurrent-dev
	golang-github-modern-go-reflect2-dev golang-github-opencontainers-go-digest-dev
	golang-github-opencontainers-image-spec-dev golang-github-opencontainers-runc-dev
	golang-github-opencontainers-selinux-dev golang-github-opencontainers-specs-dev
	golang-github-pkg-errors-dev golang-github-rivo-uniseg-dev golang-github-sirupsen-logrus-dev
	golang-github-spf13-cobra-dev golang-github-spf13-pflag-dev golang-github-sylabs-sif-dev
	golang-github-tchap-go-patricia-dev golang-github-ulikunitz-xz-dev golang-github-vbatts-tar-split-dev
	golang-github-vbauerster-mpb-dev golang-github-vividcortex-ewma-dev golang-go-zfs-dev
	golang-gocapability-dev golang-golang-x-crypto-dev golang-golang-x-net-dev golang-golang-x-sync-dev
	golang-golang-x-sys-dev golang-golang-x-term-dev golang-gopkg-square-go-jose.v2-dev
	golang-gopkg-yaml.v2-dev
	# what the reverted patch needs back: only in bookworm-backports
	golang-github-sigstore-sigstore-dev golang-github-theupdateframework-go-tuf-dev
	golang-github-google-go-containerregistry-dev
)
# Upstream's build tags for a skopeo without C libraries: OpenPGP in Go instead of gpgme, no
# btrfs/devicemapper storage drivers (skopeo only copies images here).
TAGS='containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper'

say() { echo "build-skopeo.sh: $*" >&2; }

# verifies BIN: skopeo 1.9 or later (sigstoreSigned exists since 1.9) without Debian's stub. The
# verdicts themselves are what tests/cli/test_sign_image.sh checks.
verifies() {
	[ -x "$1" ] || return 1
	"$1" --version 2>/dev/null | grep -qE 'version (1\.(9|[1-9][0-9])|[2-9])\.' || return 1
	! grep -qaF "$DISABLED" "$1"
}

# use_or_build, as_root (scripts/lib/cached_tool.sh).
. "$(dirname "$0")/lib/cached_tool.sh"
use_or_build skopeo "$OUT" verifies "${1:-}"

# enable_backports (scripts/lib/backports.sh): bookworm-backports (sigstore) and bookworm's source
# packages, from the machine's own mirror entry.
. "$(dirname "$0")/lib/backports.sh"

start=$(date +%s)
say "no skopeo with sigstore verification; building skopeo $SKOPEO_VERSION into $CACHE"
enable_backports --with-source=bookworm,bookworm-backports
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends golang-go dpkg-dev patch xz-utils >&2

mkdir -p "$CACHE/src" "$CACHE/debs"
cd "$CACHE/src"
for s in "skopeo=$SKOPEO_DEB_VERSION" "golang-github-containers-image=$IMAGE_DEB_VERSION"; do
	ls "${s%%=*}_${s#*=}.dsc" >/dev/null 2>&1 || apt-get source --download-only "$s" >&2 || {
		say "could not download the source package $s (is bookworm in a deb-src entry?)"
		exit 1
	}
done
cd "$CACHE/debs"
missing=()
for p in "${GO_DEBS[@]}"; do
	ls "${p}"_*.deb >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get download "${missing[@]}" >&2 || {
		say "could not download the Go packages: ${missing[*]}"
		exit 1
	}
fi

work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
dpkg-source -x --no-check "$CACHE/src/skopeo_$SKOPEO_DEB_VERSION.dsc" skopeo >&2
dpkg-source -x --no-check "$CACHE/src/golang-github-containers-image_$IMAGE_DEB_VERSION.dsc" image >&2
patchfile=image/debian/patches/disable-sigstore.patch
[ -f "$patchfile" ] || {
	say "golang-github-containers-image $IMAGE_DEB_VERSION has no debian/patches/disable-sigstore.patch"
	exit 1
}
patch -d image -R -p1 --quiet --no-backup-if-mismatch <"$patchfile" || {
	say "could not revert $patchfile in golang-github-containers-image $IMAGE_DEB_VERSION"
	exit 1
}
if grep -rqF "$DISABLED" image/signature; then
	say "containers/image still has '$DISABLED' after reverting the patch"
	exit 1
fi
for d in "$CACHE"/debs/*.deb; do
	dpkg -x "$d" debs
done
# GOPATH mode as dh-golang builds: skopeo and the patched containers/image first, then the
# unpacked Debian tree (/usr/share/gocode). Go's minimal module compatibility maps the
# .../image/v5 imports to .../image.
mkdir -p gopath/src/github.com/containers
mv skopeo image gopath/src/github.com/containers/
export GOPATH=$work/gopath:$work/debs/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS=
export GOCACHE=$work/gocache
cd gopath/src/github.com/containers/skopeo
lost=$(go list -e -deps -tags "$TAGS" -f '{{with .Error}}{{.Err}}{{end}}' ./cmd/skopeo 2>&1 |
	grep -o 'cannot find package "[^"]*"' | sort -u || true)
if [ -n "$lost" ]; then
	say "Go packages not in the Debian packages listed in GO_DEBS:"
	echo "$lost" >&2
	exit 1
fi
say "fetched and unpacked in $(($(date +%s) - start)) s; compiling"
nice -n 10 go build -p "$(nproc)" -trimpath -tags "$TAGS" -o "$work/skopeo.bin" ./cmd/skopeo >&2
verifies "$work/skopeo.bin" || {
	say "the built skopeo does not pass the check (version 1.9+, no '$DISABLED')"
	exit 1
}
# What it was built from, for the record.
{
	echo "skopeo $SKOPEO_DEB_VERSION (source), golang-github-containers-image $IMAGE_DEB_VERSION (source," \
		"disable-sigstore.patch reverted), $(go version)"
	for d in "$CACHE"/debs/*.deb; do dpkg-deb --showformat='${Package} ${Version}\n' -W "$d"; done
} >"$work/built-from.txt"
mkdir -p "$CACHE/bin"
mv "$work/built-from.txt" "$CACHE/built-from.txt"
cp "$work/skopeo.bin" "$CACHE/bin/.skopeo.tmp"
mv "$CACHE/bin/.skopeo.tmp" "$OUT"
say "built in $(($(date +%s) - start)) s"
echo "$OUT"
