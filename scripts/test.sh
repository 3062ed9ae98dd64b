#!/bin/sh
# Builds and runs every test: once normally, once under AddressSanitizer +
# UndefinedBehaviorSanitizer. Usage: scripts/test.sh [--no-sanitize]
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
# The Debian package: built, installed, run and purged (root on Debian only).
[ "${DANERELAY_SKIP_PACKAGE:-0}" = 1 ] || [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ] || scripts/package-test.sh

if [ "${1:-}" != "--no-sanitize" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDANERELAY_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")
fi
