#!/usr/bin/env bash
# test_build: `enclaver build` from an OCI layout, an OCI archive and a docker-archive
# made without Docker: measurements equal describe-eif's, EIF bytes and release image
# digest reproducible, signing, the release image's layout, and bad input (clear
# message, exit 1, nothing left behind).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

build_test_env

manifest() { # manifest FILE APP [extra yaml]
	printf 'version: v1\nname: hello\ntarget: hello:enclave\nsources:\n  app: %s\n%s' "$2" "${3:-}" >"$1"
}
manifest "$TMP/enclaver.yaml" "oci:$TMP/app:v1"

# ---------------------------------------------------------------- EIF only
check "build --eif-only" "${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/a.eif"
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/a.eif" >"$TMP/a.json" 2>/dev/null
"$ENCLAVER" describe-eif "$TMP/a.eif" >"$TMP/a.desc" 2>/dev/null
for p in PCR0 PCR1 PCR2; do
	want=$(json_get "$TMP/a.desc" "d['Measurements']['$p']")
	got=$(json_get "$TMP/a.json" "d['Measurements']['$p']")
	if [ -n "$got" ] && [ "$got" = "$want" ]; then ok "printed $p equals describe-eif's"; else not_ok "printed $p equals describe-eif's" "$got" "$want"; fi
done
check "unsigned: no PCR8" test "$(json_get "$TMP/a.json" "'PCR8' in d['Measurements']")" = False
check "metadata names enclaver" test "$(json_get "$TMP/a.desc" "d['Metadata']['BuildTool']")" = enclaver
check "metadata holds the app's digest" test "$(json_get "$TMP/a.desc" "d['Metadata']['DockerInfo']['Digest']")" = \
	"$(json_get "$TMP/a.json" "d['Sources']['App']['Digest']")"
app_digest=$(python3 -c "import json; print(json.load(open('$TMP/app/index.json'))['manifests'][0]['digest'])")
check "Sources.App.Digest is the layout's manifest digest" test "$(json_get "$TMP/a.json" "d['Sources']['App']['Digest']")" = "$app_digest"
check "PCR1 is the kernel, cmdline and bootstrap ramdisk: the kernel bundle's" test \
	"$(json_get "$TMP/a.json" "d['Sources']['Kernel']['Bundle']")" = "$KB"

# PCR2 independently: the customer ramdisk is the EIF's second ramdisk section; extend from zero.
customer_of "$TMP/a.eif" "$TMP/customer.cpio"
pcr2=$(python3 -c "
import hashlib,sys
d=hashlib.sha384(open('$TMP/customer.cpio','rb').read()).digest()
print(hashlib.sha384(b'\0'*48+d).hexdigest())")
check "PCR2 = extend(sha384(customer ramdisk))" test "$pcr2" = "$(json_get "$TMP/a.json" "d['Measurements']['PCR2']")"
mkdir -p "$TMP/cx"
(cd "$TMP/cx" && cpio -idm --quiet <"$TMP/customer.cpio" 2>/dev/null)
check "customer ramdisk: the app under rootfs/" cmp "$TMP/cx/rootfs/app/hello.sh" <(printf '#!/bin/sh\necho "hello, $1"\n')
check "customer ramdisk: the whiteout removed /etc/motd" test ! -e "$TMP/cx/rootfs/etc/motd"
check "customer ramdisk: odyn at rootfs/sbin/odyn" cmp "$TMP/cx/rootfs/sbin/odyn" "$(dirname "$ENCLAVER")/odyn"
check "customer ramdisk: the manifest at rootfs/etc/enclaver/enclaver.yaml" cmp "$TMP/cx/rootfs/etc/enclaver/enclaver.yaml" "$TMP/enclaver.yaml"
check "customer ramdisk: cmd runs the Entrypoint and Cmd under odyn with WorkingDir and User" \
	grep -qx -- "/app/hello.sh" "$TMP/cx/cmd"
check "customer ramdisk: cmd keeps Cmd" grep -qx -- "world" "$TMP/cx/cmd"
check "customer ramdisk: cmd passes WorkingDir" grep -qx -- "/app" "$TMP/cx/cmd"
check "customer ramdisk: cmd passes User" grep -qx -- "1000:1000" "$TMP/cx/cmd"
check "customer ramdisk: env holds the image's Env" grep -qx "GREETING=hi" "$TMP/cx/env"

# ---------------------------------------------------------------- reproducible
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/b.eif" --tmpdir "$TMP" --no-ramdisk-cache >/dev/null 2>&1
check "two builds give identical EIF bytes (different temp folders, flattened again)" cmp "$TMP/a.eif" "$TMP/b.eif"

# ---------------------------------------------------------------- ramdisk cache
# A rebuild with nothing changed reuses the customer ramdisk kept in CACHE/ramdisks; any
# changed input (here the manifest) makes a new one; only the last 3 stay.
rd=$ENCLAVER_CACHE_DIR/ramdisks
check "the first build kept its customer ramdisk in the cache" test "$(ls "$rd"/*.cpio | wc -l)" = 1
check "the kept ramdisk is the EIF's customer ramdisk" cmp "$(ls "$rd"/*.cpio)" "$TMP/customer.cpio"
"$ENCLAVER" -v build --kernel-bundle "$KB" -f "$TMP/enclaver.yaml" --eif-only "$TMP/r.eif" >/dev/null 2>"$TMP/r.log"
check "a rebuild with nothing changed reuses it" grep -q "customer ramdisk unchanged: reusing" "$TMP/r.log"
check "the rebuild gives identical EIF bytes" cmp "$TMP/a.eif" "$TMP/r.eif"
check "a rebuild with --no-ramdisk-cache does not keep another" test "$(ls "$rd"/*.cpio | wc -l)" = 1
for n in 1 2 3; do
	manifest "$TMP/changed$n.yaml" "oci:$TMP/app:v1" $'defaults:\n  cpu_count: '"$((n + 1))"$'\n'
	"$ENCLAVER" -v build --kernel-bundle "$KB" -f "$TMP/changed$n.yaml" --eif-only "$TMP/changed$n.eif" >/dev/null 2>"$TMP/changed$n.log"
done
check "a changed manifest makes a new ramdisk" bash -c "! grep -q reusing '$TMP/changed1.log'"
customer_of "$TMP/changed3.eif" "$TMP/changed3.cpio"
check "its ramdisk carries the changed manifest" cmp "$(ls -t "$rd"/*.cpio | head -1)" "$TMP/changed3.cpio"
check "only the 3 most recent ramdisks stay" test "$(ls "$rd"/*.cpio | wc -l)" = 3
check "each kept ramdisk has its PCR2 beside it, the pruned ones' went with them" \
	test "$(ls "$rd" | sed -n 's/\.cpio$/.pcr2/p')" = "$(ls "$rd" | grep '\.pcr2$')"
check "no temporary files left in the ramdisk cache" test "$(ls "$rd" | grep -v '\.pcr2$' | grep -vc '\.cpio$')" = 0
rm -rf "$ENCLAVER_CACHE_DIR"
"${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/c.eif" >/dev/null 2>&1
check "a build with an empty cache gives the same bytes" cmp "$TMP/a.eif" "$TMP/c.eif"
(unset SOURCE_DATE_EPOCH; "${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/d1.eif" >/dev/null 2>&1)
sleep 1
(unset SOURCE_DATE_EPOCH; "${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/d2.eif" >/dev/null 2>&1)
check "without SOURCE_DATE_EPOCH two builds are identical too (the image's created time)" cmp "$TMP/d1.eif" "$TMP/d2.eif"
check "temporary folders are removed" test -z "$(ls -A "$TMPDIR")"

# ---------------------------------------------------------------- other transports, stdin, alias
skopeo --insecure-policy copy -q "oci:$TMP/app:v1" "docker-archive:$TMP/app-docker.tar:hello:v1" >/dev/null 2>&1
skopeo --insecure-policy copy -q "oci:$TMP/app:v1" "oci-archive:$TMP/app-oci.tar:v1" >/dev/null 2>&1
for src in "docker-archive:$TMP/app-docker.tar" "oci-archive:$TMP/app-oci.tar:v1"; do
	manifest "$TMP/other.yaml" "$src"
	"${B[@]}" -f "$TMP/other.yaml" --eif-only "$TMP/other.eif" >"$TMP/other.json" 2>"$TMP/other.err"
	# The manifests differ (sources.app), so the ramdisks differ by that file only.
	customer_of "$TMP/other.eif" "$TMP/other.cpio"
	rm -rf "$TMP/ox" && mkdir -p "$TMP/ox" && (cd "$TMP/ox" && cpio -idm --quiet <"$TMP/other.cpio" 2>/dev/null)
	check "${src%%:*}: same PCR1 as the OCI layout" test "$(json_get "$TMP/other.json" "d['Measurements']['PCR1']")" = \
		"$(json_get "$TMP/a.json" "d['Measurements']['PCR1']")"
	check "${src%%:*}: same customer ramdisk but for the manifest" \
		diff -r --no-dereference --exclude=enclaver.yaml "$TMP/cx" "$TMP/ox"
	check "${src%%:*}: same names, modes, owners, sizes and dates (cpio -tv)" test \
		"$(cpio -itv --quiet <"$TMP/customer.cpio" | grep -v enclaver.yaml)" = \
		"$(cpio -itv --quiet <"$TMP/other.cpio" | grep -v enclaver.yaml)"
done
"${B[@]}" -f - --eif-only "$TMP/stdin.eif" <"$TMP/enclaver.yaml" >/dev/null 2>&1
check "-f - reads the manifest from stdin" cmp "$TMP/a.eif" "$TMP/stdin.eif"
(cd "$TMP" && "$(dirname "$ENCLAVER")/enclaver-build" --kernel-bundle "$KB" --eif-only "$TMP/alias.eif" >/dev/null 2>&1)
check "enclaver-build = enclaver build (./enclaver.yaml by default)" cmp "$TMP/a.eif" "$TMP/alias.eif"
ENCLAVER_KERNEL_BUNDLE=$KB "$ENCLAVER" build -f "$TMP/enclaver.yaml" --eif-only "$TMP/env.eif" >/dev/null 2>&1
check "ENCLAVER_KERNEL_BUNDLE chooses the bundle" cmp "$TMP/a.eif" "$TMP/env.eif"

# ---------------------------------------------------------------- signed
openssl ecparam -name secp384r1 -genkey -noout -out "$TMP/key.pem" 2>/dev/null
openssl req -new -x509 -key "$TMP/key.pem" -subj /CN=enclaver-test -days 2 -out "$TMP/cert.pem" 2>/dev/null
manifest "$TMP/signed.yaml" "oci:$TMP/app:v1" $'signature:\n  certificate: cert.pem\n  key: key.pem\n'
"${B[@]}" -f "$TMP/signed.yaml" --eif-only "$TMP/signed.eif" >"$TMP/signed.json" 2>"$TMP/signed.err"
"$ENCLAVER" describe-eif "$TMP/signed.eif" >"$TMP/signed.desc" 2>&1
check "signed build: describe-eif verifies the signature" test "$(json_get "$TMP/signed.desc" "d['IsSigned']")" = True
check "signed build: PCR8 is the certificate's" test "$(json_get "$TMP/signed.json" "d['Measurements']['PCR8']")" = \
	"$("$ENCLAVER" pcr --signing-certificate "$TMP/cert.pem" | python3 -c 'import json,sys; print(json.load(sys.stdin)["PCR8"])')"

# ---------------------------------------------------------------- release image
"${B[@]}" -f "$TMP/enclaver.yaml" --output "oci:$TMP/rel1:enclave" >"$TMP/r1.json" 2>/dev/null
"${B[@]}" -f "$TMP/enclaver.yaml" --output "oci:$TMP/rel2:enclave" --tmpdir "$TMP" >"$TMP/r2.json" 2>/dev/null
d1=$(json_get "$TMP/r1.json" "d['Image']['Digest']")
check "release image digest printed" test -n "$d1"
check "same inputs, same release image digest" test "$d1" = "$(json_get "$TMP/r2.json" "d['Image']['Digest']")"
check "skopeo reads the release image" skopeo inspect "oci:$TMP/rel1:enclave"
skopeo inspect --config "oci:$TMP/rel1:enclave" >"$TMP/rel.config" 2>/dev/null
check "skopeo's manifest digest equals the printed one" test "$(skopeo inspect "oci:$TMP/rel1:enclave" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" = "$d1"
check "entrypoint is enclaver-run" test "$(json_get "$TMP/rel.config" "d['config']['Entrypoint']")" = "['/usr/local/bin/enclaver-run']"
check "labels carry PCR0" test "$(json_get "$TMP/rel.config" "d['config']['Labels']['io.enclaver.pcr0']")" = "$(json_get "$TMP/r1.json" "d['Measurements']['PCR0']")"
check "labels carry the source digest" test "$(json_get "$TMP/rel.config" "d['config']['Labels']['io.enclaver.source.app.digest']")" = "$app_digest"
release_eif "$TMP/rel1" enclave "$TMP/relx"
check "the release image holds the EIF" test -s "$TMP/relx/enclave/application.eif"
check "the release image holds the manifest" cmp "$TMP/relx/enclave/enclaver.yaml" "$TMP/enclaver.yaml"
"$ENCLAVER" describe-eif "$TMP/relx/enclave/application.eif" >"$TMP/relx.desc" 2>/dev/null
check "the release EIF's PCR0 equals the build output" test "$(json_get "$TMP/relx.desc" "d['Measurements']['PCR0']")" = "$(json_get "$TMP/r1.json" "d['Measurements']['PCR0']")"
# The runtime layer under the EIF layer: the static enclaver-run, which runs from the image.
check "two layers: the runtime, then the EIF" test "$(json_get "$TMP/rel.config" "len(d['rootfs']['diff_ids'])")" = 2
run_layer=$(python3 -c "
import json; root='$TMP/rel1'
idx = json.load(open(root + '/index.json'))
man = json.load(open(root + '/blobs/sha256/' + idx['manifests'][0]['digest'][7:]))
print(man['layers'][0]['digest'][7:])")
mkdir -p "$TMP/runx" && tar -C "$TMP/runx" -xf "$TMP/rel1/blobs/sha256/$run_layer"
check "the runtime layer holds enclaver-run.static at /usr/local/bin/enclaver-run" \
	cmp "$TMP/runx/usr/local/bin/enclaver-run" "$(dirname "$ENCLAVER")/enclaver-run.static"
check "enclaver-run in the image is executable" test -x "$TMP/runx/usr/local/bin/enclaver-run"
"$TMP/runx/usr/local/bin/enclaver-run" describe-eif --eif-file "$TMP/relx/enclave/application.eif" >"$TMP/runx.desc" 2>/dev/null
check "the image's enclaver-run reads the image's EIF (describe-eif: same PCR0)" test \
	"$(json_get "$TMP/runx.desc" "d['Measurements']['PCR0']")" = "$(json_get "$TMP/r1.json" "d['Measurements']['PCR0']")"
"$TMP/runx/usr/local/bin/enclaver-run" print-manifest --manifest-file "$TMP/relx/enclave/enclaver.yaml" >"$TMP/runx.yaml" 2>/dev/null
check "the image's enclaver-run prints the image's manifest" cmp "$TMP/runx.yaml" "$TMP/enclaver.yaml"
check "the report names the runtime" test "$(json_get "$TMP/r1.json" "d['Image']['Runtime']['Path']")" = "$(dirname "$ENCLAVER")/enclaver-run.static"
check_fails "ENCLAVER_RUN pointing nowhere" 'runtime layer.*no-such-run' env ENCLAVER_RUN="$TMP/no-such-run" \
	"${B[@]}" -f "$TMP/enclaver.yaml" --output "oci:$TMP/out-layout"

# ---------------------------------------------------------------- sources.odyn
# An odyn image (a one-layer OCI layout holding /usr/local/bin/odyn): the build puts that odyn in;
# --odyn beats it; an image without odyn is a clear error.
mkdir -p "$TMP/odyn-root/usr/local/bin" "$TMP/empty-root/etc"
cp "$(dirname "$ENCLAVER")/odyn" "$TMP/odyn-root/usr/local/bin/odyn"
printf 'marker\n' >>"$TMP/odyn-root/usr/local/bin/odyn" # a different odyn than the default
printf 'x\n' >"$TMP/empty-root/etc/x"
for r in odyn empty; do
	tar -C "$TMP/$r-root" --sort=name --mtime=@1700000000 --owner=0 --group=0 -czf "$TMP/$r.tar.gz" .
	python3 "$ROOT/scripts/lib/layout-from-layer.py" "$TMP/$r.tar.gz" "$TMP/$r-image" v1
done
manifest "$TMP/odyn.yaml" "oci:$TMP/app:v1"
sed -i "s|^  app: .*|&\n  odyn: oci:$TMP/odyn-image:v1|" "$TMP/odyn.yaml"
"${B[@]}" -f "$TMP/odyn.yaml" --eif-only "$TMP/odyn.eif" >"$TMP/odyn.json" 2>"$TMP/odyn.log"
check "sources.odyn: the build succeeds" test -s "$TMP/odyn.eif"
customer_of "$TMP/odyn.eif" "$TMP/odyn.cpio"
mkdir -p "$TMP/odyn-x" && (cd "$TMP/odyn-x" && cpio -idm --quiet <"$TMP/odyn.cpio" 2>/dev/null)
check "sources.odyn: the image's odyn is rootfs/sbin/odyn" cmp "$TMP/odyn-x/rootfs/sbin/odyn" "$TMP/odyn-root/usr/local/bin/odyn"
check "sources.odyn: the report names the image" test "$(json_get "$TMP/odyn.json" "d['Sources']['Odyn']['Image']")" = "oci:$TMP/odyn-image:v1"
"${B[@]}" --odyn "$(dirname "$ENCLAVER")/odyn" -f "$TMP/odyn.yaml" --eif-only "$TMP/odyn2.eif" >/dev/null 2>"$TMP/odyn2.log"
customer_of "$TMP/odyn2.eif" "$TMP/odyn2.cpio"
mkdir -p "$TMP/odyn2-x" && (cd "$TMP/odyn2-x" && cpio -idm --quiet <"$TMP/odyn2.cpio" 2>/dev/null)
check "--odyn beats sources.odyn" cmp "$TMP/odyn2-x/rootfs/sbin/odyn" "$(dirname "$ENCLAVER")/odyn"
check "--odyn over sources.odyn is said" grep -q "sources.odyn.*overridden" "$TMP/odyn2.log"
sed -i "s|odyn-image|empty-image|" "$TMP/odyn.yaml"
check_fails "sources.odyn: an image without odyn" 'sources.odyn.*neither /usr/local/bin/odyn nor /sbin/odyn' \
	"${B[@]}" -f "$TMP/odyn.yaml" --eif-only "$TMP/out.eif"
sed -i "s|empty-image:v1|no-such-image:v1|" "$TMP/odyn.yaml"
check_fails "sources.odyn: an image that does not exist" 'sources.odyn.*no-such-image' \
	"${B[@]}" -f "$TMP/odyn.yaml" --eif-only "$TMP/out.eif"

# ---------------------------------------------------------------- bad input
printf 'version: v1\nname: x\ntarget: x:e\nsources:\n  app: oci:%s\nbogus: 1\n' "$TMP/app:v1" >"$TMP/bad.yaml"
check_fails "bad manifest: names the key, line and column" 'bogus.*|line 5' "${B[@]}" -f "$TMP/bad.yaml" --eif-only "$TMP/out.eif"
check_fails "missing manifest file" 'nope.yaml' "${B[@]}" -f "$TMP/nope.yaml" --eif-only "$TMP/out.eif"
manifest "$TMP/noimg.yaml" "oci:$TMP/app:nosuchtag"
check_fails "an image ref that does not exist" 'sources.app.*nosuchtag' "${B[@]}" -f "$TMP/noimg.yaml" --eif-only "$TMP/out.eif"
manifest "$TMP/nolayout.yaml" "oci:$TMP/no-such-layout:v1"
check_fails "an OCI layout that does not exist" 'sources.app.*no-such-layout' "${B[@]}" -f "$TMP/nolayout.yaml" --eif-only "$TMP/out.eif"
mkdir -p "$TMP/kb-empty" && cp "$KB/cmdline" "$TMP/kb-empty/"
check_fails "a kernel bundle without a kernel" 'kb-empty.*(kernel|bzImage)' "$ENCLAVER" build --kernel-bundle "$TMP/kb-empty" -f "$TMP/enclaver.yaml" --eif-only "$TMP/out.eif"
check_fails "a missing odyn is an error, never faked" 'odyn.*no-odyn' "${B[@]}" --odyn "$TMP/no-odyn" -f "$TMP/enclaver.yaml" --eif-only "$TMP/out.eif"
check_fails "ENCLAVER_ODYN pointing nowhere" 'odyn' env ENCLAVER_ODYN="$TMP/no-odyn" "${B[@]}" -f "$TMP/enclaver.yaml" --eif-only "$TMP/out.eif"
check_fails "--platform that does not match the kernel" 'arm64.*amd64|does not match' "${B[@]}" --platform linux/arm64 -f "$TMP/enclaver.yaml" --eif-only "$TMP/out.eif"
check_fails "--offline with a registry source not in the cache" 'offline|cache' "${B[@]}" --offline -f <(printf 'version: v1\nname: x\ntarget: x:e\nsources:\n  app: 127.0.0.1:9/none:v1\n') --eif-only "$TMP/out.eif"
# A layer whose bytes do not match its digest.
cp -r "$TMP/app" "$TMP/app-bad"
layer=$(python3 -c "import json; m=json.load(open('$TMP/app-bad/blobs/sha256/'+'$app_digest'[7:])); print(m['layers'][1]['digest'][7:])")
chmod u+w "$TMP/app-bad/blobs/sha256/$layer" && printf 'corrupt' >>"$TMP/app-bad/blobs/sha256/$layer"
manifest "$TMP/corrupt.yaml" "oci:$TMP/app-bad:v1"
check_fails "a corrupt layer" 'digest|bytes, the manifest says|mismatch' env ENCLAVER_CACHE_DIR="$TMP/cache-bad" "${B[@]}" -f "$TMP/corrupt.yaml" --output "oci:$TMP/out-layout"
check_fails "--push to a reference that is not an image reference" 'invalid reference|push|reference' "${B[@]}" -f "$TMP/enclaver.yaml" --push='not a ref'
check_fails "--eif-only with --push is a usage error" 'eif-only' "${B[@]}" -f "$TMP/enclaver.yaml" --push --eif-only "$TMP/out.eif"
check "no output left behind by failures" test ! -e "$TMP/out.eif" -a ! -e "$TMP/out-layout"
check "no temporary folders left behind by failures" test -z "$(ls -A "$TMPDIR")"

# ---------------------------------------------------------------- memory
# Too little memory for the EIF (kernel + ramdisks twice + 128 MiB) is a warning at build time.
manifest "$TMP/small.yaml" "oci:$TMP/app:v1" $'defaults:\n  memory_mb: 64\n'
"${B[@]}" --no-ramdisk-cache -f "$TMP/small.yaml" --eif-only "$TMP/small.eif" >/dev/null 2>"$TMP/small.err"
check "memory_mb too small: the build still succeeds" test -s "$TMP/small.eif"
check "memory_mb too small: a warning names the field, the MiB given and needed" \
	grep -Eq 'small.yaml: defaults.memory_mb is 64 MiB, but this EIF needs at least [0-9]+ MiB.*set defaults.memory_mb to [0-9]+ or more' "$TMP/small.err"
"${B[@]}" --no-ramdisk-cache -f "$TMP/enclaver.yaml" --eif-only "$TMP/default-mem.eif" >/dev/null 2>"$TMP/default-mem.err"
check "the default memory (4096 MiB) holds the test app: no warning" bash -c "! grep -q memory_mb '$TMP/default-mem.err'"

done_testing
