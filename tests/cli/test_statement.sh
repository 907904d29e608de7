#!/usr/bin/env bash
# test_statement: the build's in-toto statement (SLSA provenance v1 in a DSSE envelope) against a
# real registry (Debian's docker-registry on 127.0.0.1, started and stopped here):
# - `build --eif-only` writes FILE.intoto.jsonl beside the EIF (unsigned without a key, signed
#   with --sign-key), byte-identical on a rebuild; its fields are the build's own;
# - `build --push` attaches it as cosign does (sha256-<hex>.att, the DSSE layer and annotations),
#   keeping the attestations already there; the signature verifies with openssl over the PAE;
# - the OCI 1.1 referrer: distribution 2.8 has no referrers API (404), so the build says so and
#   pushes none; through tests/cli/fault_proxy.py `referrers` (which answers only the referrers
#   query, everything else going to the real registry) the referrer is pushed, and the registry
#   then holds it with its subject;
# - a registry refusing the attestation upload: exit 1, "NOT ATTESTED", the image is there;
# - `verify-attestation DOC --image IMAGE --key PUB`: the statement's PCRs against a document of
#   the test PKI; refused with another key, for an unsigned statement, a tampered envelope, a
#   statement of another image, an image with none.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

require_tools docker-registry umoci openssl curl

REG=$TMP/reg
mkdir -p "$REG"
PROXY_PID=
stop_proxy() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
}
KMS_PID=
trap '[ -n "$KMS_PID" ] && kill "$KMS_PID" 2>/dev/null; stop_proxy; "$ROOT/scripts/test-registry.sh" stop "$REG"; rm -rf "$TMP"' EXIT
PORT=$("$ROOT/scripts/test-registry.sh" start "$REG" plain) || { not_ok "registry starts"; done_testing; exit 1; }
R=127.0.0.1:$PORT
export ENCLAVER_CACHE_DIR=$TMP/cache
export HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config
unset REGISTRY_AUTH_FILE DOCKER_CONFIG ENCLAVER_KERNEL_BUNDLE ENCLAVER_ODYN
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
export SOURCE_DATE_EPOCH=1700000000
not() { ! "$@"; }
tags() { curl -s "http://$R/v2/$1/tags/list"; }

# proxy MODE: tests/cli/fault_proxy.py in front of the registry; sets PR.
proxy() {
	stop_proxy
	rm -f "$TMP/proxy.port"
	python3 "$ROOT/tests/cli/fault_proxy.py" "$TMP/proxy.port" "$PORT" "$1" "$TMP/proxy.log" &
	PROXY_PID=$!
	for _ in $(seq 1 100); do [ -s "$TMP/proxy.port" ] && break; sleep 0.05; done
	PR=127.0.0.1:$(cat "$TMP/proxy.port")
}

K=$TMP/keys
mkdir -p "$K"
for kc in key:prime256v1 p384:secp384r1 other:prime256v1; do
	openssl ecparam -name "${kc#*:}" -genkey -noout -out "$K/${kc%%:*}.pem" 2>/dev/null
	openssl ec -in "$K/${kc%%:*}.pem" -pubout -out "$K/${kc%%:*}.pub" 2>/dev/null
done

KB=$TMP/kb
make_kernel_bundle "$KB"
make_app_image "$TMP/app" v1
yaml() { # yaml FILE TARGET
	printf 'version: v1\nname: hello\ntarget: %s\nsources:\n  app: oci:%s/app:v1\n' "$2" "$TMP" >"$1"
}
yaml "$TMP/enclaver.yaml" "$R/hello/app:enclave"
B=("$ENCLAVER" build -q --kernel-bundle "$KB" --tls-verify=false)

# check_envelope FILE PUB HASH [N]: the Nth (default first) envelope line of FILE is a DSSE
# envelope of an in-toto statement whose signature verifies by openssl over its PAE.
check_envelope() {
	python3 - "$1" "$TMP/pae" "$TMP/sig" "${4:-1}" <<'PY' || return 1
import base64, json, sys
env = json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[4]) - 1])
assert env["payloadType"] == "application/vnd.in-toto+json", env["payloadType"]
payload = base64.b64decode(env["payload"])
t = env["payloadType"].encode()
open(sys.argv[2], "wb").write(b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload))
assert len(env["signatures"]) == 1, env["signatures"]
open(sys.argv[3], "wb").write(base64.b64decode(env["signatures"][0]["sig"]))
PY
	openssl dgst "-$3" -verify "$2" -signature "$TMP/sig" "$TMP/pae" >/dev/null
}
# statement FILE [N]: the statement inside the Nth envelope line of FILE, to stdout.
statement() {
	python3 -c 'import base64,json,sys; print(base64.b64decode(json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2])-1])["payload"]).decode())' "$1" "${2:-1}"
}

# ---------------------------------------------------------------- --eif-only
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/a.eif" >"$TMP/a.json" 2>"$TMP/a.err"
check "build --eif-only exits 0" test $? -eq 0
S=$TMP/a.eif.intoto.jsonl
check "the statement is written beside the EIF" test -s "$S"
check "one envelope, one line" test "$(wc -l <"$S")" -eq 1
check "no temporary file is left" test -z "$(ls "$TMP" | grep -v '^a\.eif' | grep '^a\.eif')"
check "the report names it, unsigned" test "$(json_get "$TMP/a.json" 'd["Image"]["Statement"]["Path"], d["Image"]["Statement"]["Signed"]')" = "$S False"
check "unsigned: the envelope has no signatures" test "$(json_get "$S" 'd["signatures"]')" = "[]"
statement "$S" >"$TMP/a.stmt"
EIF_SHA=$(sha256sum "$TMP/a.eif" | cut -d' ' -f1)
EIF_SHA384=$(sha384sum "$TMP/a.eif" | cut -d' ' -f1)
check "subject: the EIF by name and SHA-256" test "$(json_get "$TMP/a.stmt" 'd["subject"][0]["name"], d["subject"][0]["digest"]["sha256"]')" = \
	"a.eif $EIF_SHA"
check "types: in-toto v1, SLSA provenance v1" test "$(json_get "$TMP/a.stmt" 'd["_type"], d["predicateType"]')" = \
	"https://in-toto.io/Statement/v1 https://slsa.dev/provenance/v1"
byp() { json_get "$TMP/a.stmt" "[b for b in d['predicate']['runDetails']['byproducts'] if b['name']=='application.eif'][0]$1"; }
check "byproduct: the EIF's SHA-256 and SHA-384" test "$(byp '["digest"]["sha256"]') $(byp '["digest"]["sha384"]')" = "$EIF_SHA $EIF_SHA384"
for i in 0 1 2; do
	check "byproduct: PCR$i is the build's" test "$(byp "['annotations']['pcr$i']")" = "$(json_get "$TMP/a.json" "d['Measurements']['PCR$i']")"
done
check "no PCR8 for an unsigned EIF" test "$(byp "['annotations'].get('pcr8')")" = None
dep() { json_get "$TMP/a.stmt" "[x for x in d['predicate']['buildDefinition']['resolvedDependencies'] if x['name']=='$1'][0]$2"; }
check "dependency: the app image by digest" test "$(dep app '["digest"]["sha256"]')" = "$(json_get "$TMP/a.json" 'd["Sources"]["App"]["Digest"][7:]')"
check "dependency: odyn by digest" test "$(dep odyn '["digest"]["sha256"]')" = "$(json_get "$TMP/a.json" 'd["Sources"]["Odyn"]["Digest"][7:]')"
check "dependency: enclaver.yaml's bytes" test "$(dep enclaver.yaml '["content"]')" = "$(base64 -w0 "$TMP/enclaver.yaml")"
check "dependency: enclaver.yaml's digest" test "$(dep enclaver.yaml '["digest"]["sha256"]')" = "$(sha256sum "$TMP/enclaver.yaml" | cut -d' ' -f1)"
KSHA=$(sha256sum "$KB/bzImage" | cut -d' ' -f1)
check "dependency: the kernel bundle's files" test "$(dep kernel-bundle '["annotations"]["files"]["bzImage"]')" = "sha256:$KSHA"
check "SOURCE_DATE_EPOCH recorded" test "$(json_get "$TMP/a.stmt" 'd["predicate"]["buildDefinition"]["internalParameters"]["SOURCE_DATE_EPOCH"]')" = 1700000000
cp "$S" "$TMP/a1.jsonl"
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/a.eif" >/dev/null 2>&1
check "a rebuild writes the same statement bytes" cmp "$S" "$TMP/a1.jsonl"
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/b.eif" --sign-key "$K/p384.pem" >"$TMP/b.json" 2>"$TMP/b.err"
check "--eif-only --sign-key (P-384) exits 0" test $? -eq 0
check "the report says signed" test "$(json_get "$TMP/b.json" 'd["Image"]["Statement"]["Signed"]')" = True
check "the P-384 signature verifies over the PAE (SHA-384)" check_envelope "$TMP/b.eif.intoto.jsonl" "$K/p384.pub" sha384
check "and not with another key" not check_envelope "$TMP/b.eif.intoto.jsonl" "$K/other.pub" sha384

# A key in KMS (tests/cli/kms_test_server.py checks each request's SigV4 signature and signs with
# its P-384 key): the statement is signed over the PAE's SHA-384, MessageType DIGEST.
ARN=arn:aws:kms:us-test-1:111122223333:key/test-sign
mkdir -p "$TMP/kms"
openssl ecparam -name secp384r1 -genkey -noout -out "$TMP/kms/key.pem" 2>/dev/null
openssl ec -in "$TMP/kms/key.pem" -pubout -out "$TMP/kms/key.pub" 2>/dev/null
python3 "$ROOT/tests/cli/kms_test_server.py" sign "$TMP/kms/port" "$TMP/kms/log" "$TMP/kms/key.pem" "$TMP/kms/mode" &
KMS_PID=$!
for _ in $(seq 1 200); do [ -s "$TMP/kms/port" ] && break; sleep 0.05; done
kms() { env AWS_ACCESS_KEY_ID=AKIDTESTP18 AWS_SECRET_ACCESS_KEY=secret-P18 AWS_SESSION_TOKEN= \
	AWS_ENDPOINT_URL_KMS="http://127.0.0.1:$(cat "$TMP/kms/port")" "$@"; }
kms "${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/k.eif" --sign-key "$ARN" >"$TMP/k.json" 2>"$TMP/k.err"
check "--eif-only --sign-key with a KMS key ARN exits 0" test $? -eq 0
check "KMS signed the PAE's SHA-384 (ECDSA_SHA_384, MessageType DIGEST), each request SigV4-signed" \
	test "$(grep -c 'kms Sign ECDSA_SHA_384 digest' "$TMP/kms/log") $(grep -c REJECTED "$TMP/kms/log")" = "1 0"
check "the KMS signature verifies with the KMS key's public key" check_envelope "$TMP/k.eif.intoto.jsonl" "$TMP/kms/key.pub" sha384
echo fail >"$TMP/kms/mode"
rm -f "$TMP/k.eif.intoto.jsonl"
check_fails "a KMS error fails the build, saying the statement is not written" "statement is NOT.*KMSInvalidStateException" \
	kms "${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/k.eif" --sign-key "$ARN"
check "and leaves no statement file" test ! -e "$TMP/k.eif.intoto.jsonl"
check "no AWS secret in the output" not grep -q "secret-P18" "$TMP/k.err" "$TMP/.stderr" "$TMP/k.json"
kill "$KMS_PID" 2>/dev/null
wait "$KMS_PID" 2>/dev/null
KMS_PID=

# A P-256 key made inside a SoftHSM2 token (PKCS#11; not under ASan, which refuses the provider's
# RTLD_DEEPBIND dlopen, as in test_eif_sign_keys.sh).
PIN=pin-5a7e18
if [ "${VARIANT:-release}" = asan ]; then
	echo "# skip: PKCS#11 statement signing under ASan (it refuses the provider's RTLD_DEEPBIND dlopen)"
elif ! softhsm_key "$TMP/p11" enclaver-stmt "$PIN" prime256v1; then
	not_ok "PKCS#11: pkcs11-provider, softhsm2 and opensc are installed (scripts/install-deps.sh)"
else
	env PKCS11_PROVIDER_MODULE="$SOFTHSM" ENCLAVER_PKCS11_PIN="$PIN" "${B[@]}" -f "$TMP/enclaver.yaml" \
		--eif-only "$TMP/p.eif" --sign-key "pkcs11:token=enclaver-stmt;object=signer;type=private" \
		>"$TMP/p.json" 2>"$TMP/p.err"
	check "--eif-only --sign-key with a PKCS#11 key made in the token exits 0" test $? -eq 0
	check "the token's signature verifies with its public key" check_envelope "$TMP/p.eif.intoto.jsonl" "$TMP/p11/pub.pem" sha256
	check "no PIN in the output" not grep -q "$PIN" "$TMP/p.err" "$TMP/p.json"
fi

# ---------------------------------------------------------------- --push, unsigned then signed
"${B[@]}" -f "$TMP/enclaver.yaml" --push >"$TMP/u.json" 2>"$TMP/u.err"
check "build --push without a key exits 0" test $? -eq 0
D=$(json_get "$TMP/u.json" 'd["Image"]["Written"][0]["Digest"]')
ATT="docker://$R/hello/app:sha256-${D#sha256:}.att"
check "the report: unsigned statement at the .att tag" test \
	"$(json_get "$TMP/u.json" 'd["Image"]["Written"][0]["Statement"]["Signed"], d["Image"]["Written"][0]["Statement"]["Attestation"]')" = "False $ATT"
check "the registry has no referrers API: said, no referrer" test \
	"$(json_get "$TMP/u.json" 'd["Image"]["Written"][0]["Statement"]["ReferrersAPI"], d["Image"]["Written"][0]["Statement"].get("Referrer")')" = "False None"
check "the tag is in the registry" grep -q "sha256-${D#sha256:}.att" <(tags hello/app)
manifest() { curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$R/v2/$1/manifests/$2"; }
manifest hello/app "sha256-${D#sha256:}.att" >"$TMP/att1.json"
check "one DSSE layer with cosign's annotations" test "$(json_get "$TMP/att1.json" '[(l["mediaType"], l["annotations"]) for l in d["layers"]]')" = \
	"[('application/vnd.dsse.envelope.v1+json', {'dev.cosignproject.cosign/signature': '', 'predicateType': 'https://slsa.dev/provenance/v1'})]"
"${B[@]}" -f "$TMP/enclaver.yaml" --push >/dev/null 2>&1
manifest hello/app "sha256-${D#sha256:}.att" >"$TMP/att1b.json"
check "the same unsigned statement pushed again is not added twice" test "$(json_get "$TMP/att1b.json" 'len(d["layers"])')" = 1
"$ENCLAVER" build --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --push="oci:$TMP/layout:x" >/dev/null 2>"$TMP/layout.err"
check "--push to a layout: built, no statement attached (said)" grep -q "no statement attached: oci:.* is not a registry" "$TMP/layout.err"
"${B[@]}" -f "$TMP/enclaver.yaml" --push --sign-key "$K/key.pem" >"$TMP/s.json" 2>"$TMP/s.err"
check "build --push --sign-key exits 0" test $? -eq 0
check "the same image digest (deterministic build)" test "$(json_get "$TMP/s.json" 'd["Image"]["Written"][0]["Digest"]')" = "$D"
check "the report: signed statement" test "$(json_get "$TMP/s.json" 'd["Image"]["Written"][0]["Statement"]["Signed"]')" = True
manifest hello/app "sha256-${D#sha256:}.att" >"$TMP/att2.json"
check "the earlier attestation is kept beside the new one" test "$(json_get "$TMP/att2.json" 'len(d["layers"])')" = 2
LAYER=$(json_get "$TMP/att2.json" 'd["layers"][1]["digest"]')
curl -s "http://$R/v2/hello/app/blobs/$LAYER" >"$TMP/pushed.env"
check "the pushed envelope's signature verifies over the PAE (SHA-256)" check_envelope "$TMP/pushed.env" "$K/key.pub" sha256
statement "$TMP/pushed.env" >"$TMP/s.stmt"
check "its subject is the pushed image" test "$(json_get "$TMP/s.stmt" 'd["subject"][0]["name"], d["subject"][0]["digest"]["sha256"]')" = \
	"$R/hello/app ${D#sha256:}"
check "the image signature is there too" grep -q "sha256-${D#sha256:}.sig" <(tags hello/app)

# ---------------------------------------------------------------- the referrers API
proxy referrers
yaml "$TMP/ref.yaml" "$PR/hello/ref:enclave"
"${B[@]}" -f "$TMP/ref.yaml" --push --sign-key "$K/key.pem" >"$TMP/r.json" 2>"$TMP/r.err"
check "build --push through a registry with the referrers API exits 0" test $? -eq 0
RD=$(json_get "$TMP/r.json" 'd["Image"]["Written"][0]["Statement"].get("Referrer")')
check "the report names the referrer" test "${RD:0:7}" = "sha256:"
check "the client asked the referrers API" grep -q "GET /v2/hello/ref/referrers/sha256:" "$TMP/proxy.log"
manifest hello/ref "$RD" >"$TMP/referrer.json"
check "the registry holds the referrer: artifactType and subject" test \
	"$(json_get "$TMP/referrer.json" 'd["artifactType"], d["subject"]["digest"], d["config"]["mediaType"], d["layers"][0]["mediaType"]')" = \
	"application/vnd.dsse.envelope.v1+json $(json_get "$TMP/r.json" 'd["Image"]["Written"][0]["Digest"]') application/vnd.oci.empty.v1+json application/vnd.dsse.envelope.v1+json"
check "its subject's size is the image manifest's" test "$(json_get "$TMP/referrer.json" 'd["subject"]["size"]')" = \
	"$(manifest hello/ref "$(json_get "$TMP/r.json" 'd["Image"]["Written"][0]["Digest"]')" | wc -c)"

# ---------------------------------------------------------------- a refused attestation upload
proxy refuseatt
yaml "$TMP/refused.yaml" "$PR/hello/refused:enclave"
"${B[@]}" -f "$TMP/refused.yaml" --push --sign-key "$K/key.pem" >"$TMP/x.json" 2>"$TMP/x.err"
check "a refused attestation fails the build" test $? -eq 1
check "the error says the image is pushed NOT ATTESTED" grep -q "pushed to .*NOT ATTESTED.*DENIED" "$TMP/x.err"
check "nothing on stdout" test ! -s "$TMP/x.json"
check "the image is in the registry, signed" grep -q 'enclave.*sha256-[0-9a-f]*\.sig\|sha256-[0-9a-f]*\.sig.*enclave' <(tags hello/refused)
check "without an attestation" not grep -q '\.att' <(tags hello/refused)
stop_proxy

# ---------------------------------------------------------------- verify-attestation --image
make_att=$ROOT/build/${VARIANT:-release}/tests/tools/make_attestation
P0=$(json_get "$TMP/s.json" 'd["Measurements"]["PCR0"]')
P1=$(json_get "$TMP/s.json" 'd["Measurements"]["PCR1"]')
P2=$(json_get "$TMP/s.json" 'd["Measurements"]["PCR2"]')
mkdir -p "$TMP/att" "$TMP/att-other"
"$make_att" "$TMP/att" "$P0" 00 "$P1" "$P2" || not_ok "make_attestation"
"$make_att" "$TMP/att-other" "$P0" 00 "$P1" "$(printf '%096d' 7)" || not_ok "make_attestation (other PCR2)"
VA=("$ENCLAVER" verify-attestation --root "$TMP/att/root.pem" --tls-verify=false)
"${VA[@]}" "$TMP/att/valid.cbor" --image "$R/hello/app:enclave" --key "$K/key.pub" >"$TMP/va.json" 2>"$TMP/va.err"
check "a document with the signed statement's PCRs is valid" test $? -eq 0
check "the verdict names the statement" test "$(json_get "$TMP/va.json" 'd["Statement"]["Subject"]')" = "$D"
check_fails "another PCR2 than the statement's is refused" "PCR2: expected" \
	"${VA[@]}" --root "$TMP/att-other/root.pem" "$TMP/att-other/valid.cbor" --image "$R/hello/app:enclave" --key "$K/key.pub"
check_fails "another key: no attestation verifies" "no attestation verifies with this key.*none of its 1 signature" \
	"${VA[@]}" "$TMP/att/valid.cbor" --image "$R/hello/app:enclave" --key "$K/other.pub"
check_fails "--image without --key is a usage error" "go together" \
	"${VA[@]}" "$TMP/att/valid.cbor" --image "$R/hello/app:enclave"
check_fails "an image without attestations" "has no attestation" \
	"${VA[@]}" "$TMP/att/valid.cbor" --image "$R/hello/refused:enclave" --key "$K/key.pub"

# put_att REPO DIGEST ENVELOPE_FILE: replaces REPO's .att for DIGEST by one layer holding the file.
put_att() {
	python3 - "$R" "$1" "$2" "$3" <<'PY'
import hashlib, json, sys, urllib.request
reg, repo, digest, path = sys.argv[1:5]
def put_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/blobs/uploads/", method="POST")
    loc = urllib.request.urlopen(req).headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{reg}{loc}"
    req = urllib.request.Request(loc + ("&" if "?" in loc else "?") + "digest=" + d, data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req)
    return d, len(data)
env = open(path, "rb").read()
ld, ll = put_blob(env)
cfg = json.dumps({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
cd, cl = put_blob(cfg)
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cl},
                "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": ld, "size": ll,
                            "annotations": {"dev.cosignproject.cosign/signature": "", "predicateType": "https://slsa.dev/provenance/v1"}}]}).encode()
req = urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/sha256-{digest[7:]}.att", data=m, method="PUT",
                             headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
urllib.request.urlopen(req)
PY
}
# An image of its own (another name in the manifest, so another digest) for the bad cases.
printf 'version: v1\nname: other\ntarget: %s/hello/bad:enclave\nsources:\n  app: oci:%s/app:v1\n' "$R" "$TMP" >"$TMP/bad.yaml"
"${B[@]}" -f "$TMP/bad.yaml" --push >"$TMP/bad.json" 2>/dev/null
BDG=$(json_get "$TMP/bad.json" 'd["Image"]["Written"][0]["Digest"]')
check_fails "an unsigned statement is refused as UNSIGNED" "UNSIGNED" \
	"${VA[@]}" "$TMP/att/valid.cbor" --image "$R/hello/bad:enclave" --key "$K/key.pub"
# The signed envelope of hello/app, as it is, at hello/bad's tag: a statement of another image.
put_att hello/bad "$BDG" "$TMP/pushed.env"
check_fails "a signed statement of another image is refused" "its subject is $D, not this image" \
	"${VA[@]}" "$TMP/att/valid.cbor" --image "$R/hello/bad:enclave" --key "$K/key.pub"
# The same envelope with its statement changed (PCR0 replaced), signature kept.
python3 - "$TMP/pushed.env" "$TMP/tampered.env" "$P0" <<'PY'
import base64, json, sys
env = json.loads(open(sys.argv[1]).read())
stmt = base64.b64decode(env["payload"]).decode().replace(sys.argv[3], "0" * 96)
env["payload"] = base64.b64encode(stmt.encode()).decode()
open(sys.argv[2], "w").write(json.dumps(env))
PY
put_att hello/app "$D" "$TMP/tampered.env"
check_fails "a tampered statement is refused" "none of its 1 signature.*verifies" \
	"${VA[@]}" "$TMP/att/valid.cbor" --image "$R/hello/app:enclave" --key "$K/key.pub"
printf '{"payloadType":"application/vnd.in-toto+json","payload":"e30","signatures":[]}' >"$TMP/broken.env"
put_att hello/app "$D" "$TMP/broken.env"
check_fails "a broken envelope is refused, naming the field" "payload: not base64" \
	"${VA[@]}" "$TMP/att/valid.cbor" --image "$R/hello/app:enclave" --key "$K/key.pub"

KEYLINE=$(sed -n 2p "$K/key.pem")
cat "$TMP"/*.err "$TMP/.stderr" "$TMP/.stdout" >"$TMP/all-logs" 2>/dev/null
check "no private key bytes in any output" not grep -qF "$KEYLINE" "$TMP/all-logs"

done_testing
