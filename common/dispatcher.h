// dispatcher.h — the loop's own services, one per event_base: run something
// later on the loop, destroy something once the callback that holds it has
// returned, and tell the time.
//
//   post(fn)          fn runs on the loop, after the current callback returns,
//                     in the order posted. Loop thread only (worker threads
//                     use relay::LoopPoster).
//   deferredDelete(p) p is destroyed after the current callback returns: the
//                     one way an object that is inside its own callback (a
//                     session closing itself, a client finishing, a resolver
//                     query answered) goes away. Replaces the per-class
//                     graveyards and self-references.
//   clock()           the injected Clock (SystemClock unless a test gives a
//                     ManualClock); code on the loop asks it, not std::time.
//
// Both queues are drained by one libevent timer armed with a zero timeout on
// demand, so nothing runs re-entrantly inside the caller, and a posted closure
// that posts again runs after the next poll for I/O, never in an endless loop
// within one pass.
// Destroying the Dispatcher runs nothing that is still queued: posted
// closures are dropped, deferred objects are destroyed.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/event.h"

namespace danerelay {

class Dispatcher {
  public:
    explicit Dispatcher(event_base* base, const Clock& clock = SystemClock::instance());
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    event_base* base() const { return base_; }
    const Clock& clock() const { return *clock_; }
    int64_t now() const { return clock_->wallSeconds(); }

    void post(std::function<void()> fn);
    void deferredDelete(std::shared_ptr<void> obj);
    template <typename T>
    void deferredDelete(std::unique_ptr<T> obj) {
        deferredDelete(std::shared_ptr<T>(std::move(obj)));
    }
    // Posted closures and deferred objects not yet run or destroyed.
    size_t pending() const { return posted_.size() + graveyard_.size(); }

  private:
    void wake();
    void drain();
    event_base* base_;
    const Clock* clock_;
    Event wake_;
    std::vector<std::function<void()>> posted_;
    std::vector<std::shared_ptr<void>> graveyard_;
};

}  // namespace danerelay
