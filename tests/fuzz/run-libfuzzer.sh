#!/bin/sh
# Coverage-guided fuzzing of the SMTP parsers with libFuzzer (clang), for
# developers: tests/fuzz/run-libfuzzer.sh [SECONDS]. CI only replays the corpus.
set -eu
cd "$(dirname "$0")/../.."
out=${TMPDIR:-/tmp}/danerelay-fuzz
mkdir -p "$out/corpus"
cp tests/fuzz/corpus/smtp/* "$out/corpus/"
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DDANERELAY_LIBFUZZER -I. \
  tests/fuzz/smtp_fuzz.cc relay/smtp_parser.cc relay/auth.cc -lcrypt -o "$out/smtp_fuzz"
"$out/smtp_fuzz" -max_total_time="${1:-60}" -max_len=4096 "$out/corpus"
