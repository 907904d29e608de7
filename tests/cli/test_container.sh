#!/usr/bin/env bash
# test_container.sh: the release image of the built-in example as a container engine runs it
# (docs/deploy.md): under podman, unprivileged, enclaver-run names the first missing piece of
# the machine (the device, AF_VSOCK, hugepages) with its own exit code (110, 111, 112); `podman
# kube play` runs deploy/kubernetes/deployment.yaml as written (JSON logs) to the "no /dev/nitro_enclaves"
# error; `systemd-analyze verify` passes deploy/systemd/enclaver@.service; the ECS task definition
# has only documented fields of the right types. Without podman the podman checks are counted
# as not run. Every container, pod and image the test makes is removed at the end.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$ROOT/tests/cli/helpers/build_fixtures.sh"
ODYN=$ROOT/build/release/bin/odyn
EXAMPLE_YAML=$ROOT/testdata/example/enclaver.yaml
KUBE=$ROOT/deploy/kubernetes/deployment.yaml
UNIT=$ROOT/deploy/systemd/enclaver@.service
ECS=$ROOT/deploy/ecs/task-definition.json
# The image name the deployment files use (tagged onto the loaded image for `kube play`).
KUBE_IMAGE=$(sed -n 's/^ *image: *//p' "$KUBE" | head -n 1)
CPU_COUNT=$(sed -n 's/^ *cpu_count: *//p' "$EXAMPLE_YAML")
MEMORY_MB=$(sed -n 's/^ *memory_mb: *//p' "$EXAMPLE_YAML")

# ---------------------------------------------------------------- the files, without podman
# ECS: documented fields and types, plus what an enclave needs; a broken copy must be caught.
check "the ECS task definition has documented fields only, of the right types" \
	python3 "$ROOT/tests/cli/helpers/ecs_taskdef_check.py" "$ECS" "$CPU_COUNT"
python3 - "$ECS" "$TMP/ecs-bad.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
del d["family"]
d["containerDefinitions"][0]["linuxParameters"]["devices"] = []
d["containerDefinitions"][0]["stopTimeout"] = "45"
json.dump(d, open(sys.argv[2], "w"))
PY
python3 "$ROOT/tests/cli/helpers/ecs_taskdef_check.py" "$TMP/ecs-bad.json" "$CPU_COUNT" >"$TMP/ecs-bad.out"
if grep -q '^task.family: required' "$TMP/ecs-bad.out" &&
	grep -q 'devices: /dev/nitro_enclaves is not passed in' "$TMP/ecs-bad.out" &&
	grep -q 'stopTimeout: expected int, got str' "$TMP/ecs-bad.out"; then
	ok "the ECS check names a missing family, device and a mistyped field"
else
	not_ok "the ECS check names a missing family, device and a mistyped field" "$(cat "$TMP/ecs-bad.out")"
fi

# systemd: verify checks the ExecStart binary exists, so the copy verified points at the
# enclaver under test instead of /usr/local/bin/enclaver (the only line changed). verify exits 0
# on bad values too (it only warns): no output at all is the pass.
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$TMP/units"
	sed "s|/usr/local/bin/enclaver |$ENCLAVER |" "$UNIT" >"$TMP/units/enclaver@.service"
	systemd-analyze verify --man=no "$TMP/units/enclaver@hello.service" >"$TMP/verify.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && [ ! -s "$TMP/verify.out" ]; then
		ok "systemd-analyze verify passes deploy/systemd/enclaver@.service"
	else
		not_ok "systemd-analyze verify passes deploy/systemd/enclaver@.service" "exit $rc" "$(cat "$TMP/verify.out")"
	fi
	sed 's/^Restart=on-failure/Restart=on-fail/' "$TMP/units/enclaver@.service" >"$TMP/units/broken@.service"
	systemd-analyze verify --man=no "$TMP/units/broken@hello.service" >"$TMP/verify-bad.out" 2>&1
	if grep -q "restart specifier.*on-fail" "$TMP/verify-bad.out"; then
		ok "systemd-analyze verify warns about a broken copy (the check can fail)"
	else
		not_ok "systemd-analyze verify warns about a broken copy (the check can fail)" "$(cat "$TMP/verify-bad.out")" "$(grep -n "^Restart" "$TMP/units/broken@.service")"
	fi
	stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$UNIT")
	check "the unit stops with SIGTERM, restarts on failure, waits longer than the run's 30 s" \
		bash -c "grep -qx 'KillSignal=SIGTERM' '$UNIT' && grep -qx 'Restart=on-failure' '$UNIT' && [ '${stop:-0}' -gt 30 ]"
else
	echo "# not run: 3 systemd unit checks (systemd-analyze is not installed)"
fi

# Kubernetes, read as YAML: the resources match the example's manifest; no privilege.
python3 - "$KUBE" "$CPU_COUNT" "$MEMORY_MB" >"$TMP/kube.out" 2>&1 <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
cpu, mem = int(sys.argv[2]), int(sys.argv[3])
spec = doc["spec"]["template"]["spec"]
c = spec["containers"][0]
bad = []
for side in ("requests", "limits"):
    r = c["resources"][side]
    if r.get("aws.ec2.nitro/nitro_enclaves") != "1": bad.append(f"{side}: the device")
    if r.get("hugepages-2Mi") != f"{mem}Mi": bad.append(f"{side}: hugepages-2Mi {r.get('hugepages-2Mi')} != {mem}Mi")
    if str(r.get("cpu")) != str(cpu): bad.append(f"{side}: cpu {r.get('cpu')} != {cpu}")
sc = c.get("securityContext", {})
if sc.get("privileged") is not False: bad.append("privileged")
if spec.get("hostPID") or spec.get("hostNetwork"): bad.append("host PID or network")
if spec.get("terminationGracePeriodSeconds", 30) <= 30: bad.append("terminationGracePeriodSeconds")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
check "the Deployment requests the device, ${MEMORY_MB} MiB of hugepages and $CPU_COUNT CPUs, unprivileged" test $? -eq 0

# ---------------------------------------------------------------- podman
PODMAN_CHECKS=9
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
	echo "# not run: $PODMAN_CHECKS podman checks (podman or runc is not installed)"
	done_testing
	exit
fi
# These machines: runc (crun refuses the cgroup hybrid mode) and no default rlimits.
printf '[containers]\ndefault_ulimits = []\n' >"$TMP/containers.conf"
export CONTAINERS_CONF=$TMP/containers.conf
P=(podman --runtime runc)
NAME=enclaver-test-$$
IMAGE_ID=
tagged=
# kube play builds a local pause image when there is none: removed again if it was not there.
PAUSE=localhost/podman-pause:$(podman version --format '{{.Client.Version}}')-0
pause_before=$(podman images -q "$PAUSE" 2>/dev/null)
cleanup() {
	local i
	for i in 1 2 3 4; do podman rm -f "$NAME-$i" >/dev/null 2>&1; done
	if [ -n "$tagged" ]; then
		"${P[@]}" kube down "$KUBE" >/dev/null 2>&1
		podman pod rm -f hello-enclave-pod-0 >/dev/null 2>&1
		podman rmi "$KUBE_IMAGE" >/dev/null 2>&1
	fi
	[ -z "$IMAGE_ID" ] || podman rmi "$IMAGE_ID" >/dev/null 2>&1
	[ -n "$pause_before" ] || podman rmi "$PAUSE" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

# The release image of `make example`, built here (scripts/example.sh's steps).
KB=$TMP/kb
make_kernel_bundle "$KB"
export SOURCE_DATE_EPOCH=1704067200 ENCLAVER_CACHE_DIR=$TMP/cache
# The release image carries the static enclaver-run of the release build (the ASan build's is not
# static).
export ENCLAVER_RUN=${ENCLAVER_RUN:-$ROOT/build/release/bin/enclaver-run.static}
make_example_release "$TMP"
# The same first check outside a container, with the enclaver under test (the ASan build's too).
if [ ! -e /dev/nitro_enclaves ]; then
	"$ENCLAVER" run "oci:$TMP/release:enclave" >"$TMP/host.out" 2>"$TMP/host.err"
	rc=$?
	if [ $rc -eq 110 ] && grep -q 'no Nitro Enclaves driver here' "$TMP/host.err" && ! grep -q Sanitizer "$TMP/host.err"; then
		ok "enclaver run on this host (no device) exits 110"
	else
		not_ok "enclaver run on this host (no device) exits 110" "exit $rc" "$(head -c 2000 "$TMP/host.err")"
	fi
else
	echo "# not run: enclaver run without a device (this host has /dev/nitro_enclaves)"
fi
# Under a name of its own (podman's name for an OCI folder comes from its path, and $TMP's has
# capitals): the build is deterministic, so another copy of the same image may be loaded already,
# and only this name is removed at the end.
LOCAL=localhost/enclaver-test-$$:enclave
skopeo copy -q "oci:$TMP/release:enclave" "containers-storage:$LOCAL" >"$TMP/load.out" 2>&1 &&
	IMAGE_ID=$LOCAL
check "podman loads the release image (skopeo into containers-storage)" test -n "$IMAGE_ID"

# run_piece N EXPECTED_RC PATTERN NAME PODMAN-RUN-OPTIONS...: runs the image unprivileged, no
# capabilities, no host PID or network; passes when it exits EXPECTED_RC and stderr has PATTERN.
run_piece() {
	local n=$1 want=$2 pattern=$3 name=$4
	shift 4
	timeout 120 "${P[@]}" run --name "$NAME-$n" --cap-drop all --security-opt no-new-privileges "$@" \
		"$IMAGE_ID" >"$TMP/run$n.out" 2>"$TMP/run$n.err"
	local rc=$?
	if [ $rc -eq "$want" ] && grep -Eq -- "$pattern" "$TMP/run$n.err"; then
		ok "$name (exit $rc)"
	else
		not_ok "$name" "exit $rc, expected $want" "$(head -c 2000 "$TMP/run$n.err")"
	fi
	podman rm -f "$NAME-$n" >/dev/null 2>&1
}

# 1. Nothing given: the device is the first thing missing.
run_piece 1 110 'no Nitro Enclaves driver here: /dev/nitro_enclaves does not exist.*aws.ec2.nitro/nitro_enclaves' \
	"no /dev/nitro_enclaves: exit 110, naming the device plugin's resource"
# 2. A character device at the path (/dev/null: the preflight only opens it; no ioctl is made
# before the other pieces are checked) and a seccomp profile refusing AF_VSOCK as containerd's
# and docker's default profiles do: podman's default plus that one rule.
python3 - /usr/share/containers/seccomp.json "$TMP/seccomp-novsock.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
for s in p["syscalls"]:
    if "socket" in s["names"] and s["action"] == "SCMP_ACT_ALLOW":
        s["args"] = [a for a in (s.get("args") or []) if a["index"] != 0] + [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]
p["syscalls"].insert(0, {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                         "args": [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]})
json.dump(p, open(sys.argv[2], "w"))
PY
run_piece 2 111 'no vsock: socket\(AF_VSOCK\) was refused.*seccomp' \
	"device given, AF_VSOCK refused by seccomp: exit 111, naming the profile" \
	--device /dev/null:/dev/nitro_enclaves --security-opt seccomp="$TMP/seccomp-novsock.json"
# 3. Device and vsock (podman's own default profile allows AF_VSOCK): hugepages are next. The
# check is only meaningful when the host has fewer free hugepages than the example needs.
free_mib=$(python3 -c '
import glob
t = 0
for d in glob.glob("/sys/kernel/mm/hugepages/hugepages-*kB"):
    kb = int(d.rsplit("-", 1)[1][:-2])
    f = int(open(d + "/free_hugepages").read()) - int(open(d + "/resv_hugepages").read())
    t += max(f, 0) * kb // 1024
print(t)')
python3 -c 'import socket; socket.socket(40, socket.SOCK_STREAM).close()' 2>/dev/null && host_vsock=1 || host_vsock=0
if [ "$host_vsock" = 0 ]; then
	run_piece 3 111 'no vsock: socket\(AF_VSOCK\) failed.*no vsock transport' \
		"device given, host without vsock: exit 111, naming the transport" --device /dev/null:/dev/nitro_enclaves
elif [ "$free_mib" -lt "$MEMORY_MB" ]; then
	run_piece 3 112 "not enough hugepages for $MEMORY_MB MiB of enclave memory.*request hugepages-2Mi" \
		"device and vsock given, $free_mib MiB of hugepages free: exit 112, naming the pod resource" \
		--device /dev/null:/dev/nitro_enclaves
else
	echo "# not run: the hugepages check (this host has $free_mib MiB of hugepages free)"
fi
# ---------------------------------------------------------------- podman kube play
podman tag "$IMAGE_ID" "$KUBE_IMAGE" && tagged=1
"${P[@]}" kube play "$KUBE" >"$TMP/play.out" 2>&1
check "podman kube play runs deploy/kubernetes/deployment.yaml as written" test $? -eq 0
ctr=hello-enclave-pod-0-enclave
state=
for _ in $(seq 600); do
	state=$(podman inspect "$ctr" --format '{{.State.Status}} {{.State.ExitCode}}' 2>/dev/null)
	case $state in exited\ *) break ;; esac
	podman logs "$ctr" 2>&1 | grep -q 'no Nitro Enclaves driver here' && break
	sleep 0.1
done
podman logs "$ctr" >"$TMP/kube.log" 2>&1
if grep -q 'no Nitro Enclaves driver here: /dev/nitro_enclaves does not exist.*aws.ec2.nitro/nitro_enclaves' "$TMP/kube.log"; then
	ok "the Deployment's container stops at the clear no-device error (podman has no device plugin)"
else
	not_ok "the Deployment's container stops at the clear no-device error" "state: $state" "$(head -c 2000 "$TMP/kube.log")" "$(cat "$TMP/play.out")"
fi
check "the Deployment's --log-format json: the error is one JSON object (source host, level error)" python3 -c '
import json, sys
ds = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert any(d["source"] == "host" and d["level"] == "error" and "no Nitro Enclaves driver here" in d["message"]
           for d in ds), ds' "$TMP/kube.log"
"${P[@]}" kube down "$KUBE" >/dev/null 2>&1
podman pod rm -f hello-enclave-pod-0 >/dev/null 2>&1
check "kube down leaves no pod behind" test -z "$(podman pod ps -q --filter name=hello-enclave-pod-0)"
done_testing
