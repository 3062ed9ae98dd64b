// event_loop.h — how other threads talk to the loop, and the worker pools.
//
// (Event and EventBasePtr, the RAII for libevent itself, are in
// common/event.h; the loop's post/deferredDelete/clock in common/dispatcher.h.)
// LoopPoster lets worker threads hand a closure to the loop thread: post() is
// thread-safe, the closure runs on the loop. WorkerPool runs blocking work
// (disk; password hashing on a pool of its own) on a few threads; a pool made
// with a queue bound refuses tryRun() beyond it rather than queue without
// end. (Group commit of the spool is runtime/committer.h.)
// An exception thrown by a task, a commit or a posted closure never reaches
// std::terminate: it is logged, the task's done() still runs (with the error
// result it started from).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/event.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace danerelay::relay {

// An exception escaping a thread's function is std::terminate: the daemon
// gone, and with the message still queued, gone again at every restart.
// Runs f; whatever it throws is caught and logged with `where`; false then.
bool runCaught(const char* where, const std::function<void()>& f);

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

}  // namespace danerelay::relay
