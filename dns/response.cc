#include "dns/response.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace danerelay::dns {

namespace {

// A byte ldns prints as itself in a name (ldns_rdf2buffer_str_dname: ASCII
// graphic, none of . ; ( ) \\ which it escapes).
bool plainNameByte(uint8_t c) {
    return c > 0x20 && c < 0x7f && c != '.' && c != ';' && c != '(' && c != ')' && c != '\\';
}

// The name in lower case with its trailing dot, read from the wire form
// directly where that is exactly what ldns would print: well-formed
// labels that end at the rdf's end, at most 255 bytes, only plain bytes.
// Anything else: empty (the caller asks ldns).
std::string plainFqdn(const ldns_rdf* d) {
    const uint8_t* p = ldns_rdf_data(d);
    size_t n = ldns_rdf_size(d);
    if (!p || n == 0 || n > LDNS_MAX_DOMAINLEN) return {};
    if (n == 1) return p[0] == 0 ? "." : "";
    std::string out;
    out.reserve(n);
    size_t i = 0;
    while (i < n && p[i] != 0) {
        size_t len = p[i++];
        if (len > 63 || i + len >= n) return {};
        for (size_t k = 0; k < len; ++k, ++i) {
            if (!plainNameByte(p[i])) return {};
            out += static_cast<char>(std::tolower(p[i]));
        }
        out += '.';
    }
    if (i + 1 != n) return {};  // the root label must be the last byte
    return out;
}

}  // namespace

std::string fqdnOf(const ldns_rdf* d) {
    if (!d || ldns_rdf_get_type(d) != LDNS_RDF_TYPE_DNAME) return ".";
    if (std::string plain = plainFqdn(d); !plain.empty()) return plain;
    std::string out = takeString(ldns_rdf2str(d));
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (out.empty() || out.back() != '.') out += '.';
    return out;
}

std::string fqdn(std::string name) {
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.empty() || name.back() != '.') name += '.';
    return name;
}

std::string typeName(uint16_t t) {
    return takeString(ldns_rr_type2str(static_cast<ldns_rr_type>(t)), std::to_string(t));
}

namespace {

std::string className(ldns_rr_class c) {
    return takeString(ldns_rr_class2str(c), std::to_string(static_cast<int>(c)));
}

// The rdata field counts we read; anything else is dropped unread.
bool wellFormed(const ldns_rr* rr) {
    size_t fields = ldns_rr_rd_count(rr);
    switch (ldns_rr_get_type(rr)) {
        case LDNS_RR_TYPE_RRSIG:
            return fields == 9 && ldns_rr_rrsig_typecovered(rr);
        // An NSEC3 with an empty type bitmap (every empty non-terminal)
        // has 5 fields in ldns, not 6.
        case LDNS_RR_TYPE_NSEC3:
            return fields == 5 || fields == 6;
        case LDNS_RR_TYPE_NSEC:
            return fields == 2;
        case LDNS_RR_TYPE_DNSKEY:
        case LDNS_RR_TYPE_DS:
        case LDNS_RR_TYPE_TLSA:
            return fields == 4;
        case LDNS_RR_TYPE_MX:
            return fields == 2 && ldns_rdf_get_type(ldns_rr_rdf(rr, 1)) == LDNS_RDF_TYPE_DNAME;
        case LDNS_RR_TYPE_CNAME:
            return fields == 1 && ldns_rdf_get_type(ldns_rr_rdf(rr, 0)) == LDNS_RDF_TYPE_DNAME;
        case LDNS_RR_TYPE_A:
            return fields == 1 && ldns_rdf_get_type(ldns_rr_rdf(rr, 0)) == LDNS_RDF_TYPE_A;
        case LDNS_RR_TYPE_AAAA:
            return fields == 1 && ldns_rdf_get_type(ldns_rr_rdf(rr, 0)) == LDNS_RDF_TYPE_AAAA;
        case LDNS_RR_TYPE_SOA:
            return fields == 7;
        case LDNS_RR_TYPE_TXT:
            for (size_t i = 0; i < fields; ++i) {
                if (ldns_rdf_get_type(ldns_rr_rdf(rr, i)) != LDNS_RDF_TYPE_STR) return false;
            }
            return fields >= 1;
        default:
            return true;
    }
}

std::string describe(const ldns_rr* rr) {
    return fqdnOf(ldns_rr_owner(rr)) + " " + className(ldns_rr_get_class(rr)) + " " +
           typeName(static_cast<uint16_t>(ldns_rr_get_type(rr)));
}

std::string bare(std::string name) {
    if (name.size() > 1 && name.back() == '.') name.pop_back();
    if (name == ".") return "";
    return name;
}

}  // namespace

std::vector<RrSet> rrsetsOf(const ldns_rr_list* section, std::vector<std::string>* strays) {
    std::vector<RrSet> sets;
    std::map<std::pair<std::string, uint16_t>, size_t> index;  // linear, not quadratic
    size_t n = section ? ldns_rr_list_rr_count(section) : 0;
    auto find = [&](const std::string& owner, uint16_t type) -> RrSet* {
        auto [it, added] = index.try_emplace({owner, type}, sets.size());
        if (added) {
            if (sets.size() >= kMaxRrsetsPerSection) {
                index.erase(it);
                return nullptr;
            }
            sets.emplace_back();
            sets.back().owner = owner;
            sets.back().type = type;
        }
        return &sets[it->second];
    };
    for (size_t i = 0; i < n; ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(section, i);
        if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !wellFormed(rr)) {
            if (strays && strays->size() < kMaxRrsetsPerSection) strays->push_back(describe(rr));
            continue;
        }
        std::string owner = fqdnOf(ldns_rr_owner(rr));
        bool sig = ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG;
        auto type = sig ? static_cast<uint16_t>(ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(rr)))
                        : static_cast<uint16_t>(ldns_rr_get_type(rr));
        RrSet* set = find(owner, type);
        if (!set) {
            if (strays && strays->size() < kMaxRrsetsPerSection)
                strays->push_back(describe(rr) + " (over " + std::to_string(kMaxRrsetsPerSection) +
                                  " RRsets)");
            continue;
        }
        ldns_rr_list_push_rr(sig ? set->sigs.get() : set->rrs.get(), ldns_rr_clone(rr));
    }
    return sets;
}

const RrSet* findSet(const std::vector<RrSet>& sets, const std::string& owner, uint16_t type) {
    for (const auto& s : sets) {
        if (s.owner == owner && s.type == type && s.size() > 0) return &s;
    }
    return nullptr;
}

namespace {

std::shared_ptr<Response> failed(std::shared_ptr<Response> r, Outcome o, std::string why) {
    r->outcome = o;
    r->error = std::move(why);
    r->cnames.clear();
    r->data.reset();
    r->canonical = r->qname;
    return r;
}

// Is the packet a response to (r.qname, r.qtype)? Empty: yes; else why not.
std::string questionProblem(const Response& r) {
    const ldns_pkt* p = r.pkt.get();
    if (!ldns_pkt_qr(p)) return "not a response";
    const ldns_rr_list* q = ldns_pkt_question(p);
    if (!q || ldns_rr_list_rr_count(q) != 1) return "bad question count";
    const ldns_rr* qrr = ldns_rr_list_rr(q, 0);
    if (fqdnOf(ldns_rr_owner(qrr)) != r.qname ||
        static_cast<uint16_t>(ldns_rr_get_type(qrr)) != r.qtype ||
        ldns_rr_get_class(qrr) != LDNS_RR_CLASS_IN)
        return "response is for another question";
    return "";
}

// Is it an answer we read (rcode, size)? Empty: yes; else the outcome it
// amounts to, and why.
std::optional<std::pair<Outcome, std::string>> answerProblem(const Response& r) {
    const ldns_pkt* p = r.pkt.get();
    switch (ldns_pkt_get_rcode(p)) {
        case LDNS_RCODE_NOERROR:
        case LDNS_RCODE_NXDOMAIN:
            break;
        case LDNS_RCODE_SERVFAIL:
            return {{Outcome::ServFail, "SERVFAIL"}};
        default:
            return {{Outcome::Error, "rcode " + std::to_string(ldns_pkt_get_rcode(p))}};
    }
    // Bounded work per response, whatever it holds (it is read on the loop).
    for (const ldns_rr_list* section : {ldns_pkt_answer(p), ldns_pkt_authority(p)}) {
        if (section && ldns_rr_list_rr_count(section) > kMaxRecordsPerSection)
            return {{Outcome::Error, "more than " + std::to_string(kMaxRecordsPerSection) +
                                         " records in one section"}};
    }
    return std::nullopt;
}

std::optional<size_t> indexOf(const Response& r, const std::string& owner, uint16_t type) {
    for (size_t i = 0; i < r.answer.size(); ++i) {
        const RrSet& s = r.answer[i];
        if (s.owner == owner && s.type == type) return i;
    }
    return std::nullopt;
}

// The chain: at each name, the qtype RRset ends it; else a CNAME leads on;
// a CNAME beside the qtype data is a contradiction, not a choice. Sets
// r.cnames, r.data, r.canonical and marks what it used; "" or why not.
std::string followChain(Response& r, std::vector<bool>& used) {
    std::set<std::string> seen{r.qname};
    std::string current = r.qname;
    uint16_t qtype = r.qtype;
    for (;;) {
        auto data = indexOf(r, current, qtype);
        auto cname = qtype == kTypeCname ? std::nullopt : indexOf(r, current, kTypeCname);
        if (data && cname)
            return "a CNAME beside the " + typeName(qtype) + " RRset at " + current +
                   ": not a valid answer";
        if (data) {
            if (r.answer[*data].size() == 0)
                return "RRSIG without its " + typeName(qtype) + " RRset at " + current;
            r.data = data;
            used[*data] = true;
            break;
        }
        if (!cname) break;
        const RrSet& c = r.answer[*cname];
        if (c.size() != 1) return std::to_string(c.size()) + " CNAME records at " + current;
        if (r.cnames.size() >= kMaxCnameChain)
            return "CNAME chain longer than " + std::to_string(kMaxCnameChain);
        std::string next = fqdnOf(ldns_rr_rdf(ldns_rr_list_rr(c.rrs.get(), 0), 0));
        if (!seen.insert(next).second) return "CNAME loop at " + next;
        r.cnames.push_back(*cname);
        used[*cname] = true;
        current = next;
    }
    r.canonical = current;
    return "";
}

// A referral (NS and no SOA in authority) is not an answer: the server did
// not recurse. Taking it for NODATA would invent absence. The delegated
// name, or "".
std::string referralTo(const Response& r) {
    bool soa = false;
    std::string delegated;
    for (const auto& s : r.authority) {
        if (s.type == kTypeSoa && s.size() > 0) soa = true;
        if (s.type == kTypeNs && s.size() > 0) delegated = bare(s.owner);
    }
    return soa ? "" : delegated;
}

}  // namespace

std::shared_ptr<Response> readResponse(const uint8_t* wire, size_t len, const std::string& qname,
                                       uint16_t qtype) {
    auto r = std::make_shared<Response>();
    r->qname = fqdn(qname);
    r->qtype = qtype;
    r->canonical = r->qname;
    ldns_pkt* raw = nullptr;
    ldns_status st = ldns_wire2pkt(&raw, wire, len);
    r->pkt.reset(raw);
    if (st != LDNS_STATUS_OK || !raw) return failed(r, Outcome::Error, "malformed response");
    if (auto why = questionProblem(*r); !why.empty()) return failed(r, Outcome::Error, why);
    r->forUs = true;
    const ldns_pkt* p = r->pkt.get();
    r->ad = ldns_pkt_ad(p);
    if (auto problem = answerProblem(*r)) return failed(r, problem->first, problem->second);
    std::vector<std::string> strays;
    r->answer = rrsetsOf(ldns_pkt_answer(p), &strays);
    r->authority = rrsetsOf(ldns_pkt_authority(p), nullptr);
    std::vector<bool> used(r->answer.size(), false);
    if (auto why = followChain(*r, used); !why.empty()) return failed(r, Outcome::Error, why);
    for (size_t i = 0; i < r->answer.size(); ++i) {
        if (!used[i])
            strays.push_back(r->answer[i].owner + " IN " + typeName(r->answer[i].type) +
                             (r->answer[i].size() == 0 ? " (RRSIG only)" : ""));
    }
    r->strays = std::move(strays);
    if (r->data) {
        r->outcome = Outcome::Data;
    } else if (ldns_pkt_get_rcode(p) == LDNS_RCODE_NXDOMAIN) {
        r->outcome = Outcome::NxDomain;
    } else {
        r->outcome = Outcome::NoData;
        if (auto delegated = referralTo(*r); !delegated.empty())
            return failed(
                r, Outcome::Error,
                "a referral to " + delegated + ", not an answer (the server does not recurse)");
    }
    return r;
}

namespace {

// One record of the data RRset into the answer.
void addRecord(Answer& a, uint16_t qtype, const ldns_rr* rr) {
    switch (qtype) {
        case kTypeMx: {
            MxRecord m;
            m.preference = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
            m.host = bare(fqdnOf(ldns_rr_rdf(rr, 1)));
            a.mx.push_back(std::move(m));
            break;
        }
        case kTypeA:
        case kTypeAaaa: {
            CBuffer text(ldns_rdf2str(ldns_rr_rdf(rr, 0)));
            if (text) a.addresses.emplace_back(text.get());
            break;
        }
        case kTypeTxt: {
            // Each character-string is a length octet and that many octets.
            std::string text;
            for (size_t i = 0; i < ldns_rr_rd_count(rr); ++i) {
                const ldns_rdf* s = ldns_rr_rdf(rr, i);
                const uint8_t* d = ldns_rdf_data(s);
                size_t n = ldns_rdf_size(s);
                if (n == 0 || d[0] + 1u != n) return;  // not one character-string: dropped
                text.append(reinterpret_cast<const char*>(d) + 1, n - 1);
            }
            if (text.size() <= kMaxTxtBytes) a.txt.push_back(std::move(text));
            break;
        }
        case kTypeTlsa: {
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

// A record's TTL is not signed; its RRSIG's original TTL is.
uint32_t setTtl(const RrSet& s, uint32_t ttl) {
    for (size_t i = 0; i < s.size(); ++i)
        ttl = std::min(ttl, ldns_rr_ttl(ldns_rr_list_rr(s.rrs.get(), i)));
    for (size_t i = 0; i < ldns_rr_list_rr_count(s.sigs.get()); ++i)
        ttl = std::min(
            ttl, ldns_rdf2native_int32(ldns_rr_rrsig_origttl(ldns_rr_list_rr(s.sigs.get(), i))));
    return ttl;
}

// Negative TTL: the SOA in the authority section (RFC 2308).
uint32_t negativeTtl(const Response& r, uint32_t ttl) {
    for (const auto& s : r.authority) {
        if (s.type != kTypeSoa) continue;
        for (size_t i = 0; i < s.size(); ++i) {
            const ldns_rr* rr = ldns_rr_list_rr(s.rrs.get(), i);
            ttl = std::min({ttl, ldns_rr_ttl(rr), ldns_rdf2native_int32(ldns_rr_rdf(rr, 6))});
        }
    }
    return ttl;
}

}  // namespace

Answer answerFrom(const Response& r, Security security) {
    Answer a;
    a.qname = bare(r.qname);
    a.qtype = r.qtype;
    a.canonicalName = a.qname;
    a.outcome = r.outcome;
    a.security = security;
    if (r.outcome != Outcome::Data && r.outcome != Outcome::NxDomain &&
        r.outcome != Outcome::NoData) {
        a.security = Security::Indeterminate;
        a.detail = r.error;
        return a;
    }
    uint32_t minTtl = UINT32_MAX;
    std::string current = a.qname;
    for (size_t idx : r.cnames) {
        const RrSet& c = r.answer[idx];
        minTtl = setTtl(c, minTtl);
        a.cnameChain.push_back(current);
        current = bare(fqdnOf(ldns_rr_rdf(ldns_rr_list_rr(c.rrs.get(), 0), 0)));
    }
    a.canonicalName = current;
    if (r.data) {
        const RrSet& s = r.answer[*r.data];
        minTtl = setTtl(s, minTtl);
        for (size_t i = 0; i < s.size(); ++i)
            addRecord(a, r.qtype, ldns_rr_list_rr(s.rrs.get(), i));
    } else {
        minTtl = negativeTtl(r, minTtl);
    }
    a.ttl = minTtl == UINT32_MAX ? 0 : minTtl;
    if (r.qtype == kTypeMx) {
        std::stable_sort(a.mx.begin(), a.mx.end(),
                         [](const auto& x, const auto& y) { return x.preference < y.preference; });
    }
    // Bounded whatever the packet held (the whole RRset was checked).
    if (a.mx.size() > kMaxRecords) a.mx.resize(kMaxRecords);
    if (a.addresses.size() > kMaxRecords) a.addresses.resize(kMaxRecords);
    if (a.tlsa.size() > kMaxRecords) a.tlsa.resize(kMaxRecords);
    if (a.txt.size() > kMaxRecords) a.txt.resize(kMaxRecords);
    return a;
}

namespace {
Answer withheldAnswer(std::string qname, uint16_t qtype, Security security, std::string why) {
    Answer out;
    out.canonicalName = qname;
    out.qname = std::move(qname);
    out.qtype = qtype;
    out.outcome = Outcome::ServFail;
    out.security = security;
    out.detail = std::move(why);
    return out;
}
}  // namespace

Answer withheld(const Response& r, Security security, std::string why) {
    return withheldAnswer(bare(r.qname), r.qtype, security, std::move(why));
}

Answer withheld(const Answer& a, Security security, std::string why) {
    return withheldAnswer(a.qname, a.qtype, security, std::move(why));
}

std::string straysText(const Response& r) {
    std::string out;
    for (size_t i = 0; i < r.strays.size() && i < 3; ++i) out += (i ? ", " : "") + r.strays[i];
    if (r.strays.size() > 3) out += ", ...";
    return "records that no proof covers beside the answer (" + out + ")";
}

}  // namespace danerelay::dns
