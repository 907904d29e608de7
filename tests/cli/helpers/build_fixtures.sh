# build_fixtures.sh: fixtures for the `enclaver build` tests (sourced after lib.sh):
# a real kernel bundle from Debian's kernel package, a sample app image and a sleeve (base)
# image written by python (no Docker), and json_get. Needs $TMP and $ROOT.

# json_get FILE EXPR: a value from a JSON file (python3 expression on `d`).
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# check_nsm_pcrs DESCRIBE_JSON LOG N...: each "app: PCRn HEX" line the test app wrote to LOG (read
# through /dev/nsm inside the enclave) equals describe-eif's PCRn.
check_nsm_pcrs() {
	local json=$1 log=$2 i want got
	shift 2
	for i in "$@"; do
		want=$(json_get "$json" "d['Measurements']['PCR$i']")
		got=$(sed -n "s/^app: PCR$i \([0-9a-f]*\)\$/\1/p" "$log")
		if [ -n "$want" ] && [ "$got" = "$want" ]; then
			ok "PCR$i from /dev/nsm inside equals describe-eif's"
		else
			not_ok "PCR$i from /dev/nsm inside equals describe-eif's" "nsm: $got" "describe-eif: $want"
		fi
	done
}

# make_custom_kernel_bundle DIR [--init FILE]: scripts/kernel-bundle-custom.sh (its kernel is cached);
# a failure ends the test.
make_custom_kernel_bundle() {
	local dir=$1
	shift
	if ! "$ROOT/scripts/kernel-bundle-custom.sh" "$@" "$dir" >"$TMP/kernel-bundle.log" 2>&1; then
		not_ok "kernel-bundle-custom.sh makes a bundle${*:+ ($*)}" "$(tail -5 "$TMP/kernel-bundle.log")"
		done_testing
		exit 1
	fi
}

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

# make_example_release DIR: the built-in example (testdata/example: hello.c, enclaver.yaml) built
# as `make example` builds it, with $KB and $ODYN, into the release image oci:DIR/release:enclave
# (a check); DIR/hello, DIR/app and DIR/enclaver.yaml are its sources.
make_example_release() {
	local d=$1
	cc -static -Os -o "$d/hello" "$ROOT/testdata/example/hello.c" 2>"$d/cc.log" ||
		not_ok "compile the example app" "$(cat "$d/cc.log")"
	make_app_image "$d/app" latest "$d/hello"
	sed "s|oci:build/example/app:latest|oci:$d/app:latest|" "$ROOT/testdata/example/enclaver.yaml" >"$d/enclaver.yaml"
	check "enclaver build of the example into a release image" "$ENCLAVER" build --odyn "$ODYN" \
		--kernel-bundle "$KB" -f "$d/enclaver.yaml" --output "oci:$d/release:enclave"
}

# build_test_env: where every build test starts: a kernel bundle in $KB, the sample app image
# as oci:$TMP/app:v1, a cache of its own, SOURCE_DATE_EPOCH set, no kernel or odyn from the
# caller's environment, temporary files under $TMPDIR=$TMP/tmp (so a test can see none are
# left), and B=(enclaver build with that bundle).
build_test_env() {
	KB=$TMP/kb
	make_kernel_bundle "$KB"
	make_app_image "$TMP/app" v1
	export ENCLAVER_CACHE_DIR=$TMP/cache SOURCE_DATE_EPOCH=1700000000
	unset ENCLAVER_KERNEL_BUNDLE ENCLAVER_ODYN
	export TMPDIR=$TMP/tmp
	mkdir -p "$TMPDIR"
	B=("$ENCLAVER" build --kernel-bundle "$KB")
}

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

# make_sleeve DIR ARCH: a two-layer base image (gzip layers made by tar) with Env, WorkingDir,
# Labels, Cmd and a history, as an OCI layout tagged v1; its files are under $TMP/sl1, $TMP/sl2.
make_sleeve() {
	mkdir -p "$TMP/sl1/etc" "$TMP/sl1/usr/bin" "$TMP/sl2/srv/www"
	printf 'sleeve base\n' >"$TMP/sl1/etc/sleeve-release"
	printf '#!/bin/sh\necho helper\n' >"$TMP/sl1/usr/bin/helper" && chmod 755 "$TMP/sl1/usr/bin/helper"
	printf '<h1>hi</h1>\n' >"$TMP/sl2/srv/www/index.html"
	for l in sl1 sl2; do
		tar -C "$TMP/$l" --sort=name --mtime=@1600000000 --owner=0 --group=0 --numeric-owner -cf - . | gzip -n >"$TMP/$l.tar.gz"
	done
	python3 - "$1" "$2" "$TMP/sl1.tar.gz" "$TMP/sl2.tar.gz" <<'PY'
import gzip, hashlib, json, os, sys
lay, arch, layers = sys.argv[1], sys.argv[2], sys.argv[3:]
blobs = os.path.join(lay, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
descs, diff_ids = [], []
for l in layers:
    data = open(l, "rb").read()
    descs.append(dict(put(data), mediaType="application/vnd.oci.image.layer.v1.tar+gzip"))
    diff_ids.append("sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest())
config = put(json.dumps({
    "created": "2020-09-13T12:26:40Z", "architecture": arch, "os": "linux",
    "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "SLEEVE=1"], "WorkingDir": "/srv/www",
               "Cmd": ["/bin/sh"], "Labels": {"org.example.sleeve": "yes"}},
    "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created": "2020-09-13T12:26:40Z", "created_by": "base layer"},
                {"created": "2020-09-13T12:26:40Z", "created_by": "ENV SLEEVE=1", "empty_layer": True},
                {"created": "2020-09-13T12:26:40Z", "created_by": "www layer"}]}).encode())
manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"), "layers": descs}).encode())
json.dump({"schemaVersion": 2, "manifests": [dict(manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
           annotations={"org.opencontainers.image.ref.name": "v1"})]}, open(os.path.join(lay, "index.json"), "w"))
open(os.path.join(lay, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
}

# softhsm_key DIR TOKEN PIN CURVE: a SoftHSM2 token of its own in DIR (SOFTHSM2_CONF is exported)
# holding an EC key pair made inside it (label "signer", never exported), its public key as
# DIR/pub.pem; SOFTHSM is set to the module for PKCS11_PROVIDER_MODULE. Returns 1 (nothing made)
# when pkcs11-provider, softhsm2 or opensc is missing, or the public key cannot be read out (this
# opensc's pkcs11-tool cannot export a P-384 public key: "cannot create EVP_PKEY").
softhsm_key() {
	local dir=$1 token=$2 pin=$3 curve=$4
	SOFTHSM=$(find /usr/lib -name libsofthsm2.so 2>/dev/null | head -n 1)
	[ -n "$(find /usr/lib -name pkcs11.so -path '*ossl-modules*' 2>/dev/null | head -n 1)" ] && [ -n "$SOFTHSM" ] &&
		command -v pkcs11-tool >/dev/null || return 1
	mkdir -p "$dir/tokens"
	export SOFTHSM2_CONF=$dir/softhsm2.conf
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/tokens" >"$SOFTHSM2_CONF"
	softhsm2-util --init-token --free --label "$token" --pin "$pin" --so-pin so-"$pin" >/dev/null 2>&1
	pkcs11-tool --module "$SOFTHSM" --token-label "$token" --login --pin "$pin" --keypairgen \
		--key-type "EC:$curve" --label signer --id 03 >/dev/null 2>&1
	pkcs11-tool --module "$SOFTHSM" --token-label "$token" --read-object --type pubkey --label signer \
		-o "$dir/pub.der" >/dev/null 2>&1
	openssl pkey -pubin -inform DER -in "$dir/pub.der" -out "$dir/pub.pem" 2>/dev/null
}
