#!/usr/bin/env bash
# bench-boot.sh: boot-time distribution of the emulator, figures only (nothing asserted): the
# built-in example's EIF (odyn as init, Debian's kernel bundle) booted BENCH_BOOT_N times (20) with
# `enclaver emulate`, once per accelerator choice: `--accel tcg`, then `--accel auto` (KVM when
# it boots here, else TCG after one KVM attempt, whose cost is in the wall time). For each: which
# accelerator ran, QEMU start to heartbeat (min, median, p90, max), the wall time from the
# command's start, the boots slower than twice the median (stalls), listed, and the boots whose
# console shows odyn giving up on a lost NSM answer (debug console, same EIF and PCRs).
# Needs a release build and QEMU (scripts/build-qemu.sh); without QEMU it says so and exits 0.
#   BENCH_BOOT_N (default 20), BENCH_BOOT_ACCELS (default "tcg auto"), BENCH_BOOT_TIMEOUT (400 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ENCLAVER=$PWD/build/release/bin/enclaver
ODYN=$PWD/build/release/bin/odyn
[ -x "$ENCLAVER" ] && [ -x "$ODYN" ] || { echo "build first: make" >&2; exit 1; }
if ! QEMU=$(scripts/build-qemu.sh --check 2>/dev/null); then
	echo "bench-boot: no qemu-system-x86_64 with the nitro-enclave machine (scripts/build-qemu.sh): skipped"
	exit 0
fi
N=${BENCH_BOOT_N:-20}
ACCELS=${BENCH_BOOT_ACCELS:-tcg auto}
TIMEOUT=${BENCH_BOOT_TIMEOUT:-400}
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-boot.XXXXXX")
emu=
cleanup() { [ -z "$emu" ] || kill -TERM "$emu" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT

scripts/kernel-bundle-debian.sh "$T/kb" >"$T/kb.log" 2>&1 || { cat "$T/kb.log"; exit 1; }
cc -static -Os -o "$T/hello" testdata/example/hello.c
python3 testdata/example/make_app_image.py "$T/app" latest "$T/hello" >/dev/null
sed "s|oci:build/example/app:latest|oci:$T/app:latest|" testdata/example/enclaver.yaml >"$T/enclaver.yaml"
ENCLAVER_CACHE_DIR=$T/cache SOURCE_DATE_EPOCH=1704067200 "$ENCLAVER" build -q --odyn "$ODYN" --kernel-bundle "$T/kb" \
	-f "$T/enclaver.yaml" --eif-only "$T/app.eif" >/dev/null
echo "bench-boot: $N boots per accelerator of the example EIF ($(du -k "$T/app.eif" | cut -f1) KiB, 512 MiB, 2 vCPUs); /dev/kvm: $(
	[ -r /dev/kvm ] && [ -w /dev/kvm ] && echo present || echo absent)"

for accel in $ACCELS; do
	: >"$T/$accel.tsv"
	for i in $(seq "$N"); do
		log=$T/boot-$accel-$i.log
		start=$(date +%s.%N)
		"$ENCLAVER" -v emulate --eif "$T/app.eif" --memory-mb 512 --accel "$accel" --qemu "$QEMU" \
			--heartbeat-timeout "$TIMEOUT" --debug-mode >"$T/console-$accel-$i.log" 2>"$log" &
		emu=$!
		hb=
		while kill -0 "$emu" 2>/dev/null; do
			hb=$(sed -n 's/.*heartbeat after \([0-9.]*\) s (\([a-z]*\)).*/\1 \2/p' "$log")
			[ -z "$hb" ] || break
			sleep 0.05
		done
		wall=$(echo "$(date +%s.%N) - $start" | bc)
		# SIGTERM: a background job of a script has SIGINT ignored, and emulate keeps that.
		kill -TERM "$emu" 2>/dev/null || true
		wait "$emu" 2>/dev/null || true
		emu=
		why=$(sed -n 's/.*warning: emulator: \(.*\); booting again under TCG.*/\1/p' "$log" | head -n 1)
		nsm=$(grep -c 'NSM did not answer' "$T/console-$accel-$i.log" || true)
		printf '%s\t%s\t%s\t%s\n' "${hb:-fail -}" "$wall" "${why:--}" "$nsm" >>"$T/$accel.tsv"
		if [ "$nsm" != 0 ]; then # what QEMU said about its NSM device, for the record
			echo "  boot $i ($accel): odyn gave up on NSM; QEMU said: $(sed -n "/QEMU's messages/,\$p" "$log" |
				grep -v "QEMU's messages\|terminating on signal\|emulator: vsock" | tr '\n' ' ')"
		fi
	done
	python3 - "$accel" "$T/$accel.tsv" <<'PY'
import statistics, sys
accel, path = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("\t") for l in open(path)]
ok = [(float(r[0].split()[0]), r[0].split()[1], float(r[1])) for r in rows if not r[0].startswith("fail")]
fails = len(rows) - len(ok)
if not ok:
    print(f"--accel {accel}: no boot reached the heartbeat ({fails} failed)")
    sys.exit(0)
hb = sorted(x[0] for x in ok)
wall = sorted(x[2] for x in ok)
ran = {}
for x in ok:
    ran[x[1]] = ran.get(x[1], 0) + 1
def q(v, p):
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
med = statistics.median(hb)
stalls = [h for h in hb if h > 2 * med]
print(f"--accel {accel}: {len(ok)} boots ran on {', '.join(f'{k} x{v}' for k, v in sorted(ran.items()))}; {fails} failed")
print(f"  QEMU start to heartbeat: min {hb[0]:.2f} s, median {med:.2f} s, p90 {q(hb, 0.9):.2f} s, max {hb[-1]:.2f} s")
print(f"  command start to heartbeat (wall): min {wall[0]:.2f} s, median {statistics.median(wall):.2f} s, max {wall[-1]:.2f} s")
print(f"  stalls (over twice the median): {len(stalls)}" + (": " + ", ".join(f"{s:.1f} s" for s in stalls) if stalls else ""))
print(f"  boots where odyn gave up waiting for NSM's GetRandom: {sum(1 for r in rows if r[3] != '0')}")
whys = sorted({r[2] for r in rows if r[2] != "-"})
for w in whys[:3]:
    print(f"  KVM attempt ended: {w}")
PY
done
