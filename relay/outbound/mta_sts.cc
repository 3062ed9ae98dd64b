#include "relay/outbound/mta_sts.h"

#include <algorithm>

#include "relay/runtime/log.h"
#include "sts/text.h"

namespace danerelay::relay {

namespace {

std::string timeText(int64_t t) {
    char buf[32];
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

sts::TxtLookup stsRecord(const std::string& domain, const dns::Answer& a) {
    if (a.security != dns::Security::Bogus && a.security != dns::Security::Indeterminate &&
        (a.outcome == dns::Outcome::NxDomain || a.outcome == dns::Outcome::NoData)) {
        return sts::selectTxtRecord(domain, {});
    }
    if (a.outcome != dns::Outcome::Data || a.security == dns::Security::Bogus ||
        a.security == dns::Security::Indeterminate) {
        sts::TxtLookup l;
        l.status = sts::TxtStatus::LookupFailed;
        l.error = "_mta-sts." + domain + " TXT: " + dns::toString(a.outcome) + ", " +
                  dns::toString(a.security) + (a.detail.empty() ? "" : ": " + a.detail);
        return l;
    }
    return sts::selectTxtRecord(domain, a.txt);
}

Result<std::unique_ptr<MtaSts>> MtaSts::open(Dispatcher& d, WorkerPool& workers,
                                             dns::Resolver& resolver, const MtaStsConfig& cfg,
                                             const std::string& cacheDir) {
    auto cache = sts::PolicyCache::open(cacheDir);
    if (!cache) return cache.error();
    return std::unique_ptr<MtaSts>(new MtaSts(d, workers, resolver, cfg, std::move(*cache)));
}

MtaSts::MtaSts(Dispatcher& d, WorkerPool& workers, dns::Resolver& resolver, const MtaStsConfig& cfg,
               sts::PolicyCache cache)
    : dispatcher_(d),
      workers_(workers),
      resolver_(resolver),
      cfg_(cfg),
      cache_(std::make_shared<sts::PolicyCache>(std::move(cache))),
      fetcher_(d, [&cfg] {
          sts::FetchOptions o;
          o.caFile = cfg.trustStore;
          o.port = cfg.port;
          o.totalTimeout = std::chrono::seconds(cfg.fetchTimeout);
          o.connectTimeout = std::min(o.connectTimeout, o.totalTimeout);
          return o;
      }()) {}

MtaSts::~MtaSts() {
    *alive_ = false;
}

MtaSts::Domain& MtaSts::domain(const std::string& name) {
    if ((domains_.size() >= maxDomains_ || entryBytes_ > kMaxEntryBytes) && !domains_.count(name))
        trim();
    return domains_[name];
}

// What an entry holds in memory, roughly: its body and its patterns.
static size_t bytesOf(const std::optional<sts::CacheEntry>& e) {
    if (!e) return 0;
    size_t n = e->text.size() + e->id.size();  // (not the history: it changes in place)
    for (const auto& m : e->policy.mx) n += m.size();
    return n;
}

void MtaSts::setEntry(Domain& d, std::optional<sts::CacheEntry> e) {
    entryBytes_ -= bytesOf(d.entry);
    d.entry = std::move(e);
    entryBytes_ += bytesOf(d.entry);
}

// Idle domains leave memory (their files stay): none loading, looking up
// its TXT record, fetching, storing or waited for.
void MtaSts::trim() {
    auto over = [this] {
        return domains_.size() >= maxDomains_ / 2 || entryBytes_ > kMaxEntryBytes / 2;
    };
    for (auto it = domains_.begin(); it != domains_.end() && over();) {
        const Domain& d = it->second;
        // (One whose file could not be read is dropped too: it is read
        // again anyway.)
        bool idle = (d.loaded || !d.loadError.empty()) && !d.loading && d.lookups == 0 &&
                    !d.fetching && !d.storing && d.waiters.empty() && d.afterLoad.empty();
        if (idle) entryBytes_ -= bytesOf(d.entry);
        it = idle ? domains_.erase(it) : std::next(it);
    }
}

void MtaSts::lookup(const std::string& domainIn, Callback done) {
    std::string name = sts::normalizeName(domainIn);
    // An address literal or a name without a dot has no policy domain.
    if (name.empty() || name.front() == '[' || name.find('.') == std::string::npos) {
        StsView v;
        v.why = "not a domain that can publish MTA-STS";
        return dispatcher_.post([done, v] { done(v); });
    }
    std::weak_ptr<bool> alive = alive_;
    load(name, [this, alive, name, done] {
        if (alive.expired() || !*alive.lock()) return;
        ++domain(name).lookups;  // kept in memory until decide()
        resolver_.lookup("_mta-sts." + name, dns::kTypeTxt,
                         [this, alive, name, done](const dns::Answer& a) {
                             if (alive.expired() || !*alive.lock()) return;
                             --domain(name).lookups;
                             decide(name, stsRecord(name, a), done);
                         });
    });
}

// The domain's cache file, read once (on a worker); then `then` on the loop.
void MtaSts::load(const std::string& name, std::function<void()> then) {
    Domain& d = domain(name);
    if (d.loaded) return then();
    d.afterLoad.push_back(std::move(then));
    if (d.loading) return;
    d.loading = true;
    d.loadError.clear();
    auto got = std::make_shared<Result<sts::PolicyCache::Loaded>>(Error::internal("not read"));
    auto cache = cache_;
    std::weak_ptr<bool> alive = alive_;
    workers_.run(
        [cache, name, got] { *got = cache->load(name); },
        [this, alive, name, got] {
            if (alive.expired() || !*alive.lock()) return;
            Domain& dom = domain(name);
            dom.loading = false;
            dom.loaded = true;
            if (*got) {
                if (!(*got)->damaged.empty()) {
                    logEvent("sts-cache-damaged", {{"domain", name}, {"detail", (*got)->damaged}});
                }
                if ((*got)->entry) setEntry(dom, std::move((*got)->entry));
            } else {
                logEvent("sts-cache-error", {{"domain", name}, {"error", got->error().message}});
                // A name that cannot have a cache file (permanent) has
                // nothing cached; an I/O error may hide a cached policy.
                if (got->error().kind != ErrorKind::Permanent && !dom.entry) {
                    dom.loaded = false;
                    dom.loadError = got->error().message;
                }
            }
            auto waiting = std::move(dom.afterLoad);
            dom.afterLoad.clear();
            for (auto& w : waiting) w();
        });
}

StsView MtaSts::viewOf(const Domain& d, const std::string& noPolicyWhy) const {
    StsView v;
    if (d.entry && d.entry->liveAt(dispatcher_.now())) {
        v.policy = d.entry->policy;
        v.why = "policy id " + d.entry->id + " fetched " + timeText(d.entry->fetchedAt) +
                ", valid until " + timeText(d.entry->expiresAt());
    } else {
        v.why = noPolicyWhy;
    }
    return v;
}

void MtaSts::decide(const std::string& name, const sts::TxtLookup& txt, Callback done) {
    Domain& d = domain(name);
    if (!d.loaded) {
        // The cache file could not be read: whether a policy is cached is
        // not known, so no fetch and no "no policy" (the next lookup reads
        // the file again).
        StsView v;
        v.unknown = true;
        v.why = "MTA-STS cache unreadable: " +
                (d.loadError.empty() ? std::string("not read") : d.loadError);
        return dispatcher_.post([done, v] { done(v); });
    }
    const sts::CacheEntry* cached = d.entry ? &*d.entry : nullptr;
    const sts::FetchHistory& history = cached ? cached->history : d.history;
    auto r = sts::decideRefresh(cached, txt, history, dispatcher_.clock());
    if (r.fetchNow()) startFetch(name, r.fetchId);
    if (r.apply) {
        StsView v = viewOf(d, "");
        return dispatcher_.post([done, v] { done(v); });
    }
    if (d.fetching) {
        d.waiters.push_back(std::move(done));  // first contact waits for the policy
        return;
    }
    std::string why;
    // (history is the entry's or the domain's, as updated by a fetch that
    // failed at once, inside startFetch(): no address.)
    if (r.fetchNow() && history.failures > 0) {
        why = "policy fetch failed: " + history.lastError;
    } else if (r.heldBack) {
        why = "policy fetch failed " + std::to_string(history.failures) +
              " time(s), next try after " + timeText(r.retryAt) + ": " + history.lastError;
    } else if (txt.status == sts::TxtStatus::Found) {
        why = "no policy";
    } else {
        why = std::string("_mta-sts.") + name + " TXT: " + sts::toString(txt.status) +
              (txt.error.empty() ? "" : " (" + txt.error + ")");
    }
    StsView v = viewOf(d, why);
    dispatcher_.post([done, v] { done(v); });
}

void fetchPolicyBody(dns::Resolver& resolver, sts::Fetcher& fetcher, const std::string& domain,
                     std::weak_ptr<bool> alive, std::function<void(Result<std::string>)> done) {
    struct Gather {
        std::vector<std::string> addresses;
        std::string errors;
        int pending = 2;
    };
    auto g = std::make_shared<Gather>();
    auto live = [alive] { return !alive.expired() && *alive.lock(); };
    const std::string host = "mta-sts." + domain;
    for (uint16_t type : {dns::kTypeA, dns::kTypeAaaa}) {
        resolver.lookup(
            host, type, [&fetcher, g, live, domain, host, type, done](const dns::Answer& a) {
                if (!live()) return;
                bool usable = a.outcome == dns::Outcome::Data &&
                              a.security != dns::Security::Bogus &&
                              a.security != dns::Security::Indeterminate;
                if (usable) {
                    g->addresses.insert(g->addresses.end(), a.addresses.begin(), a.addresses.end());
                } else if (a.outcome != dns::Outcome::NoData ||
                           a.security == dns::Security::Bogus) {
                    g->errors += std::string(g->errors.empty() ? "" : "; ") +
                                 (type == dns::kTypeA ? "A: " : "AAAA: ") +
                                 dns::toString(a.outcome) + ", " + dns::toString(a.security);
                }
                if (--g->pending > 0) return;
                if (g->addresses.empty()) {
                    return done(
                        Error::temporary(host + " has no usable address" +
                                         (g->errors.empty() ? "" : " (" + g->errors + ")")));
                }
                fetcher.fetch({domain, std::move(g->addresses)},
                              [live, done](Result<std::string> b) {
                                  if (live()) done(std::move(b));
                              });
            });
    }
}

void MtaSts::startFetch(const std::string& name, const std::string& id) {
    Domain& d = domain(name);
    if (d.fetching) return;
    d.fetching = true;
    fetchPolicyBody(resolver_, fetcher_, name, alive_, [this, name, id](Result<std::string> body) {
        fetched(name, id, std::move(body));
    });
}

void MtaSts::fetched(const std::string& name, const std::string& id, Result<std::string> body) {
    Domain& d = domain(name);
    d.fetching = false;
    Result<sts::CacheEntry> e = Error::internal("no body");
    if (body) {
        e = id.empty() ? Result<sts::CacheEntry>(Error::permanent("MTA-STS: no policy id for " +
                                                                  name + " (no TXT record)"))
                       : sts::makeEntry(name, id, std::move(*body), dispatcher_.clock());
    } else {
        e = body.error();
    }
    std::string failure;
    if (e) {
        logEvent("sts-fetched", {{"domain", name},
                                 {"id", e->id},
                                 {"mode", sts::toString(e->policy.mode)},
                                 {"max_age", std::to_string(e->policy.maxAge)},
                                 {"mx", e->policy.mxText()}});
        if (metrics_) metrics_->stsFetchOk.inc();
        setEntry(d, std::move(*e));
        d.history = {};
        store(name, *d.entry);
    } else {
        failure = e.error().message;
        logEvent("sts-fetch-failed", {{"domain", name}, {"error", failure}});
        if (metrics_) metrics_->stsFetchFailed.inc();
        if (d.entry) {
            d.entry->history = sts::recordFailure(d.entry->history, failure, dispatcher_.clock());
            store(name, *d.entry);
        } else {
            d.history = sts::recordFailure(d.history, failure, dispatcher_.clock());
        }
    }
    StsView v = viewOf(d, "policy fetch failed: " + failure);
    auto waiters = std::move(d.waiters);
    d.waiters.clear();
    for (auto& w : waiters) w(v);
}

// One write per domain at a time; the newest entry wins.
void MtaSts::store(const std::string& name, sts::CacheEntry e) {
    Domain& d = domain(name);
    if (d.storing) {
        d.pendingStore = std::move(e);
        return;
    }
    d.storing = true;
    auto cache = cache_;
    auto entry = std::make_shared<sts::CacheEntry>(std::move(e));
    auto status = std::make_shared<Status>(okStatus());
    std::weak_ptr<bool> alive = alive_;
    workers_.run(
        [cache, entry, status] { *status = cache->store(*entry); },
        [this, alive, name, status] {
            if (alive.expired() || !*alive.lock()) return;
            if (!*status) {
                logEvent("sts-cache-error", {{"domain", name}, {"error", status->error().message}});
            }
            Domain& dom = domain(name);
            dom.storing = false;
            if (dom.pendingStore) {
                auto next = std::move(*dom.pendingStore);
                dom.pendingStore.reset();
                store(name, std::move(next));
            }
        });
}

}  // namespace danerelay::relay
