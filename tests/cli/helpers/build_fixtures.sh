# build_fixtures.sh: fixtures for the `enclaver build` tests (sourced after lib.sh):
# a real kernel bundle from Debian's kernel package, a sample app image written by
# python (no Docker), and json_get. Needs $TMP and $ROOT.

# json_get FILE EXPR: a value from a JSON file (python3 expression on `d`).
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# make_kernel_bundle DIR: scripts/kernel-bundle-debian.sh (the .deb is cached under
# the real user's cache, before any test changes HOME).
make_kernel_bundle() {
	if ! "$ROOT/scripts/kernel-bundle-debian.sh" "$1" >"$TMP/kernel-bundle.log" 2>&1; then
		not_ok "kernel-bundle-debian.sh makes a bundle" "$(tail -5 "$TMP/kernel-bundle.log")"
		done_testing
		exit 1
	fi
}

# make_app_image DIR TAG [STATIC_BINARY]: the sample app (testdata/example/make_app_image.py).
make_app_image() { python3 "$ROOT/testdata/example/make_app_image.py" "$@" >/dev/null; }

# release_eif LAYOUT TAG OUT: extracts /enclave/application.eif of a release image in an OCI layout.
release_eif() {
	local layer
	layer=$(python3 - "$1" "$2" <<'PY'
import json, sys
root, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(root + "/index.json"))
m = [e for e in idx["manifests"] if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
man = json.load(open(root + "/blobs/sha256/" + m["digest"][7:]))
print(man["layers"][-1]["digest"][7:])
PY
	) || return 1
	mkdir -p "$3" && tar -C "$3" -xf "$1/blobs/sha256/$layer" enclave/application.eif enclave/enclaver.yaml
}

# customer_of EIF OUT: the EIF's second ramdisk section (the customer ramdisk), read
# with the header layout of eif-format.md (num_sections at 26, offsets at 28).
customer_of() {
	python3 - "$1" "$2" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack(">H", data[26:28])[0]
offs = struct.unpack(">32Q", data[28:28 + 256])[:n]
ramdisks = []
for off in offs:
    t, _flags, size = struct.unpack(">HHQ", data[off:off + 12])
    if t == 3:
        ramdisks.append(data[off + 12:off + 12 + size])
open(sys.argv[2], "wb").write(ramdisks[1])
PY
}
