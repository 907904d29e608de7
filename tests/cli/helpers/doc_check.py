#!/usr/bin/env python3
"""doc_check.py: checks the user docs against the binary. Prints one line per check,
"PASS<TAB>name" or "FAIL<TAB>name<TAB>detail", for tests/cli/test_docs.sh:

- every command of `enclaver --help` has a row in docs/cli.md's command table, linked;
- every long option in a command's --help (and its subcommands') is named on the page that row
  links to;
- every relative link in README.md and docs/*.md names a file that exists and, with #anchor, a
  heading of that file (GitHub's anchors: lower case, punctuation but '-' and '_' dropped, spaces
  to '-', repeated headings numbered -1, -2...).

usage: doc_check.py ROOT ENCLAVER [ENCLAVER_RUN]
"""
import os
import re
import subprocess
import sys

root, enclaver = sys.argv[1], sys.argv[2]
enclaver_run = sys.argv[3] if len(sys.argv) > 3 else None
docs = os.path.join(root, "docs")


def report(ok, name, detail=""):
    print(f"PASS\t{name}" if ok else f"FAIL\t{name}\t{detail}")


def help_text(*args):
    p = subprocess.run(list(args) + ["--help"], capture_output=True, text=True)
    return p.stdout + p.stderr


def long_options(text):
    return sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)))


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


anchor_cache = {}


def anchors(path):
    if path not in anchor_cache:
        seen = {}
        out = set()
        fence = False
        with open(path) as f:
            for line in f:
                if line.startswith("```"):
                    fence = not fence
                m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
                if m:
                    a = slug(m.group(1))
                    n = seen.get(a, 0)
                    seen[a] = n + 1
                    out.add(a if n == 0 else f"{a}-{n}")
        anchor_cache[path] = out
    return anchor_cache[path]


def links(path):
    """(line number, target) of each relative markdown link, outside code blocks and spans."""
    fence = False
    with open(path) as f:
        for no, line in enumerate(f, 1):
            if line.startswith("```"):
                fence = not fence
                continue
            if fence:
                continue
            line = re.sub(r"`[^`]*`", "", line)
            for m in re.finditer(r"\]\(([^)\s]+)\)", line):
                t = m.group(1)
                if not re.match(r"^[a-z]+:", t):
                    yield no, t


def resolve(src, target):
    """the file and anchor a link of src names."""
    file, _, anchor = target.partition("#")
    path = os.path.normpath(os.path.join(os.path.dirname(src), file)) if file else src
    return path, anchor


# The command table: rows "| [`cmd`...](link) ... |" before the first section.
cli = os.path.join(docs, "cli.md")
rows = {}
with open(cli) as f:
    for line in f:
        if line.startswith("## "):
            break
        if not line.startswith("| ["):
            continue
        first = line.split("|")[1]
        for m in re.finditer(r"\[([^\]]*)\]\(([^)]*)\)", first):
            for name in re.findall(r"`([^`]+)`", m.group(1)):
                rows[name] = m.group(2)

top = help_text(enclaver)
commands = re.findall(r"^  ([a-z][a-z-]*)\s{2,}", top.split("Commands:", 1)[-1].split("Options:", 1)[0], re.M)
report(len(commands) >= 10, "enclaver --help lists its commands", top[:300])
for cmd in commands:
    names = [n for n in rows if n == cmd or n.startswith(cmd + " ")]
    report(bool(names), f"docs/cli.md's table has `{cmd}`", "no row names it")
    if not names:
        continue
    # The page of each subcommand's row (`eif build` and `eif sign` may live on different pages).
    texts = [help_text(enclaver, cmd)]
    subs = [n.split(" ", 1)[1] for n in names if " " in n]
    pages = set()
    for n in names:
        path, _ = resolve(cli, rows[n])
        pages.add(path)
    for sub in subs:
        texts.append(help_text(enclaver, cmd, sub))
    page_text = "".join(open(p).read() for p in sorted(pages) if os.path.exists(p))
    missing = [o for o in long_options("\n".join(texts)) if o not in page_text]
    report(not missing, f"every option of `{cmd}` --help is on {', '.join(os.path.relpath(p, root) for p in sorted(pages))}",
           "not there: " + " ".join(missing))

if enclaver_run:
    path, _ = resolve(cli, rows.get("enclaver-run", "run.md"))
    text = open(path).read() if os.path.exists(path) else ""
    missing = [o for o in long_options(help_text(enclaver_run)) if o not in text]
    report(not missing, f"every option of enclaver-run --help is on {os.path.relpath(path, root)}",
           "not there: " + " ".join(missing))

sources = [os.path.join(root, "README.md")] + sorted(
    os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))
for src in sources:
    bad = []
    for no, target in links(src):
        path, anchor = resolve(src, target)
        if not os.path.exists(path):
            bad.append(f"line {no}: {target}: no such file")
        elif anchor and path.endswith(".md") and anchor not in anchors(path):
            bad.append(f"line {no}: {target}: no such heading")
    report(not bad, f"links of {os.path.relpath(src, root)} resolve", "; ".join(bad))
