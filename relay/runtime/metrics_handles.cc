#include "relay/runtime/metrics_handles.h"

#include "dns/validator.h"

namespace danerelay::relay {

namespace {

// Latency buckets in seconds: a commit or a validation (milliseconds) and a
// delivery (seconds to days, since a deferred message counts from accept).
const std::vector<double> kFastSeconds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1,    2.5};
const std::vector<double> kDeliverySeconds = {1,   2,    5,    10,    30,    60,    300,
                                              900, 1800, 3600, 14400, 43200, 86400, 432000};
const std::vector<double> kBatchSizes = {1, 2, 4, 8, 16, 32, 64, 128, 256};

}  // namespace

InboundMetrics::InboundMetrics(metrics::Registry& r)
    : accepted(r.counter("danerelay_inbound_messages_accepted_total",
                         "Messages accepted and committed to the spool (250 sent).")
                   .get()),
      bytesAccepted(r.counter("danerelay_inbound_accepted_bytes_total",
                              "Bytes of the messages accepted, our Received: field included.")
                        .get()),
      handshakeFailures(r.counter("danerelay_inbound_tls_handshake_failures_total",
                                  "Inbound TLS handshakes (STARTTLS or implicit) that failed.")
                            .get()) {
    auto ref = r.counter("danerelay_inbound_refused_total",
                         "Refusals by reason: messages (too_big, smuggling, bad_data, loop, "
                         "storage), recipients (relay_denied, too_many_recipients) and "
                         "connections refused by a session limit (rate).",
                         {"reason"});
    const char* reasons[] = {"relay_denied",        "too_big", "smuggling", "bad_data", "loop",
                             "too_many_recipients", "rate",    "storage"};
    for (size_t i = 0; i < refused.size(); ++i) refused[i] = &ref.with({reasons[i]});
    auto ses = r.counter("danerelay_inbound_sessions_total",
                         "Inbound SMTP sessions, counted when they end, by the TLS they had: none, "
                         "starttls, implicit.",
                         {"tls"});
    const char* modes[] = {"none", "starttls", "implicit"};
    for (size_t i = 0; i < sessions.size(); ++i) sessions[i] = &ses.with({modes[i]});
    auto au = r.counter("danerelay_inbound_auth_total",
                        "AUTH attempts by result: success, failure, busy (hashing queue full).",
                        {"result"});
    const char* results[] = {"success", "failure", "busy"};
    for (size_t i = 0; i < auth.size(); ++i) auth[i] = &au.with({results[i]});
}

OutboundMetrics::OutboundMetrics(metrics::Registry& r)
    : attempts(r.counter("danerelay_delivery_attempts_total",
                         "Recipients' delivery attempts by outcome (delivered, deferred, "
                         "bounced) and the TLS mode the session was held to (none, "
                         "opportunistic, mandatory-unauthenticated, dane, verify).",
                         {"outcome", "tls"})),
      destinations(r.counter("danerelay_destination_attempts_total",
                             "Recipients' delivery attempts by outcome, per destination named "
                             "in the policy files (every other domain: \"other\").",
                             {"destination", "outcome"})),
      tlsResults(r.counter("danerelay_tls_results_total",
                           "TLS and DANE results by RFC 8460 result type (success, "
                           "starttls-not-supported, validation-failure, dnssec-invalid, ...), "
                           "per policy destination (every other domain: \"other\").",
                           {"destination", "result"})),
      latency(r.histogram("danerelay_delivery_latency_seconds",
                          "From accept to the remote server's 250, per recipient delivered.",
                          kDeliverySeconds)
                  .get()),
      sessions(r.counter("danerelay_outbound_sessions_total",
                         "Outbound SMTP sessions that ran a transaction, on a new connection "
                         "or one reused from the connection cache.",
                         {"connection"})),
      handshakes(r.counter("danerelay_outbound_tls_handshakes_total",
                           "Outbound TLS handshakes by result (ok: the handshake and the peer "
                           "checks passed; failed: either did not).",
                           {"result"})),
      sessionsNew(sessions.with({"new"})),
      sessionsReused(sessions.with({"reused"})),
      handshakesOk(handshakes.with({"ok"})),
      handshakesFailed(handshakes.with({"failed"})),
      mtaSts(r.counter("danerelay_mta_sts_events_total",
                       "MTA-STS (RFC 8461): policy fetches (fetch-ok, fetch-failed) and hosts "
                       "a testing-mode policy would have refused (testing-would-fail).",
                       {"event"})),
      stsFetchOk(mtaSts.with({"fetch-ok"})),
      stsFetchFailed(mtaSts.with({"fetch-failed"})),
      stsTestingWouldFail(mtaSts.with({"testing-would-fail"})) {}

std::string destinationLabel(const std::string& policyDestination) {
    if (policyDestination.empty() || policyDestination == "default" ||
        policyDestination.front() == '(') {
        return "other";
    }
    return policyDestination;
}

void OutboundMetrics::outcome(const std::string& outcome, const std::string& tls,
                              const std::string& destination) {
    attempts.with({outcome, tls}).inc();
    destinations.with({destination, outcome}).inc();
}

void OutboundMetrics::tlsResult(const std::string& result, const std::string& destination) {
    tlsResults.with({destination, result}).inc();
}

CommitMetrics::CommitMetrics(metrics::Registry& r)
    : batchSize(r.histogram("danerelay_spool_commit_batch_messages",
                            "Messages per group commit (one fsync'd batch).", kBatchSizes)
                    .get()),
      duration(r.histogram("danerelay_spool_commit_duration_seconds",
                           "Time to write, fsync and rename one group-commit batch.", kFastSeconds)
                   .get()),
      errors(r.counter("danerelay_spool_commit_errors_total",
                       "Messages whose spool commit failed (the client got 452 4.3.1).")
                 .get()) {}

DnsMetrics::DnsMetrics(metrics::Registry& r)
    : queries_(r.counter("danerelay_dns_queries_total",
                         "DNS queries sent to the resolvers (retries included).")
                   .get()),
      cacheHits_(r.counter("danerelay_dns_cache_hits_total", "DNS lookups answered from the cache.")
                     .get()),
      bogus_(r.counter("danerelay_dns_bogus_total",
                       "Bogus DNSSEC verdicts by kind (the validator's reason; \"resolver\" "
                       "when a validating resolver refused the answer).",
                       {"kind"})),
      validation_(r.histogram("danerelay_dns_validation_seconds",
                              "Time of one local DNSSEC validation (key fetches included).",
                              kFastSeconds)
                      .get()) {
    auto ans =
        r.counter("danerelay_dns_answers_total",
                  "DNS answers handed out (not from the cache), by DNSSEC status.", {"dnssec"});
    const dns::Security all[] = {dns::Security::Secure, dns::Security::Insecure,
                                 dns::Security::Bogus, dns::Security::Indeterminate};
    for (auto s : all) answers_[static_cast<size_t>(s)] = &ans.with({dns::toString(s)});
    for (int k = static_cast<int>(dns::BogusReason::NotAnAnswer);
         k <= static_cast<int>(dns::BogusReason::WorkLimit); ++k) {
        bogus_.with({dns::toString(static_cast<dns::BogusReason>(k))});
    }
    bogus_.with({"resolver"});
}

void DnsMetrics::answered(dns::Security s, bool fromCache) {
    if (fromCache) {
        cacheHits_.inc();
    } else {
        answers_[static_cast<size_t>(s)]->inc();
    }
}

void DnsMetrics::bogus(const char* kind) {
    bogus_.with({kind}).inc();
}

}  // namespace danerelay::relay
