#include "relay/outbound/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <deque>
#include <stdexcept>

#include "queue/filter.h"
#include "relay/runtime/log.h"

namespace danerelay::relay {

using queue::domainOf;
using queue::RcptState;

namespace {

std::shared_ptr<tls::ClientCredentials> clientCredentials() {
    auto c = tls::ClientCredentials::create();
    if (!c) {
        throw std::runtime_error("cannot set up the TLS client credentials for delivery: " +
                                 c.error().message);
    }
    return *c;
}

}  // namespace

// ---------------------------------------------------------------- scheduler

Scheduler::Scheduler(event_base* base, const Config& cfg, queue::Spool& spool, WorkerPool& workers,
                     Committer& committer, dns::Resolver& resolver, queue::QueueIdGenerator& ids,
                     const Clock& clock)
    : base_(base),
      cfg_(cfg),
      spool_(spool),
      workers_(workers),
      committer_(committer),
      resolver_(resolver),
      ids_(ids),
      clock_(clock),
      dispatcher_(base, clock),
      // Idle connections wait for the next message to their destination: as
      // many as max_concurrent allowed only that many destinations to keep
      // one (100 lab domains, 20 in flight: 1,578 new TLS sessions for 2,000
      // messages; with room for them all, 100). Each is bounded in time
      // (connection_reuse_time) and the descriptor limit is raised at start.
      connections_(cfg.delivery.connectionReuseTime, 4 * size_t{cfg.delivery.maxConcurrent} + 100),
      services_{dispatcher_,         cfg,          spool,         workers, committer, resolver, ids,
                clientCredentials(), connections_, metrics_.get()},
      timer_(base, -1, 0, [this](short) { pump(); }),
      sweepTimer_(base, -1, 0, [this](short) {
          sweep();
          sweepTimer_.addSeconds(cfg_.limits.queueSweepInterval);
      }) {
    sweepTimer_.addSeconds(cfg_.limits.queueSweepInterval);
    if (cfg.mtaSts.enabled) {
        // The policy cache beside the queue (SPOOL/sts/): it is state that
        // must survive restarts, as the queue does. Without it, a start
        // error: running on without MTA-STS would ignore every cached
        // enforce policy (mta_sts.enabled false says so in the config).
        auto m = MtaSts::open(dispatcher_, workers, resolver, cfg.mtaSts, cfg.spoolDir + "/sts");
        if (!m) {
            throw std::runtime_error("cannot open the MTA-STS policy cache " + cfg.spoolDir +
                                     "/sts: " + m.error().message +
                                     " (mta_sts.enabled false runs without MTA-STS)");
        }
        mtaSts_ = std::move(*m);
        mtaSts_->setMetrics(metrics_.get());
        services_.mtaSts = mtaSts_.get();
    }
}

Scheduler::~Scheduler() = default;

void Scheduler::setMetrics(OutboundMetrics* m) {
    metrics_ = metricsOrUnscraped(m);
    services_.metrics = metrics_.get();
    if (mtaSts_) mtaSts_->setMetrics(metrics_.get());
}

void Scheduler::loaded(const std::string& id) {
    if (auto it = entries_.find(keyOf(id)); it != entries_.end()) it->second.loadFailures = 0;
}

void Scheduler::load(const std::vector<std::string>& ids) {
    int64_t now = clock_.wallSeconds();
    for (const auto& id : ids) {
        auto m = spool_.load(id);
        if (!m) {
            // Unreadable now (or damaged since recovery): the delivery path
            // retries or quarantines it; only a message that is gone is dropped.
            if (queue::classifyLoadError(m.error()) != queue::LoadFailure::NotFound)
                schedule(id, now);
            continue;
        }
        if (int64_t due = queue::dueOf(m->status, now); due != 0) schedule(id, due);
    }
    kick();
}

struct Scheduler::Recovering {
    std::vector<std::string> ids;
    size_t next = 0;  // the first ID of the batch on the worker
    struct Found {
        std::string id;
        queue::RecoveryCheck check;
        int64_t due = 0;  // 0: nothing to deliver (all held or final), or not indexable
    };
    std::vector<Found> found;
    std::function<void(const RecoveryProgress&)> done;
};

void Scheduler::recover(std::vector<std::string> ids,
                        std::function<void(const RecoveryProgress&)> done) {
    recovery_ = RecoveryProgress{ids.size(), 0, 0, {}, true};
    flushDuringRecovery_ = false;
    auto r = std::make_shared<Recovering>();
    r->ids = std::move(ids);
    r->done = std::move(done);
    recoverBatch(std::move(r));
}

void Scheduler::recoverBatch(std::shared_ptr<Recovering> r) {
    using Verdict = queue::RecoveryCheck::Verdict;
    if (r->next >= r->ids.size()) {
        recovery_.running = false;
        flushDuringRecovery_ = false;
        r->ids = {};
        if (r->done) r->done(recovery_);
        return;
    }
    size_t end = std::min(r->ids.size(), r->next + kRecoveryBatch);
    workers_.run(
        [this, r, end, now = clock_.wallSeconds()] {
            r->found.clear();
            for (size_t i = r->next; i < end; ++i) {
                const auto& id = r->ids[i];
                auto c = spool_.recoverOne(id);
                int64_t due = 0;
                if (c.verdict == Verdict::Queued) due = queue::dueOf(c.status, now);
                if (c.verdict == Verdict::Unreadable) due = now;
                if (!queue::isValidQueueId(id)) due = 0;  // only a quarantine failed on it
                c.status.clear();
                r->found.push_back({id, std::move(c), due});
            }
        },
        [this, r, end] {
            for (auto& f : r->found) {
                ++recovery_.checked;
                if (f.check.verdict == Verdict::Quarantined) {
                    logEvent("quarantine", {{"file", spool_.dir() + "/msg/" + f.id},
                                            {"reason", f.check.reason},
                                            {"moved_to", spool_.dir() + "/quarantine/"}});
                    recovery_.quarantined.push_back({"msg/" + f.id, f.check.reason});
                    continue;
                }
                if (f.check.verdict == Verdict::Gone) continue;
                ++recovery_.queued;
                if (f.check.verdict == Verdict::Unreadable) {
                    // Delivery tries it now, and retries or quarantines it.
                    logEvent("recovery-unreadable", {{"qid", f.id}, {"reason", f.check.reason}});
                }
                // Indexed meanwhile (an operator's action, a delivery): that wins.
                if (f.due != 0 && !entries_.contains(keyOf(f.id))) {
                    // A flush asked for while recovering covers it too.
                    if (!flushDuringRecovery_) {
                        schedule(f.id, f.due);
                    } else {
                        schedule(f.id, std::min(f.due, clock_.wallSeconds()));
                        entries_[keyOf(f.id)].force = true;
                    }
                }
            }
            r->found.clear();
            r->next = end;
            kick();
            recoverBatch(r);
        });
}

int64_t Scheduler::loadRetryDelay(unsigned failures) {
    int64_t d = kLoadRetryInitial;
    for (unsigned i = 1; i < failures && d < kLoadRetryMax; ++i) d *= 2;
    return std::min(d, kLoadRetryMax);
}

int64_t Scheduler::dueTime(const std::string& id) const {
    if (!queue::isValidQueueId(id)) return 0;
    auto it = entries_.find(keyOf(id));
    return it == entries_.end() ? 0 : it->second.due;
}

void Scheduler::loadFailed(const std::string& id, const Error& e) {
    Key k = keyOf(id);
    auto retry = [this, id, k](const std::string& why) {
        auto it = entries_.find(k);
        unsigned n = it == entries_.end() ? 1u : it->second.loadFailures + 1u;
        int64_t delay = loadRetryDelay(n);
        ++counters_.loadRetries;
        logEvent("load-deferred", {{"qid", id},
                                   {"reason", why},
                                   {"failures", std::to_string(n)},
                                   {"retry_in", std::to_string(delay)}});
        finished(id, false, clock_.wallSeconds() + delay);
        if (auto again = entries_.find(k); again != entries_.end())
            again->second.loadFailures = static_cast<uint16_t>(std::min(n, 60000u));
    };
    switch (queue::classifyLoadError(e)) {
        case queue::LoadFailure::NotFound:
            return finished(id, true, 0);
        case queue::LoadFailure::Transient:
            return retry(e.message);
        case queue::LoadFailure::Damaged:
            break;
    }
    // Set aside with a .why, as recovery does, and never deleted. Still
    // marked running meanwhile, so nothing else touches it.
    auto moved = std::make_shared<Status>(okStatus());
    workers_.run([this, id, e, moved] { *moved = spool_.quarantine(id, e.message); },
                 [this, id, e, moved, retry] {
                     if (!*moved) return retry("cannot quarantine: " + moved->error().message);
                     ++counters_.quarantined;
                     logEvent("quarantine", {{"qid", id},
                                             {"file", spool_.dir() + "/msg/" + id},
                                             {"reason", e.message},
                                             {"moved_to", spool_.dir() + "/quarantine/"}});
                     finished(id, true, 0);
                 });
}

std::vector<std::string> Scheduler::unindexed(const std::vector<std::string>& spoolIds) const {
    std::vector<std::string> out;
    for (const auto& id : spoolIds) {
        if (!queue::isValidQueueId(id)) continue;  // recovery's to quarantine
        if (!entries_.contains(keyOf(id))) out.push_back(id);
    }
    return out;
}

void Scheduler::sweep(std::function<void(const SweepReport&)> done) {
    if (recovery_.running) {
        // Recovery indexes every message in msg/ itself; a sweep now would
        // schedule messages it has not verified yet.
        if (done) done(SweepReport{});
        return;
    }
    struct Found {
        std::string id;
        int64_t due = 0;         // 0: nothing to deliver
        std::string unreadable;  // why a load failed (not "not found")
    };
    struct Sweep {
        SweepReport report;
        std::vector<std::string> listed, candidates;
        std::vector<Found> found;
    };
    auto sw = std::make_shared<Sweep>();
    // 1. List msg/ on a worker; 2. compare on the loop; 3. read the state of
    // the missing ones on a worker; 4. schedule on the loop what is still
    // missing then (a commit or an operator may have indexed it meanwhile).
    workers_.run(
        [this, sw] { sw->listed = spool_.listIds(); },
        [this, sw, done] {
            sw->report.listed = sw->listed.size();
            sw->candidates = unindexed(sw->listed);
            sw->listed.clear();
            workers_.run(
                [this, sw, now = clock_.wallSeconds()] {
                    for (const auto& id : sw->candidates) {
                        auto m = spool_.load(id);
                        if (m) {
                            sw->found.push_back({id, queue::dueOf(m->status, now), ""});
                        } else if (queue::classifyLoadError(m.error()) !=
                                   queue::LoadFailure::NotFound) {
                            sw->found.push_back({id, now, m.error().message});
                        }
                    }
                },
                [this, sw, done] {
                    for (const auto& f : sw->found) {
                        if (entries_.contains(keyOf(f.id))) continue;
                        if (f.due == 0) {
                            ++sw->report.notDue;
                            continue;
                        }
                        schedule(f.id, f.due);
                        sw->report.scheduled.push_back(f.id);
                        ++counters_.swept;
                        std::string due = std::to_string(f.due);
                        if (f.unreadable.empty()) {
                            logEvent("swept", {{"qid", f.id}, {"due", due}});
                        } else {
                            logEvent("swept",
                                     {{"qid", f.id}, {"due", due}, {"unreadable", f.unreadable}});
                        }
                    }
                    if (!sw->report.scheduled.empty()) kick();
                    if (done) done(sw->report);
                });
        });
}

void Scheduler::enqueue(const std::string& id) {
    schedule(id, clock_.wallSeconds());
    kick();
}

Scheduler::Key Scheduler::keyOf(const std::string& id) {
    return std::stoull(id, nullptr, 16);  // the spool only hands out valid IDs
}

std::string Scheduler::idOf(Key k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%014llX", static_cast<unsigned long long>(k));
    return buf;
}

void Scheduler::flush() {
    std::vector<Key> keys;
    for (const auto& [k, e] : entries_) {
        if (!e.running && !e.busy) keys.push_back(k);
    }
    for (Key k : keys) {
        schedule(idOf(k), 0);
        entries_[k].force = true;
    }
    // What recovery has not read yet is indexed due now (the sweep below is
    // skipped while it runs).
    if (recovery_.running) flushDuringRecovery_ = true;
    kick();
    sweep();
}

void Scheduler::schedule(const std::string& id, int64_t due) {
    Key k = keyOf(id);
    auto& e = entries_[k];
    if (e.running || e.busy) return;
    due_.erase({e.due, k});
    e.due = due;
    due_.insert({due, k});
}

void Scheduler::kick() {
    timeval now{0, 0};
    timer_.add(&now);
}

void Scheduler::setReady() {
    if (ready_) return;
    ready_ = true;
    kick();
}

void Scheduler::pump() {
    if (!ready_ || !cfg_.delivery.enabled) return;
    int64_t now = clock_.wallSeconds();
    while (running_ < cfg_.delivery.maxConcurrent && !due_.empty() && due_.begin()->first <= now) {
        Key k = due_.begin()->second;
        due_.erase(due_.begin());
        auto& e = entries_[k];
        e.running = true;
        bool force = std::exchange(e.force, false);
        ++running_;
        std::make_shared<MessageDelivery>(static_cast<DeliveryHost&>(*this), idOf(k), force)
            ->start();
    }
    // Wake for the next due message (at most a minute away, to notice flushes).
    int64_t wait = 60;
    if (!due_.empty()) wait = std::clamp<int64_t>(due_.begin()->first - now, 1, 60);
    if (running_ < cfg_.delivery.maxConcurrent || due_.empty())
        timer_.addSeconds(static_cast<unsigned>(wait));
}

void Scheduler::acquireDomain(const std::string& domain, std::function<void()> start) {
    auto& n = domainInFlight_[domain];
    if (n < cfg_.delivery.maxPerDestination) {
        ++n;
        return start();
    }
    domainWaiting_[domain].push_back(std::move(start));
}

void Scheduler::acquireConnection(std::function<void()> start) {
    if (connectionsInUse_ < cfg_.limits.maxOutboundConnections && connectionWaiting_.empty()) {
        ++connectionsInUse_;
        connectionsPeak_ = std::max(connectionsPeak_, connectionsInUse_);
        return start();
    }
    connectionWaiting_.push_back(std::move(start));
}

void Scheduler::releaseConnection() {
    --connectionsInUse_;
    if (dispatchingConnections_) return;  // the loop below hands the slot on
    dispatchingConnections_ = true;
    while (connectionsInUse_ < cfg_.limits.maxOutboundConnections && !connectionWaiting_.empty()) {
        auto next = std::move(connectionWaiting_.front());
        connectionWaiting_.pop_front();
        ++connectionsInUse_;
        connectionsPeak_ = std::max(connectionsPeak_, connectionsInUse_);
        next();
    }
    dispatchingConnections_ = false;
}

void Scheduler::releaseDomain(const std::string& domain) {
    auto w = domainWaiting_.find(domain);
    if (w != domainWaiting_.end() && !w->second.empty()) {
        auto next = std::move(w->second.front());
        w->second.erase(w->second.begin());
        if (w->second.empty()) domainWaiting_.erase(w);
        return next();  // the slot passes straight to the next waiter
    }
    if (--domainInFlight_[domain] == 0) domainInFlight_.erase(domain);
}

void Scheduler::finished(const std::string& id, bool removed, int64_t nextDue) {
    --running_;
    auto it = entries_.find(keyOf(id));
    if (it != entries_.end()) it->second.running = false;
    if (removed || nextDue == 0) {
        entries_.erase(keyOf(id));
    } else {
        schedule(id, nextDue);
    }
    kick();
    runWaiting(keyOf(id));
}

// ---------------------------------------------------------------- operator

void Scheduler::admin(AdminAction a, const std::string& id, std::function<void(AdminResult)> done) {
    if (!queue::isValidQueueId(id)) return done({id, "not-found", "not a queue ID"});
    Key k = keyOf(id);
    auto it = entries_.find(k);
    if (it != entries_.end() && (it->second.running || it->second.busy)) {
        // Never alongside a delivery (or another action) of the same message.
        waiting_[k].push_back([this, a, id, done] { admin(a, id, done); });
        return;
    }
    auto& e = entries_[k];
    due_.erase({e.due, k});
    e.busy = true;
    if (a == AdminAction::Bounce) return MessageDelivery::bouncer(*this, id, done)->start();
    adminDisk(a, id, std::move(done));
}

// Hold, release, requeue, delete, flush: read the state, change it
// (queue::applyAdmin), write it (fsync'd) on a worker; index the message
// again on the loop.
void Scheduler::adminDisk(AdminAction a, const std::string& id,
                          std::function<void(AdminResult)> done) {
    struct Out {
        AdminResult r;
        bool removed = false;
        int64_t due = 0;
    };
    auto out = std::make_shared<Out>();
    out->r.id = id;
    workers_.run(
        [this, a, id, out, now = clock_.wallSeconds()] {
            auto m = spool_.load(id);
            if (!m) {
                bool gone = m.error().kind == ErrorKind::Permanent;
                out->r.result = gone ? "not-found" : "error";
                out->r.detail = gone ? "no such message (delivered or removed)" : m.error().message;
                out->removed = gone;
                return;
            }
            auto change = queue::applyAdmin(a, m->status, now);
            Status st = okStatus();
            if (change.remove) {
                st = spool_.remove(id, /*durable=*/true);
                out->removed = st.ok();
            } else if (change.write) {
                st = spool_.writeStatus(id, change.status);
            }
            if (!st) {
                out->r.result = "error";
                out->r.detail = st.error().message;
                out->due = queue::dueOf(m->status, now);
                return;
            }
            out->due = queue::dueOf(change.status, now);
            out->r.result = change.result;
            out->r.detail = change.detail;
        },
        [this, a, out, done] {
            bool flushed = a == AdminAction::Flush && out->r.result == "done";
            if (out->r.result == "done" || out->r.result == "error") {
                logEvent(
                    std::string("operator-") + toString(a),
                    {{"qid", out->r.id}, {"result", out->r.result}, {"detail", out->r.detail}});
            }
            adminFinished(out->r.id, out->removed, flushed ? 0 : out->due, flushed);
            done(out->r);
        });
}

void Scheduler::adminFinished(const std::string& id, bool removed, int64_t nextDue, bool force) {
    Key k = keyOf(id);
    auto it = entries_.find(k);
    if (it != entries_.end()) {
        it->second.busy = false;
        if (removed || (nextDue == 0 && !force)) {
            entries_.erase(it);
        } else {
            schedule(id, nextDue);
            entries_[k].force = force;
        }
    }
    kick();
    runWaiting(k);
}

void Scheduler::runWaiting(Key k) {
    auto w = waiting_.find(k);
    if (w == waiting_.end()) return;
    auto next = std::move(w->second.front());
    w->second.pop_front();
    if (w->second.empty()) waiting_.erase(w);
    next();  // it marks the message busy again; the rest wait for it
}

}  // namespace danerelay::relay
