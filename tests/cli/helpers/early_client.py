#!/usr/bin/env python3
"""early_client.py PORT OUT BOUND_S [PATH]: a client of an ingress port from the start of a run.
Retries the connect only until the host's listener is bound (30 s), sends "GET PATH" (default /),
appends "connected" to OUT, then waits up to BOUND_S for the answer and appends it (or the
error) to OUT. Issue 16, item 5: such a client is held through the boot, then answered."""
import socket
import sys
import time

port, out, bound = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
path = sys.argv[4] if len(sys.argv) > 4 else "/"
end = time.monotonic() + 30
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port))
        break
    except ConnectionRefusedError:
        if time.monotonic() > end:
            raise
        time.sleep(0.02)
s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
with open(out, "a") as f:
    f.write("connected\n")
s.settimeout(bound)
got = b""
try:
    while True:
        c = s.recv(65536)
        if not c:
            break
        got += c
except OSError as e:
    got += ("\n[client: %s]" % e).encode()
with open(out, "a") as f:
    f.write(got.decode(errors="replace") + "\n")
