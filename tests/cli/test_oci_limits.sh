#!/usr/bin/env bash
# test_oci_limits: a registry's answers over enclaver's caps or against its own descriptors, from
# a tiny hostile registry on 127.0.0.1 (python, started and stopped here): a manifest over 4 MiB
# is refused naming the request and the cap, and nothing it sent is kept (its header strings
# leaked: issue 14, item 8; the asan run's LeakSanitizer catches that). Issue 14, item 10: an
# empty manifest's error says so; a manifest that is not valid, or names a config over 16 MiB, is
# refused before it is cached (and the config never requested); a blob whose Content-Length is
# not its descriptor's size is refused at once, not after the 30 s low-speed timeout.
. "$(dirname "$0")/lib.sh"

cat >"$TMP/registry.py" <<'PY'
import hashlib, http.server, json, sys, time
BIG = b"{" + b" " * (5 * 1024 * 1024) + b"}"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
def digest(b): return "sha256:" + hashlib.sha256(b).hexdigest()
def manifest(config_digest, config_size):
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": config_digest, "size": config_size},
                       "layers": []}).encode()
MANIFESTS = {
    "/v2/empty/manifests/latest": b"",
    "/v2/invalid/manifests/latest": b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:zz","size":1},"layers":[]}',
    "/v2/bigconfig/manifests/latest": manifest(digest(b"x"), 17 * 1024 * 1024),
    "/v2/length/manifests/latest": manifest(digest(CONFIG), len(CONFIG)),
}
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        log.write(self.path + "\n")
        if self.path.startswith("/v2/length/blobs/"):
            # Announces more than the blob, sends the blob, then holds the connection.
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(CONFIG) + 1000))
            self.end_headers()
            self.wfile.write(CONFIG)
            self.wfile.flush()
            time.sleep(60)
            return
        body = b"{}" if self.path == "/v2/" else MANIFESTS.get(self.path, BIG)
        self.send_response(200)
        # Headers the client keeps (type, digest, location) before the body overflows.
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        if body is BIG:
            self.send_header("Docker-Content-Digest", "sha256:" + "0" * 64)
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass  # the client hangs up mid-body on purpose
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$TMP/registry.py" "$TMP/requests" >"$TMP/port" &
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

check_fails "an empty manifest: the error says so" "manifest .*: the manifest is empty" \
	"$ENCLAVER" pull -q --insecure "$R/empty:latest"
check_fails "a manifest with an invalid config descriptor is refused" 'manifest invalid:latest: config: ' \
	"$ENCLAVER" pull -q --insecure "$R/invalid:latest"
check_fails "a manifest naming a 17 MiB config is refused" "17825792 bytes is over the 16777216-byte limit" \
	"$ENCLAVER" pull -q --insecure "$R/bigconfig:latest"
check "... and its config was never requested" bash -c "! grep -q '^/v2/bigconfig/blobs/' '$TMP/requests'"
check "none of the refused manifests was cached" test -z "$(find "$TMP/cache" -type f 2>/dev/null)"
start=$(date +%s)
check_fails "a blob whose Content-Length is not its size is refused" \
	"announces 1[0-9]+ bytes \(Content-Length\) where the descriptor leaves [0-9]+" \
	"$ENCLAVER" pull -q --insecure "$R/length:latest"
took=$(($(date +%s) - start))
check "... at once (${took}s, not the 30 s low-speed timeout)" test "$took" -lt 10
CONFIG_HEX=$(python3 -c 'import hashlib; print(hashlib.sha256(b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}").hexdigest())')
check "... and no byte of it is in the cache" test -z "$(find "$TMP/cache/blobs" -name "*$CONFIG_HEX*" -size +0 2>/dev/null)"

# A pull that fails on a bad blob from the registry leaves no layout behind (issue 14, item 9):
# a new folder is not created, an existing layout keeps its bytes.
check_fails "pull --output oci: into a new folder, refused blob" "Content-Length" \
	"$ENCLAVER" pull -q --insecure --output "oci:$TMP/pulled:x" "$R/length:latest"
check "... the folder is not there" test ! -e "$TMP/pulled"
python3 "$ROOT/testdata/example/make_app_image.py" "$TMP/existing" v1 >/dev/null
before=$(cd "$TMP/existing" && find . -printf '%y %m %p\n' | sort && find . -type f -exec sha256sum {} + | sort)
check_fails "pull --output oci: into an existing layout, refused blob" "Content-Length" \
	"$ENCLAVER" pull -q --insecure --output "oci:$TMP/existing:x" "$R/length:latest"
check "... the layout is byte for byte as before" test "$before" = \
	"$(cd "$TMP/existing" && find . -printf '%y %m %p\n' | sort && find . -type f -exec sha256sum {} + | sort)"

done_testing
