# lib.sh: helpers for CLI test scripts (sourced). Each check prints
# "ok - name" or "not ok - name" and the script ends with done_testing,
# which prints "# counts P F" for tests/run.sh.
set -u
: "${ENCLAVER:?ENCLAVER must name the enclaver binary under test}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TESTDATA=$ROOT/testdata
_pass=0
_fail=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/enclaver-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

ok() { echo "ok - $1"; _pass=$((_pass + 1)); }
not_ok() {
	echo "not ok - $1"
	shift
	[ $# -gt 0 ] && printf '    %s\n' "$@"
	_fail=$((_fail + 1))
}
# check NAME CMD...: passes when CMD exits 0.
check() {
	local name=$1
	shift
	if "$@" >"$TMP/.out" 2>&1; then ok "$name"; else not_ok "$name" "$(head -c 2000 "$TMP/.out")"; fi
}
# check_fails NAME PATTERN CMD...: passes when CMD exits non-zero, prints
# PATTERN (grep -E) on stderr, and writes nothing to stdout.
check_fails() {
	local name=$1 pattern=$2
	shift 2
	"$@" >"$TMP/.stdout" 2>"$TMP/.stderr"
	local rc=$?
	if [ $rc -eq 0 ]; then
		not_ok "$name" "expected failure, exit 0"
	elif [ $rc -ge 128 ]; then
		not_ok "$name" "killed by a signal (exit $rc)" "$(head -c 2000 "$TMP/.stderr")"
	elif ! grep -Eq -- "$pattern" "$TMP/.stderr"; then
		not_ok "$name" "stderr lacks /$pattern/:" "$(head -c 2000 "$TMP/.stderr")"
	elif grep -q 'Sanitizer' "$TMP/.stderr"; then
		not_ok "$name" "sanitizer report" "$(head -c 2000 "$TMP/.stderr")"
	else
		ok "$name"
	fi
}
# wait_for CMD...: retries CMD every 20 ms, at most 30 s (a hung test fails
# instead of hanging; the length of the wait is never what is tested).
wait_for() {
	local i
	for ((i = 0; i < 1500; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.02
	done
	return 1
}
# require_tools TOOL...: each is on PATH, else one failure naming it and the script ends.
require_tools() {
	local tool
	for tool in "$@"; do
		if ! command -v "$tool" >/dev/null; then
			not_ok "$tool is installed (scripts/install-deps.sh)"
			done_testing
			exit 1
		fi
	done
}
# A free TCP port on 127.0.0.1 (the kernel picks it).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# registry_start [MODE]: Debian's docker-registry on 127.0.0.1 in $REG=$TMP/reg
# (scripts/test-registry.sh; MODE plain by default), stopped at exit, with the fault proxy
# $PROXY_PID when one runs (and odyn_lib.sh's background processes when it is sourced); sets PORT
# and R=127.0.0.1:PORT.
registry_start() {
	REG=$TMP/reg
	PROXY_PID=
	mkdir -p "$REG"
	trap _registry_exit EXIT
	PORT=$("$ROOT/scripts/test-registry.sh" start "$REG" "${1:-plain}") || {
		not_ok "registry starts"
		done_testing
		exit 1
	}
	R=127.0.0.1:$PORT
}
_registry_exit() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
	"$ROOT/scripts/test-registry.sh" stop "$REG"
	if declare -F bg_cleanup >/dev/null; then bg_cleanup; fi
	rm -rf "$TMP"
}
# registry_env: the blob cache, HOME and XDG folders under $TMP, no auth file from outside, so
# nothing of the caller's is read (after make_kernel_bundle: its kernel is cached under the real HOME).
registry_env() {
	export ENCLAVER_CACHE_DIR=$TMP/cache
	export HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config
	unset REGISTRY_AUTH_FILE DOCKER_CONFIG
	mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
}
# proxy_start MODE: tests/cli/fault_proxy.py in MODE in front of the registry at $PORT
# (registry_start), logging to $TMP/proxy.log; sets PROXY_PID and PR=127.0.0.1:its port.
proxy_start() {
	rm -f "$TMP/proxy.port" "$TMP/proxy.log" "$TMP/proxy.log.go"
	python3 "$ROOT/tests/cli/fault_proxy.py" "$TMP/proxy.port" "$PORT" "$1" "$TMP/proxy.log" &
	PROXY_PID=$!
	wait_for test -s "$TMP/proxy.port"
	PR=127.0.0.1:$(cat "$TMP/proxy.port")
}
proxy_stop() {
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
}
done_testing() {
	echo "# counts $_pass $_fail"
	[ $_fail -eq 0 ]
}
