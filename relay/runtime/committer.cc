#include "relay/runtime/committer.h"

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "relay/runtime/log.h"
#include "relay/runtime/metrics_handles.h"

namespace danerelay::relay {

Committer::Committer(LoopPoster& poster, queue::Spool& spool, unsigned maxBatch)
    : poster_(poster), spool_(spool), maxBatch_(maxBatch), thread_([this] { loop(); }) {}

Committer::~Committer() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void Committer::submit(queue::NewMessage m, std::function<void(Status)> done) {
    {
        std::lock_guard lock(mu_);
        pending_.push_back({std::move(m), std::move(done)});
    }
    cv_.notify_one();
}

void Committer::count(size_t messages, std::chrono::steady_clock::duration took,
                      const std::vector<Status>& results) {
    CommitMetrics* m = metrics_.load(std::memory_order_acquire);
    if (!m) return;
    m->batchSize.observe(static_cast<double>(messages));
    m->duration.observe(std::chrono::duration<double>(took).count());
    for (const auto& r : results) {
        if (!r) m->errors.inc();
    }
}

void Committer::loop() {
    for (;;) {
        std::vector<Item> batch;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return stop_ || !pending_.empty(); });
            // On stop, what is pending is still committed: the clients are
            // waiting for an answer, and a message on disk is never a loss.
            if (pending_.empty()) return;
            while (!pending_.empty() && batch.size() < maxBatch_) {
                batch.push_back(std::move(pending_.front()));
                pending_.pop_front();
            }
        }
        std::vector<const queue::NewMessage*> ptrs;
        for (auto& it : batch) ptrs.push_back(&it.msg);
        std::vector<Status> results;
        auto started = std::chrono::steady_clock::now();
        if (!runCaught("committer", [&] { results = spool_.commit(ptrs); }) ||
            results.size() != batch.size()) {
            results.assign(batch.size(), Error::internal("spool commit failed (see the log)"));
        }
        count(batch.size(), std::chrono::steady_clock::now() - started, results);
        messages_ += batch.size();
        ++batches_;
        for (size_t i = 0; i < batch.size(); ++i) {
            poster_.post([done = std::move(batch[i].done), r = std::move(results[i])]() mutable {
                done(std::move(r));
            });
        }
    }
}

}  // namespace danerelay::relay
