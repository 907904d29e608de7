#!/usr/bin/env bash
# run.sh: runs the whole suite for the given build variants (release, asan):
# every unit test program under build/<variant>/tests/ and every CLI test
# script in tests/cli/ against build/<variant>/bin/enclaver. Each prints
# "# counts P F"; this adds them up and ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(release)

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"

passed=0
failed=0
failed_names=()
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/enclaver-tests.XXXXXX")
trap 'rm -rf "$log_dir"' EXIT

# run_one NAME CMD...: runs a test program, shows its output, adds its counts.
run_one() {
	local name=$1
	shift
	local out="$log_dir/out"
	"$@" >"$out" 2>&1
	local rc=$?
	local counts
	counts=$(grep -E '^# counts [0-9]+ [0-9]+$' "$out" | tail -n 1)
	sed -e '/^# counts /d' -e "s|^|[$name] |" "$out"
	if [ -z "$counts" ]; then
		echo "[$name] crashed or printed no counts (exit $rc)"
		failed=$((failed + 1))
		failed_names+=("$name")
		return
	fi
	local p f
	read -r _ _ p f <<<"$counts"
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -gt 0 ] || { [ $rc -ne 0 ] && [ "$f" -eq 0 ]; }; then
		failed_names+=("$name")
		# A program that exits non-zero after passing everything died late
		# (a sanitizer's leak report, say): count that as a failure too.
		if [ "$f" -eq 0 ]; then
			echo "[$name] exited $rc after its tests passed"
			failed=$((failed + 1))
		fi
	fi
}

for v in "${variants[@]}"; do
	bindir="build/$v/bin"
	if [ ! -x "$bindir/enclaver" ]; then
		echo "missing $bindir/enclaver: run 'make VARIANT=$v unit-tests' first"
		failed=$((failed + 1))
		continue
	fi
	for t in build/"$v"/tests/test_*; do
		[ -x "$t" ] || continue
		run_one "$v/$(basename "$t")" "$t"
	done
	for s in tests/cli/test_*.sh; do
		[ -f "$s" ] || continue
		run_one "$v/$(basename "$s" .sh)" env ENCLAVER="$PWD/$bindir/enclaver" VARIANT="$v" bash "$s"
	done
done

# Fuzz targets (built by `make fuzz`): a bounded run each, seeded from
# small EIFs; scripts/fuzz.sh prints the counts.
if compgen -G "build/fuzz/bin/fuzz_*" >/dev/null; then
	run_one fuzz scripts/fuzz.sh
fi

if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failing: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
