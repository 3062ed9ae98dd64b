#include "relay/runtime/metrics_queue.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace danerelay::relay {

namespace {

void countMessage(const queue::StoredMessage& m, QueueCensus& c) {
    using queue::RcptState;
    bool held = false, deferred = false;
    for (const auto& st : m.status) {
        switch (st.state) {
            case RcptState::Pending:
                ++c.pending;
                break;
            case RcptState::Deferred:
                ++c.deferred;
                deferred = true;
                break;
            case RcptState::Delivered:
                ++c.delivered;
                break;
            case RcptState::Bounced:
                ++c.bounced;
                break;
            case RcptState::Held:
                ++c.held;
                held = true;
                break;
        }
    }
    ++(held ? c.messagesHeld : deferred ? c.messagesDeferred : c.messagesActive);
    if (c.oldestArrival == 0 || m.envelope.arrival < c.oldestArrival) {
        c.oldestArrival = m.envelope.arrival;
    }
}

// Every regular file under the spool, up to maxFiles entries.
uint64_t spoolBytes(const std::string& dir, size_t maxFiles, bool* truncated) {
    namespace fs = std::filesystem;
    std::error_code ec;
    uint64_t bytes = 0;
    size_t seen = 0;
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (++seen > maxFiles) {
            *truncated = true;
            break;
        }
        std::error_code fe;
        if (it->is_regular_file(fe)) {
            auto n = it->file_size(fe);
            if (!fe) bytes += n;
        }
    }
    return bytes;
}

}  // namespace

QueueCensus takeCensus(const queue::Spool& spool, size_t maxMessages, size_t maxFiles) {
    QueueCensus c;
    auto ids = spool.listIds();
    if (ids.size() > maxMessages) {
        ids.resize(maxMessages);
        c.truncated = true;
    }
    for (const auto& id : ids) {
        auto m = spool.load(id);
        if (m) countMessage(*m, c);  // gone meanwhile, or damaged: not counted
    }
    c.spoolBytes = spoolBytes(spool.dir(), maxFiles, &c.truncated);
    return c;
}

QueueGauges::QueueGauges(metrics::Registry& r, const queue::Spool& spool, WorkerPool& workers,
                         const Clock& clock)
    : spool_(spool),
      workers_(workers),
      clock_(clock),
      recipients_(r.gauge("danerelay_queue_recipients",
                          "Queued messages' recipients by state (at the last census).", {"state"})),
      messages_(r.gauge("danerelay_queue_messages_by_state",
                        "Queued messages by state: held (a recipient held), deferred (a "
                        "recipient deferred), active (the rest), at the last census.",
                        {"state"})),
      bytes_(r.gauge("danerelay_spool_bytes",
                     "Bytes of the files under the spool directory (at the last census).")
                 .get()),
      at_(r.gauge("danerelay_queue_census_timestamp_seconds",
                  "When the last queue census ended (Unix seconds; 0: none yet). A scrape "
                  "starts one at most every 5 s.")
              .get()),
      truncated_(r.gauge("danerelay_queue_census_truncated",
                         "1 if the last census stopped at its cap (its figures are lower "
                         "bounds), else 0.")
                     .get()) {
    r.gaugeFn("danerelay_queue_oldest_message_age_seconds",
              "Age of the oldest queued message (from its arrival; 0: queue empty).", [this] {
                  return oldestArrival_ == 0 ? 0.0
                                             : static_cast<double>(std::max<int64_t>(
                                                   0, clock_.wallSeconds() - oldestArrival_));
              });
    publish(QueueCensus{}, 0);
}

void QueueGauges::publish(const QueueCensus& c, int64_t at) {
    recipients_.with({"pending"}).set(static_cast<double>(c.pending));
    recipients_.with({"deferred"}).set(static_cast<double>(c.deferred));
    recipients_.with({"delivered"}).set(static_cast<double>(c.delivered));
    recipients_.with({"bounced"}).set(static_cast<double>(c.bounced));
    recipients_.with({"held"}).set(static_cast<double>(c.held));
    messages_.with({"active"}).set(static_cast<double>(c.messagesActive));
    messages_.with({"deferred"}).set(static_cast<double>(c.messagesDeferred));
    messages_.with({"held"}).set(static_cast<double>(c.messagesHeld));
    bytes_.set(static_cast<double>(c.spoolBytes));
    at_.set(static_cast<double>(at));
    truncated_.set(c.truncated ? 1 : 0);
    oldestArrival_ = c.oldestArrival;
}

void QueueGauges::requestCensus() {
    int64_t now = clock_.wallSeconds();
    if (running_ || (lastStart_ != 0 && now - lastStart_ < kMinInterval)) return;
    running_ = true;
    lastStart_ = now;
    auto result = std::make_shared<QueueCensus>();
    std::weak_ptr<int> alive = alive_;
    const queue::Spool* spool = &spool_;
    workers_.run([spool, result] { *result = takeCensus(*spool, kMaxMessages, kMaxFiles); },
                 [this, alive, result] {
                     if (alive.expired()) return;
                     running_ = false;
                     publish(*result, clock_.wallSeconds());
                 });
}

}  // namespace danerelay::relay
