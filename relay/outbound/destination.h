// destination.h — everything DNS says about one next-hop domain, gathered
// asynchronously: the MX RRset (or the implicit MX, or a null MX), and for
// each host its addresses and its TLSA RRset, each with its DNSSEC status.
//
// TLSA base domain (RFC 7672 2.2.3): when a host's address lookup is secure
// and the host name is an alias, TLSA is looked up first at the fully
// expanded name and, if securely absent there, at the original name. When
// the address lookup is not secure, no TLSA lookup is made: insecure means
// DANE does not apply; bogus or indeterminate means the host's addresses
// are unusable (never "insecure"). One family (A or AAAA) that is bogus
// beside the other family's data is dropped, not the host: its addresses are
// never used, and the host is judged on the family that validated (the
// drop is named in the plan's notes). This module gathers facts only; what
// delivery does with them is decided in relay/delivery (one place).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dns/answer.h"
#include "dns/resolver.h"

namespace danerelay::relay {

struct HostInfo {
    uint16_t preference = 0;
    std::string name;  // MX target (or the domain itself for an implicit MX)
    dns::Answer a, aaaa;
    bool tlsaLooked = false;
    std::string tlsaBase;  // the name the TLSA RRset was found under
    dns::Answer tlsa;
    dns::TlsaStatus tlsaStatus = dns::TlsaStatus::Insecure;
    // The weaker of A and AAAA; a family that failed (timeout, SERVFAIL) or
    // is bogus beside one with data does not count (see dropped()).
    dns::Security addressSecurity() const;
    // True if `family` (&a or &aaaa) contributes nothing and does not make
    // the host unusable: its lookup failed without a verdict (timeout,
    // SERVFAIL) or it is bogus, while the other family has data that is
    // secure or insecure. Indeterminate data is never dropped: it keeps the
    // host unusable (an unknown status is never "insecure").
    bool dropped(const dns::Answer& family) const;
};

struct DestinationInfo {
    std::string domain;
    std::string nextHop;  // "host:port" when policy replaced the MX lookup
    uint16_t port = 25;
    dns::Answer mx;
    bool nullMx = false;
    bool implicitMx = false;  // no MX: the domain's own address records
    std::vector<HostInfo> hosts;
};

class DestinationLookup : public std::enable_shared_from_this<DestinationLookup> {
  public:
    using Callback = std::function<void(const DestinationInfo&)>;
    // At most maxHosts MX hosts are examined (lowest preference first).
    static void run(dns::Resolver& resolver, const std::string& domain, size_t maxHosts,
                    Callback done);
    // A next hop from policy instead of the MX lookup: one host (a name, or an
    // IP literal, which has no DNSSEC and so no DANE), TLSA at _port._tcp.host.
    static void runNextHop(dns::Resolver& resolver, const std::string& domain,
                           const std::string& host, bool literal, uint16_t port, Callback done);

  private:
    DestinationLookup(dns::Resolver& r, Callback done) : r_(r), done_(std::move(done)) {}
    void onMx(const dns::Answer& a, size_t maxHosts);
    void lookupHost(size_t i);
    void onAddresses(size_t i);
    void onTlsa(size_t i, const dns::Answer& t, bool atCanonical);
    void hostDone();

    dns::Resolver& r_;
    Callback done_;
    DestinationInfo info_;
    size_t pendingHosts_ = 0;
    uint16_t port_ = 25;
    std::string tlsaPrefix() const { return "_" + std::to_string(port_) + "._tcp."; }
};

nlohmann::json toJson(const DestinationInfo& d);
std::string toText(const DestinationInfo& d);

}  // namespace danerelay::relay
