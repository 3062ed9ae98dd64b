// dnssec_util.h — the vocabulary the validator's parts share (internal to
// dns/: key_chain, denial, key_fetch and validator include it; nothing
// outside dns/ may).
//
// Names are compared in fqdn form (lower case, trailing dot) or, where order
// or ancestry matters, as canonical wire-format dnames, never as text.
// verifyRrset() is the one signature check: at most limits.maxSignaturesPerRrset
// RRSIGs tried, each against at most limits.maxKeysPerSignature zone keys of
// its key tag and algorithm, at the injected validation time. A failure is a
// Why: the BogusReason it amounts to and the text that is logged.
//
// The zone keys are a ZoneKeys: the DNSKEY records and, beside each, its
// public key as OpenSSL's EVP_PKEY, converted the first time a signature
// needs it and kept (and freed) with the records, so a key cached in the
// key chain is converted once however many signatures it checks. The
// signed data is built as ldns_verify_rrsig_keylist_time builds it (type
// covered, the RRSIG's original TTL and wildcard owner, canonical form and
// order, the RRSIG's RDATA without its signature) and checked with ldns's
// ldns_verify_rrsig_evp_raw; only the algorithms supportedAlgorithm() names
// are verified (RSAMD5, DSA and GOST RRSIGs fail as unsupported).
//
// Signatures that verified are remembered (VerifiedSignatures, one per
// KeyChain, reached through the ZoneKeys the chain hands out): keyed by
// every byte the verification read — the DNSKEY's RDATA, the RRSIG's
// signature field and the signed data (the RRSIG's RDATA without its
// signature, with its validity period, then the canonical RRset at the
// original TTL) — so the same RRSIG over the same RRset by the same key
// (the NSEC proof of a wildcard, the wildcard RRset itself, repeated for
// every name it synthesises) is computed once. Only the arithmetic is
// remembered: the validity period is checked at every use, failures are
// never remembered, and an RRset that differs in one byte of its records
// (or of the signature, or of the key) is verified afresh. The record TTLs
// are not signed (the original TTL is), so an RRset whose TTLs a cache
// counted down is the same signed data, as it is for ldns.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dns/ldns_ptr.h"
#include "dns/response.h"
#include "dns/validator.h"

namespace danerelay::dns {

// One validation's running totals: the time it validates at, its wall-clock
// budget for fetches, and the fetches made so far.
struct ValidationCtx {
    int64_t now;  // the validation time (Unix seconds), injected
    std::chrono::steady_clock::time_point deadline;
    unsigned fetches = 0;
};

// Why a check failed: empty text means it did not.
struct Why {
    BogusReason kind = BogusReason::None;
    std::string text;
    bool empty() const { return text.empty(); }
};

std::string nameOf(const ldns_rdf* d);
// Canonical (lower-case) dname of `name`; null if it does not parse.
Rdf dname(const std::string& name);
// "a.b.c." → ["a","b","c"]; "." → [].
std::vector<std::string> labelsOf(const std::string& name);
// The name made of the last n labels ("." for none).
std::string joinLast(const std::vector<std::string>& labels, size_t n);
// On wire-format labels, never on presentation text: "x\\.t." is one label
// under the root, not a name below t.
bool isAtOrBelow(const std::string& name, const std::string& zone);
std::string statusText(ldns_status s);
uint16_t typeOf(const ldns_rr* rr);
// The smallest TTL in l, at most cap.
uint32_t minTtl(const ldns_rr_list* l, uint32_t cap);
bool supportedAlgorithm(uint8_t a);
bool supportedDigest(uint8_t d);
bool bitmapHas(const ldns_rdf* bitmap, uint16_t t);

// Does the NSEC or NSEC3 span strictly cover `name` (owner < name < next in
// canonical order, the last record wrapping round to the apex)? A record
// whose owner IS the name proves that the name exists, never that it does
// not (ldns_nsec_covers_name counts it as covering). For NSEC3, `name` is
// the hashed owner name (base32 label + zone).
bool strictlyCovers(const ldns_rr* rr, const ldns_rdf* name);

// Signatures whose arithmetic verified, by the exact bytes checked (see
// the top of this file). Bounded: at most maxEntries and maxBytes of keys
// (oldest dropped first; a key over maxBytes / 64 is not kept at all), each
// kept at most maxAge seconds of validation time. Thread-safe.
class VerifiedSignatures {
  public:
    VerifiedSignatures(size_t maxEntries, size_t maxBytes, uint32_t maxAge)
        : maxEntries_(maxEntries), maxBytes_(maxBytes), maxAge_(maxAge) {}
    VerifiedSignatures(const VerifiedSignatures&) = delete;
    VerifiedSignatures& operator=(const VerifiedSignatures&) = delete;

    // Did exactly these bytes verify, no longer than maxAge before `now`?
    bool contains(std::string_view key, int64_t now) const;
    void add(std::string key, int64_t now);
    size_t size() const;
    size_t bytes() const;

  private:
    struct Entry {
        std::string key;
        int64_t added;
    };
    void dropOldest();  // under mu_

    const size_t maxEntries_, maxBytes_;
    const uint32_t maxAge_;
    mutable std::mutex mu_;
    std::list<Entry> order_;                                                  // oldest first
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;  // views into order_
    size_t bytes_ = 0;
};

// A zone's DNSKEY records with each one's public key converted at most
// once. Thread-safe: the records never change; a key's conversion happens
// under the mutex, and the EVP_PKEY, once made, is only read (OpenSSL
// allows one key in several verifications at once).
class ZoneKeys;
using SharedKeys = std::shared_ptr<const ZoneKeys>;

class ZoneKeys {
  public:
    // verified: where signatures these keys checked are remembered (null:
    // nowhere, every signature is computed).
    explicit ZoneKeys(List rrs, std::shared_ptr<VerifiedSignatures> verified = nullptr);
    ZoneKeys(const ZoneKeys&) = delete;
    ZoneKeys& operator=(const ZoneKeys&) = delete;

    const ldns_rr_list* rrs() const { return rrs_.get(); }
    size_t size() const { return ldns_rr_list_rr_count(rrs_.get()); }
    // The public key of record i, converted at the first call and kept;
    // null (also kept) if it cannot be: an algorithm supportedAlgorithm()
    // does not name, or key data OpenSSL refuses. Valid while *this lives.
    EVP_PKEY* publicKey(size_t i) const;
    // Record i's RDATA in wire form (what identifies the key in
    // VerifiedSignatures); empty if it has none.
    const std::string& rdataWire(size_t i) const { return rdata_[i]; }
    VerifiedSignatures* verified() const { return verified_.get(); }

  private:
    friend SharedKeys zoneKeysOf(const ldns_rr_list* l, const ZoneKeys* converted,
                                 std::shared_ptr<VerifiedSignatures> verified);
    List rrs_;
    std::vector<std::string> rdata_;  // beside rrs_, by index
    std::shared_ptr<VerifiedSignatures> verified_;
    mutable std::mutex mu_;
    mutable std::vector<PKey> keys_;     // beside rrs_, by index
    mutable std::vector<uint8_t> done_;  // conversion tried (keys_[i] may be null)
};

// A deep copy of `l` as zone keys. With `converted`: the keys it has
// already converted for records identical to ours (ldns_rr_compare) come
// along, so the key that signed the DNSKEY set is not converted again.
// With `verified`: the signatures they check are remembered there.
SharedKeys zoneKeysOf(const ldns_rr_list* l, const ZoneKeys* converted = nullptr,
                      std::shared_ptr<VerifiedSignatures> verified = nullptr);

// An RRset signed by `zone` with `keys`: the first RRSIG that verifies at
// `now`. Empty: verified, and *good (if asked) is the RRSIG that did it.
Why verifyRrset(const RrSet& set, const std::string& zone, const ZoneKeys& keys,
                const ValidatorLimits& limits, int64_t now, const ldns_rr** good = nullptr);

}  // namespace danerelay::dns
