#include "dns/denial.h"

#include <algorithm>

namespace danerelay::dns {

namespace {

Denial fail(Denial d, BogusReason kind, std::string why) {
    d.kind = kind;
    d.why = std::move(why);
    return d;
}

// Does the type bitmap of the NSEC or NSEC3 for `what` prove that it has
// no `type`? Empty: yes; else why not.
std::string absentFrom(const ldns_rdf* bm, uint16_t type, const std::string& record,
                       const std::string& what) {
    if (bitmapHas(bm, type) || bitmapHas(bm, LDNS_RR_TYPE_CNAME))
        return "the " + record + " for " + what + " lists " + typeName(type) + " (or a CNAME)";
    // The parent side of a delegation says nothing about the child's
    // records except DS.
    if (type != LDNS_RR_TYPE_DS && bitmapHas(bm, LDNS_RR_TYPE_NS) &&
        !bitmapHas(bm, LDNS_RR_TYPE_SOA))
        return "the " + record + " for " + what + " is the parent side of a delegation";
    return "";
}

// The name exists: what its bitmap says for the walk down the chain.
void noteExact(Denial& d, const ldns_rdf* bm) {
    d.exact = true;
    d.hasNs = bitmapHas(bm, LDNS_RR_TYPE_NS);
    d.hasSoa = bitmapHas(bm, LDNS_RR_TYPE_SOA);
}

// ------------------------------------------------------------------ NSEC

// The NSEC at name (exact) and the one whose span covers it (cover).
struct NsecFind {
    const ldns_rr* exact = nullptr;
    const ldns_rr* cover = nullptr;
    std::string cut;  // why a covering NSEC may not be used
};

NsecFind findNsec(const ldns_rr_list* nsecs, const std::string& name) {
    Rdf qname = dname(name);
    NsecFind f;
    for (size_t i = 0; i < ldns_rr_list_rr_count(nsecs); ++i) {
        const ldns_rr* r = ldns_rr_list_rr(nsecs, i);
        if (ldns_rr_rd_count(r) < 2) continue;
        if (nameOf(ldns_rr_owner(r)) == name) {
            f.exact = r;
        } else if (strictlyCovers(r, qname.get())) {
            if (cutAbove(r, name)) {
                f.cut = "the NSEC at " + nameOf(ldns_rr_owner(r)) +
                        " is a zone cut or DNAME above " + name;
                return f;
            }
            f.cover = r;
        }
    }
    return f;
}

// NODATA with NSEC: exact match, empty non-terminal, or wildcard NODATA.
Denial proveNsecNodata(Denial d, const ldns_rr_list* nsecs, const NsecFind& f,
                       const std::string& name, uint16_t type) {
    if (f.exact) {
        d.why = absentFrom(ldns_rr_rdf(f.exact, 1), type, "NSEC", name);
        if (!d.why.empty()) return d;
        noteExact(d, ldns_rr_rdf(f.exact, 1));
        d.ok = true;
        return d;
    }
    // Empty non-terminal: the NSEC before it points below it.
    if (f.cover && isAtOrBelow(nameOf(ldns_rr_rdf(f.cover, 0)), name)) {
        d.ok = true;
        return d;
    }
    // Wildcard NODATA: *.closest-encloser exists without the type.
    if (f.cover) {
        std::string wc = "*." + closestEncloser(name, f.cover);
        for (size_t i = 0; i < ldns_rr_list_rr_count(nsecs); ++i) {
            const ldns_rr* r = ldns_rr_list_rr(nsecs, i);
            if (ldns_rr_rd_count(r) >= 2 && nameOf(ldns_rr_owner(r)) == wc) {
                d.why = absentFrom(ldns_rr_rdf(r, 1), type, "NSEC", wc);
                d.ok = d.why.empty();
                return d;
            }
        }
    }
    return fail(d, BogusReason::InvalidDenial,
                "no NSEC proves that " + name + " has no " + typeName(type));
}

// NXDOMAIN with NSEC: the name covered, not an empty non-terminal, and the
// wildcard at its closest encloser denied.
Denial proveNsecNxdomain(Denial d, const ldns_rr_list* nsecs, const NsecFind& f,
                         const std::string& name) {
    if (f.exact) return fail(d, d.kind, "NXDOMAIN, but an NSEC shows that " + name + " exists");
    if (!f.cover) return fail(d, d.kind, "no NSEC covers " + name);
    if (isAtOrBelow(nameOf(ldns_rr_rdf(f.cover, 0)), name))
        return fail(d, d.kind, "NXDOMAIN, but " + name + " is an empty non-terminal");
    std::string wc = "*." + closestEncloser(name, f.cover);
    if (wc == "*..") wc = "*.";
    Rdf wcName = dname(wc);
    for (size_t i = 0; i < ldns_rr_list_rr_count(nsecs); ++i) {
        const ldns_rr* r = ldns_rr_list_rr(nsecs, i);
        if (ldns_rr_rd_count(r) >= 2 && strictlyCovers(r, wcName.get()) &&
            nameOf(ldns_rr_owner(r)) != wc && !cutAbove(r, wc)) {
            d.ok = true;
            return d;
        }
    }
    return fail(d, d.kind, "no NSEC denies the wildcard " + wc);
}

Denial proveNsec(Denial d, const ldns_rr_list* nsecs, const std::string& name, uint16_t type) {
    NsecFind f = findNsec(nsecs, name);
    if (!f.cut.empty()) return fail(d, BogusReason::InvalidDenial, f.cut);
    if (!d.nxdomain) return proveNsecNodata(d, nsecs, f, name, type);
    return proveNsecNxdomain(d, nsecs, f, name);
}

// ----------------------------------------------------------------- NSEC3
//
// Checked here rather than with ldns's ldns_dnssec_verify_denial_nsec3_match
// (which leaks the hashes it makes). Every record was signature-checked
// before.

struct Nsec3Set {
    std::vector<const ldns_rr*> rrs;
    // The record whose hashed owner is hash(name), if any.
    const ldns_rr* match(const std::string& name) const {
        Rdf n = dname(name);
        for (const ldns_rr* r : rrs) {
            Rdf h(ldns_nsec3_hash_name_frm_nsec3(r, n.get()));
            Rdf first(ldns_dname_label(ldns_rr_owner(r), 0));
            if (h && first && ldns_dname_compare(h.get(), first.get()) == 0) return r;
        }
        return nullptr;
    }
    // The record whose span strictly covers hash(name), if any.
    const ldns_rr* cover(const std::string& name) const {
        Rdf n = dname(name);
        for (const ldns_rr* r : rrs) {
            Rdf h(ldns_nsec3_hash_name_frm_nsec3(r, n.get()));
            Rdf z(ldns_dname_left_chop(ldns_rr_owner(r)));
            if (!h || !z || ldns_dname_cat(h.get(), z.get()) != LDNS_STATUS_OK) continue;
            ldns_dname2canonical(h.get());
            if (strictlyCovers(r, h.get())) return r;
        }
        return nullptr;
    }
};

// The NSEC3 records of the proof; false (and d says why) if one makes the
// proof impossible or insecure (iterations over the cap, RFC 9276).
bool collectNsec3(Denial& d, const ldns_rr_list* nsecs, const ValidatorLimits& limits,
                  Nsec3Set& set) {
    for (size_t i = 0; i < ldns_rr_list_rr_count(nsecs); ++i) {
        const ldns_rr* r = ldns_rr_list_rr(nsecs, i);
        if (ldns_rr_get_type(r) != LDNS_RR_TYPE_NSEC3) continue;
        if (ldns_nsec3_iterations(r) > limits.maxNsec3Iterations) {
            d.ok = true;
            d.insecure = true;
            d.why = "NSEC3 with " + std::to_string(ldns_nsec3_iterations(r)) +
                    " iterations (over " + std::to_string(limits.maxNsec3Iterations) +
                    "): treated as insecure (RFC 9276)";
            return false;
        }
        if (ldns_nsec3_algorithm(r) != 1) {
            d = fail(
                d, BogusReason::UnsupportedAlgorithm,
                "NSEC3 hash algorithm " + std::to_string(ldns_nsec3_algorithm(r)) + " unknown");
            return false;
        }
        set.rrs.push_back(r);
    }
    return true;
}

// The closest encloser proof (RFC 5155 8.3): the encloser matched, the next
// closer name covered.
struct Encloser {
    std::string encloser, nextCloser;
    const ldns_rr* nextCover = nullptr;
};

bool findEncloser(Denial& d, const Nsec3Set& set, const std::string& name, const std::string& zone,
                  Encloser& e) {
    auto labels = labelsOf(name);
    size_t zoneLabels = labelsOf(zone).size();
    for (size_t n = labels.size(); n-- > zoneLabels;) {
        std::string candidate = joinLast(labels, n);
        const ldns_rr* m = set.match(candidate);
        if (!m) continue;
        const ldns_rdf* bm = ldns_nsec3_bitmap(m);
        if ((bitmapHas(bm, LDNS_RR_TYPE_NS) && !bitmapHas(bm, LDNS_RR_TYPE_SOA)) ||
            bitmapHas(bm, LDNS_RR_TYPE_DNAME)) {
            d.why = "the closest encloser " + candidate + " is a delegation or DNAME";
            return false;
        }
        e.encloser = candidate;
        e.nextCloser = joinLast(labels, n + 1);
        e.nextCover = set.cover(e.nextCloser);
        break;
    }
    if (e.encloser.empty() || !e.nextCover) {
        d.why =
            "no NSEC3 closest-encloser proof for " + name +
            (e.encloser.empty() ? ""
                                : " (the next closer name " + e.nextCloser + " is not covered)");
        return false;
    }
    return true;
}

// After the closest encloser proof: NXDOMAIN needs the wildcard covered;
// NODATA without a match a wildcard that lacks the type (8.7), or a DS in
// an opt-out span (8.6).
Denial proveNsec3Rest(Denial d, const Nsec3Set& set, const Encloser& e, const std::string& name,
                      uint16_t type, const std::string& zone) {
    std::string wildcard = "*." + (e.encloser == "." ? std::string() : e.encloser);
    if (d.nxdomain) {
        if (!set.cover(wildcard))
            return fail(d, d.kind, "no NSEC3 denies the wildcard " + wildcard);
        d.ok = true;
        // An opt-out span may hide an unsigned delegation at the next
        // closer name: the name's absence is not proven (RFC 5155 9.2).
        if (ldns_nsec3_optout(e.nextCover)) {
            d.insecure = true;
            d.why = e.nextCloser + " is in an NSEC3 opt-out span of " + zone;
        }
        return d;
    }
    if (const ldns_rr* w = set.match(wildcard)) {
        d.why = absentFrom(ldns_nsec3_bitmap(w), type, "NSEC3", wildcard);
        d.ok = d.why.empty();
        return d;
    }
    if (type == LDNS_RR_TYPE_DS && ldns_nsec3_optout(e.nextCover)) {
        d.ok = true;
        d.insecure = true;
        d.why = name + " is in an NSEC3 opt-out span of " + zone;
        return d;
    }
    return fail(d, d.kind, "no NSEC3 proves that " + name + " has no " + typeName(type));
}

Denial proveNsec3(Denial d, const ldns_rr_list* nsecs, const std::string& name, uint16_t type,
                  const std::string& zone, const ValidatorLimits& limits) {
    Nsec3Set set;
    if (!collectNsec3(d, nsecs, limits, set)) return d;
    // NODATA, the name itself matched (RFC 5155 8.5, 8.6 first part).
    if (!d.nxdomain) {
        if (const ldns_rr* m = set.match(name)) {
            d.why = absentFrom(ldns_nsec3_bitmap(m), type, "NSEC3", name);
            if (!d.why.empty()) return d;
            noteExact(d, ldns_nsec3_bitmap(m));
            d.ok = true;
            return d;
        }
    } else if (set.match(name)) {
        return fail(d, d.kind, "NXDOMAIN, but an NSEC3 shows that " + name + " exists");
    }
    Encloser e;
    if (!findEncloser(d, set, name, zone, e)) return d;
    return proveNsec3Rest(d, set, e, name, type, zone);
}

// Does one NSEC3 prove that the next closer name of a wildcard expansion
// does not exist? (Then: an opt-out span over it makes the answer insecure.)
bool nsec3DeniesNextCloser(const ldns_rr* rr, const std::string& nextCloser,
                           const ValidatorLimits& limits) {
    if (ldns_nsec3_algorithm(rr) != 1 || ldns_nsec3_iterations(rr) > limits.maxNsec3Iterations)
        return false;
    Rdf target = dname(nextCloser);
    Rdf h(ldns_nsec3_hash_name_frm_nsec3(rr, target.get()));
    Rdf z(ldns_dname_left_chop(ldns_rr_owner(rr)));
    if (!h || !z || ldns_dname_cat(h.get(), z.get()) != LDNS_STATUS_OK) return false;
    return strictlyCovers(rr, h.get());
}

}  // namespace

bool cutAbove(const ldns_rr* nsec, const std::string& name) {
    std::string owner = nameOf(ldns_rr_owner(nsec));
    if (owner == name || !isAtOrBelow(name, owner)) return false;
    const ldns_rdf* bm = ldns_rr_rdf(nsec, 1);
    return (bitmapHas(bm, LDNS_RR_TYPE_NS) && !bitmapHas(bm, LDNS_RR_TYPE_SOA)) ||
           bitmapHas(bm, LDNS_RR_TYPE_DNAME);
}

// The longest ancestor of name that is an ancestor of the NSEC's owner or
// next name.
std::string closestEncloser(const std::string& name, const ldns_rr* cover) {
    auto q = labelsOf(name);
    size_t best = 0;
    for (const std::string& other : {nameOf(ldns_rr_owner(cover)), nameOf(ldns_rr_rdf(cover, 0))}) {
        auto o = labelsOf(other);
        size_t k = 0;
        while (k < q.size() && k < o.size() && q[q.size() - 1 - k] == o[o.size() - 1 - k]) ++k;
        best = std::max(best, k);
    }
    best = std::min(best, q.size() - (q.empty() ? 0 : 1));  // strictly above name
    return joinLast(q, best);
}

Denial proveDenial(const std::vector<RrSet>& sets, bool nxdomain, const std::string& name,
                   uint16_t type, const std::string& zone, const ZoneKeys& keys,
                   const ValidatorLimits& limits, int64_t now) {
    Denial d;
    d.ttl = limits.maxRecordTtl;
    List nsecs = newList();
    bool nsec3 = false, nsec = false;
    unsigned proofSets = 0;
    for (const auto& s : sets) {
        if (s.type != LDNS_RR_TYPE_NSEC && s.type != LDNS_RR_TYPE_NSEC3) continue;
        if (++proofSets > limits.maxDenialRecords)
            return fail(d, BogusReason::WorkLimit,
                        "more than " + std::to_string(limits.maxDenialRecords) +
                            " NSEC/NSEC3 records in one denial");
        // Every record of the proof must be signed by the zone, and verify.
        if (auto why = verifyRrset(s, zone, keys, limits, now); !why.empty())
            return fail(d, why.kind, typeName(s.type) + " at " + s.owner + ": " + why.text);
        (s.type == LDNS_RR_TYPE_NSEC ? nsec : nsec3) = true;
        for (size_t i = 0; i < ldns_rr_list_rr_count(s.rrs.get()); ++i)
            ldns_rr_list_push_rr(nsecs.get(), ldns_rr_clone(ldns_rr_list_rr(s.rrs.get(), i)));
        d.ttl = std::min(d.ttl, minTtl(s.rrs.get(), limits.maxRecordTtl));
    }
    if (!nsec && !nsec3) return fail(d, BogusReason::NoDenial, "no signed NSEC or NSEC3 records");
    d.nxdomain = nxdomain;
    if (nsec3) return proveNsec3(d, nsecs.get(), name, type, zone, limits);
    return proveNsec(d, nsecs.get(), name, type);
}

WildcardProof proveWildcardExpansion(const std::vector<RrSet>& authority, const std::string& owner,
                                     size_t sigLabels, const std::string& zone,
                                     const ZoneKeys& keys, const ValidatorLimits& limits,
                                     int64_t now) {
    auto ownerLabels = labelsOf(owner);
    std::string encloser = joinLast(ownerLabels, sigLabels);
    std::string nextCloser = joinLast(ownerLabels, sigLabels + 1u);
    Rdf ownerName = dname(owner);
    WildcardProof p;
    unsigned looked = 0;
    for (const auto& s : authority) {
        if (s.type != LDNS_RR_TYPE_NSEC && s.type != LDNS_RR_TYPE_NSEC3) continue;
        if (++looked > limits.maxDenialRecords) break;
        if (!verifyRrset(s, zone, keys, limits, now).empty()) continue;
        for (size_t i = 0; i < ldns_rr_list_rr_count(s.rrs.get()); ++i) {
            const ldns_rr* rr = ldns_rr_list_rr(s.rrs.get(), i);
            if (s.type == LDNS_RR_TYPE_NSEC) {
                p.ok = strictlyCovers(rr, ownerName.get()) && !cutAbove(rr, owner) &&
                       closestEncloser(owner, rr) == encloser;
                if (p.ok) return p;
                continue;
            }
            if (!nsec3DeniesNextCloser(rr, nextCloser, limits)) continue;
            // An opt-out span may hide an unsigned delegation at the
            // next closer name (RFC 5155 9.2): proven, but not secure.
            p.ok = true;
            if (ldns_nsec3_optout(rr)) {
                p.insecure = true;
                p.insecureWhy = nextCloser + " is in an NSEC3 opt-out span of " + zone +
                                ": the wildcard answer may be an unsigned child's";
            }
            return p;
        }
    }
    return p;
}

}  // namespace danerelay::dns
