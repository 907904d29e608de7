#!/usr/bin/env bash
# bench.sh: `make bench`: runs every scripts/bench-*.sh in turn. Each prints
# figures and ratios; nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in scripts/bench-*.sh; do
	echo "== $b"
	"$b"
done
