#!/bin/sh
# Coverage-guided fuzzing with libFuzzer (clang), for developers:
#   tests/fuzz/run-libfuzzer.sh smtp|smtp_reply|proxy|dns|dns_diff|sts_policy [SECONDS]
# CI only replays the corpora (CTest fuzz.*).
set -eu
cd "$(dirname "$0")/../.."
target=${1:-smtp}
out=${TMPDIR:-/tmp}/danerelay-fuzz-$target
mkdir -p "$out/corpus"
cp tests/fuzz/corpus/"$target"/* "$out/corpus/"
flags="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DDANERELAY_LIBFUZZER -I."
# The sources each target needs, by folder (docs/DESIGN.md has the tree).
dns_sources="dns/*.cc common/event.cc common/dispatcher.cc -lldns -lcrypto -levent"
case "$target" in
  smtp) clang++ $flags tests/fuzz/smtp_fuzz.cc relay/inbound/smtp_parser.cc relay/inbound/auth.cc \
          relay/runtime/base64.cc queue/utf8.cc queue/envelope.cc -lcrypt -o "$out/fuzz" ;;
  smtp_reply) clang++ $flags tests/fuzz/smtp_reply_fuzz.cc relay/outbound/smtp_reply.cc \
          relay/outbound/bounce.cc relay/runtime/mail_date.cc queue/utf8.cc queue/envelope.cc \
          -o "$out/fuzz" ;;
  proxy) clang++ $flags tests/fuzz/proxy_fuzz.cc relay/inbound/proxy_protocol.cc \
          -o "$out/fuzz" ;;
  dns)  clang++ $flags -DDANERELAY_SOURCE_DIR="\"$PWD\"" tests/fuzz/dns_fuzz.cc $dns_sources \
          -o "$out/fuzz" ;;
  dns_diff) clang++ $flags -DDANERELAY_SOURCE_DIR="\"$PWD\"" tests/fuzz/dns_diff_fuzz.cc \
          $dns_sources -o "$out/fuzz" ;;
  sts_policy) clang++ $flags tests/fuzz/sts_policy_fuzz.cc sts/text.cc sts/txt_record.cc \
          sts/policy_text.cc sts/cache.cc -o "$out/fuzz" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
"$out/fuzz" -max_total_time="${2:-60}" -max_len=4096 "$out/corpus"
