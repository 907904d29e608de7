#!/usr/bin/env python3
"""newc.py: an independent reader of newc cpio archives for the CLI tests.
Usage: newc.py ARCHIVE  -> one line per entry, tab-separated:
  name mode(octal) uid gid nlink mtime size ino rdevmajor:rdevminor sha256-of-data(or symlink target)
and checks the framing (magic, 4-byte padding, trailer, 512-byte total) on the way."""
import hashlib, sys

data = open(sys.argv[1], "rb").read()
off = 0
while True:
    hdr = data[off:off + 110]
    if len(hdr) < 110 or hdr[:6] != b"070701":
        sys.exit(f"bad header at offset {off}")
    f = [int(hdr[6 + 8 * i: 14 + 8 * i], 16) for i in range(13)]
    ino, mode, uid, gid, nlink, mtime, size, dmaj, dmin, rmaj, rmin, namesize, check = f
    name = data[off + 110: off + 110 + namesize - 1].decode()
    if data[off + 110 + namesize - 1] != 0:
        sys.exit(f"name not NUL-terminated at offset {off}")
    off += 110 + namesize
    off = (off + 3) & ~3
    body = data[off: off + size]
    off += size
    off = (off + 3) & ~3
    if name == "TRAILER!!!":
        break
    kind = mode & 0o170000
    extra = body.decode() if kind == 0o120000 else hashlib.sha256(body).hexdigest()[:16]
    print("\t".join(str(v) for v in (name, f"{mode:o}", uid, gid, nlink, mtime, size, ino, f"{rmaj}:{rmin}", extra)))
if len(data) % 512 != 0 or any(data[off:]):
    sys.exit("archive not zero-padded to 512 bytes")
