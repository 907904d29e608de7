#!/usr/bin/env bash
# example.sh: the built-in example: builds an enclave image file from the
# sample kernel, cmdline and ramdisks in testdata/eif and prints its
# measurements, then describes it as nitro-cli describe-eif would.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/example.eif}
mkdir -p "$(dirname "$out")"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}
echo "== enclaver eif build -> $out" >&2
bin/enclaver eif build \
	--kernel testdata/eif/kernel.bin \
	--cmdline "$(cat testdata/eif/cmdline.txt)" \
	--ramdisk testdata/eif/ramdisk1.bin \
	--ramdisk testdata/eif/ramdisk2.bin \
	--name example --version 1.0 \
	--output "$out"
echo "== enclaver describe-eif $out" >&2
bin/enclaver describe-eif "$out"
