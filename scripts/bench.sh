#!/usr/bin/env bash
# bench.sh: runs every benchmark in tests/bench/ (make bench). Benchmarks
# print figures and ratios against peers; they assert nothing about time.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in tests/bench/bench_*.sh; do
	echo "### $(basename "$b" .sh)"
	bash "$b"
	echo
done
