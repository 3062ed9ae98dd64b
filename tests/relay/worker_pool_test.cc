// WorkerPool with a bounded queue (issue 12): work that untrusted peers can
// ask for (password hashing) is refused beyond the bound instead of queued
// without end, and a pool of its own never holds up other pools' work.
#include <gtest/gtest.h>

#include <chrono>
#include <future>

#include "relay/runtime/event_loop.h"
#include "tests/relay/loop_util.h"

namespace danerelay::relay {
namespace {

// Runs the loop until pred() holds, at most 5 s.
template <typename Pred>
bool runUntil(event_base* base, Pred pred) {
    return testing::runLoopUntil(base, pred);
}

struct Gate {
    std::promise<void> started, release;
    std::shared_future<void> released{release.get_future().share()};
};

class WorkerPoolTest : public ::testing::Test {
  protected:
    EventBasePtr base_{event_base_new()};
    LoopPoster poster_{base_.get()};
};

TEST_F(WorkerPoolTest, BoundedQueueRefusesBeyondItsBound) {
    WorkerPool pool(poster_, 1, 4);
    Gate gate;
    int done = 0;
    ASSERT_TRUE(pool.tryRun(
        [&gate] {
            gate.started.set_value();
            gate.released.wait();
        },
        [&done] { ++done; }));
    gate.started.get_future().wait();  // the one thread is busy now
    int ran = 0;
    for (int i = 0; i < 4; ++i) {
        EXPECT_TRUE(pool.tryRun([&ran] { ++ran; }, [&done] { ++done; })) << i;
    }
    EXPECT_EQ(pool.queued(), 4u);
    bool refusedRan = false, refusedDone = false;
    EXPECT_FALSE(
        pool.tryRun([&refusedRan] { refusedRan = true; }, [&refusedDone] { refusedDone = true; }));
    EXPECT_EQ(pool.queued(), 4u);  // the refused task was not queued

    gate.release.set_value();
    ASSERT_TRUE(runUntil(base_.get(), [&] { return done == 5; }));
    EXPECT_EQ(ran, 4);
    EXPECT_FALSE(refusedRan);
    EXPECT_FALSE(refusedDone);
    // Drained: it takes work again.
    EXPECT_TRUE(pool.tryRun([] {}, [&done] { ++done; }));
    EXPECT_TRUE(runUntil(base_.get(), [&] { return done == 6; }));
}

TEST_F(WorkerPoolTest, UnboundedPoolNeverRefuses) {
    WorkerPool pool(poster_, 1);
    Gate gate;
    pool.run(
        [&gate] {
            gate.started.set_value();
            gate.released.wait();
        },
        [] {});
    gate.started.get_future().wait();
    int done = 0;
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(pool.tryRun([] {}, [&done] { ++done; }));
    gate.release.set_value();
    EXPECT_TRUE(runUntil(base_.get(), [&] { return done == 1000; }));
}

// The daemon's layout: hashing on a one-thread pool of its own. A hash that
// never ends (a slow one, a flood of them) leaves spool work unaffected.
TEST_F(WorkerPoolTest, BlockedHashingPoolDoesNotHoldUpSpoolWork) {
    WorkerPool spool(poster_, 2);
    WorkerPool hashing(poster_, 1, 32);
    Gate gate;
    ASSERT_TRUE(hashing.tryRun(
        [&gate] {
            gate.started.set_value();
            gate.released.wait();
        },
        [] {}));
    gate.started.get_future().wait();
    for (int i = 0; i < 32; ++i) ASSERT_TRUE(hashing.tryRun([] {}, [] {}));
    EXPECT_FALSE(hashing.tryRun([] {}, [] {}));
    bool spoolDone = false;
    spool.run([] {}, [&spoolDone] { spoolDone = true; });
    EXPECT_TRUE(runUntil(base_.get(), [&] { return spoolDone; }));
    gate.release.set_value();
    hashing.stop();
}

}  // namespace
}  // namespace danerelay::relay
