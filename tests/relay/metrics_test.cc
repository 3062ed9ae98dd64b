#include "relay/runtime/metrics.h"

#include <gtest/gtest.h>

#include "relay/outbound/trouble.h"
#include "relay/runtime/metrics_handles.h"

#include <stdexcept>
#include <thread>
#include <vector>

using namespace danerelay::relay::metrics;
using danerelay::relay::ClientResult;
using danerelay::relay::TlsMode;
namespace relay = danerelay::relay;
namespace dns = danerelay::dns;

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

// Fixed label sets exist at zero from the start, so rate() sees them; each
// update lands on its own series.
TEST(MetricsHandlesTest, InboundSeriesExistAtZeroAndCountApart) {
    Registry r;
    relay::InboundMetrics m(r);
    std::string text = r.render();
    for (const char* reason : {"relay_denied", "too_big", "smuggling", "bad_data", "loop",
                               "too_many_recipients", "rate", "storage"}) {
        EXPECT_NE(text.find("danerelay_inbound_refused_total{reason=\"" + std::string(reason) +
                            "\"} 0\n"),
                  std::string::npos)
            << reason;
    }
    m.refuse(relay::InboundMetrics::Refusal::Smuggling);
    m.session(relay::InboundMetrics::SessionTls::Implicit);
    m.authResult(relay::InboundMetrics::Auth::Failure);
    m.bytesAccepted.inc(1234);
    text = r.render();
    EXPECT_NE(text.find("danerelay_inbound_refused_total{reason=\"smuggling\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("danerelay_inbound_refused_total{reason=\"too_big\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("danerelay_inbound_sessions_total{tls=\"implicit\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("danerelay_inbound_auth_total{result=\"failure\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("danerelay_inbound_accepted_bytes_total 1234\n"), std::string::npos);
}

TEST(MetricsHandlesTest, DestinationsOutsideThePolicyFilesAreOneLabel) {
    EXPECT_EQ(relay::destinationLabel("example.org"), "example.org");
    EXPECT_EQ(relay::destinationLabel(".example.org"), ".example.org");
    EXPECT_EQ(relay::destinationLabel("default"), "other");
    EXPECT_EQ(relay::destinationLabel(""), "other");
    EXPECT_EQ(relay::destinationLabel("(built-in default)"), "other");
}

TEST(MetricsHandlesTest, DnsAnswersCacheHitsAndBogusKinds) {
    Registry r;
    relay::DnsMetrics m(r);
    dns::ResolverObserver& o = m;
    o.querySent();
    o.answered(dns::Security::Secure, false);
    o.answered(dns::Security::Secure, true);
    o.bogus("signature-expired");
    o.validated(0.002);
    std::string text = r.render();
    EXPECT_NE(text.find("danerelay_dns_queries_total 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("danerelay_dns_answers_total{dnssec=\"secure\"} 1\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("danerelay_dns_cache_hits_total 1\n"), std::string::npos);
    EXPECT_NE(text.find("danerelay_dns_bogus_total{kind=\"signature-expired\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("danerelay_dns_bogus_total{kind=\"no-rrsig\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("danerelay_dns_validation_seconds_count 1\n"), std::string::npos);
}

// RFC 8460 result types from the session's facts, never from its text.
TEST(MetricsHandlesTest, TlsReportResultFollowsTheFailureKind) {
    ClientResult r;
    r.stage = ClientResult::Stage::StartTls;
    r.failure = ClientResult::Failure::StarttlsNotSupported;
    EXPECT_STREQ(relay::tlsReportResult(TlsMode::Dane, r), "starttls-not-supported");
    r.stage = ClientResult::Stage::Handshake;
    r.failure = ClientResult::Failure::DaneFailed;
    r.daneFailure = danerelay::tls::DaneFailure::CertificateExpired;
    EXPECT_STREQ(relay::tlsReportResult(TlsMode::Dane, r), "certificate-expired");
    r.failure = ClientResult::Failure::Network;
    EXPECT_EQ(relay::tlsReportResult(TlsMode::Dane, r), nullptr);  // nothing said about TLS
    ClientResult ok;
    ok.stage = ClientResult::Stage::Done;
    ok.tls = "TLS1.3/AES-256-GCM";
    ok.peerVerified = true;
    EXPECT_STREQ(relay::tlsReportResult(TlsMode::Dane, ok), "success");
    ok.peerVerified = false;
    EXPECT_EQ(relay::tlsReportResult(TlsMode::Dane, ok), nullptr);
    EXPECT_EQ(relay::tlsReportResult(TlsMode::None, ok), nullptr);
}

TEST(MetricsHandlesTest, UnscrapedHandlesCountAlone) {
    auto m = relay::metricsOrUnscraped<relay::CommitMetrics>(nullptr);
    m->batchSize.observe(3);
    EXPECT_EQ(m->batchSize.count(), 1u);
    Registry r;
    relay::CommitMetrics given(r);
    auto same = relay::metricsOrUnscraped(&given);
    EXPECT_EQ(same.get(), &given);
}

}  // namespace
