#!/usr/bin/env bash
# test_build_progress: what `enclaver build` says on stderr: by default one line per step when
# stderr is not a terminal (source, layers with sizes, ramdisks, EIF size, PCRs equal to the
# report's, the release image written); a status line redrawn with "\r" on a terminal (util-linux
# `script` gives the build a pty); nothing with -q / `enclaver -q`; stdout is the JSON alone.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

build_test_env
printf 'version: v1\nname: hello\ntarget: hello:enclave\nsources:\n  app: oci:%s/app:v1\n' "$TMP" >"$TMP/enclaver.yaml"
B=("$ENCLAVER" build --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --no-ramdisk-cache)
is_json() { python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1"; }

# ---------------------------------------------------------------- not a terminal
"${B[@]}" --output "oci:$TMP/rel:enclave" >"$TMP/out.json" 2>"$TMP/out.err"
check "the build exits 0" test -s "$TMP/out.json"
check "stdout is the JSON report alone" is_json "$TMP/out.json"
check "stderr: the source pulled" grep -q "pulling sources.app oci:$TMP/app:v1 (linux/amd64)" "$TMP/out.err"
check "stderr: the source's layers and size" grep -Eq "sources.app .*: image sha256:[0-9a-f]{12}, 2 layer\(s\), [0-9.]+ (B|KiB|MiB)" "$TMP/out.err"
check "stderr: one line per flattened layer, with its size" test "$(grep -Ec 'flattened layer [12]/2 sha256:[0-9a-f]{12} \([0-9.]+ (B|KiB|MiB)\)' "$TMP/out.err")" = 2
check "stderr: the customer ramdisk written" grep -Eq "customer ramdisk written: [0-9.]+ (KiB|MiB)" "$TMP/out.err"
check "stderr: the bootstrap ramdisk written" grep -Eq "bootstrap ramdisk written: [0-9.]+ (KiB|MiB)" "$TMP/out.err"
check "stderr: the EIF written with its size" grep -Eq "EIF written: [0-9.]+ MiB" "$TMP/out.err"
for p in PCR0 PCR1 PCR2; do
	check "stderr: $p, equal to the report's" grep -qx "enclaver: $p $(json_get "$TMP/out.json" "d['Measurements']['$p']")" "$TMP/out.err"
done
check "stderr: the release image written" grep -q "release image written to oci:$TMP/rel:enclave" "$TMP/out.err"
check "stderr: no terminal control characters" bash -c "! grep -q \$'\\r\\|\\033' '$TMP/out.err'"
check "stderr: every line is enclaver's" bash -c "! grep -v '^enclaver: ' '$TMP/out.err'"

"${B[@]}" --eif-only "$TMP/a.eif" >"$TMP/eif.json" 2>"$TMP/eif.err"
check "--eif-only: stdout is the JSON report alone" is_json "$TMP/eif.json"
check "--eif-only: the EIF line" grep -q "EIF written" "$TMP/eif.err"

# A rebuild with the ramdisk cache says so.
"$ENCLAVER" build --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/c1.eif" >/dev/null 2>&1
"$ENCLAVER" build --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/c2.eif" >/dev/null 2>"$TMP/cached.err"
check "a rebuild says the customer ramdisk is reused" grep -q "customer ramdisk unchanged: reusing" "$TMP/cached.err"

# ---------------------------------------------------------------- quiet
"${B[@]}" -q --output "oci:$TMP/rel-q:enclave" >"$TMP/q.json" 2>"$TMP/q.err"
check "-q: the build exits 0" is_json "$TMP/q.json"
check "-q: nothing on stderr" test ! -s "$TMP/q.err"
check "-q: the same report" cmp "$TMP/q.json" <(sed "s|rel:enclave|rel-q:enclave|" "$TMP/out.json")
"$ENCLAVER" -q build --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/q.eif" >"$TMP/gq.json" 2>"$TMP/gq.err"
check "enclaver -q build: nothing on stderr" test ! -s "$TMP/gq.err" -a -s "$TMP/gq.json"
(cd "$TMP" && "$(dirname "$ENCLAVER")/enclaver-build" --quiet --kernel-bundle "$KB" --eif-only "$TMP/alias.eif" >"$TMP/alias.json" 2>"$TMP/alias.err")
check "enclaver-build --quiet: nothing on stderr" test ! -s "$TMP/alias.err" -a -s "$TMP/alias.json"

# A failure: the error on stderr, nothing on stdout, even with -q.
check_fails "a failing build: the error, no report" 'sources.app.*nosuchtag' "$ENCLAVER" build -q --kernel-bundle "$KB" \
	-f <(printf 'version: v1\nname: x\ntarget: x:e\nsources:\n  app: oci:%s/app:nosuchtag\n' "$TMP") --eif-only "$TMP/x.eif"

# ---------------------------------------------------------------- a terminal
if command -v script >/dev/null && script -qec true /dev/null >/dev/null 2>&1; then
	# script runs the build on a pty: stderr is the terminal (recorded in tty.log), stdout a file.
	script -qec "$(printf '%q ' "${B[@]}") --output oci:$TMP/rel-tty:enclave >$TMP/tty.json" "$TMP/tty.log" >/dev/null 2>&1
	check "terminal: stdout is the JSON report alone" is_json "$TMP/tty.json"
	check "terminal: the same report" cmp "$TMP/tty.json" <(sed "s|rel:enclave|rel-tty:enclave|" "$TMP/out.json")
	check "terminal: a flatten status line, redrawn in place" grep -Eaq $'\r\033\\[Kflattening layer [12]/2: [0-9.]+ (B|KiB|MiB) of [0-9.]+ (B|KiB|MiB) \([0-9]+%\)' "$TMP/tty.log"
	check "terminal: status lines are cleared before the step lines" grep -aq $'\r\033\\[Kenclaver: EIF written' "$TMP/tty.log"
	check "terminal: the step lines too" grep -aq "release image written to oci:$TMP/rel-tty:enclave" "$TMP/tty.log"
	script -qec "$(printf '%q ' "${B[@]}") -q --eif-only $TMP/tty-q.eif >$TMP/tty-q.json" "$TMP/tty-q.log" >/dev/null 2>&1
	check "terminal, -q: no status line" bash -c "! grep -aq 'flattening\|enclaver:' '$TMP/tty-q.log'"
	check "terminal, -q: the report" is_json "$TMP/tty-q.json"
else
	ok "# SKIP util-linux script is not available: no terminal test"
fi

done_testing
