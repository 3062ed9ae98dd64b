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
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
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

// A zone's DNSKEY records with each one's public key converted at most
// once. Thread-safe: the records never change; a key's conversion happens
// under the mutex, and the EVP_PKEY, once made, is only read (OpenSSL
// allows one key in several verifications at once).
class ZoneKeys;
using SharedKeys = std::shared_ptr<const ZoneKeys>;

class ZoneKeys {
  public:
    explicit ZoneKeys(List rrs);
    ZoneKeys(const ZoneKeys&) = delete;
    ZoneKeys& operator=(const ZoneKeys&) = delete;

    const ldns_rr_list* rrs() const { return rrs_.get(); }
    size_t size() const { return ldns_rr_list_rr_count(rrs_.get()); }
    // The public key of record i, converted at the first call and kept;
    // null (also kept) if it cannot be: an algorithm supportedAlgorithm()
    // does not name, or key data OpenSSL refuses. Valid while *this lives.
    EVP_PKEY* publicKey(size_t i) const;

  private:
    friend SharedKeys zoneKeysOf(const ldns_rr_list* l, const ZoneKeys* converted);
    List rrs_;
    mutable std::mutex mu_;
    mutable std::vector<PKey> keys_;     // beside rrs_, by index
    mutable std::vector<uint8_t> done_;  // conversion tried (keys_[i] may be null)
};

// A deep copy of `l` as zone keys. With `converted`: the keys it has
// already converted for records identical to ours (ldns_rr_compare) come
// along, so the key that signed the DNSKEY set is not converted again.
SharedKeys zoneKeysOf(const ldns_rr_list* l, const ZoneKeys* converted = nullptr);

// An RRset signed by `zone` with `keys`: the first RRSIG that verifies at
// `now`. Empty: verified, and *good (if asked) is the RRSIG that did it.
Why verifyRrset(const RrSet& set, const std::string& zone, const ZoneKeys& keys,
                const ValidatorLimits& limits, int64_t now, const ldns_rr** good = nullptr);

}  // namespace danerelay::dns
