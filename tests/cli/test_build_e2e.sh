#!/usr/bin/env bash
# test_build_e2e: an EIF made by `enclaver build` boots in the emulator (QEMU's
# nitro-enclave machine, scripts/build-qemu.sh) and odyn runs the app image's
# Entrypoint + Cmd with its User, WorkingDir and Env. Without that QEMU it says so
# and counts nothing.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

if ! QEMU=$("$ROOT/scripts/build-qemu.sh" --check 2>/dev/null); then
	echo "build e2e tests NOT RUN: no qemu-system-x86_64 with the nitro-enclave machine (run scripts/build-qemu.sh)"
	done_testing
	exit 0
fi
export ENCLAVER_QEMU=$QEMU

KB=$TMP/kb
make_kernel_bundle "$KB"
check "a static app binary builds" cc -static -O2 -o "$TMP/hello" "$ROOT/tests/cli/helpers/hello_static.c"
make_app_image "$TMP/app" v1 "$TMP/hello"
export ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1700000000
printf 'version: v1\nname: hello\ntarget: hello:enclave\nsources:\n  app: oci:%s\n' "$TMP/app:v1" >"$TMP/enclaver.yaml"
# odyn must be static to run in the enclave: the release build's (the asan variant's is dynamic).
ODYN=$ROOT/build/release/bin/odyn
check "enclaver build --eif-only" "$ENCLAVER" build --odyn "$ODYN" --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/app.eif"
timeout 300 "$ENCLAVER" emulate --eif "$TMP/app.eif" --debug-mode --memory-mb 512 >"$TMP/console.log" 2>&1
rc=$?
check "the enclave ran and stopped (exit 0)" test "$rc" -eq 0
if grep -q "^hello, world from uid 1000 in /app, GREETING=hi" "$TMP/console.log"; then
	ok "odyn ran the app with Entrypoint + Cmd, User 1000, WorkingDir /app and the image's Env"
else
	not_ok "odyn ran the app with Entrypoint + Cmd, User 1000, WorkingDir /app and the image's Env" \
		"$(grep -v '^\[ *[0-9]' "$TMP/console.log" | tail -20)"
fi
done_testing
