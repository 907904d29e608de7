#!/usr/bin/env bash
# guide-no-fly-list.sh: docs/guide-no-fly-list.md run as written: its files and commands are read
# from the page (tests/e2e/guide_extract.py), the page's fixed ports 8000 and 8001 swapped for free
# ones, and each step's result checked, with the outputs the page shows compared to the real ones:
# a Debian python3 image by mmdebstrap + umoci, `enclaver build`, `enclaver run --emulate` under TCG,
# curl from the host, egress allowed and refused, ps, stop (109, nothing left). Needs ENCLAVER, QEMU.
set -u
: "${QEMU:?QEMU must name a qemu-system-x86_64 with the nitro-enclave machine}"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
source "$ROOT/tests/cli/helpers/build_fixtures.sh"
GUIDE=$ROOT/docs/guide-no-fly-list.md
BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-400}
STEP_TIMEOUT=600
WORK=$TMP/work
STEPS=$TMP/steps
OUT=$TMP/out
# The page's `enclaver` is the binary under test; odyn is the release build's (static: it runs
# inside the enclave). A cache of the test's own, whose debian-kernel folder is the user's, so
# `enclaver kernel fetch` runs for real without downloading the kernel package every time.
mkdir -p "$TMP/bin" "$TMP/cache" "$TMP/run" "$TMP/state" "$OUT"
ln -s "$ENCLAVER" "$TMP/bin/enclaver"
export PATH=$TMP/bin:$PATH
export ENCLAVER_QEMU=$QEMU ENCLAVER_EMULATOR_ACCEL=tcg ENCLAVER_CACHE_DIR=$TMP/cache
export ENCLAVER_ODYN=$ROOT/build/release/bin/odyn
export XDG_RUNTIME_DIR=$TMP/run ENCLAVER_STATE_DIR=$TMP/state
unset SOURCE_DATE_EPOCH ENCLAVER_KERNEL_BUNDLE
deb_cache=${XDG_CACHE_HOME:-$HOME/.cache}/enclaver/debian-kernel
mkdir -p "$deb_cache" && ln -s "$deb_cache" "$TMP/cache/debian-kernel"

declare -A bg_pid=()
cleanup() {
	local p
	for p in "${bg_pid[@]}"; do kill -TERM "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

for tool in mmdebstrap umoci curl; do
	command -v $tool >/dev/null || not_ok "$tool is installed (scripts/install-deps.sh)"
done
LIST_PORT=$(free_port)
PORT=$(free_port)
while [ "$PORT" = "$LIST_PORT" ]; do PORT=$(free_port); done
if ! python3 "$ROOT/tests/e2e/guide_extract.py" "$GUIDE" "$WORK" "$STEPS" --subst "8000=$LIST_PORT" \
	--subst "-p 8001:8001=-p $PORT:8001" --subst "127.0.0.1:8001=127.0.0.1:$PORT" 2>"$TMP/extract.err"; then
	not_ok "the guide's blocks extract" "$(cat "$TMP/extract.err")"
	done_testing
	exit 1
fi
ok "the guide's files and $(wc -l <"$STEPS/ORDER") steps extract"

pcr() { json_get "$1" "d['Measurements']['PCR$2']"; }

# fg_step NAME: runs the step's commands in the work folder as a user would paste them (bash -e),
# bounded; its stdout, stderr and exit status are in $OUT/NAME.{out,err,rc}.
fg_step() {
	(cd "$WORK" && timeout "$STEP_TIMEOUT" bash -e "$STEPS/$1.sh") >"$OUT/$1.out" 2>"$OUT/$1.err"
	local rc=$?
	if [ $rc = 0 ]; then
		ok "guide step $1 succeeds"
	else
		not_ok "guide step $1 succeeds" "exit $rc" "$(tail -5 "$OUT/$1.err")"
	fi
}

# expect_out NAME: the step printed exactly what the page shows for it.
expect_out() {
	if cmp -s "$STEPS/$1.expect" "$OUT/$1.out"; then
		ok "step $1 prints what the guide shows"
	else
		not_ok "step $1 prints what the guide shows" "$(diff "$STEPS/$1.expect" "$OUT/$1.out")"
	fi
}

boot_started=
while read -r name mode; do
	if [ "$mode" = bg ]; then
		cmd=$(cat "$STEPS/$name.sh")
		(cd "$WORK" && eval "exec $cmd") >"$OUT/$name.out" 2>"$OUT/$name.err" &
		bg_pid[$name]=$!
	fi
	case $name in
	kernel)
		fg_step kernel
		check "kernel fetch makes the cache's kernel bundle" test -f "$TMP/cache/kernel-bundle/bzImage"
		;;
	image)
		start=$SECONDS
		fg_step image
		check "the rootfs has Debian's python3" grep -qx './usr/bin/python3' <(tar -tf "$WORK/rootfs.tar")
		check "the app image: two layers, the app's command" python3 -c '
import json, sys
b = sys.argv[1] + "/blobs/sha256/"
m = json.load(open(b + json.load(open(sys.argv[1] + "/index.json"))["manifests"][0]["digest"][7:]))
c = json.load(open(b + m["config"]["digest"][7:]))
assert len(m["layers"]) == 2 and c["config"]["Cmd"] == ["python3", "/app/app.py"], (m, c)' "$WORK/image"
		ok "app image made in $((SECONDS - start)) s ($(du -m "$WORK/rootfs.tar" | cut -f1) MB rootfs tarball)"
		;;
	build)
		fg_step build
		check "build prints the measurements" test -n "$(pcr "$WORK/build.json" 2)"
		if grep -qi 'memory' "$OUT/build.err"; then
			not_ok "the guide's memory_mb fits the build (no memory warning)" "$(grep -i memory "$OUT/build.err")"
		else
			ok "the guide's memory_mb fits the build ($(sed -n 's/.*customer ramdisk written: //p' "$OUT/build.err") customer ramdisk)"
		fi
		;;
	trust)
		fg_step trust
		check "trust names the build's PCR0" grep -q "$(pcr "$WORK/build.json" 0)" "$OUT/trust.out"
		;;
	rebuild)
		fg_step rebuild
		for i in 0 1 2; do
			check "a second build gives the same PCR$i" test "$(pcr "$WORK/again.json" $i)" = "$(pcr "$WORK/build.json" $i)"
		done
		;;
	list-server)
		check "the list server answers" wait_for curl -sf "http://127.0.0.1:$LIST_PORT/no-fly-list.txt"
		;;
	run)
		boot_started=$SECONDS
		first=$(head -n 1 "$STEPS/run.expect-log")
		for _ in $(seq $((BOOT_TIMEOUT * 10))); do
			grep -qxF "$first" "$OUT/run.out" 2>/dev/null && break
			kill -0 "${bg_pid[run]}" 2>/dev/null || break
			sleep 0.1
		done
		if grep -qxF "$first" "$OUT/run.out"; then
			ok "the enclave's app is up $((SECONDS - boot_started)) s after enclaver run"
		else
			not_ok "the enclave's app is up within ${BOOT_TIMEOUT} s" "$(tail -20 "$OUT/run.err")"
		fi
		;;
	ask)
		fg_step ask
		expect_out ask
		;;
	egress)
		fg_step egress
		expect_out egress
		check "the list server was asked through host:PORT" grep -q '"GET /no-fly-list.txt HTTP/1.1" 200' "$OUT/list-server.err"
		;;
	ps)
		fg_step ps
		check "ps lists the enclave by name, image and port" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
assert [x["EnclaveName"] for x in e] == ["no-fly-list"], e
assert e[0]["Image"] == "oci:release:enclave" and e[0]["Ports"] == ["127.0.0.1:%s:8001" % sys.argv[2]], e' \
			"$OUT/ps.out" "$PORT"
		;;
	stop)
		fg_step stop
		rc=timeout
		for _ in $(seq 300); do
			kill -0 "${bg_pid[run]}" 2>/dev/null || break
			sleep 0.1
		done
		if ! kill -0 "${bg_pid[run]}" 2>/dev/null; then
			wait "${bg_pid[run]}"
			rc=$?
			unset 'bg_pid[run]'
		fi
		check "enclaver run exits 109 after stop" test "$rc" = 109
		;;
	*)
		not_ok "the test knows the guide's step $name (add its checks here)"
		;;
	esac
done <"$STEPS/ORDER"

# Every line the page says the run prints, in the run's stdout.
while IFS= read -r line; do
	check "the run printed: $line" grep -qxF "$line" "$OUT/run.out"
done <"$STEPS/run.expect-log"
[ -z "$boot_started" ] && not_ok "the guide has a run step"
grep -q Sanitizer "$OUT"/*.err && not_ok "no sanitizer report" "$(grep -h -A20 Sanitizer "$OUT"/*.err | head -40)"
echo "# the guide's walk took $SECONDS s"
check "the launcher's runtime folder is empty again" test -z "$(ls -A "$XDG_RUNTIME_DIR")"
check "the state folder is empty again" test -z "$(ls "$ENCLAVER_STATE_DIR")"
done_testing
