#!/usr/bin/env bash
# test_sign_image: `enclaver sign` and `enclaver build --push --sign-key` write cosign-format
# signatures (simple-signing payload, sha256-<hex>.sig tag, dev.cosignproject.cosign/signature
# annotation) to a real registry (Debian's docker-registry on 127.0.0.1, started and stopped
# here). skopeo (containers/image) is the peer: Debian's skopeo fetches the signature as a
# sigstore attachment (registries.d use-sigstore-attachments), and a skopeo with sigstore
# verification enforces a policy.json sigstoreSigned requirement: it accepts the signed image
# with the right key and refuses it with another key or once the tag moves to an unsigned image.
# Debian's skopeo 1.9 ships with that verification disabled ("Debian-local change: sigstore
# disabled"), so the verifying one is the same skopeo 1.9.3 built by scripts/build-skopeo.sh from
# Debian's sources with that patch reverted (CI builds it first). The signature skopeo fetched is
# also checked here as containers/image checks it: the payload's exact fields, the manifest
# digest, the identity, and the ECDSA signature by openssl with the public key.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

require_tools docker-registry skopeo umoci

# The skopeo whose verdicts count (scripts/build-skopeo.sh --check: the system's when it verifies,
# else the one built from Debian's sources), found before HOME moves to $TMP.
VSKOPEO=$("$ROOT/scripts/build-skopeo.sh" --check 2>/dev/null) || VSKOPEO=

REG=$TMP/reg TREG=$TMP/treg
mkdir -p "$REG" "$TREG"
PROXY_PID= KMS_PID=
trap '[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null; [ -n "$KMS_PID" ] && kill "$KMS_PID" 2>/dev/null; "$ROOT/scripts/test-registry.sh" stop "$REG"; "$ROOT/scripts/test-registry.sh" stop "$TREG"; rm -rf "$TMP"' EXIT
PORT=$("$ROOT/scripts/test-registry.sh" start "$REG" plain) || { not_ok "registry starts"; done_testing; exit 1; }
R=127.0.0.1:$PORT
export ENCLAVER_CACHE_DIR=$TMP/cache
export HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config
unset REGISTRY_AUTH_FILE DOCKER_CONFIG
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"

# ---------------------------------------------------------------- fixtures
F=$TMP/fx
mkdir -p "$F/one/etc" "$F/two/etc"
echo signed >"$F/one/etc/what"
echo unsigned >"$F/two/etc/what"
L=$F/layout
umoci init --layout "$L"
umoci new --image "$L:v1"
umoci insert --image "$L:v1" "$F/one" / >/dev/null
umoci new --image "$L:v2"
umoci insert --image "$L:v2" "$F/two" / >/dev/null
K=$TMP/keys
mkdir -p "$K"
openssl ecparam -name prime256v1 -genkey -noout -out "$K/key.pem" 2>/dev/null
openssl ec -in "$K/key.pem" -pubout -out "$K/key.pub" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$K/other.pem" 2>/dev/null
openssl ec -in "$K/other.pem" -pubout -out "$K/other.pub" 2>/dev/null
echo "not a key" >"$K/junk.pem"
not() { ! "$@"; }
tags() { curl -s "http://$R/v2/$1/tags/list"; }

# registries.d: fetch sigstore attachments from the test registry; two policies: one that
# accepts anything (to fetch what is there), one that requires a signature by key.pub.
mkdir -p "$TMP/registries.d"
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$R" >"$TMP/registries.d/test.yaml"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$TMP/any.json"
policy() { # policy FILE PUBKEY
	printf '{"default":[{"type":"reject"}],"transports":{"docker":{"%s":[{"type":"sigstoreSigned","keyPath":"%s","signedIdentity":{"type":"matchRepository"}}]}}}\n' \
		"$R" "$2" >"$1"
}
policy "$TMP/policy.json" "$K/key.pub"
policy "$TMP/policy-other.json" "$K/other.pub"
SK=(skopeo --registries.d "$TMP/registries.d")
if [ -n "$VSKOPEO" ]; then
	VSK=("$VSKOPEO" --registries.d "$TMP/registries.d")
	echo "# sigstore verdicts by $VSKOPEO"
else
	VSK=()
	not_ok "a skopeo with sigstore verification (scripts/build-skopeo.sh; Debian's has it disabled)"
fi
# vcopy POLICY IMAGE DEST: the verifying skopeo copies IMAGE to the OCI layout DEST under POLICY
# (the policy judges the source; an OCI layout cannot hold the signatures, so they are not copied;
# the layers are kept as they are, so the copy's manifest is the one that was signed).
vcopy() {
	[ ${#VSK[@]} -gt 0 ] || { echo "no skopeo with sigstore verification" >&2; return 1; }
	"${VSK[@]}" --policy "$1" copy -q --remove-signatures --preserve-digests --src-tls-verify=false "docker://$2" "oci:$3"
}
# copied_digest LAYOUT: the manifest digest in an OCI layout skopeo wrote.
copied_digest() { json_get "$1/index.json" 'd["manifests"][0]["digest"]' 2>/dev/null; }

# fetch_sig IMAGE DIR: skopeo copies IMAGE with its sigstore attachments to dir:DIR.
fetch_sig() { "${SK[@]}" --policy "$TMP/any.json" copy -q --src-tls-verify=false "docker://$1" "dir:$2" >/dev/null; }
# verify_sig DIR PUBKEY IDENTITY [N]: what containers/image's sigstoreSigned checks, on the Nth
# (default first) signature skopeo stored (its "\0sigstore-json\n" form): the payload's exact field set and
# type, the digest of the manifest skopeo copied, the identity, and the signature (openssl).
verify_sig() {
	python3 - "$1" "$3" "${4:-1}" <<'PY' || return 1
import base64, hashlib, json, sys
d, ident, n = sys.argv[1], sys.argv[2], sys.argv[3]
raw = open(d + "/signature-" + n, "rb").read()
prefix = b"\x00sigstore-json\n"
assert raw.startswith(prefix), "not a sigstore signature"
sig = json.loads(raw[len(prefix):])
assert sig["mimeType"] == "application/vnd.dev.cosign.simplesigning.v1+json", sig["mimeType"]
payload = base64.b64decode(sig["payload"])
p = json.loads(payload)
assert set(p) == {"critical", "optional"}, set(p)
c = p["critical"]
assert set(c) == {"identity", "image", "type"}, set(c)
assert c["type"] == "cosign container image signature"
assert set(c["identity"]) == {"docker-reference"} and set(c["image"]) == {"docker-manifest-digest"}
manifest = open(d + "/manifest.json", "rb").read()
want = "sha256:" + hashlib.sha256(manifest).hexdigest()
assert c["image"]["docker-manifest-digest"] == want, (c["image"]["docker-manifest-digest"], want)
assert c["identity"]["docker-reference"] == ident, c["identity"]["docker-reference"]
open(d + "/payload", "wb").write(payload)
open(d + "/sig.der", "wb").write(base64.b64decode(sig["annotations"]["dev.cosignproject.cosign/signature"]))
PY
	openssl dgst -sha256 -verify "$2" -signature "$1/sig.der" "$1/payload" >/dev/null 2>&1
}

# ---------------------------------------------------------------- enclaver sign
"$ENCLAVER" push -q --insecure "oci:$L:v1" "docker://$R/x/app:v1" >"$TMP/push.json"
DIGEST=$(json_get "$TMP/push.json" 'd["digest"]')
"$ENCLAVER" sign -q --insecure "$R/x/app:v1" --key "$K/key.pem" >"$TMP/sign.json" 2>"$TMP/sign.err"
check "enclaver sign exits 0" test $? -eq 0
check "it signed the pushed manifest digest" test "$(json_get "$TMP/sign.json" 'd["digest"]')" = "$DIGEST"
check "the signature is at the cosign tag" test "$(json_get "$TMP/sign.json" 'd["signature"]')" = "docker://$R/x/app:sha256-${DIGEST#sha256:}.sig"
check "the identity is the repository, as cosign writes it" test "$(json_get "$TMP/sign.json" 'd["identity"]')" = "$R/x/app"
skopeo --insecure-policy inspect --raw --tls-verify=false "docker://$R/x/app:sha256-${DIGEST#sha256:}.sig" >"$TMP/sigman.json"
check "the signature image's layer is the simple-signing payload with the signature annotation" test \
	"$(json_get "$TMP/sigman.json" 'd["layers"][0]["mediaType"] + " " + str(len(d["layers"])) + " " + str("dev.cosignproject.cosign/signature" in d["layers"][0]["annotations"])')" = \
	"application/vnd.dev.cosign.simplesigning.v1+json 1 True"

check "skopeo fetches the signature as a sigstore attachment" fetch_sig "$R/x/app:v1" "$TMP/got"
check "skopeo stored one signature" test -s "$TMP/got/signature-1" -a ! -e "$TMP/got/signature-2"
check "the signature verifies with the public key, over the digest skopeo copied" verify_sig "$TMP/got" "$K/key.pub" "$R/x/app"
check "it does not verify with another key" not verify_sig "$TMP/got" "$K/other.pub" "$R/x/app"

# skopeo's own verdict: sigstoreSigned with keyPath (containers/image checks the ECDSA signature,
# the payload's manifest digest against what it pulls, and the identity).
check "skopeo's sigstoreSigned policy accepts the signed image" vcopy "$TMP/policy.json" "$R/x/app:v1" "$TMP/acc:v1"
check "... and the copy is the signed manifest" test "$(copied_digest "$TMP/acc")" = "$DIGEST"
check_fails "skopeo's policy with another key refuses it" "rejected.*signature verification failed" \
	vcopy "$TMP/policy-other.json" "$R/x/app:v1" "$TMP/rej:v1"
check "... and copies nothing" test ! -e "$TMP/rej/index.json"
# The signature names the repository it was made for: a policy that wants another refuses it.
printf '{"default":[{"type":"reject"}],"transports":{"docker":{"%s":[{"type":"sigstoreSigned","keyPath":"%s","signedIdentity":{"type":"exactRepository","dockerRepository":"%s/y/app"}}]}}}\n' \
	"$R" "$K/key.pub" "$R" >"$TMP/policy-ident.json"
check_fails "skopeo's policy for another identity refuses it" "rejected.*not accepted" \
	vcopy "$TMP/policy-ident.json" "$R/x/app:v1" "$TMP/rej-ident:v1"

# A second signer's signature goes beside the first (as cosign appends): each verifier finds its own.
check "signing again with another key" "$ENCLAVER" sign -q --insecure "docker://$R/x/app:v1" --key "$K/other.pem"
rm -rf "$TMP/got2"
fetch_sig "$R/x/app:v1" "$TMP/got2"
check "two signatures now, the first unchanged" cmp "$TMP/got/signature-1" "$TMP/got2/signature-1"
check "the second verifies with the other key" verify_sig "$TMP/got2" "$K/other.pub" "$R/x/app" 2
check "and not with the first" not verify_sig "$TMP/got2" "$K/key.pub" "$R/x/app" 2
check "no third signature" test ! -e "$TMP/got2/signature-3"
check "skopeo's policy for the other key accepts the image now" \
	vcopy "$TMP/policy-other.json" "$R/x/app:v1" "$TMP/acc2:v1"

# The tag moved to an unsigned image: no signature for its digest.
"$ENCLAVER" push -q --insecure "oci:$L:v2" "docker://$R/x/app:v1" >"$TMP/push2.json"
V2=$(json_get "$TMP/push2.json" 'd["digest"]')
rm -rf "$TMP/moved"
check "skopeo copies the moved tag" fetch_sig "$R/x/app:v1" "$TMP/moved"
check "the moved tag's image has no signature" test ! -e "$TMP/moved/signature-1"
check "so nothing verifies for it" not verify_sig "$TMP/moved" "$K/key.pub" "$R/x/app"
check_fails "skopeo's policy refuses the moved tag" "rejected.*no signature exists" \
	vcopy "$TMP/policy.json" "$R/x/app:v1" "$TMP/rej2:v1"
check "... while the signed image, by digest, is still accepted" \
	vcopy "$TMP/policy.json" "$R/x/app@$DIGEST" "$TMP/acc3"
# A signature replayed onto another digest: the signed image's .sig image copied, unchanged, to
# the moved tag's .sig tag. The signatures are genuine but name the first digest: refused.
skopeo --insecure-policy copy -q --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
	"docker://$R/x/app:sha256-${DIGEST#sha256:}.sig" "docker://$R/x/app:sha256-${V2#sha256:}.sig"
check "the moved tag now has the first image's signatures beside it" \
	test -n "$(tags x/app | grep -o "sha256-${V2#sha256:}\.sig")"
check_fails "skopeo's policy refuses a signature replayed from another digest" "rejected.*digest .* does not match" \
	vcopy "$TMP/policy.json" "$R/x/app:v1" "$TMP/rej3:v1"
# Signed by digest, the signature names the digest it was asked for.
V1=$DIGEST
check "signing by digest" "$ENCLAVER" sign -q --insecure "docker://$R/x/app@$V1" --key "$K/key.pem"
rm -rf "$TMP/bydig"
fetch_sig "$R/x/app@$V1" "$TMP/bydig"
check "the by-digest signature verifies" verify_sig "$TMP/bydig" "$K/key.pub" "$R/x/app"

# ---------------------------------------------------------------- keys in KMS and in a token
# The same keys/ code as EIF signing: an AWS KMS key ARN (tests/cli/kms_test_server.py checks
# each request's SigV4 signature and signs with its key; long-term credentials) and a PKCS#11 key made in SoftHSM2.
"$ENCLAVER" push -q --insecure "oci:$L:v1" "docker://$R/kms/app:v1" >/dev/null
ARN=arn:aws:kms:us-test-1:111122223333:key/test-sign
mkdir -p "$TMP/kms"
openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/kms/key.pem" 2>/dev/null
openssl ec -in "$TMP/kms/key.pem" -pubout -out "$TMP/kms/key.pub" 2>/dev/null
python3 "$ROOT/tests/cli/kms_test_server.py" sign "$TMP/kms/port" "$TMP/kms/log" "$TMP/kms/key.pem" "$TMP/kms/mode" &
KMS_PID=$!
for _ in $(seq 1 200); do [ -s "$TMP/kms/port" ] && break; sleep 0.05; done
env AWS_ACCESS_KEY_ID=AKIDTESTP51 AWS_SECRET_ACCESS_KEY=secret-P51 AWS_SESSION_TOKEN= \
	AWS_ENDPOINT_URL_KMS="http://127.0.0.1:$(cat "$TMP/kms/port")" \
	"$ENCLAVER" sign -q --insecure "$R/kms/app:v1" --key "$ARN" >"$TMP/kms/sign.json" 2>"$TMP/kms/sign.err"
check "enclaver sign with a KMS key ARN" test $? -eq 0
check "... KMS signed the payload's SHA-256 (ECDSA_SHA_256, MessageType DIGEST), each request SigV4-signed" \
	test "$(grep -c 'kms Sign ECDSA_SHA_256 digest' "$TMP/kms/log") $(grep -c 'signed-by AKIDTESTP51' "$TMP/kms/log") $(grep -c REJECTED "$TMP/kms/log")" = "1 2 0"
rm -rf "$TMP/kmsgot"
fetch_sig "$R/kms/app:v1" "$TMP/kmsgot"
check "... the signature verifies with the KMS key's public key" verify_sig "$TMP/kmsgot" "$TMP/kms/key.pub" "$R/kms/app"
check "... no AWS secret in the output" not grep -q "secret-P51" "$TMP/kms/sign.err" "$TMP/kms/sign.json"
echo fail >"$TMP/kms/mode"
check_fails "a KMS error is shown" "KMSInvalidStateException" \
	env AWS_ACCESS_KEY_ID=AKIDTESTP51 AWS_SECRET_ACCESS_KEY=secret-P51 \
	AWS_ENDPOINT_URL_KMS="http://127.0.0.1:$(cat "$TMP/kms/port")" \
	"$ENCLAVER" sign -q --insecure "$R/kms/app:v1" --key "$ARN"
rm -rf "$TMP/kmsgot2"
fetch_sig "$R/kms/app:v1" "$TMP/kmsgot2"
check "... and the signature already there is left as it was" cmp "$TMP/kmsgot/signature-1" "$TMP/kmsgot2/signature-1"
kill "$KMS_PID" 2>/dev/null
wait "$KMS_PID" 2>/dev/null
KMS_PID=

P11_PROVIDER=$(find /usr/lib -name pkcs11.so -path '*ossl-modules*' 2>/dev/null | head -n 1)
SOFTHSM=$(find /usr/lib -name libsofthsm2.so 2>/dev/null | head -n 1)
if [ -z "$P11_PROVIDER" ] || [ -z "$SOFTHSM" ] || ! command -v pkcs11-tool >/dev/null; then
	not_ok "PKCS#11: pkcs11-provider, softhsm2 and opensc are installed (scripts/install-deps.sh)"
elif [ "${VARIANT:-release}" = asan ]; then
	# As in test_eif_sign_keys.sh: ASan refuses the provider's RTLD_DEEPBIND dlopen.
	echo "# skip: PKCS#11 image signing under ASan (it refuses the provider's RTLD_DEEPBIND dlopen)"
else
	mkdir -p "$TMP/p11/tokens"
	export SOFTHSM2_CONF=$TMP/p11/softhsm2.conf # every softhsm2 tool: the test's own token folder
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$TMP/p11/tokens" \
		>"$TMP/p11/softhsm2.conf"
	PIN=pin-c0519a
	softhsm2-util --init-token --free --label enclaver-img --pin "$PIN" --so-pin so-pin-c051 >/dev/null 2>&1
	pkcs11-tool --module "$SOFTHSM" --token-label enclaver-img --login \
		--pin "$PIN" --keypairgen --key-type EC:prime256v1 --label image-signer --id 02 >/dev/null 2>&1
	pkcs11-tool --module "$SOFTHSM" --token-label enclaver-img \
		--read-object --type pubkey --label image-signer -o "$TMP/p11/pub.der" >/dev/null 2>&1
	openssl pkey -pubin -inform DER -in "$TMP/p11/pub.der" -out "$TMP/p11/pub.pem" 2>/dev/null
	"$ENCLAVER" push -q --insecure "oci:$L:v1" "docker://$R/p11/app:v1" >/dev/null
	env PKCS11_PROVIDER_MODULE="$SOFTHSM" ENCLAVER_PKCS11_PIN="$PIN" \
		"$ENCLAVER" sign -q --insecure "$R/p11/app:v1" \
		--key "pkcs11:token=enclaver-img;object=image-signer;type=private" >"$TMP/p11/out" 2>"$TMP/p11/err"
	check "enclaver sign with a PKCS#11 key made in the token" test $? -eq 0
	rm -rf "$TMP/p11got"
	fetch_sig "$R/p11/app:v1" "$TMP/p11got"
	check "... the signature verifies with the token's public key" verify_sig "$TMP/p11got" "$TMP/p11/pub.pem" "$R/p11/app"
	check "... no PIN in the output" not grep -q "$PIN" "$TMP/p11/out" "$TMP/p11/err"
fi

# ---------------------------------------------------------------- TLS and basic auth
# A registry over TLS (the test CA, --cert-dir) with htpasswd auth (--creds): the signature goes
# up with the push scope, and skopeo fetches it with the same CA and credentials.
TPORT=$("$ROOT/scripts/test-registry.sh" start "$TREG" basic) || not_ok "the TLS registry starts"
TR=127.0.0.1:$TPORT
TPASS=s3cret-pass
mkdir -p "$TMP/certs"
cp "$TREG/ca.crt" "$TMP/certs/"
"$ENCLAVER" push -q --cert-dir "$TMP/certs" --creds "tester:$TPASS" "oci:$L:v1" "docker://$TR/tls/app:v1" >/dev/null
"$ENCLAVER" sign -q --cert-dir "$TMP/certs" --creds "tester:$TPASS" "$TR/tls/app:v1" --key "$K/key.pem" \
	>"$TMP/tls.json" 2>"$TMP/tls.err"
check "enclaver sign over TLS with --cert-dir and --creds" test $? -eq 0
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$TR" >"$TMP/registries.d/tls.yaml"
rm -rf "$TMP/tlsgot"
check "skopeo fetches it with the CA and credentials" "${SK[@]}" --policy "$TMP/any.json" copy -q \
	--src-cert-dir "$TMP/certs" --src-creds "tester:$TPASS" "docker://$TR/tls/app:v1" "dir:$TMP/tlsgot"
check "... and it verifies" verify_sig "$TMP/tlsgot" "$K/key.pub" "$TR/tls/app"
check_fails "wrong credentials: refused, no signature" "401|unauthorized|authentication" \
	"$ENCLAVER" sign -q --cert-dir "$TMP/certs" --creds "tester:wrong" "$TR/tls/app:v1" --key "$K/other.pem"
check "no password in the output" not grep -q "$TPASS" "$TMP/tls.err" "$TMP/.stderr"
"$ROOT/scripts/test-registry.sh" stop "$TREG"

# ---------------------------------------------------------------- bad input
"$ENCLAVER" push -q --insecure "oci:$L:v1" "docker://$R/bad/app:v1" >/dev/null
check_fails "a missing key file is named" "$K/nope.pem" \
	"$ENCLAVER" sign -q --insecure "$R/bad/app:v1" --key "$K/nope.pem"
check_fails "a file that is no key is refused" "$K/junk.pem" \
	"$ENCLAVER" sign -q --insecure "$R/bad/app:v1" --key "$K/junk.pem"
check_fails "--key is required" "--key" "$ENCLAVER" sign -q --insecure "$R/bad/app:v1"
check_fails "an image that is not there" "manifest unknown|404|not found" \
	"$ENCLAVER" sign -q --insecure "$R/bad/none:v1" --key "$K/key.pem"
check_fails "a local layout cannot be signed" "only images in a registry" \
	"$ENCLAVER" sign -q --insecure "oci:$L:v1" --key "$K/key.pem"
check "no signature was pushed by the failures" test -z "$(tags bad/app | grep -o 'sha256-[0-9a-f]*\.sig')"

# A registry that refuses the signature upload (tests/cli/fault_proxy.py refusesig).
rm -f "$TMP/proxy.port"
python3 "$ROOT/tests/cli/fault_proxy.py" "$TMP/proxy.port" "$PORT" refusesig "$TMP/proxy.log" &
PROXY_PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/proxy.port" ] && break; sleep 0.05; done
PR=127.0.0.1:$(cat "$TMP/proxy.port")
check_fails "a refused signature upload fails the command" "DENIED|403" \
	"$ENCLAVER" sign -q --insecure "$PR/bad/app:v1" --key "$K/key.pem"
check "and leaves no signature" test -z "$(tags bad/app | grep -o 'sha256-[0-9a-f]*\.sig')"

# Key bytes never reach what the commands print.
KEYLINE=$(sed -n 2p "$K/key.pem")
cat "$TMP"/*.err "$TMP"/*.out "$TMP/.stderr" "$TMP/.stdout" >"$TMP/all-logs" 2>/dev/null
check "no private key bytes in any output" not grep -qF "$KEYLINE" "$TMP/all-logs"

# ---------------------------------------------------------------- build --push --sign-key
KB=$TMP/kb
make_kernel_bundle "$KB"
make_app_image "$TMP/app" v1
export SOURCE_DATE_EPOCH=1700000000
unset ENCLAVER_KERNEL_BUNDLE ENCLAVER_ODYN
printf 'version: v1\nname: hello\ntarget: %s/hello/app:enclave\nsources:\n  app: oci:%s/app:v1\n' \
	"$R" "$TMP" >"$TMP/enclaver.yaml"
B=("$ENCLAVER" build -q --kernel-bundle "$KB" --tls-verify=false -f "$TMP/enclaver.yaml")
check_fails "--sign-key without --push is a usage error" "add --push" "${B[@]}" --sign-key "$K/key.pem"
check_fails "a missing key fails the build before anything is pushed" "$K/nope.pem" \
	"${B[@]}" --push --sign-key "$K/nope.pem"
check "nothing was pushed" test -z "$(tags hello/app | grep -o enclave)"
"${B[@]}" --push --sign-key "$K/key.pem" >"$TMP/build.json" 2>"$TMP/build.err"
check "build --push --sign-key exits 0" test $? -eq 0
BD=$(json_get "$TMP/build.json" 'd["Image"]["Written"][0]["Digest"]')
check "the report names the signature" test "$(json_get "$TMP/build.json" 'd["Image"]["Written"][0]["Signature"]')" = \
	"docker://$R/hello/app:sha256-${BD#sha256:}.sig"
rm -rf "$TMP/bgot"
check "skopeo fetches the release image with its signature" fetch_sig "$R/hello/app:enclave" "$TMP/bgot"
check "the release image's signature verifies" verify_sig "$TMP/bgot" "$K/key.pub" "$R/hello/app"
check "skopeo's policy accepts the signed release image" \
	vcopy "$TMP/policy.json" "$R/hello/app:enclave" "$TMP/bacc:v1"
check "... and the copy is the manifest the build pushed and signed" test "$(copied_digest "$TMP/bacc")" = "$BD"
# Through the refusing proxy: pushed, but unsigned, and said so with a failure.
printf 'version: v1\nname: hello\ntarget: %s/hello/refused:enclave\nsources:\n  app: oci:%s/app:v1\n' \
	"$PR" "$TMP" >"$TMP/refused.yaml"
"$ENCLAVER" build -q --kernel-bundle "$KB" --tls-verify=false -f "$TMP/refused.yaml" --push --sign-key "$K/key.pem" \
	>"$TMP/refused.json" 2>"$TMP/refused.err"
check "a refused signature fails the build" test $? -ne 0
check "the error says the image is pushed UNSIGNED" grep -q "pushed to .*UNSIGNED" "$TMP/refused.err"
check "the image is in the registry" test -n "$(tags hello/refused | grep -o enclave)"
check "without a signature" test -z "$(tags hello/refused | grep -o 'sha256-[0-9a-f]*\.sig')"
check "no private key bytes in the build's output" not grep -qF "$KEYLINE" "$TMP/build.err" "$TMP/refused.err"
kill "$PROXY_PID" 2>/dev/null
wait "$PROXY_PID" 2>/dev/null
PROXY_PID=

done_testing
