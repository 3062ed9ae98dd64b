// smtp_reply_fuzz.cc — fuzz target for what the outbound client parses from
// a server: reply assembly (fed in pieces, as the socket would), the
// enhanced status split, the EHLO keywords, and the DSN text built from a
// reply. Invariants: nothing throws or traps, the buffered input and every
// reply stay within the caps, and every text handed back is valid UTF-8
// without control characters (so json::dump cannot throw on it).
//
// Built with -fsanitize=fuzzer it is a libFuzzer target; otherwise main()
// below runs every file of a corpus directory once (CTest:
// fuzz.smtp_reply_corpus).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "queue/utf8.h"
#include "relay/outbound/bounce.h"
#include "relay/outbound/smtp_reply.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {
void check(bool ok) {
    if (!ok) __builtin_trap();
}

void checkText(const std::string& t) {
    check(queue::isValidUtf8(t));
    for (unsigned char c : t) check(c >= 0x20 || c == '\t');
    check(nlohmann::json(t).dump().size() >= t.size());  // strict dump: throws if not UTF-8
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    ReplyAssembler a;
    std::string buf;
    size_t pos = 0;
    bool broken = false;
    while (pos < in.size() && !broken) {
        // Chunk sizes come from the input itself.
        size_t chunk = 1 + static_cast<unsigned char>(in[pos]) % 97;
        buf.append(in.substr(pos, chunk));
        pos += chunk;
        for (;;) {
            SmtpReply r;
            std::string error;
            auto step = a.next(buf, &r, &error);
            if (step == ReplyAssembler::Step::NeedMore) break;
            if (step == ReplyAssembler::Step::Error) {
                checkText(error);
                check(error.size() <= 200);
                broken = true;  // the client drops the connection here
                break;
            }
            check(r.code >= 0 && r.code <= 999);
            check(!r.lines.empty() && r.lines.size() <= kMaxReplyLines);
            size_t total = 0;
            for (const auto& l : r.lines) {
                checkText(l);
                check(l.size() <= 3 * kMaxReplyLine);
                total += l.size();
            }
            check(total <= 3 * kMaxReplyBytes);
            auto text = r.text();
            checkText(text);
            auto es = splitEnhancedStatus(r.code, r.lines.back());
            check(es.code.empty() ||
                  (es.code.size() >= 5 && es.code.size() <= 9 && es.code[0] - '0' == r.code / 100));
            (void)parseEhlo(r.allLines());
            auto line = dsnLine("Diagnostic-Code: smtp; ", text);
            check(queue::isValidUtf8(line));
            for (size_t i = 0; i < line.size(); ++i) {
                if (line[i] == '\r') check(i + 1 < line.size() && line[i + 1] == '\n');
                if (line[i] == '\n') check(i > 0 && line[i - 1] == '\r');
            }
        }
        // Never more buffered than one line past the cap, plus one chunk.
        check(broken || buf.size() <= kMaxReplyLine + 2 + 97);
    }
    // The helpers on the raw bytes too.
    auto valid = queue::toValidUtf8(in);
    check(queue::isValidUtf8(valid) && valid.size() <= 3 * in.size());
    check(queue::isValidUtf8(queue::utf8Prefix(valid, in.size() / 2)));
    checkText(sanitizeReplyText(in, 1000));
    check(sanitizeReplyText(in, 1000).size() <= 1000);
    (void)parseEhlo(in);
    (void)splitEnhancedStatus(550, in);
    return 0;
}

#ifndef DANERELAY_LIBFUZZER
#include "tests/fuzz/corpus_main.h"
#endif
