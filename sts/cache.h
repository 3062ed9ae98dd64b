// cache.h — the durable MTA-STS policy cache and its refresh rules
// (RFC 8461 3.3 and 5.1).
//
// Storage (PolicyCache): one file per policy domain, DIR/DOMAIN (DIR is the
// caller's, e.g. SPOOL/sts/), JSON holding the TXT id the policy was fetched
// under, when, the policy body exactly as fetched (parsed again on every
// load by sts/policy_text: one reader), the refresh failures since then and
// a checksum over all of it. A write goes to DIR/.tmp-DOMAIN, is fsync'd,
// renamed over DIR/DOMAIN and the directory fsync'd: a crash leaves the old
// policy or the new one, never half of either. A file that cannot be read
// as a policy (bad JSON, bad checksum, a body that no longer parses, a file
// named for another domain) is moved to DIR/damaged/ with a `.why` beside
// it, never deleted, and the load says so (`Loaded::damaged`). Every call
// does blocking disk I/O: run it on a worker, never on the event loop; one
// writer per domain at a time (the temporary file is per domain). Policy
// domains are host names with at least one dot (the file name is the
// domain, so "damaged" and ".tmp-*" can never be one).
//
// Refresh (decideRefresh, a pure function of the cached entry, the TXT
// lookup, the fetch history and the clock):
// - A cached policy applies until fetched_at + max_age, whatever DNS says:
//   a missing, broken or unreachable TXT record removes nothing, and a
//   failed fetch keeps the cached policy (an attacker who blocks the fetch
//   gains nothing before max_age runs out).
// - A fetch is wanted when a TXT record is found and there is no live
//   policy (first contact, or expired), when its id differs from the cached
//   id, or when the cached policy is due for refresh: after
//   min(refresh_interval (a day), max_age / 2) — RFC 8461 3.3's proactive
//   refresh. Due for refresh with no usable TXT record, the policy is
//   fetched anyway (choice: hiding the TXT record must not let a policy run
//   out; a domain leaving MTA-STS publishes mode none first, RFC 8461 8.3).
// - After a failed fetch, the next waits min(retry_max, retry_min *
//   2^(failures-1)) (RFC 8461 3.3: rate-limit and back off).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "sts/policy_text.h"
#include "sts/txt_record.h"

namespace danerelay::sts {

// Failed fetches since the last good one (kept in the cache entry; for a
// domain with nothing cached yet the caller keeps it in memory).
struct FetchHistory {
    int failures = 0;
    int64_t lastFailureAt = 0;  // wall seconds
    std::string lastError;
};

struct CacheEntry {
    std::string domain;  // lower case, no trailing dot
    std::string id;      // the TXT id the policy was fetched under
    std::string text;    // the policy body as fetched
    Policy policy;       // parsed from text
    int64_t fetchedAt = 0;
    FetchHistory history;

    int64_t expiresAt() const { return fetchedAt + policy.maxAge; }
    bool liveAt(int64_t now) const { return now < expiresAt(); }
};

// A fetched body made into an entry (parsed here, so an entry always holds
// a policy that its text says).
Result<CacheEntry> makeEntry(std::string_view domain, std::string id, std::string text,
                             const Clock& clock);

// The history after one more failed fetch (the error kept as printable
// ASCII, \xHH for other bytes, cut after 300 bytes).
FetchHistory recordFailure(FetchHistory h, std::string error, const Clock& clock);

struct RefreshRules {
    int64_t refreshInterval = 86400;  // proactive refresh, once a day
    int64_t retryMin = 60;            // first wait after a failed fetch
    int64_t retryMax = 3600;          // longest wait between fetch attempts
};

enum class FetchReason { None, FirstContact, Expired, IdChanged, Refresh };
const char* toString(FetchReason r);

struct RefreshDecision {
    bool apply = false;  // the cached policy is live: enforce it now
    FetchReason fetch = FetchReason::None;
    bool heldBack = false;  // a fetch is wanted but the backoff says not before retryAt
    int64_t retryAt = 0;
    // The id to store with a policy fetched now: the TXT id, else the cached one.
    std::string fetchId;
    bool fetchNow() const { return fetch != FetchReason::None && !heldBack; }
};

RefreshDecision decideRefresh(const CacheEntry* cached, const TxtLookup& txt,
                              const FetchHistory& history, const Clock& clock,
                              const RefreshRules& rules = {});

// When the cached policy is due for a proactive refresh.
int64_t refreshDue(const CacheEntry& e, const RefreshRules& rules = {});

class PolicyCache {
  public:
    // Creates DIR (0750) and DIR/damaged if missing.
    static Result<PolicyCache> open(std::string dir);

    struct Loaded {
        std::optional<CacheEntry> entry;  // empty: nothing cached (or damaged)
        std::string damaged;              // non-empty: the file was set aside, and why
    };
    // Errors: a name that is not a domain (permanent), I/O (temporary).
    Result<Loaded> load(std::string_view domain) const;
    // As load(), read only (danectl probe): DIR is not created, a damaged
    // file is reported but left where it is.
    static Result<Loaded> peek(const std::string& dir, std::string_view domain);
    Status store(const CacheEntry& e);
    Status remove(std::string_view domain);
    // Every domain with a file (for start-up and danectl); names that are
    // not domains are skipped.
    Result<std::vector<std::string>> domains() const;
    size_t damagedCount() const;
    const std::string& dir() const { return dir_; }

  private:
    PolicyCache(std::string dir, UniqueFd dirFd) : dir_(std::move(dir)), dirFd_(std::move(dirFd)) {}
    std::string setAside(const std::string& name, const std::string& why) const;

    std::string dir_;
    UniqueFd dirFd_;
};

// The file's text for an entry, and its reading back (exposed for tests).
std::string serializeEntry(const CacheEntry& e);
Result<CacheEntry> parseEntry(std::string_view domain, std::string_view fileText);

}  // namespace danerelay::sts
