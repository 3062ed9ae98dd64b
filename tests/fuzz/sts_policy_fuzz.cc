// sts_policy_fuzz.cc — fuzz target for the MTA-STS parsers (sts/): the
// policy body (policy_text), the _mta-sts TXT record (txt_record), MX
// pattern matching, and the cache file reader (cache). Invariants: nothing
// throws or traps; an accepted policy keeps the RFC 8461 bounds (a mode,
// max_age within 0..31557600, mx patterns in normal form that match a host
// they should, at least one unless mode none) and survives the cache's
// write and read unchanged; every error names the domain, is printable
// ASCII and bounded whatever the input.
//
// Built with -fsanitize=fuzzer it is a libFuzzer target; otherwise main()
// below runs every file of a corpus directory once (CTest:
// fuzz.sts_policy_corpus).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "sts/cache.h"
#include "sts/policy_text.h"
#include "sts/txt_record.h"

using namespace danerelay;
using namespace danerelay::sts;

namespace {
void check(bool ok) {
    if (!ok) __builtin_trap();
}

void checkError(const std::string& e, std::string_view prefix) {
    check(e.compare(0, prefix.size(), prefix) == 0);
    check(e.size() <= 400);
    for (unsigned char c : e) check(c >= 0x20 && c < 0x7f);
}

void checkPolicy(const Policy& p, std::string_view text) {
    check(p.maxAge >= 0 && p.maxAge <= kMaxMaxAge);
    check(p.mode == Mode::None || !p.mx.empty());
    for (const auto& m : p.mx) {
        check(!m.empty() && m.back() != '.');
        for (char c : m) check(!(c >= 'A' && c <= 'Z'));
        if (m.rfind("*.", 0) == 0) {
            check(mxPatternMatches(m, "x" + m.substr(1)));
            check(!mxPatternMatches(m, m.substr(2)));
            check(!mxPatternMatches(m, "a.b" + m.substr(1)));
        } else {
            check(mxPatternMatches(m, m));
            check(mxPatternMatches(m, m + "."));
            check(!mxPatternMatches(m, "x." + m));
        }
    }
    // The cache writes what it accepts and reads back the same policy.
    ManualClock clock;
    auto e = makeEntry("fuzz.example", "fuzz1", std::string(text), clock);
    check(e.ok());
    auto back = parseEntry("fuzz.example", serializeEntry(*e));
    check(back.ok());
    check(back->text == text && back->policy.mode == p.mode && back->policy.maxAge == p.maxAge &&
          back->policy.mx == p.mx);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);

    auto p = parsePolicy("fuzz.example", in);
    if (p) {
        checkPolicy(*p, in);
    } else {
        checkError(p.error().message, "MTA-STS policy for fuzz.example: ");
    }

    // TXT records: the input split at NUL bytes, as several records.
    std::vector<std::string> records;
    size_t start = 0;
    while (start <= in.size() && records.size() < 16) {
        size_t nul = in.find('\0', start);
        if (nul == std::string_view::npos) nul = in.size();
        records.emplace_back(in.substr(start, nul - start));
        start = nul + 1;
    }
    auto one = parseTxtRecord("fuzz.example", records.front());
    if (one) {
        check(!one->empty() && one->size() <= kMaxIdLength);
    } else {
        checkError(one.error().message, "MTA-STS TXT record at _mta-sts.fuzz.example: ");
    }
    auto sel = selectTxtRecord("fuzz.example", records);
    check((sel.status == TxtStatus::Found) == !sel.id.empty());
    if (sel.status == TxtStatus::Invalid) {
        checkError(sel.error, "MTA-STS TXT record at _mta-sts.fuzz.example: ");
    }

    // Matching with hostile names on both sides, and the cache file reader.
    for (const auto& r : records) (void)mxPatternMatches(records.front(), r);
    auto entry = parseEntry("fuzz.example", in);
    if (entry)
        check(entry->domain == "fuzz.example");
    else
        checkError(entry.error().message, "MTA-STS cache file for fuzz.example: ");
    return 0;
}

#ifndef DANERELAY_LIBFUZZER
#include "tests/fuzz/corpus_main.h"
#endif
