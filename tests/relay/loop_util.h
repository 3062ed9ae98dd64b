// loop_util.h — running a test's event loop until something holds, bounded
// in time (tests never wait without a limit).
#pragma once

#include <event2/event.h>

#include <chrono>
#include <functional>

namespace danerelay::relay::testing {

// Runs base in slices until done() holds (true) or `limit` has passed (false).
inline bool runLoopUntil(event_base* base, const std::function<bool()>& done,
                         std::chrono::milliseconds limit = std::chrono::seconds(5),
                         std::chrono::microseconds slice = std::chrono::milliseconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        timeval tv{0, static_cast<suseconds_t>(slice.count())};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    return true;
}

}  // namespace danerelay::relay::testing
