#!/usr/bin/env python3
"""`cmake --install BUILD --prefix TMP` puts every installed file under TMP.

The binaries land in sbin/ and bin/, the configuration examples in
etc/danerelay/, the unit in lib/systemd/system/, the logrotate file in
etc/logrotate.d/. Fails naming the missing file, or the installed path that
escaped the prefix (install_manifest.txt lists every path cmake wrote).
Usage: check_install.py CMAKE BUILD_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

EXPECTED = {
    "sbin/danerelayd",
    "bin/danectl",
    "etc/danerelay/danerelay.json",
    "etc/danerelay/policy/00-default.json",
    "etc/danerelay/policy/partners.json",
    "etc/logrotate.d/danerelay",
    "lib/systemd/system/danerelayd.service",
    "share/danerelay/policy.schema.json",
}
# Other rules (the man pages) may add files here.
ALSO_ALLOWED = ("share/man/", "share/doc/")


def installed_files(prefix):
    found = set()
    for root, _, files in os.walk(prefix):
        for f in files:
            found.add(os.path.relpath(os.path.join(root, f), prefix))
    return found


def check(prefix, build):
    found = installed_files(prefix)
    missing = sorted(EXPECTED - found)
    extra = sorted(f for f in found - EXPECTED if not f.startswith(ALSO_ALLOWED))
    errors = [f"not installed: {f}" for f in missing] + [f"unexpected: {f}" for f in extra]
    with open(os.path.join(build, "install_manifest.txt")) as m:
        for path in m.read().split():
            if not path.startswith(prefix + os.sep):
                errors.append(f"installed outside the prefix {prefix}: {path}")
    for exe in ("sbin/danerelayd", "bin/danectl"):
        if exe in found and not os.access(os.path.join(prefix, exe), os.X_OK):
            errors.append(f"not executable: {exe}")
    if "etc/danerelay/danerelay.json" in found:
        with open(os.path.join(prefix, "etc/danerelay/danerelay.json")) as f:
            json.load(f)
    return errors


def main():
    cmake, build = sys.argv[1], os.path.abspath(sys.argv[2])
    prefix = tempfile.mkdtemp(prefix="danerelay-install.")
    try:
        subprocess.run([cmake, "--install", build, "--prefix", prefix],
                       check=True, stdout=subprocess.DEVNULL)
        errors = check(prefix, build)
    finally:
        shutil.rmtree(prefix)
    for e in errors:
        print(f"install: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"install: {len(EXPECTED)} files under the prefix, nothing outside it")


if __name__ == "__main__":
    main()
