#include "common/dispatcher.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace danerelay {
namespace {

struct DispatcherTest : ::testing::Test {
    EventBasePtr base{event_base_new()};
    Dispatcher d{base.get()};
    void runOnce() { event_base_loop(base.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK); }
};

TEST_F(DispatcherTest, PostRunsLaterNotInsideTheCaller) {
    std::vector<std::string> order;
    d.post([&] { order.push_back("posted"); });
    order.push_back("caller");
    EXPECT_EQ(order, std::vector<std::string>{"caller"});
    runOnce();
    EXPECT_EQ(order, (std::vector<std::string>{"caller", "posted"}));
}

TEST_F(DispatcherTest, PostedClosuresRunInOrderAndRepostWaitsForTheNextPass) {
    std::vector<int> order;
    int reposts = 0;
    std::function<void()> again = [&] {
        order.push_back(3);
        if (++reposts < 3) d.post(again);
    };
    d.post([&] { order.push_back(1); });
    d.post([&] { order.push_back(2); });
    d.post(again);
    runOnce();
    // One pass ran the three queued; the repost did not spin inside it.
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    runOnce();
    runOnce();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 3, 3}));
    EXPECT_EQ(d.pending(), 0u);
}

struct Tracked {
    explicit Tracked(bool* gone) : gone_(gone) {}
    ~Tracked() { *gone_ = true; }
    bool* gone_;
};

TEST_F(DispatcherTest, DeferredDeleteOutlivesTheCallbackThatDroppedIt) {
    bool gone = false;
    auto obj = std::make_shared<Tracked>(&gone);
    d.deferredDelete(std::move(obj));
    EXPECT_FALSE(gone);  // still alive for the rest of the current callback
    runOnce();
    EXPECT_TRUE(gone);
}

TEST_F(DispatcherTest, DeferredDeleteTakesUniquePtrAndIgnoresNull) {
    bool gone = false;
    d.deferredDelete(std::make_unique<Tracked>(&gone));
    d.deferredDelete(std::shared_ptr<void>());
    EXPECT_EQ(d.pending(), 1u);
    runOnce();
    EXPECT_TRUE(gone);
}

TEST_F(DispatcherTest, DestroyingTheDispatcherDestroysWhatWaitsAndRunsNothing) {
    bool gone = false, ran = false;
    {
        Dispatcher local(base.get());
        local.deferredDelete(std::make_shared<Tracked>(&gone));
        local.post([&] { ran = true; });
    }
    EXPECT_TRUE(gone);
    runOnce();
    EXPECT_FALSE(ran);
}

TEST(ManualClockTest, BothReadingsAdvanceTogether) {
    ManualClock c(1000);
    auto m0 = c.monotonic();
    c.advance(std::chrono::seconds(90));
    EXPECT_EQ(c.wallSeconds(), 1090);
    EXPECT_EQ(c.monotonic() - m0, std::chrono::seconds(90));
    EventBasePtr base{event_base_new()};
    Dispatcher d(base.get(), c);
    EXPECT_EQ(d.now(), 1090);
}

}  // namespace
}  // namespace danerelay
