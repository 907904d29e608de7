#!/usr/bin/env bash
# run.sh: the end-to-end test of the emulator: builds a test EIF (Debian's 6.12 kernel from
# scripts/kernel-debian.sh, a ramdisk with the static test init of init.c and the vsock/NSM
# modules) with `enclaver eif build`, boots it with `enclaver emulate`, and checks the heartbeat,
# the PCRs the emulated NSM reports against `enclaver describe-eif`, and vsock data both ways.
# Prints ok/not ok lines (tests/cli/lib.sh). Needs ENCLAVER and QEMU in the environment.
set -u
: "${QEMU:?QEMU must name a qemu-system-x86_64 with the nitro-enclave machine}"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
E2E=$ROOT/tests/e2e
# TCG is slow, and CI machines are shared: generous bounds, never timed assertions.
BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-400}
RUN_TIMEOUT=${E2E_RUN_TIMEOUT:-900}
ECHO_BYTES=$((4 << 20))
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

kernel=$("$ROOT/scripts/kernel-debian.sh" 2>"$TMP/kernel.log") || {
	not_ok "fetch the Debian kernel" "$(tail -5 "$TMP/kernel.log")"
	done_testing
	exit
}

# The ramdisk: /init, /modules, /dev. cpio from Debian's package; a test fixture only.
mkdir -p "$TMP/rd/dev" "$TMP/rd/modules"
cc -static -O2 -Wall -Wextra -Werror -o "$TMP/rd/init" "$E2E/init.c" 2>"$TMP/cc.log" ||
	not_ok "compile the test init" "$(cat "$TMP/cc.log")"
cp "$kernel"/modules/*.ko "$TMP/rd/modules/"
(cd "$TMP/rd" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet) >"$TMP/rd.cpio"
cmdline="console=ttyS0 reboot=k panic=30 pci=off random.trust_cpu=on"
# Signed, so that QEMU's PCR8 (from the signing certificate) checks ours too.
check "eif build of the test image" env SOURCE_DATE_EPOCH=0 "$ENCLAVER" eif build --kernel "$kernel/vmlinuz" \
	--cmdline "$cmdline" --ramdisk "$TMP/rd.cpio" --output "$TMP/test.eif" \
	--signing-certificate "$TESTDATA/eif/signing_cert.pem" --private-key "$TESTDATA/eif/signing_key.pem"
"$ENCLAVER" describe-eif "$TMP/test.eif" >"$TMP/describe.json" 2>"$TMP/describe.err"
pcr() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Measurements"]["PCR"+sys.argv[2]])' "$TMP/describe.json" "$1"; }

python3 "$E2E/vsock_peer.py" sink "$TMP/sink.sock" >"$TMP/sink.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$TMP/sink.sock" ] && break; sleep 0.1; done

start=$(date +%s.%N)
timeout -k 30 -s INT "$RUN_TIMEOUT" "$ENCLAVER" -v emulate --eif "$TMP/test.eif" --debug-mode --cid 21 \
	--heartbeat-timeout "$BOOT_TIMEOUT" --uds "$TMP/v.sock" --forward "5001=unix:$TMP/sink.sock" \
	--qemu "$QEMU" >"$TMP/console.log" 2>"$TMP/emulate.log" &
emu=$!
pids+=($emu)

# The host-to-guest test starts once the guest has answered the heartbeat.
for _ in $(seq $((BOOT_TIMEOUT * 10))); do
	grep -q 'E2E: heartbeat ok' "$TMP/console.log" 2>/dev/null && break
	kill -0 $emu 2>/dev/null || break
	sleep 0.1
done
hb_seen=$(date +%s.%N)
if grep -q 'E2E: heartbeat ok' "$TMP/console.log"; then
	ok "enclave heartbeat through the vsock backend"
	python3 "$E2E/vsock_peer.py" echo "$TMP/v.sock" 7000 $ECHO_BYTES >"$TMP/echo.out" 2>&1
	if grep -q '^echo: ok' "$TMP/echo.out"; then ok "host to enclave connection, $ECHO_BYTES bytes echoed intact"; else not_ok "host to enclave echo" "$(cat "$TMP/echo.out")"; fi
else
	not_ok "enclave heartbeat through the vsock backend" "$(tail -20 "$TMP/emulate.log")" "$(tail -20 "$TMP/console.log")"
fi

wait $emu
rc=$?
if [ $rc -eq 0 ]; then ok "emulate exits 0 when the enclave stops"; else not_ok "emulate exits 0 when the enclave stops (got $rc)" "$(tail -20 "$TMP/emulate.log")"; fi
grep -q 'E2E: done' "$TMP/console.log" && ok "test init ran to the end" || not_ok "test init ran to the end" "$(tail -20 "$TMP/console.log")"

for i in 0 1 2 8; do
	want=$(pcr $i)
	got=$(sed -n "s/^E2E: PCR$i \([0-9a-f]*\) .*/\1/p" "$TMP/console.log" | tr -d '\r')
	if [ -n "$want" ] && [ "$got" = "$want" ]; then
		ok "PCR$i from /dev/nsm equals describe-eif's"
	else
		not_ok "PCR$i from /dev/nsm equals describe-eif's" "nsm: $got" "describe-eif: $want"
	fi
done
if grep -q "sink sent $((8 << 20)) bytes .*host says: ok $((8 << 20))" "$TMP/console.log"; then
	ok "enclave to host connection, 8 MiB intact"
else
	not_ok "enclave to host connection, 8 MiB intact" "$(grep 'E2E: sink' "$TMP/console.log")" "$(cat "$TMP/sink.out")"
fi
# The accelerator (docs/emulator.md#accelerators): forced TCG never tries KVM; auto boots under
# KVM when /dev/kvm opens, and when that boot fails it says why, once, and boots under TCG.
ran=$(sed -n 's/.*heartbeat after [0-9.]* s (\([a-z]*\)).*/\1/p' "$TMP/emulate.log")
tried_kvm=$(grep -c 'started QEMU.*, kvm$' "$TMP/emulate.log")
fallbacks=$(grep -c 'booting again under TCG' "$TMP/emulate.log")
case ${ENCLAVER_EMULATOR_ACCEL:-auto} in
tcg)
	if [ "$ran" = tcg ] && [ "$tried_kvm" -eq 0 ]; then ok "accel tcg: booted under TCG, KVM never tried"; else not_ok "accel tcg: booted under TCG, KVM never tried" "ran: $ran, KVM attempts: $tried_kvm"; fi
	;;
*)
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then want_kvm=1; else want_kvm=0; fi
	if { [ "$ran" = kvm ] && [ "$fallbacks" -eq 0 ]; } ||
		{ [ "$ran" = tcg ] && [ "$tried_kvm" -eq "$want_kvm" ] && [ "$fallbacks" -eq "$want_kvm" ]; }; then
		ok "accel auto: booted under $ran (KVM attempts: $tried_kvm, fallbacks: $fallbacks)"
	else
		not_ok "accel auto: KVM when it boots, else TCG with one warning" "ran: $ran, KVM attempts: $tried_kvm, fallbacks: $fallbacks" "$(grep -i 'kvm' "$TMP/emulate.log" | head -5)"
	fi
	;;
esac
grep -q 'Sanitizer' "$TMP/emulate.log" && not_ok "no sanitizer report" "$(grep -A20 Sanitizer "$TMP/emulate.log" | head -40)"
if pgrep -f "$TMP/test.eif" >/dev/null; then not_ok "no process left behind" "$(pgrep -af "$TMP/test.eif")"; else ok "no process left behind"; fi

# Figures for docs/emulator.md (no assertions on them).
hb=$(sed -n 's/.*heartbeat after \([0-9.]*\) s.*/\1/p' "$TMP/emulate.log")
echo "# figures: heartbeat after ${hb:-?} s (${ran:-?}); $(cat "$TMP/sink.out" 2>/dev/null); $(cat "$TMP/echo.out" 2>/dev/null)"
done_testing
