// scheduler.h — drains the queue: picks due messages in order, delivers each
// message's recipients grouped by destination domain, records every
// recipient's outcome durably, retries with exponential backoff, bounces
// permanent failures and expired messages with a DSN, and removes a message
// once every recipient is final.
//
// Per-recipient state: one message can be delivered to one recipient,
// deferred for another and bounced for a third. Held recipients are never
// delivered. Disk work (load, status write, remove) runs on the worker pool;
// the DSN is committed through the group committer like any accepted mail.
// In memory: one small entry per queued message (its next due time), so
// memory stays flat as the queue grows.
//
// Nothing in the spool stays unscheduled: a message that cannot be read for
// a transient reason (EIO, EMFILE...) is retried with backoff; one whose
// files are damaged is quarantined (queue::Spool::quarantine, as recovery
// does), logged and counted; and a periodic sweep (limits.queue_sweep_interval,
// also run by flush) schedules any message the index lacks, as Postfix's
// qmgr scans its queues.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/dispatcher.h"
#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/admin.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/outbound/message_delivery.h"
#include "relay/outbound/smtp_client.h"
#include "relay/runtime/committer.h"
#include "relay/runtime/config.h"
#include "tls/session.h"

namespace danerelay::relay {

// What an operator can do to one queued message (danectl queue ...): the
// action itself is queue/admin.h's; these names stay for the callers here.
using queue::AdminAction;
using queue::AdminResult;
using queue::parseAdminAction;
using queue::toString;

// What one sweep found: messages in the spool that the index lacked.
struct SweepReport {
    size_t listed = 0;                   // IDs in msg/
    std::vector<std::string> scheduled;  // indexed by this sweep (each logged as "swept")
    size_t notDue = 0;                   // unindexed, but nothing to deliver (all held)
};

class Scheduler : private DeliveryHost {
  public:
    // Throws std::runtime_error when the TLS client credentials cannot be
    // made (the daemon reports it at start). The time is clock's.
    Scheduler(event_base* base, const Config& cfg, queue::Spool& spool, WorkerPool& workers,
              Committer& committer, dns::Resolver& resolver, queue::QueueIdGenerator& ids,
              const Clock& clock = SystemClock::instance());
    ~Scheduler();

    // Index these messages now, from their state files, without verifying
    // them (a damaged one is found when a delivery loads it). For tests and
    // tools that place messages themselves; the daemon's start uses
    // recover(), which verifies first.
    void load(const std::vector<std::string>& ids);
    // Start-up recovery's second step, while the relay already serves: the
    // IDs queue::Spool::beginRecovery() listed are checked on a worker
    // (Spool::recoverOne: read, verify, quarantine the damaged) in batches of
    // kRecoveryBatch, and each is indexed as soon as its batch is back (due
    // from its state; an unreadable one now), so old mail starts leaving
    // while the rest is read and new mail is never held up behind it. The
    // sweep waits until it is done. done runs on the loop at the end.
    struct RecoveryProgress {
        size_t listed = 0, checked = 0, queued = 0;
        std::vector<queue::RecoveryReport::Quarantined> quarantined;
        bool running = false;
    };
    static constexpr size_t kRecoveryBatch = 512;
    void recover(std::vector<std::string> ids,
                 std::function<void(const RecoveryProgress&)> done = nullptr);
    const RecoveryProgress& recovery() const { return recovery_; }
    // A newly accepted message: due now.
    void enqueue(const std::string& id) override;
    // Everything due now (SIGUSR1, like "postqueue -f"): deferred recipients
    // are retried whatever their next retry time. Also starts a sweep.
    void flush();
    // Compare the spool with the index, on a worker, and schedule every
    // message the index lacks (due from its state; an unreadable one now, so
    // that delivery retries or quarantines it), logging each as "swept".
    // Held messages stay unindexed, as after recovery. done (optional) runs
    // on the loop with what was found. Runs by itself every
    // limits.queue_sweep_interval seconds.
    void sweep(std::function<void(const SweepReport&)> done = nullptr);
    // The sweep's comparison: of the IDs listed in msg/, those that are
    // queue IDs and not in the index (neither scheduled, in delivery nor
    // under an operator's action), in the order given.
    std::vector<std::string> unindexed(const std::vector<std::string>& spoolIds) const;
    // An operator's action on one message. It never overlaps a delivery of
    // that message: while one runs, the action waits for it to finish (and
    // finds the message gone if it was delivered). Changes are on disk
    // before done() runs. Held recipients are never delivered.
    void admin(AdminAction a, const std::string& id, std::function<void(AdminResult)> done);
    // Deliveries start only once the first DNSSEC probe has answered, so that
    // nothing is decided on a resolver state not yet known.
    void setReady();
    // The per-destination policy; replaced whole on reload (never half-applied).
    void setPolicy(std::shared_ptr<const policy::PolicySet> p) { policy_ = std::move(p); }
    // Where deliveries count (relay/runtime/metrics_handles.h); before the
    // first delivery starts. Until then (and in tests): a set of our own.
    void setMetrics(OutboundMetrics* m);

    size_t queued() const { return entries_.size(); }
    size_t running() const { return running_; }
    // Since start: messages quarantined because a load found them damaged,
    // loads that failed transiently (each retried), messages swept in.
    struct Counters {
        uint64_t quarantined = 0, loadRetries = 0, swept = 0;
    };
    const Counters& counters() const { return counters_; }
    // Outbound connection slots (limits.max_outbound_connections): in use
    // now, and the most ever in use at once since start.
    unsigned connectionsInUse() const { return connectionsInUse_; }
    unsigned connectionsPeak() const { return connectionsPeak_; }
    // When an ID is next due, 0 if it is not indexed (for tests and status).
    int64_t dueTime(const std::string& id) const;

    // Delay before loading a message again after the n-th transient load
    // failure in a row: kLoadRetryInitial * 2^(n-1), at most kLoadRetryMax.
    static constexpr int64_t kLoadRetryInitial = 10, kLoadRetryMax = 600;
    static int64_t loadRetryDelay(unsigned failures);

    // Backoff after `attempts` failed tries (relay::backoff, trouble.h).
    static int64_t backoff(const DeliveryConfig& d, int attempts) {
        return relay::backoff(d, attempts);
    }

    // The reply an attempt record keeps (relay::attemptReply).
    static constexpr size_t kMaxAttemptReply = relay::kMaxAttemptReply;
    static std::string attemptReply(std::string_view reply) { return relay::attemptReply(reply); }

  private:
    // DeliveryHost: what a MessageDelivery sees of us.
    const DeliveryServices& services() const override { return services_; }
    std::shared_ptr<const policy::PolicySet> policy() const override { return policy_; }
    void loaded(const std::string& id) override;
    // Keyed by the queue ID's number (IDs are 14 hex digits): a few dozen
    // bytes per queued message, however large the queue.
    using Key = uint64_t;
    struct Entry {
        int64_t due = 0;
        bool running = false;       // a delivery of it is in flight
        bool busy = false;          // an operator's action on it is in flight
        bool force = false;         // flushed: retry deferred recipients now
        uint16_t loadFailures = 0;  // transient load failures in a row
    };
    void adminDisk(AdminAction a, const std::string& id, std::function<void(AdminResult)> done);
    // An action on `id` ended: index it again from its new state, then run
    // the next action that waited for it.
    void adminFinished(const std::string& id, bool removed, int64_t nextDue, bool force) override;
    void runWaiting(Key k);
    struct Recovering;
    void recoverBatch(std::shared_ptr<Recovering> r);
    void schedule(const std::string& id, int64_t due);
    void kick();
    void pump();
    void finished(const std::string& id, bool removed, int64_t nextDue) override;
    // A delivery could not load its message: gone (unindex it), transient
    // (retry after loadRetryDelay), or damaged (quarantine it on a worker,
    // log and count it; if that fails, retry as transient).
    void loadFailed(const std::string& id, const Error& e) override;
    // Per-destination concurrency: start() runs now, or when a slot frees.
    void acquireDomain(const std::string& domain, std::function<void()> start) override;
    void releaseDomain(const std::string& domain) override;
    // Outbound connections in all: start() runs now, or (in order) when one
    // of the limits.max_outbound_connections slots frees. A slot covers one
    // destination domain's DNS lookups and its SMTP session, one at a time.
    void acquireConnection(std::function<void()> start) override;
    void releaseConnection() override;

    event_base* base_;
    const Config& cfg_;
    queue::Spool& spool_;
    WorkerPool& workers_;
    Committer& committer_;
    dns::Resolver& resolver_;
    queue::QueueIdGenerator& ids_;
    const Clock& clock_;
    Dispatcher dispatcher_;  // deferred deletion of SMTP clients; the clock
    ConnectionCache connections_;
    std::shared_ptr<OutboundMetrics> metrics_ = unscrapedMetrics<OutboundMetrics>();
    std::unique_ptr<MtaSts> mtaSts_;  // null: mta_sts.enabled false, or its cache failed to open
    DeliveryServices services_;
    std::shared_ptr<const policy::PolicySet> policy_;
    static Key keyOf(const std::string& id);
    static std::string idOf(Key k);
    std::unordered_map<Key, Entry> entries_;
    std::unordered_map<Key, std::deque<std::function<void()>>> waiting_;
    std::set<std::pair<int64_t, Key>> due_;
    Event timer_;
    Event sweepTimer_;
    Counters counters_;
    RecoveryProgress recovery_;
    bool flushDuringRecovery_ = false;  // flush() while recovering: what it finds is due now
    unsigned running_ = 0;
    bool ready_ = false;
    std::map<std::string, unsigned> domainInFlight_;
    std::map<std::string, std::vector<std::function<void()>>> domainWaiting_;
    unsigned connectionsInUse_ = 0, connectionsPeak_ = 0;
    std::deque<std::function<void()>> connectionWaiting_;
    bool dispatchingConnections_ = false;
};

}  // namespace danerelay::relay
