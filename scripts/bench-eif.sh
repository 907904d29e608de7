#!/usr/bin/env bash
# bench_eif: building and describing an EIF with a 1 GiB ramdisk, next to one
# `sha384sum` pass over the same bytes (the floor: every byte must be hashed
# at least once). Prints medians of several runs, CPU time, peak RSS, ratios.
#
# Usage: scripts/bench-eif.sh [ENCLAVER]   (default bin/enclaver; another build's, to compare)
set -euo pipefail
cd "$(dirname "$0")/.."
enclaver=$(realpath "${1:-bin/enclaver}")
runs=${BENCH_RUNS:-5}
size_mib=${BENCH_RAMDISK_MIB:-1024}
dir=build/bench
mkdir -p "$dir"
ramdisk=$dir/ramdisk-${size_mib}M.bin
if [ ! -f "$ramdisk" ]; then
	# Incompressible, reproducible bytes (AES-CTR keystream); openssl dies
	# of SIGPIPE when head has enough, which is expected.
	(openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:enclaver-bench </dev/zero 2>/dev/null || true) |
		head -c $((size_mib << 20)) >"$ramdisk.tmp"
	mv "$ramdisk.tmp" "$ramdisk"
fi
cat "$ramdisk" >/dev/null # warm the page cache for every contender alike

# measure NAME CMD...: runs CMD $runs times; records wall, cpu, rss medians.
measure() {
	local name=$1
	shift
	local walls=() cpus=() rss=()
	for _ in $(seq "$runs"); do
		/usr/bin/time -f "%e %U %S %M" -o "$dir/time.out" "$@" >/dev/null
		read -r w u s m <"$dir/time.out"
		walls+=("$w")
		cpus+=("$(echo "$u + $s" | bc -l)")
		rss+=("$m")
	done
	local mw mc mr
	mw=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
	mc=$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
	mr=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n 1)
	printf '%-28s wall %6.2f s   cpu %6.2f s   peak rss %7.1f MiB\n' "$name" "$mw" "$mc" "$(echo "$mr / 1024" | bc -l)"
	last_wall=$mw
	last_rss=$mr
}

echo "EIF with a ${size_mib} MiB ramdisk, $runs runs each, medians (2 cores: $(nproc) here)"
measure "sha384sum (floor)" sha384sum "$ramdisk"
floor=$last_wall
measure "enclaver eif build" "$enclaver" eif build --kernel testdata/eif/kernel.bin \
	--cmdline "$(cat testdata/eif/cmdline.txt)" --ramdisk "$ramdisk" --output "$dir/bench.eif" \
	--build-time 2024-01-01T00:00:00+00:00
build=$last_wall
build_rss=$last_rss
measure "enclaver describe-eif" "$enclaver" describe-eif "$dir/bench.eif"
describe=$last_wall
rm -f "$dir/bench.eif"
printf 'ratio build / sha384sum:    %.2fx (target <= 1.30x)\n' "$(echo "$build / $floor" | bc -l)"
printf 'ratio describe / sha384sum: %.2fx\n' "$(echo "$describe / $floor" | bc -l)"
printf 'build peak RSS:             %.1f MiB (target < 32 MiB)\n' "$(echo "$build_rss / 1024" | bc -l)"
