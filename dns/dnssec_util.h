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
#pragma once

#include <chrono>
#include <cstdint>
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

// An RRset signed by `zone` with `keys`: the first RRSIG that verifies at
// `now`. Empty: verified, and *good (if asked) is the RRSIG that did it.
Why verifyRrset(const RrSet& set, const std::string& zone, const ldns_rr_list* keys,
                const ValidatorLimits& limits, int64_t now, const ldns_rr** good = nullptr);

}  // namespace danerelay::dns
