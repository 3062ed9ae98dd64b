#include "relay/runtime/event_loop.h"

#include <sys/eventfd.h>

#include <cstdint>
#include <exception>
#include <string>

#include "relay/runtime/log.h"

namespace danerelay::relay {

bool runCaught(const char* where, const std::function<void()>& f) {
    try {
        f();
        return true;
    } catch (const std::exception& e) {
        logEvent("error", {{"where", where}, {"reason", std::string("exception: ") + e.what()}});
    } catch (...) {
        logEvent("error", {{"where", where}, {"reason", "unknown exception"}});
    }
    return false;
}

LoopPoster::LoopPoster(event_base* base)
    : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      ev_(base, fd_.get(), EV_READ | EV_PERSIST, [this](short) { drain(); }) {
    ev_.add();
}

void LoopPoster::post(std::function<void()> fn) {
    {
        std::lock_guard lock(mu_);
        queue_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_.get(), &one, sizeof one);
}

void LoopPoster::drain() {
    uint64_t v;
    [[maybe_unused]] auto n = ::read(fd_.get(), &v, sizeof v);
    std::vector<std::function<void()>> work;
    {
        std::lock_guard lock(mu_);
        work.swap(queue_);
    }
    for (auto& fn : work) runCaught("loop", fn);
}

WorkerPool::WorkerPool(LoopPoster& poster, unsigned threads, size_t maxQueued)
    : poster_(poster), maxQueued_(maxQueued) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

WorkerPool::~WorkerPool() {
    stop();
}

void WorkerPool::stop() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
}

void WorkerPool::run(std::function<void()> work, std::function<void()> done) {
    {
        std::lock_guard lock(mu_);
        tasks_.emplace_back(std::move(work), std::move(done));
    }
    cv_.notify_one();
}

bool WorkerPool::tryRun(std::function<void()> work, std::function<void()> done) {
    {
        std::lock_guard lock(mu_);
        if (maxQueued_ != 0 && tasks_.size() >= maxQueued_) return false;
        tasks_.emplace_back(std::move(work), std::move(done));
    }
    cv_.notify_one();
    return true;
}

size_t WorkerPool::queued() {
    std::lock_guard lock(mu_);
    return tasks_.size();
}

void WorkerPool::loop() {
    for (;;) {
        std::pair<std::function<void()>, std::function<void()>> task;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
            if (stop_) return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        // On an exception, done() still runs and finds the result the task
        // set up before it started (every caller starts from an error).
        runCaught("worker", task.first);
        poster_.post(std::move(task.second));
    }
}

}  // namespace danerelay::relay
