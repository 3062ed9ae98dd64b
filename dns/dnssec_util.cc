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
// algorithm, at most `max` of them, by index.
std::vector<size_t> candidateKeys(const ldns_rr* sig, const ZoneKeys& keys, unsigned max) {
    uint16_t tag = ldns_rdf2native_int16(ldns_rr_rrsig_keytag(sig));
    uint8_t alg = ldns_rdf2native_int8(ldns_rr_rrsig_algorithm(sig));
    std::vector<size_t> out;
    for (size_t k = 0; k < keys.size() && out.size() < max; ++k) {
        const ldns_rr* key = ldns_rr_list_rr(keys.rrs(), k);
        if (ldns_rr_rd_count(key) == 4 && ldns_calc_keytag(key) == tag &&
            ldns_rdf2native_int8(ldns_rr_dnskey_algorithm(key)) == alg &&
            (ldns_rdf2native_int16(ldns_rr_dnskey_flags(key)) & LDNS_KEY_ZONE_KEY))
            out.push_back(k);
    }
    return out;
}

std::atomic<uint64_t> conversions{0};

// The DNSKEY's public key as OpenSSL's, converted by the same ldns calls
// ldns_verify_rrsig_buffers_raw makes for each algorithm; null if it
// cannot be.
PKey convertKey(const ldns_rr* key) {
    conversions.fetch_add(1, std::memory_order_relaxed);
    if (ldns_rr_rd_count(key) != 4 || !ldns_rr_rdf(key, 2) || !ldns_rr_rdf(key, 3)) return nullptr;
    uint8_t alg = ldns_rdf2native_int8(ldns_rr_dnskey_algorithm(key));
    const ldns_rdf* data = ldns_rr_rdf(key, 3);
    const unsigned char* d = ldns_rdf_data(data);
    size_t n = ldns_rdf_size(data);
    switch (alg) {
        case LDNS_RSASHA1:
        case LDNS_RSASHA1_NSEC3:
        case LDNS_RSASHA256:
        case LDNS_RSASHA512: {
            // ldns hands RSA keys over as OpenSSL's legacy RSA type, as its
            // own verification does.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
            RSA* rsa = ldns_key_buf2rsa_raw(d, n);
            if (!rsa) return nullptr;
            PKey k(EVP_PKEY_new());
            if (!k || EVP_PKEY_assign_RSA(k.get(), rsa) != 1) {
                RSA_free(rsa);
                return nullptr;
            }
#pragma GCC diagnostic pop
            return k;
        }
        case LDNS_ECDSAP256SHA256:
        case LDNS_ECDSAP384SHA384:
            return PKey(ldns_ecdsa2pkey_raw(d, n, alg));
        case LDNS_ED25519:
            return PKey(ldns_ed255192pkey_raw(d, n));
        case LDNS_ED448:
            return PKey(ldns_ed4482pkey_raw(d, n));
        default:
            return nullptr;
    }
}

// The digest an algorithm's signatures are made over (null: EdDSA signs
// the data itself).
const EVP_MD* digestOf(uint8_t alg) {
    switch (alg) {
        case LDNS_RSASHA1:
        case LDNS_RSASHA1_NSEC3:
            return EVP_sha1();
        case LDNS_RSASHA256:
        case LDNS_ECDSAP256SHA256:
            return EVP_sha256();
        case LDNS_ECDSAP384SHA384:
            return EVP_sha384();
        case LDNS_RSASHA512:
            return EVP_sha512();
        default:
            return nullptr;
    }
}

// The RRset as it was signed: a copy with the RRSIG's original TTL, the
// wildcard owner "*.<last labels>" where the RRSIG's labels are fewer than
// the owner's (RFC 4035 5.3.2), every record in canonical form, sorted
// into canonical order (ldns_rrset_use_signature_ttl and
// ldns_rr_list_sort, as ldns_verify_rrsig_keylist_time does).
List asSigned(const ldns_rr_list* rrset, const ldns_rr* sig) {
    List clone(ldns_rr_list_clone(rrset));
    if (!clone) return nullptr;
    uint32_t origTtl = ldns_rdf2native_int32(ldns_rr_rrsig_origttl(sig));
    uint8_t labels = ldns_rdf2native_int8(ldns_rr_rrsig_labels(sig));
    for (size_t i = 0; i < ldns_rr_list_rr_count(clone.get()); ++i) {
        ldns_rr* rr = ldns_rr_list_rr(clone.get(), i);
        if (labels < ldns_dname_label_count(ldns_rr_owner(rr))) {
            Rdf chopped(ldns_rdf_clone(ldns_rr_owner(rr)));
            while (chopped && labels < ldns_dname_label_count(chopped.get()))
                chopped = Rdf(ldns_dname_left_chop(chopped.get()));
            Rdf wildcard(ldns_dname_new_frm_str("*"));
            if (!chopped || !wildcard ||
                ldns_dname_cat(wildcard.get(), chopped.get()) != LDNS_STATUS_OK)
                return nullptr;
            ldns_rdf_deep_free(ldns_rr_owner(rr));
            ldns_rr_set_owner(rr, wildcard.release());
        }
        ldns_rr_set_ttl(rr, origTtl);
        ldns_rr2canonical(rr);
    }
    ldns_rr_list_sort(clone.get());
    return clone;
}

// The data an RRSIG signs (RFC 4034 3.1.8.1): the RRSIG's RDATA without
// the signature, then the RRset as signed; as ldns's
// ldns_prepare_for_verify makes it.
ldns_status signedData(const ldns_rr_list* rrset, const ldns_rr* sig, ldns_buffer* data) {
    if (ldns_rr_rd_count(sig) != 9 || !ldns_rr_rdf(sig, 8))
        return LDNS_STATUS_MISSING_RDATA_FIELDS_RRSIG;
    if (ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(sig)) !=
        ldns_rr_get_type(ldns_rr_list_rr(rrset, 0)))
        return LDNS_STATUS_CRYPTO_TYPE_COVERED_ERR;
    uint8_t alg = ldns_rdf2native_int8(ldns_rr_rrsig_algorithm(sig));
    if (!supportedAlgorithm(alg)) return LDNS_STATUS_CRYPTO_UNKNOWN_ALGO;
    List signedSet = asSigned(rrset, sig);
    if (!signedSet) return LDNS_STATUS_MEM_ERR;
    if (ldns_rrsig2buffer_wire(data, sig) != LDNS_STATUS_OK ||
        ldns_rr_list2buffer_wire(data, signedSet.get()) != LDNS_STATUS_OK)
        return LDNS_STATUS_MEM_ERR;
    return LDNS_STATUS_OK;
}

// The RRSIG's signature as OpenSSL wants it: ECDSA re-encoded as DER.
ldns_status rawSignature(const ldns_rr* sig, ldns_buffer* rawsig) {
    uint8_t alg = ldns_rdf2native_int8(ldns_rr_rrsig_algorithm(sig));
    if (alg == LDNS_ECDSAP256SHA256 || alg == LDNS_ECDSAP384SHA384) {
        if (ldns_convert_ecdsa_rrsig_rdf2asn1(rawsig, ldns_rr_rdf(sig, 8)) != LDNS_STATUS_OK)
            return LDNS_STATUS_MEM_ERR;
    } else if (ldns_rdf2buffer_wire(rawsig, ldns_rr_rdf(sig, 8)) != LDNS_STATUS_OK) {
        return LDNS_STATUS_MEM_ERR;
    }
    return LDNS_STATUS_OK;
}

void appendSized(std::string& out, const void* p, size_t n) {
    uint32_t len = static_cast<uint32_t>(n);
    out.append(reinterpret_cast<const char*>(&len), sizeof len);
    out.append(static_cast<const char*>(p), n);
}

// What VerifiedSignatures knows a verification by: the key's RDATA, the
// signature field as received, the signed data, each with its length.
std::string verifiedKey(const std::string& keyRdata, const ldns_rr* sig, const ldns_buffer* data) {
    const ldns_rdf* s = ldns_rr_rdf(sig, 8);
    std::string key;
    key.reserve(12 + keyRdata.size() + ldns_rdf_size(s) + ldns_buffer_position(data));
    appendSized(key, keyRdata.data(), keyRdata.size());
    appendSized(key, ldns_rdf_data(s), ldns_rdf_size(s));
    appendSized(key, ldns_buffer_begin(data), ldns_buffer_position(data));
    return key;
}

std::atomic<uint64_t> verifications{0};
std::atomic<uint64_t> verifiedHits{0};

// The RRSIG's validity period at `now`, in serial-number arithmetic
// (RFC 4034 3.1.5) exactly as ldns_rrsig_check_timestamps does it.
ldns_status checkTimes(const ldns_rr* sig, int64_t now) {
    uint32_t inception = ldns_rdf2native_int32(ldns_rr_rrsig_inception(sig));
    uint32_t expiration = ldns_rdf2native_int32(ldns_rr_rrsig_expiration(sig));
    uint32_t at = static_cast<uint32_t>(now);
    auto before = [](uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; };
    if (before(expiration, inception)) return LDNS_STATUS_CRYPTO_EXPIRATION_BEFORE_INCEPTION;
    if (before(at, inception)) return LDNS_STATUS_CRYPTO_SIG_NOT_INCEPTED;
    if (before(expiration, at)) return LDNS_STATUS_CRYPTO_SIG_EXPIRED;
    return LDNS_STATUS_OK;
}

// One RRSIG over the RRset against the candidate keys: the signature
// first (remembered, or computed and then remembered), then (only if some
// key made it) its validity period, as ldns_verify_rrsig_keylist_time
// orders them. Not OK: the first key's failure.
ldns_status verifySig(const ldns_rr_list* rrset, const ldns_rr* sig, const ZoneKeys& keys,
                      const std::vector<size_t>& candidates, int64_t now) {
    if (candidates.empty()) return LDNS_STATUS_CRYPTO_NO_MATCHING_KEYTAG_DNSKEY;
    Buffer data(ldns_buffer_new(LDNS_MAX_PACKETLEN));
    if (!data) return LDNS_STATUS_MEM_ERR;
    if (ldns_status st = signedData(rrset, sig, data.get()); st != LDNS_STATUS_OK) return st;
    VerifiedSignatures* verified = keys.verified();
    Buffer rawsig;
    const EVP_MD* md = digestOf(ldns_rdf2native_int8(ldns_rr_rrsig_algorithm(sig)));
    ldns_status result = LDNS_STATUS_CRYPTO_NO_MATCHING_KEYTAG_DNSKEY;
    for (size_t k : candidates) {
        std::string key;
        if (verified && !keys.rdataWire(k).empty()) {
            key = verifiedKey(keys.rdataWire(k), sig, data.get());
            if (verified->contains(key, now)) {
                verifiedHits.fetch_add(1, std::memory_order_relaxed);
                return checkTimes(sig, now);
            }
        }
        EVP_PKEY* pkey = keys.publicKey(k);
        ldns_status st = LDNS_STATUS_CRYPTO_BOGUS;
        if (pkey && !rawsig) {
            rawsig.reset(ldns_buffer_new(LDNS_MAX_PACKETLEN));
            if (!rawsig) return LDNS_STATUS_MEM_ERR;
            if (ldns_status raw = rawSignature(sig, rawsig.get()); raw != LDNS_STATUS_OK)
                return raw;
        }
        if (pkey) {
            verifications.fetch_add(1, std::memory_order_relaxed);
            st =
                ldns_verify_rrsig_evp_raw(ldns_buffer_begin(rawsig.get()),
                                          ldns_buffer_position(rawsig.get()), data.get(), pkey, md);
        }
        if (st == LDNS_STATUS_OK) {
            if (!key.empty()) verified->add(std::move(key), now);
            return checkTimes(sig, now);
        }
        if (result == LDNS_STATUS_CRYPTO_NO_MATCHING_KEYTAG_DNSKEY) result = st;
    }
    return result;
}

// Record rr's RDATA in wire form; empty if it cannot be written.
std::string rdataWireOf(const ldns_rr* rr) {
    Buffer b(ldns_buffer_new(512));
    if (!b || ldns_rr_rdata2buffer_wire(b.get(), rr) != LDNS_STATUS_OK) return {};
    return std::string(reinterpret_cast<const char*>(ldns_buffer_begin(b.get())),
                       ldns_buffer_position(b.get()));
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

bool VerifiedSignatures::contains(std::string_view key, int64_t now) const {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    int64_t added = it->second->added;
    return now > added - static_cast<int64_t>(maxAge_) &&
           now < added + static_cast<int64_t>(maxAge_);
}

void VerifiedSignatures::dropOldest() {
    index_.erase(order_.front().key);
    bytes_ -= order_.front().key.size();
    order_.pop_front();
}

void VerifiedSignatures::add(std::string key, int64_t now) {
    if (maxEntries_ == 0 || key.size() > maxBytes_ / 64) return;
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
        it->second->added = now;  // verified again (the entry had expired)
        return;
    }
    while (!order_.empty() && (order_.size() >= maxEntries_ || bytes_ + key.size() > maxBytes_ ||
                               order_.front().added + static_cast<int64_t>(maxAge_) <= now))
        dropOldest();
    bytes_ += key.size();
    order_.push_back({std::move(key), now});
    auto last = std::prev(order_.end());
    index_.emplace(std::string_view(last->key), last);
}

size_t VerifiedSignatures::size() const {
    std::lock_guard lock(mu_);
    return order_.size();
}

size_t VerifiedSignatures::bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
}

ZoneKeys::ZoneKeys(List rrs, std::shared_ptr<VerifiedSignatures> verified)
    : rrs_(rrs ? std::move(rrs) : newList()), verified_(std::move(verified)) {
    keys_.resize(size());
    done_.resize(size());
    rdata_.reserve(size());
    for (size_t i = 0; i < size(); ++i)
        rdata_.push_back(rdataWireOf(ldns_rr_list_rr(rrs_.get(), i)));
}

EVP_PKEY* ZoneKeys::publicKey(size_t i) const {
    std::lock_guard lock(mu_);
    if (i >= keys_.size()) return nullptr;
    if (!done_[i]) {
        keys_[i] = convertKey(ldns_rr_list_rr(rrs_.get(), i));
        done_[i] = 1;
    }
    return keys_[i].get();
}

SharedKeys zoneKeysOf(const ldns_rr_list* l, const ZoneKeys* converted,
                      std::shared_ptr<VerifiedSignatures> verified) {
    auto keys =
        std::make_shared<ZoneKeys>(List(l ? ldns_rr_list_clone(l) : nullptr), std::move(verified));
    if (converted) {
        std::lock_guard lock(converted->mu_);  // keys is not shared yet
        for (size_t i = 0; i < keys->size(); ++i) {
            const ldns_rr* mine = ldns_rr_list_rr(keys->rrs(), i);
            for (size_t j = 0; j < converted->size(); ++j) {
                EVP_PKEY* k = converted->keys_[j].get();
                if (!k || ldns_rr_compare(mine, ldns_rr_list_rr(converted->rrs(), j)) != 0)
                    continue;
                if (EVP_PKEY_up_ref(k) == 1) {
                    keys->keys_[i] = PKey(k);
                    keys->done_[i] = 1;
                }
                break;
            }
        }
    }
    return keys;
}

uint64_t dnskeyConversions() {
    return conversions.load(std::memory_order_relaxed);
}

uint64_t signatureVerifications() {
    return verifications.load(std::memory_order_relaxed);
}

uint64_t verifiedSignatureHits() {
    return verifiedHits.load(std::memory_order_relaxed);
}

Why verifyRrset(const RrSet& set, const std::string& zone, const ZoneKeys& keys,
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
        ldns_status st = verifySig(set.rrs.get(), sig, keys,
                                   candidateKeys(sig, keys, limits.maxKeysPerSignature), now);
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
