# registry.sh: the loopback test registry for CLI tests (sourced after lib.sh): Debian's
# docker-registry on 127.0.0.1 through scripts/test-registry.sh, in a folder of $TMP, and a HOME,
# cache and credential folders of the test's own so nothing of the caller's is read. The test's
# EXIT trap calls registry_stop_all.

_registries=()
# registry_start DIR [plain|basic|token|token-http]: sets PORT and R=127.0.0.1:PORT; a registry
# that does not start ends the test.
registry_start() {
	mkdir -p "$1"
	_registries+=("$1")
	PORT=$("$ROOT/scripts/test-registry.sh" start "$1" "${2:-plain}") ||
		{ not_ok "the test registry starts"; done_testing; exit 1; }
	R=127.0.0.1:$PORT
}
registry_stop_all() {
	local d
	for d in "${_registries[@]}"; do "$ROOT/scripts/test-registry.sh" stop "$d"; done
}
# registry_env: the blob cache, HOME and XDG folders under $TMP; no auth file from outside.
registry_env() {
	export ENCLAVER_CACHE_DIR=$TMP/cache
	export HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/config
	unset REGISTRY_AUTH_FILE DOCKER_CONFIG
	mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
}
