// The coordinator: what each RRset of the answer needs (key_chain.h for the
// zone that signed it, denial.h for what is absent), and the verdict.
#include "dns/validator.h"

#include "dns/denial.h"
#include "dns/dnssec_util.h"
#include "dns/key_chain.h"
#include "dns/response.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

namespace danerelay::dns {

const char* toString(BogusReason r) {
    switch (r) {
        case BogusReason::None:
            return "none";
        case BogusReason::NotAnAnswer:
            return "not-an-answer";
        case BogusReason::NoRrsig:
            return "no-rrsig";
        case BogusReason::NoValidRrsig:
            return "no-valid-rrsig";
        case BogusReason::SignatureExpired:
            return "signature-expired";
        case BogusReason::SignatureNotYetValid:
            return "signature-not-yet-valid";
        case BogusReason::UnsupportedAlgorithm:
            return "unsupported-algorithm";
        case BogusReason::NoValidDnskey:
            return "no-valid-dnskey";
        case BogusReason::DsMismatch:
            return "ds-mismatch";
        case BogusReason::WrongSigner:
            return "wrong-signer";
        case BogusReason::SignerNotAZone:
            return "signer-not-a-zone";
        case BogusReason::NoDenial:
            return "no-denial";
        case BogusReason::InvalidDenial:
            return "invalid-denial";
        case BogusReason::UnexpectedRecords:
            return "unexpected-records";
        case BogusReason::WorkLimit:
            return "work-limit";
    }
    return "?";
}

struct Validator::Impl {
    Impl(Fetch fetch, ValidatorLimits limits) : chain(std::move(fetch), limits) {}
    KeyChain chain;
};

namespace {

using Link = KeyChain::Link;
using Walk = KeyChain::Walk;

Security toSecurity(Link::Kind k) {
    switch (k) {
        case Link::SecureZone:
        case Link::NotCut:
            return Security::Secure;
        case Link::Insecure:
            return Security::Insecure;
        case Link::Indeterminate:
            return Security::Indeterminate;
        default:
            return Security::Bogus;
    }
}

// A walk that did not end in a secure zone, as a verdict.
Verdict verdictOf(const Walk& w) {
    Security s = toSecurity(w.kind);
    return {s, s == Security::Bogus ? w.bogus : BogusReason::None, w.reason};
}

Verdict bogus(BogusReason why, std::string text) {
    return {Security::Bogus, why, std::move(text)};
}

// One validation of one response: the RRsets readResponse() resolved the
// question to, each checked in turn; what is Insecure so far is kept.
class Check {
  public:
    Check(KeyChain& chain, const Response& r, ValidationCtx& ctx)
        : chain_(chain), limits_(chain.limits()), r_(r), ctx_(ctx) {}
    Verdict run();

  private:
    std::optional<Verdict> rrset(const RrSet& set);
    std::optional<Verdict> unsignedRrset(const RrSet& set, const std::string& what);
    std::optional<Verdict> wildcard(const RrSet& set, const ldns_rr* good, const std::string& zone,
                                    const ZoneKeys& keys, const std::string& what);
    Verdict denial();
    std::string denialSigner() const;
    Verdict finish(Verdict v) const;
    void insecure(std::string why) {
        anyInsecure_ = true;
        insecureWhy_ = std::move(why);
    }

    KeyChain& chain_;
    const ValidatorLimits& limits_;
    const Response& r_;
    ValidationCtx& ctx_;
    bool anyInsecure_ = false;
    std::string insecureWhy_, signer_;
};

// Unsigned: fine only below a proven-insecure delegation.
std::optional<Verdict> Check::unsignedRrset(const RrSet& set, const std::string& what) {
    Walk w = chain_.walk(set.owner, false, ctx_);
    if (w.kind == Link::SecureZone)
        return bogus(BogusReason::NoRrsig, what + ": no RRSIG in the signed zone " + w.zone);
    if (w.kind != Link::Insecure) return verdictOf(w);
    insecure(w.reason);
    return std::nullopt;
}

// Checks one RRset of the chain; returns a verdict if it decides.
std::optional<Verdict> Check::rrset(const RrSet& set) {
    std::string what = set.owner + " " + typeName(set.type);
    if (ldns_rr_list_rr_count(set.sigs.get()) == 0) return unsignedRrset(set, what);
    const ldns_rr* sig0 = ldns_rr_list_rr(set.sigs.get(), 0);
    std::string zone = nameOf(ldns_rr_rrsig_signame(sig0));
    const std::string& anchor = chain_.anchorZone();
    if (!isAtOrBelow(set.owner, zone))
        return bogus(BogusReason::WrongSigner, what + ": signed by " + zone + ", not an ancestor");
    // Insecure is decided by where the owner is, never by a signer the
    // packet names: a signer above the anchor for a name below it is a
    // forgery, not a way out of the anchor's zone.
    if (!isAtOrBelow(zone, anchor) && isAtOrBelow(set.owner, anchor))
        return bogus(BogusReason::WrongSigner,
                     what + ": signed by " + zone + ", above the trust anchor " + anchor);
    Walk w = chain_.walk(zone, true, ctx_);
    if (w.kind == Link::Insecure) {
        insecure(w.reason);
        return std::nullopt;
    }
    if (w.kind != Link::SecureZone) return verdictOf(w);
    const ldns_rr* good = nullptr;
    if (auto why = verifyRrset(set, zone, *w.keys, limits_, ctx_.now, &good); !why.empty())
        return bogus(why.kind, what + ": " + why.text);
    signer_ = zone;
    return wildcard(set, good, zone, *w.keys, what);
}

// A wildcard expansion (by the labels of the RRSIG that verified, not of
// any other one beside it): the name itself must be proven absent, with no
// closer match (RFC 4035 5.3.4, RFC 5155 8.8).
std::optional<Verdict> Check::wildcard(const RrSet& set, const ldns_rr* good,
                                       const std::string& zone, const ZoneKeys& keys,
                                       const std::string& what) {
    auto ownerLabels = labelsOf(set.owner);
    size_t sigLabels = ldns_rdf2native_int8(ldns_rr_rrsig_labels(good));
    size_t literal = ownerLabels.size() - (!ownerLabels.empty() && ownerLabels[0] == "*");
    if (sigLabels >= literal) return std::nullopt;
    WildcardProof p =
        proveWildcardExpansion(r_.authority, set.owner, sigLabels, zone, keys, limits_, ctx_.now);
    if (!p.ok)
        return bogus(BogusReason::InvalidDenial,
                     what + ": wildcard answer without proof that the name does not exist");
    if (p.insecure) insecure(p.insecureWhy);
    return std::nullopt;
}

Verdict Check::finish(Verdict v) const {
    if (v.security == Security::Secure && !r_.strays.empty())
        return bogus(BogusReason::UnexpectedRecords, straysText(r_));
    return v;
}

// The signer of the authority section's proof (its first signed SOA, NSEC
// or NSEC3), or "" if none is signed.
std::string Check::denialSigner() const {
    for (const auto& s : r_.authority) {
        if (ldns_rr_list_rr_count(s.sigs.get()) > 0 &&
            (s.type == LDNS_RR_TYPE_SOA || s.type == LDNS_RR_TYPE_NSEC ||
             s.type == LDNS_RR_TYPE_NSEC3))
            return nameOf(ldns_rr_rrsig_signame(ldns_rr_list_rr(s.sigs.get(), 0)));
    }
    return "";
}

// No data: NXDOMAIN or NODATA for the chain's end, proven by the zone that
// holds it (the signer of the authority section's proof).
Verdict Check::denial() {
    const std::string& current = r_.canonical;
    const std::string& anchor = chain_.anchorZone();
    std::string qtype = typeName(r_.qtype);
    std::string zone = denialSigner();
    if (zone.empty()) {
        Walk w = chain_.walk(current, false, ctx_);
        if (w.kind == Link::SecureZone)
            return bogus(BogusReason::NoDenial, "unsigned denial of " + current + " " + qtype +
                                                    " in the signed zone " + w.zone);
        return verdictOf(w);
    }
    if (!isAtOrBelow(current, zone))
        return bogus(BogusReason::WrongSigner,
                     "denial of " + current + " signed by " + zone + ", not an ancestor");
    if (!isAtOrBelow(zone, anchor) && isAtOrBelow(current, anchor))
        return bogus(BogusReason::WrongSigner, "denial of " + current + " signed by " + zone +
                                                   ", above the trust anchor " + anchor);
    Walk w = chain_.walk(zone, true, ctx_);
    if (w.kind == Link::Insecure) return {Security::Insecure, BogusReason::None, w.reason};
    if (w.kind != Link::SecureZone) return verdictOf(w);
    Denial d = proveDenial(r_.authority, r_.outcome == Outcome::NxDomain, current, r_.qtype, zone,
                           *w.keys, limits_, ctx_.now);
    if (!d.ok) return bogus(d.kind, "denial of " + current + " " + qtype + ": " + d.why);
    if (d.insecure || anyInsecure_)
        return {Security::Insecure, BogusReason::None, d.insecure ? d.why : insecureWhy_};
    return finish({Security::Secure, BogusReason::None, "denial signed by " + zone});
}

// Exactly the RRsets the answer is built from (response.h): the CNAME
// chain, then the data or the denial at its end.
Verdict Check::run() {
    for (size_t idx : r_.cnames)
        if (auto v = rrset(r_.answer[idx])) return *v;
    if (!r_.data) return denial();
    if (auto v = rrset(r_.answer[*r_.data])) return *v;
    if (anyInsecure_) return {Security::Insecure, BogusReason::None, insecureWhy_};
    return finish({Security::Secure, BogusReason::None, "signed by " + signer_});
}

// The lowest TTL the proof of a Secure answer allows: the records', their
// signatures' expiry (RFC 4035 5.3.3) and original TTL.
uint32_t proofTtl(const RrSet& s, uint32_t ttl, int64_t now) {
    for (size_t i = 0; i < s.size(); ++i)
        ttl = std::min(ttl, ldns_rr_ttl(ldns_rr_list_rr(s.rrs.get(), i)));
    for (size_t i = 0; i < ldns_rr_list_rr_count(s.sigs.get()); ++i) {
        const ldns_rr* sig = ldns_rr_list_rr(s.sigs.get(), i);
        int64_t left =
            static_cast<int64_t>(ldns_rdf2native_int32(ldns_rr_rrsig_expiration(sig))) - now;
        ttl = std::min<uint32_t>(ttl,
                                 static_cast<uint32_t>(std::clamp<int64_t>(left, 0, UINT32_MAX)));
        ttl = std::min(ttl, ldns_rdf2native_int32(ldns_rr_rrsig_origttl(sig)));
    }
    return ttl;
}

// One anchor record, checked: a DS or DNSKEY of the one anchor zone.
Status addAnchorLine(KeyChain& chain, std::string& zone, const std::string& line,
                     const std::string& where) {
    ldns_rr* raw = nullptr;
    ldns_status st = ldns_rr_new_frm_str(&raw, line.c_str(), 0, nullptr, nullptr);
    Rr rr(raw);
    if (st != LDNS_STATUS_OK || !rr) return Error::permanent(where + ": " + statusText(st));
    std::string owner = nameOf(ldns_rr_owner(rr.get()));
    if (zone.empty()) zone = owner;
    if (owner != zone)
        return Error::permanent(where + ": anchors for two zones (" + zone + " and " + owner +
                                "); one zone per file");
    if (ldns_rr_get_type(rr.get()) != LDNS_RR_TYPE_DS &&
        ldns_rr_get_type(rr.get()) != LDNS_RR_TYPE_DNSKEY)
        return Error::permanent(where + ": a trust anchor is a DS or DNSKEY record");
    chain.addAnchor(std::move(rr));
    return okStatus();
}

}  // namespace

// ---------------------------------------------------------------- public

Validator::~Validator() = default;

Result<std::shared_ptr<Validator>> Validator::create(const std::string& anchorText,
                                                     const std::string& where, Fetch fetch,
                                                     ValidatorLimits limits) {
    std::shared_ptr<Validator> v(new Validator());
    v->impl_ = std::make_unique<Impl>(std::move(fetch), limits);
    std::istringstream in(anchorText);
    std::string line;
    int lineNo = 0;
    while (std::getline(in, line)) {
        ++lineNo;
        auto semi = line.find(';');
        if (semi != std::string::npos) line.erase(semi);
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto added = addAnchorLine(v->impl_->chain, v->anchorZone_, line,
                                   where + ":" + std::to_string(lineNo));
        if (!added) return added.error();
    }
    if (v->anchorZone_.empty())
        return Error::permanent(where + ": no DS or DNSKEY record: not a trust anchor");
    v->impl_->chain.setAnchorZone(v->anchorZone_);
    return v;
}

Result<std::shared_ptr<Validator>> Validator::fromFile(const std::string& anchorFile, Fetch fetch,
                                                       ValidatorLimits limits) {
    std::ifstream f(anchorFile);
    if (!f) return Error::permanent("trust anchor " + anchorFile + ": cannot read it");
    std::stringstream ss;
    ss << f.rdbuf();
    return create(ss.str(), anchorFile, std::move(fetch), limits);
}

Verdict Validator::validate(const Response& r, int64_t now) {
    if (r.outcome != Outcome::Data && r.outcome != Outcome::NxDomain &&
        r.outcome != Outcome::NoData)
        return bogus(BogusReason::NotAnAnswer, r.error.empty() ? "not an answer" : r.error);
    ValidationCtx ctx{now, std::chrono::steady_clock::now() +
                               std::chrono::milliseconds(impl_->chain.limits().maxValidationMs)};
    return Check(impl_->chain, r, ctx).run();
}

Verdict Validator::validate(const uint8_t* wire, size_t len, const std::string& qname,
                            uint16_t qtype, int64_t now) {
    return validate(*readResponse(wire, len, qname, qtype), now);
}

Answer Validator::answer(const Response& r, int64_t now, Verdict* verdict) {
    Verdict v = validate(r, now);
    if (verdict) *verdict = v;
    if (v.security == Security::Bogus || v.security == Security::Indeterminate)
        return withheld(r, v.security, "DNSSEC: " + v.reason);
    Answer a = answerFrom(r, v.security);
    if (v.security != Security::Secure) return a;
    // Cached no longer than the proof holds: for a denial the TTLs of the
    // NSEC/NSEC3 records that prove it, not of an SOA the proof does not cover.
    for (size_t idx : r.cnames) a.ttl = proofTtl(r.answer[idx], a.ttl, now);
    if (r.data) {
        a.ttl = proofTtl(r.answer[*r.data], a.ttl, now);
        return a;
    }
    bool proof = false;
    for (const auto& s : r.authority) {
        if (s.type != LDNS_RR_TYPE_NSEC && s.type != LDNS_RR_TYPE_NSEC3) continue;
        a.ttl = proofTtl(s, a.ttl, now);
        proof = true;
    }
    if (!proof) a.ttl = std::min<uint32_t>(a.ttl, impl_->chain.limits().failureCacheTtl);
    return a;
}

}  // namespace danerelay::dns
