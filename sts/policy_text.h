// policy_text.h — the MTA-STS policy body (RFC 8461 3.2) and MX pattern
// matching (RFC 8461 4.1). Pure functions of their input.
//
// The body is parsed strictly as the ABNF:
//   sts-policy-record  = sts-policy-field *WSP
//                        *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
//   sts-policy-term    = LF / CRLF
//   field              = name ":" *WSP value
// so: lines end in LF or CRLF (a bare CR anywhere is an error), no empty
// line except one final terminator, no space before the colon, names are
// case-sensitive. The first line must be `version: STSv1`. Known fields:
//   mode     enforce | testing | none                  (required)
//   max_age  1*10DIGIT seconds                         (required)
//   mx       ["*."] Domain, one per line               (one or more; may be
//            absent when mode is none)
// Unknown fields are ignored if they are well-formed extensions (name
// (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."), a value of visible
// ASCII, spaces and valid UTF-8). Duplicates: every `mx` line counts; of
// any other field the first is used and the rest are ignored (RFC 8461 3.2).
//
// Choices where the RFC leaves room (each one tested):
// - max_age above 31557600 (which the ABNF's 10 digits allow and 3.2's
//   "maximum value of 31557600" does not): accepted and capped at
//   31557600, with `maxAgeCapped` set so it can be logged. Eleven or more
//   digits break the ABNF and are refused.
// - An mx pattern may end in one dot ("mx.example.net."), which RFC 5321's
//   Domain does not allow: it is accepted and dropped. Refusing it would
//   leave the domain without a policy, the weaker outcome.
// - Mode and version values are case-sensitive (%s in the ABNF).
//
// What it refuses: everything else, with an error naming the domain and the
// line, quoting the offending bytes safely. A body over kMaxPolicyBytes is
// refused before it is read (the fetcher caps it too).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace danerelay::sts {

constexpr int64_t kMaxMaxAge = 31557600;  // RFC 8461 3.2: one year
constexpr size_t kMaxPolicyBytes = 64 * 1024;

enum class Mode { Enforce, Testing, None };
const char* toString(Mode m);

struct Policy {
    Mode mode = Mode::None;
    int64_t maxAge = 0;         // seconds, at most kMaxMaxAge
    bool maxAgeCapped = false;  // the policy said more than kMaxMaxAge
    // Lower case, without a trailing dot; "*.example.net" keeps its "*.".
    std::vector<std::string> mx;

    // RFC 8461 4.1: does the MX host name match one of the patterns?
    bool matchesMx(std::string_view host) const;
    // The mx patterns for logs and reasons: "a, b" ("" without any).
    std::string mxText() const;
};

Result<Policy> parsePolicy(std::string_view domain, std::string_view text);

// One pattern against one MX host name (either may end in a dot; ASCII case
// is ignored). "*.example.net" matches exactly one leftmost label more:
// "mx.example.net", not "example.net" nor "a.b.example.net". A host that is
// not a well-formed host name matches nothing.
bool mxPatternMatches(std::string_view pattern, std::string_view host);

}  // namespace danerelay::sts
