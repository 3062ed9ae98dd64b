// metrics_handles.h — the relay's metrics, registered once, handed to the
// modules that count.
//
// Each module gets a small struct of handles made at start-up, so that its
// hot path (a session, a message, a commit) is a relaxed atomic add on a
// series that already exists: no lookup, no lock. Series with a label drawn
// from a fixed set (a refusal reason, a TLS mode, an outcome) are all made
// here, at zero, so that rate() sees them from the first scrape. The only
// labels not fixed here are the outbound ones that name a destination:
// those are the destinations named in policy files, every other domain
// counts as "other" (destinationLabel()), so the set stays bounded by the
// operator's files, never by what peers send. Their lookups take the
// registry's lock, once per recipient per attempt.
//
// The metrics always exist, whether metrics.listen is set or not: counting
// is a few atomic adds per message, and a module never asks "is anyone
// looking?". Only the endpoint is optional. Tests that build a module alone
// pass no handles; the module then counts into a private set of its own.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>

#include "dns/resolver.h"
#include "relay/runtime/metrics.h"

namespace danerelay::relay {

// The inbound server (relay/inbound).
struct InboundMetrics {
    // Why a message, a recipient or a connection was refused.
    enum class Refusal {
        RelayDenied,        // RCPT from a client neither in relay_networks nor authenticated
        TooBig,             // SIZE= or DATA over limits.max_message_size
        Smuggling,          // bare CR or LF in DATA (SMTP smuggling)
        BadData,            // NUL, a line over 1000 octets
        Loop,               // max_hops Received: fields
        TooManyRecipients,  // limits.max_recipients
        Rate,               // a session limit refused the connection
        Storage,            // the spool commit failed (452 4.3.1)
        Count
    };
    enum class SessionTls { None, StartTls, Implicit, Count };
    enum class Auth { Success, Failure, Busy, Count };

    explicit InboundMetrics(metrics::Registry& r);
    metrics::Counter& accepted;
    metrics::Counter& bytesAccepted;
    std::array<metrics::Counter*, static_cast<size_t>(Refusal::Count)> refused{};
    std::array<metrics::Counter*, static_cast<size_t>(SessionTls::Count)> sessions{};
    std::array<metrics::Counter*, static_cast<size_t>(Auth::Count)> auth{};
    metrics::Counter& handshakeFailures;

    void refuse(Refusal r) { refused[static_cast<size_t>(r)]->inc(); }
    void session(SessionTls t) { sessions[static_cast<size_t>(t)]->inc(); }
    void authResult(Auth a) { auth[static_cast<size_t>(a)]->inc(); }
};

// The outbound side (relay/outbound): labels are the outbound module's own
// words (toString(TlsMode), RFC 8460 result names, queue::toString(state)).
struct OutboundMetrics {
    explicit OutboundMetrics(metrics::Registry& r);
    // One recipient's outcome of one attempt (after settle(): delivered,
    // deferred, bounced), with the TLS mode the session ran under.
    void outcome(const std::string& outcome, const std::string& tls,
                 const std::string& destination);
    // An RFC 8460 result for one session or plan ("success",
    // "starttls-not-supported", "validation-failure", "dnssec-invalid"...).
    void tlsResult(const std::string& result, const std::string& destination);
    metrics::Family<metrics::Counter> attempts;      // {outcome, tls}
    metrics::Family<metrics::Counter> destinations;  // {destination, outcome}
    metrics::Family<metrics::Counter> tlsResults;    // {destination, result}
    metrics::Histogram& latency;                     // accept to remote 250
    metrics::Family<metrics::Counter> sessions;      // {connection}
    metrics::Family<metrics::Counter> handshakes;    // {result}
    metrics::Counter& sessionsNew;
    metrics::Counter& sessionsReused;
    metrics::Counter& handshakesOk;
    metrics::Counter& handshakesFailed;
    // MTA-STS (relay/outbound/mta_sts, message_delivery): policy fetches
    // by result, and what a testing-mode policy would have refused.
    metrics::Family<metrics::Counter> mtaSts;  // {event}
    metrics::Counter& stsFetchOk;
    metrics::Counter& stsFetchFailed;
    metrics::Counter& stsTestingWouldFail;
};

// A policy entry's destination as a label: as written in the policy file
// ("example.org", ".example.org"), or "other" for the built-in default, the
// "default" entry and anything not named.
std::string destinationLabel(const std::string& policyDestination);

// The group committer (relay/runtime/committer).
struct CommitMetrics {
    explicit CommitMetrics(metrics::Registry& r);
    metrics::Histogram& batchSize;
    metrics::Histogram& duration;  // write + fsync + rename of one batch
    metrics::Counter& errors;      // messages whose commit failed
};

// The resolver (dns/): it calls through dns::ResolverObserver.
class DnsMetrics final : public dns::ResolverObserver {
  public:
    explicit DnsMetrics(metrics::Registry& r);
    void querySent() override { queries_.inc(); }
    void answered(dns::Security s, bool fromCache) override;
    void bogus(const char* kind) override;
    void validated(double seconds) override { validation_.observe(seconds); }

  private:
    metrics::Counter& queries_;
    metrics::Counter& cacheHits_;
    std::array<metrics::Counter*, 4> answers_{};  // by dns::Security
    metrics::Family<metrics::Counter> bogus_;     // {kind}: a fixed set, made at zero
    metrics::Histogram& validation_;
};

// Handles that count into a registry of their own, which nobody scrapes: for
// a module built alone (tests) when it was given none.
template <typename T>
std::shared_ptr<T> unscrapedMetrics() {
    struct Own {
        metrics::Registry registry;
        T handles{registry};
    };
    auto own = std::make_shared<Own>();
    return std::shared_ptr<T>(own, &own->handles);
}

// Handles owned elsewhere (the daemon's RelayMetrics), or made alone if null.
template <typename T>
std::shared_ptr<T> metricsOrUnscraped(T* given) {
    return given ? std::shared_ptr<T>(std::shared_ptr<void>(), given) : unscrapedMetrics<T>();
}

// All of them, for the daemon.
struct RelayMetrics {
    explicit RelayMetrics(metrics::Registry& r) : inbound(r), outbound(r), commit(r), dns(r) {}
    InboundMetrics inbound;
    OutboundMetrics outbound;
    CommitMetrics commit;
    DnsMetrics dns;
};

}  // namespace danerelay::relay
