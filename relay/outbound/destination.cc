#include "relay/outbound/destination.h"

#include <nlohmann/json.hpp>

namespace danerelay::relay {

using dns::Outcome;
using dns::Security;

dns::Security HostInfo::addressSecurity() const {
    auto rank = [](Security s) {
        switch (s) {
            case Security::Secure:
                return 3;
            case Security::Insecure:
                return 2;
            case Security::Indeterminate:
                return 1;
            case Security::Bogus:
                return 0;
        }
        return 0;
    };
    if (dropped(aaaa)) return a.security;
    if (dropped(a)) return aaaa.security;
    return rank(a.security) <= rank(aaaa.security) ? a.security : aaaa.security;
}

bool HostInfo::dropped(const dns::Answer& family) const {
    const dns::Answer& other = &family == &a ? aaaa : a;
    // Only beside the other family's data, secure or insecure: with nothing
    // usable beside it, the failure is the host's.
    if (other.outcome != Outcome::Data ||
        (other.security != Security::Secure && other.security != Security::Insecure)) {
        return false;
    }
    // A family whose lookup failed without a DNSSEC verdict (timeout,
    // SERVFAIL) contributes no addresses; it must not turn the other
    // family's secure answer into "not secure", or dropping one query would
    // switch DANE off (RFC 7672 2.2.2: use the addresses that validated).
    bool failed = family.security == Security::Indeterminate && family.outcome != Outcome::Data &&
                  family.outcome != Outcome::NxDomain && family.outcome != Outcome::NoData;
    // A bogus family (forged, or a broken signature) carries no addresses
    // (the validator withholds them) and says nothing about the other one.
    return failed || family.security == Security::Bogus;
}

void DestinationLookup::run(dns::Resolver& resolver, const std::string& domain, size_t maxHosts,
                            Callback done) {
    std::shared_ptr<DestinationLookup> self(new DestinationLookup(resolver, std::move(done)));
    self->info_.domain = domain;
    resolver.lookup(domain, dns::kTypeMx,
                    [self, maxHosts](const dns::Answer& a) { self->onMx(a, maxHosts); });
}

void DestinationLookup::runNextHop(dns::Resolver& resolver, const std::string& domain,
                                   const std::string& host, bool literal, uint16_t port,
                                   Callback done) {
    std::shared_ptr<DestinationLookup> self(new DestinationLookup(resolver, std::move(done)));
    auto& info = self->info_;
    info.domain = domain;
    info.nextHop = (literal ? "[" + host + "]" : host) + ":" + std::to_string(port);
    info.port = port;
    self->port_ = port;
    // The operator named this host: it stands where a secure MX RRset would.
    info.mx.qname = domain;
    info.mx.outcome = Outcome::Data;
    info.mx.security = literal ? Security::Insecure : Security::Secure;
    info.mx.detail = "next hop from policy";
    HostInfo h{0, host, {}, {}, false, {}, {}, {}};
    if (literal) {
        h.a.outcome = Outcome::Data;
        h.a.security = Security::Insecure;  // no DNS, so no DNSSEC, so no DANE
        h.a.addresses = {host};
        h.aaaa.outcome = Outcome::NoData;
        h.aaaa.security = Security::Insecure;
        info.hosts.push_back(std::move(h));
        return self->done_(self->info_);
    }
    info.hosts.push_back(std::move(h));
    self->pendingHosts_ = 1;
    self->lookupHost(0);
}

void DestinationLookup::onMx(const dns::Answer& a, size_t maxHosts) {
    info_.mx = a;
    if (a.outcome == Outcome::Data) {
        if (a.mx.size() == 1 && a.mx[0].host.empty()) {
            info_.nullMx = true;  // RFC 7505
            return done_(info_);
        }
        for (const auto& m : a.mx) {
            if (info_.hosts.size() >= maxHosts) break;
            if (m.host.empty()) continue;  // "." among real MX hosts: ignored
            info_.hosts.push_back(HostInfo{m.preference, m.host, {}, {}, false, {}, {}, {}});
        }
    } else if (a.outcome == Outcome::NoData) {
        info_.implicitMx = true;  // RFC 5321 5.1
        info_.hosts.push_back(HostInfo{0, a.qname, {}, {}, false, {}, {}, {}});
    } else {
        return done_(info_);  // NXDOMAIN, failure: nothing more to ask
    }
    if (info_.hosts.empty()) return done_(info_);
    pendingHosts_ = info_.hosts.size();
    for (size_t i = 0; i < info_.hosts.size(); ++i) lookupHost(i);
}

void DestinationLookup::lookupHost(size_t i) {
    auto self = shared_from_this();
    auto remaining = std::make_shared<int>(2);
    auto after = [self, i, remaining] {
        if (--*remaining == 0) self->onAddresses(i);
    };
    r_.lookup(info_.hosts[i].name, dns::kTypeA, [self, i, after](const dns::Answer& a) {
        self->info_.hosts[i].a = a;
        after();
    });
    r_.lookup(info_.hosts[i].name, dns::kTypeAaaa, [self, i, after](const dns::Answer& a) {
        self->info_.hosts[i].aaaa = a;
        after();
    });
}

void DestinationLookup::onAddresses(size_t i) {
    HostInfo& h = info_.hosts[i];
    // DANE needs a secure MX RRset (or a secure implicit MX) and secure addresses.
    bool mxSecure = info_.mx.security == Security::Secure;
    if (!mxSecure || h.addressSecurity() != Security::Secure) return hostDone();
    h.tlsaLooked = true;
    const std::string& canonical =
        h.a.outcome == Outcome::Data ? h.a.canonicalName : h.aaaa.canonicalName;
    bool alias = !canonical.empty() && canonical != h.name;
    auto self = shared_from_this();
    std::string first = alias ? canonical : h.name;
    r_.lookup(tlsaPrefix() + first, dns::kTypeTlsa,
              [self, i, alias](const dns::Answer& t) { self->onTlsa(i, t, alias); });
}

void DestinationLookup::onTlsa(size_t i, const dns::Answer& t, bool atCanonical) {
    HostInfo& h = info_.hosts[i];
    auto status = dns::tlsaStatus(t);
    if (atCanonical && status == dns::TlsaStatus::SecurelyAbsent) {
        // RFC 7672 2.2.3: nothing at the expanded name; try the original name.
        auto self = shared_from_this();
        r_.lookup(tlsaPrefix() + h.name, dns::kTypeTlsa,
                  [self, i](const dns::Answer& t2) { self->onTlsa(i, t2, false); });
        return;
    }
    h.tlsa = t;
    h.tlsaStatus = status;
    auto tcp = t.qname.find("._tcp.");  // strip "_25._tcp."
    h.tlsaBase = tcp == std::string::npos ? t.qname : t.qname.substr(tcp + 6);
    hostDone();
}

void DestinationLookup::hostDone() {
    if (--pendingHosts_ == 0) done_(info_);
}

// ------------------------------------------------------------------ output

static nlohmann::json answerJson(const dns::Answer& a) {
    nlohmann::json j = {
        {"name", a.qname}, {"outcome", toString(a.outcome)}, {"security", toString(a.security)}};
    if (!a.cnameChain.empty()) {
        j["cname_chain"] = a.cnameChain;
        j["canonical_name"] = a.canonicalName;
    }
    if (!a.detail.empty()) j["detail"] = a.detail;
    return j;
}

nlohmann::json toJson(const DestinationInfo& d) {
    nlohmann::json hosts = nlohmann::json::array();
    for (const auto& h : d.hosts) {
        nlohmann::json addrs = nlohmann::json::array();
        for (const auto* ans : {&h.a, &h.aaaa}) {
            for (const auto& ip : ans->addresses) {
                addrs.push_back({{"address", ip}, {"security", toString(ans->security)}});
            }
        }
        nlohmann::json host = {
            {"preference", h.preference}, {"name", h.name},
            {"addresses", addrs},         {"a", answerJson(h.a)},
            {"aaaa", answerJson(h.aaaa)}, {"address_security", toString(h.addressSecurity())}};
        if (h.tlsaLooked) {
            nlohmann::json recs = nlohmann::json::array();
            for (const auto& t : h.tlsa.tlsa) {
                nlohmann::json r = {{"record", dns::tlsaToString(t)}, {"usable", t.usable}};
                if (!t.usable) r["reason"] = t.unusableReason;
                recs.push_back(r);
            }
            host["tlsa"] = {{"base_domain", h.tlsaBase},
                            {"status", toString(h.tlsaStatus)},
                            {"answer", answerJson(h.tlsa)},
                            {"records", recs}};
        } else {
            host["tlsa"] = nullptr;
        }
        hosts.push_back(host);
    }
    return {{"version", 1},        {"domain", d.domain},          {"mx", answerJson(d.mx)},
            {"null_mx", d.nullMx}, {"implicit_mx", d.implicitMx}, {"hosts", hosts}};
}

std::string toText(const DestinationInfo& d) {
    std::string out =
        "domain " + d.domain + ": MX " + toString(d.mx.outcome) + ", " + toString(d.mx.security);
    if (!d.mx.detail.empty() && d.mx.outcome != Outcome::Data) out += " (" + d.mx.detail + ")";
    out += "\n";
    if (d.nullMx) return out + "  null MX (RFC 7505): the domain accepts no mail\n";
    if (d.mx.outcome == Outcome::NxDomain) return out + "  the domain does not exist\n";
    if (d.implicitMx) out += "  no MX records: the domain's own address is used (implicit MX)\n";
    for (const auto& h : d.hosts) {
        out += "  " + std::to_string(h.preference) + " " + h.name + "  addresses " +
               toString(h.addressSecurity()) + "\n";
        for (const auto* ans : {&h.a, &h.aaaa}) {
            for (const auto& ip : ans->addresses) out += "      " + ip + "\n";
            if (ans->outcome != Outcome::Data && ans->outcome != Outcome::NoData &&
                ans->outcome != Outcome::NxDomain) {
                out += std::string("      ") + (ans == &h.a ? "A" : "AAAA") + " lookup " +
                       toString(ans->outcome) + " (" + ans->detail + ")\n";
            }
        }
        if (!h.tlsaLooked) {
            auto as = h.addressSecurity();
            out += as == Security::Bogus || as == Security::Indeterminate
                       ? std::string("      TLSA: not looked up (address answer ") +
                             dns::toString(as) + ": host unusable)\n"
                       : "      TLSA: not looked up (MX or address not DNSSEC-secure: no DANE)\n";
            continue;
        }
        out += "      TLSA _" + std::to_string(d.port) + "._tcp." + h.tlsaBase + ": " +
               toString(h.tlsaStatus) + " (" + toString(h.tlsa.outcome) + ", " +
               toString(h.tlsa.security) + ")\n";
        for (const auto& t : h.tlsa.tlsa) {
            std::string rec = dns::tlsaToString(t);
            if (rec.size() > 40) rec = rec.substr(0, 40) + "...";
            out += "        " + rec + (t.usable ? "  usable" : "  unusable: " + t.unusableReason) +
                   "\n";
        }
    }
    return out;
}

}  // namespace danerelay::relay
