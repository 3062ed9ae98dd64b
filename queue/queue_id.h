// queue_id.h — queue IDs: unique, ordered by arrival, safe as file names.
//
// An ID is the arrival time in microseconds since the epoch, as 14 upper-case
// hex digits, bumped so that it is strictly greater than every ID issued
// before by this generator (and than the spool's newest ID at start-up, so a
// clock that steps back cannot reuse one). Lexical order is arrival order.
// Not thread-safe: one generator lives on the event loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace danerelay::queue {

class QueueIdGenerator {
  public:
    // Issue the next ID; nowMicros is injectable for tests.
    std::string next(uint64_t nowMicros);
    std::string next();
    // Never issue an ID <= this one (used after spool recovery).
    void observe(std::string_view existingId);

  private:
    uint64_t last_ = 0;
};

// True if s has the exact shape of a queue ID (14 hex digits, upper case).
bool isValidQueueId(std::string_view s);

}  // namespace danerelay::queue
