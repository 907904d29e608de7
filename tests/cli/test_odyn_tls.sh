#!/usr/bin/env bash
# test_odyn_tls: ingress TLS termination (ingress[].tls in the manifest, --ingress-tls here): curl
# over HTTPS through odyn to a plain HTTP server, checked against a test CA; concurrent transfers
# both ways with back-pressure; a plain-text client and a bad handshake do not disturb odyn; bad
# certificate or key files stop odyn with a message naming them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/odyn_lib.sh"

# A test CA and a server certificate for "localhost" signed by it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
	-keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
	-keyout "$TMP/srv.key" -out "$TMP/srv.csr" 2>/dev/null
openssl x509 -req -in "$TMP/srv.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial -days 2 \
	-extfile <(printf 'subjectAltName=DNS:localhost\n') -out "$TMP/srv.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=other \
	-keyout "$TMP/other.key" -out /dev/null 2>/dev/null

mkdir -p "$TMP/www"
head -c 3000000 /dev/urandom >"$TMP/www/blob"
echo hello-over-tls >"$TMP/www/hello.txt"
python3 -u -m http.server 0 --protocol HTTP/1.1 --bind 127.0.0.1 --directory "$TMP/www" >"$TMP/http.out" 2>"$TMP/http.err" &
bg_track $!
wait_for grep -q "port" "$TMP/http.out"
HP=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$TMP/http.out" | head -n 1)
"$PEER" echo tcp:127.0.0.1:0 >"$TMP/echo.port" 2>/dev/null &
bg_track $!
wait_for test -s "$TMP/echo.port"

"$ODYN" --no-console --status "unix:$TMP/st" --log "unix:$TMP/log" --linger-ms 0 \
	--ingress "unix:$TMP/https=tcp:127.0.0.1:$HP" --ingress-tls "$TMP/srv.pem,$TMP/srv.key" \
	--ingress "unix:$TMP/echo=tcp:127.0.0.1:$(cat "$TMP/echo.port")" --ingress-tls "$TMP/srv.pem,$TMP/srv.key" \
	--ingress "unix:$TMP/plain=tcp:127.0.0.1:$HP" \
	-- sh -c "while [ ! -e '$TMP/stop' ]; do sleep 0.05; done" 2>"$TMP/odyn.err" &
op=$!
bg_track $op
wait_for test -S "$TMP/plain"

C=(curl -s -S --max-time 30 --cacert "$TMP/ca.pem" --unix-socket "$TMP/https")
check "HTTPS through odyn: the app's answer" cmp <("${C[@]}" https://localhost/hello.txt) "$TMP/www/hello.txt"
check "HTTPS: 3 MB intact" cmp <("${C[@]}" https://localhost/blob) "$TMP/www/blob"
check "the certificate odyn presents is the manifest's (verified against the test CA)" \
	"${C[@]}" -o /dev/null https://localhost/hello.txt
check_fails "a client that does not trust the CA refuses it" 'certificate' \
	curl -s -S --max-time 30 --unix-socket "$TMP/https" https://localhost/hello.txt
check "keep-alive: two requests over one TLS connection" \
	"${C[@]}" -o /dev/null -o /dev/null https://localhost/hello.txt https://localhost/hello.txt
check "the plain ingress port beside it still speaks plain HTTP" \
	cmp <(curl -s -S --max-time 30 --unix-socket "$TMP/plain" http://localhost/hello.txt) "$TMP/www/hello.txt"

# 10 concurrent HTTPS downloads, and 8 clients each sending 1 MiB to the echo server while
# reading it back: TLS records both ways with back-pressure.
pids=()
for i in $(seq 1 10); do
	"${C[@]}" -o "$TMP/dl.$i" https://localhost/blob &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
okc=0
for i in $(seq 1 10); do cmp -s "$TMP/dl.$i" "$TMP/www/blob" && okc=$((okc + 1)); done
check "10 concurrent HTTPS downloads intact" test $okc -eq 10
head -c 1048576 /dev/urandom >"$TMP/mib"
cat >"$TMP/echo_client.py" <<'PY'
# One thread, non-blocking: sends and reads as the socket allows. (Not a reader thread beside
# sendall: an OpenSSL connection must not be used from two threads at once.)
import select, socket, ssl, sys, time
path, ca, data_file, out_file = sys.argv[1:5]
data = open(data_file, "rb").read()
ctx = ssl.create_default_context(cafile=ca)
raw = socket.socket(socket.AF_UNIX)
raw.settimeout(60)
raw.connect(path)
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.setblocking(False)
got, sent = bytearray(), 0
deadline = time.monotonic() + 120
while len(got) < len(data) and time.monotonic() < deadline:
    select.select([s], [s] if sent < len(data) else [], [], 0.5)
    if sent < len(data):
        try:
            sent += s.send(data[sent:sent + 65536])
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
    try:
        while len(got) < len(data):
            chunk = s.recv(65536)
            if not chunk:
                deadline = 0
                break
            got.extend(chunk)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        pass
open(out_file, "wb").write(got)
PY
pids=()
for i in $(seq 1 8); do
	python3 "$TMP/echo_client.py" "$TMP/echo" "$TMP/ca.pem" "$TMP/mib" "$TMP/echo.$i" 2>"$TMP/echo.$i.err" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
okc=0
for i in $(seq 1 8); do cmp -s "$TMP/echo.$i" "$TMP/mib" && okc=$((okc + 1)); done
check "8 x 1 MiB echoed intact through TLS both ways at once" test $okc -eq 8

# Hostile or confused clients: plain HTTP to the TLS port, then garbage; odyn keeps serving.
printf 'GET / HTTP/1.0\r\n\r\n' | "$PEER" send "unix:$TMP/https" >"$TMP/plainreq" 2>&1
check "plain HTTP to the TLS port gets no HTTP answer" bash -c "! grep -q '^HTTP/' '$TMP/plainreq'"
head -c 5000 /dev/urandom | "$PEER" send "unix:$TMP/https" >/dev/null 2>&1
check "after garbage, TLS clients are still served" cmp <("${C[@]}" https://localhost/hello.txt) "$TMP/www/hello.txt"
check "odyn is still running" kill -0 $op

touch "$TMP/stop"
wait $op
check "odyn ends cleanly" test $? -eq 0

# Bad files: odyn does not start, and says which file.
bad() { # bad NAME REGEX CERT KEY
	check_fails "$1" "$2" "$ODYN" --no-console --status "unix:$TMP/st.b" --log "unix:$TMP/log.b" --linger-ms 0 \
		--ingress "unix:$TMP/b=tcp:127.0.0.1:$HP" --ingress-tls "$3,$4" -- true
}
bad "a missing certificate file" "nope.pem" "$TMP/nope.pem" "$TMP/srv.key"
bad "a key that is not PEM" "ca.pem|key" "$TMP/srv.pem" "$TMP/ca.pem"
bad "a key that does not match the certificate" "other.key.*(mismatch|does not match)" "$TMP/srv.pem" "$TMP/other.key"
check_fails "--ingress-tls before any --ingress" "before any ingress" "$ODYN" --no-console --ingress-tls "a,b" -- true
check_fails "--ingress-tls without a key" "CERT_FILE,KEY_FILE" "$ODYN" --no-console --ingress "unix:$TMP/c=tcp:127.0.0.1:1" --ingress-tls "a" -- true
done_testing
