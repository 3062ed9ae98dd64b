// resolver.h — asynchronous DNS on a libevent loop, with ldns for packets.
//
// Queries go to the configured recursive resolvers (address:port) with RD,
// EDNS0 (1232 octets) and the DO bit; over UDP, retried over TCP when the
// answer is truncated; each attempt has a timeout, and attempts rotate
// through the servers. Replies must come from the server asked (connected
// socket), carry our random ID and echo our question, or they are dropped.
// Nothing here blocks the loop.
//
// DNSSEC in "local" mode (a Validator in the options): queries carry CD,
// the AD bit is ignored, and each answer is validated in-process from the
// trust anchor (see validator.h) on a worker thread before it is cached or
// handed out; Bogus and Indeterminate answers are not handed out.
//
// DNSSEC in "resolver" mode: the AD bit is believed only from servers marked
// trusted (by default, loopback addresses). A SERVFAIL from a trusted server
// is asked again with CD set: if data comes back then, the answer failed
// validation (Bogus); otherwise it stays ServFail. The start-up probe checks
// the resolver really validates: a known-signed name must come back Secure
// and a known-bogus name must fail. Until it passes, validating() is false
// and callers must treat DANE as unknowable (fail closed).
//
// Answers are cached by TTL (positive and negative, capped); identical
// lookups in flight are coalesced into one query.
//
// Time comes from an injected Clock (common/clock.h): its monotonic() reading
// ages the cache, its wallSeconds() is the validation time handed to the
// Validator. Per-attempt timeouts are libevent timers, on real time. The
// Resolver runs its callbacks and destroys finished queries through a
// Dispatcher of its own on the given event_base, so nothing of it outlives
// it and nothing is destroyed from under its own callback.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/dispatcher.h"
#include "common/result.h"
#include "dns/answer.h"
#include "dns/validator.h"

namespace danerelay::dns {

struct ServerAddress {
    std::string host;  // numeric IPv4/IPv6
    uint16_t port = 53;
    bool trusted = false;  // believe its AD bit
    std::string text() const;
};

// "127.0.0.1", "127.0.0.1:5353", "[::1]:53"; trusted defaults to loopback.
Result<ServerAddress> parseServerAddress(const std::string& text);

// What the resolver tells whoever counts (relay/runtime's metrics): dns/
// knows nothing of metrics. Each call must be cheap (an atomic add); they
// come from the loop, and validated() from a validator worker thread.
class ResolverObserver {
  public:
    virtual void querySent() = 0;
    // An answer handed to a caller: from the cache or not, and its status.
    virtual void answered(Security s, bool fromCache) = 0;
    // A Bogus verdict; kind: toString(BogusReason), or "resolver" when a
    // validating resolver said so (its reason is not known here).
    virtual void bogus(const char* kind) = 0;
    // One local validation took this long.
    virtual void validated(double seconds) = 0;

  protected:
    ~ResolverObserver() = default;
};

struct ResolverOptions {
    std::vector<ServerAddress> servers;
    unsigned timeoutMs = 2000;  // per attempt
    unsigned attempts = 3;      // in all, rotating through the servers
    uint32_t maxTtl = 3600;     // cache cap for positive answers
    uint32_t maxNegativeTtl = 300;
    uint32_t failureTtl = 5;  // SERVFAIL / timeout / bogus are retried soon
    size_t maxCacheEntries = 100000;
    std::string probeSecureName;  // must validate (AD); empty: no probe
    std::string probeBogusName;   // must fail validation
    // "local" validation: every query has CD set, and every answer is
    // checked by this validator (no AD bit believed). It blocks, so it runs
    // through offload (work on a worker thread, then done on the loop).
    std::shared_ptr<Validator> validator;
    std::function<void(std::function<void()> work, std::function<void()> done)> offload;
    // Null: nothing counted. Must outlive the Resolver.
    ResolverObserver* observer = nullptr;
};

class Resolver {
  public:
    using Callback = std::function<void(const Answer&)>;

    Resolver(event_base* base, ResolverOptions options,
             const Clock& clock = SystemClock::instance());
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // name: any case, with or without trailing dot. The callback runs on the
    // loop, never from inside lookup() itself.
    void lookup(const std::string& name, uint16_t type, Callback cb);

    // Runs the validation probe; done(validating, detail).
    void probe(std::function<void(bool, const std::string&)> done);
    bool validating() const { return validating_; }
    const std::string& probeDetail() const { return probeDetail_; }
    // When the probe last found validation working (Unix seconds, the
    // clock's wall time); 0: never.
    int64_t lastProbeSuccess() const { return lastProbeSuccess_; }

    // Counters, for tests and status.
    uint64_t queriesSent() const { return queriesSent_; }
    size_t cacheSize() const { return cache_.size(); }

    // Another clock for the cache and the validation time (tests: a
    // ManualClock); it must outlive the Resolver.
    void setClock(const Clock& clock) { clock_ = &clock; }

  private:
    class Query;
    struct CacheEntry {
        Answer answer;
        std::chrono::steady_clock::time_point expires;
    };
    using Key = std::pair<std::string, uint16_t>;

    void start(const Key& key, bool checkingDisabled);
    void finished(Query* q, Answer a);
    void deliver(const Key& key, const Answer& a);
    void store(const Key& key, const Answer& a);
    // cb(a) on the loop, after the current callback (never inside lookup()).
    void later(Callback cb, Answer a);

    event_base* base_;
    ResolverOptions opts_;
    const Clock* clock_;
    Dispatcher dispatcher_;
    std::map<Key, CacheEntry> cache_;
    std::map<Key, std::vector<Callback>> waiting_;
    std::map<Query*, std::unique_ptr<Query>> inFlight_;
    bool validating_ = false;
    std::string probeDetail_ = "not probed yet";
    int64_t lastProbeSuccess_ = 0;
    uint64_t queriesSent_ = 0;
    size_t nextServer_ = 0;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // for offloaded validations
};

}  // namespace danerelay::dns
