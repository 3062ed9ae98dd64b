// mta_sts.h — the MTA-STS policy of a destination (RFC 8461), as delivery
// asks for it: the `_mta-sts` TXT lookup through dns/, the durable cache in
// SPOOL/sts/ (sts/cache.h, read and written on workers), and the HTTPS
// fetch on the loop (sts/fetcher.h), put together by sts::decideRefresh().
//
// lookup(domain) answers with an StsView (relay/outbound/delivery.h):
//   a live cached policy                 → at once (a refresh the rules ask
//                                          for runs behind it)
//   none live, a fetch wanted now        → after the fetch (first contact
//     (first contact, expired)             waits, bounded by the fetch
//                                          timeout: "securely or not yet");
//                                          lookups for the same domain join
//                                          the one fetch in flight
//   otherwise                            → no policy, and why (no record,
//                                          held back after failures, ...)
// The policy host's addresses come from dns/ (the relay's resolver, never
// the system's), only from answers that are not bogus or indeterminate, and
// libcurl is pinned to them. A fetched body becomes the cached entry only if
// it parses (sts/cache.h makeEntry); a failure is logged (event
// sts-fetch-failed) and kept in the entry's history, which backs the next
// fetch off; a cached policy stays in force until it expires whatever the
// fetch or DNS say (sts/cache.h). Logs: sts-fetched, sts-fetch-failed,
// sts-cache-damaged.
//
// The in-memory table is bounded (kMaxDomains): idle domains are dropped
// from memory first; their files stay and are read again when needed.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/dispatcher.h"
#include "dns/resolver.h"
#include "relay/outbound/delivery.h"
#include "relay/runtime/config.h"
#include "relay/runtime/event_loop.h"
#include "relay/runtime/metrics_handles.h"
#include "sts/cache.h"
#include "sts/fetcher.h"

namespace danerelay::relay {

class MtaSts {
  public:
    using Callback = std::function<void(const StsView&)>;
    static constexpr size_t kMaxDomains = 20000;

    // cacheDir: created if missing (0750). Fails if it cannot be opened.
    static Result<std::unique_ptr<MtaSts>> open(Dispatcher& d, WorkerPool& workers,
                                                dns::Resolver& resolver, const MtaStsConfig& cfg,
                                                const std::string& cacheDir);
    ~MtaSts();
    MtaSts(const MtaSts&) = delete;
    MtaSts& operator=(const MtaSts&) = delete;

    // done runs later on the loop, never from inside lookup().
    void lookup(const std::string& domain, Callback done);

    // Where fetches are counted (the Scheduler's; may change, never null
    // once set).
    void setMetrics(OutboundMetrics* m) { metrics_ = m; }
    size_t domains() const { return domains_.size(); }
    // The in-memory bound (kMaxDomains; tests make it small).
    void setMaxDomains(size_t n) { maxDomains_ = n; }
    size_t fetchesInFlight() const { return fetcher_.inFlight(); }
    const std::string& trustStore() const { return cfg_.trustStore; }

  private:
    struct Domain {
        bool loaded = false, loading = false;
        // TXT lookups in flight (after the load, before decide()): the
        // entry must stay in memory for them, or decide() would find a
        // fresh one without its cached policy.
        int lookups = 0;
        // The cache file could not be read (I/O): not loaded, read again by
        // the next lookup; lookups until then answer "unknown".
        std::string loadError;
        std::vector<std::function<void()>> afterLoad;
        std::optional<sts::CacheEntry> entry;
        sts::FetchHistory history;  // nothing cached: failures kept here
        bool fetching = false;
        std::vector<Callback> waiters;  // waiting for the fetch in flight
        bool storing = false;
        std::optional<sts::CacheEntry> pendingStore;
    };

    MtaSts(Dispatcher& d, WorkerPool& workers, dns::Resolver& resolver, const MtaStsConfig& cfg,
           sts::PolicyCache cache);
    Domain& domain(const std::string& name);
    void load(const std::string& name, std::function<void()> then);
    void decide(const std::string& name, const sts::TxtLookup& txt, Callback done);
    void startFetch(const std::string& name, const std::string& id);
    void fetched(const std::string& name, const std::string& id, Result<std::string> body);
    void store(const std::string& name, sts::CacheEntry e);
    void trim();
    StsView viewOf(const Domain& d, const std::string& noPolicyWhy) const;

    Dispatcher& dispatcher_;
    WorkerPool& workers_;
    dns::Resolver& resolver_;
    MtaStsConfig cfg_;
    std::shared_ptr<sts::PolicyCache> cache_;  // shared with worker tasks
    sts::Fetcher fetcher_;
    std::map<std::string, Domain> domains_;
    size_t maxDomains_ = kMaxDomains;
    OutboundMetrics* metrics_ = nullptr;
    // Worker and resolver callbacks check it: none runs after the end.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The TXT answer at _mta-sts.DOMAIN as sts/ reads it (a failed, bogus or
// indeterminate lookup is LookupFailed). Shared with danectl probe.
sts::TxtLookup stsRecord(const std::string& domain, const dns::Answer& a);

// The policy body of DOMAIN: mta-sts.DOMAIN's A and AAAA from `resolver`
// (answers that are bogus or indeterminate are not used), then the fetch
// pinned to those addresses. done runs on the loop unless `alive` has
// expired (or holds false) by then. Shared with danectl probe.
void fetchPolicyBody(dns::Resolver& resolver, sts::Fetcher& fetcher, const std::string& domain,
                     std::weak_ptr<bool> alive, std::function<void(Result<std::string>)> done);

}  // namespace danerelay::relay
