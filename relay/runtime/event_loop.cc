#include "relay/runtime/event_loop.h"

#include <sys/eventfd.h>

#include <cstdint>
#include <exception>
#include <string>

#include "relay/runtime/log.h"

namespace danerelay::relay {

namespace {
// An exception escaping a thread's function is std::terminate: the daemon
// gone, and with the message still queued, gone again at every restart.
// Whatever a task throws is caught, logged, and turned into its error result.
template <typename F>
bool runCaught(const char* where, F&& f) {
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
}  // namespace

Event::Event(event_base* base, int fd, short what, Callback cb)
    : ev_(event_new(base, fd, what, &Event::trampoline, this)), cb_(std::move(cb)) {}

Event::~Event() {
    if (ev_) event_free(ev_);
}

void Event::trampoline(evutil_socket_t, short what, void* self) {
    static_cast<Event*>(self)->cb_(what);
}

void Event::add(const timeval* timeout) {
    event_add(ev_, timeout);
}

void Event::addSeconds(unsigned seconds) {
    timeval tv{static_cast<time_t>(seconds), 0};
    event_add(ev_, &tv);
}

void Event::del() {
    event_del(ev_);
}

bool Event::pending() const {
    return event_pending(ev_, EV_READ | EV_WRITE | EV_TIMEOUT, nullptr) != 0;
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
        if (!runCaught("committer", [&] { results = spool_.commit(ptrs); }) ||
            results.size() != batch.size()) {
            results.assign(batch.size(), Error::internal("spool commit failed (see the log)"));
        }
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
