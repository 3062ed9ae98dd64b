#include "relay/delivery.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <random>

#include <nlohmann/json.hpp>

#include "relay/smtp_client.h"
#include "relay/smtp_reply.h"

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

// Why a host's addresses cannot be used, with the answers' own details.
static std::string addressFailure(const HostInfo& h, Security as) {
    std::string why = as == Security::Bogus           ? "address lookup failed DNSSEC validation"
                      : as == Security::Indeterminate ? "address lookup DNSSEC status indeterminate"
                                                      : "address lookup failed";
    why += " (" + std::string(dns::toString(h.a.outcome)) + ", " + dns::toString(as);
    for (const auto* ans : {&h.a, &h.aaaa}) {
        if (!ans->detail.empty()) why += "; " + ans->detail;
    }
    return why + ")";
}

static bool isIpLiteral(const std::string& s) {
    in6_addr buf{};
    return inet_pton(AF_INET, s.c_str(), &buf) == 1 || inet_pton(AF_INET6, s.c_str(), &buf) == 1;
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
        bool lookupFailed = h.a.outcome != Outcome::Data && h.aaaa.outcome != Outcome::Data &&
                            (h.a.outcome == Outcome::ServFail || h.a.outcome == Outcome::Timeout);
        if (as == Security::Bogus || as == Security::Indeterminate || lookupFailed) {
            // Bogus and indeterminate never mean "insecure": an address whose
            // DNSSEC status is unknown could be an attacker's, so the host is
            // skipped exactly like a failed lookup (and DANE is not lost).
            hp.skip = true;
            hp.why = addressFailure(h, as);
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
        // SNI always (RFC 6066): the TLSA base domain under DANE, else the
        // MX host name (the next-hop domain for an IP literal, which SNI
        // cannot carry).
        if (hp.sni.empty()) hp.sni = isIpLiteral(h.name) ? d.domain : h.name;
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
                    daneSkipped = true;
                }
                break;
            case Level::Verify:
                if (!hp.skip && hp.mode != TlsMode::Dane) {
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

// The reply is a server's ("550 5.1.1 gone"), one quoted in our error
// ("MAIL FROM: 550 5.1.1 gone"), or our own ("5.6.7 the server does not
// ..."). The enhanced code is read by splitEnhancedStatus() (relay/
// smtp_reply.h), the one parser of reply codes: only at the start of the
// text, and only of the reply code's class.
std::string statusOf(int code, const std::string& reply, const std::string& fallback) {
    auto isDigit = [](char c) { return c >= '0' && c <= '9'; };
    auto afterCode = [&](std::string_view s, std::string_view* text) {
        if (s.size() < 4 || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) || s[3] != ' ') {
            return false;
        }
        *text = s.substr(4);
        return true;
    };
    std::string_view text;
    std::string found;
    if (afterCode(reply, &text)) {
        found = splitEnhancedStatus(code, text).code;
    } else if (found = splitEnhancedStatus(code, reply).code; found.empty()) {
        auto colon = reply.find(": ");  // "where: NNN text"
        if (colon != std::string::npos &&
            afterCode(std::string_view(reply).substr(colon + 2), &text)) {
            found = splitEnhancedStatus(code, text).code;
        }
    }
    if (!found.empty()) return found;
    if (code >= 500) return "5.0.0";
    if (code >= 400) return "4.0.0";
    return fallback;
}

// A permanent status made temporary: 5.x.y becomes 4.x.y.
static std::string softened(std::string status) {
    if (!status.empty() && status[0] != '4') status[0] = '4';
    return status;
}

bool tlsRequirementMet(TlsMode required, const ClientResult& r) {
    switch (required) {
        case TlsMode::None:
        case TlsMode::Opportunistic:
            return true;
        case TlsMode::Mandatory:
        case TlsMode::Dane:
        case TlsMode::Verify:
            return !r.tls.empty() && r.peerVerified;
    }
    return false;
}

AttemptJudgement judgeAttempt(TlsMode required, const ClientResult& r, size_t recipients) {
    using queue::RcptState;
    AttemptJudgement j;
    const bool tlsOk = tlsRequirementMet(required, r);
    const std::string notBounced =
        std::string(" (not bounced: the server did not meet the required TLS, ") +
        toString(required) + ")";
    if (!r.sessionOk) {
        if (r.permanent && r.transactionStarted && tlsOk) {
            for (size_t k = 0; k < recipients; ++k) {
                j.rcpts.push_back({RcptState::Bounced, statusOf(550, r.error, "5.0.0"), r.error});
            }
            return j;
        }
        j.nextHost = true;
        j.reason = r.error;
        if (r.permanent && r.transactionStarted) j.reason += notBounced;
        if (!r.dane.empty() && !r.peerVerified) {
            j.status = "4.7.5";  // the TLS requirement failed
        } else if (r.permanent) {
            j.status = softened(statusOf(550, r.error, "5.0.0"));
        } else {
            j.status = "4.4.1";
        }
        return j;
    }
    for (size_t k = 0; k < recipients; ++k) {
        const ClientResult::Rcpt none;
        const auto& rr = k < r.rcpts.size() ? r.rcpts[k] : none;
        AttemptJudgement::Rcpt out;
        out.text = rr.reply;
        if (rr.code / 100 == 2) {
            out.state = RcptState::Delivered;
            out.status = statusOf(rr.code, rr.reply, "2.0.0");
        } else if (rr.code / 100 == 5 && tlsOk) {
            out.state = RcptState::Bounced;
            out.status = statusOf(rr.code, rr.reply, "5.0.0");
        } else {
            out.state = RcptState::Deferred;
            out.status = softened(statusOf(rr.code, rr.reply, "4.0.0"));
            if (rr.code / 100 == 5) out.text += notBounced;
            if (rr.code == 0) out.text = "no reply to RCPT";
        }
        j.rcpts.push_back(std::move(out));
    }
    return j;
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
