#!/usr/bin/env python3
# test-token-server: the tests' own bearer token server for docker-registry's
# token auth (scripts/test-registry.sh start DIR token starts it). Issues
# RS256 JWTs signed with `openssl dgst`, so it needs nothing beyond python3
# and openssl. User "tester" / "s3cret-pass" gets what it asks for; anonymous
# gets pull only; a wrong password gets 401. Both flows: GET /token?service=
# &scope= (basic auth optional) and the OAuth2 POST form (grant_type=password
# or refresh_token; the refresh token is "refresh-me"). Each request is
# logged to DIR/token.log as "METHOD grant scopes". A file DIR/token.lifetime
# holding "EXPIRES_IN AGE" changes what replies advertise: expires_in, and an
# issued_at AGE seconds in the past (the JWT itself stays valid 300 s), so
# tests can hand out tokens that are already due for renewal. A file
# DIR/token.redirect holding a URL makes it answer every request with a 307
# to that URL plus the request's path (a redirect that keeps a POST's form).
# Every request,
# answered or not, is also logged to DIR/token.requests as "METHOD PATH
# authorization|no-authorization", so a test can tell whether credentials
# arrived at all.
# It speaks TLS with DIR/server.crt and DIR/server.key (the registry's
# certificate, from the same test CA) unless started with --plain-http: the
# cleartext realm a client must refuse for a TLS registry.
# Usage: test-token-server.py [--plain-http] DIR SERVICE ISSUER
import base64
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid

args = sys.argv[1:]
plain_http = args[:1] == ["--plain-http"]
if plain_http:
    args = args[1:]
root, service, issuer = args
key = os.path.join(root, "token.key")
USER, PASSWORD, REFRESH = "tester", "s3cret-pass", "refresh-me"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_kid():
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


KID = libtrust_kid()


def sign(claims):
    header = b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": KID}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input, check=True,
                         capture_output=True).stdout
    return f"{header}.{payload}.{b64url(sig)}"


def grant(scopes, authed):
    access = []
    for s in scopes:
        parts = s.split(":")
        if len(parts) < 3 or parts[0] != "repository":
            continue
        actions = parts[-1].split(",")
        name = ":".join(parts[1:-1])
        allowed = [a for a in actions if authed or a == "pull"]
        access.append({"type": "repository", "name": name, "actions": allowed})
    return access


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def parse_request(self):
        ok = super().parse_request()
        if ok:
            auth = "authorization" if "Authorization" in self.headers else "no-authorization"
            with open(os.path.join(root, "token.requests"), "a") as log:
                log.write(f"{self.command} {self.path} {auth}\n")
        return ok

    def reply(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def issue(self, method, how, scopes, authed, refresh=False):
        with open(os.path.join(root, "token.log"), "a") as log:
            log.write(f"{method} {how} {' '.join(scopes)}\n")
        now = int(time.time())
        claims = {"iss": issuer, "sub": USER if authed else "", "aud": service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": grant(scopes, authed)}
        token = sign(claims)
        expires_in, age = 300, 0
        try:
            with open(os.path.join(root, "token.lifetime")) as f:
                expires_in, age = (int(v) for v in f.read().split())
        except FileNotFoundError:
            pass
        doc = {"token": token, "access_token": token, "expires_in": expires_in,
               "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - age))}
        if refresh:
            doc["refresh_token"] = REFRESH
        self.reply(200, doc)

    def redirected(self):
        try:
            with open(os.path.join(root, "token.redirect")) as f:
                target = f.read().strip()
        except FileNotFoundError:
            return False
        if self.command == "POST":
            self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        self.send_response(307)
        self.send_header("Location", target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def do_GET(self):
        if self.redirected():
            return
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path != "/token" or q.get("service", [""])[0] != service:
            return self.reply(404, {"error": "not found"})
        authed = False
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if (user, pw) != (USER, PASSWORD):
                with open(os.path.join(root, "token.log"), "a") as log:
                    log.write("GET denied\n")
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            authed = True
        self.issue("GET", "basic" if authed else "anonymous", q.get("scope", []), authed)

    def do_POST(self):
        if self.redirected():
            return
        length = int(self.headers.get("Content-Length", "0") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        f = lambda k: form.get(k, [""])[0]
        if self.path != "/token" or f("service") != service:
            return self.reply(404, {"error": "not found"})
        ok = (f("grant_type") == "password" and (f("username"), f("password")) == (USER, PASSWORD)) or \
             (f("grant_type") == "refresh_token" and f("refresh_token") == REFRESH)
        if not ok:
            with open(os.path.join(root, "token.log"), "a") as log:
                log.write("POST denied\n")
            return self.reply(401, {"error": "invalid_grant"})
        self.issue("POST", f("grant_type"), form.get("scope", []), True, refresh=True)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if not plain_http:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(root, "server.crt"), os.path.join(root, "server.key"))
    # The handshake runs in the request's thread, not in the accept loop.
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
with open(os.path.join(root, "token.port.tmp"), "w") as out:
    out.write(str(server.server_port))
os.rename(os.path.join(root, "token.port.tmp"), os.path.join(root, "token.port"))
server.serve_forever()
