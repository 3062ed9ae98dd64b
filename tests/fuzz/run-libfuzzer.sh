#!/bin/sh
# Coverage-guided fuzzing with libFuzzer (clang), for developers:
#   tests/fuzz/run-libfuzzer.sh smtp|smtp_reply|dns|dns_diff [SECONDS]
# CI only replays the corpora (CTest fuzz.*).
set -eu
cd "$(dirname "$0")/../.."
target=${1:-smtp}
out=${TMPDIR:-/tmp}/danerelay-fuzz-$target
mkdir -p "$out/corpus"
cp tests/fuzz/corpus/"$target"/* "$out/corpus/"
flags="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DDANERELAY_LIBFUZZER -I."
case "$target" in
  smtp) clang++ $flags tests/fuzz/smtp_fuzz.cc relay/smtp_parser.cc relay/auth.cc queue/utf8.cc -lcrypt \
          -o "$out/fuzz" ;;
  smtp_reply) clang++ $flags tests/fuzz/smtp_reply_fuzz.cc relay/smtp_reply.cc relay/bounce.cc \
          queue/utf8.cc -o "$out/fuzz" ;;
  dns)  clang++ $flags -DDANERELAY_SOURCE_DIR="\"$PWD\"" tests/fuzz/dns_fuzz.cc dns/answer.cc dns/response.cc \
          dns/validator.cc -lldns -o "$out/fuzz" ;;
  dns_diff) clang++ $flags -DDANERELAY_SOURCE_DIR="\"$PWD\"" tests/fuzz/dns_diff_fuzz.cc \
          dns/answer.cc dns/response.cc dns/validator.cc -lldns -o "$out/fuzz" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
"$out/fuzz" -max_total_time="${2:-60}" -max_len=4096 "$out/corpus"
