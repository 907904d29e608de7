# backports.sh: enable_backports, sourced by scripts/install-deps.sh and scripts/build-qemu.sh.

# Enables bookworm-backports by extending the machine's own Debian source entry, so no mirror
# host is ever written here; with --with-source, its source packages too. Handles deb822
# (.sources) and one-line lists. Needs as_root and say from the sourcing script.
enable_backports() {
	local f with_src=0
	[ "${1:-}" = --with-source ] && with_src=1
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		grep -qE '^Suites:.*\bbookworm\b' "$f" || continue
		as_root python3 - "$f" "$with_src" <<'EOF'
import sys
path = sys.argv[1]
stanzas = open(path).read().split("\n\n")
have_src = sys.argv[2] != "1" or any("Types: deb-src" in s and "bookworm-backports" in s for s in stanzas)
out = []
for s in stanzas:
    lines = s.strip("\n").split("\n")
    fields = {l.split(":", 1)[0]: i for i, l in enumerate(lines) if ":" in l and not l.startswith("#")}
    suites_i = fields.get("Suites")
    if suites_i is None:
        out.append(s.strip("\n"))
        continue
    suites = lines[suites_i].split(":", 1)[1].split()
    if "bookworm" not in suites:
        out.append(s.strip("\n"))
        continue
    if "bookworm-backports" not in suites:
        suites.append("bookworm-backports")
        lines[suites_i] = "Suites: " + " ".join(suites)
    out.append("\n".join(lines))
    if have_src:
        continue
    have_src = True
    # A source entry for bookworm-backports only (the QEMU tarball), same mirror and key.
    src = [l for l in lines if not l.startswith(("Types:", "Suites:", "#"))]
    out.append("\n".join(["Types: deb-src", "Suites: bookworm-backports"] + src))
open(path + ".tmp", "w").write("\n\n".join(out) + "\n")
import os
os.rename(path + ".tmp", path)
EOF
		return 0
	done
	local list=/etc/apt/sources.list.d/enclaver-backports.list
	if [ -f $list ] && { [ $with_src -eq 0 ] || grep -q '^deb-src ' $list; }; then
		return 0
	fi
	if [ -f /etc/apt/sources.list ] && grep -qE '^deb [^ ]+ bookworm main' /etc/apt/sources.list; then
		local line
		line=$(grep -m1 -E '^deb [^ ]+ bookworm main' /etc/apt/sources.list)
		{
			echo "${line/ bookworm / bookworm-backports }"
			[ $with_src -eq 0 ] || echo "${line/#deb /deb-src }" | sed 's/ bookworm / bookworm-backports /'
		} | as_root tee $list >/dev/null
		return 0
	fi
	say "no Debian bookworm source entry found under /etc/apt; cannot enable bookworm-backports"
	exit 1
}
