#include "common/dispatcher.h"

#include <utility>

namespace danerelay {

Dispatcher::Dispatcher(event_base* base, const Clock& clock)
    : base_(base), clock_(&clock), wake_(base, -1, 0, [this](short) { drain(); }) {}

void Dispatcher::post(std::function<void()> fn) {
    posted_.push_back(std::move(fn));
    wake();
}

void Dispatcher::deferredDelete(std::shared_ptr<void> obj) {
    if (!obj) return;
    graveyard_.push_back(std::move(obj));
    wake();
}

void Dispatcher::wake() {
    // A zero timeout, not event_active(): an event activated while the loop
    // processes active events runs in the same pass, so a closure that posts
    // itself would starve I/O. A timer fires after the next poll.
    if (!wake_.pending()) {
        timeval zero{0, 0};
        wake_.add(&zero);
    }
}

void Dispatcher::drain() {
    // Take the queues first: what runs now may post or bury more, which waits
    // for the next pass.
    auto work = std::exchange(posted_, {});
    auto dead = std::exchange(graveyard_, {});
    for (auto& fn : work) fn();
    dead.clear();
}

}  // namespace danerelay
