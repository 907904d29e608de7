#!/usr/bin/env bash
# test_kernel_fetch: `enclaver kernel fetch` makes CACHE/kernel-bundle with the script built into
# the binary, offline from a .deb put in CACHE/debian-kernel/ (apt stubbed out as unreachable),
# says what to download and where when it has nothing, and `enclaver build` points to it.
. "$(dirname "$0")/lib.sh"

# apt as on a machine without network or package lists: apt-cache knows nothing, apt-get fails.
mkdir -p "$TMP/stubs"
printf '#!/bin/sh\nexit 0\n' >"$TMP/stubs/apt-cache"
printf '#!/bin/sh\necho "E: Failed to fetch: Temporary failure resolving deb.debian.org" >&2\nexit 100\n' >"$TMP/stubs/apt-get"
chmod +x "$TMP/stubs/"*
OFFLINE_PATH=$TMP/stubs:$PATH

check_fails "offline, nothing cached: says what to download and where" \
	"download the package linux-image-6\\.12\\..*into $TMP/c1/debian-kernel/ and run .enclaver kernel fetch. again" \
	env PATH="$OFFLINE_PATH" "$ENCLAVER" kernel fetch --cache-dir "$TMP/c1"
check "offline, nothing cached: the script's own reason is shown too" grep -q "no linux-image 6.12 in the apt sources" "$TMP/.stderr"
check "offline, nothing cached: no bundle left behind" test ! -e "$TMP/c1/kernel-bundle"
check_fails "kernel: a missing subcommand is a usage error" "Usage: enclaver kernel fetch" "$ENCLAVER" kernel
check_fails "kernel fetch: unknown option" "unknown option" "$ENCLAVER" kernel fetch --bogus

# enclaver build without any bundle names the command (the kernel bundle step comes first)
printf 'version: v1\nname: k\ntarget: "k:latest"\nsources:\n  app: "oci:%s/nowhere:x"\n' "$TMP" >"$TMP/k.yaml"
if [ ! -e /usr/share/nitro_enclaves/blobs/bzImage ]; then
	check_fails "build without a kernel bundle: says to run enclaver kernel fetch" \
		"no kernel bundle .*run .enclaver kernel fetch. once" \
		env -u ENCLAVER_KERNEL_BUNDLE "$ENCLAVER" build -f "$TMP/k.yaml" --cache-dir "$TMP/c1" --eif-only "$TMP/k.eif"
fi

# offline with the .deb in the cache (the one scripts/kernel-bundle-debian.sh downloaded here
# before, if any: this test downloads nothing)
deb=$(ls "${XDG_CACHE_HOME:-$HOME/.cache}"/enclaver/debian-kernel/linux-image-6.12.*.deb 2>/dev/null | sort -V | tail -n 1)
if [ -n "$deb" ]; then
	mkdir -p "$TMP/c2/debian-kernel"
	ln -s "$deb" "$TMP/c2/debian-kernel/$(basename "$deb")"
	env PATH="$OFFLINE_PATH" "$ENCLAVER" kernel fetch --cache-dir "$TMP/c2" >"$TMP/f.out" 2>"$TMP/f.err"
	check "offline with a cached .deb: the bundle is made" test $? -eq 0 -a -s "$TMP/c2/kernel-bundle/bzImage"
	check "it prints the bundle's folder" test "$(cat "$TMP/f.out")" = "$TMP/c2/kernel-bundle"
	check "the bundle has the modules in order" test "$(tr '\n' ' ' <"$TMP/c2/kernel-bundle/modules.order")" = \
		"nsm.ko virtio_mmio.ko vsock.ko vmw_vsock_virtio_transport_common.ko vmw_vsock_virtio_transport.ko "
	"$ENCLAVER" kernel fetch --cache-dir "$TMP/c2" >"$TMP/f2.out" 2>"$TMP/f2.err"
	check "a second fetch keeps the bundle" test $? -eq 0 -a "$(cat "$TMP/f2.out")" = "$TMP/c2/kernel-bundle"
	check "the bundle reads as one" "$ENCLAVER" ramdisk bootstrap --kernel-bundle "$TMP/c2/kernel-bundle" \
		--init "$TMP/k.yaml" -o "$TMP/boot.cpio"
else
	echo "# no cached linux-image-6.12 .deb on this machine: the offline build of a bundle is not tested"
fi

done_testing
