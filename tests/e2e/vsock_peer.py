#!/usr/bin/env python3
"""vsock_peer.py: the host side of the end-to-end vsock tests (a test peer, not product code).

  vsock_peer.py sink PATH            accept one connection on unix socket PATH, check the byte
                                     pattern the test init sends, answer "ok N" or "bad at OFFSET",
                                     print "sink: N bytes in T s (R MiB/s)" on stdout
  vsock_peer.py echo UDS PORT BYTES  connect to the backend's UDS, "CONNECT PORT", send BYTES of
                                     the pattern while reading the echo back, check it, print
                                     "echo: ok N bytes in T s (R MiB/s)" or "echo: bad ..."
"""
import os, socket, sys, threading, time


# The pattern, computed once before any timing (the test init writes the same bytes).
PATTERN = b""


def prepare(n):
    global PATTERN
    PATTERN = bytes(((i * 7 + (i >> 12)) % 251) for i in range(n))


def pattern(start, n):
    if start + n > len(PATTERN):
        return b"\xff" * n  # past the expected length: reported as a mismatch
    return PATTERN[start:start + n]


def sink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(path)
    ls.listen(1)
    c, _ = ls.accept()
    t0 = time.monotonic()
    got, bad = 0, None
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        if bad is None and d != pattern(got, len(d)):
            exp = pattern(got, len(d))
            bad = got + next(i for i in range(len(d)) if d[i] != exp[i])
        got += len(d)
    dt = time.monotonic() - t0
    c.sendall(b"ok %d\n" % got if bad is None else b"bad at %d\n" % bad)
    c.close()
    print("sink: %d bytes in %.2f s (%.2f MiB/s)%s" % (got, dt, got / dt / 2**20 if dt else 0,
          "" if bad is None else " BAD at %d" % bad), flush=True)


def echo(uds, port, total):
    s = socket.socket(socket.AF_UNIX)
    s.connect(uds)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        ch = s.recv(1)
        if not ch:
            print("echo: bad: connection closed after %r" % line, flush=True)
            return 1
        line += ch
    if not line.startswith(b"OK "):
        print("echo: bad: answer %r" % line, flush=True)
        return 1
    t0 = time.monotonic()

    def send():
        off = 0
        while off < total:
            n = min(1 << 16, total - off)
            s.sendall(pattern(off, n))
            off += n
        s.shutdown(socket.SHUT_WR)

    th = threading.Thread(target=send)
    th.start()
    got, bad = 0, None
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        if bad is None and d != pattern(got, len(d)):
            bad = got
        got += len(d)
    th.join()
    dt = time.monotonic() - t0
    ok = bad is None and got == total
    print("echo: %s %d bytes in %.2f s (%.2f MiB/s)%s" % ("ok" if ok else "bad", got, dt,
          got / dt / 2**20 if dt else 0, "" if bad is None else " mismatch at %d" % bad), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "sink":
        prepare(8 << 20)  # SINK_BYTES in init.c
        sink(sys.argv[2])
    elif sys.argv[1] == "echo":
        prepare(int(sys.argv[4]))
        sys.exit(echo(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        sys.exit("usage: vsock_peer.py sink PATH | echo UDS PORT BYTES")
