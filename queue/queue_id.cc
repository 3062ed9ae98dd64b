#include "queue/queue_id.h"

#include <chrono>
#include <cstdio>

namespace danerelay::queue {

constexpr size_t kIdLength = 14;

std::string QueueIdGenerator::next(uint64_t nowMicros) {
    last_ = nowMicros > last_ ? nowMicros : last_ + 1;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%014llX", static_cast<unsigned long long>(last_));
    return buf;
}

std::string QueueIdGenerator::next() {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return next(
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now).count()));
}

void QueueIdGenerator::observe(std::string_view id) {
    if (!isValidQueueId(id)) return;
    uint64_t v = 0;
    for (char c : id) v = v * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'A' + 10);
    if (v > last_) last_ = v;
}

bool isValidQueueId(std::string_view s) {
    if (s.size() != kIdLength) return false;
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
    }
    return true;
}

}  // namespace danerelay::queue
