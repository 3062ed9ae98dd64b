#include "dns/validator.h"

#include "dns/response.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>

#include <sys/random.h>

namespace danerelay::dns {

namespace {

// ---------------------------------------------------------------- ldns RAII

struct RdfFree {
    void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
struct RrFree {
    void operator()(ldns_rr* r) const { ldns_rr_free(r); }
};
using SharedList = std::shared_ptr<ldns_rr_list>;
using Rdf = std::unique_ptr<ldns_rdf, RdfFree>;
using Rr = std::unique_ptr<ldns_rr, RrFree>;

List newList() {
    return List(ldns_rr_list_new());
}

std::string nameOf(const ldns_rdf* d) {
    return fqdnOf(d);
}

Rdf dname(const std::string& name) {
    ldns_rdf* d = ldns_dname_new_frm_str(name.c_str());
    if (d) ldns_dname2canonical(d);
    return Rdf(d);
}

// "a.b.c." → ["a","b","c"]; "." → [].
std::vector<std::string> labelsOf(const std::string& name) {
    std::vector<std::string> out;
    std::string cur;
    for (size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        if (c == '\\' && i + 1 < name.size()) {
            cur += c;
            cur += name[++i];
        } else if (c == '.') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

std::string joinLast(const std::vector<std::string>& labels, size_t n) {
    if (n == 0) return ".";
    std::string out;
    for (size_t i = labels.size() - n; i < labels.size(); ++i) out += labels[i] + ".";
    return out;
}

// On wire-format labels, never on presentation text: "x\\.t." is one label
// under the root, not a name below t.
bool isAtOrBelow(const std::string& name, const std::string& zone) {
    if (zone == ".") return true;
    Rdf n = dname(name), z = dname(zone);
    if (!n || !z) return false;
    return ldns_dname_compare(n.get(), z.get()) == 0 || ldns_dname_is_subdomain(n.get(), z.get());
}

std::string statusText(ldns_status s) {
    const char* t = ldns_get_errorstr_by_id(s);
    return t ? t : "error " + std::to_string(static_cast<int>(s));
}

uint16_t typeOf(const ldns_rr* rr) {
    return static_cast<uint16_t>(ldns_rr_get_type(rr));
}

// Does the NSEC or NSEC3 span strictly cover `name` (owner < name < next in
// canonical order, the last record wrapping round to the apex)? A record
// whose owner IS the name proves that the name exists, never that it does
// not (ldns_nsec_covers_name counts it as covering). For NSEC3, `name` is
// the hashed owner name (base32 label + zone).
bool strictlyCovers(const ldns_rr* rr, const ldns_rdf* name) {
    const ldns_rdf* owner = ldns_rr_owner(rr);
    Rdf next;
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NSEC) {
        if (ldns_rr_rd_count(rr) < 1 || !ldns_rr_rdf(rr, 0)) return false;
        next.reset(ldns_rdf_clone(ldns_rr_rdf(rr, 0)));
    } else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NSEC3) {
        const ldns_rdf* hash = ldns_nsec3_next_owner(rr);
        if (!hash || ldns_rdf_size(hash) < 2) return false;
        // The next hashed owner in base32hex, under the record's zone.
        char* b32 = ldns_rdf2str(hash);
        if (!b32) return false;
        std::string label = b32;
        free(b32);
        Rdf zone(ldns_dname_left_chop(owner));
        Rdf first(ldns_dname_new_frm_str(label.c_str()));
        if (!zone || !first || ldns_dname_cat(first.get(), zone.get()) != LDNS_STATUS_OK)
            return false;
        next = std::move(first);
    } else {
        return false;
    }
    Rdf o(ldns_rdf_clone(owner)), n(ldns_rdf_clone(name));
    ldns_dname2canonical(o.get());
    ldns_dname2canonical(next.get());
    ldns_dname2canonical(n.get());
    int ownerVsName = ldns_dname_compare(o.get(), n.get());
    int nameVsNext = ldns_dname_compare(n.get(), next.get());
    int ownerVsNext = ldns_dname_compare(o.get(), next.get());
    if (ownerVsName >= 0 && ownerVsNext < 0) return false;  // name at or before owner
    if (ownerVsNext < 0) return ownerVsName < 0 && nameVsNext < 0;
    // The last record of the chain (next is the first name again), or the
    // only one (owner == next): everything after owner, or before next.
    return ownerVsName < 0 || nameVsNext < 0;
}

uint32_t minTtl(const ldns_rr_list* l, uint32_t cap) {
    uint32_t t = cap;
    for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); ++i)
        t = std::min(t, ldns_rr_ttl(ldns_rr_list_rr(l, i)));
    return t;
}

bool supportedAlgorithm(uint8_t a) {
    // RSASHA1(-NSEC3), RSASHA256, RSASHA512, ECDSA P-256/P-384, Ed25519, Ed448
    return a == 5 || a == 7 || a == 8 || a == 10 || a == 13 || a == 14 || a == 15 || a == 16;
}

bool supportedDigest(uint8_t d) {
    return d == 1 || d == 2 || d == 4;
}

}  // namespace

// ---------------------------------------------------------------- the chain

struct Validator::Impl {
    // What the walk found at one name below the anchor.
    struct Link {
        enum Kind { SecureZone, NotCut, Insecure, Bogus, Indeterminate, NoName } kind;
        SharedList keys;  // SecureZone: the zone's authenticated DNSKEYs
        std::string reason;
        int64_t expires = 0;
    };
    struct Ctx {
        int64_t now;  // the validation time (Unix seconds), injected
        std::chrono::steady_clock::time_point deadline;
        unsigned fetches = 0;
    };

    Fetch fetch;
    ValidatorLimits limits;
    std::string anchorZone;
    List anchorDs = newList();    // DS anchors
    List anchorKeys = newList();  // DNSKEY anchors
    mutable std::mutex mu;
    std::map<std::string, Link> cache;  // name → link (the anchor zone too)

    std::optional<Link> cached(const std::string& name, int64_t now) {
        std::lock_guard lock(mu);
        auto it = cache.find(name);
        if (it == cache.end() || it->second.expires <= now) return std::nullopt;
        return it->second;
    }
    Link remember(const std::string& name, Link l, uint32_t ttl, int64_t now) {
        bool failure = l.kind == Link::Bogus || l.kind == Link::Indeterminate;
        l.expires =
            now + std::min<uint32_t>(failure ? limits.failureCacheTtl : ttl, limits.maxCacheTtl);
        std::lock_guard lock(mu);
        if (cache.size() > 10000) cache.clear();  // bounded, whatever the names asked
        cache[name] = l;
        return l;
    }

    Result<Pkt> query(const std::string& name, uint16_t type, Ctx& ctx) {
        if (++ctx.fetches > limits.maxFetches)
            return Error::permanent("more than " + std::to_string(limits.maxFetches) +
                                    " key fetches for one answer");
        if (std::chrono::steady_clock::now() > ctx.deadline)
            return Error::temporary("out of time (" + std::to_string(limits.maxValidationMs) +
                                    " ms) fetching keys for one answer");
        auto wire = fetch(name, type);
        if (!wire) return wire.error();
        ldns_pkt* raw = nullptr;
        if (ldns_wire2pkt(&raw, wire->data(), wire->size()) != LDNS_STATUS_OK || !raw)
            return Error::temporary("malformed response to " + name + " " + typeName(type));
        Pkt p(raw);
        const ldns_rr_list* q = ldns_pkt_question(p.get());
        if (!q || ldns_rr_list_rr_count(q) != 1 ||
            nameOf(ldns_rr_owner(ldns_rr_list_rr(q, 0))) != name ||
            typeOf(ldns_rr_list_rr(q, 0)) != type)
            return Error::temporary("response to " + name + " " + typeName(type) +
                                    " is for another question");
        auto rc = ldns_pkt_get_rcode(p.get());
        if (rc != LDNS_RCODE_NOERROR && rc != LDNS_RCODE_NXDOMAIN)
            return Error::temporary(name + " " + typeName(type) + ": rcode " +
                                    std::to_string(static_cast<int>(rc)));
        return p;
    }

    // An RRset signed by `zone` with `keys`: the first of at most N RRSIGs
    // that verifies at ctx.now, each against at most M keys of its key tag
    // and algorithm (zone keys only). Empty string: verified, and *good (if
    // asked) is the RRSIG that did it; else why not.
    std::string verify(const RrSet& set, const std::string& zone, const ldns_rr_list* keys,
                       Ctx& ctx, const ldns_rr** good = nullptr) {
        size_t n = ldns_rr_list_rr_count(set.sigs.get());
        if (n == 0) return "no RRSIG";
        // RRSIGs without the records they cover: ldns would read a record
        // that is not there.
        if (ldns_rr_list_rr_count(set.rrs.get()) == 0) return "RRSIG without its RRset";
        std::string why;
        unsigned tried = 0;
        for (size_t i = 0; i < n && tried < limits.maxSignaturesPerRrset; ++i) {
            const ldns_rr* sig = ldns_rr_list_rr(set.sigs.get(), i);
            const ldns_rdf* signer = ldns_rr_rrsig_signame(sig);
            if (!signer || nameOf(signer) != zone) {
                why = "RRSIG signer " + (signer ? nameOf(signer) : "?") + " is not " + zone;
                continue;
            }
            ++tried;
            uint16_t tag = ldns_rdf2native_int16(ldns_rr_rrsig_keytag(sig));
            uint8_t alg = ldns_rdf2native_int8(ldns_rr_rrsig_algorithm(sig));
            // ldns's list type wants mutable records; it only reads them.
            ldns_rr_list* candidates = ldns_rr_list_new();
            for (size_t k = 0; k < ldns_rr_list_rr_count(keys) &&
                               ldns_rr_list_rr_count(candidates) < limits.maxKeysPerSignature;
                 ++k) {
                ldns_rr* key = ldns_rr_list_rr(keys, k);
                if (ldns_rr_rd_count(key) == 4 && ldns_calc_keytag(key) == tag &&
                    ldns_rdf2native_int8(ldns_rr_dnskey_algorithm(key)) == alg &&
                    (ldns_rdf2native_int16(ldns_rr_dnskey_flags(key)) & LDNS_KEY_ZONE_KEY))
                    ldns_rr_list_push_rr(candidates, key);
            }
            ldns_status st =
                ldns_rr_list_rr_count(candidates) == 0
                    ? LDNS_STATUS_CRYPTO_NO_MATCHING_KEYTAG_DNSKEY
                    : ldns_verify_rrsig_keylist_time(set.rrs.get(), sig, candidates,
                                                     static_cast<time_t>(ctx.now), nullptr);
            ldns_rr_list_free(candidates);  // the list only, not the keys
            if (st == LDNS_STATUS_OK) {
                if (good) *good = sig;
                return "";
            }
            why = statusText(st);
        }
        return why.empty() ? "no usable RRSIG" : why;
    }

    // The anchor zone's DNSKEY set, authenticated by the configured anchor.
    Link anchorLink(Ctx& ctx) {
        if (auto c = cached(anchorZone, ctx.now)) return *c;
        auto p = query(anchorZone, LDNS_RR_TYPE_DNSKEY, ctx);
        if (!p)
            return remember(
                anchorZone,
                {Link::Indeterminate, nullptr,
                 "cannot fetch the DNSKEYs of the anchor " + anchorZone + ": " + p.error().message},
                0, ctx.now);
        auto sets = rrsetsOf(ldns_pkt_answer(p->get()), nullptr);
        const RrSet* keys = findSet(sets, anchorZone, LDNS_RR_TYPE_DNSKEY);
        if (!keys)
            return remember(anchorZone,
                            {Link::Bogus, nullptr, "no DNSKEY at the anchor " + anchorZone}, 0,
                            ctx.now);
        List trusted = newList();
        size_t nk = std::min<size_t>(ldns_rr_list_rr_count(keys->rrs.get()), limits.maxKeysPerSet);
        for (size_t i = 0; i < nk; ++i) {
            ldns_rr* k = ldns_rr_list_rr(keys->rrs.get(), i);
            bool ok = false;
            for (size_t j = 0; j < ldns_rr_list_rr_count(anchorDs.get()) && !ok; ++j)
                ok = ldns_rr_compare_ds(k, ldns_rr_list_rr(anchorDs.get(), j));
            for (size_t j = 0; j < ldns_rr_list_rr_count(anchorKeys.get()) && !ok; ++j)
                ok = ldns_rr_compare(k, ldns_rr_list_rr(anchorKeys.get(), j)) == 0;
            if (ok) ldns_rr_list_push_rr(trusted.get(), ldns_rr_clone(k));
        }
        if (ldns_rr_list_rr_count(trusted.get()) == 0)
            return remember(
                anchorZone,
                {Link::Bogus, nullptr, "no DNSKEY of " + anchorZone + " matches the trust anchor"},
                0, ctx.now);
        if (auto why = verify(*keys, anchorZone, trusted.get(), ctx); !why.empty())
            return remember(anchorZone,
                            {Link::Bogus, nullptr, "DNSKEY set of " + anchorZone + ": " + why}, 0,
                            ctx.now);
        SharedList all(ldns_rr_list_clone(keys->rrs.get()), ListFree());
        return remember(anchorZone, {Link::SecureZone, all, ""}, minTtl(keys->rrs.get(), 3600),
                        ctx.now);
    }

    // The denial proof for (name, type) in a response signed by zone.
    struct Denial {
        bool ok = false;
        bool insecure = false;  // NSEC3 iterations over the cap, or an opt-out span
        bool nxdomain = false;
        std::string why;
        // For an exact match (name exists): its type bitmap says what is there.
        bool exact = false, hasNs = false, hasSoa = false;
        uint32_t ttl = 3600;
    };

    Denial proveDenial(const std::vector<RrSet>& sets, bool nxdomain, const std::string& name,
                       uint16_t type, const std::string& zone, const ldns_rr_list* keys, Ctx& ctx) {
        Denial d;
        List nsecs = newList();
        bool nsec3 = false, nsec = false;
        unsigned proofSets = 0;
        for (const auto& s : sets) {
            if (s.type != LDNS_RR_TYPE_NSEC && s.type != LDNS_RR_TYPE_NSEC3) continue;
            if (++proofSets > limits.maxDenialRecords) {
                d.why = "more than " + std::to_string(limits.maxDenialRecords) +
                        " NSEC/NSEC3 records in one denial";
                return d;
            }
            // Every record of the proof must be signed by the zone, and verify.
            if (auto why = verify(s, zone, keys, ctx); !why.empty()) {
                d.why = typeName(s.type) + " at " + s.owner + ": " + why;
                return d;
            }
            (s.type == LDNS_RR_TYPE_NSEC ? nsec : nsec3) = true;
            for (size_t i = 0; i < ldns_rr_list_rr_count(s.rrs.get()); ++i)
                ldns_rr_list_push_rr(nsecs.get(), ldns_rr_clone(ldns_rr_list_rr(s.rrs.get(), i)));
            d.ttl = std::min(d.ttl, minTtl(s.rrs.get(), 3600));
        }
        if (!nsec && !nsec3) {
            d.why = "no signed NSEC or NSEC3 records";
            return d;
        }
        d.nxdomain = nxdomain;
        if (nsec3) return proveNsec3(d, nsecs.get(), name, type, zone);
        return proveNsec(d, nsecs.get(), name, type);
    }

    static bool bitmapHas(const ldns_rdf* bitmap, uint16_t t) {
        return bitmap && ldns_nsec_bitmap_covers_type(bitmap, static_cast<ldns_rr_type>(t));
    }

    // Does the type bitmap of the NSEC or NSEC3 for `what` prove that it has
    // no `type`? Empty: yes; else why not.
    static std::string absentFrom(const ldns_rdf* bm, uint16_t type, const std::string& record,
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
    static void noteExact(Denial& d, const ldns_rdf* bm) {
        d.exact = true;
        d.hasNs = bitmapHas(bm, LDNS_RR_TYPE_NS);
        d.hasSoa = bitmapHas(bm, LDNS_RR_TYPE_SOA);
    }

    // NSEC (RFC 4035 5.4): exact-match NODATA, empty non-terminal, wildcard
    // NODATA, NXDOMAIN with the wildcard denied.
    // An NSEC at a zone cut (NS without SOA) or a DNAME says nothing about
    // the names below it: they are another zone's, or redirected. Its span
    // "covers" them in canonical order all the same, so such an NSEC must not
    // prove them absent (RFC 6840 4.1): else a parent's delegation NSEC,
    // replayed, would deny any name in a signed child.
    static bool cutAbove(const ldns_rr* nsec, const std::string& name) {
        std::string owner = nameOf(ldns_rr_owner(nsec));
        if (owner == name || !isAtOrBelow(name, owner)) return false;
        const ldns_rdf* bm = ldns_rr_rdf(nsec, 1);
        return (bitmapHas(bm, LDNS_RR_TYPE_NS) && !bitmapHas(bm, LDNS_RR_TYPE_SOA)) ||
               bitmapHas(bm, LDNS_RR_TYPE_DNAME);
    }

    Denial proveNsec(Denial d, const ldns_rr_list* nsecs, const std::string& name, uint16_t type) {
        Rdf qname = dname(name);
        size_t n = ldns_rr_list_rr_count(nsecs);
        const ldns_rr* exact = nullptr;
        const ldns_rr* cover = nullptr;
        for (size_t i = 0; i < n; ++i) {
            const ldns_rr* r = ldns_rr_list_rr(nsecs, i);
            if (ldns_rr_rd_count(r) < 2) continue;
            if (nameOf(ldns_rr_owner(r)) == name) {
                exact = r;
            } else if (strictlyCovers(r, qname.get())) {
                if (cutAbove(r, name)) {
                    d.why = "the NSEC at " + nameOf(ldns_rr_owner(r)) +
                            " is a zone cut or DNAME above " + name;
                    return d;
                }
                cover = r;
            }
        }
        auto nodataAt = [&](const ldns_rr* r, const std::string& what) -> bool {
            d.why = absentFrom(ldns_rr_rdf(r, 1), type, "NSEC", what);
            return d.why.empty();
        };
        if (!d.nxdomain) {
            if (exact) {
                if (!nodataAt(exact, name)) return d;
                noteExact(d, ldns_rr_rdf(exact, 1));
                d.ok = true;
                return d;
            }
            // Empty non-terminal: the NSEC before it points below it.
            if (cover && isAtOrBelow(nameOf(ldns_rr_rdf(cover, 0)), name)) {
                d.ok = true;
                return d;
            }
            // Wildcard NODATA: *.closest-encloser exists without the type.
            if (cover) {
                std::string wc = "*." + closestEncloser(name, cover);
                for (size_t i = 0; i < n; ++i) {
                    const ldns_rr* r = ldns_rr_list_rr(nsecs, i);
                    if (ldns_rr_rd_count(r) >= 2 && nameOf(ldns_rr_owner(r)) == wc) {
                        d.ok = nodataAt(r, wc);
                        return d;
                    }
                }
            }
            d.why = "no NSEC proves that " + name + " has no " + typeName(type);
            return d;
        }
        if (exact) {
            d.why = "NXDOMAIN, but an NSEC shows that " + name + " exists";
            return d;
        }
        if (!cover) {
            d.why = "no NSEC covers " + name;
            return d;
        }
        if (isAtOrBelow(nameOf(ldns_rr_rdf(cover, 0)), name)) {
            d.why = "NXDOMAIN, but " + name + " is an empty non-terminal";
            return d;
        }
        std::string wc = "*." + closestEncloser(name, cover);
        if (wc == "*..") wc = "*.";
        Rdf wcName = dname(wc);
        for (size_t i = 0; i < n; ++i) {
            const ldns_rr* r = ldns_rr_list_rr(nsecs, i);
            if (ldns_rr_rd_count(r) >= 2 && strictlyCovers(r, wcName.get()) &&
                nameOf(ldns_rr_owner(r)) != wc && !cutAbove(r, wc)) {
                d.ok = true;
                return d;
            }
        }
        d.why = "no NSEC denies the wildcard " + wc;
        return d;
    }

    // The closest encloser of name, from the NSEC that covers it: the longest
    // ancestor of name that is an ancestor of the NSEC's owner or next name.
    static std::string closestEncloser(const std::string& name, const ldns_rr* cover) {
        auto q = labelsOf(name);
        size_t best = 0;
        for (const std::string& other :
             {nameOf(ldns_rr_owner(cover)), nameOf(ldns_rr_rdf(cover, 0))}) {
            auto o = labelsOf(other);
            size_t k = 0;
            while (k < q.size() && k < o.size() && q[q.size() - 1 - k] == o[o.size() - 1 - k]) ++k;
            best = std::max(best, k);
        }
        best = std::min(best, q.size() - (q.empty() ? 0 : 1));  // strictly above name
        return joinLast(q, best);
    }

    // NSEC3 (RFC 5155 8), checked here rather than with ldns's
    // ldns_dnssec_verify_denial_nsec3_match (which leaks the hashes it makes):
    // a matching NSEC3 for NODATA; a closest-encloser proof (the encloser
    // matched, the next closer name covered) with the wildcard covered for
    // NXDOMAIN or matched for wildcard NODATA; an opt-out span over the next
    // closer name for a DS that cannot be proven absent. Every record was
    // signature-checked before.
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

    Denial proveNsec3(Denial d, ldns_rr_list* nsecs, const std::string& name, uint16_t type,
                      const std::string& zone) {
        Nsec3Set set;
        for (size_t i = 0; i < ldns_rr_list_rr_count(nsecs); ++i) {
            const ldns_rr* r = ldns_rr_list_rr(nsecs, i);
            if (ldns_rr_get_type(r) != LDNS_RR_TYPE_NSEC3) continue;
            if (ldns_nsec3_iterations(r) > limits.maxNsec3Iterations) {
                d.ok = true;
                d.insecure = true;
                d.why = "NSEC3 with " + std::to_string(ldns_nsec3_iterations(r)) +
                        " iterations (over " + std::to_string(limits.maxNsec3Iterations) +
                        "): treated as insecure (RFC 9276)";
                return d;
            }
            if (ldns_nsec3_algorithm(r) != 1) {
                d.why =
                    "NSEC3 hash algorithm " + std::to_string(ldns_nsec3_algorithm(r)) + " unknown";
                return d;
            }
            set.rrs.push_back(r);
        }
        auto lacks = [&](const ldns_rr* r, const std::string& what) {
            d.why = absentFrom(ldns_nsec3_bitmap(r), type, "NSEC3", what);
            return d.why.empty();
        };
        // NODATA, the name itself matched (RFC 5155 8.5, 8.6 first part).
        if (!d.nxdomain) {
            if (const ldns_rr* m = set.match(name)) {
                if (!lacks(m, name)) return d;
                noteExact(d, ldns_nsec3_bitmap(m));
                d.ok = true;
                return d;
            }
        } else if (set.match(name)) {
            d.why = "NXDOMAIN, but an NSEC3 shows that " + name + " exists";
            return d;
        }
        // The closest encloser proof (RFC 5155 8.3).
        auto labels = labelsOf(name);
        size_t zoneLabels = labelsOf(zone).size();
        std::string encloser, nextCloser;
        const ldns_rr* nextCover = nullptr;
        for (size_t n = labels.size(); n-- > zoneLabels;) {
            std::string candidate = joinLast(labels, n);
            const ldns_rr* m = set.match(candidate);
            if (!m) continue;
            const ldns_rdf* bm = ldns_nsec3_bitmap(m);
            if ((bitmapHas(bm, LDNS_RR_TYPE_NS) && !bitmapHas(bm, LDNS_RR_TYPE_SOA)) ||
                bitmapHas(bm, LDNS_RR_TYPE_DNAME)) {
                d.why = "the closest encloser " + candidate + " is a delegation or DNAME";
                return d;
            }
            encloser = candidate;
            nextCloser = joinLast(labels, n + 1);
            nextCover = set.cover(nextCloser);
            break;
        }
        if (encloser.empty() || !nextCover) {
            d.why =
                "no NSEC3 closest-encloser proof for " + name +
                (encloser.empty() ? ""
                                  : " (the next closer name " + nextCloser + " is not covered)");
            return d;
        }
        std::string wildcard = "*." + (encloser == "." ? std::string() : encloser);
        if (d.nxdomain) {
            if (!set.cover(wildcard)) {
                d.why = "no NSEC3 denies the wildcard " + wildcard;
                return d;
            }
            d.ok = true;
            // An opt-out span may hide an unsigned delegation at the next
            // closer name: the name's absence is not proven (RFC 5155 9.2).
            if (ldns_nsec3_optout(nextCover)) {
                d.insecure = true;
                d.why = nextCloser + " is in an NSEC3 opt-out span of " + zone;
            }
            return d;
        }
        // NODATA without a match: a wildcard that lacks the type (8.7), or a
        // DS in an opt-out span (8.6).
        if (const ldns_rr* w = set.match(wildcard)) {
            d.ok = lacks(w, wildcard);
            return d;
        }
        if (type == LDNS_RR_TYPE_DS && ldns_nsec3_optout(nextCover)) {
            d.ok = true;
            d.insecure = true;
            d.why = name + " is in an NSEC3 opt-out span of " + zone;
            return d;
        }
        d.why = "no NSEC3 proves that " + name + " has no " + typeName(type);
        return d;
    }

    // One step down from a secure zone: is `name` a secure delegation (then
    // its authenticated keys), an unsigned one, or no zone cut at all?
    Link step(const std::string& name, const std::string& zone, const ldns_rr_list* zoneKeys,
              Ctx& ctx) {
        if (auto c = cached(name, ctx.now)) return *c;
        auto p = query(name, LDNS_RR_TYPE_DS, ctx);
        if (!p)
            return remember(name,
                            {Link::Indeterminate, nullptr,
                             "cannot fetch DS for " + name + ": " + p.error().message},
                            0, ctx.now);
        auto sets = rrsetsOf(ldns_pkt_answer(p->get()), nullptr);
        const RrSet* ds = findSet(sets, name, LDNS_RR_TYPE_DS);
        if (!ds) {
            Denial d = proveDenial(rrsetsOf(ldns_pkt_authority(p->get()), nullptr),
                                   ldns_pkt_get_rcode(p->get()) == LDNS_RCODE_NXDOMAIN, name,
                                   LDNS_RR_TYPE_DS, zone, zoneKeys, ctx);
            if (!d.ok)
                return remember(name,
                                {Link::Bogus, nullptr, "DS denial for " + name + ": " + d.why}, 0,
                                ctx.now);
            if (d.nxdomain)
                return remember(name, {Link::NoName, nullptr, name + " does not exist"}, d.ttl,
                                ctx.now);
            if (d.insecure) return remember(name, {Link::Insecure, nullptr, d.why}, d.ttl, ctx.now);
            if (d.exact && d.hasNs && !d.hasSoa)
                return remember(name,
                                {Link::Insecure, nullptr,
                                 "unsigned delegation: " + zone + " proves " + name + " has no DS"},
                                d.ttl, ctx.now);
            return remember(name, {Link::NotCut, nullptr, ""}, d.ttl, ctx.now);
        }
        if (auto why = verify(*ds, zone, zoneKeys, ctx); !why.empty())
            return remember(name, {Link::Bogus, nullptr, "DS of " + name + ": " + why}, 0, ctx.now);
        // Only DS records we can use count; none usable means insecure
        // (RFC 4035 5.2, RFC 6840 5.2).
        List usable = newList();
        for (size_t i = 0; i < ldns_rr_list_rr_count(ds->rrs.get()); ++i) {
            const ldns_rr* r = ldns_rr_list_rr(ds->rrs.get(), i);
            if (ldns_rr_rd_count(r) < 4) continue;
            if (supportedAlgorithm(ldns_rdf2native_int8(ldns_rr_rdf(r, 1))) &&
                supportedDigest(ldns_rdf2native_int8(ldns_rr_rdf(r, 2))))
                ldns_rr_list_push_rr(usable.get(), ldns_rr_clone(r));
        }
        if (ldns_rr_list_rr_count(usable.get()) == 0)
            return remember(name,
                            {Link::Insecure, nullptr,
                             "the DS records of " + name + " use no supported algorithm"},
                            minTtl(ds->rrs.get(), 3600), ctx.now);
        auto kp = query(name, LDNS_RR_TYPE_DNSKEY, ctx);
        if (!kp)
            return remember(name,
                            {Link::Indeterminate, nullptr,
                             "cannot fetch DNSKEY for " + name + ": " + kp.error().message},
                            0, ctx.now);
        auto ksets = rrsetsOf(ldns_pkt_answer(kp->get()), nullptr);
        const RrSet* keys = findSet(ksets, name, LDNS_RR_TYPE_DNSKEY);
        if (!keys)
            return remember(name, {Link::Bogus, nullptr, name + " has a DS but no DNSKEY records"},
                            0, ctx.now);
        List matching = newList();
        size_t nk = std::min<size_t>(ldns_rr_list_rr_count(keys->rrs.get()), limits.maxKeysPerSet);
        for (size_t i = 0; i < nk; ++i) {
            ldns_rr* k = ldns_rr_list_rr(keys->rrs.get(), i);
            for (size_t j = 0; j < ldns_rr_list_rr_count(usable.get()); ++j) {
                if (ldns_rr_compare_ds(k, ldns_rr_list_rr(usable.get(), j))) {
                    ldns_rr_list_push_rr(matching.get(), ldns_rr_clone(k));
                    break;
                }
            }
        }
        if (ldns_rr_list_rr_count(matching.get()) == 0)
            return remember(name,
                            {Link::Bogus, nullptr,
                             "DS mismatch: no DNSKEY of " + name + " matches its DS in " + zone},
                            0, ctx.now);
        if (auto why = verify(*keys, name, matching.get(), ctx); !why.empty())
            return remember(name,
                            {Link::Bogus, nullptr,
                             "DNSKEY set of " + name + " not signed by its DS key: " + why},
                            0, ctx.now);
        SharedList all(ldns_rr_list_clone(keys->rrs.get()), ListFree());
        uint32_t ttl = std::min(minTtl(keys->rrs.get(), 3600), minTtl(ds->rrs.get(), 3600));
        return remember(name, {Link::SecureZone, all, ""}, ttl, ctx.now);
    }

    struct Walk {
        Link::Kind kind;  // SecureZone (zone/keys below), Insecure, Bogus, Indeterminate
        std::string zone;
        SharedList keys;
        std::string reason;
    };

    // From the anchor down towards `target`. stopAtZone: the target must be
    // a zone (a signer); else stop at the deepest zone containing target.
    Walk walk(const std::string& target, bool targetIsZone, Ctx& ctx) {
        if (!isAtOrBelow(target, anchorZone))
            return {Link::Insecure, "", nullptr,
                    target + " is outside the trust anchor's zone " + anchorZone};
        Link a = anchorLink(ctx);
        if (a.kind != Link::SecureZone) return {a.kind, anchorZone, nullptr, a.reason};
        Walk w{Link::SecureZone, anchorZone, a.keys, ""};
        auto labels = labelsOf(target);
        size_t base = labelsOf(anchorZone).size();
        if (labels.size() - base > limits.maxChainDepth)
            return {Link::Bogus, "", nullptr,
                    target + ": more than " + std::to_string(limits.maxChainDepth) +
                        " labels below the anchor"};
        for (size_t n = base + 1; n <= labels.size(); ++n) {
            std::string name = joinLast(labels, n);
            Link l = step(name, w.zone, w.keys.get(), ctx);
            switch (l.kind) {
                case Link::SecureZone:
                    w.zone = name;
                    w.keys = l.keys;
                    break;
                case Link::NotCut:
                    if (targetIsZone && name == target)
                        return {Link::Bogus, "", nullptr,
                                target + " signs records but " + w.zone + " proves it is no zone"};
                    break;
                case Link::NoName:
                    return {Link::Bogus, "", nullptr,
                            l.reason + " (per " + w.zone + "), yet " + target + " answers"};
                default:
                    return {l.kind, name, nullptr, l.reason};
            }
        }
        return w;
    }

    Verdict validate(const Response& r, Ctx& ctx);
};

static Security toSecurity(Validator::Impl::Link::Kind k) {
    using K = Validator::Impl::Link::Kind;
    switch (k) {
        case K::SecureZone:
        case K::NotCut:
            return Security::Secure;
        case K::Insecure:
            return Security::Insecure;
        case K::Indeterminate:
            return Security::Indeterminate;
        default:
            return Security::Bogus;
    }
}

Verdict Validator::Impl::validate(const Response& r, Ctx& ctx) {
    bool anyInsecure = false;
    std::string insecureWhy, signer;
    // Checks one RRset of the chain; returns a verdict if it decides.
    auto check = [&](const RrSet& set) -> std::optional<Verdict> {
        std::string what = set.owner + " " + typeName(set.type);
        if (ldns_rr_list_rr_count(set.sigs.get()) == 0) {
            // Unsigned: fine only below a proven-insecure delegation.
            Walk w = walk(set.owner, false, ctx);
            if (w.kind == Link::SecureZone)
                return Verdict{Security::Bogus, what + ": no RRSIG in the signed zone " + w.zone};
            if (w.kind != Link::Insecure) return Verdict{toSecurity(w.kind), w.reason};
            anyInsecure = true;
            insecureWhy = w.reason;
            return std::nullopt;
        }
        const ldns_rr* sig0 = ldns_rr_list_rr(set.sigs.get(), 0);
        std::string zone = nameOf(ldns_rr_rrsig_signame(sig0));
        if (!isAtOrBelow(set.owner, zone))
            return Verdict{Security::Bogus, what + ": signed by " + zone + ", not an ancestor"};
        // Insecure is decided by where the owner is, never by a signer the
        // packet names: a signer above the anchor for a name below it is a
        // forgery, not a way out of the anchor's zone.
        if (!isAtOrBelow(zone, anchorZone) && isAtOrBelow(set.owner, anchorZone))
            return Verdict{Security::Bogus,
                           what + ": signed by " + zone + ", above the trust anchor " + anchorZone};
        Walk w = walk(zone, true, ctx);
        if (w.kind == Link::Insecure) {
            anyInsecure = true;
            insecureWhy = w.reason;
            return std::nullopt;
        }
        if (w.kind != Link::SecureZone) return Verdict{toSecurity(w.kind), w.reason};
        const ldns_rr* good = nullptr;
        if (auto why = verify(set, zone, w.keys.get(), ctx, &good); !why.empty())
            return Verdict{Security::Bogus, what + ": " + why};
        signer = zone;
        // A wildcard expansion (by the labels of the RRSIG that verified, not
        // of any other one beside it): the name itself must be proven absent,
        // with no closer match (RFC 4035 5.3.4, RFC 5155 8.8).
        auto ownerLabels = labelsOf(set.owner);
        size_t sigLabels = ldns_rdf2native_int8(ldns_rr_rrsig_labels(good));
        size_t literal = ownerLabels.size() - (!ownerLabels.empty() && ownerLabels[0] == "*");
        if (sigLabels < literal) {
            std::string encloser = joinLast(ownerLabels, sigLabels);
            std::string nextCloser = joinLast(ownerLabels, sigLabels + 1u);
            Rdf owner = dname(set.owner);
            unsigned looked = 0;
            for (const auto& s : r.authority) {
                if (s.type != LDNS_RR_TYPE_NSEC && s.type != LDNS_RR_TYPE_NSEC3) continue;
                if (++looked > limits.maxDenialRecords) break;
                if (!verify(s, zone, w.keys.get(), ctx).empty()) continue;
                for (size_t i = 0; i < ldns_rr_list_rr_count(s.rrs.get()); ++i) {
                    const ldns_rr* rr = ldns_rr_list_rr(s.rrs.get(), i);
                    if (s.type == LDNS_RR_TYPE_NSEC) {
                        if (strictlyCovers(rr, owner.get()) && !cutAbove(rr, set.owner) &&
                            closestEncloser(set.owner, rr) == encloser)
                            return std::nullopt;
                        continue;
                    }
                    if (ldns_nsec3_algorithm(rr) != 1 ||
                        ldns_nsec3_iterations(rr) > limits.maxNsec3Iterations)
                        continue;
                    Rdf target = dname(nextCloser);
                    Rdf h(ldns_nsec3_hash_name_frm_nsec3(rr, target.get()));
                    Rdf z(ldns_dname_left_chop(ldns_rr_owner(rr)));
                    if (!h || !z || ldns_dname_cat(h.get(), z.get()) != LDNS_STATUS_OK) continue;
                    if (!strictlyCovers(rr, h.get())) continue;
                    // An opt-out span may hide an unsigned delegation at the
                    // next closer name (RFC 5155 9.2): proven, but not secure.
                    if (ldns_nsec3_optout(rr)) {
                        anyInsecure = true;
                        insecureWhy = nextCloser + " is in an NSEC3 opt-out span of " + zone +
                                      ": the wildcard answer may be an unsigned child's";
                    }
                    return std::nullopt;
                }
            }
            return Verdict{Security::Bogus,
                           what + ": wildcard answer without proof that the name does not exist"};
        }
        return std::nullopt;
    };
    // Exactly the RRsets the answer is built from (response.h): the CNAME
    // chain, then the data or the denial at its end.
    for (size_t idx : r.cnames)
        if (auto v = check(r.answer[idx])) return *v;
    auto finish = [&](Verdict v) -> Verdict {
        if (v.security == Security::Secure && !r.strays.empty())
            return {Security::Bogus, straysText(r)};
        return v;
    };
    if (r.data) {
        if (auto v = check(r.answer[*r.data])) return *v;
        if (anyInsecure) return {Security::Insecure, insecureWhy};
        return finish({Security::Secure, "signed by " + signer});
    }
    // No data: NXDOMAIN or NODATA for the chain's end, proven by the zone
    // that holds it (the signer of the authority section's proof).
    const std::string& current = r.canonical;
    uint16_t qtype = r.qtype;
    std::string zone;
    for (const auto& s : r.authority) {
        if (ldns_rr_list_rr_count(s.sigs.get()) > 0 &&
            (s.type == LDNS_RR_TYPE_SOA || s.type == LDNS_RR_TYPE_NSEC ||
             s.type == LDNS_RR_TYPE_NSEC3)) {
            zone = nameOf(ldns_rr_rrsig_signame(ldns_rr_list_rr(s.sigs.get(), 0)));
            break;
        }
    }
    if (zone.empty()) {
        Walk w = walk(current, false, ctx);
        if (w.kind == Link::SecureZone)
            return {Security::Bogus, "unsigned denial of " + current + " " + typeName(qtype) +
                                         " in the signed zone " + w.zone};
        return {toSecurity(w.kind), w.reason};
    }
    if (!isAtOrBelow(current, zone))
        return {Security::Bogus,
                "denial of " + current + " signed by " + zone + ", not an ancestor"};
    if (!isAtOrBelow(zone, anchorZone) && isAtOrBelow(current, anchorZone))
        return {Security::Bogus, "denial of " + current + " signed by " + zone +
                                     ", above the trust anchor " + anchorZone};
    Walk w = walk(zone, true, ctx);
    if (w.kind == Link::Insecure) return {Security::Insecure, w.reason};
    if (w.kind != Link::SecureZone) return {toSecurity(w.kind), w.reason};
    Denial d = proveDenial(r.authority, r.outcome == Outcome::NxDomain, current, qtype, zone,
                           w.keys.get(), ctx);
    if (!d.ok)
        return {Security::Bogus, "denial of " + current + " " + typeName(qtype) + ": " + d.why};
    if (d.insecure || anyInsecure) return {Security::Insecure, d.insecure ? d.why : insecureWhy};
    return finish({Security::Secure, "denial signed by " + zone});
}

// ---------------------------------------------------------------- public

Validator::~Validator() = default;

Result<std::shared_ptr<Validator>> Validator::create(const std::string& anchorText,
                                                     const std::string& where, Fetch fetch,
                                                     ValidatorLimits limits) {
    std::shared_ptr<Validator> v(new Validator());
    v->impl_ = std::make_unique<Impl>();
    v->impl_->fetch = std::move(fetch);
    v->impl_->limits = limits;
    std::istringstream in(anchorText);
    std::string line;
    int lineNo = 0;
    while (std::getline(in, line)) {
        ++lineNo;
        auto semi = line.find(';');
        if (semi != std::string::npos) line.erase(semi);
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        ldns_rr* raw = nullptr;
        ldns_status st = ldns_rr_new_frm_str(&raw, line.c_str(), 0, nullptr, nullptr);
        if (st != LDNS_STATUS_OK || !raw)
            return Error::permanent(where + ":" + std::to_string(lineNo) + ": " + statusText(st));
        Rr rr(raw);
        std::string owner = nameOf(ldns_rr_owner(rr.get()));
        if (v->anchorZone_.empty()) v->anchorZone_ = owner;
        if (owner != v->anchorZone_)
            return Error::permanent(where + ":" + std::to_string(lineNo) +
                                    ": anchors for two zones (" + v->anchorZone_ + " and " + owner +
                                    "); one zone per file");
        if (ldns_rr_get_type(rr.get()) == LDNS_RR_TYPE_DS) {
            ldns_rr_list_push_rr(v->impl_->anchorDs.get(), rr.release());
        } else if (ldns_rr_get_type(rr.get()) == LDNS_RR_TYPE_DNSKEY) {
            ldns_rr_list_push_rr(v->impl_->anchorKeys.get(), rr.release());
        } else {
            return Error::permanent(where + ":" + std::to_string(lineNo) +
                                    ": a trust anchor is a DS or DNSKEY record");
        }
    }
    if (v->anchorZone_.empty())
        return Error::permanent(where + ": no DS or DNSKEY record: not a trust anchor");
    v->impl_->anchorZone = v->anchorZone_;
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
        return {Security::Bogus, r.error.empty() ? "not an answer" : r.error};
    Impl::Ctx ctx{now, std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(impl_->limits.maxValidationMs)};
    return impl_->validate(r, ctx);
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
    // Cached no longer than the proof holds: the signatures' expiry
    // (RFC 4035 5.3.3), and for a denial the TTLs of the NSEC/NSEC3 records
    // that prove it, not of an SOA the proof does not cover.
    auto cap = [&](const RrSet& s) {
        for (size_t i = 0; i < s.size(); ++i)
            a.ttl = std::min(a.ttl, ldns_rr_ttl(ldns_rr_list_rr(s.rrs.get(), i)));
        for (size_t i = 0; i < ldns_rr_list_rr_count(s.sigs.get()); ++i) {
            const ldns_rr* sig = ldns_rr_list_rr(s.sigs.get(), i);
            int64_t left =
                static_cast<int64_t>(ldns_rdf2native_int32(ldns_rr_rrsig_expiration(sig))) - now;
            a.ttl = std::min<uint32_t>(
                a.ttl, static_cast<uint32_t>(std::clamp<int64_t>(left, 0, UINT32_MAX)));
            a.ttl = std::min(a.ttl, ldns_rdf2native_int32(ldns_rr_rrsig_origttl(sig)));
        }
    };
    for (size_t idx : r.cnames) cap(r.answer[idx]);
    if (r.data) {
        cap(r.answer[*r.data]);
    } else {
        bool proof = false;
        for (const auto& s : r.authority) {
            if (s.type != LDNS_RR_TYPE_NSEC && s.type != LDNS_RR_TYPE_NSEC3) continue;
            cap(s);
            proof = true;
        }
        if (!proof) a.ttl = std::min<uint32_t>(a.ttl, impl_->limits.failureCacheTtl);
    }
    return a;
}

// ---------------------------------------------------------------- fetching

namespace {

// One query to one server: UDP, TCP when truncated, our own random ID
// checked in the reply (a blind spoofer must guess it as well as the port;
// what it could inject would fail the signature checks anyway, but costs a
// defer).
Result<std::vector<uint8_t>> fetchOnce(const std::string& host, uint16_t port,
                                       const ldns_rdf* qname, const std::string& name,
                                       uint16_t type, unsigned timeoutMs) {
    std::unique_ptr<ldns_resolver, void (*)(ldns_resolver*)> res(ldns_resolver_new(),
                                                                 ldns_resolver_deep_free);
    if (!res) return Error::temporary("out of memory");
    Rdf address(ldns_rdf_new_frm_str(
        host.find(':') != std::string::npos ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, host.c_str()));
    if (!address) return Error::permanent("bad resolver address " + host);
    ldns_resolver_push_nameserver(res.get(), address.get());
    ldns_resolver_set_port(res.get(), port);
    ldns_resolver_set_recursive(res.get(), true);
    ldns_resolver_set_dnssec(res.get(), true);
    ldns_resolver_set_dnssec_cd(res.get(), true);
    ldns_resolver_set_edns_udp_size(res.get(), 1232);
    ldns_resolver_set_fallback(res.get(), true);
    ldns_resolver_set_retry(res.get(), 1);
    ldns_resolver_set_timeout(res.get(), {static_cast<time_t>(timeoutMs / 1000),
                                          static_cast<suseconds_t>((timeoutMs % 1000) * 1000)});
    uint16_t id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id) return Error::temporary("no randomness");
    Pkt query(ldns_pkt_query_new(ldns_rdf_clone(qname), static_cast<ldns_rr_type>(type),
                                 LDNS_RR_CLASS_IN, LDNS_RD | LDNS_CD));
    if (!query) return Error::temporary("out of memory");
    ldns_pkt_set_id(query.get(), id);
    ldns_pkt_set_edns_udp_size(query.get(), 1232);
    ldns_pkt_set_edns_do(query.get(), true);
    std::string what = name + " " + typeName(type) + " from " + host + ":" + std::to_string(port);
    ldns_pkt* raw = nullptr;
    ldns_status st = ldns_resolver_send_pkt(&raw, res.get(), query.get());
    if (st != LDNS_STATUS_OK || !raw) return Error::temporary(what + ": " + statusText(st));
    Pkt p(raw);
    if (ldns_pkt_id(p.get()) != ldns_pkt_id(query.get()) || !ldns_pkt_qr(p.get()))
        return Error::temporary(what + ": a reply with another ID");
    // A SERVFAIL is one resolver's bad moment (an upstream timeout under
    // load), not an answer: the next attempt may get one.
    if (ldns_pkt_get_rcode(p.get()) == LDNS_RCODE_SERVFAIL)
        return Error::temporary(what + ": SERVFAIL");
    uint8_t* wire = nullptr;
    size_t size = 0;
    if (ldns_pkt2wire(&wire, p.get(), &size) != LDNS_STATUS_OK || !wire)
        return Error::temporary("cannot encode the response");
    std::vector<uint8_t> out(wire, wire + size);
    free(wire);
    return out;
}

}  // namespace

Validator::Fetch blockingFetcher(std::vector<std::pair<std::string, uint16_t>> servers,
                                 unsigned timeoutMs, unsigned attempts) {
    // The server that answered last goes first: a dead resolver costs one
    // timeout, not one per key fetch.
    auto good = std::make_shared<std::atomic<size_t>>(0);
    return [servers, timeoutMs, attempts, good](const std::string& name,
                                                uint16_t type) -> Result<std::vector<uint8_t>> {
        Rdf qname = dname(name);
        if (!qname) return Error::permanent("bad name " + name);
        if (servers.empty()) return Error::permanent("no resolvers configured");
        // Like the Resolver: `attempts` queries in all, the servers in turn.
        Result<std::vector<uint8_t>> last = Error::temporary("no attempt made");
        size_t first = good->load();
        for (unsigned i = 0; i < std::max(1u, attempts); ++i) {
            size_t k = (first + i) % servers.size();
            last =
                fetchOnce(servers[k].first, servers[k].second, qname.get(), name, type, timeoutMs);
            if (last) {
                good->store(k);
                return last;
            }
        }
        return last;
    };
}

}  // namespace danerelay::dns
