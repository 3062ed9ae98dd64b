// clock.h — the time as the daemon sees it, injectable for tests.
//
// Two readings, because they answer different questions: wallSeconds() is
// time(2), for what is written down or compared with the outside world (the
// spool's arrival and next-attempt times, expiry, RRSIG and certificate
// validity); monotonic() never jumps, for caches, timeouts and backoff inside
// one run. Code that needs the time takes a `const Clock&` (usually the
// Dispatcher's) instead of calling std::time or steady_clock itself, so that a
// test can step a ManualClock across a retry or an expiry without sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>

namespace danerelay {

class Clock {
  public:
    virtual ~Clock() = default;
    virtual int64_t wallSeconds() const = 0;
    virtual std::chrono::steady_clock::time_point monotonic() const = 0;
};

class SystemClock final : public Clock {
  public:
    int64_t wallSeconds() const override { return static_cast<int64_t>(std::time(nullptr)); }
    std::chrono::steady_clock::time_point monotonic() const override {
        return std::chrono::steady_clock::now();
    }
    // The one instance everything defaults to.
    static const SystemClock& instance() {
        static const SystemClock c;
        return c;
    }
};

// A clock that moves only when told: both readings advance together.
class ManualClock final : public Clock {
  public:
    explicit ManualClock(int64_t wallStart = 1'700'000'000) : wall_(wallStart) {}
    int64_t wallSeconds() const override { return wall_; }
    std::chrono::steady_clock::time_point monotonic() const override { return mono_; }
    void advance(std::chrono::seconds s) {
        wall_ += s.count();
        mono_ += s;
    }

  private:
    int64_t wall_;
    std::chrono::steady_clock::time_point mono_{std::chrono::hours(1)};
};

}  // namespace danerelay
