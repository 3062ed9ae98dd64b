#include "dns/answer.h"

#include <algorithm>
#include <cctype>
#include <memory>

#include "dns/response.h"

namespace danerelay::dns {

const char* toString(Security s) {
    switch (s) {
        case Security::Secure:
            return "secure";
        case Security::Insecure:
            return "insecure";
        case Security::Bogus:
            return "bogus";
        case Security::Indeterminate:
            return "indeterminate";
    }
    return "?";
}

const char* toString(Outcome o) {
    switch (o) {
        case Outcome::Data:
            return "data";
        case Outcome::NxDomain:
            return "nxdomain";
        case Outcome::NoData:
            return "nodata";
        case Outcome::ServFail:
            return "servfail";
        case Outcome::Timeout:
            return "timeout";
        case Outcome::Error:
            return "error";
    }
    return "?";
}

const char* toString(TlsaStatus s) {
    switch (s) {
        case TlsaStatus::Usable:
            return "usable";
        case TlsaStatus::NoneUsable:
            return "none-usable";
        case TlsaStatus::SecurelyAbsent:
            return "securely-absent";
        case TlsaStatus::Insecure:
            return "insecure";
        case TlsaStatus::Failed:
            return "failed";
    }
    return "?";
}

bool normalizeName(const std::string& in, std::string* out) {
    std::string s = in;
    if (!s.empty() && s.back() == '.') s.pop_back();
    if (s.empty() || s.size() > 253) return false;
    size_t label = 0;
    for (char& c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!(std::isalnum(u) || c == '-' || c == '_')) return false;
        if (++label > 63) return false;
        c = static_cast<char>(std::tolower(u));
    }
    if (label == 0) return false;
    *out = s;
    return true;
}

void classifyTlsa(TlsaRecord& r) {
    r.usable = false;
    if (r.usage != 2 && r.usage != 3) {
        r.unusableReason = "usage " + std::to_string(r.usage) + " is not DANE-TA(2)/DANE-EE(3)";
    } else if (r.selector > 1) {
        r.unusableReason = "unknown selector " + std::to_string(r.selector);
    } else if (r.mtype > 2) {
        r.unusableReason = "unknown matching type " + std::to_string(r.mtype);
    } else if (r.mtype == 1 && r.data.size() != 32) {
        r.unusableReason = "SHA2-256 digest of " + std::to_string(r.data.size()) + " octets";
    } else if (r.mtype == 2 && r.data.size() != 64) {
        r.unusableReason = "SHA2-512 digest of " + std::to_string(r.data.size()) + " octets";
    } else if (r.mtype == 0 && r.data.empty()) {
        r.unusableReason = "empty certificate data";
    } else {
        r.usable = true;
        r.unusableReason.clear();
    }
}

std::string tlsaToString(const TlsaRecord& r) {
    static const char* hex = "0123456789abcdef";
    std::string s = std::to_string(r.usage) + " " + std::to_string(r.selector) + " " +
                    std::to_string(r.mtype) + " ";
    for (uint8_t b : r.data) {
        s += hex[b >> 4];
        s += hex[b & 15];
    }
    return s;
}

TlsaStatus tlsaStatus(const Answer& a) {
    switch (a.outcome) {
        case Outcome::ServFail:
        case Outcome::Timeout:
        case Outcome::Error:
            return TlsaStatus::Failed;
        default:
            break;
    }
    if (a.security == Security::Bogus || a.security == Security::Indeterminate) {
        return TlsaStatus::Failed;
    }
    if (a.security == Security::Insecure) return TlsaStatus::Insecure;
    if (a.outcome == Outcome::NxDomain || a.outcome == Outcome::NoData) {
        return TlsaStatus::SecurelyAbsent;
    }
    bool any = std::any_of(a.tlsa.begin(), a.tlsa.end(), [](const auto& t) { return t.usable; });
    return any ? TlsaStatus::Usable : TlsaStatus::NoneUsable;
}

bool questionMatches(const uint8_t* wire, size_t len, const std::string& qname, uint16_t qtype) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, wire, len) != LDNS_STATUS_OK || !raw) return false;
    Pkt pkt(raw);
    const ldns_rr_list* q = ldns_pkt_question(pkt.get());
    if (!q || ldns_rr_list_rr_count(q) != 1) return false;
    const ldns_rr* qrr = ldns_rr_list_rr(q, 0);
    return fqdnOf(ldns_rr_owner(qrr)) == fqdn(qname) &&
           static_cast<uint16_t>(ldns_rr_get_type(qrr)) == qtype &&
           ldns_rr_get_class(qrr) == LDNS_RR_CLASS_IN;
}

// Resolver mode: the same single reading as local validation
// (response.h), with the security a trusted resolver's AD bit gives it.
Answer parseResponse(const uint8_t* wire, size_t len, const std::string& qname, uint16_t qtype,
                     bool trustAd) {
    auto r = readResponse(wire, len, qname, qtype);
    Security s =
        trustAd ? (r->ad ? Security::Secure : Security::Insecure) : Security::Indeterminate;
    if (s == Security::Secure && !r->strays.empty() && r->outcome != Outcome::Error &&
        r->outcome != Outcome::ServFail)
        return withheld(*r, Security::Bogus, "DNSSEC: " + straysText(*r));
    return answerFrom(*r, s);
}

}  // namespace danerelay::dns
