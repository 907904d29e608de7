# backports.sh: enable_backports, sourced by scripts/install-deps.sh, scripts/build-qemu.sh and
# scripts/build-skopeo.sh.

# Enables bookworm-backports by extending the machine's own Debian source entry, so no mirror
# host is ever written here. With --with-source, the source packages of bookworm-backports too
# (QEMU's tarball); with --with-source=SUITE[,SUITE...], those suites' source packages (skopeo's
# and containers/image's, in bookworm). Handles deb822 (.sources) and one-line lists. Needs
# as_root and say from the sourcing script.
enable_backports() {
	local f src_suites=
	case "${1:-}" in
	--with-source) src_suites=bookworm-backports ;;
	--with-source=*) src_suites=${1#--with-source=} ;;
	esac
	src_suites=${src_suites//,/ }
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		grep -qE '^Suites:.*\bbookworm\b' "$f" || continue
		as_root python3 - "$f" $src_suites <<'EOF'
import os, sys
path, want_src = sys.argv[1], sys.argv[2:]
stanzas = [s.strip("\n") for s in open(path).read().split("\n\n") if s.strip("\n")]

def parse(s):
    lines = s.split("\n")
    fields = {l.split(":", 1)[0]: i for i, l in enumerate(lines) if ":" in l and not l.startswith("#")}
    return lines, fields

def suites_of(lines, fields):
    i = fields.get("Suites")
    return None if i is None else lines[i].split(":", 1)[1].split()

def is_src(lines, fields):
    return "Types" in fields and "deb-src" in lines[fields["Types"]].split(":", 1)[1].split()

out, deb_entry, src_done = [], None, not want_src
for s in stanzas:
    lines, fields = parse(s)
    suites = suites_of(lines, fields)
    if suites is None or not any(x.startswith("bookworm") for x in suites):
        out.append(s)
        continue
    if is_src(lines, fields):
        # The machine's bookworm source entry: add the wanted suites to it.
        if not src_done:
            suites += [x for x in want_src if x not in suites]
            lines[fields["Suites"]] = "Suites: " + " ".join(suites)
            src_done = True
    elif "bookworm" in suites:
        if "bookworm-backports" not in suites:
            suites.append("bookworm-backports")
            lines[fields["Suites"]] = "Suites: " + " ".join(suites)
        deb_entry = lines
    out.append("\n".join(lines))
if not src_done and deb_entry is not None:
    # A source entry for the wanted suites, with the same mirror and key as the binary one.
    rest = [l for l in deb_entry if not l.startswith(("Types:", "Suites:", "#"))]
    out.append("\n".join(["Types: deb-src", "Suites: " + " ".join(want_src)] + rest))
open(path + ".tmp", "w").write("\n\n".join(out) + "\n")
os.rename(path + ".tmp", path)
EOF
		return 0
	done
	local list=/etc/apt/sources.list.d/enclaver-backports.list line s
	if [ -f /etc/apt/sources.list ] && grep -qE '^deb [^ ]+ bookworm main' /etc/apt/sources.list; then
		line=$(grep -m1 -E '^deb [^ ]+ bookworm main' /etc/apt/sources.list)
		[ -f $list ] || echo "${line/ bookworm / bookworm-backports }" | as_root tee $list >/dev/null
		for s in $src_suites; do
			grep -qE "^deb-src [^ ]+ $s " $list /etc/apt/sources.list ||
				echo "${line/#deb /deb-src }" | sed "s/ bookworm / $s /" | as_root tee -a $list >/dev/null
		done
		return 0
	fi
	say "no Debian bookworm source entry found under /etc/apt; cannot enable bookworm-backports"
	exit 1
}
