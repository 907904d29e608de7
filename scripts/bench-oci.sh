#!/usr/bin/env bash
# bench-oci.sh: pull and push of a ~250 MB, 5-layer image through a plain
# loopback docker-registry: enclaver next to skopeo copy and raw curl (the
# floor), medians of RUNS runs, plus a cached second pull and peak memory.
# Prints figures and ratios only; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ENCLAVER=${ENCLAVER:-$PWD/bin/enclaver}
RUNS=${RUNS:-3}
LAYER_MB=${LAYER_MB:-50}
W=$(mktemp -d "${TMPDIR:-/tmp}/enclaver-bench.XXXXXX")
trap 'scripts/test-registry.sh stop "$W/reg"; scripts/test-registry.sh stop "$W/preg"; rm -rf "$W"' EXIT
mkdir -p "$W/reg"
PORT=$(scripts/test-registry.sh start "$W/reg" plain)
R=127.0.0.1:$PORT
export ENCLAVER_CACHE_DIR=$W/cache
# skopeo remembers where blobs live (and then mounts instead of uploading):
# give it a home of its own, emptied before each push.
export HOME=$W/home

# The image: 5 incompressible layers written straight into an OCI layout
# (the registry does not look inside layers, so random bytes stand in). They
# are real gzip streams (level 0, stored blocks): skopeo would otherwise
# compress them on the way in and the registry would hold other digests.
python3 - "$W/img" "$LAYER_MB" <<'PY'
import gzip, hashlib, json, os, sys
root, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{root}/blobs/sha256")
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{root}/blobs/sha256/{d}", "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
raws = [os.urandom(mb << 20) for _ in range(5)]
layers = [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **put(gzip.compress(r, 0, mtime=0))) for r in raws]
config = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
              "diff_ids": ["sha256:" + hashlib.sha256(r).hexdigest() for r in raws]}}).encode())
m = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **config), "layers": layers}).encode())
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{root}/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
          annotations={"org.opencontainers.image.ref.name": "v1"}, **m)]}, open(f"{root}/index.json", "w"))
PY
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$W/img:v1" "docker://$R/bench/img:v1"
# The config and the layers (the manifest is fetched as a manifest, not a blob).
BLOBS=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(" ".join(d["digest"][7:] for d in [m["config"]] + m["layers"]))' \
	"$W/img/blobs/sha256/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$W/img/index.json")")
# The floor must fetch what the registry holds: every blob of the layout must be there.
for b in $BLOBS; do
	curl -sfI -o /dev/null "http://$R/v2/bench/img/blobs/sha256:$b" ||
		{ echo "bench-oci: blob $b is not in the registry (did skopeo rewrite the image?)" >&2; exit 1; }
done
TOTAL=$(du -cb "$W"/img/blobs/sha256/* | tail -n 1 | cut -f1)

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# timed CMD...: prints "wall cpu" in seconds, cpu being user+sys of CMD and
# its children (the fair figure on a shared, loaded machine).
timed() {
	local f
	f=$(mktemp)
	if [ "$(type -t "$1")" = function ]; then # time runs programs: a function goes through bash
		set -- bash -c "$(declare -p BLOBS W R N PR 2>/dev/null); $(declare -f "$1"); $*"
	fi
	/usr/bin/time -o "$f" -f '%e %U %S' "$@" >/dev/null 2>&1 || true # as before: figures even when a run fails
	awk 'END {printf "%s %.2f\n", $1, $2 + $3}' "$f"
	rm -f "$f"
}

declare -A T C
run() { # NAME SETUP-FN CMD...
	local name=$1 setup=$2
	shift 2
	local ws=() cs=() w c
	for i in $(seq 1 "$RUNS"); do
		$setup "$i"
		read -r w c < <(timed "$@")
		ws+=("$w")
		cs+=("$c")
	done
	T[$name]=$(printf '%s\n' "${ws[@]}" | median)
	C[$name]=$(printf '%s\n' "${cs[@]}" | median)
	printf '%-34s %7.2f s wall (%s) %6.2f s cpu (%s)\n' "$name" "${T[$name]}" "$(printf '%.2f ' "${ws[@]}")" \
		"${C[$name]}" "$(printf '%.2f ' "${cs[@]}")"
}

fresh_pull() { rm -rf "$ENCLAVER_CACHE_DIR" "$W/out" "$W/skout" "$W/curl"; mkdir -p "$W/curl"; }
curl_pull() {
	# shellcheck disable=SC2086
	printf '%s\n' $BLOBS | xargs -P 6 -I{} curl -sf -o "$W/curl/{}" "http://$R/v2/bench/img/blobs/sha256:{}"
}
# Every push goes to a registry of its own: skopeo remembers (as root, in
# /var/lib/containers/cache) where blobs live and would mount them instead.
N=0
fresh_push() {
	N=$((N + 1))
	[ -n "${PR:-}" ] && scripts/test-registry.sh stop "$W/preg"
	rm -rf "$W/preg"
	mkdir -p "$W/preg"
	PR=127.0.0.1:$(scripts/test-registry.sh start "$W/preg" plain)
	export PR
}
curl_push() {
	for b in $BLOBS; do
		(
			loc=$(curl -sf -X POST -D - -o /dev/null "http://$PR/v2/curl$N/img/blobs/uploads/" | tr -d '\r' |
				awk -F': ' 'tolower($1)=="location"{print $2}')
			case $loc in http*) ;; *) loc="http://$PR$loc" ;; esac
			sep='?'
			case $loc in *\?*) sep='&' ;; esac
			curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$W/img/blobs/sha256/$b" \
				"$loc${sep}digest=sha256:$b" -o /dev/null
		) &
	done
	wait
}

echo "image: 5 layers x $LAYER_MB MiB, $TOTAL bytes of blobs; $RUNS runs each, medians"
run "pull: curl, 6 parallel (floor)" fresh_pull curl_pull
run "pull: skopeo copy -> oci:" fresh_pull skopeo --insecure-policy copy -q --src-tls-verify=false \
	"docker://$R/bench/img:v1" "oci:$W/skout:v1"
run "pull: enclaver -> cache" fresh_pull "$ENCLAVER" pull -q --insecure "$R/bench/img:v1"
run "pull: enclaver -> cache + oci:" fresh_pull "$ENCLAVER" pull -q --insecure "$R/bench/img:v1" --output "oci:$W/out:v1"
noop() { :; }
run "pull again: enclaver from the cache" noop "$ENCLAVER" pull -q --insecure "$R/bench/img:v1"
run "push: curl uploads, parallel (floor)" fresh_push curl_push
run "push: skopeo copy oci: ->" fresh_push bash -c "skopeo --insecure-policy copy -q --dest-tls-verify=false \
	oci:$W/img:v1 docker://\$PR/sk/img:v1"
run "push: enclaver oci: ->" fresh_push bash -c "\"$ENCLAVER\" push -q --insecure oci:$W/img:v1 docker://\$PR/enc/img:v1"

rm -rf "$ENCLAVER_CACHE_DIR"
PULL_KB=$( { /usr/bin/time -f %M "$ENCLAVER" pull -q --insecure "$R/bench/img:v1" >/dev/null; } 2>&1 | tail -n 1)
PUSH_KB=$( { /usr/bin/time -f %M "$ENCLAVER" push -q --insecure "oci:$W/img:v1" "docker://$R/mem/img:v1" >/dev/null; } 2>&1 | tail -n 1)

ratio() { echo "scale=2; $1 / $2" | bc -l; }
# both KEY NUM DEN: "wall Wx, cpu Cx"
both() { echo "wall $(ratio "${T[$1]}" "${T[$2]}")x, cpu $(ratio "${C[$1]}" "${C[$2]}")x"; }
echo
echo "pull: enclaver/skopeo $(both "pull: enclaver -> cache + oci:" "pull: skopeo copy -> oci:") (target <= 0.7)"
echo "pull: enclaver/curl $(both "pull: enclaver -> cache" "pull: curl, 6 parallel (floor)") (target <= 1.5)"
echo "pull from cache: $(both "pull: enclaver -> cache" "pull again: enclaver from the cache") faster than the first (target >= 10)"
echo "push: enclaver/skopeo $(both "push: enclaver oci: ->" "push: skopeo copy oci: ->") (target <= 1.0)"
echo "push: enclaver/curl $(both "push: enclaver oci: ->" "push: curl uploads, parallel (floor)") (target <= 1.1)"
echo "peak RSS: pull $((PULL_KB / 1024)) MiB, push $((PUSH_KB / 1024)) MiB (target < 64)"
