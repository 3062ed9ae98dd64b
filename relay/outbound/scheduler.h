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

#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/runtime/config.h"
#include "relay/runtime/committer.h"
#include "relay/outbound/smtp_client.h"
#include "tls/session.h"

namespace danerelay::relay {

class MessageDelivery;

// What an operator can do to one queued message (danectl queue ...).
enum class AdminAction { Hold, Release, Delete, Flush, Bounce, Requeue };
const char* toString(AdminAction a);
bool parseAdminAction(const std::string& s, AdminAction* out);

// What one sweep found: messages in the spool that the index lacked.
struct SweepReport {
    size_t listed = 0;                   // IDs in msg/
    std::vector<std::string> scheduled;  // indexed by this sweep (each logged as "swept")
    size_t notDue = 0;                   // unindexed, but nothing to deliver (all held)
};

struct AdminResult {
    std::string id;
    // "done", "unchanged" (nothing to do: e.g. release of a message not on
    // hold), "not-found" (no such message, or delivered meanwhile), "error".
    std::string result;
    std::string detail;
};

class Scheduler {
  public:
    Scheduler(event_base* base, const Config& cfg, queue::Spool& spool, WorkerPool& workers,
              Committer& committer, dns::Resolver& resolver, queue::QueueIdGenerator& ids);
    ~Scheduler();

    // At start-up, before the loop runs: index the recovered messages.
    void load(const std::vector<std::string>& ids);
    // A newly accepted message: due now.
    void enqueue(const std::string& id);
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

    // Backoff after `attempts` failed tries: initial * 2^(attempts-1), capped.
    static int64_t backoff(const DeliveryConfig& d, int attempts);

    // The reply an attempt record keeps (queue::AttemptRecord::reply): at
    // most kMaxAttemptReply bytes, cut between characters, never inside one
    // (queue::utf8Prefix).
    static constexpr size_t kMaxAttemptReply = 512;
    static std::string attemptReply(std::string_view reply);

  private:
    friend class MessageDelivery;
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
    // When a message is next due from its recipients' states (0: never).
    static int64_t dueOf(const std::vector<queue::RecipientStatus>& status, int64_t now);
    void adminDisk(AdminAction a, const std::string& id, std::function<void(AdminResult)> done);
    // An action on `id` ended: index it again from its new state, then run
    // the next action that waited for it.
    void adminFinished(const std::string& id, bool removed, int64_t nextDue, bool force);
    void runWaiting(Key k);
    void schedule(const std::string& id, int64_t due);
    void kick();
    void pump();
    void finished(const std::string& id, bool removed, int64_t nextDue);
    // A delivery could not load its message: gone (unindex it), transient
    // (retry after loadRetryDelay), or damaged (quarantine it on a worker,
    // log and count it; if that fails, retry as transient).
    void loadFailed(const std::string& id, const Error& e);
    // Per-destination concurrency: start() runs now, or when a slot frees.
    void acquireDomain(const std::string& domain, std::function<void()> start);
    void releaseDomain(const std::string& domain);
    // Outbound connections in all: start() runs now, or (in order) when one
    // of the limits.max_outbound_connections slots frees. A slot covers one
    // destination domain's DNS lookups and its SMTP session, one at a time.
    void acquireConnection(std::function<void()> start);
    void releaseConnection();

    event_base* base_;
    const Config& cfg_;
    queue::Spool& spool_;
    WorkerPool& workers_;
    Committer& committer_;
    dns::Resolver& resolver_;
    queue::QueueIdGenerator& ids_;
    std::shared_ptr<tls::ClientCredentials> clientCreds_;
    ConnectionCache connections_;
    std::shared_ptr<const policy::PolicySet> policy_;
    static Key keyOf(const std::string& id);
    static std::string idOf(Key k);
    std::unordered_map<Key, Entry> entries_;
    std::unordered_map<Key, std::deque<std::function<void()>>> waiting_;
    std::set<std::pair<int64_t, Key>> due_;
    Event timer_;
    Event sweepTimer_;
    Counters counters_;
    unsigned running_ = 0;
    bool ready_ = false;
    std::map<std::string, unsigned> domainInFlight_;
    std::map<std::string, std::vector<std::function<void()>>> domainWaiting_;
    unsigned connectionsInUse_ = 0, connectionsPeak_ = 0;
    std::deque<std::function<void()>> connectionWaiting_;
    bool dispatchingConnections_ = false;
};

}  // namespace danerelay::relay
