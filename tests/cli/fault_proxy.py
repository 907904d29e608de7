#!/usr/bin/env python3
# fault_proxy: a reverse proxy in front of the test registry that injects
# the faults a real network has, for the retry and resume tests:
#   fail500:N  the first N blob GETs answer 500
#   fail429:N  the first N blob GETs answer 429
#   drop       the first blob GET over 1 MB is cut after half its body
#   stall      the first blob GET over 1 MB sends half its body, then hangs
#   range416   the first blob GET with a Range answers 416 the way the
#              registry does when a range starts at the blob's end: with the
#              blob's length as Content-Length, a short body, then a close
#   together:N blob upload PUTs wait until N of them are in flight (or 30 s
#              pass), then go on; each is logged with "inflight=K", the
#              most that were waiting together, so a test can see that
#              uploads ran at the same time
#   refusesig  manifest PUTs to a cosign signature tag (sha256-<hex>.sig)
#              answer 403 DENIED, as a registry whose policy forbids them
#   refuseatt  the same for attestation tags (sha256-<hex>.att) only
#   referrers  GET /v2/<name>/referrers/<digest> answers 200 with an empty OCI
#              index, as a registry with the OCI 1.1 referrers API does (the
#              test registry, distribution 2.8, answers 404); everything else,
#              the referrer's own PUT included, goes to the real registry
#   hold       blob upload PUTs wait until the file LOG.go exists (or 60 s
#              pass), each logged with "upload held" as it arrives, so a
#              test can look at the pusher while it is mid-push
# Every request is logged (method, path, Range) to LOG so tests can see what
# the client did. Usage: fault_proxy.py PORT_FILE UPSTREAM_PORT MODE LOG
import http.client
import http.server
import os
import sys
import threading
import time

port_file, upstream, mode, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
state = {"left": int(mode.split(":")[1]) if ":" in mode else 1, "inflight": 0, "most": 0}
arrived = threading.Condition(lock)


def take_fault():
    with lock:
        if state["left"] > 0:
            state["left"] -= 1
            return True
        return False


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, content_type, body):
        """A whole response made here instead of the registry's."""
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def relay(self):
        with lock, open(log_path, "a") as log:
            log.write(f"{self.command} {self.path} range={self.headers.get('Range', '-')}\n")
        is_blob_get = self.command == "GET" and "/blobs/sha256:" in self.path
        kind = mode.split(":")[0]
        if is_blob_get and kind in ("fail500", "fail429") and take_fault():
            code = 500 if kind == "fail500" else 429
            self.answer(code, "application/json", b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}')
            return
        if is_blob_get and kind == "range416" and "Range" in self.headers and take_fault():
            msg = b"invalid range: failed to overlap\n"
            self.send_response(416)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(msg) + 100000))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(msg)
            self.wfile.flush()
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else None
        refused = "/manifests/sha256-" if kind == "refusesig" else ".att" if kind == "refuseatt" else None
        if refused and self.command == "PUT" and "/manifests/sha256-" in self.path and refused in self.path:
            self.answer(403, "application/json",
                        b'{"errors":[{"code":"DENIED","message":"signature tags are not allowed here"}]}')
            return
        if kind == "referrers" and self.command == "GET" and "/referrers/sha256:" in self.path:
            index = "application/vnd.oci.image.index.v1+json"
            self.answer(200, index, b'{"schemaVersion":2,"mediaType":"%s","manifests":[]}' % index.encode())
            return
        if kind == "together" and self.command == "PUT" and "/blobs/uploads/" in self.path:
            with arrived:
                state["inflight"] += 1
                state["most"] = max(state["most"], state["inflight"])
                arrived.notify_all()
                arrived.wait_for(lambda: state["most"] >= state["left"], timeout=30)
                with open(log_path, "a") as log:
                    log.write(f"upload inflight={state['most']}\n")
            try:
                self.forward(kind, is_blob_get, body)
            finally:
                with arrived:
                    state["inflight"] -= 1
            return
        if kind == "hold" and self.command == "PUT" and "/blobs/uploads/" in self.path:
            with lock, open(log_path, "a") as log:
                log.write("upload held\n")
            for _ in range(600):
                if os.path.exists(log_path + ".go"):
                    break
                time.sleep(0.1)
        self.forward(kind, is_blob_get, body)

    def forward(self, kind, is_blob_get, body):
        conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        headers["Host"] = f"127.0.0.1:{upstream}"
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        cut = (is_blob_get and kind in ("drop", "stall") and "Range" not in self.headers
               and len(data) > 1 << 20 and take_fault())
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("connection", "transfer-encoding"):
                continue
            if k.lower() == "location" and v.startswith(f"http://127.0.0.1:{upstream}"):
                v = v.replace(f":{upstream}", f":{self.server.server_port}", 1)
            self.send_header(k, v)
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        if cut:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if kind == "stall":
                time.sleep(60)
            self.close_connection = True
            return
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = relay


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_port))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
