#!/usr/bin/env bash
# odyn-aws-cmdline.sh: odyn as the enclave's init (PID 1) under AWS's exact kernel command line, on
# the custom kernel (scripts/kernel-bundle-custom.sh without --init: the builder puts odyn at /init;
# NSM, virtio-mmio command-line devices and vsock built in, no ACPI, no modules), booted in the
# emulator without ACPI through tests/helpers/launcher-probe.c. Two Nitro-host defects stay fixed:
# AWS's cmdline has `nomodules`, which no kernel knows, so the kernel hands it to /init as argv[1]
# and odyn must still be init (it used to run "nomodules" as the app and the kernel panicked); and
# a kernel without a power-off handler (ACPI off) must still end the enclave when the app is done
# (odyn reboots, as AWS's init does: powering off halted such a kernel and QEMU never exited).
# Checks: the bundle's cmdline is AWS's, the heartbeat, the app's output and exit code on odyn's
# streams, PCR0/1/2 through /dev/nsm equal describe-eif's, QEMU exits 0 on its own, nothing left.
# Needs ENCLAVER, QEMU and the custom kernel cached (tests/cli/test_e2e_odyn_aws_cmdline.sh checks).
set -u
: "${QEMU:?QEMU must name a qemu-system-x86_64 with the nitro-enclave machine}"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
source "$ROOT/tests/cli/helpers/build_fixtures.sh"
BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-400}
RUN_TIMEOUT=${E2E_RUN_TIMEOUT:-900}
PROBE=$(dirname "$ENCLAVER")/../helpers/launcher-probe
ODYN=$ROOT/build/release/bin/odyn # static: it runs inside the enclave
AWS=$TESTDATA/nitro-cli-1.5.0/x86_64
APP_PORT=5005
APP_CODE=42
CID=25
# This host's nested KVM cannot boot these kernels: TCG from the start instead of after a failed try.
export ENCLAVER_EMULATOR_ACCEL=tcg

KB=$TMP/kb
make_custom_kernel_bundle "$KB"
check "the bundle: AWS's cmdline (with nomodules), no init of its own, no nsm.ko" \
	bash -c "cmp '$AWS/cmdline' '$KB/cmdline' && grep -qw nomodules '$KB/cmdline' && test ! -e '$KB/init' && test ! -e '$KB/nsm.ko'"
check "the bundle's kernel has no ACPI (so no power-off handler)" \
	bash -c "! grep -qx CONFIG_ACPI=y '$KB/bzImage.config'"

cc -static -O2 -Wall -Wextra -Werror -o "$TMP/app-bin" "$ROOT/tests/e2e/app.c" 2>"$TMP/cc.log" ||
	not_ok "compile the test app" "$(cat "$TMP/cc.log")"
APP_CMD="[\"report\", \"$APP_PORT\", \"$APP_CODE\"]" make_app_image "$TMP/app" v1 "$TMP/app-bin"
cat >"$TMP/enclaver.yaml" <<YAML
version: v1
name: e2e-odyn-aws-cmdline
target: e2e-odyn-aws-cmdline:enclave
sources:
  app: oci:$TMP/app:v1
YAML
export ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1700000000
check "enclaver build of the sample app with odyn as init" "$ENCLAVER" build --odyn "$ODYN" \
	--kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/app.eif"
"$ENCLAVER" describe-eif "$TMP/app.eif" >"$TMP/describe.json" 2>"$TMP/describe.err"

export XDG_RUNTIME_DIR=$TMP/run
mkdir -p "$XDG_RUNTIME_DIR"
timeout -k 30 -s INT "$RUN_TIMEOUT" "$PROBE" --eif "$TMP/app.eif" --qemu "$QEMU" --cid $CID --memory-mb 512 \
	--no-acpi --timeout "$BOOT_TIMEOUT" --console "$TMP/console.log" --stream "17000=$TMP/status" \
	--stream "17001=$TMP/log" --parent "$APP_PORT=$TMP/parent" >"$TMP/probe.out" 2>"$TMP/probe.err"
rc=$?
console_tail() { tr -d '\r' <"$TMP/console.log" | tail -25; }
check "the launcher ran the enclave until it stopped (probe exit 0)" test $rc -eq 0
[ $rc -eq 0 ] || echo "# probe: $(cat "$TMP/probe.out" "$TMP/probe.err" | tail -20)" "console: $(console_tail)"
grep -q '^heartbeat [0-9.]*$' "$TMP/probe.out" && ok "heartbeat answered (odyn as PID 1 despite argv[1] nomodules)" ||
	not_ok "heartbeat answered (odyn as PID 1 despite argv[1] nomodules)" "$(console_tail)"
check "the kernel never panicked (PID 1 did not exit)" bash -c "! grep -q 'Attempted to kill init' '$TMP/console.log'"
check "QEMU exited 0 on its own after odyn rebooted the enclave (no power-off handler needed)" \
	grep -qx 'qemu-exit 0' "$TMP/probe.out"
check "the app's output reaches odyn's log stream" grep -qx 'app: hello from uid 1000 gid 1000 in /app, GREETING=hi' "$TMP/log"
check "status stream: running, then the app's exit code" \
	diff <(printf '{"status":"running"}\n{"status":"exited","code":%d}\n' $APP_CODE) "$TMP/status"
check "the enclave reached the parent's port" grep -qx 'report done' "$TMP/parent"
check_nsm_pcrs "$TMP/describe.json" "$TMP/log" 0 1 2
grep -q Sanitizer "$TMP/probe.err" && not_ok "no sanitizer report" "$(grep -A20 Sanitizer "$TMP/probe.err" | head -40)"
if pgrep -f "$TMP/app.eif" >/dev/null; then not_ok "no process left behind" "$(pgrep -af "$TMP/app.eif")"; else ok "no process left behind"; fi
check "the launcher removed its runtime folder" test -z "$(ls -A "$XDG_RUNTIME_DIR")"
echo "# figures: heartbeat after $(sed -n 's/^heartbeat //p' "$TMP/probe.out") s"
done_testing
