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
//     one family (A or AAAA) bogus or failed,  → that family is dropped (a note
//       the other with secure/insecure data      says so); the host is judged
//                                                on the family that validated
//     address lookup bogus/indeterminate/failed → skip the host (never
//                                                "insecure": the reason is kept)
//     MX and address secure, TLSA usable       → DANE: TLS mandatory, peer must
//                                                match a TLSA record; SNI = TLSA
//                                                base domain
//     ... TLSA present, none usable            → TLS mandatory, unauthenticated
//     ... TLSA securely absent                 → opportunistic TLS
//     ... TLSA lookup failed or bogus          → skip the host
//     MX or address insecure                   → opportunistic TLS
//   one of the hosts is ourselves (an address → that host and every host of its
//   one of our listeners answers on, at the      preference or above are dropped
//   delivery port; never for a policy            (we are at most a backup MX);
//   next_hop, which names its host)              none left: bounce 5.4.6 "mail
//                                                for DOMAIN loops back to myself"
//   no host left                               → defer, the reason naming every
//                                                host and why it was skipped
//   policy verify                              → PKIX; the name checked (and
//                                                SNI) is the MX host only
//                                                under a secure MX RRset, else
//                                                the next-hop domain
//   SNI is always sent: TLSA base domain (DANE), the verify name, else the
//   MX host name.
//
// MTA-STS (RFC 8461), for the hosts DANE does not cover. DANE covers a host
// when it has TLSA records under a secure MX and address (mode dane, or
// mandatory for TLSA with none usable) or its TLSA lookup failed (skipped):
// such a host is DANE's alone, and MTA-STS never touches it, so a DANE
// failure is never rescued by a valid MTA-STS policy (RFC 8461 2). The
// other hosts, the ones DANE would send to opportunistically:
//   live policy, mode enforce                  → a host matching none of the
//                                                policy's mx patterns is
//                                                skipped (4.7.5); a matching
//                                                host gets PKIX for its own
//                                                MX name (TLS required, SNI =
//                                                that name), sts=enforced
//   live policy, mode testing                  → delivered as before; what
//                                                enforce would have refused
//                                                is reported (sts=testing)
//   mode none, no policy, a next_hop, policy   → as before (sts=none)
//     none/may, or "mta_sts": false
//   policy level sts: no live policy (or mode  → the host is skipped (4.7.5);
//     none)                                      testing is applied as enforce
//   policy unknown (cache unreadable)          → the host is skipped (4.7.5):
//                                                securely or not yet
//
// A skipped host's status (HostPlan::status) follows RFC 3463 and Postfix:
// 4.7.5 for a DNSSEC or DANE authentication failure (a bogus answer, data
// whose DNSSEC status is indeterminate, policy dane-only without usable
// TLSA), 4.4.3 for a DNS lookup that failed or timed out (and a host with no
// address). When no host is left the deferral is 4.7.5 if any host was
// skipped for authentication, else 4.4.3: an authentication failure may be
// an attack and is never hidden behind a timeout elsewhere. The reason lists
// the hosts in preference order ("no usable MX host for D: h1: why; h2:
// why"), each host's part cut at kMaxHostReason bytes and the whole at
// kMaxPlanReason ("; and N more hosts"), made one line of valid UTF-8
// (dsnText(), relay/bounce.h): it goes into the log, the spool and DSNs.
//
// What the outcome of one SMTP session means for its recipients (bounce,
// defer, or try the next host) is the other half: relay/outbound/trouble.h.
//
// After a DANE failure there is never a plaintext or unauthenticated retry:
// the next host is tried under its own plan, and in the end the message waits.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "queue/envelope.h"
#include "relay/outbound/destination.h"
#include "sts/policy_text.h"
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
    std::string why;     // the reason for mode or skip, for logs and probe
    std::string status;  // skip: 4.7.5, 4.4.3 or 5.4.6 (see above)
    // MTA-STS for this host: "enforced" (mode Verify for name under the
    // policy), "testing" or "none"; stsWould: in testing, what enforce
    // would have refused at plan time (empty: the certificate decides,
    // checked on the connection and reported).
    const char* sts = "none";
    std::string stsWould;
};

// What MTA-STS says about a destination (relay/outbound/mta_sts.h finds it).
struct StsView {
    std::optional<sts::Policy> policy;  // live (cached or just fetched); empty: none
    std::string why;                    // none: why; else where it came from
    // The policy cannot be known now (its cache file could not be read:
    // an I/O error): a cached enforce policy may exist, so the hosts DANE
    // does not cover are skipped (4.7.5) rather than used without it.
    bool unknown = false;
};

struct DeliveryPlan {
    enum class Action { Deliver, Defer, Bounce } action = Action::Defer;
    std::string status;  // enhanced status code for Defer/Bounce
    std::string reason;
    std::vector<HostPlan> hosts;     // Deliver: in the order to try
    std::vector<std::string> notes;  // what was dropped on the way (for the log)
};
const char* toString(DeliveryPlan::Action a);

constexpr size_t kMaxHostReason = 300;   // bytes of one host's part of a reason
constexpr size_t kMaxPlanReason = 1000;  // bytes of a plan's whole reason

struct ListenerConfig;  // relay/config.h

// Where our own SMTP server answers, for the loop check. A destination
// address reaches us at `port` (the delivery port) if a listener on that
// port is bound to it, or is bound to the wildcard of its family (0.0.0.0
// for IPv4, :: for IPv6 only: listeners set IPV6_V6ONLY) and it is a
// loopback address, an unspecified one or one of `interfaces` (the
// machine's own addresses); an unspecified destination (0.0.0.0, ::)
// reaches a loopback listener too. IPv4-mapped IPv6 addresses count as the
// IPv4 address. Empty: no check.
struct OwnAddresses {
    struct Listener {
        std::string address;  // numeric, as configured
        uint16_t port = 0;
    };
    std::vector<Listener> listeners;
    std::vector<std::string> interfaces;
    uint16_t port = 25;
    // True if connecting to `address` (numeric) at `port` reaches us.
    bool reaches(const std::string& address) const;
};
// The configured listeners, and the machine's interface addresses
// (getifaddrs) when one of them is a wildcard; port = delivery.port.
OwnAddresses ownAddresses(const std::vector<ListenerConfig>& listeners, uint16_t port);

// shuffle: randomize hosts of equal preference (off in tests and probe).
// level: the policy for this destination (policy/): "dane" is RFC 7672 as
// above; "dane-only" skips every host without usable TLSA; "encrypt" makes
// TLS mandatory where DANE does not apply; "may" (an operator's explicit,
// reasoned exception) delivers opportunistically even where TLSA failed or
// does not match; "none" sends without TLS.
// self: our own listeners (the loop check, skipped for a policy next_hop).
// sts: the destination's MTA-STS policy as found (null: not looked up, as
// with "mta_sts": false).
DeliveryPlan plan(const DestinationInfo& d, bool resolverValidating, bool shuffle,
                  policy::Level level = policy::Level::Dane, const OwnAddresses& self = {},
                  const StsView* sts = nullptr);

// True if DANE covers host h of d (see above: TLSA under a secure MX and
// address, usable or not, or a failed TLSA lookup): MTA-STS never applies.
bool daneCovers(const DestinationInfo& d, const HostInfo& h);
// True if some host of d is not DANE's: only then is the destination's
// MTA-STS policy worth looking up (a DANE destination needs no TXT query).
bool needsSts(const DestinationInfo& d);

nlohmann::json toJson(const DeliveryPlan& p);
std::string toText(const DeliveryPlan& p);

}  // namespace danerelay::relay
