#!/usr/bin/env bash
# test_run_boot_hold: `enclaver run`'s ingress while the enclave boots (issue 16, item 5). The
# test-only local launcher starts odyn as a host process 2 s late (a boot), and the app listens
# 2 s after it starts; clients connect to the host port from the start of the run. They are held
# (by the host until odyn reports the app running, then by odyn until the app listens) and
# answered, with one line from each and no 'connection refused' line (every early connection
# used to be refused with a warning of its own and dropped).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

RUNL=$(dirname "$ENCLAVER")/../helpers/enclaver-local
[ -x "$RUNL" ] || { echo "missing $RUNL"; exit 1; }
printf '#!/bin/sh\nsleep 2\nexec "%s" "$@"\n' "$ODYN" >"$TMP/booting-odyn"
chmod +x "$TMP/booting-odyn"
export ENCLAVER_STATE_DIR=$TMP/state ENCLAVER_LOCAL_ODYN=$TMP/booting-odyn
unset ENCLAVER_LOCAL_MANIFEST ENCLAVER_LOCAL_DIR

standin_eif "$TMP/app.eif"
EP=$(free_port)
cat >"$TMP/m.yaml" <<YAML
version: v1
name: boothold
target: "oci:$TMP/nowhere:latest"
sources:
  app: "oci:$TMP/nowhere:app"
ingress:
  - listen_port: $EP
YAML
mkdir -p "$TMP/www" "$TMP/sock"
echo from-the-enclave >"$TMP/www/index.html"
HP=$(free_port)
ENCLAVER_LOCAL_DIR=$TMP/sock ENCLAVER_LOCAL_MANIFEST=$TMP/m.yaml \
	ENCLAVER_LOCAL_CMD="sleep 2; exec python3 -m http.server $EP --bind 127.0.0.1 --directory '$TMP/www'" \
	"$RUNL" run --launcher local --eif "$TMP/app.eif" --manifest "$TMP/m.yaml" -p "$HP:$EP" >"$TMP/w.out" 2>"$TMP/w.err" &
wp=$!
bg_track $wp
# Five clients from the start of the run (each retries only until the host's listener is bound),
# one every 0.3 s; each prints "connected" and then what it was answered.
for i in 1 2 3 4 5; do
	python3 "$ROOT/tests/cli/helpers/early_client.py" "$HP" "$TMP/early.$i" 60 /index.html &
	bg_track $!
	sleep 0.3
done
wait_for grep -q connected "$TMP/early.1"
check "the first client connected before odyn was up" sh -c "! test -S '$TMP/sock/guest-$EP.sock'"
for i in 1 2 3 4 5; do wait_for grep -q from-the-enclave "$TMP/early.$i"; done
n=0
for i in 1 2 3 4 5; do grep -q from-the-enclave "$TMP/early.$i" && n=$((n + 1)); done
check "all five early clients are answered once the app listens" test $n -eq 5
[ $n -eq 5 ] || { tail -n 3 "$TMP"/early.*; tail -n 20 "$TMP/w.err"; }
check "the host says once that it holds connections until the enclave is up" \
	test "$(grep -c "ingress 127.0.0.1:$HP -> enclave port $EP: holding connections until the enclave is up (at most 256, for 300 s)" \
		"$TMP/w.err")" -eq 1
check "odyn says once (an [odyn] line) that it holds them until the app listens" \
	test "$(grep -c "^\[odyn\] warning: ingress .*:$EP: holding connections until the app listens" "$TMP/w.out")" -eq 1
check "no 'connection refused' line" sh -c "! grep -qi 'refused' '$TMP/w.err' '$TMP/w.out'"
kill -TERM $wp
wait $wp
check "the run stops on SIGTERM" sh -c "! kill -0 $wp 2>/dev/null"
check "no sanitizer report" sh -c "! grep -q Sanitizer '$TMP/w.err'"

done_testing
