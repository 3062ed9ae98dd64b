#include "dns/dnssec_util.h"

#include <algorithm>

namespace danerelay::dns {

std::string nameOf(const ldns_rdf* d) {
    return fqdnOf(d);
}

Rdf dname(const std::string& name) {
    ldns_rdf* d = ldns_dname_new_frm_str(name.c_str());
    if (d) ldns_dname2canonical(d);
    return Rdf(d);
}

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

bool bitmapHas(const ldns_rdf* bitmap, uint16_t t) {
    return bitmap && ldns_nsec_bitmap_covers_type(bitmap, static_cast<ldns_rr_type>(t));
}

namespace {

// The name after an NSEC or NSEC3 record's owner, as a dname; null if the
// record has none.
Rdf nextNameOf(const ldns_rr* rr) {
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NSEC) {
        if (ldns_rr_rd_count(rr) < 1 || !ldns_rr_rdf(rr, 0)) return nullptr;
        return Rdf(ldns_rdf_clone(ldns_rr_rdf(rr, 0)));
    }
    if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_NSEC3) return nullptr;
    const ldns_rdf* hash = ldns_nsec3_next_owner(rr);
    if (!hash || ldns_rdf_size(hash) < 2) return nullptr;
    // The next hashed owner in base32hex, under the record's zone.
    CBuffer b32(ldns_rdf2str(hash));
    if (!b32) return nullptr;
    Rdf zone(ldns_dname_left_chop(ldns_rr_owner(rr)));
    Rdf first(ldns_dname_new_frm_str(b32.get()));
    if (!zone || !first || ldns_dname_cat(first.get(), zone.get()) != LDNS_STATUS_OK)
        return nullptr;
    return first;
}

// What an ldns verification status amounts to.
BogusReason reasonOf(ldns_status st) {
    switch (st) {
        case LDNS_STATUS_CRYPTO_SIG_EXPIRED:
            return BogusReason::SignatureExpired;
        case LDNS_STATUS_CRYPTO_SIG_NOT_INCEPTED:
            return BogusReason::SignatureNotYetValid;
        case LDNS_STATUS_CRYPTO_UNKNOWN_ALGO:
        case LDNS_STATUS_CRYPTO_ALGO_NOT_IMPL:
            return BogusReason::UnsupportedAlgorithm;
        default:
            return BogusReason::NoValidRrsig;
    }
}

// The zone keys of `keys` that may have made `sig`: its key tag and
// algorithm, at most `max` of them. A view: the records stay keys's.
RefList candidateKeys(const ldns_rr* sig, const ldns_rr_list* keys, unsigned max) {
    uint16_t tag = ldns_rdf2native_int16(ldns_rr_rrsig_keytag(sig));
    uint8_t alg = ldns_rdf2native_int8(ldns_rr_rrsig_algorithm(sig));
    // ldns's list type wants mutable records; it only reads them.
    RefList out = newRefList();
    for (size_t k = 0; k < ldns_rr_list_rr_count(keys) && ldns_rr_list_rr_count(out.get()) < max;
         ++k) {
        ldns_rr* key = ldns_rr_list_rr(keys, k);
        if (ldns_rr_rd_count(key) == 4 && ldns_calc_keytag(key) == tag &&
            ldns_rdf2native_int8(ldns_rr_dnskey_algorithm(key)) == alg &&
            (ldns_rdf2native_int16(ldns_rr_dnskey_flags(key)) & LDNS_KEY_ZONE_KEY))
            ldns_rr_list_push_rr(out.get(), key);
    }
    return out;
}

}  // namespace

bool strictlyCovers(const ldns_rr* rr, const ldns_rdf* name) {
    Rdf next = nextNameOf(rr);
    if (!next) return false;
    Rdf o(ldns_rdf_clone(ldns_rr_owner(rr))), n(ldns_rdf_clone(name));
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

Why verifyRrset(const RrSet& set, const std::string& zone, const ldns_rr_list* keys,
                const ValidatorLimits& limits, int64_t now, const ldns_rr** good) {
    size_t n = ldns_rr_list_rr_count(set.sigs.get());
    if (n == 0) return {BogusReason::NoRrsig, "no RRSIG"};
    // RRSIGs without the records they cover: ldns would read a record
    // that is not there.
    if (ldns_rr_list_rr_count(set.rrs.get()) == 0)
        return {BogusReason::NoValidRrsig, "RRSIG without its RRset"};
    Why why;
    unsigned tried = 0;
    for (size_t i = 0; i < n && tried < limits.maxSignaturesPerRrset; ++i) {
        const ldns_rr* sig = ldns_rr_list_rr(set.sigs.get(), i);
        const ldns_rdf* signer = ldns_rr_rrsig_signame(sig);
        if (!signer || nameOf(signer) != zone) {
            why = {BogusReason::NoValidRrsig,
                   "RRSIG signer " + (signer ? nameOf(signer) : "?") + " is not " + zone};
            continue;
        }
        ++tried;
        RefList candidates = candidateKeys(sig, keys, limits.maxKeysPerSignature);
        ldns_status st = ldns_rr_list_rr_count(candidates.get()) == 0
                             ? LDNS_STATUS_CRYPTO_NO_MATCHING_KEYTAG_DNSKEY
                             : ldns_verify_rrsig_keylist_time(set.rrs.get(), sig, candidates.get(),
                                                              static_cast<time_t>(now), nullptr);
        if (st == LDNS_STATUS_OK) {
            if (good) *good = sig;
            return {};
        }
        why = {reasonOf(st), statusText(st)};
    }
    if (why.empty()) return {BogusReason::NoValidRrsig, "no usable RRSIG"};
    return why;
}

}  // namespace danerelay::dns
