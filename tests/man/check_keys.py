#!/usr/bin/env python3
"""check_keys.py — every configuration and policy key the code reads is in its man page.

danerelay.json(5) must name each key of relay/runtime/config.cc's Section
tables (`.on("key"`, `.number("key"`, `.flag("key"`) and onlyKeys lists,
keys of the sections "limits", "dns", "delivery" and "metrics" written out
in full ("limits.max_hops"); danerelay-policy(5) must name each key of
policy/policy.cc's list of known entry keys. A key added to the code without
its page fails here. (The other way, a page ahead of the code, is allowed:
pages may document keys that are on their way.)

Usage: check_keys.py --source DIR --pages DIR
"""
import argparse
import os
import re
import subprocess
import sys

SECTION = re.compile(r'Section\(c,\s*[^,]+,\s*("([a-z_]*)"|[a-z_]+)\)(.*?)\.read\(\)', re.S)
STEP = re.compile(r'\.(?:on|number|flag)\("([a-z_]+)"')
ONLY_KEYS = re.compile(r'onlyKeys\([^{;)]*\{([^}]*)\}')
POLICY_KNOWN = re.compile(r'static const char\* known\[\] = \{([^}]*)\}')
WORDS = re.compile(r'"([a-z_]+)"')


def render(page):
    env = {**os.environ, "LC_ALL": "C", "MANWIDTH": "250"}
    r = subprocess.run(["man", "-l", page], capture_output=True, text=True, timeout=30, env=env)
    if r.returncode != 0:
        sys.exit(f"{page}: man -l failed: {r.stderr.strip()}")
    return r.stdout


def config_keys(text):
    """(name as the page must show it) for every key config.cc reads."""
    keys = set()
    for m in SECTION.finditer(text):
        where = m.group(2)  # None: a section named by a variable (tls, auth, a resolver)
        for k in STEP.findall(m.group(3)):
            keys.add(f"{where}.{k}" if where else k)
    for m in ONLY_KEYS.finditer(text):
        keys.update(WORDS.findall(m.group(1)))
    return keys


def missing(keys, page_text):
    return sorted(k for k in keys
                  if not re.search(r"(?<![\w.])" + re.escape(k) + r"(?![\w])", page_text))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--pages", required=True)
    a = ap.parse_args()
    with open(os.path.join(a.source, "relay/runtime/config.cc")) as f:
        cfg = config_keys(f.read())
    with open(os.path.join(a.source, "policy/policy.cc")) as f:
        known = POLICY_KNOWN.search(f.read())
    if len(cfg) < 40 or not known:
        sys.exit(f"check_keys.py: found {len(cfg)} config keys and policy keys {bool(known)}: "
                 "the patterns no longer match the code; update this script")
    pol = set(WORDS.findall(known.group(1)))
    problems = [f"relay/runtime/config.cc reads '{k}'; danerelay.json(5) does not name it"
                for k in missing(cfg, render(os.path.join(a.pages, "danerelay.json.5")))]
    problems += [f"policy/policy.cc knows '{k}'; danerelay-policy(5) does not name it"
                 for k in missing(pol, render(os.path.join(a.pages, "danerelay-policy.5")))]
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {len(cfg)} configuration keys and {len(pol)} policy keys are in their pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
