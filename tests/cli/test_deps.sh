#!/usr/bin/env bash
# test_deps: the module dependency rules (Makefile DEPS_<module>, docs/architecture.md) hold for
# this variant's archives, and scripts/check-deps.sh catches a breach of each kind it checks.
source "$(dirname "$0")/lib.sh"
build=$ROOT/build/${VARIANT:-release}
read -r -a rules <<<"$(make -s -C "$ROOT" deps-rules)"
check "the Makefile lists the rules (${#rules[@]} modules)" test "${#rules[@]}" -ge 7

check "every module follows its rules (includes and symbols)" "$ROOT/scripts/check-deps.sh" "$build" "${rules[@]}"

# A breach: the same rules with builder's own dependencies taken away. builder includes and calls
# oci and eif, so both checks must name it.
strict=()
for r in "${rules[@]}"; do
	[[ $r == builder:* ]] && r=builder:common
	strict+=("$r")
done
check_fails "an include across a forbidden edge is named with its file and line" \
	'^builder/[a-z_]+\.[ch]:[0-9]+: builder includes (oci|eif) .*builder may use only common' \
	"$ROOT/scripts/check-deps.sh" "$build" "${strict[@]}"
check_fails "a symbol across a forbidden edge is named with its object" \
	'^builder/[a-z_]+\.o: uses [a-z_0-9]+ from (oci|eif): builder may use only common' \
	"$ROOT/scripts/check-deps.sh" "$build" "${strict[@]}"
# common may use nothing: a rule giving it a dependency it does not use is still fine.
loose=()
for r in "${rules[@]}"; do
	[[ $r == common:* ]] && r=common:eif
	loose+=("$r")
done
check "an allowed edge that is not used is no breach" "$ROOT/scripts/check-deps.sh" "$build" "${loose[@]}"
check_fails "a missing archive is an error, not a pass" 'is missing' \
	"$ROOT/scripts/check-deps.sh" "$TMP/nobuild" "${rules[@]}"
done_testing
