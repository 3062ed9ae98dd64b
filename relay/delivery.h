// delivery.h — the RFC 7672 decision, in one place.
//
// plan() turns what DNS said about a destination (DestinationInfo) into what
// delivery will do: bounce, defer, or try these hosts in this order, each with
// its TLS requirement. Reading this file top to bottom gives the whole rule:
//
//   MX lookup bogus/failed/indeterminate       → defer the domain (4.4.3 / 4.7.5)
//   resolver not validating                    → defer (DANE cannot be known)
//   NXDOMAIN                                   → bounce 5.1.2
//   null MX                                    → bounce 5.1.10
//   per host, in preference order (random among equals):
//     address lookup bogus/indeterminate/failed → skip the host (never
//                                                "insecure": the reason is kept)
//     MX and address secure, TLSA usable       → DANE: TLS mandatory, peer must
//                                                match a TLSA record; SNI = TLSA
//                                                base domain
//     ... TLSA present, none usable            → TLS mandatory, unauthenticated
//     ... TLSA securely absent                 → opportunistic TLS
//     ... TLSA lookup failed or bogus          → skip the host
//     MX or address insecure                   → opportunistic TLS
//   no host left                               → defer (4.7.5 when DANE hosts
//                                                were skipped or failed)
//   policy verify                              → PKIX; the name checked (and
//                                                SNI) is the MX host only
//                                                under a secure MX RRset, else
//                                                the next-hop domain
//   SNI is always sent: TLSA base domain (DANE), the verify name, else the
//   MX host name.
//
// judgeAttempt() is the other half: what the outcome of one SMTP session
// means for its recipients (bounce, defer, or try the next host).
//
// After a DANE failure there is never a plaintext or unauthenticated retry:
// the next host is tried under its own plan, and in the end the message waits.
#pragma once

#include <string>
#include <vector>

#include "policy/policy.h"
#include "queue/envelope.h"
#include "relay/destination.h"
#include "tls/dane.h"

namespace danerelay::relay {

enum class TlsMode {
    None,           // no TLS at all (policy "none", written by an operator)
    Opportunistic,  // STARTTLS if offered, unauthenticated
    Mandatory,      // STARTTLS required, unauthenticated
    Dane,           // STARTTLS required, peer authenticated by TLSA
    Verify,         // STARTTLS required, peer authenticated by PKIX (policy "verify")
};
const char* toString(TlsMode m);

struct HostPlan {
    uint16_t preference = 0;
    std::string name;
    std::vector<std::string> addresses;
    TlsMode mode = TlsMode::Opportunistic;
    std::vector<tls::TlsaRecord> tlsa;        // usable records (Dane only)
    std::string sni;                          // always set (see above)
    std::vector<std::string> referenceNames;  // DANE-TA names; Verify: the one PKIX name
    bool skip = false;
    std::string why;  // the reason for mode or skip, for logs and probe
};

struct DeliveryPlan {
    enum class Action { Deliver, Defer, Bounce } action = Action::Defer;
    std::string status;  // enhanced status code for Defer/Bounce
    std::string reason;
    std::vector<HostPlan> hosts;  // Deliver: in the order to try
};
const char* toString(DeliveryPlan::Action a);

// shuffle: randomize hosts of equal preference (off in tests and probe).
// level: the policy for this destination (policy/): "dane" is RFC 7672 as
// above; "dane-only" skips every host without usable TLSA; "encrypt" makes
// TLS mandatory where DANE does not apply; "may" (an operator's explicit,
// reasoned exception) delivers opportunistically even where TLSA failed or
// does not match; "none" sends without TLS.
DeliveryPlan plan(const DestinationInfo& d, bool resolverValidating, bool shuffle,
                  policy::Level level = policy::Level::Dane);

struct ClientResult;  // relay/smtp_client.h

// What one SMTP session's outcome means for its recipients: the one place
// that turns replies into bounce or defer (as Postfix's smtp_trouble.c).
//   - greeting, EHLO/HELO, STARTTLS, TLS, AUTH failed, 5xx or not: nothing
//     is decided; the next address or MX host is tried, and when none is
//     left the recipients are deferred (a 5xx there is an attacker's cheapest
//     way to turn a DANE destination into a bounce);
//   - a 5xx in the mail transaction (MAIL FROM, RCPT, DATA, the final "."),
//     or our own 5.6.7 / 5.3.4 about what the server can take, bounces only
//     if the server met the TLS requirement (required: the mode enforced on
//     that connection); otherwise it is deferred with a 4.x.x status;
//   - 2xx delivers, anything else defers.
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
// The enhanced status code (RFC 3463) of a reply ("550 5.1.1 ..."), of a
// reply quoted in our error ("RCPT TO: 550 5.1.1 ...") or of our own reason
// ("5.6.7 ..."): read by splitEnhancedStatus(), so only at the start of the
// text and only of code's class; else "5.0.0" / "4.0.0" by code, else
// fallback. A code elsewhere in the text is never taken.
std::string statusOf(int code, const std::string& reply, const std::string& fallback);

nlohmann::json toJson(const DeliveryPlan& p);
std::string toText(const DeliveryPlan& p);

}  // namespace danerelay::relay
