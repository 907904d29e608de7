#!/usr/bin/env bash
# test_kernel_bundle: scripts/kernel-bundle-debian.sh makes a bundle from
# Debian's 6.12 kernel (downloaded once into the cache), the builder reads it,
# writes its bootstrap ramdisk with the modules, and an EIF carries the kernel.
. "$(dirname "$0")/lib.sh"

NEWC="python3 $ROOT/tests/cli/helpers/newc.py"
KB=$TMP/kb
"$ROOT/scripts/kernel-bundle-debian.sh" "$KB" >"$TMP/script.out" 2>&1
check "kernel-bundle-debian.sh makes a bundle" test -s "$KB/bzImage" -a -s "$KB/cmdline" -a -s "$KB/bzImage.config"
check "modules in dependency order" test "$(tr '\n' ' ' <"$KB/modules.order")" = \
	"nsm.ko virtio_mmio.ko vsock.ko vmw_vsock_virtio_transport_common.ko vmw_vsock_virtio_transport.ko "
for m in $(cat "$KB/modules.order"); do
	check "module $m is a decompressed ELF object" test "$(head -c 4 "$KB/modules/$m" | od -An -c | tr -d ' ')" = '177ELF'
done
check "cmdline keeps modules loadable" sh -c "! grep -q nomodules '$KB/cmdline'"

printf 'stand-in init\n' >"$TMP/init"
"$ENCLAVER" -v ramdisk bootstrap --kernel-bundle "$KB" --init "$TMP/init" -o "$TMP/boot.cpio" 2>"$TMP/boot.err"
check "bootstrap ramdisk written" test -s "$TMP/boot.cpio"
check "bundle read: Linux 6.12, 5 modules" grep -Eq "Linux 6\.12\.[0-9]+, x86_64 kernel, 5 module" "$TMP/boot.err"
$NEWC "$TMP/boot.cpio" >"$TMP/boot.list"
check "bootstrap entries" test "$(awk -F'\t' '{print $1}' "$TMP/boot.list" | tr '\n' ' ')" = \
	"dev init modules modules/nsm.ko modules/virtio_mmio.ko modules/vsock.ko modules/vmw_vsock_virtio_transport_common.ko modules/vmw_vsock_virtio_transport.ko odyn-modules "
check_fails "the Debian bundle has no init of its own" "has no init" \
	"$ENCLAVER" ramdisk bootstrap --kernel-bundle "$KB" -o "$TMP/x.cpio"

printf 'customer\n' >"$TMP/customer.bin"
check "EIF with the Debian kernel" "$ENCLAVER" eif build --kernel "$KB/bzImage" --cmdline "$(cat "$KB/cmdline")" \
	--kernel-config "$KB/bzImage.config" --ramdisk "$TMP/boot.cpio" --ramdisk "$TMP/customer.bin" --output "$TMP/k.eif"
"$ENCLAVER" describe-eif "$TMP/k.eif" >"$TMP/k.json"
check "metadata names the kernel" python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["Metadata"]; assert m["OperatingSystem"]=="Linux" and m["KernelVersion"].startswith("6.12."), m' "$TMP/k.json"

done_testing
