// bounce.h — delivery status notifications (RFC 3464, multipart/report) for
// recipients that failed permanently or expired. Honors NOTIFY (no DSN for
// NEVER, or when FAILURE was not asked for), RET (full message or headers
// only), ENVID and ORCPT. Never for the null sender: the caller checks.
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "queue/spool.h"

namespace danerelay::relay {

struct FailedRecipient {
    size_t index = 0;        // in the envelope
    std::string status;      // "5.1.10"
    std::string diagnostic;  // the remote reply, or our reason
    std::string remoteMta;   // MX host name, if one answered
};

// True if this recipient asked for (or defaults to) a failure DSN.
bool wantsFailureDsn(const queue::Recipient& r);

// The whole DSN message, CRLF line endings.
std::string buildFailureDsn(const std::string& hostname, const queue::StoredMessage& m,
                            const std::string& content, const std::vector<FailedRecipient>& failed,
                            std::time_t now);

}  // namespace danerelay::relay
