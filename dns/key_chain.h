// key_chain.h — the chain of trust from the anchor down (internal to dns/).
//
// A KeyChain holds the trust anchor (DS or DNSKEY records of one zone) and
// walks from it towards a name, one label at a time: at each name below a
// secure zone it asks for DS (fetched through key_fetch, verified with the
// parent's keys) and either finds a secure delegation (then the child's
// DNSKEY set, which must match a usable DS and be signed by the matching
// key), an unsigned delegation (a signed denial of DS, an opt-out span, or
// DS records of no supported algorithm: Insecure), no zone cut (a signed
// NODATA for DS), or a proven NXDOMAIN. Each link is cached by TTL (at most
// limits.maxCacheTtl; failures limits.failureCacheTtl; at most
// limits.maxCacheEntries names, then the cache starts afresh), so a
// thousand answers from one zone cost its keys once.
// Thread-safe: the cache is behind a mutex; a walk itself holds no lock
// (two walks may fetch the same link; both results are equally good).
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "dns/dnssec_util.h"

namespace danerelay::dns {

class KeyChain {
  public:
    // What the walk found at one name below the anchor.
    struct Link {
        enum Kind { SecureZone, NotCut, Insecure, Bogus, Indeterminate, NoName };
        Kind kind = Indeterminate;
        SharedKeys keys;  // SecureZone: the zone's authenticated DNSKEYs (converted once)
        std::string reason;
        BogusReason bogus = BogusReason::None;  // Bogus: which check failed
        int64_t expires = 0;
    };
    // Where a walk ended: a secure zone (then its keys), or why not.
    struct Walk {
        Link::Kind kind;  // SecureZone (zone/keys below), Insecure, Bogus, Indeterminate
        std::string zone;
        SharedKeys keys;
        std::string reason;
        BogusReason bogus = BogusReason::None;
    };

    KeyChain(Validator::Fetch fetch, ValidatorLimits limits)
        : fetch_(std::move(fetch)),
          limits_(limits),
          verified_(std::make_shared<VerifiedSignatures>(
              limits.maxVerifiedSignatures, limits.maxVerifiedBytes, limits.maxCacheTtl)) {}

    // One anchor record (DS or DNSKEY) of the anchor zone; the caller has
    // checked its owner and type.
    void addAnchor(Rr rr);
    void setAnchorZone(std::string zone) { anchorZone_ = std::move(zone); }
    const std::string& anchorZone() const { return anchorZone_; }
    const ValidatorLimits& limits() const { return limits_; }

    // From the anchor down towards `target`. targetIsZone: the target must
    // be a zone (a signer); else stop at the deepest zone containing target.
    Walk walk(const std::string& target, bool targetIsZone, ValidationCtx& ctx);

  private:
    std::optional<Link> cached(const std::string& name, int64_t now);
    Link remember(const std::string& name, Link l, uint32_t ttl, int64_t now);
    Link anchorLink(ValidationCtx& ctx);
    List trustedAnchorKeys(const RrSet& keys) const;
    Link step(const std::string& name, const std::string& zone, const ZoneKeys& zoneKeys,
              ValidationCtx& ctx);
    Link stepWithoutDs(const std::string& name, const std::string& zone, const ZoneKeys& zoneKeys,
                       const Pkt& p, ValidationCtx& ctx);
    Link stepToKeys(const std::string& name, const std::string& zone, const RrSet& ds,
                    const List& usable, ValidationCtx& ctx);
    Walk stepDown(Walk w, const std::string& name, const std::string& target, bool targetIsZone,
                  ValidationCtx& ctx, bool* done);

    Validator::Fetch fetch_;
    ValidatorLimits limits_;
    std::string anchorZone_;
    List anchorDs_ = newList();    // DS anchors
    List anchorKeys_ = newList();  // DNSKEY anchors
    std::mutex mu_;
    std::map<std::string, Link> cache_;  // name → link (the anchor zone too)
    // Signatures the keys of cache_ verified (every SecureZone link's keys
    // remember theirs here).
    std::shared_ptr<VerifiedSignatures> verified_;
};

}  // namespace danerelay::dns
