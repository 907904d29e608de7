#!/usr/bin/env bash
# test_verify_image: `enclaver verify IMAGE --key KEY` and `enclaver run --verify-key KEY` against
# release images that `enclaver build --push --sign-key` signed in a real registry (Debian's
# docker-registry on 127.0.0.1): the signature by the key for this digest and this repository,
# then the EIF of that digest read whole. Each way a check fails: another key, no signature, a
# signature copied over from another digest or another repository, a tag moved to an unsigned
# image, a signed image whose EIF was changed; and run launches nothing when verify would refuse.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

require_tools docker-registry
RUNL=$(dirname "$ENCLAVER")/../helpers/enclaver-local
[ -x "$RUNL" ] || { not_ok "the enclaver-local helper is built"; done_testing; exit 1; }

KB=$TMP/kb
make_kernel_bundle "$KB" # before HOME moves: the kernel package is cached under the real one
make_app_image "$TMP/app" v1
registry_start
registry_env
export SOURCE_DATE_EPOCH=1700000000 ENCLAVER_STATE_DIR=$TMP/state ENCLAVER_LOCAL_ODYN=$ODYN
unset ENCLAVER_KERNEL_BUNDLE ENCLAVER_ODYN ENCLAVER_LOCAL_MANIFEST ENCLAVER_LOCAL_DIR
export TMPDIR=$TMP/tmp # so the test sees what verify and run leave behind
mkdir -p "$TMPDIR"

K=$TMP/keys
mkdir -p "$K"
for k in key other; do
	openssl ecparam -name prime256v1 -genkey -noout -out "$K/$k.pem" 2>/dev/null
	openssl ec -in "$K/$k.pem" -pubout -out "$K/$k.pub" 2>/dev/null
done
openssl req -x509 -key "$K/key.pem" -subj /CN=signer -days 2 -out "$K/key.crt" 2>/dev/null
echo "not a key" >"$K/junk.pem"
not() { ! "$@"; }
V=("$ENCLAVER" verify -q --insecure)
# field FILE EXPR: a value of the report (json_get), "None" for null.
field() { json_get "$1" "$2"; }

# forge_statement SRC_REPO SRC_HEX DST_REPO DST_HEX [PYTHON]: the statement attached to
# SRC_REPO@sha256:SRC_HEX, its subject changed to DST_HEX (and PYTHON run on it as `st`), signed
# anew with key.pem (DSSE: ECDSA over PAE) and attached at DST_REPO's sha256-DST_HEX.att: what the
# key's holder could sign, for the checks after the statement's.
forge_statement() {
	python3 - "$R" "$1" "$2" "$3" "$4" "$K/key.pem" "$TMP/forged" "${5:-pass}" <<'PY' &&
import base64, hashlib, json, os, subprocess, sys, urllib.request
reg, src, shex, dst, dhex, key, lay, edit = sys.argv[1:]
def get(path, accept=None):
    req = urllib.request.Request("http://" + reg + "/v2/" + path)
    if accept: req.add_header("Accept", accept)
    return urllib.request.urlopen(req).read()
repo = lambda r: r.split("/", 1)[1]
man = json.loads(get(repo(src) + "/manifests/sha256-" + shex + ".att", "application/vnd.oci.image.manifest.v1+json"))
layer = man["layers"][0]
env = json.loads(get(repo(src) + "/blobs/" + layer["digest"]))
st = json.loads(base64.b64decode(env["payload"]))
st["subject"][0]["name"] = dst
st["subject"][0]["digest"]["sha256"] = dhex
exec(edit)
payload = json.dumps(st, separators=(",", ":"), sort_keys=True).encode()
pt = env["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(pt), pt, len(payload), payload)
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=pae, capture_output=True, check=True).stdout
new = json.dumps({"payloadType": env["payloadType"], "payload": base64.b64encode(payload).decode(),
                  "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}, separators=(",", ":")).encode()
blobs = os.path.join(lay, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return "sha256:" + d
cfg = json.dumps({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [put(new)]}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                "layers": [{"mediaType": layer["mediaType"], "digest": put(new), "size": len(new),
                            "annotations": layer.get("annotations", {})}]}).encode()
open(os.path.join(lay, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": put(m), "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "att"}}]},
          open(os.path.join(lay, "index.json"), "w"))
PY
	"$ENCLAVER" push -q --insecure "oci:$TMP/forged:att" "docker://$3:sha256-$4.att" >/dev/null
	rm -rf "$TMP/forged"
}

# ---------------------------------------------------------------- a signed release image
printf 'version: v1\nname: hello\ntarget: %s/hello/app:enclave\nsources:\n  app: oci:%s/app:v1\n' \
	"$R" "$TMP" >"$TMP/enclaver.yaml"
B=("$ENCLAVER" build -q --kernel-bundle "$KB" --tls-verify=false -f "$TMP/enclaver.yaml")
"${B[@]}" --push --sign-key "$K/key.pem" >"$TMP/build.json" 2>"$TMP/build.err"
check "build --push --sign-key" test $? -eq 0
BD=$(json_get "$TMP/build.json" 'd["Image"]["Written"][0]["Digest"]')
HEX=${BD#sha256:}

"${V[@]}" "$R/hello/app:enclave" --key "$K/key.pub" >"$TMP/v.json" 2>"$TMP/v.err"
check "verify with the public key exits 0" test $? -eq 0
check "... Valid, every check passed, no problem" test \
	"$(field "$TMP/v.json" '[d["Valid"], d["Checks"]["Signature"], d["Checks"]["Statement"], d["Checks"]["EIF"], d["Problem"]]')" = \
	"[True, True, True, True, None]"
# (enclaver-run is among them when the build has the static runtime to put in the image)
check "... the signed statement names this digest and the build's inputs" test \
	"$(field "$TMP/v.json" 'd["Statement"]["Subject"] + " " + ",".join(x["Name"] for x in d["Statement"]["Dependencies"] if x["Name"] != "enclaver-run") + " " + str(d["Statement"]["SourceDateEpoch"])')" = \
	"$BD app,odyn,kernel-bundle,enclaver.yaml 1700000000"
check "... and the build's PCRs" test "$(field "$TMP/v.json" 'd["Statement"]["Measurements"]')" = "$(field "$TMP/build.json" 'd["Measurements"]')"
check "... the digest is the one the build pushed" test "$(field "$TMP/v.json" 'd["Digest"]')" = "$BD"
check "... the signature was found at the cosign tag, for this repository" test \
	"$(field "$TMP/v.json" 'd["Signature"]["Ref"] + " " + d["Signature"]["Identity"] + " " + str(d["Signature"]["Payloads"])')" = \
	"docker://$R/hello/app:sha256-$HEX.sig $R/hello/app 1"
check "... the EIF's measurements are the build's" test \
	"$(field "$TMP/v.json" 'd["Measurements"]')" = "$(field "$TMP/build.json" 'd["Measurements"]')"
check "... nothing on stderr" test ! -s "$TMP/v.err"
check "verify by digest" "${V[@]}" "docker://$R/hello/app@$BD" --key "$K/key.pub"
check "verify with the signer's certificate" "${V[@]}" "$R/hello/app:enclave" --key "$K/key.crt"
check "verify with the private key's public half" "${V[@]}" "$R/hello/app:enclave" --key "$K/key.pem"
# A KMS key ARN: its public half from GetPublicKey (tests/cli/kms_test_server.py holds key.pem and
# checks each request's SigV4 signature).
mkdir -p "$TMP/kms"
python3 "$ROOT/tests/cli/kms_test_server.py" sign "$TMP/kms/port" "$TMP/kms/log" "$K/key.pem" "$TMP/kms/mode" &
bg_track $!
wait_for test -s "$TMP/kms/port"
check "verify with a KMS key ARN" env AWS_ACCESS_KEY_ID=AKIDTESTP7 AWS_SECRET_ACCESS_KEY=secret-P7 AWS_SESSION_TOKEN= \
	AWS_ENDPOINT_URL_KMS="http://127.0.0.1:$(cat "$TMP/kms/port")" \
	"${V[@]}" "$R/hello/app:enclave" --key arn:aws:kms:us-test-1:111122223333:key/test-sign
check "... through GetPublicKey alone, SigV4-signed" test \
	"$(grep -c 'GetPublicKey' "$TMP/kms/log") $(grep -c 'kms Sign' "$TMP/kms/log") $(grep -c REJECTED "$TMP/kms/log")" = "1 0 0"

# A PKCS#11 URI: the token's public object, read without its PIN (release only: ASan refuses the
# provider's RTLD_DEEPBIND dlopen, as in test_eif_sign_keys.sh).
PIN=pin-v3r1fy
if [ "${VARIANT:-release}" = asan ]; then
	echo "# skip: PKCS#11 public keys under ASan (it refuses the provider's RTLD_DEEPBIND dlopen)"
elif ! softhsm_key "$TMP/p11" verify-img "$PIN" prime256v1; then
	not_ok "PKCS#11: pkcs11-provider, softhsm2 and opensc are installed (scripts/install-deps.sh)"
else
	"$ENCLAVER" copy -q --insecure "docker://$R/hello/app:enclave" "docker://$R/p11/app:v1" >/dev/null
	P11=(env PKCS11_PROVIDER_MODULE="$SOFTHSM")
	"${P11[@]}" ENCLAVER_PKCS11_PIN="$PIN" "$ENCLAVER" sign -q --insecure "$R/p11/app:v1" \
		--key "pkcs11:token=verify-img;object=signer;type=private" >/dev/null
	"$ENCLAVER" copy -q --insecure "docker://$R/hello/app:sha256-$HEX.att" "docker://$R/p11/app:sha256-$HEX.att" >/dev/null
	"${P11[@]}" "${V[@]}" "$R/p11/app:v1" --key "pkcs11:token=verify-img;object=signer" >"$TMP/p11.json" 2>"$TMP/p11.err"
	check "verify with a PKCS#11 URI, no PIN: the signature holds" test \
		"$(field "$TMP/p11.json" 'd["Checks"]["Signature"]')" = True
	check_fails "... a URI naming no key is refused" "no public key in any token|no PKCS#11 token" \
		"${P11[@]}" "${V[@]}" "$R/p11/app:v1" --key "pkcs11:token=verify-img;object=nothing"
fi

# ---------------------------------------------------------------- each way it fails
# verify_fails NAME PATTERN FAILED_CHECK ARGS...: exit 1, a report with Valid false, the check
# that failed and the problem (PATTERN) in it, and the problem on stderr.
verify_fails() {
	local name=$1 pattern=$2 what=$3
	shift 3
	"${V[@]}" "$@" >"$TMP/f.json" 2>"$TMP/f.err"
	local rc=$?
	local got
	got=$(field "$TMP/f.json" "[d['Valid'], d['Checks']['$what']]" 2>&1)
	if [ $rc -ne 1 ]; then
		not_ok "$name" "exit $rc, not 1" "$(cat "$TMP/f.err")"
	elif [ "$got" != "[False, False]" ]; then
		not_ok "$name" "Valid and $what: $got" "$(cat "$TMP/f.json")"
	elif ! field "$TMP/f.json" 'd["Problem"]' | grep -Eq -- "$pattern"; then
		not_ok "$name" "the problem lacks /$pattern/" "$(cat "$TMP/f.json")"
	elif ! grep -Eq -- "is not verified: .*($pattern)" "$TMP/f.err"; then
		not_ok "$name" "stderr lacks the problem" "$(cat "$TMP/f.err")"
	else
		ok "$name"
	fi
}
verify_fails "another key: refused" "no signature there verifies with the key" Signature "$R/hello/app:enclave" --key "$K/other.pub"
check "... and the image is not even read: no measurements" test "$(field "$TMP/f.json" 'd["Measurements"]')" = None

# The same image in another repository: no signature there; the first repository's copied
# next to it is the key's, but for the other repository.
"$ENCLAVER" copy -q --insecure "docker://$R/hello/app:enclave" "docker://$R/hello/copy:v1" >/dev/null
verify_fails "no signature: refused" "no signature: the registry has no docker://$R/hello/copy:sha256-$HEX.sig" \
	Signature "$R/hello/copy:v1" --key "$K/key.pub"
"$ENCLAVER" copy -q --insecure "docker://$R/hello/app:sha256-$HEX.sig" "docker://$R/hello/copy:sha256-$HEX.sig" >/dev/null
verify_fails "a signature for another repository: refused" "signed this digest as $R/hello/app, not as $R/hello/copy" \
	Signature "$R/hello/copy:v1" --key "$K/key.pub"

# Another image whose signature tag holds the signed image's signature.
"$ENCLAVER" push -q --insecure "oci:$TMP/app:v1" "docker://$R/hello/app:other" >/dev/null
OD=$("$ENCLAVER" inspect --insecure "docker://$R/hello/app:other" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
"$ENCLAVER" copy -q --insecure "docker://$R/hello/app:sha256-$HEX.sig" "docker://$R/hello/app:sha256-${OD#sha256:}.sig" >/dev/null
verify_fails "a signature over another digest: refused" "the key signed $BD, not this image's $OD" \
	Signature "$R/hello/app:other" --key "$K/key.pub"

# A tag moved to an unsigned image.
"${B[@]}" --push="$R/hello/moved:v1" --sign-key "$K/key.pem" >/dev/null 2>&1
check "a second signed image verifies" "${V[@]}" "$R/hello/moved:v1" --key "$K/key.pub"
SOURCE_DATE_EPOCH=1700000001 "${B[@]}" --push="$R/hello/moved:v1" >"$TMP/moved.json" 2>/dev/null
verify_fails "its tag moved to an unsigned image: refused" "no signature" Signature "$R/hello/moved:v1" --key "$K/key.pub"
check "... the report names the new digest" test "$(field "$TMP/f.json" 'd["Digest"]')" = \
	"$(json_get "$TMP/moved.json" 'd["Image"]["Written"][0]["Digest"]')"

# A signed image whose EIF was changed before it was signed (one byte of a ramdisk): the
# signature holds, the EIF does not read whole.
"${B[@]}" --output "oci:$TMP/rel:enclave" >/dev/null 2>&1
release_eif "$TMP/rel" enclave "$TMP/relx"
python3 - "$TMP/relx/enclave/application.eif" "$TMP/bad.eif" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[len(data) - 100] ^= 0x01
open(sys.argv[2], "wb").write(data)
PY
# (a layer on top holding the changed EIF, written by python: Debian's umoci insert writes a tar
# without its padding and end blocks)
python3 - "$TMP/rel" enclave tampered "$TMP/bad.eif" <<'PY'
import hashlib, io, json, os, sys, tarfile
lay, tag, new_tag, eif = sys.argv[1:]
blobs = os.path.join(lay, "blobs", "sha256")
def read(d): return open(os.path.join(blobs, d[7:]), "rb").read()
def put(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d[7:]), "wb").write(data)
    return d
index = json.load(open(os.path.join(lay, "index.json")))
desc = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag][0]
man = json.loads(read(desc["digest"]))
cfg = json.loads(read(man["config"]["digest"]))
out = io.BytesIO()
with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
    t.add(eif, arcname="enclave/application.eif")
layer = out.getvalue()
ld = put(layer)
man["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)})
cfg["rootfs"]["diff_ids"].append(ld)
c = json.dumps(cfg).encode()
man["config"] = {"mediaType": man["config"]["mediaType"], "digest": put(c), "size": len(c)}
m = json.dumps(man).encode()
index["manifests"].append({"mediaType": desc["mediaType"], "digest": put(m), "size": len(m),
                           "annotations": {"org.opencontainers.image.ref.name": new_tag}})
json.dump(index, open(os.path.join(lay, "index.json"), "w"))
PY
"$ENCLAVER" push -q --insecure "oci:$TMP/rel:tampered" "docker://$R/hello/tampered:v1" >/dev/null
"$ENCLAVER" sign -q --insecure "$R/hello/tampered:v1" --key "$K/key.pem" >/dev/null
TD=$("$ENCLAVER" inspect --insecure "docker://$R/hello/tampered:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
verify_fails "a signed image with a changed EIF and no statement: refused" "has no attestation" Statement \
	"$R/hello/tampered:v1" --key "$K/key.pub"
check "... its signature held" test "$(field "$TMP/f.json" 'd["Checks"]["Signature"]')" = True
# The original image's statement copied beside it: it names another digest.
"$ENCLAVER" copy -q --insecure "docker://$R/hello/app:sha256-$HEX.att" "docker://$R/hello/tampered:sha256-${TD#sha256:}.att" >/dev/null
verify_fails "... with the statement of another image: refused" "its subject is $BD, not this image \\($TD\\)" Statement \
	"$R/hello/tampered:v1" --key "$K/key.pub"
# The key's holder signs a statement for it that records the original build: the PCRs are checked.
forge_statement "$R/hello/app" "$HEX" "$R/hello/tampered" "${TD#sha256:}"
verify_fails "... with a signed statement of other PCRs: the EIF is refused" "CRC" EIF "$R/hello/tampered:v1" --key "$K/key.pub"
check "... its signature and statement held" test "$(field "$TMP/f.json" '[d["Checks"]["Signature"], d["Checks"]["Statement"]]')" = "[True, True]"
# A valid EIF other than the statement's (another SOURCE_DATE_EPOCH), signed, with such a statement.
"$ENCLAVER" copy -q --insecure "docker://$R/hello/moved:v1" "docker://$R/hello/other:v1" >/dev/null
"$ENCLAVER" sign -q --insecure "$R/hello/other:v1" --key "$K/key.pem" >/dev/null
MD=$(json_get "$TMP/moved.json" 'd["Image"]["Written"][0]["Digest"]')
forge_statement "$R/hello/app" "$HEX" "$R/hello/other" "${MD#sha256:}"
verify_fails "a signed image whose EIF has other PCRs than its signed statement: refused" \
	"the EIF's PCRs are not the statement's: PCR0: expected [0-9a-f]{96}, the EIF has" EIF "$R/hello/other:v1" --key "$K/key.pub"

# ---------------------------------------------------------------- --rebuild
# The build the statement records, done again: the same EIF, byte for byte, whatever this shell's
# SOURCE_DATE_EPOCH (the recorded one is used).
RB=("${V[@]}" --rebuild --kernel-bundle "$KB")
SOURCE_DATE_EPOCH=1 "${RB[@]}" "$R/hello/app:enclave" --key "$K/key.pub" >"$TMP/rb.json" 2>"$TMP/rb.err"
check "verify --rebuild: the rebuilt EIF is identical" test $? -eq 0 -a \
	"$(field "$TMP/rb.json" '[d["Checks"]["Rebuild"], d["Rebuild"]["Identical"], d["Rebuild"]["Difference"]]')" = "[True, True, None]"
check "... its SHA-384 and PCRs are the statement's" test \
	"$(field "$TMP/rb.json" '[d["Rebuild"]["EIF"]["sha384"] == d["Statement"]["EIF"]["sha384"], d["Rebuild"]["Measurements"] == d["Statement"]["Measurements"]]')" = "[True, True]"
check "... and no temporary files are left" test -z "$(ls -A "$TMPDIR")"
# Another kernel bundle (one byte of its cmdline): the first difference is that input.
cp -a "$KB" "$TMP/kb2"
printf ' quiet' >>"$TMP/kb2/cmdline"
RBK=("${V[@]}" --rebuild --kernel-bundle "$TMP/kb2")
"${RB[@]}" "$R/hello/app:enclave" --key "$K/other.pub" >"$TMP/rbf.json" 2>/dev/null
check "verify --rebuild with another key: no rebuild, and the report says so" test \
	"$(field "$TMP/rbf.json" '[d["Checks"]["Signature"], d["Checks"]["Rebuild"], d["Rebuild"]]')" = "[False, None, None]"
verify_fails "verify --rebuild with another kernel bundle: the input is named" \
	"input kernel-bundle: the rebuild used sha256:[0-9a-f]{64}, the statement records" Rebuild "$R/hello/app:enclave" --key "$K/key.pub" \
	--rebuild --kernel-bundle "$TMP/kb2"
# Another odyn.
cp "$ODYN" "$TMP/odyn2" && printf 'x' >>"$TMP/odyn2"
verify_fails "verify --rebuild with another odyn: the input is named" "input odyn: .*give --odyn the recorded binary" Rebuild \
	"$R/hello/app:enclave" --key "$K/key.pub" --rebuild --kernel-bundle "$KB" --odyn "$TMP/odyn2"
# A statement (signed by the key, same digest) that records another SOURCE_DATE_EPOCH: the rebuild
# follows the record, and its PCRs are not the image's.
"$ENCLAVER" copy -q --insecure "docker://$R/hello/app:enclave" "docker://$R/hello/sde:v1" >/dev/null
"$ENCLAVER" sign -q --insecure "$R/hello/sde:v1" --key "$K/key.pem" >/dev/null
forge_statement "$R/hello/app" "$HEX" "$R/hello/sde" "$HEX" \
	'st["predicate"]["buildDefinition"]["internalParameters"]["SOURCE_DATE_EPOCH"] = 1700000001'
verify_fails "verify --rebuild of a record that does not give this EIF: the PCRs are named" \
	"the rebuilt EIF's PCRs differ: PCR0: expected [0-9a-f]{96}, the EIF has" Rebuild "$R/hello/sde:v1" --key "$K/key.pub" \
	--rebuild --kernel-bundle "$KB"
# A record whose inputs the rebuild meets and whose PCRs it gives, but not its bytes: a kernel
# bundle whose config names another OS (the EIF's metadata section says so; no PCR covers it),
# recorded as the input. The first differing byte is named, in the metadata section.
cp -a "$KB" "$TMP/kb3"
KCFG=$(ls "$TMP/kb3"/bzImage.config "$TMP/kb3"/config 2>/dev/null | head -n 1)
sed -i '3s/Linux/Lunix/' "$KCFG"
"${V[@]}" --rebuild --kernel-bundle "$TMP/kb3" "$R/hello/app:enclave" --key "$K/key.pub" >"$TMP/kb3.json" 2>/dev/null
KB3=$(field "$TMP/kb3.json" 'd["Problem"].split("the rebuild used sha256:")[1][:64]')
"$ENCLAVER" copy -q --insecure "docker://$R/hello/app:enclave" "docker://$R/hello/meta:v1" >/dev/null
"$ENCLAVER" sign -q --insecure "$R/hello/meta:v1" --key "$K/key.pem" >/dev/null
forge_statement "$R/hello/app" "$HEX" "$R/hello/meta" "$HEX" \
	'[d["digest"].update(sha256="'"$KB3"'") for d in st["predicate"]["buildDefinition"]["resolvedDependencies"] if d["name"] == "kernel-bundle"]'
verify_fails "verify --rebuild that gives the PCRs but not the bytes: the first byte is named, with its section" \
	"the EIF's bytes differ first at offset [0-9]+, in section [0-9]+ \\(metadata\\)" Rebuild "$R/hello/meta:v1" --key "$K/key.pub" \
	--rebuild --kernel-bundle "$TMP/kb3"
check "... the rebuilt PCRs are the statement's" test "$(field "$TMP/f.json" 'd["Rebuild"]["Measurements"] == d["Statement"]["Measurements"]')" = True
check_fails "--kernel-bundle without --rebuild is a usage error" "for --rebuild" \
	"${V[@]}" "$R/hello/app:enclave" --key "$K/key.pub" --kernel-bundle "$KB"

# ---------------------------------------------------------------- bad input
check_fails "--key is required" "--key" "${V[@]}" "$R/hello/app:enclave"
check_fails "a missing key file is named" "$K/nope.pub" "${V[@]}" "$R/hello/app:enclave" --key "$K/nope.pub"
check_fails "a file that is no key is refused" "$K/junk.pem" "${V[@]}" "$R/hello/app:enclave" --key "$K/junk.pem"
check_fails "a local layout has no registry signature" "signatures live in a registry" \
	"${V[@]}" "oci:$TMP/rel:enclave" --key "$K/key.pub"
check_fails "an image that is not there" "not found|404" "${V[@]}" "$R/hello/none:v1" --key "$K/key.pub"

# ---------------------------------------------------------------- run --verify-key
# The test-only local launcher runs ENCLAVER_LOCAL_CMD as the app under the real odyn: nothing
# boots, but whatever starts the enclave is what this checks.
RUN=("$RUNL" run --launcher local --insecure)
ENCLAVER_LOCAL_CMD="echo verified-run" timeout -k 10 300 "${RUN[@]}" -v --verify-key "$K/key.pub" \
	--verify-before-run "$TMP/build.json" "$R/hello/app:enclave" >"$TMP/run.out" 2>"$TMP/run.err"
check "run --verify-key with the signer's key runs the app" test $? -eq 0 -a "$(cat "$TMP/run.out")" = "[app] verified-run"
check "... and says what it verified" grep -q -- "--verify-key: $R/hello/app:enclave is $BD, signed by the key" "$TMP/run.err"
# run_refused NAME PATTERN ARGS...: exit 108 (a run's fatal error), the problem on stderr, and
# the app never started.
run_refused() {
	local name=$1 pattern=$2
	shift 2
	rm -f "$TMP/launched"
	ENCLAVER_LOCAL_CMD="touch $TMP/launched" timeout -k 10 300 "${RUN[@]}" "$@" >"$TMP/r.out" 2>"$TMP/r.err"
	local rc=$?
	if [ $rc -ne 108 ]; then
		not_ok "$name" "exit $rc, not 108" "$(cat "$TMP/r.err")"
	elif ! grep -Eq -- "$pattern" "$TMP/r.err"; then
		not_ok "$name" "stderr lacks /$pattern/" "$(cat "$TMP/r.err")"
	elif [ -e "$TMP/launched" ]; then
		not_ok "$name" "the app was started"
	else
		ok "$name"
	fi
}
run_refused "run --verify-key with another key: nothing launched" "is not verified: no signature there verifies with the key" \
	--verify-key "$K/other.pub" "$R/hello/app:enclave"
run_refused "run --verify-key on a moved tag: nothing launched" "is not verified: no signature" \
	--verify-key "$K/key.pub" "$R/hello/moved:v1"
run_refused "run --verify-key on a signed image with a changed EIF: nothing launched" "is not verified: .*CRC" \
	--verify-key "$K/key.pub" "$R/hello/tampered:v1"
run_refused "run --verify-key on a signed image whose EIF is not its statement's: nothing launched" \
	"is not verified: the EIF's PCRs are not the statement's" --verify-key "$K/key.pub" "$R/hello/other:v1"
run_refused "run --verify-key with a missing key file: nothing launched" "--verify-key: .*$K/nope.pub" \
	--verify-key "$K/nope.pub" "$R/hello/app:enclave"
check_fails "run --verify-key wants an image, not --eif" "--verify-key checks a release image" \
	"${RUN[@]}" --verify-key "$K/key.pub" --eif "$TMP/bad.eif" --manifest "$TMP/enclaver.yaml"
ln -s "$ENCLAVER" "$TMP/enclaver-run"
check_fails "the release image's enclaver-run has no --verify-key" "--verify-key checks a registry" \
	"$TMP/enclaver-run" --verify-key "$K/key.pub"
check "no temporary files are left" test -z "$(ls -A "$TMPDIR")"

done_testing
