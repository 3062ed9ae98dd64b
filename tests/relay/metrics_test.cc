#include "relay/runtime/metrics.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

using namespace danerelay::relay::metrics;

namespace {

TEST(MetricsTest, CountersWithLabelsRenderWithHelpAndType) {
    Registry r;
    auto attempts = r.counter("danerelay_delivery_attempts_total", "Delivery attempts by outcome.",
                              {"outcome", "tls"});
    attempts.with({"delivered", "dane"}).inc();
    attempts.with({"delivered", "dane"}).inc(2);
    attempts.with({"deferred", "none"}).inc();
    EXPECT_EQ(r.render(),
              "# HELP danerelay_delivery_attempts_total Delivery attempts by outcome.\n"
              "# TYPE danerelay_delivery_attempts_total counter\n"
              "danerelay_delivery_attempts_total{outcome=\"deferred\",tls=\"none\"} 1\n"
              "danerelay_delivery_attempts_total{outcome=\"delivered\",tls=\"dane\"} 3\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
    Registry r;
    auto h = r.histogram("danerelay_fsync_seconds", "fsync latency.", {0.001, 0.01, 0.1});
    for (double v : {0.0005, 0.001, 0.005, 0.05, 2.0}) h.get().observe(v);
    EXPECT_EQ(r.render(),
              "# HELP danerelay_fsync_seconds fsync latency.\n"
              "# TYPE danerelay_fsync_seconds histogram\n"
              "danerelay_fsync_seconds_bucket{le=\"0.001\"} 2\n"
              "danerelay_fsync_seconds_bucket{le=\"0.01\"} 3\n"
              "danerelay_fsync_seconds_bucket{le=\"0.1\"} 4\n"
              "danerelay_fsync_seconds_bucket{le=\"+Inf\"} 5\n"
              "danerelay_fsync_seconds_sum 2.0565\n"
              "danerelay_fsync_seconds_count 5\n");
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
    Registry r;
    auto g = r.gauge("danerelay_x", "a \\ b\nc", {"d"});
    g.with({"q\"u\\o\nte"}).set(1.5);
    EXPECT_EQ(r.render(),
              "# HELP danerelay_x a \\\\ b\\nc\n"
              "# TYPE danerelay_x gauge\n"
              "danerelay_x{d=\"q\\\"u\\\\o\\nte\"} 1.5\n");
}

TEST(MetricsTest, CallbackGaugesAreReadAtRenderTime) {
    Registry r;
    double queue = 3;
    r.gaugeFn("danerelay_queue_messages", "Messages in the queue.", [&] { return queue; });
    queue = 7;
    EXPECT_NE(r.render().find("danerelay_queue_messages 7\n"), std::string::npos) << r.render();
}

TEST(MetricsTest, MistakesAreRefusedNotRendered) {
    Registry r;
    auto c = r.counter("danerelay_a_total", "A.", {"kind"});
    EXPECT_THROW(r.counter("danerelay_a_total", "again"), std::logic_error);
    EXPECT_THROW(c.with({}), std::logic_error);
    EXPECT_THROW(c.with({"x", "y"}), std::logic_error);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
    Registry r;
    auto c = r.counter("danerelay_b_total", "B.", {"t"});
    auto h = r.histogram("danerelay_c_seconds", "C.", {1.0});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 10000; ++i) {
                c.with({"same"}).inc();
                h.get().observe(0.5);
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(c.with({"same"}).value(), 40000u);
    EXPECT_EQ(h.get().count(), 40000u);
    EXPECT_DOUBLE_EQ(h.get().sum(), 20000.0);
}

}  // namespace
