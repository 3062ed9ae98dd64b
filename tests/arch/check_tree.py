#!/usr/bin/env python3
"""The shape of the tree, checked (docs/DESIGN.md draws it).

1. Layers: each folder includes only the folders it may depend on. In
   particular relay/inbound and relay/outbound never include each other, and
   the leaf libraries (common, queue, tls, dns, policy, sts) include nothing of
   relay/.
2. Function length: no function in our C++ sources is 80 lines or longer,
   except plan() (relay/outbound/delivery.cc), which reads as the RFC 7672
   table and stays whole. Measured from the first line of the signature to
   the closing brace, lambdas counted in the function that holds them.

Usage: check_tree.py [SOURCE_DIR] [--report N]  (prints the N longest)
Exit status 1 and one line per violation when the tree breaks a rule."""
import os
import re
import sys

# folder -> folders it may include (itself always)
ALLOWED = {
    "common": set(),
    "queue": {"common"},
    "tls": {"common"},
    "dns": {"common"},
    "policy": {"common"},
    "sts": {"common"},
    "relay/runtime": {"common", "queue", "dns", "tls"},
    "relay/inbound": {"common", "queue", "tls", "relay/runtime"},
    "relay/outbound": {"common", "queue", "tls", "dns", "policy", "sts", "relay/runtime"},
    "relay/control": {"common", "queue", "dns", "policy", "relay/runtime", "relay/outbound"},
    "relay": {"common", "queue", "tls", "dns", "policy", "sts", "relay/runtime", "relay/inbound",
              "relay/outbound", "relay/control"},
    "danectl": {"common", "queue", "tls", "dns", "policy", "sts", "relay/runtime",
                "relay/outbound", "relay/control"},
}
LONG_FUNCTION = 80
EXEMPT = {("relay/outbound/delivery.cc", "plan")}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root):
    for folder in ALLOWED:
        d = os.path.join(root, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".cc", ".h")):
                yield folder, os.path.join(folder, name)


def check_layers(root):
    problems = []
    for folder, rel in sources(root):
        with open(os.path.join(root, rel)) as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            target = os.path.dirname(inc)
            if target == folder or target not in ALLOWED:
                continue  # own folder, or not ours (generated, system)
            if target not in ALLOWED[folder]:
                problems.append(f"{rel}: includes {inc}: {folder}/ may not depend on {target}/")
    return problems


def strip(text):
    """Comments, string and character literals and preprocessor lines blanked,
    newlines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    # preprocessor lines are not code here
    return re.sub(r"(?m)^[ \t]*#.*$", lambda m: " " * len(m.group(0)), "".join(out))


SCOPE = re.compile(r"^\s*(template\s*<.*>\s*)?(namespace|class|struct|union|enum)\b|^\s*extern\b", re.S)


def functions(rel, text):
    """(name, first line, last line) of each function body at namespace or
    class scope."""
    s = strip(text)
    line_at = [0] * (len(s) + 1)
    ln = 1
    for i, ch in enumerate(s):
        line_at[i] = ln
        if ch == "\n":
            ln += 1
    stack = []  # kinds of the open braces: "scope", "func", "other"
    header_start = 0
    found = []
    for i, ch in enumerate(s):
        if ch == "{":
            if all(k == "scope" for k in stack):
                header = s[header_start:i]
                header = re.sub(r"^\s*(public|private|protected)\s*:", "", header)
                if SCOPE.match(header) or "(" not in header or header.rstrip().endswith("="):
                    kind = "scope" if SCOPE.match(header) else "other"
                else:
                    kind = "func"
                    first = header_start + len(header) - len(header.lstrip())
                    names = re.findall(r"([A-Za-z_~][\w:~]*|operator\S+)\s*\(", header)
                    name = names[0].split("::")[-1] if names else "?"
                    stack.append(kind)
                    found.append([name, line_at[first], None, len(stack)])
                    continue
            else:
                kind = "other"
            stack.append(kind)
            header_start = i + 1
        elif ch == "}":
            if stack:
                kind = stack.pop()
                if kind == "func":
                    for f in reversed(found):
                        if f[2] is None and f[3] == len(stack) + 1:
                            f[2] = line_at[i]
                            break
            header_start = i + 1
        elif ch == ";" and all(k == "scope" for k in stack):
            header_start = i + 1
        elif ch == ":" and all(k == "scope" for k in stack):
            # "public:" and friends end a header too
            if re.search(r"\b(public|private|protected)\s*$", s[header_start:i]):
                header_start = i + 1
    return [(name, a, b) for name, a, b, _ in found if b is not None]


def check_lengths(root, report):
    problems, lengths = [], []
    for _, rel in sources(root):
        with open(os.path.join(root, rel)) as f:
            text = f.read()
        for name, a, b in functions(rel, text):
            length = b - a + 1
            lengths.append((length, f"{rel}:{a}", name))
            if length >= LONG_FUNCTION and (rel, name) not in EXEMPT:
                problems.append(f"{rel}:{a}: {name}() is {length} lines "
                                f"(at most {LONG_FUNCTION - 1}: split it)")
    for length, where, name in sorted(lengths, reverse=True)[:report]:
        print(f"{length:5d}  {where}  {name}()")
    return problems


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "..")
    report = 0
    if "--report" in sys.argv:
        report = int(sys.argv[sys.argv.index("--report") + 1])
        args = [a for a in args if a != str(report)]
    problems = check_layers(root) + check_lengths(root, report)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s): see tests/arch/check_tree.py for the rules")
        return 1
    print("tree ok: layers as docs/DESIGN.md draws them, no function of 80 lines or more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
