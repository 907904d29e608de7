#!/usr/bin/env bash
# aws-init.sh: AWS's own enclave init (aws-nitro-enclaves-cli 1.5.0's `init`, the one every nitro-cli
# EIF runs as PID 1) on the ramdisks `enclaver build` writes: a kernel bundle of the custom kernel
# (scripts/kernel-bundle-custom.sh: NSM, virtio-mmio with command-line devices and vsock built in),
# AWS's init and AWS's cmdline, and no nsm.ko (see below), booted in the emulator without ACPI
# through tests/helpers/launcher-probe.c. AWS's init sends the heartbeat, reads /cmd and /env,
# moves /rootfs to / and runs /cmd (odyn, which runs the app) with /env; its console is the debug
# console. Checks: the heartbeat (AWS's init), the app's output on the console and on odyn's log
# stream with the image's User, WorkingDir and Env applied, the app's exit code on the status
# stream and reaching AWS's init ("child exited with error"), PCR0/1/2/8 read inside through
# /dev/nsm against `enclaver describe-eif`, QEMU ending after AWS's init reboots, nothing left.
# Needs ENCLAVER, QEMU and the custom kernel cached (tests/cli/test_e2e_aws_init.sh checks both).
#
# nsm.ko: AWS's init skips /nsm.ko when it is absent (ENOENT) but exits, so the kernel panics, when
# the file is there and does not load. AWS's nsm.ko is built for AWS's 4.14 kernel and the custom
# kernel has no module support at all (NSM is built in), so the bundle has no nsm.ko: `enclaver
# build` refuses a bundle whose kernel has modules off and that carries one (checked here too).
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
CID=24
# This host's nested KVM cannot boot these kernels: TCG from the start instead of after a failed try.
export ENCLAVER_EMULATOR_ACCEL=tcg

KB=$TMP/kb
make_custom_kernel_bundle "$KB" --init "$AWS/init"
check "the bundle: AWS's init and AWS's cmdline, no nsm.ko" \
	bash -c "cmp '$AWS/init' '$KB/init' && cmp '$AWS/cmdline' '$KB/cmdline' && test ! -e '$KB/nsm.ko'"
check "the bundle's kernel has NSM built in, cgroups (AWS's init mounts them) and no modules" \
	bash -c "grep -qx CONFIG_NSM=y '$KB/bzImage.config' && grep -qx CONFIG_CGROUPS=y '$KB/bzImage.config' &&
		grep -qx '# CONFIG_MODULES is not set' '$KB/bzImage.config'"

cc -static -O2 -Wall -Wextra -Werror -o "$TMP/app-bin" "$ROOT/tests/e2e/app.c" 2>"$TMP/cc.log" ||
	not_ok "compile the test app" "$(cat "$TMP/cc.log")"
APP_CMD="[\"report\", \"$APP_PORT\", \"$APP_CODE\"]" make_app_image "$TMP/app" v1 "$TMP/app-bin"
cat >"$TMP/enclaver.yaml" <<EOF
version: v1
name: e2e-aws-init
target: e2e-aws-init:enclave
sources:
  app: oci:$TMP/app:v1
signature:
  certificate: $TESTDATA/eif/signing_cert.pem
  key: $TESTDATA/eif/signing_key.pem
EOF
export ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1700000000
check "enclaver build of the sample app with AWS's init (signed)" "$ENCLAVER" build --odyn "$ODYN" \
	--kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/app.eif"
"$ENCLAVER" describe-eif "$TMP/app.eif" >"$TMP/describe.json" 2>"$TMP/describe.err"

# AWS's nsm.ko in a bundle whose kernel cannot load modules would kill AWS's init at boot.
cp -r "$KB" "$TMP/kb-nsm" && cp "$AWS/nsm.ko" "$TMP/kb-nsm/nsm.ko"
check_fails "a bundle with nsm.ko and a kernel without modules is refused" \
	'nsm.ko: the kernel has no module support \(CONFIG_MODULES is not set in ' \
	"$ENCLAVER" build --odyn "$ODYN" --kernel-bundle "$TMP/kb-nsm" -f "$TMP/enclaver.yaml" --eif-only "$TMP/nsm.eif"

export XDG_RUNTIME_DIR=$TMP/run
mkdir -p "$XDG_RUNTIME_DIR"
timeout -k 30 -s INT "$RUN_TIMEOUT" "$PROBE" --eif "$TMP/app.eif" --qemu "$QEMU" --cid $CID --memory-mb 512 \
	--no-acpi --timeout "$BOOT_TIMEOUT" --console "$TMP/console.log" --stream "17000=$TMP/status" \
	--stream "17001=$TMP/log" --parent "$APP_PORT=$TMP/parent" >"$TMP/probe.out" 2>"$TMP/probe.err"
rc=$?
console_tail() { grep -v '^\[ *[0-9]' "$TMP/console.log" | tail -25; }
check "the launcher ran the enclave until it stopped (probe exit 0)" test $rc -eq 0
[ $rc -eq 0 ] || echo "# probe: $(cat "$TMP/probe.out" "$TMP/probe.err" | tail -20)" "console: $(console_tail)"
grep -q '^heartbeat [0-9.]*$' "$TMP/probe.out" && ok "heartbeat answered (AWS's init)" ||
	not_ok "heartbeat answered (AWS's init)" "$(console_tail)"
check "QEMU exited 0 after AWS's init rebooted the enclave" grep -qx 'qemu-exit 0' "$TMP/probe.out"

HELLO='app: hello from uid 1000 gid 1000 in /app, GREETING=hi'
# (the serial line discipline ends console lines with \r\n)
if tr -d '\r' <"$TMP/console.log" | grep -q "$HELLO\$"; then
	ok "the app's output reaches the console (User, WorkingDir and Env of the image applied)"
else
	not_ok "the app's output reaches the console (User, WorkingDir and Env of the image applied)" "$(console_tail)"
fi
check "... and odyn's log stream" grep -qx "$HELLO" "$TMP/log"
check "status stream: running, then the app's exit code" \
	diff <(printf '{"status":"running"}\n{"status":"exited","code":%d}\n' $APP_CODE) "$TMP/status"
check "the exit code reached AWS's init (its \"child exited with error\" on the console)" \
	grep -q 'child exited with error' "$TMP/console.log"
check "AWS's init loaded no module (no nsm.ko) and did not die" bash -c \
	"! grep -qE 'failed to insert nsm driver|failed to open nsm fd|Attempted to kill init' '$TMP/console.log'"
check "the enclave reached the parent's port" grep -qx 'report done' "$TMP/parent"
check "the app got the parent's answer" grep -qx 'app: the parent says: ok' "$TMP/log"
check_nsm_pcrs "$TMP/describe.json" "$TMP/log" 0 1 2 8

grep -q Sanitizer "$TMP/probe.err" && not_ok "no sanitizer report" "$(grep -A20 Sanitizer "$TMP/probe.err" | head -40)"
if pgrep -f "$TMP/app.eif" >/dev/null; then not_ok "no process left behind" "$(pgrep -af "$TMP/app.eif")"; else ok "no process left behind"; fi
check "the launcher removed its runtime folder" test -z "$(ls -A "$XDG_RUNTIME_DIR")"
echo "# figures: heartbeat after $(sed -n 's/^heartbeat //p' "$TMP/probe.out") s"
done_testing
