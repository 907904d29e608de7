# cached_tool.sh: what scripts/build-qemu.sh and scripts/build-skopeo.sh share: use the system's
# tool when it will do, else the one built into the cache, else build it (as root for apt).

# use_or_build NAME CACHED USABLE [--check]: prints the first of `command -v NAME` and CACHED that
# the function USABLE accepts and exits 0; with neither, exits 1 under --check, else returns so
# the caller builds CACHED.
use_or_build() {
	local c
	for c in "$(command -v "$1" || true)" "$2"; do
		if [ -n "$c" ] && "$3" "$c"; then
			echo "$c"
			exit 0
		fi
	done
	[ "${4:-}" != --check ] || exit 1
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
