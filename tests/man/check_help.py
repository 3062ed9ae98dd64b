#!/usr/bin/env python3
"""check_help.py — the programs' --help and their man pages say the same.

danectl: the verbs of `danectl --help` are the verbs under COMMANDS in
danectl(8), no more and no fewer; every `danectl VERB --help` exits 0 with
that verb's usage on stdout, and each of its options is in the man page:
the verb's own options in that verb's COMMANDS entry, the GLOBAL options
under OPTIONS, the FILTERS under FILTERS. And back: every option the man
page names is one that --help names.
danerelayd: the options of `danerelayd --help` are the options under
OPTIONS in danerelayd(8), and the page names no other.

Usage: check_help.py --danectl BIN --danerelayd BIN --pages DIR
Exit 1 with every disagreement listed, 0 when there is none.
"""
import argparse
import os
import re
import subprocess
import sys

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# A verb that takes a second word; "queue hold|release|..." is six verbs.
TWO_WORD = {"queue", "policy"}
# Options of every verb's usage (GLOBAL, HELP) and of the queue selections
# (FILTERS): documented once, in the man page section named beside them.
SHARED = {"GLOBAL:": "OPTIONS", "HELP:": "OPTIONS", "FILTERS:": "FILTERS"}

problems = []


def problem(text):
    problems.append(text)


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                       env={**os.environ, "LC_ALL": "C"})
    return r.returncode, r.stdout, r.stderr


def render(page):
    """The page as text: wide, so no tag or option is broken across lines."""
    env = {**os.environ, "LC_ALL": "C", "MANWIDTH": "250"}
    r = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                       timeout=30, env=env)
    if r.returncode != 0:
        sys.exit(f"{page}: man -l failed: {r.stderr.strip()}")
    return r.stdout.splitlines()


def sections(lines):
    """{"SECTION": [lines]} of a rendered page (headings start in column 0)."""
    out, name = {}, None
    for line in lines:
        if line and not line[0].isspace() and line.upper() == line:
            name = line.strip()
            out[name] = []
        elif name:
            out[name].append(line)
    return out


def indent(line):
    return len(line) - len(line.lstrip(" "))


def verbs_of(words):
    """The verbs a usage or tag line names: ["status"], ["queue hold", ...]."""
    if not words:
        return []
    if words[0] in TWO_WORD and len(words) > 1:
        return [f"{words[0]} {sub}" for sub in words[1].split("|")]
    return [words[0]]


def help_verbs(text):
    """{verb: usage text} from danectl --help."""
    verbs = {}
    for line in text.splitlines():
        m = re.match(r"(?:usage:)?\s*danectl\s+(.*)", line)
        if not m:
            continue
        words = re.sub(r"\[[^\]]*\]", " ", m.group(1)).split()
        for v in verbs_of(words):
            verbs[v] = line
    return verbs


def man_entries(section_lines):
    """{verb: entry text} from the tags of a COMMANDS section."""
    entries, current = {}, []
    tag_indent = min((indent(l) for l in section_lines if l.strip()), default=0)
    for line in section_lines:
        if line.strip() and indent(line) == tag_indent:
            current = []
            for v in verbs_of(line.split()):
                entries[v] = current
        current.append(line)
    return {v: "\n".join(ls) for v, ls in entries.items()}


def own_options(usage):
    """The options of a verb's usage, without the GLOBAL and FILTERS lines."""
    lines = [l for l in usage.splitlines() if not l.startswith(tuple(SHARED))]
    return set(OPTION.findall("\n".join(lines)))


def shared_options(usage, label):
    lines = [l for l in usage.splitlines() if l.startswith(label)]
    return set(OPTION.findall("\n".join(lines)))


def check_verb(danectl, verb, man, sec):
    code, out, err = run([danectl, *verb.split(), "--help"])
    if code != 0 or not out or err:
        problem(f"danectl {verb} --help: exit {code}, stdout {len(out)} bytes, "
                f"stderr {err.strip()!r} (want 0, its usage, nothing)")
        return set()
    if verb not in help_verbs(out):
        problem(f"danectl {verb} --help does not show {verb}'s usage:\n{out}")
    entry = man.get(verb, "")
    for opt in sorted(own_options(out)):
        if opt not in OPTION.findall(entry):
            problem(f"danectl {verb} --help names {opt}; danectl(8)'s entry for "
                    f"'{verb}' does not")
    for label, where in SHARED.items():
        for opt in sorted(shared_options(out, label)):
            if opt not in OPTION.findall("\n".join(sec.get(where, []))):
                problem(f"danectl {verb} --help names {opt} ({label}); danectl(8)'s "
                        f"{where} section does not")
    return OPTION.findall(out)


def check_danectl(danectl, page):
    code, out, err = run([danectl, "--help"])
    if code != 0 or not out:
        sys.exit(f"danectl --help: exit {code}, stdout {out!r}, stderr {err!r}")
    listed = help_verbs(out)
    text = render(page)
    sec = sections(text)
    man = man_entries(sec.get("COMMANDS", []))
    for v in sorted(set(listed) - set(man)):
        problem(f"danectl --help lists '{v}'; danectl(8) COMMANDS does not")
    for v in sorted(set(man) - set(listed)):
        problem(f"danectl(8) COMMANDS documents '{v}'; danectl --help does not list it")
    helped = set(OPTION.findall(out))
    for v in sorted(listed):
        helped |= set(check_verb(danectl, v, man, sec))
    for opt in sorted(set(OPTION.findall("\n".join(text))) - helped):
        problem(f"danectl(8) names {opt}; no danectl --help does")
    return len(listed)


def check_danerelayd(danerelayd, page):
    code, out, err = run([danerelayd, "--help"])
    helped = set(OPTION.findall(out))  # help is asked for: stdout, not stderr
    if code != 0 or not helped or err:
        sys.exit(f"danerelayd --help: exit {code}, output {(out + err)!r}")
    text = render(page)
    documented = set(OPTION.findall("\n".join(sections(text).get("OPTIONS", []))))
    for opt in sorted(helped - documented):
        problem(f"danerelayd --help names {opt}; danerelayd(8) OPTIONS does not")
    for opt in sorted(set(OPTION.findall("\n".join(text))) - helped):
        problem(f"danerelayd(8) names {opt}; danerelayd --help does not")
    return len(helped)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--danectl", required=True)
    ap.add_argument("--danerelayd", required=True)
    ap.add_argument("--pages", required=True, help="directory of the built pages")
    a = ap.parse_args()
    verbs = check_danectl(a.danectl, os.path.join(a.pages, "danectl.8"))
    opts = check_danerelayd(a.danerelayd, os.path.join(a.pages, "danerelayd.8"))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {verbs} danectl verbs and {opts} danerelayd options agree with their man pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
