#include "queue/queue_id.h"

#include <gtest/gtest.h>

#include <set>

using namespace danerelay::queue;

TEST(QueueId, OrderedAndUniqueEvenWithinOneMicrosecond) {
    QueueIdGenerator g;
    std::string prev;
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        auto id = g.next(1'700'000'000'000'000ULL);  // the same instant every time
        EXPECT_TRUE(isValidQueueId(id)) << id;
        EXPECT_GT(id, prev);
        EXPECT_TRUE(seen.insert(id).second);
        prev = id;
    }
}

TEST(QueueId, ClockSteppingBackNeverReusesAnId) {
    QueueIdGenerator g;
    auto a = g.next(2'000'000'000'000'000ULL);
    auto b = g.next(1'000'000'000'000'000ULL);
    EXPECT_GT(b, a);
}

TEST(QueueId, ObserveAfterRecoveryKeepsNewIdsAbove) {
    QueueIdGenerator g;
    g.observe("0700000000000A");
    EXPECT_GT(g.next(1), std::string("0700000000000A"));
}

TEST(QueueId, ShapeIsSafeAsFileName) {
    EXPECT_FALSE(isValidQueueId(""));
    EXPECT_FALSE(isValidQueueId("../../etc/passw"));
    EXPECT_FALSE(isValidQueueId("0660d9da2898d6"));  // lower case is not ours
    EXPECT_FALSE(isValidQueueId("0660D9DA2898D"));
    EXPECT_TRUE(isValidQueueId("0660D9DA2898D6"));
}
