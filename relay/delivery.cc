#include "relay/delivery.h"

#include <algorithm>
#include <random>

#include <nlohmann/json.hpp>

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

DeliveryPlan plan(const DestinationInfo& d, bool resolverValidating, bool shuffle,
                  policy::Level level) {
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
    bool daneSkipped = false;
    for (const auto& h : d.hosts) {
        HostPlan hp;
        hp.preference = h.preference;
        hp.name = h.name;
        for (const auto* ans : {&h.a, &h.aaaa}) {
            if (ans->security != Security::Bogus) {
                hp.addresses.insert(hp.addresses.end(), ans->addresses.begin(),
                                    ans->addresses.end());
            }
        }
        Security as = h.addressSecurity();
        if (as == Security::Bogus ||
            (h.a.outcome != Outcome::Data && h.aaaa.outcome != Outcome::Data &&
             (h.a.outcome == Outcome::ServFail || h.a.outcome == Outcome::Timeout))) {
            hp.skip = true;
            hp.why = "address lookup failed (" + std::string(dns::toString(h.a.outcome)) + ", " +
                     dns::toString(as) + ")";
            if (mx.security == Security::Secure) daneSkipped = true;
        } else if (hp.addresses.empty()) {
            hp.skip = true;
            hp.why = "no addresses";
        } else if (mx.security != Security::Secure || as != Security::Secure) {
            hp.mode = TlsMode::Opportunistic;
            hp.why = "MX or address not DNSSEC-secure: no DANE";
        } else {
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
                case TlsaStatus::Failed:
                    hp.skip = true;
                    hp.why = "TLSA lookup failed or bogus (" + h.tlsa.detail + ")";
                    daneSkipped = true;
                    break;
            }
        }
        p.hosts.push_back(std::move(hp));
    }
    // The destination's policy, applied host by host.
    for (auto& hp : p.hosts) {
        bool addressFailed = hp.addresses.empty();
        switch (level) {
            case Level::None:
                if (!addressFailed) {
                    hp.skip = false;
                    hp.mode = TlsMode::None;
                    hp.why = "policy none: no TLS (" + hp.why + ")";
                }
                break;
            case Level::May:
                if (!addressFailed) {
                    hp.skip = false;
                    hp.mode = TlsMode::Opportunistic;
                    hp.tlsa.clear();
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
                    daneSkipped = true;
                }
                break;
            case Level::Verify:
                if (!hp.skip && hp.mode != TlsMode::Dane) {
                    hp.mode = TlsMode::Verify;
                    hp.why = "policy verify: TLS required, certificate checked against CAs (" +
                             hp.why + ")";
                }
                break;
            case Level::Dane:
                break;
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
        auto v =
            verdict(A::Defer, daneSkipped ? "4.7.5" : "4.4.3", "no usable MX host for " + d.domain);
        v.hosts = std::move(p.hosts);
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
                         {"why", h.why}});
    }
    return {{"action", toString(p.action)},
            {"status", p.status},
            {"reason", p.reason},
            {"hosts", hosts}};
}

std::string toText(const DeliveryPlan& p) {
    std::string out = std::string("decision: ") + toString(p.action);
    if (!p.status.empty()) out += " " + p.status;
    if (!p.reason.empty()) out += " (" + p.reason + ")";
    out += "\n";
    for (const auto& h : p.hosts) {
        out += "  " + std::to_string(h.preference) + " " + h.name + ": " +
               (h.skip ? std::string("skip") : toString(h.mode)) + " — " + h.why + "\n";
    }
    return out;
}

}  // namespace danerelay::relay
