# odyn_lib.sh: helpers for the odyn test scripts (sourced after lib.sh):
# the binaries under test and waiting for conditions without timed assertions.
ODYN=$(dirname "$ENCLAVER")/odyn
PEER=$(dirname "$ENCLAVER")/../helpers/odyn-peer
[ -x "$ODYN" ] || { echo "missing $ODYN"; exit 1; }
[ -x "$PEER" ] || { echo "missing $PEER"; exit 1; }
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
# A free TCP port on 127.0.0.1 (the kernel picks it).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Kills the background processes a script started (by pid) on exit.
_bg_pids=()
bg_track() { _bg_pids+=("$1"); }
bg_cleanup() {
	local p
	for p in "${_bg_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${_bg_pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap bg_cleanup EXIT
