#!/usr/bin/env bash
# test_build_release: the release image is written once. Its new blobs go into a staging folder
# beside the cache's blobs while it is put (no layout in the build's temp folder, nothing left of
# either afterwards); an --output build writes them to disk once, not twice (bytes counted by the
# kernel); every output kind and a push hold the same digest; a failed --output leaves an existing
# layout as it was.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/cli/helpers/build_fixtures.sh"

require_tools docker-registry skopeo
build_test_env
printf 'version: v1\nname: hello\ntarget: hello:enclave\nsources:\n  app: oci:%s/app:v1\n' "$TMP" >"$TMP/enclaver.yaml"
B+=(-f "$TMP/enclaver.yaml")
STAGING=$ENCLAVER_CACHE_DIR/staging

registry_start

# nothing_left: no build folder in the temp folder, no staging folder in the cache.
nothing_left() { test -z "$(ls -A "$TMPDIR")" && test -z "$(ls -A "$STAGING" 2>/dev/null)"; }

# ---------------------------------------------------------------- one digest, every output kind
"${B[@]}" --output "oci:$TMP/rel:enclave" >"$TMP/oci.json" 2>"$TMP/oci.err"
check "--output oci: exits 0" test -s "$TMP/oci.json"
digest=$(json_get "$TMP/oci.json" "d['Image']['Digest']")
check "nothing left in the temp folder or the cache's staging folder" nothing_left
for out in "oci-archive:$TMP/rel.tar:enclave" "docker-archive:$TMP/rel-docker.tar:hello:enclave" "docker://$R/hello/rel:enclave"; do
	if [ "${out%%:*}" = docker ]; then
		"${B[@]}" --tls-verify=false --push="${out#docker://}" >"$TMP/k.json" 2>"$TMP/k.err"
	else
		"${B[@]}" --output "$out" >"$TMP/k.json" 2>"$TMP/k.err"
	fi
	check "${out%%:*}: the same release image digest" test "$(json_get "$TMP/k.json" "d['Image']['Digest']")" = "$digest"
	check "${out%%:*}: the destination holds it" test "$(json_get "$TMP/k.json" "d['Image']['Written'][0]['Digest']")" = "$digest"
done
check "skopeo reads the oci-archive's image" test "$(skopeo inspect --raw "oci-archive:$TMP/rel.tar:enclave" | sha256sum | cut -d' ' -f1)" = "${digest#sha256:}"
check "skopeo reads the docker-archive" skopeo inspect "docker-archive:$TMP/rel-docker.tar"
check "the registry holds the digest" test "$(skopeo inspect --raw --tls-verify=false "docker://$R/hello/rel:enclave" | sha256sum | cut -d' ' -f1)" = "${digest#sha256:}"
check "nothing left after the archives and the push" nothing_left

# ---------------------------------------------------------------- bytes written
# The kernel counts the bytes a process dirties for the disk (rusage oublock); they are
# counted only where blocks are (not on tmpfs), so first a probe.
written() { # written CMD...: bytes CMD and its children wrote, on stdout; CMD's output to $TMP/w.out
	python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.STDOUT)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock * 512 if r.returncode == 0 else -1)' "$TMP/w.out" "$@"
}
probe=$(written dd if=/dev/zero of="$TMP/probe" bs=1M count=4 conv=fsync)
if [ "${probe:-0}" -lt $((4 << 20)) ]; then
	ok "# skip bytes written: the kernel counts none under $TMP ($probe for a 4 MiB probe)"
else
	# The new blobs' size: every layer here is ours (no sleeve), and the config.
	new_bytes=$(python3 -c "
import json; root='$TMP/rel'
idx = json.load(open(root + '/index.json'))
man = json.load(open(root + '/blobs/sha256/' + idx['manifests'][0]['digest'][7:]))
print(man['config']['size'] + sum(l['size'] for l in man['layers']))")
	# The customer ramdisk is in the ramdisk cache by now: each build writes the EIF and what
	# follows it. --eif-only is the base line: no release image at all.
	eif_only=$(written "${B[@]}" --eif-only "$TMP/x.eif")
	to_layout=$(written "${B[@]}" --output "oci:$TMP/rel2:enclave")
	to_push=$(written "${B[@]}" --tls-verify=false --push="$R/hello/bytes:enclave")
	extra_layout=$((to_layout - eif_only))
	extra_push=$((to_push - eif_only))
	echo "# new blobs $new_bytes bytes; written beyond --eif-only: --output $extra_layout, --push $extra_push"
	check "--output oci: writes the release image's new blobs once ($extra_layout bytes for $new_bytes)" \
		test "$eif_only" -gt 0 -a "$extra_layout" -gt $((new_bytes / 2)) -a "$extra_layout" -lt $((new_bytes * 3 / 2))
	check "--push: once too ($extra_push bytes for $new_bytes)" \
		test "$to_push" -gt 0 -a "$extra_push" -lt $((new_bytes * 3 / 2))
fi

# ---------------------------------------------------------------- while it is put
# A registry whose blob uploads wait for a go: mid-push, the blobs are in the cache's staging
# folder and the build's temp folder has no layout (no blobs/, index.json or oci-layout).
proxy_start hold
"${B[@]}" --tls-verify=false --push="$PR/hello/held:enclave" >"$TMP/held.json" 2>"$TMP/held.err" &
build_pid=$!
check "the push reaches the blob uploads" wait_for grep -q "upload held" "$TMP/proxy.log"
layout_files=$(find "$TMPDIR" \( -name blobs -o -name index.json -o -name oci-layout \) | wc -l)
check "mid-push: no layout in the build's temp folder" test "$layout_files" -eq 0
staged=$(find "$STAGING" -type f -name '[0-9a-f]*' | wc -l)
check "mid-push: the new blobs (config, runtime and EIF layers) in the cache's staging folder" test "$staged" -eq 3
touch "$TMP/proxy.log.go"
wait "$build_pid"
check "the held push then completes" test $? -eq 0 -a "$(json_get "$TMP/held.json" "d['Image']['Digest']")" = "$digest"
check "nothing left after it" nothing_left
proxy_stop

# ---------------------------------------------------------------- a failed --output
# An existing layout where the EIF layer's blob path is taken by a folder (the digest is known
# beforehand: the image is deterministic): the build fails naming it, the layout is byte for byte
# what it was, and nothing is left.
snapshot() { (cd "$1" && find . -printf '%y %m %p\n' | sort && find . -type f -exec sha256sum {} + | sort); }
eif_layer=$(python3 -c "
import json; root='$TMP/rel'
idx = json.load(open(root + '/index.json'))
man = json.load(open(root + '/blobs/sha256/' + idx['manifests'][0]['digest'][7:]))
print(man['layers'][-1]['digest'])")
check "a layout to write into" "$ENCLAVER" copy "oci:$TMP/app:v1" "oci:$TMP/existing:app"
mkdir "$TMP/existing/blobs/sha256/${eif_layer#sha256:}"
snapshot "$TMP/existing" >"$TMP/before"
check_fails "a release image that cannot be put fails, naming the blob" "$eif_layer" \
	"${B[@]}" --output "oci:$TMP/existing:enclave"
snapshot "$TMP/existing" >"$TMP/after"
check "the layout is as it was" diff "$TMP/before" "$TMP/after"
check "nothing left after the failure" nothing_left

# ---------------------------------------------------------------- a killed build's staging folder
# A day-old staging folder goes at the next cache open; a fresh one (a live build's) stays.
mkdir -p "$STAGING/release.old" "$STAGING/release.live"
touch -d '2 days ago' "$STAGING/release.old"
"$ENCLAVER" cache verify >/dev/null 2>&1
check "a day-old staging folder is swept" test ! -e "$STAGING/release.old"
check "a fresh one stays" test -d "$STAGING/release.live"
done_testing
