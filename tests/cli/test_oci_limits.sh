#!/usr/bin/env bash
# test_oci_limits: a registry's answers over enclaver's caps, from a tiny hostile registry on
# 127.0.0.1 (python, started and stopped here): a manifest over 4 MiB is refused naming the
# request and the cap, and nothing it sent is kept (its header strings leaked: issue 14, item 8;
# the asan run's LeakSanitizer catches that).
. "$(dirname "$0")/lib.sh"

cat >"$TMP/registry.py" <<'PY'
import http.server
BIG = b"{" + b" " * (5 * 1024 * 1024) + b"}"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = b"{}" if self.path == "/v2/" else BIG
        self.send_response(200)
        # Headers the client keeps (type, digest, location) before the body overflows.
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Docker-Content-Digest", "sha256:" + "0" * 64)
        self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
class S(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the client hangs up mid-body on purpose
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$TMP/registry.py" >"$TMP/port" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 1 1500); do [ -s "$TMP/port" ] && break; sleep 0.02; done
R=127.0.0.1:$(cat "$TMP/port")
export ENCLAVER_CACHE_DIR=$TMP/cache HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config
unset REGISTRY_AUTH_FILE DOCKER_CONFIG
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"

check_fails "manifest over 4 MiB refused, naming the request and the cap (and nothing leaked)" \
	"GET /v2/big/manifests/latest: response larger than 4194304 bytes" \
	"$ENCLAVER" pull -q --insecure "$R/big:latest"
check "no file kept from it" test -z "$(find "$TMP/cache" -type f 2>/dev/null)"

done_testing
