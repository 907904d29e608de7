#!/usr/bin/env bash
# test-registry.sh: starts and stops Debian's docker-registry (the CNCF
# distribution server) on 127.0.0.1 for the tests, in a folder of its own.
#
#   scripts/test-registry.sh start DIR [plain|basic|token|token-http]   prints the port on stdout
#   scripts/test-registry.sh stop DIR
#
# plain: HTTP, no auth. basic: TLS (a throwaway CA in DIR/ca.crt signs a
# certificate for 127.0.0.1 and localhost) + htpasswd basic auth with the
# user "tester", password "s3cret-pass" (DIR/htpasswd). token: TLS + bearer
# tokens from scripts/test-token-server.py (same user; anonymous may pull),
# over TLS with the registry's certificate at the port in DIR/token.port,
# logging to DIR/token.log and DIR/token.requests. token-http: the same with
# the token server on plain HTTP (a realm a client must refuse for a
# registry it reaches over verified TLS).
set -euo pipefail

usage="usage: test-registry.sh start|stop DIR [plain|basic|token|token-http]"
cmd=${1:?$usage}
dir=${2:?$usage}
mode=${3:-plain}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

make_certs() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=enclaver test CA" \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server.key" \
		-out "$dir/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
	openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
		-days 2 -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null
}

# The token server signs with its own key; the registry trusts its certificate.
start_token_server() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=enclaver test token signer" \
		-keyout "$dir/token.key" -out "$dir/token.crt" 2>/dev/null
	rm -f "$dir/token.port"
	local plain=()
	[ "$mode" = token-http ] && plain=(--plain-http)
	python3 "$(dirname "$0")/test-token-server.py" "${plain[@]}" "$dir" enclaver-test-registry enclaver-test-issuer \
		>"$dir/token-server.log" 2>&1 &
	echo $! >"$dir/token.pid"
	for _ in $(seq 1 100); do
		[ -s "$dir/token.port" ] && return 0
		sleep 0.05
	done
	echo "test-registry.sh: the token server did not start:" >&2
	cat "$dir/token-server.log" >&2
	exit 1
}

start() {
	command -v docker-registry >/dev/null || { echo "test-registry.sh: docker-registry is not installed" >&2; exit 1; }
	mkdir -p "$dir/storage"
	local port token_port= token_scheme=https
	port=$(free_port)
	case $mode in
	plain) ;;
	basic)
		make_certs
		htpasswd -Bbn tester s3cret-pass >"$dir/htpasswd" 2>/dev/null
		;;
	token | token-http)
		# The token server speaks TLS with the registry's certificate: certificates first.
		make_certs
		[ "$mode" = token-http ] && token_scheme=http
		start_token_server
		token_port=$(cat "$dir/token.port")
		;;
	*)
		echo "test-registry.sh: unknown mode $mode (plain, basic, token or token-http)" >&2
		exit 2
		;;
	esac
	{
		echo "version: 0.1"
		echo "log:"
		echo "  level: error"
		echo "  accesslog:"
		echo "    disabled: true"
		echo "storage:"
		echo "  filesystem:"
		echo "    rootdirectory: $dir/storage"
		echo "  delete:"
		echo "    enabled: true"
		echo "health:"
		echo "  storagedriver:"
		echo "    enabled: false"
		echo "http:"
		echo "  addr: 127.0.0.1:$port"
		echo "  secret: enclaver-tests"
		if [ "$mode" != plain ]; then
			echo "  tls:"
			echo "    certificate: $dir/server.crt"
			echo "    key: $dir/server.key"
		fi
		if [ "$mode" = basic ]; then
			echo "auth:"
			echo "  htpasswd:"
			echo "    realm: enclaver-tests"
			echo "    path: $dir/htpasswd"
		elif [ -n "$token_port" ]; then
			echo "auth:"
			echo "  token:"
			echo "    realm: $token_scheme://127.0.0.1:$token_port/token"
			echo "    service: enclaver-test-registry"
			echo "    issuer: enclaver-test-issuer"
			echo "    rootcertbundle: $dir/token.crt"
		fi
	} >"$dir/config.yml"
	docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
	echo $! >"$dir/registry.pid"
	local scheme=http curl_opts=()
	[ "$mode" != plain ] && scheme=https curl_opts=(--cacert "$dir/ca.crt")
	for _ in $(seq 1 100); do
		if curl -s -o /dev/null "${curl_opts[@]}" "$scheme://127.0.0.1:$port/v2/"; then
			echo "$port"
			return 0
		fi
		if ! kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
			echo "test-registry.sh: docker-registry exited:" >&2
			cat "$dir/registry.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "test-registry.sh: docker-registry did not answer on port $port" >&2
	stop
	exit 1
}

stop() {
	if [ -f "$dir/token.pid" ]; then
		kill "$(cat "$dir/token.pid")" 2>/dev/null || true
		rm -f "$dir/token.pid"
	fi
	[ -f "$dir/registry.pid" ] || return 0
	local pid
	pid=$(cat "$dir/registry.pid")
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$dir/registry.pid"
}

case $cmd in
start) start ;;
stop) stop ;;
*) echo "$usage" >&2; exit 2 ;;
esac
