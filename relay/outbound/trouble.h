// trouble.h — the one place that decides what a delivery failure means, in
// the spirit of Postfix's smtp_trouble.c: for every way an attempt can end,
// whether the recipient goes to the next host, waits (4.x.x), or is given
// up (5.x.x, with a DSN); when waiting has gone on too long (5.4.7); and how
// long the next wait is. Pure functions of their arguments: no I/O, no
// clock, no logging (the caller logs what it is told).
//
// The rows, in the order an attempt meets them:
//
//   policy tls_pins, min_tls_version,     → the host's TLS mode is raised to
//     implicit TLS or AUTH credentials       Mandatory where it was None or
//                                            Opportunistic (requiredMode())
//   plan() said Defer / Bounce            → every recipient Deferred /
//                                            Bounced with the plan's status
//   a host plan() skipped                 → its status if 4.x.x, else 4.7.5
//                                            (a 5.4.6 loop is never a bounce
//                                            here), the reason "host: why"
//   one session (judgeAttempt()):
//     connect, greeting, EHLO/HELO,       → next address / host; nothing is
//     STARTTLS, TLS, AUTH failed            decided (a 5xx there is an
//                                            attacker's cheapest way to turn
//                                            a DANE destination into a bounce)
//       its status if no host is left:      4.7.5 if the TLS requirement
//                                            failed (STARTTLS missing, DANE or
//                                            PKIX failed; pins or min version
//                                            after a DANE or PKIX check), else
//                                            the 5xx's code made 4.x.x, else
//                                            4.4.1
//     a 5xx in the transaction (MAIL,      → Bounced if the server met the TLS
//     RCPT, DATA, "."), or our own 5.6.7 /   requirement (tlsRequirementMet),
//     5.3.4 / 5.6.0                          else next host with the code made
//                                            4.x.x and "(not bounced: ...)"
//     a REQUIRETLS message (RFC 8689) and → next host, 4.7.30; nothing of the
//       the server is not DANE-verified      message was sent. At the queue
//       or does not offer REQUIRETLS         lifetime it bounces 5.7.30, and
//                                            its DSN carries headers only
//     per recipient: 2xx                  → Delivered
//                    5xx, requirement met → Bounced
//                    anything else        → Deferred (4.x.x; no reply at all:
//                                            "no reply to RCPT")
//   no host left                          → Deferred with the last status and
//                                            reason
//   after the attempt (settle()):
//     Deferred, queued ≥ max lifetime     → Bounced 5.4.7 "delivery time
//                                            expired; last error: ...", DSN
//     Deferred                            → next try after backoff()
//     Bounced                             → DSN with its status (5.0.0 if none)
//
// After a DANE failure there is never a plaintext or unauthenticated retry:
// the next host is tried under its own plan, and in the end the message waits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "queue/envelope.h"
#include "relay/outbound/client_result.h"
#include "relay/outbound/delivery.h"

namespace danerelay::relay {

struct DeliveryConfig;  // relay/runtime/config.h

// The mode enforced on a connection to a host planned with `planned`:
// pins, a minimum version, implicit TLS or credentials all need TLS.
TlsMode requiredMode(TlsMode planned, const policy::Entry& policy);

// The recipients' state when plan() does not deliver.
queue::RcptState stateOfPlan(const DeliveryPlan& p);

// A skipped host's deferral status: its own if temporary, else 4.7.5.
std::string skippedHostStatus(const HostPlan& h);

// What one SMTP session's outcome means for its recipients (see the table).
struct AttemptJudgement {
    bool nextHost = false;       // try the next address / host
    std::string status, reason;  // nextHost: the deferral if no host is left
    struct Rcpt {
        queue::RcptState state = queue::RcptState::Deferred;
        std::string status, text;
    };
    std::vector<Rcpt> rcpts;  // !nextHost: one per recipient of the session
};
AttemptJudgement judgeAttempt(TlsMode required, const ClientResult& r, size_t recipients);
// TLS established and the peer checks passed, where the mode requires TLS.
bool tlsRequirementMet(TlsMode required, const ClientResult& r);
// The TLS requirement itself failed (the 4.7.5 row).
bool authenticationFailed(const ClientResult& r);
// The session's TLS result in RFC 8460's words, for the metrics: "success"
// when the mode required TLS and tlsRequirementMet(); the failure's result
// type when authenticationFailed() (starttls-not-supported,
// validation-failure, certificate-host-mismatch, certificate-expired,
// tlsa-invalid, certificate-not-trusted; a failed handshake is
// validation-failure, RFC 8460 4.3.2; pins and min_tls_version keep our own
// names); null when the session says nothing about TLS (it ended before
// STARTTLS, or the mode asked for none).
const char* tlsReportResult(TlsMode required, const ClientResult& r);
// The enhanced status code (RFC 3463) of a reply ("550 5.1.1 ..."), of a
// reply quoted in our error ("RCPT TO: 550 5.1.1 ...") or of our own reason
// ("5.6.7 ..."): read by splitEnhancedStatus(), so only at the start of the
// text and only of code's class; else "5.0.0" / "4.0.0" by code, else
// fallback. A code elsewhere in the text is never taken.
std::string statusOf(int code, const std::string& reply, const std::string& fallback);
// A permanent status made temporary: 5.x.y becomes 4.x.y.
std::string softened(std::string status);

// One recipient's outcome of this attempt, before settle().
struct RcptOutcome {
    queue::RcptState state = queue::RcptState::Deferred;
    std::string status, text, mx;
};
// What the attempt leaves in the recipient's stored state.
struct Settled {
    queue::RcptState state = queue::RcptState::Deferred;
    std::string lastError;
    std::optional<int64_t> nextAttempt;  // Deferred: when to try again
    // Given up: the DSN's status and diagnostic (queue::FailedRecipient).
    std::optional<std::string> dsnStatus;
    std::string dsnText;
};
// attempts: this one included; arrival: when the message was queued.
Settled settle(const RcptOutcome& o, int attempts, int64_t arrival, int64_t now,
               const DeliveryConfig& d);

// Backoff after `attempts` failed tries: retry_initial * 2^(attempts-1),
// capped at retry_max.
int64_t backoff(const DeliveryConfig& d, int attempts);

}  // namespace danerelay::relay
