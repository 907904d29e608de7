#!/usr/bin/env bash
# check-deps.sh BUILD MODULE:DEP,DEP ... : checks the module dependency rules (the Makefile's
# DEPS_<module>, docs/architecture.md) two ways, and names every breach:
#   includes  each #include "X/..." in MODULE's sources names MODULE itself or one of its DEPs;
#   symbols   each symbol MODULE's archive (BUILD/lib/libMODULE.a) leaves undefined is defined by
#             MODULE, one of its DEPs, or no module at all (libc and the other libraries).
# The programs' link lines enforce the same rules for what they reach; this covers every module,
# reached or not. Exit status 1 when a rule is broken.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
shift

declare -A allowed  # module -> " module dep dep "
declare -A may      # module -> "dep, dep" for messages
modules=()
for rule in "$@"; do
	m=${rule%%:*}
	deps=${rule#*:}
	modules+=("$m")
	allowed[$m]=" $m ${deps//,/ } "
	may[$m]=${deps:-nothing}
done
is_module() { [[ -n ${allowed[$1]+x} ]] || [[ $1 == cli ]]; }

bad=0
# --- includes
for m in "${modules[@]}"; do
	while IFS=: read -r file line text; do
		dep=${text#*\"}
		dep=${dep%%/*}
		is_module "$dep" || continue
		if [[ ${allowed[$m]} != *" $dep "* ]]; then
			echo "$file:$line: $m includes $dep (${text#*#include }): $m may use only ${may[$m]//,/, }" >&2
			bad=1
		fi
	done < <(grep -rn --include='*.c' --include='*.h' -E '^#include "[a-z_]+/' "$m" || true)
done

# --- symbols
declare -A owner  # symbol -> module defining it
for m in "${modules[@]}"; do
	lib=$build/lib/lib$m.a
	[[ -f $lib ]] || { echo "check-deps: $lib is missing (make VARIANT=... all first)" >&2; exit 2; }
	while read -r sym; do
		owner[$sym]=$m
	done < <(nm -g --defined-only "$lib" 2>/dev/null | awk 'NF == 3 { print $3 }')
done
for m in "${modules[@]}"; do
	obj=
	while read -r a b c; do
		# nm prints "archive(member.o):" headers, then "U symbol" lines for that member.
		if [[ $a == *.o: ]]; then
			obj=${a%:}
			continue
		fi
		[[ $a == U ]] || continue
		sym=$b
		o=${owner[$sym]-}
		[[ -n $o && $o != "$m" ]] || continue
		if [[ ${allowed[$m]} != *" $o "* ]]; then
			echo "$m/$obj: uses $sym from $o: $m may use only ${may[$m]//,/, }" >&2
			bad=1
		fi
	done < <(nm -u "$build/lib/lib$m.a" 2>/dev/null)
done

if ((bad)); then
	echo "check-deps: module dependency rules broken (docs/architecture.md#dependency-rules)" >&2
	exit 1
fi
echo "check-deps: ${#modules[@]} modules follow their rules (includes and symbols)"
