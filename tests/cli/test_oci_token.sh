#!/usr/bin/env bash
# test_oci_token: bearer-token auth against a real docker-registry (TLS +
# token auth) and the tests' own token server (scripts/test-token-server.py,
# RS256 JWTs): anonymous pull, push with credentials, one token per scope
# reused for every request, the OAuth2 POST form with a refresh token,
# scopes for cross-repository mounts, refused credentials; a token server
# on plain HTTP behind a TLS registry is refused before any credential goes
# to it, and used only when the user made the registry insecure.
. "$(dirname "$0")/lib.sh"

for tool in docker-registry skopeo umoci openssl python3; do
	command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps.sh)"; done_testing; exit 1; }
done
REG=$TMP/reg
mkdir -p "$REG"
REG2=$TMP/reg2
mkdir -p "$REG2"
trap '"$ROOT/scripts/test-registry.sh" stop "$REG"; "$ROOT/scripts/test-registry.sh" stop "$REG2"; rm -rf "$TMP"' EXIT
PORT=$("$ROOT/scripts/test-registry.sh" start "$REG" token) || { not_ok "registry starts"; done_testing; exit 1; }
R=127.0.0.1:$PORT
LOG=$REG/token.log
export ENCLAVER_CACHE_DIR=$TMP/cache
export HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config
unset REGISTRY_AUTH_FILE DOCKER_CONFIG
mkdir -p "$HOME" "$XDG_RUNTIME_DIR/containers" "$XDG_CONFIG_HOME"
CERTS=$TMP/certs
mkdir -p "$CERTS"
cp "$REG/ca.crt" "$CERTS/"
E=("$ENCLAVER")

L=$TMP/layout
mkdir -p "$TMP/src/a" "$TMP/src2/b"
echo token >"$TMP/src/a/file"
head -c 50000 /dev/urandom >"$TMP/src2/b/data"
umoci init --layout "$L"
umoci new --image "$L:v1"
umoci insert --image "$L:v1" "$TMP/src" / >/dev/null
umoci insert --image "$L:v1" "$TMP/src2" / >/dev/null

: >"$LOG"
check "push with credentials through bearer tokens" \
	"${E[@]}" push -q --cert-dir "$CERTS" --creds tester:s3cret-pass "oci:$L:v1" "docker://$R/tok/app:v1"
check "one token for the whole push (HEADs, uploads, manifest)" \
	test "$(cat "$LOG")" = "GET basic repository:tok/app:pull,push"
check "skopeo reads it back through the same token server" \
	skopeo inspect --cert-dir "$CERTS" --creds tester:s3cret-pass "docker://$R/tok/app:v1"

: >"$LOG"
check "anonymous pull gets a pull token" "${E[@]}" pull -q --cert-dir "$CERTS" "$R/tok/app:v1"
check "one anonymous token with the pull scope" test "$(cat "$LOG")" = "GET anonymous repository:tok/app:pull"
check_fails "anonymous push is refused with a clear error" \
	"start a blob upload: unauthorized \(HTTP 401\).*credentials: no credentials" \
	"${E[@]}" push --cert-dir "$CERTS" "oci:$L:v1" "docker://$R/tok/anon:v1"
check_fails "wrong password: the token server refuses, the source is named" \
	"the token server https://127.0.0.1:[0-9]+/token refused the credentials \(HTTP 401\); credentials: --creds" \
	"${E[@]}" pull --cert-dir "$CERTS" --creds tester:wrong "$R/tok/app:v1"

: >"$LOG"
"${E[@]}" copy -q --cert-dir "$CERTS" --creds tester:s3cret-pass "docker://$R/tok/app:v1" "docker://$R/tok/mounted:v1" \
	>"$TMP/mount.json"
check "cross-repository mount with a two-repository scope" \
	grep -q "^GET basic repository:tok/mounted:pull,push repository:tok/app:pull$" "$LOG"
check "every blob was mounted" python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["blobs"]["mounted"] != 3)' "$TMP/mount.json"

# An identity token (docker login to some registries stores one) goes
# through the OAuth2 POST form as a refresh token.
printf '{"auths":{"%s":{"auth":"%s","identitytoken":"refresh-me"}}}' "$R" "$(printf '<token>:' | base64 -w0)" \
	>"$XDG_RUNTIME_DIR/containers/auth.json"
: >"$LOG"
check "identity token: push through the OAuth2 refresh_token grant" \
	"${E[@]}" push -q --cert-dir "$CERTS" "oci:$L:v1" "docker://$R/tok/oauth:v1"
check "the POST form was used" grep -q "^POST refresh_token repository:tok/oauth:pull,push$" "$LOG"
printf '{"auths":{"%s":{"auth":"%s","identitytoken":"stale"}}}' "$R" "$(printf '<token>:' | base64 -w0)" \
	>"$XDG_RUNTIME_DIR/containers/auth.json"
check_fails "a stale identity token is refused, the file named" \
	"refused the credentials.*credentials: $XDG_RUNTIME_DIR/containers/auth.json" \
	"${E[@]}" pull --cert-dir "$CERTS" "$R/tok/app:v1"

# Tokens are renewed before they run out. This token server says its tokens
# were issued 55 s into a 60 s life, so each one is due at once and every
# request asks for a fresh one (the push above, with 300 s tokens, used one).
echo "60 55" >"$REG/token.lifetime"
: >"$LOG"
check "push with tokens that are already due" \
	"${E[@]}" push -q --cert-dir "$CERTS" --creds tester:s3cret-pass "oci:$L:v1" "docker://$R/tok/expiry:v1"
check "a fresh token for each request, none used past its time" \
	test "$(grep -c '^GET basic repository:tok/expiry:pull,push$' "$LOG")" -ge 7
rm -f "$REG/token.lifetime"

# A registry over verified TLS whose challenge names realm="http://...": the
# token server (plain HTTP) records every request and whether it carried an
# Authorization header.
PORT2=$("$ROOT/scripts/test-registry.sh" start "$REG2" token-http) || { not_ok "second registry starts"; done_testing; exit 1; }
R2=127.0.0.1:$PORT2
CERTS2=$TMP/certs2
mkdir -p "$CERTS2"
cp "$REG2/ca.crt" "$CERTS2/"
rm -f "$XDG_RUNTIME_DIR/containers/auth.json"
check_fails "TLS registry, cleartext realm: refused, the realm and the registry named" \
	"$R2: the registry's token server http://127.0.0.1:[0-9]+/token is not HTTPS: refused" \
	"${E[@]}" push --cert-dir "$CERTS2" --creds tester:s3cret-pass "oci:$L:v1" "docker://$R2/tok/app:v1"
check "no request reached the cleartext token server" test ! -s "$REG2/token.requests"
check_fails "an anonymous pull is refused the same way" "is not HTTPS: refused" \
	"${E[@]}" pull --cert-dir "$CERTS2" "$R2/tok/app:v1"
check "still nothing sent to it" test ! -s "$REG2/token.requests"
check "insecure by the user's choice (--tls-verify=false): the cleartext realm is used" \
	"${E[@]}" push -q --tls-verify=false --creds tester:s3cret-pass "oci:$L:v1" "docker://$R2/tok/app:v1"
check "the credentials went to it" grep -q "^GET /token?.* authorization$" "$REG2/token.requests"
: >"$REG2/token.requests"
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$R2" >"$TMP/registries.conf"
check "insecure by registries.conf: the cleartext realm is used" env CONTAINERS_REGISTRIES_CONF="$TMP/registries.conf" \
	"${E[@]}" pull -q --creds tester:s3cret-pass "$R2/tok/app:v1"
check "registries.conf: the token request was made" grep -q "^GET /token?.* authorization$" "$REG2/token.requests"

# An https realm that answers 307 to http:// (a 307 keeps a POST's form: here a refresh token).
echo "http://127.0.0.1:$(cat "$REG2/token.port")" >"$REG/token.redirect"
: >"$REG2/token.requests"
printf '{"auths":{"%s":{"auth":"%s","identitytoken":"refresh-me"}}}' "$R" "$(printf '<token>:' | base64 -w0)" \
	>"$XDG_RUNTIME_DIR/containers/auth.json"
check_fails "an https realm redirecting to http: refused, the realm named" \
	"$R: the token server https://127.0.0.1:[0-9]+/token redirected to an address that is not HTTPS: refused" \
	"${E[@]}" push --cert-dir "$CERTS" "oci:$L:v1" "docker://$R/tok/redir:v1"
check "the refresh token did not go to the cleartext address" test ! -s "$REG2/token.requests"
rm -f "$XDG_RUNTIME_DIR/containers/auth.json"
check_fails "the same for basic credentials" "redirected to an address that is not HTTPS: refused" \
	"${E[@]}" pull --cert-dir "$CERTS" --creds tester:s3cret-pass "$R/tok/app:v1"
check "nothing went to the cleartext address" test ! -s "$REG2/token.requests"
rm -f "$REG/token.redirect"

done_testing
