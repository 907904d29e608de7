#!/usr/bin/env python3
"""make_app_image.py: writes a small app image as an OCI layout without Docker
(two gzip layers from python's tarfile, a whiteout in the second), deterministically.

Usage: make_app_image.py LAYOUT_DIR [TAG [BINARY]]   (TAG defaults to "latest")
The image: /app/hello.sh (the Entrypoint), /app/data.txt, /etc/motd removed by a
whiteout in layer 2; Cmd ["world"], Env, WorkingDir /app, User 1000:1000. With BINARY
(a static executable) it is /app/hello and the Entrypoint instead: the image has no shell.
APP_CMD in the environment (a JSON list) replaces the Cmd."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1700000000


def tar_layer(entries):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid, ti.mode = MTIME, 0, 0, mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    diff = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(diff)
    return diff, gz.getvalue()


def put(blobs, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def main():
    out = sys.argv[1]
    tag = sys.argv[2] if len(sys.argv) > 2 else "latest"
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    hello = b"#!/bin/sh\necho \"hello, $1\"\n"
    binary = open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else None
    layers = [
        [("etc", "dir", None, 0o755), ("etc/motd", "file", b"welcome\n", 0o644),
         ("app", "dir", None, 0o755), ("app/hello.sh", "file", hello, 0o755)],
        [("app/data.txt", "file", b"some data\n", 0o644), ("etc/.wh.motd", "file", b"", 0o644)],
    ]
    if binary is not None:
        layers[1].append(("app/hello", "file", binary, 0o755))
    descs, diff_ids = [], []
    for entries in layers:
        diff, gz = tar_layer(entries)
        digest, size = put(blobs, gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
        diff_ids.append("sha256:" + hashlib.sha256(diff).hexdigest())
    config = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/app/hello" if binary is not None else "/app/hello.sh"], "Cmd": json.loads(os.environ.get("APP_CMD", '["world"]')), "Env": ["PATH=/usr/bin:/bin", "GREETING=hi"],
                   "WorkingDir": "/app", "User": "1000:1000"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cdigest, csize = put(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
                "layers": descs}
    mdigest, msize = put(blobs, json.dumps(manifest, sort_keys=True).encode())
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize,
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    print(mdigest)


if __name__ == "__main__":
    main()
