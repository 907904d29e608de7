#!/usr/bin/env python3
"""layout-from-layer.py: wraps one gzip layer file in a one-image OCI layout, for the
benchmarks (no Docker, no whole-layer reads: the layer is hashed in 1 MiB chunks).

Usage: layout-from-layer.py LAYER_TAR_GZ LAYOUT_DIR TAG
The image: amd64/linux, Cmd ["/bin/sh"], the layer copied into the layout's blobs."""
import gzip
import hashlib
import json
import os
import shutil
import sys


def sha256_of(path, opener=open):
    h = hashlib.sha256()
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    layer, lay, tag = sys.argv[1:4]
    blobs = os.path.join(lay, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    dig, diff = sha256_of(layer), sha256_of(layer, gzip.open)
    shutil.copyfile(layer, os.path.join(blobs, dig))
    config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}}).encode())
    manifest = put(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + dig,
                    "size": os.path.getsize(layer)}]}).encode())
    index = {"schemaVersion": 2, "manifests": [dict(manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
                                                    annotations={"org.opencontainers.image.ref.name": tag})]}
    with open(os.path.join(lay, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(lay, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


if __name__ == "__main__":
    main()
