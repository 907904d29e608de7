#!/usr/bin/env python3
"""kms_test_server: the AWS side of odyn's KMS proxy for tests, on 127.0.0.1.

  imds PORTFILE LOG EXPIRY_S   IMDSv2: session token, one role, its
                               credentials (expiring EXPIRY_S from now),
                               the region.
  kms PORTFILE LOG CERT KEY ROOT ENCLAVER
                               KMS over HTTPS: checks each request's SigV4
                               signature (written here from AWS's
                               description, independently of odyn's C
                               code) against the credentials IMDS issues,
                               verifies a Recipient's attestation document
                               with `enclaver verify-attestation --root
                               ROOT`, and encrypts to its public key with
                               CMS as KMS does (openssl cms: RSAES-OAEP
                               SHA-256 key transport, AES-256-CBC).

  sign PORTFILE LOG KEY MODEFILE
                               KMS's GetPublicKey and Sign over plain HTTP for the EIF signing
                               tests: checks each request's SigV4 signature the same way and
                               signs digests with KEY (a PEM EC private key) for the key ARN
                               arn:aws:kms:us-test-1:111122223333:key/test-sign; other key
                               ids get NotFoundException (HTTP 400, an AWS error body). When
                               MODEFILE holds "fail", Sign answers KMSInvalidStateException;
                               "other-key", Sign signs with a key of its own instead.

Credentials: access key AKIDTEST<n>, secret "secret-<n>", token "token-<n>" (sign mode: also
AKIDTESTP<n> with secret "secret-P<n>" and no token).
Decrypt's plaintext is b"plain:" + CiphertextBlob, so tests know it.
An EncryptionContext {"test-reply": "chunked"} makes the answer chunked
(uneven chunks, an extension, a trailer); "bad-chunked" makes it chunked
with a chunk longer than its size. The action TestHold answers chunked at
once but holds the JSON (sending a space chunk every second, so no reader
times out) until the file named by its ReleaseFile exists.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1]
PORTFILE, LOG = sys.argv[2], sys.argv[3]
lock = threading.Lock()
issued = {"n": 0}


def log(line):
    with lock, open(LOG, "a") as f:
        f.write(line + "\n")


class IMDS(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass

    def do_PUT(self):
        log("imds PUT " + self.path)
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(400, "bad token request")
        self.reply(200, "imds-session-token")

    def do_GET(self):
        log("imds GET " + self.path)
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
            return self.reply(401, "IMDSv2 token required")
        if self.path == "/latest/meta-data/iam/security-credentials/":
            return self.reply(200, "test-role")
        if self.path == "/latest/meta-data/placement/region":
            return self.reply(200, "us-test-1")
        if self.path == "/latest/meta-data/iam/security-credentials/test-role":
            with lock:
                issued["n"] += 1
                n = issued["n"]
            exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=int(sys.argv[4]))
            log("imds issued AKIDTEST%d" % n)
            return self.reply(200, json.dumps({
                "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "AKIDTEST%d" % n,
                "SecretAccessKey": "secret-%d" % n, "Token": "token-%d" % n,
                "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}), "application/json")
        self.reply(404, "not found")


def sigv4_check(method, path, headers, body):
    """Returns None when the Authorization header is a valid SigV4
    signature by a credential IMDS issued, else the reason."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization"
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    cred = parts["Credential"].split("/")
    akid, date, region, service = cred[0], cred[1], cred[2], cred[3]
    if not akid.startswith("AKIDTEST") or service != "kms" or cred[4] != "aws4_request":
        return "bad credential scope " + parts["Credential"]
    n = akid[len("AKIDTEST"):]
    # The signing stand-in also takes long-term credentials (AKIDTESTP<n>): no session token.
    permanent = MODE == "sign" and n.startswith("P") and "X-Amz-Security-Token" not in headers
    if not permanent and headers.get("X-Amz-Security-Token") != "token-" + n:
        return "missing or wrong session token"
    signed = parts["SignedHeaders"].split(";")
    for need in ("host", "x-amz-date", "x-amz-target") + (() if permanent else ("x-amz-security-token",)):
        if need not in signed:
            return "header %s not signed" % need
    amz_date = headers.get("X-Amz-Date", "")
    t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > 900 or amz_date[:8] != date:
        return "X-Amz-Date out of range"
    canon_headers = "".join("%s:%s\n" % (h, " ".join(headers.get(h, "").split())) for h in signed)
    creq = "\n".join([method, path, "", canon_headers, parts["SignedHeaders"], hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (date, region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4secret-" + n).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, parts["Signature"]):
        return "signature mismatch"
    return None


def cms_encrypt_to(doc_b64, plaintext):
    """Verifies the attestation document and CMS-encrypts plaintext to its
    public key; returns (base64 DER, None) or (None, reason)."""
    root, enclaver = sys.argv[6], sys.argv[7]
    with tempfile.TemporaryDirectory() as d:
        doc = os.path.join(d, "doc.cbor")
        with open(doc, "wb") as f:
            f.write(base64.b64decode(doc_b64))
        v = subprocess.run([enclaver, "verify-attestation", doc, "--root", root], capture_output=True)
        verdict = json.loads(v.stdout or b"{}")
        if v.returncode != 0 or not verdict.get("Valid"):
            return None, "attestation document rejected: " + v.stderr.decode().strip()
        pk = verdict["Document"]["PublicKey"]
        if pk is None:
            return None, "attestation document has no public key"
        pub = os.path.join(d, "pub.der")
        with open(pub, "wb") as f:
            f.write(base64.b64decode(pk))
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("openssl", "pkey", "-pubin", "-inform", "DER", "-in", pub, "-out", pub + ".pem")
        # openssl cms wants a recipient certificate: a throwaway one
        # carrying the attested key, signed by a throwaway key.
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", d + "/ca.pem")
        run("openssl", "x509", "-new", "-subj", "/CN=recipient", "-key", d + "/ca.pem", "-force_pubkey",
            pub + ".pem", "-days", "1", "-out", d + "/rcpt.crt")
        with open(d + "/pt", "wb") as f:
            f.write(plaintext)
        run("openssl", "cms", "-encrypt", "-in", d + "/pt", "-binary", "-outform", "DER", "-aes256", "-recip",
            d + "/rcpt.crt", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256",
            "-keyopt", "rsa_mgf1_md:sha256", "-out", d + "/ct.der")
        with open(d + "/ct.der", "rb") as f:
            return base64.b64encode(f.read()).decode(), None


class KMS(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_chunked_head(self, code):
        self.send_response(code)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def reply_chunked(self, code, obj, bad=False):
        data = json.dumps(obj).encode()
        self.send_chunked_head(code)
        cuts = sorted({0, 1, 7, len(data) // 2, len(data)})
        for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
            size = b - a - (1 if bad and i == 1 else 0)
            ext = ";part=%d" % i if i == 1 else ""
            self.wfile.write(b"%X%s\r\n%s\r\n" % (size, ext.encode(), data[a:b]))
        self.wfile.write(b"0\r\nX-Test-Trailer: done\r\n\r\n")

    def hold(self, release):
        log("kms TestHold waiting")
        self.send_chunked_head(200)
        for _ in range(600):
            if os.path.exists(release):
                break
            self.wfile.write(b"1\r\n \r\n")
            self.wfile.flush()
            threading.Event().wait(1)
        data = json.dumps({"Action": "TestHold"}).encode()
        self.wfile.write(b"%X\r\n%s\r\n0\r\n\r\n" % (len(data), data))

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "")
        action = target.split(".", 1)[-1]
        why = sigv4_check("POST", self.path, self.headers, body)
        if why:
            log("kms %s REJECTED %s" % (action, why))
            return self.reply(400, {"__type": "InvalidSignatureException", "message": why})
        req = json.loads(body)
        recipient = req.get("Recipient")
        log("kms %s signed-by %s recipient=%s" % (action, self.headers["Authorization"].split("/")[0].split("=")[1],
                                                  "yes" if recipient else "no"))
        if recipient and recipient.get("KeyEncryptionAlgorithm") != "RSAES_OAEP_SHA_256":
            return self.reply(400, {"__type": "ValidationException", "message": "bad KeyEncryptionAlgorithm"})
        if action == "TestHold":
            return self.hold(req["ReleaseFile"])
        how = (req.get("EncryptionContext") or {}).get("test-reply")
        reply = self.reply
        if how in ("chunked", "bad-chunked"):
            log("kms %s replied %s" % (action, how))
            reply = lambda code, obj: self.reply_chunked(code, obj, bad=how == "bad-chunked")
        out = {"KeyId": req.get("KeyId", "arn:aws:kms:us-test-1:111122223333:key/test")}
        if action == "Decrypt":
            secret, field = b"plain:" + base64.b64decode(req["CiphertextBlob"]), "Plaintext"
        elif action == "GenerateDataKey":
            secret, field = b"data-key-" + b"k" * 23, "Plaintext"
            out["CiphertextBlob"] = base64.b64encode(b"wrapped").decode()
        elif action == "GenerateRandom":
            secret, field = b"r" * int(req.get("NumberOfBytes", 16)), "Plaintext"
            out = {}
        elif action == "GenerateDataKeyPair":
            secret, field = b"private-key-der", "PrivateKeyPlaintext"
            out["PublicKey"] = base64.b64encode(b"public-key-der").decode()
        elif action == "DeriveSharedSecret":
            secret, field = b"shared-secret", "SharedSecret"
        else:
            return reply(200, {"Keys": [], "Action": action})
        if recipient:
            ct, why = cms_encrypt_to(recipient["AttestationDocument"], secret)
            if why:
                log("kms %s REJECTED %s" % (action, why))
                return self.reply(400, {"__type": "ValidationException", "message": why})
            out["CiphertextForRecipient"] = ct
        else:
            out[field] = base64.b64encode(secret).decode()
        reply(200, out)


class KMSSign(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ARN = "arn:aws:kms:us-test-1:111122223333:key/test-sign"
    ALGS = {"ECDSA_SHA_256": 32, "ECDSA_SHA_384": 48, "ECDSA_SHA_512": 64}

    def log_message(self, *a):
        pass

    reply = KMS.reply

    def error(self, action, kind, message):
        log("kms %s REJECTED %s: %s" % (action, kind, message))
        self.reply(400, {"__type": kind, "message": message})

    def do_POST(self):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, utils
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        action = self.headers.get("X-Amz-Target", "").split(".", 1)[-1]
        why = sigv4_check("POST", self.path, self.headers, body)
        if why:
            return self.error(action, "InvalidSignatureException", why)
        req = json.loads(body)
        if req.get("KeyId") != self.ARN:
            return self.error(action, "NotFoundException", "Key '%s' does not exist" % req.get("KeyId"))
        with open(sys.argv[4], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        log("kms %s signed-by %s" % (action, self.headers["Authorization"].split("/")[0].split("=")[1]))
        if action == "GetPublicKey":
            spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
            return self.reply(200, {"KeyId": self.ARN, "PublicKey": base64.b64encode(spki).decode(),
                                    "KeySpec": "ECC_NIST_P384", "KeyUsage": "SIGN_VERIFY",
                                    "SigningAlgorithms": ["ECDSA_SHA_384"]})
        if action != "Sign":
            return self.error(action, "UnsupportedOperationException", action)
        alg, digest = req.get("SigningAlgorithm"), base64.b64decode(req.get("Message", ""))
        if req.get("MessageType") != "DIGEST" or alg not in self.ALGS or len(digest) != self.ALGS[alg]:
            return self.error(action, "ValidationException", "expected a DIGEST of the SigningAlgorithm's size")
        mode = open(sys.argv[5]).read().strip() if os.path.exists(sys.argv[5]) else ""
        if mode == "fail":
            return self.error(action, "KMSInvalidStateException", "%s is pending deletion" % self.ARN)
        if mode == "other-key":
            key = ec.generate_private_key(ec.SECP384R1())
        md = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[len(digest)]
        sig = key.sign(digest, ec.ECDSA(utils.Prehashed(md)))
        log("kms Sign %s digest %s" % (alg, digest.hex()))
        self.reply(200, {"KeyId": self.ARN, "Signature": base64.b64encode(sig).decode(), "SigningAlgorithm": alg})


# Many requests at once (the proxy's concurrency limit is tested): a deep backlog, and the TLS
# handshake in each request's own thread rather than in the accepting one.
class Server(ThreadingHTTPServer):
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # A client that refuses the certificate (a tested case) ends here: a line, not a trace.
        log("server: connection from %s:%d ended with %s" % (client_address + (sys.exc_info()[1],)))


srv = Server(("127.0.0.1", 0), {"imds": IMDS, "kms": KMS, "sign": KMSSign}[MODE])
if MODE == "kms":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
