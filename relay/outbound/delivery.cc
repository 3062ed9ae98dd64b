#include "relay/outbound/delivery.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "relay/outbound/bounce.h"
#include "relay/outbound/smtp_reply.h"
#include "relay/runtime/config.h"

namespace danerelay::relay {

using dns::Outcome;
using dns::Security;
using dns::TlsaStatus;

const char* toString(TlsMode m) {
    switch (m) {
        case TlsMode::None:
            return "none";
        case TlsMode::Opportunistic:
            return "opportunistic";
        case TlsMode::Mandatory:
            return "mandatory-unauthenticated";
        case TlsMode::Dane:
            return "dane";
        case TlsMode::Verify:
            return "verify";
    }
    return "?";
}

const char* toString(DeliveryPlan::Action a) {
    switch (a) {
        case DeliveryPlan::Action::Deliver:
            return "deliver";
        case DeliveryPlan::Action::Defer:
            return "defer";
        case DeliveryPlan::Action::Bounce:
            return "bounce";
    }
    return "?";
}

static DeliveryPlan verdict(DeliveryPlan::Action a, std::string status, std::string reason) {
    DeliveryPlan p;
    p.action = a;
    p.status = std::move(status);
    p.reason = std::move(reason);
    return p;
}

constexpr const char* kAuthFailure = "4.7.5";    // DNSSEC / DANE authentication
constexpr const char* kLookupFailure = "4.4.3";  // DNS lookup failed or timed out

// One lookup (`what`: "A", "AAAA", "TLSA _25._tcp.NAME") in words: which
// failure, with the answer's own detail; and its status: a bogus answer or
// data whose status is unknown is an authentication failure, a lookup that
// failed or timed out without a verdict is a lookup failure.
struct LookupFault {
    std::string text;
    const char* status = kLookupFailure;
};
static LookupFault lookupFault(const std::string& what, const dns::Answer& x) {
    LookupFault f;
    std::string detail = x.detail.empty() ? "" : " (" + x.detail + ")";
    if (x.security == Security::Bogus) {
        f.text = what + " lookup failed DNSSEC validation: bogus" + detail;
        f.status = kAuthFailure;
    } else if (x.outcome == Outcome::Timeout) {
        f.text = what + " lookup timed out" + detail;
    } else if (x.outcome == Outcome::ServFail || x.outcome == Outcome::Error) {
        f.text = what + " lookup failed: " + dns::toString(x.outcome) + detail;
    } else if (x.security == Security::Indeterminate) {
        f.text = what + " answer's DNSSEC status indeterminate (" + dns::toString(x.outcome) +
                 (x.detail.empty() ? "" : "; " + x.detail) + ")";
        f.status = kAuthFailure;
    } else {
        f.text = what + " lookup: " + dns::toString(x.outcome) + detail;
    }
    return f;
}

// Why a host's addresses cannot be used: each family's failure, named. A
// family with data beside the failing one is not a failure of its own.
static LookupFault addressFailure(const HostInfo& h) {
    LookupFault out;
    for (const auto* ans : {&h.a, &h.aaaa}) {
        bool fine = (ans->outcome == Outcome::Data || ans->outcome == Outcome::NoData ||
                     ans->outcome == Outcome::NxDomain) &&
                    (ans->security == Security::Secure || ans->security == Security::Insecure);
        if (fine) continue;
        auto f = lookupFault(ans == &h.a ? "A" : "AAAA", *ans);
        out.text += (out.text.empty() ? "" : "; ") + f.text;
        if (f.status == kAuthFailure) out.status = kAuthFailure;
    }
    if (out.text.empty()) out.text = "address lookup failed";
    return out;
}

// "no usable MX host for D: h1: why; h2: why", bounded and one safe line.
static std::string noHostReason(const std::string& domain, const std::vector<HostPlan>& hosts) {
    std::string out = "no usable MX host for " + domain;
    for (size_t i = 0; i < hosts.size(); ++i) {
        std::string part = dsnText(hosts[i].name + ": " + hosts[i].why, kMaxHostReason);
        std::string more = "; and " + std::to_string(hosts.size() - i) + " more host" +
                           (hosts.size() - i == 1 ? "" : "s");
        bool last = i + 1 == hosts.size();
        // Room for this part (after ": " or "; ") and, unless it is the
        // last, for the "; and N more hosts" that may have to follow it.
        if (out.size() + 2 + part.size() + (last ? 0 : more.size() + 2) > kMaxPlanReason) {
            out += more;
            break;
        }
        out += (i == 0 ? ": " : "; ") + part;
    }
    return dsnText(out, kMaxPlanReason);
}

// Address text in one form: IPv4-mapped IPv6 as IPv4; nullopt if not an address.
struct IpAddr {
    int family = AF_INET;
    unsigned char bytes[16] = {};
    bool operator==(const IpAddr& o) const {
        return family == o.family && std::memcmp(bytes, o.bytes, family == AF_INET ? 4 : 16) == 0;
    }
    bool unspecified() const {
        static const unsigned char zero[16] = {};
        return std::memcmp(bytes, zero, family == AF_INET ? 4 : 16) == 0;
    }
    bool loopback() const {
        if (family == AF_INET) return bytes[0] == 127;
        static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        return std::memcmp(bytes, one, 16) == 0;
    }
};
static std::optional<IpAddr> parseIp(std::string text) {
    if (auto pct = text.find('%'); pct != std::string::npos) text.resize(pct);  // fe80::1%eth0
    IpAddr ip;
    if (inet_pton(AF_INET, text.c_str(), ip.bytes) == 1) return ip;
    in6_addr a6{};
    if (inet_pton(AF_INET6, text.c_str(), &a6) != 1) return std::nullopt;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        std::memcpy(ip.bytes, a6.s6_addr + 12, 4);
        return ip;
    }
    ip.family = AF_INET6;
    std::memcpy(ip.bytes, a6.s6_addr, 16);
    return ip;
}

bool OwnAddresses::reaches(const std::string& address) const {
    auto d = parseIp(address);
    if (!d) return false;
    for (const auto& l : listeners) {
        if (l.port != port) continue;
        auto la = parseIp(l.address);
        if (!la) continue;
        if (*la == *d) return true;
        // 0.0.0.0 and :: as a destination are this host's loopback.
        if (d->unspecified() && la->loopback() && la->family == d->family) return true;
        if (!la->unspecified()) continue;
        // A wildcard listener takes its own family only: 0.0.0.0 IPv4, ::
        // IPv6 (relay/smtp_server sets IPV6_V6ONLY).
        if (la->family != d->family) continue;
        if (d->loopback() || d->unspecified()) return true;
        for (const auto& i : interfaces) {
            if (auto ia = parseIp(i); ia && *ia == *d) return true;
        }
    }
    return false;
}

OwnAddresses ownAddresses(const std::vector<ListenerConfig>& listeners, uint16_t port) {
    OwnAddresses own;
    own.port = port;
    bool wildcard = false;
    for (const auto& l : listeners) {
        own.listeners.push_back({l.host, l.port});
        auto ip = parseIp(l.host);
        wildcard = wildcard || (ip && ip->unspecified());
    }
    ifaddrs* list = nullptr;
    if (!wildcard || getifaddrs(&list) != 0) return own;
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        int fam = i->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6) continue;
        char host[NI_MAXHOST];
        socklen_t len = fam == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
        if (getnameinfo(i->ifa_addr, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) == 0) {
            own.interfaces.emplace_back(host);
        }
    }
    freeifaddrs(list);
    return own;
}

static bool isIpLiteral(const std::string& s) {
    in6_addr buf{};
    return inet_pton(AF_INET, s.c_str(), &buf) == 1 || inet_pton(AF_INET6, s.c_str(), &buf) == 1;
}

bool daneCovers(const DestinationInfo& d, const HostInfo& h) {
    return d.mx.security == Security::Secure && h.addressSecurity() == Security::Secure &&
           (h.tlsaStatus == TlsaStatus::Usable || h.tlsaStatus == TlsaStatus::NoneUsable ||
            h.tlsaStatus == TlsaStatus::Failed);
}

bool needsSts(const DestinationInfo& d) {
    return std::any_of(d.hosts.begin(), d.hosts.end(),
                       [&](const HostInfo& h) { return !daneCovers(d, h); });
}

// MTA-STS on the hosts DANE does not cover (see delivery.h). daneCovered:
// by index in hosts.
static void applySts(const DestinationInfo& d, policy::Level level, const StsView* sts,
                     std::vector<HostPlan>& hosts, const std::vector<bool>& daneCovered) {
    using policy::Level;
    if (level == Level::None || level == Level::May) return;  // the operator's lowering
    const sts::Policy* pol = sts && sts->policy ? &*sts->policy : nullptr;
    bool required = level == Level::Sts;
    bool enforce =
        pol && (pol->mode == sts::Mode::Enforce || (required && pol->mode == sts::Mode::Testing));
    bool testing = pol && !enforce && pol->mode == sts::Mode::Testing;
    if (!d.nextHop.empty()) {
        enforce = testing = false;  // an operator's route: its own policy decides
        pol = nullptr;
    }
    for (size_t i = 0; i < hosts.size(); ++i) {
        auto& hp = hosts[i];
        if (daneCovered[i] || hp.skip || hp.mode != TlsMode::Opportunistic) continue;
        if (sts && sts->unknown && d.nextHop.empty()) {
            hp.skip = true;
            hp.status = kAuthFailure;
            hp.why =
                "the MTA-STS policy of " + d.domain + " cannot be known now (" + sts->why + ")";
            continue;
        }
        if (required && !enforce) {
            hp.skip = true;
            hp.status = kAuthFailure;
            std::string why =
                !pol ? (sts && !sts->why.empty() ? sts->why : "no MTA-STS policy")
                     : std::string("its MTA-STS policy is in mode ") + sts::toString(pol->mode);
            hp.why = "policy sts: no DANE and no usable MTA-STS policy for " + d.domain + " (" +
                     why + ")";
            continue;
        }
        if (!enforce && !testing) continue;
        bool matches = pol->matchesMx(hp.name);
        std::string mismatch = "not an MX host of the MTA-STS policy of " + d.domain +
                               " (mx: " + (pol->mx.empty() ? "none" : pol->mxText()) + ")";
        if (testing) {
            hp.sts = "testing";
            if (!matches) hp.stsWould = mismatch;
            continue;
        }
        hp.sts = "enforced";
        if (!matches) {
            hp.skip = true;
            hp.status = kAuthFailure;
            hp.why = mismatch + ", mode " + sts::toString(pol->mode);
            continue;
        }
        // RFC 8461 4.2: PKIX for the name of the MX host connected to,
        // which the policy (fetched over authenticated HTTPS) vouches for.
        hp.mode = TlsMode::Verify;
        hp.referenceNames = {hp.name};
        hp.sni = hp.name;
        hp.why = std::string("MTA-STS ") + sts::toString(pol->mode) + " policy of " + d.domain +
                 ": TLS required, certificate checked against CAs for " + hp.name + " (" + hp.why +
                 ")";
    }
}

DeliveryPlan plan(const DestinationInfo& d, bool resolverValidating, bool shuffle,
                  policy::Level level, const OwnAddresses& self, const StsView* sts) {
    using A = DeliveryPlan::Action;
    using policy::Level;
    const bool lowered = level == Level::May || level == Level::None;
    const auto& mx = d.mx;
    // The MX lookup itself.
    if (mx.security == Security::Bogus) {
        return verdict(A::Defer, "4.7.5",
                       "MX lookup for " + d.domain + " failed DNSSEC validation (dnssec-invalid" +
                           (mx.detail.empty() ? "" : ": " + mx.detail) + ")");
    }
    if (mx.outcome == Outcome::ServFail || mx.outcome == Outcome::Timeout ||
        mx.outcome == Outcome::Error) {
        return verdict(A::Defer, "4.4.3",
                       "MX lookup for " + d.domain + " failed: " + dns::toString(mx.outcome) +
                           " (" + mx.detail + ")");
    }
    if (!lowered && (!resolverValidating || mx.security == Security::Indeterminate)) {
        return verdict(A::Defer, "4.7.5",
                       "the resolver does not validate DNSSEC: cannot tell whether " + d.domain +
                           " publishes DANE");
    }
    if (mx.outcome == Outcome::NxDomain) {
        return verdict(A::Bounce, "5.1.2", "domain " + d.domain + " does not exist");
    }
    if (d.nullMx) {
        return verdict(A::Bounce, "5.1.10", "domain " + d.domain + " accepts no mail (null MX)");
    }

    DeliveryPlan p;
    p.action = A::Deliver;
    std::vector<bool> ownHost;      // by index in p.hosts, before the sort below
    std::vector<bool> daneCovered;  // the same: TLSA published or its lookup failed
    for (const auto& h : d.hosts) {
        HostPlan hp;
        hp.preference = h.preference;
        hp.name = h.name;
        for (const auto* ans : {&h.a, &h.aaaa}) {
            const char* family = ans == &h.a ? "A" : "AAAA";
            if (h.dropped(*ans)) {
                // The other family validated: this one is left out, never
                // the host (and a bogus family never gives an address).
                auto f = lookupFault(family, *ans);
                hp.why +=
                    (hp.why.empty() ? "" : "; ") + f.text + ": " + family + " addresses dropped";
                p.notes.push_back(dsnText(h.name + ": " + f.text + ": " + family +
                                              " addresses dropped, the " +
                                              (ans == &h.a ? "AAAA" : "A") + " addresses used",
                                          kMaxHostReason));
                continue;
            }
            if (ans->security != Security::Bogus) {
                hp.addresses.insert(hp.addresses.end(), ans->addresses.begin(),
                                    ans->addresses.end());
            }
        }
        const std::string dropped = hp.why.empty() ? "" : " (" + hp.why + ")";
        hp.why.clear();
        Security as = h.addressSecurity();
        bool lookupFailed = h.a.outcome != Outcome::Data && h.aaaa.outcome != Outcome::Data &&
                            (h.a.outcome == Outcome::ServFail || h.a.outcome == Outcome::Timeout ||
                             h.a.outcome == Outcome::Error);
        bool addressesOk = false;
        if (as == Security::Bogus || as == Security::Indeterminate || lookupFailed) {
            // Bogus and indeterminate never mean "insecure": an address whose
            // DNSSEC status is unknown could be an attacker's, so the host is
            // skipped exactly like a failed lookup (and DANE is not lost).
            hp.skip = true;
            auto f = addressFailure(h);
            hp.why = f.text;
            hp.status = f.status;
        } else if (hp.addresses.empty()) {
            hp.skip = true;
            hp.why = "no addresses";
            hp.status = kLookupFailure;
        } else if (mx.security != Security::Secure || as != Security::Secure) {
            addressesOk = true;
            hp.mode = TlsMode::Opportunistic;
            hp.why = "MX or address not DNSSEC-secure: no DANE";
        } else {
            addressesOk = true;
            switch (h.tlsaStatus) {
                case TlsaStatus::Usable:
                    hp.mode = TlsMode::Dane;
                    hp.sni = h.tlsaBase;
                    for (const auto& t : h.tlsa.tlsa) {
                        if (t.usable) hp.tlsa.push_back({t.usage, t.selector, t.mtype, t.data});
                    }
                    hp.referenceNames = {h.tlsaBase};
                    if (h.name != h.tlsaBase) hp.referenceNames.push_back(h.name);
                    if (d.domain != h.tlsaBase && d.domain != h.name)
                        hp.referenceNames.push_back(d.domain);
                    hp.why = "usable TLSA at _25._tcp." + h.tlsaBase;
                    break;
                case TlsaStatus::NoneUsable:
                    hp.mode = TlsMode::Mandatory;
                    hp.why = "TLSA present but none usable: TLS required, unauthenticated";
                    break;
                case TlsaStatus::SecurelyAbsent:
                case TlsaStatus::Insecure:
                    hp.mode = TlsMode::Opportunistic;
                    hp.why = "no TLSA records (securely absent)";
                    break;
                case TlsaStatus::Failed: {
                    hp.skip = true;
                    auto f = lookupFault(
                        "TLSA " + (h.tlsa.qname.empty() ? h.tlsaBase : h.tlsa.qname), h.tlsa);
                    hp.why = f.text;
                    hp.status = f.status;
                    break;
                }
            }
        }
        hp.why += dropped;
        daneCovered.push_back(addressesOk && daneCovers(d, h));
        ownHost.push_back(addressesOk && d.nextHop.empty() &&
                          std::any_of(hp.addresses.begin(), hp.addresses.end(),
                                      [&](const auto& ip) { return self.reaches(ip); }));
        // SNI always (RFC 6066): the TLSA base domain under DANE, else the
        // MX host name (the next-hop domain for an IP literal, which SNI
        // cannot carry).
        if (hp.sni.empty()) hp.sni = isIpLiteral(h.name) ? d.domain : h.name;
        p.hosts.push_back(std::move(hp));
    }
    applySts(d, level, sts, p.hosts, daneCovered);
    // The destination's policy, applied host by host.
    for (auto& hp : p.hosts) {
        bool addressFailed = hp.addresses.empty();
        switch (level) {
            case Level::None:
                if (!addressFailed) {
                    hp.skip = false;
                    hp.status.clear();
                    hp.mode = TlsMode::None;
                    hp.why = "policy none: no TLS (" + hp.why + ")";
                }
                break;
            case Level::May:
                if (!addressFailed) {
                    hp.skip = false;
                    hp.status.clear();
                    hp.mode = TlsMode::Opportunistic;
                    hp.tlsa.clear();
                    hp.referenceNames.clear();
                    hp.why = "policy may: opportunistic TLS, DANE not enforced (" + hp.why + ")";
                }
                break;
            case Level::Encrypt:
                if (!hp.skip && hp.mode == TlsMode::Opportunistic) {
                    hp.mode = TlsMode::Mandatory;
                    hp.why = "policy encrypt: TLS required (" + hp.why + ")";
                }
                break;
            case Level::DaneOnly:
                if (!hp.skip && hp.mode != TlsMode::Dane) {
                    hp.skip = true;
                    hp.why = "policy dane-only: no usable DANE TLSA (" + hp.why + ")";
                    hp.status = kAuthFailure;
                }
                break;
            case Level::Verify:
                if (!hp.skip && hp.mode != TlsMode::Dane && hp.mode != TlsMode::Verify) {
                    hp.mode = TlsMode::Verify;
                    // The name the certificate must carry: the MX host name
                    // only when a DNSSEC-secure MX RRset vouches for it;
                    // otherwise an attacker could rewrite the MX RRset to a
                    // host whose certificate they hold, so it is the next-hop
                    // domain itself (Postfix's "secure" level).
                    std::string name = mx.security == Security::Secure && !isIpLiteral(hp.name)
                                           ? hp.name
                                           : d.domain;
                    hp.referenceNames = {name};
                    hp.sni = name;
                    hp.why = "policy verify: TLS required, certificate checked against CAs (" +
                             hp.why + ")";
                }
                break;
            case Level::Dane:
            case Level::Sts:  // applySts()
                break;
        }
    }
    // Mail loops (Postfix's "loops back to myself"): a host that reaches one
    // of our own listeners, and every host of its preference or above, is
    // dropped (we are at most a backup MX). Nothing more preferred: bounce.
    std::optional<uint16_t> ownPreference;
    for (size_t i = 0; i < p.hosts.size(); ++i) {
        if (ownHost[i] && (!ownPreference || p.hosts[i].preference < *ownPreference))
            ownPreference = p.hosts[i].preference;
    }
    if (ownPreference) {
        bool morePreferred = false;
        for (size_t i = 0; i < p.hosts.size(); ++i) {
            auto& hp = p.hosts[i];
            if (hp.preference < *ownPreference) {
                morePreferred = true;
                continue;
            }
            hp.skip = true;
            hp.status = "5.4.6";
            hp.why = ownHost[i]
                         ? "an address of this host is one of our own listeners (port " +
                               std::to_string(self.port) + "): mail loop"
                         : "preference " + std::to_string(hp.preference) +
                               " not below our own MX preference " + std::to_string(*ownPreference);
        }
        if (!morePreferred) {
            std::string which;
            for (size_t i = 0; i < p.hosts.size() && which.empty(); ++i) {
                if (!ownHost[i]) continue;
                for (const auto& ip : p.hosts[i].addresses) {
                    if (self.reaches(ip)) {
                        which = p.hosts[i].name + "[" + ip + "]:" + std::to_string(self.port);
                        break;
                    }
                }
            }
            auto v = verdict(A::Bounce, "5.4.6",
                             dsnText("mail for " + d.domain + " loops back to myself (" + which +
                                         " is one of our own listeners)",
                                     kMaxPlanReason));
            v.hosts = std::move(p.hosts);
            v.notes = std::move(p.notes);
            return v;
        }
    }
    // Preference order, random among equals (RFC 5321 5.1).
    if (shuffle) {
        static thread_local std::mt19937 rng{std::random_device{}()};
        std::shuffle(p.hosts.begin(), p.hosts.end(), rng);
    }
    std::stable_sort(p.hosts.begin(), p.hosts.end(),
                     [](const auto& a, const auto& b) { return a.preference < b.preference; });
    if (std::none_of(p.hosts.begin(), p.hosts.end(), [](const auto& h) { return !h.skip; })) {
        bool auth = std::any_of(p.hosts.begin(), p.hosts.end(),
                                [](const auto& h) { return h.status == kAuthFailure; });
        auto v = verdict(A::Defer, auth ? kAuthFailure : kLookupFailure,
                         noHostReason(d.domain, p.hosts));
        v.hosts = std::move(p.hosts);
        v.notes = std::move(p.notes);
        return v;
    }
    return p;
}

nlohmann::json toJson(const DeliveryPlan& p) {
    nlohmann::json hosts = nlohmann::json::array();
    for (const auto& h : p.hosts) {
        hosts.push_back({{"name", h.name},
                         {"preference", h.preference},
                         {"addresses", h.addresses},
                         {"tls", h.skip ? "skip" : toString(h.mode)},
                         {"sni", h.sni},
                         {"reference_names", h.referenceNames},
                         {"why", h.why},
                         {"mta_sts", h.sts}});
        if (!h.status.empty()) hosts.back()["status"] = h.status;
        if (!h.stsWould.empty()) hosts.back()["mta_sts_would"] = h.stsWould;
    }
    return {{"action", toString(p.action)},
            {"status", p.status},
            {"reason", p.reason},
            {"hosts", hosts},
            {"notes", p.notes}};
}

std::string toText(const DeliveryPlan& p) {
    std::string out = std::string("decision: ") + toString(p.action);
    if (!p.status.empty()) out += " " + p.status;
    if (!p.reason.empty()) out += " (" + p.reason + ")";
    out += "\n";
    for (const auto& h : p.hosts) {
        out += "  " + std::to_string(h.preference) + " " + h.name + ": " +
               (h.skip ? std::string("skip") : toString(h.mode)) + " — " + h.why +
               (std::string_view(h.sts) == "none" ? "" : std::string(" [mta-sts ") + h.sts + "]") +
               (h.stsWould.empty() ? "" : " (MTA-STS enforce would refuse: " + h.stsWould + ")") +
               "\n";
    }
    for (const auto& n : p.notes) out += "  note: " + n + "\n";
    return out;
}

}  // namespace danerelay::relay
