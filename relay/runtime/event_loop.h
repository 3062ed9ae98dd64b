// event_loop.h — RAII around libevent, and the one way other threads talk to
// the loop.
//
// Event owns a struct event: registered with add(), unregistered in its
// destructor, neither copyable nor movable (libevent keeps its address).
// Callbacks reach the owner through a capture-less trampoline.
// LoopPoster lets worker threads hand a closure to the loop thread: post() is
// thread-safe, the closure runs on the loop. WorkerPool runs blocking work
// (disk; password hashing on a pool of its own) on a few threads; a pool made
// with a queue bound refuses tryRun() beyond it rather than queue without
// end. Committer batches spool commits (group commit) on a thread of its own.
// An exception thrown by a task, a commit or a posted closure never reaches
// std::terminate: it is logged, the task's done() still runs (with the error
// result it started from), a failed commit reports an Internal error for each
// message of the batch.
#pragma once

#include <event2/event.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "queue/spool.h"

namespace danerelay::relay {

struct EventBaseDeleter {
    void operator()(event_base* b) const { event_base_free(b); }
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;

class Event {
  public:
    using Callback = std::function<void(short what)>;
    Event(event_base* base, int fd, short what, Callback cb);
    ~Event();
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;

    void add(const timeval* timeout = nullptr);
    void addSeconds(unsigned seconds);
    void del();
    bool pending() const;

  private:
    static void trampoline(evutil_socket_t, short what, void* self);
    event* ev_;
    Callback cb_;
};

class LoopPoster {
  public:
    explicit LoopPoster(event_base* base);
    void post(std::function<void()> fn);

  private:
    void drain();
    UniqueFd fd_;
    Event ev_;
    std::mutex mu_;
    std::vector<std::function<void()>> queue_;
};

class WorkerPool {
  public:
    // maxQueued: how many tasks may wait for a thread in tryRun(); 0 = no bound.
    WorkerPool(LoopPoster& poster, unsigned threads, size_t maxQueued = 0);
    ~WorkerPool();
    // work() runs on a worker thread; done() then runs on the loop.
    void run(std::function<void()> work, std::function<void()> done);
    // As run(), but refused (false, nothing queued) when maxQueued tasks
    // already wait: for work that untrusted peers can ask for.
    [[nodiscard]] bool tryRun(std::function<void()> work, std::function<void()> done);
    // Tasks waiting for a thread (not those running).
    size_t queued();
    // Finish the task in hand, drop the rest, join the threads. Called when
    // the loop has stopped, before the objects the tasks point at go away.
    void stop();

  private:
    void loop();
    LoopPoster& poster_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::pair<std::function<void()>, std::function<void()>>> tasks_;
    bool stop_ = false;
    size_t maxQueued_;
    std::vector<std::thread> threads_;
};

// Group commit: messages submitted while a batch is being fsync'd wait and
// go together in the next batch.
class Committer {
  public:
    Committer(LoopPoster& poster, queue::Spool& spool, unsigned maxBatch);
    ~Committer();
    void submit(queue::NewMessage m, std::function<void(Status)> done);
    // How well group commit is doing: messages committed and in how many batches.
    uint64_t messagesCommitted() const { return messages_; }
    uint64_t batchesCommitted() const { return batches_; }

  private:
    void loop();
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
    std::thread thread_;
};

}  // namespace danerelay::relay
