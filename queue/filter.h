// filter.h — which queued messages an operator's verb applies to.
//
// A message matches when its sender matches, it is old enough, and at least
// one of its recipients matches both the state and the domain filter. Empty
// fields match everything; a Filter with every field empty matches every
// message (callers decide whether "everything" needs an explicit --all).
// The same filter runs in danectl (read-only on the spool) and in the daemon
// (for verbs sent over the control socket), so both select the same mail.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "queue/spool.h"

namespace danerelay::queue {

struct Filter {
    std::string state;       // a RcptState name, or empty
    std::string domain;      // recipient domain, case-insensitive
    std::string sender;      // exact envelope sender, case-insensitive
    int64_t olderThan = -1;  // seconds since arrival; -1: any age

    bool empty() const {
        return state.empty() && domain.empty() && sender.empty() && olderThan < 0;
    }
    bool matches(const StoredMessage& m, int64_t now) const;

    // {"state":…, "domain":…, "sender":…, "older_than":…}, absent keys empty.
    nlohmann::json toJson() const;
    static Result<Filter> fromJson(const nlohmann::json& j);
};

std::string lowerCase(std::string s);
// The lower-cased domain of an address ("" without an @).
std::string domainOf(const std::string& address);

}  // namespace danerelay::queue
