#!/usr/bin/env python3
# fake_qemu_guest: a stand-in for QEMU under `enclaver run --emulate` (ENCLAVER_QEMU) that plays
# the guest behind the vsock backend's CONNECT socket, for tests of the host side. It takes over
# the runtime folder's `vsock` socket (the backend's "CONNECT <port>" socket, which the emulator
# launcher connects to for every guest port), answers the heartbeat, and then, per port asked:
#   17000 (status)  never answers the first $FAKE_STATUS_SILENT times (default 0), then "OK" and
#                   {"status":"running"}; exits when the host sends "stop"
#   17001 (log)     "OK", then nothing
#   $FAKE_STUCK     never answers (a guest that does not take the connection)
#   $FAKE_REFUSE    refused (closed) the first $FAKE_REFUSE_TIMES times, then like $FAKE_ECHO
#   $FAKE_ECHO      "OK", then echoes what it reads
# Every CONNECT line is appended to $FAKE_LOG. Exits on its own after 120 s.
import os
import socket
import sys
import threading
import time

args = sys.argv[1:]
dev = [a for a in args if a.startswith("socket,id=c0,path=")][0]
folder = dev.split("path=", 1)[1].rsplit("/", 1)[0]
stuck, echo, refuse = (int(os.environ[k]) for k in ("FAKE_STUCK", "FAKE_ECHO", "FAKE_REFUSE"))
refuse_times = int(os.environ.get("FAKE_REFUSE_TIMES", "2"))
log = open(os.environ["FAKE_LOG"], "a", buffering=1)
held = []
status_silent = int(os.environ.get("FAKE_STATUS_SILENT", "0"))
refused = [0]
statuses = [0]
lock = threading.Lock()

# The backend's socket gives way to ours before the heartbeat: every connect after the boot is ours.
path = folder + "/vsock"
os.unlink(path)
lsock = socket.socket(socket.AF_UNIX)
lsock.bind(path)
lsock.listen(64)


def serve(c):
    line = b""
    while not line.endswith(b"\n"):
        b = c.recv(1)
        if not b:
            return
        line += b
    port = int(line.split()[1])
    log.write("CONNECT %d\n" % port)
    if port == 17000:
        with lock:
            statuses[0] += 1
            n = statuses[0]
        if n <= status_silent:
            held.append(c)
            return
    if port == stuck:
        held.append(c)
        return
    if port == refuse:
        with lock:
            refused[0] += 1
            n = refused[0]
        if n <= refuse_times:
            c.close()
            return
    c.sendall(b"OK 1024\n")
    if port == 17000:
        c.sendall(b'{"status":"running"}\n')
        while True:
            b = c.recv(4096)
            if not b or b"stop" in b:
                os._exit(0)
    if port in (echo, refuse):
        while True:
            b = c.recv(4096)
            if not b:
                break
            c.sendall(b)
        c.close()
        return
    held.append(c)


def accept_loop():
    while True:
        c, _ = lsock.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


threading.Thread(target=accept_loop, daemon=True).start()
hb = socket.socket(socket.AF_UNIX)
hb.connect(folder + "/heartbeat.sock")
hb.send(bytes([0xB7]))
hb.recv(1)
time.sleep(120)
