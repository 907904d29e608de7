#!/usr/bin/env python3
"""guide_extract.py: the commands, files and shown outputs of a guide page (docs/guide-*.md), for
the e2e test that runs the page as written. A fenced block is taken when the line before it is
`<!-- guide-test: KIND ARGS -->`:

  file PATH                   the block is written to WORK/PATH
  step NAME [background]      the block is the shell step NAME (STEPS/NAME.sh); the order of the
                              steps goes to STEPS/ORDER, one "NAME fg|bg" a line
  expect NAME                 the block is what step NAME prints (STEPS/NAME.expect)
  expect-log NAME             lines the background step NAME prints (STEPS/NAME.expect-log,
                              appended: several blocks may name the same step)
  skip REASON                 not run (says why in the page)

Every ```sh block must carry a marker, so a command added to the page without one fails the test
instead of going untested. --subst OLD=NEW (repeatable) replaces text in everything extracted (the
test's free ports for the page's fixed ones); each OLD must occur at least once.

usage: guide_extract.py GUIDE WORK STEPS [--subst OLD=NEW]...
"""
import os
import re
import sys

MARK = re.compile(r"^<!-- guide-test: (\S+)\s*(.*?)\s*-->$")


def fail(msg):
    sys.exit(f"guide_extract.py: {msg}")


def blocks(lines):
    """(marker or None, fence language, body, line number) for each fenced block."""
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip("\n") != "```":
            j += 1
        if j == len(lines):
            fail(f"line {start + 1}: fenced block never closed")
        prev = lines[start - 1].strip() if start > 0 else ""
        yield MARK.match(prev), m.group(1), "".join(lines[start + 1:j]), start + 1
        i = j + 1


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        fail("usage: guide_extract.py GUIDE WORK STEPS [--subst OLD=NEW]...")
    guide, work, steps = args[:3]
    substs = []
    rest = args[3:]
    while rest:
        if rest[0] != "--subst" or len(rest) < 2 or "=" not in rest[1]:
            fail(f"bad argument {rest[0]!r}")
        substs.append(rest[1].split("=", 1))
        rest = rest[2:]
    used = {old: 0 for old, _ in substs}

    def subst(text):
        for old, new in substs:
            used[old] += text.count(old)
            text = text.replace(old, new)
        return text

    os.makedirs(work, exist_ok=True)
    os.makedirs(steps, exist_ok=True)
    order = []
    with open(guide) as f:
        lines = f.readlines()
    for mark, lang, body, line in blocks(lines):
        where = f"{guide}:{line}"
        if not mark:
            if lang == "sh":
                fail(f"{where}: a sh block without a guide-test marker (step, or skip with a reason)")
            continue
        kind, arg = mark.group(1), mark.group(2)
        body = subst(body)
        if kind == "file":
            path = os.path.normpath(os.path.join(work, arg))
            if not path.startswith(os.path.normpath(work) + os.sep):
                fail(f"{where}: file {arg!r} is outside the work folder")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as out:
                out.write(body)
        elif kind == "step":
            words = arg.split()
            if not words or len(words) > 2 or (len(words) == 2 and words[1] != "background"):
                fail(f"{where}: step takes NAME [background], got {arg!r}")
            if lang != "sh":
                fail(f"{where}: step {words[0]} is a {lang!r} block, not sh")
            if any(words[0] == name for name, _ in order):
                fail(f"{where}: step {words[0]} twice")
            bg = len(words) == 2
            if bg and len(body.strip().splitlines()) != 1:
                fail(f"{where}: background step {words[0]} must be one command")
            with open(os.path.join(steps, words[0] + ".sh"), "w") as out:
                out.write(body)
            order.append((words[0], "bg" if bg else "fg"))
        elif kind in ("expect", "expect-log"):
            suffix = ".expect" if kind == "expect" else ".expect-log"
            with open(os.path.join(steps, arg + suffix), "a" if kind == "expect-log" else "w") as out:
                out.write(body)
        elif kind == "skip":
            if not arg:
                fail(f"{where}: skip needs a reason")
        else:
            fail(f"{where}: unknown guide-test marker {kind!r}")
    for old, n in used.items():
        if n == 0:
            fail(f"--subst {old}: not found in any extracted block")
    with open(os.path.join(steps, "ORDER"), "w") as out:
        for name, mode in order:
            out.write(f"{name} {mode}\n")


if __name__ == "__main__":
    main()
