#include "dns/key_chain.h"

#include "dns/denial.h"
#include "dns/key_fetch.h"

#include <algorithm>

namespace danerelay::dns {

namespace {

using Link = KeyChain::Link;

Link bogus(BogusReason why, std::string text) {
    return {Link::Bogus, nullptr, std::move(text), why};
}

Link indeterminate(std::string text) {
    return {Link::Indeterminate, nullptr, std::move(text)};
}

// A DNSKEY set that does not verify: its signature's own failure if that is
// about time or algorithm, else no valid DNSKEY.
BogusReason keySetReason(const Why& why) {
    switch (why.kind) {
        case BogusReason::SignatureExpired:
        case BogusReason::SignatureNotYetValid:
        case BogusReason::UnsupportedAlgorithm:
            return why.kind;
        default:
            return BogusReason::NoValidDnskey;
    }
}

// The DS records we can use: none usable means insecure (RFC 4035 5.2,
// RFC 6840 5.2).
List usableDs(const RrSet& ds) {
    List usable = newList();
    for (size_t i = 0; i < ldns_rr_list_rr_count(ds.rrs.get()); ++i) {
        const ldns_rr* r = ldns_rr_list_rr(ds.rrs.get(), i);
        if (ldns_rr_rd_count(r) < 4) continue;
        if (supportedAlgorithm(ldns_rdf2native_int8(ldns_rr_rdf(r, 1))) &&
            supportedDigest(ldns_rdf2native_int8(ldns_rr_rdf(r, 2))))
            ldns_rr_list_push_rr(usable.get(), ldns_rr_clone(r));
    }
    return usable;
}

// The DNSKEYs (at most `max` considered) that match one of the DS records.
List keysMatching(const RrSet& keys, const ldns_rr_list* ds, unsigned max) {
    List matching = newList();
    size_t nk = std::min<size_t>(ldns_rr_list_rr_count(keys.rrs.get()), max);
    for (size_t i = 0; i < nk; ++i) {
        ldns_rr* k = ldns_rr_list_rr(keys.rrs.get(), i);
        for (size_t j = 0; j < ldns_rr_list_rr_count(ds); ++j) {
            if (ldns_rr_compare_ds(k, ldns_rr_list_rr(ds, j))) {
                ldns_rr_list_push_rr(matching.get(), ldns_rr_clone(k));
                break;
            }
        }
    }
    return matching;
}

}  // namespace

void KeyChain::addAnchor(Rr rr) {
    ldns_rr_list* to =
        ldns_rr_get_type(rr.get()) == LDNS_RR_TYPE_DS ? anchorDs_.get() : anchorKeys_.get();
    ldns_rr_list_push_rr(to, rr.release());
}

std::optional<Link> KeyChain::cached(const std::string& name, int64_t now) {
    std::lock_guard lock(mu_);
    auto it = cache_.find(name);
    if (it == cache_.end() || it->second.expires <= now) return std::nullopt;
    return it->second;
}

Link KeyChain::remember(const std::string& name, Link l, uint32_t ttl, int64_t now) {
    bool failure = l.kind == Link::Bogus || l.kind == Link::Indeterminate;
    l.expires =
        now + std::min<uint32_t>(failure ? limits_.failureCacheTtl : ttl, limits_.maxCacheTtl);
    std::lock_guard lock(mu_);
    if (cache_.size() > limits_.maxCacheEntries) cache_.clear();  // bounded, whatever is asked
    cache_[name] = l;
    return l;
}

// The anchor zone's DNSKEYs that the configured anchor vouches for (at
// most limits.maxKeysPerSet considered).
List KeyChain::trustedAnchorKeys(const RrSet& keys) const {
    List trusted = newList();
    size_t nk = std::min<size_t>(ldns_rr_list_rr_count(keys.rrs.get()), limits_.maxKeysPerSet);
    for (size_t i = 0; i < nk; ++i) {
        ldns_rr* k = ldns_rr_list_rr(keys.rrs.get(), i);
        bool ok = false;
        for (size_t j = 0; j < ldns_rr_list_rr_count(anchorDs_.get()) && !ok; ++j)
            ok = ldns_rr_compare_ds(k, ldns_rr_list_rr(anchorDs_.get(), j));
        for (size_t j = 0; j < ldns_rr_list_rr_count(anchorKeys_.get()) && !ok; ++j)
            ok = ldns_rr_compare(k, ldns_rr_list_rr(anchorKeys_.get(), j)) == 0;
        if (ok) ldns_rr_list_push_rr(trusted.get(), ldns_rr_clone(k));
    }
    return trusted;
}

// The anchor zone's DNSKEY set, authenticated by the configured anchor.
Link KeyChain::anchorLink(ValidationCtx& ctx) {
    const std::string& zone = anchorZone_;
    if (auto c = cached(zone, ctx.now)) return *c;
    auto p = fetchChecked(fetch_, limits_, zone, LDNS_RR_TYPE_DNSKEY, ctx);
    if (!p)
        return remember(zone,
                        indeterminate("cannot fetch the DNSKEYs of the anchor " + zone + ": " +
                                      p.error().message),
                        0, ctx.now);
    auto sets = rrsetsOf(ldns_pkt_answer(p->get()), nullptr);
    const RrSet* keys = findSet(sets, zone, LDNS_RR_TYPE_DNSKEY);
    if (!keys)
        return remember(zone, bogus(BogusReason::NoValidDnskey, "no DNSKEY at the anchor " + zone),
                        0, ctx.now);
    List trusted = trustedAnchorKeys(*keys);
    if (ldns_rr_list_rr_count(trusted.get()) == 0)
        return remember(
            zone,
            bogus(BogusReason::NoValidDnskey, "no DNSKEY of " + zone + " matches the trust anchor"),
            0, ctx.now);
    ZoneKeys anchored(std::move(trusted));
    if (auto why = verifyRrset(*keys, zone, anchored, limits_, ctx.now); !why.empty())
        return remember(zone, bogus(keySetReason(why), "DNSKEY set of " + zone + ": " + why.text),
                        0, ctx.now);
    return remember(zone, {Link::SecureZone, zoneKeysOf(keys->rrs.get(), &anchored, verified_), ""},
                    minTtl(keys->rrs.get(), limits_.maxRecordTtl), ctx.now);
}

// One step down from a secure zone: is `name` a secure delegation (then
// its authenticated keys), an unsigned one, or no zone cut at all?
Link KeyChain::step(const std::string& name, const std::string& zone, const ZoneKeys& zoneKeys,
                    ValidationCtx& ctx) {
    if (auto c = cached(name, ctx.now)) return *c;
    auto p = fetchChecked(fetch_, limits_, name, LDNS_RR_TYPE_DS, ctx);
    if (!p)
        return remember(name,
                        indeterminate("cannot fetch DS for " + name + ": " + p.error().message), 0,
                        ctx.now);
    auto sets = rrsetsOf(ldns_pkt_answer(p->get()), nullptr);
    const RrSet* ds = findSet(sets, name, LDNS_RR_TYPE_DS);
    if (!ds) return stepWithoutDs(name, zone, zoneKeys, *p, ctx);
    if (auto why = verifyRrset(*ds, zone, zoneKeys, limits_, ctx.now); !why.empty())
        return remember(name, bogus(why.kind, "DS of " + name + ": " + why.text), 0, ctx.now);
    List usable = usableDs(*ds);
    if (ldns_rr_list_rr_count(usable.get()) == 0)
        return remember(
            name,
            {Link::Insecure, nullptr, "the DS records of " + name + " use no supported algorithm"},
            minTtl(ds->rrs.get(), limits_.maxRecordTtl), ctx.now);
    return stepToKeys(name, zone, *ds, usable, ctx);
}

// No DS at name: the signed denial says what name is.
Link KeyChain::stepWithoutDs(const std::string& name, const std::string& zone,
                             const ZoneKeys& zoneKeys, const Pkt& p, ValidationCtx& ctx) {
    Denial d = proveDenial(rrsetsOf(ldns_pkt_authority(p.get()), nullptr),
                           ldns_pkt_get_rcode(p.get()) == LDNS_RCODE_NXDOMAIN, name,
                           LDNS_RR_TYPE_DS, zone, zoneKeys, limits_, ctx.now);
    if (!d.ok)
        return remember(name, bogus(d.kind, "DS denial for " + name + ": " + d.why), 0, ctx.now);
    if (d.nxdomain)
        return remember(name, {Link::NoName, nullptr, name + " does not exist"}, d.ttl, ctx.now);
    if (d.insecure) return remember(name, {Link::Insecure, nullptr, d.why}, d.ttl, ctx.now);
    if (d.exact && d.hasNs && !d.hasSoa)
        return remember(name,
                        {Link::Insecure, nullptr,
                         "unsigned delegation: " + zone + " proves " + name + " has no DS"},
                        d.ttl, ctx.now);
    return remember(name, {Link::NotCut, nullptr, ""}, d.ttl, ctx.now);
}

// A verified DS set with usable records: the child's DNSKEY set must match
// one and be signed by the matching key.
Link KeyChain::stepToKeys(const std::string& name, const std::string& zone, const RrSet& ds,
                          const List& usable, ValidationCtx& ctx) {
    auto kp = fetchChecked(fetch_, limits_, name, LDNS_RR_TYPE_DNSKEY, ctx);
    if (!kp)
        return remember(
            name, indeterminate("cannot fetch DNSKEY for " + name + ": " + kp.error().message), 0,
            ctx.now);
    auto ksets = rrsetsOf(ldns_pkt_answer(kp->get()), nullptr);
    const RrSet* keys = findSet(ksets, name, LDNS_RR_TYPE_DNSKEY);
    if (!keys)
        return remember(name,
                        bogus(BogusReason::NoValidDnskey, name + " has a DS but no DNSKEY records"),
                        0, ctx.now);
    List matching = keysMatching(*keys, usable.get(), limits_.maxKeysPerSet);
    if (ldns_rr_list_rr_count(matching.get()) == 0)
        return remember(name,
                        bogus(BogusReason::DsMismatch,
                              "DS mismatch: no DNSKEY of " + name + " matches its DS in " + zone),
                        0, ctx.now);
    ZoneKeys dsKeys(std::move(matching));
    if (auto why = verifyRrset(*keys, name, dsKeys, limits_, ctx.now); !why.empty())
        return remember(name,
                        bogus(keySetReason(why),
                              "DNSKEY set of " + name + " not signed by its DS key: " + why.text),
                        0, ctx.now);
    uint32_t ttl = std::min(minTtl(keys->rrs.get(), limits_.maxRecordTtl),
                            minTtl(ds.rrs.get(), limits_.maxRecordTtl));
    return remember(name, {Link::SecureZone, zoneKeysOf(keys->rrs.get(), &dsKeys, verified_), ""},
                    ttl, ctx.now);
}

// The walk one label further down, at `name`; *done when it ends here.
KeyChain::Walk KeyChain::stepDown(Walk w, const std::string& name, const std::string& target,
                                  bool targetIsZone, ValidationCtx& ctx, bool* done) {
    Link l = step(name, w.zone, *w.keys, ctx);
    *done = true;
    switch (l.kind) {
        case Link::SecureZone:
            *done = false;
            return {Link::SecureZone, name, l.keys, ""};
        case Link::NotCut:
            if (targetIsZone && name == target)
                return {Link::Bogus, "", nullptr,
                        target + " signs records but " + w.zone + " proves it is no zone",
                        BogusReason::SignerNotAZone};
            *done = false;
            return w;
        case Link::NoName:
            return {Link::Bogus, "", nullptr,
                    l.reason + " (per " + w.zone + "), yet " + target + " answers",
                    BogusReason::SignerNotAZone};
        default:
            return {l.kind, name, nullptr, l.reason, l.bogus};
    }
}

KeyChain::Walk KeyChain::walk(const std::string& target, bool targetIsZone, ValidationCtx& ctx) {
    if (!isAtOrBelow(target, anchorZone_))
        return {Link::Insecure, "", nullptr,
                target + " is outside the trust anchor's zone " + anchorZone_};
    Link a = anchorLink(ctx);
    if (a.kind != Link::SecureZone) return {a.kind, anchorZone_, nullptr, a.reason, a.bogus};
    Walk w{Link::SecureZone, anchorZone_, a.keys, ""};
    auto labels = labelsOf(target);
    size_t base = labelsOf(anchorZone_).size();
    if (labels.size() - base > limits_.maxChainDepth)
        return {Link::Bogus, "", nullptr,
                target + ": more than " + std::to_string(limits_.maxChainDepth) +
                    " labels below the anchor",
                BogusReason::WorkLimit};
    for (size_t n = base + 1; n <= labels.size(); ++n) {
        bool done = false;
        w = stepDown(std::move(w), joinLast(labels, n), target, targetIsZone, ctx, &done);
        if (done) return w;
    }
    return w;
}

}  // namespace danerelay::dns
