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
//     address lookup bogus/failed              → skip the host
//     MX and address secure, TLSA usable       → DANE: TLS mandatory, peer must
//                                                match a TLSA record; SNI = TLSA
//                                                base domain
//     ... TLSA present, none usable            → TLS mandatory, unauthenticated
//     ... TLSA securely absent                 → opportunistic TLS
//     ... TLSA lookup failed or bogus          → skip the host
//     MX or address insecure                   → opportunistic TLS
//   no host left                               → defer (4.7.5 when DANE hosts
//                                                were skipped or failed)
//
// After a DANE failure there is never a plaintext or unauthenticated retry:
// the next host is tried under its own plan, and in the end the message waits.
#pragma once

#include <string>
#include <vector>

#include "policy/policy.h"
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
    std::string sni;                          // TLSA base domain (Dane only)
    std::vector<std::string> referenceNames;  // for DANE-TA name checks
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

nlohmann::json toJson(const DeliveryPlan& p);
std::string toText(const DeliveryPlan& p);

}  // namespace danerelay::relay
