// metrics_queue.h — the queue's gauges that need the spool read: recipients
// and messages by state, the oldest message's age, the spool's size.
//
// Counting by state reads every message's state file, so it is never done
// at each scrape: a scrape asks for a census (requestCensus()), which runs
// on a worker at most once per kMinInterval, and the gauges show the last
// census (danerelay_queue_census_timestamp_seconds says when). Nobody
// scraping: no census at all. A census reads at most kMaxMessages messages
// and kMaxFiles directory entries; beyond, it says so in
// danerelay_queue_census_truncated (1), and its figures are lower bounds.
#pragma once

#include <cstdint>
#include <memory>

#include "common/clock.h"
#include "queue/spool.h"
#include "relay/runtime/event_loop.h"
#include "relay/runtime/metrics.h"

namespace danerelay::relay {

struct QueueCensus {
    // Recipients by state (queue::RcptState names).
    uint64_t pending = 0, deferred = 0, delivered = 0, bounced = 0, held = 0;
    // Messages: held (any recipient held), deferred (else any deferred),
    // active (the rest: pending recipients, or in delivery).
    uint64_t messagesActive = 0, messagesDeferred = 0, messagesHeld = 0;
    int64_t oldestArrival = 0;  // Unix seconds; 0: queue empty
    uint64_t spoolBytes = 0;
    bool truncated = false;
};

// Counts the spool (blocking: on a worker).
QueueCensus takeCensus(const queue::Spool& spool, size_t maxMessages, size_t maxFiles);

class QueueGauges {
  public:
    static constexpr int64_t kMinInterval = 5;  // seconds between two census
    static constexpr size_t kMaxMessages = 100000, kMaxFiles = 300000;

    QueueGauges(metrics::Registry& r, const queue::Spool& spool, WorkerPool& workers,
                const Clock& clock = SystemClock::instance());
    // Start a census unless one runs or the last is younger than kMinInterval.
    void requestCensus();

  private:
    void publish(const QueueCensus& c, int64_t at);
    const queue::Spool& spool_;
    WorkerPool& workers_;
    const Clock& clock_;
    metrics::Family<metrics::Gauge> recipients_, messages_;
    metrics::Gauge &bytes_, &at_, &truncated_;
    int64_t oldestArrival_ = 0;
    int64_t lastStart_ = 0;
    bool running_ = false;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace danerelay::relay
