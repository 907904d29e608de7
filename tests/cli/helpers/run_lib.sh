# run_lib.sh: what the tests of a run's output and lifecycle share (sourced after lib.sh, and
# build_fixtures.sh for build_app):
# test_run_logs.sh with the test launcher, and the emulator's e2e scripts run-emulate.sh and
# run-lifecycle.sh.

# wait_line FILE REGEX PID: until FILE has a line matching REGEX (0), PID ends or $BOOT_TIMEOUT
# seconds pass (default 60) (1).
wait_line() {
	for _ in $(seq $((${BOOT_TIMEOUT:-60} * 10))); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# end_timed PID CMD...: runs CMD (what ends the run: a signal to it, the enclave killed), waits for
# the run PID, and sets END_RC to its exit status and END_S to the seconds that took (0.1 s).
end_timed() {
	local pid=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	"$@"
	wait "$pid"
	END_RC=$?
	t1=$(date +%s.%N)
	END_S=$(python3 -c "print('%.1f' % ($t1 - $t0))")
}

# json_lines FILE...: every line is one JSON object with --log-format json's fields in their
# order (time RFC 3339 UTC with milliseconds, source, level, message; stream optional).
json_lines() {
	python3 - "$@" <<'PY'
import json, re, sys
for path in sys.argv[1:]:
    for n, raw in enumerate(open(path, "rb").read().split(b"\n")[:-1], 1):
        d = json.loads(raw)  # raises on anything else
        assert list(d) in (["time", "source", "level", "message"],
                           ["time", "source", "stream", "level", "message"]), (path, n, d)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["time"]), (path, n, d)
        assert d["source"] in ("app", "odyn", "host", "console"), (path, n, d)
        assert d["level"] in ("error", "warn", "info", "debug"), (path, n, d)
        assert isinstance(d["message"], str), (path, n, d)
PY
}

# build_app NAME CMD_JSON EXTRA_YAML: an EIF $TMP/NAME.eif of the e2e sample app ($TMP/app-bin)
# with that Cmd, and its manifest $TMP/NAME.yaml with that tail (built with $KB and $ODYN; a check).
build_app() {
	APP_CMD="$2" make_app_image "$TMP/img-$1" v1 "$TMP/app-bin"
	printf 'version: v1\nname: %s\ntarget: %s:enclave\nsources:\n  app: oci:%s\n%s' "$1" "$1" "$TMP/img-$1:v1" "$3" \
		>"$TMP/$1.yaml"
	check "enclaver build of the $1 app" "$ENCLAVER" build --odyn "$ODYN" --kernel-bundle "$KB" \
		-f "$TMP/$1.yaml" --eif-only "$TMP/$1.eif"
}
