#!/usr/bin/env bash
# test_docs.sh: the user docs against the binary (tests/cli/helpers/doc_check.py): every command of
# `enclaver --help` in docs/cli.md's table, every option of each --help on the page that documents
# it, every relative link and #anchor of README.md and docs/ resolving; and that the checker
# catches a missing command, option and a broken link in a copy of the docs. Also the guide's
# blocks (tests/e2e/guide_extract.py), which its e2e test runs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN=$(dirname "$ENCLAVER")/enclaver-run

# doc_check ROOT: doc_check.py's lines as ok/not_ok.
doc_check() {
	local status name detail
	while IFS=$'\t' read -r status name detail; do
		if [ "$status" = PASS ]; then ok "$name"; else not_ok "$name" "$detail"; fi
	done < <(python3 "$ROOT/tests/cli/helpers/doc_check.py" "$1" "$ENCLAVER" "$RUN" 2>&1)
}
doc_check "$ROOT"

# A copy with a command's row gone, an option renamed and a broken anchor: each is reported.
mkdir -p "$TMP/copy"
cp -r "$ROOT/docs" "$ROOT/README.md" "$TMP/copy/"
sed -i '/^| \[`inspect`\]/d; s/--no-ramdisk-cache/--no-ramdisk-kept/g' "$TMP/copy/docs/cli.md"
echo 'See [nowhere](cli.md#no-such-heading).' >>"$TMP/copy/docs/quickstart.md"
python3 "$ROOT/tests/cli/helpers/doc_check.py" "$TMP/copy" "$ENCLAVER" "$RUN" >"$TMP/copy.out" 2>&1
check "a command missing from the table is reported" grep -q $'^FAIL\tdocs/cli.md.s table has `inspect`' "$TMP/copy.out"
check "an option missing from its page is reported" grep -q $'^FAIL\tevery option of `build`.*--no-ramdisk-cache' "$TMP/copy.out"
check "a broken anchor is reported" grep -q $'^FAIL\tlinks of docs/quickstart.md.*cli.md#no-such-heading: no such heading' "$TMP/copy.out"

# The guide's blocks extract (also where no QEMU runs its e2e test), and a command added to the page
# without a guide-test marker is refused rather than left untested.
GUIDE=$ROOT/docs/guide-no-fly-list.md
EXTRACT=$ROOT/tests/e2e/guide_extract.py
check "the no-fly-list guide's blocks extract" python3 "$EXTRACT" "$GUIDE" "$TMP/g/work" "$TMP/g/steps"
{ cat "$GUIDE"; printf '\n```sh\nenclaver ps\n```\n'; } >"$TMP/guide-unmarked.md"
check_fails "an unmarked sh block in a guide is refused" 'a sh block without a guide-test marker' \
	python3 "$EXTRACT" "$TMP/guide-unmarked.md" "$TMP/u/work" "$TMP/u/steps"
done_testing
