#!/usr/bin/env python3
"""http_probe: raw-socket checks of a small HTTP server (the --metrics endpoint) that curl cannot
make: malformed and oversized heads, a client that never finishes its head, and more idle clients
than the server takes. Each mode prints one line the test compares; exit 0 unless the socket work
itself failed.

  http_probe.py PORT raw HEX          send the bytes, print the status line of the answer (or EOF)
  http_probe.py PORT head N           a request whose one header is N bytes: the status line
  http_probe.py PORT slow             send half a head, then wait: seconds until the server closed
  http_probe.py PORT flood N          N idle connections, then one more: what that one reads
                                      (EOF when it was shed), then a GET /livez once the idle ones
                                      are closed: its status line
"""
import socket
import sys
import time


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s


def status_of(s):
    data = b""
    try:
        while b"\r\n" not in data:
            c = s.recv(4096)
            if not c:
                break
            data += c
    except (ConnectionResetError, socket.timeout):
        pass
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return line if line else "EOF"


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "raw":
        s = connect(port)
        s.sendall(bytes.fromhex(sys.argv[3]))
        print(status_of(s))
    elif mode == "head":
        s = connect(port)
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * int(sys.argv[3]) + b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        print(status_of(s))
    elif mode == "slow":
        s = connect(port)
        s.settimeout(60)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        print("closed after %d s" % round(time.monotonic() - t0))
    elif mode == "flood":
        idle = [connect(port) for _ in range(int(sys.argv[3]))]
        time.sleep(0.5)  # the server accepts them all before the extra one arrives
        extra = connect(port)
        extra.settimeout(10)
        try:
            got = extra.recv(4096)
            print("extra: " + ("EOF" if not got else "data"))
        except ConnectionResetError:
            print("extra: EOF")
        except socket.timeout:
            print("extra: held")
        for s in idle:
            s.close()
        time.sleep(0.5)
        s = connect(port)
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        print("after: " + status_of(s))
    else:
        sys.exit("unknown mode " + mode)


main()
