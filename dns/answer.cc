#include "dns/answer.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <set>

// After the standard headers: ldns's macros confuse libstdc++ under clang.
#include <ldns/ldns.h>

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

namespace {

struct PktDeleter {
    void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};

std::string dnameToString(const ldns_rdf* rdf) {
    if (!rdf || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME) return {};
    char* s = ldns_rdf2str(rdf);
    if (!s) return {};
    std::string out(s);
    free(s);
    if (out == ".") return "";
    if (!out.empty() && out.back() == '.') out.pop_back();
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

Answer fail(Answer a, Outcome o, std::string why) {
    a.outcome = o;
    a.security = Security::Indeterminate;
    a.detail = std::move(why);
    return a;
}

}  // namespace

bool questionMatches(const uint8_t* wire, size_t len, const std::string& qname, uint16_t qtype) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, wire, len) != LDNS_STATUS_OK || !raw) return false;
    std::unique_ptr<ldns_pkt, PktDeleter> pkt(raw);
    const ldns_rr_list* q = ldns_pkt_question(pkt.get());
    if (!q || ldns_rr_list_rr_count(q) != 1) return false;
    const ldns_rr* qrr = ldns_rr_list_rr(q, 0);
    return dnameToString(ldns_rr_owner(qrr)) == qname &&
           static_cast<uint16_t>(ldns_rr_get_type(qrr)) == qtype &&
           ldns_rr_get_class(qrr) == LDNS_RR_CLASS_IN;
}

Answer parseResponse(const uint8_t* wire, size_t len, const std::string& qname, uint16_t qtype,
                     bool trustAd) {
    Answer a;
    a.qname = qname;
    a.qtype = qtype;
    a.canonicalName = qname;
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, wire, len) != LDNS_STATUS_OK || !raw) {
        return fail(a, Outcome::Error, "malformed response");
    }
    std::unique_ptr<ldns_pkt, PktDeleter> pkt(raw);
    if (!ldns_pkt_qr(pkt.get())) return fail(a, Outcome::Error, "not a response");
    const ldns_rr_list* q = ldns_pkt_question(pkt.get());
    if (!q || ldns_rr_list_rr_count(q) != 1) return fail(a, Outcome::Error, "bad question count");
    const ldns_rr* qrr = ldns_rr_list_rr(q, 0);
    if (dnameToString(ldns_rr_owner(qrr)) != qname ||
        static_cast<uint16_t>(ldns_rr_get_type(qrr)) != qtype ||
        ldns_rr_get_class(qrr) != LDNS_RR_CLASS_IN) {
        return fail(a, Outcome::Error, "response is for another question");
    }
    bool ad = ldns_pkt_ad(pkt.get());
    a.security = trustAd ? (ad ? Security::Secure : Security::Insecure) : Security::Indeterminate;

    switch (ldns_pkt_get_rcode(pkt.get())) {
        case LDNS_RCODE_NOERROR:
        case LDNS_RCODE_NXDOMAIN:
            break;
        case LDNS_RCODE_SERVFAIL:
            return fail(a, Outcome::ServFail, "SERVFAIL");
        default:
            return fail(a, Outcome::Error,
                        "rcode " + std::to_string(ldns_pkt_get_rcode(pkt.get())));
    }

    // Follow the CNAME chain from qname, using only records owned by the
    // current name; anything else in the answer section is ignored.
    const ldns_rr_list* ans = ldns_pkt_answer(pkt.get());
    size_t n = ans ? ldns_rr_list_rr_count(ans) : 0;
    uint32_t minTtl = UINT32_MAX;
    std::string current = qname;
    std::set<std::string> seen{current};
    for (;;) {
        std::string next;
        for (size_t i = 0; i < n; ++i) {
            const ldns_rr* rr = ldns_rr_list_rr(ans, i);
            if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && qtype != kTypeCname &&
                dnameToString(ldns_rr_owner(rr)) == current && ldns_rr_rd_count(rr) == 1) {
                next = dnameToString(ldns_rr_rdf(rr, 0));
                minTtl = std::min(minTtl, ldns_rr_ttl(rr));
                break;
            }
        }
        if (next.empty()) break;
        if (!seen.insert(next).second) return fail(a, Outcome::Error, "CNAME loop at " + next);
        if (a.cnameChain.size() >= kMaxCnameChain) {
            return fail(a, Outcome::Error,
                        "CNAME chain longer than " + std::to_string(kMaxCnameChain));
        }
        a.cnameChain.push_back(current);
        current = next;
    }
    a.canonicalName = current;

    for (size_t i = 0; i < n; ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(ans, i);
        if (static_cast<uint16_t>(ldns_rr_get_type(rr)) != qtype) continue;
        if (dnameToString(ldns_rr_owner(rr)) != current) continue;
        if (a.mx.size() + a.addresses.size() + a.tlsa.size() >= kMaxRecords) break;
        minTtl = std::min(minTtl, ldns_rr_ttl(rr));
        switch (qtype) {
            case kTypeMx: {
                if (ldns_rr_rd_count(rr) != 2) return fail(a, Outcome::Error, "malformed MX");
                MxRecord m;
                m.preference = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
                m.host = dnameToString(ldns_rr_rdf(rr, 1));
                a.mx.push_back(std::move(m));
                break;
            }
            case kTypeA:
            case kTypeAaaa: {
                const ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
                if (!rdf || ldns_rr_rd_count(rr) != 1)
                    return fail(a, Outcome::Error, "malformed address");
                char* s = ldns_rdf2str(rdf);
                if (!s) return fail(a, Outcome::Error, "malformed address");
                a.addresses.emplace_back(s);
                free(s);
                break;
            }
            case kTypeTlsa: {
                if (ldns_rr_rd_count(rr) != 4) return fail(a, Outcome::Error, "malformed TLSA");
                TlsaRecord t;
                t.usage = ldns_rdf2native_int8(ldns_rr_rdf(rr, 0));
                t.selector = ldns_rdf2native_int8(ldns_rr_rdf(rr, 1));
                t.mtype = ldns_rdf2native_int8(ldns_rr_rdf(rr, 2));
                const ldns_rdf* d = ldns_rr_rdf(rr, 3);
                t.data.assign(ldns_rdf_data(d), ldns_rdf_data(d) + ldns_rdf_size(d));
                classifyTlsa(t);
                a.tlsa.push_back(std::move(t));
                break;
            }
            default:
                break;
        }
    }
    bool data = !a.mx.empty() || !a.addresses.empty() || !a.tlsa.empty() ||
                (qtype == kTypeCname && !a.cnameChain.empty());
    if (data) {
        a.outcome = Outcome::Data;
    } else {
        a.outcome = ldns_pkt_get_rcode(pkt.get()) == LDNS_RCODE_NXDOMAIN ? Outcome::NxDomain
                                                                         : Outcome::NoData;
        const ldns_rr_list* auth = ldns_pkt_authority(pkt.get());
        // A referral (NS and no SOA in authority) is not an answer: the
        // server did not recurse. Taking it for NODATA would invent absence.
        if (a.outcome == Outcome::NoData) {
            bool soa = false;
            std::string delegated;
            for (size_t i = 0; auth && i < ldns_rr_list_rr_count(auth); ++i) {
                const ldns_rr* rr = ldns_rr_list_rr(auth, i);
                if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA) soa = true;
                if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NS)
                    delegated = dnameToString(ldns_rr_owner(rr));
            }
            if (!soa && !delegated.empty())
                return fail(a, Outcome::Error,
                            "a referral to " + delegated +
                                ", not an answer (the server does not "
                                "recurse)");
        }
        // Negative TTL: the SOA in the authority section (RFC 2308).
        for (size_t i = 0; auth && i < ldns_rr_list_rr_count(auth); ++i) {
            const ldns_rr* rr = ldns_rr_list_rr(auth, i);
            if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7) {
                minTtl =
                    std::min({minTtl, ldns_rr_ttl(rr), ldns_rdf2native_int32(ldns_rr_rdf(rr, 6))});
            }
        }
    }
    a.ttl = minTtl == UINT32_MAX ? 0 : minTtl;
    if (qtype == kTypeMx) {
        std::stable_sort(a.mx.begin(), a.mx.end(),
                         [](const auto& x, const auto& y) { return x.preference < y.preference; });
    }
    return a;
}

}  // namespace danerelay::dns
