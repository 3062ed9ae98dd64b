// txt_record.h — the `_mta-sts.DOMAIN` TXT record (RFC 8461 3.1).
//
// What it accepts, strictly as the ABNF:
//   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//   sts-field-delim = *WSP ";" *WSP
//   sts-version     = %s"v=STSv1"
//   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)     (required, exactly once)
//   sts-extension   = sts-ext-name "=" sts-ext-value  (ignored)
//   sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
// A record's strings are concatenated without spaces before it gets here.
//
// Selection (selectTxtRecord): records that do not begin with "v=STSv1"
// (followed by the delimiter) are discarded; if what remains is not exactly
// one record, or that one is invalid, the domain has no usable MTA-STS
// record. RFC 8461 asks to treat both as "no policy discovered"; the status
// keeps them apart for logs and for danectl probe. A missing record never
// removes a cached policy by itself (RFC 8461 3.1, 5.1): that is the cache's
// rule (sts/cache.h), not this parser's.
//
// What it refuses: anything else, with an error naming the domain and
// quoting the offending bytes safely. A second `id` is refused too (the
// ABNF would allow it, but which one names the policy would be a guess).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace danerelay::sts {

constexpr size_t kMaxIdLength = 32;

// The id of one record, or why the record is invalid.
Result<std::string> parseTxtRecord(std::string_view domain, std::string_view record);

enum class TxtStatus {
    Found,         // exactly one valid record: id is set
    Absent,        // no record begins with v=STSv1 (or no TXT at all)
    Invalid,       // more than one STSv1 record, or the one is malformed
    LookupFailed,  // the DNS lookup itself failed (set by the caller, not here)
};
const char* toString(TxtStatus s);

struct TxtLookup {
    TxtStatus status = TxtStatus::Absent;
    std::string id;     // Found only
    std::string error;  // Invalid (and LookupFailed, from the caller): names the domain
};

// RFC 8461 3.1's exactly-one-valid-record rule over every TXT record at
// _mta-sts.DOMAIN.
TxtLookup selectTxtRecord(std::string_view domain, const std::vector<std::string>& records);

}  // namespace danerelay::sts
