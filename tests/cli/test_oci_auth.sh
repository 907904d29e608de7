#!/usr/bin/env bash
# test_oci_auth: TLS and basic auth against a real docker-registry (TLS +
# htpasswd, started and stopped here): --cert-dir, --tls-verify=false, and
# where credentials come from (--creds, REGISTRY_AUTH_FILE, auth.json,
# ~/.docker/config.json, credential helpers) in podman/docker order.
. "$(dirname "$0")/lib.sh"

require_tools docker-registry skopeo htpasswd
registry_start basic
PASS=s3cret-pass
export ENCLAVER_CACHE_DIR=$TMP/cache
export HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config
unset REGISTRY_AUTH_FILE DOCKER_CONFIG
mkdir -p "$HOME/.docker" "$XDG_RUNTIME_DIR/containers" "$XDG_CONFIG_HOME/containers"
CERTS=$TMP/certs
mkdir -p "$CERTS"
cp "$REG/ca.crt" "$CERTS/"

# An image to push, made by our own code from a tiny docker-archive-free
# source: an OCI layout written with umoci.
L=$TMP/layout
mkdir -p "$TMP/src/etc"
echo auth >"$TMP/src/etc/auth"
umoci init --layout "$L"
umoci new --image "$L:v1"
umoci insert --image "$L:v1" "$TMP/src" / >/dev/null

b64() { printf '%s' "$1" | base64 -w0; }
no_secret() { ! grep -q "$PASS" "$TMP/.stderr" && ! grep -q "$(b64 "tester:$PASS")" "$TMP/.stderr"; }

check "push over TLS with --cert-dir and --creds" \
	"$ENCLAVER" push -q --cert-dir "$CERTS" --creds "tester:$PASS" "oci:$L:v1" "docker://$R/auth/app:v1"
check "skopeo reads it back with the same credentials" \
	skopeo inspect --cert-dir "$CERTS" --creds "tester:$PASS" "docker://$R/auth/app:v1"
check_fails "an unknown CA is a TLS failure" "TLS failure" \
	"$ENCLAVER" pull --creds "tester:$PASS" "$R/auth/app:v1"
check "--tls-verify=false skips verification" \
	"$ENCLAVER" pull -q --tls-verify=false --creds "tester:$PASS" "$R/auth/app:v1"
check_fails "wrong password: unauthorized, names the source" "unauthorized \(HTTP 401\).*credentials: --creds" \
	"$ENCLAVER" pull --cert-dir "$CERTS" --creds "tester:wrong" "$R/auth/app:v1"
check_fails "the password is never printed, even with -vv" "unauthorized" \
	"$ENCLAVER" -vv pull --cert-dir "$CERTS" --creds "tester:$PASS-x" "$R/auth/app:v1"
check "no secret on stderr" no_secret
check_fails "no credentials: unauthorized, lists where it looked" \
	"unauthorized.*no credentials \(looked in $XDG_RUNTIME_DIR/containers/auth.json, $XDG_CONFIG_HOME/containers/auth.json, $HOME/.docker/config.json\)" \
	"$ENCLAVER" pull --cert-dir "$CERTS" "$R/auth/app:v1"

# Auth files. Wrong credentials in the first file found must win over right
# ones in a later file: that is the precedence.
good=$(b64 "tester:$PASS")
bad=$(b64 "tester:nope")
printf '{"auths":{"%s":{"auth":"%s"}}}' "$R" "$good" >"$HOME/.docker/config.json"
check "~/.docker/config.json auths" "$ENCLAVER" pull -q --cert-dir "$CERTS" "$R/auth/app:v1"
printf '{"auths":{"https://%s/v1/":{"auth":"%s"}}}' "$R" "$bad" >"$XDG_CONFIG_HOME/containers/auth.json"
check_fails "XDG_CONFIG_HOME auth.json comes before docker's config" \
	"credentials: $XDG_CONFIG_HOME/containers/auth.json" "$ENCLAVER" pull --cert-dir "$CERTS" "$R/auth/app:v1"
check "no secret in that message" no_secret
printf '{"auths":{"%s":{"auth":"%s"}}}' "$R" "$good" >"$XDG_RUNTIME_DIR/containers/auth.json"
check "XDG_RUNTIME_DIR auth.json comes first" "$ENCLAVER" pull -q --cert-dir "$CERTS" "$R/auth/app:v1"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$R" "$bad" >"$TMP/authfile.json"
check_fails "REGISTRY_AUTH_FILE replaces the default files" "credentials: $TMP/authfile.json" \
	env REGISTRY_AUTH_FILE="$TMP/authfile.json" "$ENCLAVER" pull --cert-dir "$CERTS" "$R/auth/app:v1"
check "--creds beats every file" env REGISTRY_AUTH_FILE="$TMP/authfile.json" \
	"$ENCLAVER" pull -q --cert-dir "$CERTS" --creds "tester:$PASS" "$R/auth/app:v1"
printf '{"auths":{"%s":{"auth":"!!!"}}}' "$R" >"$TMP/broken.json"
check_fails "a malformed auth entry names its file" "$TMP/broken.json: \"auth\" is not valid base64" \
	env REGISTRY_AUTH_FILE="$TMP/broken.json" "$ENCLAVER" pull --cert-dir "$CERTS" "$R/auth/app:v1"

# Credential helpers: the docker-credential-* protocol (server URL on stdin, JSON out).
mkdir -p "$TMP/bin"
cat >"$TMP/bin/docker-credential-enctest" <<HELPER
#!/bin/sh
[ "\$1" = get ] || exit 1
read -r server
[ "\$server" = "$R" ] || { echo "credentials not found in native keychain"; exit 1; }
printf '{"ServerURL":"%s","Username":"tester","Secret":"%s"}\n' "\$server" "$PASS"
HELPER
chmod +x "$TMP/bin/docker-credential-enctest"
rm -f "$XDG_RUNTIME_DIR/containers/auth.json" "$XDG_CONFIG_HOME/containers/auth.json"
printf '{"auths":{"%s":{"auth":"%s"}},"credHelpers":{"%s":"enctest"}}' "$R" "$bad" "$R" >"$HOME/.docker/config.json"
check "credHelpers comes before auths" env PATH="$TMP/bin:$PATH" "$ENCLAVER" pull -q --cert-dir "$CERTS" "$R/auth/app:v1"
printf '{"auths":{},"credsStore":"enctest"}' >"$HOME/.docker/config.json"
check "credsStore" env PATH="$TMP/bin:$PATH" "$ENCLAVER" push -q --cert-dir "$CERTS" "oci:$L:v1" "docker://$R/auth/store:v1"
printf '{"credsStore":"missing-helper"}' >"$HOME/.docker/config.json"
check_fails "a missing helper is named" "docker-credential-missing-helper" \
	"$ENCLAVER" pull --cert-dir "$CERTS" "$R/auth/app:v1"

done_testing
