#!/usr/bin/env bash
# example.sh: the built-in example (`make example`): writes a tiny app image (the static
# testdata/example/hello.c) as an OCI layout (testdata/example/make_app_image.py, no
# Docker), runs `enclaver build` on
# testdata/example/enclaver.yaml into the release image build/example/release (an OCI
# layout) and prints what `enclaver build` prints: the sources and the measurements.
#
# The kernel: --kernel-bundle's defaults (ENCLAVER_KERNEL_BUNDLE, the AWS blobs, the
# cache's kernel-bundle); with none of them, scripts/kernel-bundle-debian.sh makes the
# cache's from Debian's kernel package first (one download, then cached).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/example
mkdir -p "$out"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}
cache=${ENCLAVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/enclaver}
if [ -z "${ENCLAVER_KERNEL_BUNDLE:-}" ] && [ ! -e /usr/share/nitro_enclaves/blobs/bzImage ] &&
	[ ! -e "$cache/kernel-bundle/bzImage" ]; then
	echo "== no kernel bundle yet: scripts/kernel-bundle-debian.sh $cache/kernel-bundle" >&2
	scripts/kernel-bundle-debian.sh "$cache/kernel-bundle" >&2
fi
rm -rf "$out/app" "$out/release"
# The app: testdata/example/hello.c as a static binary (the image needs no shell or libc).
cc -static -Os -o "$out/hello" testdata/example/hello.c
python3 testdata/example/make_app_image.py "$out/app" latest "$out/hello" >/dev/null
echo "== enclaver build -f testdata/example/enclaver.yaml --output oci:$out/release:enclave" >&2
bin/enclaver build -f testdata/example/enclaver.yaml --output "oci:$out/release:enclave"
