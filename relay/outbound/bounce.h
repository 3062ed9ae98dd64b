// bounce.h — delivery status notifications (RFC 3464, multipart/report) for
// recipients that failed permanently or expired. Honors NOTIFY (no DSN for
// NEVER, or when FAILURE was not asked for), RET (full message or headers
// only), ENVID and ORCPT. Never for the null sender: the caller checks.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "queue/spool.h"

namespace danerelay::relay {

struct FailedRecipient {
    size_t index = 0;        // in the envelope
    std::string status;      // "5.1.10"
    std::string diagnostic;  // the remote reply, or our reason
    std::string remoteMta;   // MX host name, if one answered
};

constexpr size_t kMaxDsnValue = 4096;  // bytes of one field's value
constexpr size_t kDsnFoldAt = 78;      // fold at a space before this
constexpr size_t kDsnHardLine = 990;   // never a line longer (with CRLF: < 998)

// s made safe for one line of a DSN (see above), at most maxBytes.
std::string dsnText(std::string_view s, size_t maxBytes = kMaxDsnValue);
// head + dsnText(value), folded, ending in CRLF. Exposed for tests.
std::string dsnLine(std::string_view head, std::string_view value);

// True if this recipient asked for (or defaults to) a failure DSN.
bool wantsFailureDsn(const queue::Recipient& r);

// The whole DSN message, CRLF line endings.
std::string buildFailureDsn(const std::string& hostname, const queue::StoredMessage& m,
                            const std::string& content, const std::vector<FailedRecipient>& failed,
                            std::time_t now);

}  // namespace danerelay::relay
