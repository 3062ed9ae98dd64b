// denial.h — proofs that something does not exist (internal to dns/).
//
// proveDenial() checks an NXDOMAIN or NODATA for (name, type) against the
// NSEC or NSEC3 RRsets of a section, signed by `zone` with its
// authenticated `keys`: every proof RRset's own RRSIGs are verified first
// (ldns's denial checks do not look at signatures), then the proof itself:
//
//   NSEC  (RFC 4035 5.4) exact-match NODATA, empty non-terminal, wildcard
//         NODATA, NXDOMAIN with the wildcard denied; an NSEC at a zone cut or
//         DNAME never proves names below it absent (RFC 6840 4.1);
//   NSEC3 (RFC 5155 8) a match for NODATA; closest encloser and next closer
//         with the wildcard covered for NXDOMAIN or matched for wildcard
//         NODATA; an opt-out span (or iterations over the cap, RFC 9276)
//         proves, but only insecurely.
//
// proveWildcardExpansion() is the other half of a wildcard answer: the
// proof that no closer name than the wildcard's exists (RFC 4035 5.3.4,
// RFC 5155 8.8). Neither fetches anything.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dns/dnssec_util.h"

namespace danerelay::dns {

struct Denial {
    bool ok = false;
    bool insecure = false;  // NSEC3 iterations over the cap, or an opt-out span
    bool nxdomain = false;
    BogusReason kind = BogusReason::InvalidDenial;  // when !ok
    std::string why;
    // For an exact match (name exists): its type bitmap says what is there.
    bool exact = false, hasNs = false, hasSoa = false;
    uint32_t ttl = 0;  // of the proof's records, at most limits.maxRecordTtl
};

Denial proveDenial(const std::vector<RrSet>& sets, bool nxdomain, const std::string& name,
                   uint16_t type, const std::string& zone, const ZoneKeys& keys,
                   const ValidatorLimits& limits, int64_t now);

struct WildcardProof {
    bool ok = false;
    bool insecure = false;  // an NSEC3 opt-out span over the next closer name
    std::string insecureWhy;
};

// `owner` was answered by expanding the wildcard at its first sigLabels
// labels (from the RRSIG that verified).
WildcardProof proveWildcardExpansion(const std::vector<RrSet>& authority, const std::string& owner,
                                     size_t sigLabels, const std::string& zone,
                                     const ZoneKeys& keys, const ValidatorLimits& limits,
                                     int64_t now);

// Is there a zone cut or DNAME at the NSEC's owner, above `name`?
bool cutAbove(const ldns_rr* nsec, const std::string& name);

// The closest encloser of name, from the NSEC that covers it.
std::string closestEncloser(const std::string& name, const ldns_rr* cover);

}  // namespace danerelay::dns
