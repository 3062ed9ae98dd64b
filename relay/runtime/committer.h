// committer.h — group commit of new messages to the spool, on a thread of
// its own.
//
// Messages submitted while a batch is being fsync'd wait and go together in
// the next batch; each submitter's done() runs on the loop (through the
// LoopPoster) with its own result. A commit that throws reports an Internal
// error for each message of its batch, never std::terminate. On destruction
// what is pending is still committed: the clients are waiting for an answer.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/result.h"
#include "queue/spool.h"
#include "relay/runtime/event_loop.h"

namespace danerelay::relay {

struct CommitMetrics;  // relay/runtime/metrics_handles.h

class Committer {
  public:
    Committer(LoopPoster& poster, queue::Spool& spool, unsigned maxBatch);
    ~Committer();
    void submit(queue::NewMessage m, std::function<void(Status)> done);
    // How well group commit is doing: messages committed and in how many batches.
    uint64_t messagesCommitted() const { return messages_; }
    uint64_t batchesCommitted() const { return batches_; }
    // Batch sizes, commit times and errors counted there from now on (null:
    // not counted). It must outlive the Committer.
    void setMetrics(CommitMetrics* m) { metrics_.store(m, std::memory_order_release); }

  private:
    void loop();
    void count(size_t messages, std::chrono::steady_clock::duration took,
               const std::vector<Status>& results);
    struct Item {
        queue::NewMessage msg;
        std::function<void(Status)> done;
    };
    LoopPoster& poster_;
    queue::Spool& spool_;
    unsigned maxBatch_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Item> pending_;
    bool stop_ = false;
    std::atomic<uint64_t> messages_{0};
    std::atomic<uint64_t> batches_{0};
    std::atomic<CommitMetrics*> metrics_{nullptr};
    std::thread thread_;
};

}  // namespace danerelay::relay
