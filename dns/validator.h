// validator.h — DNSSEC validation in-process, from a trust anchor.
//
// With dns.validation "local", danerelay trusts no resolver's AD bit: every
// answer (asked with DO and CD, so a validating resolver on the path hands
// over even what it would reject) is checked here. The chain runs from the
// trust anchor (root.key format: DS or DNSKEY records for one zone) down
// through DS and DNSKEY records, fetched with the same recursive resolvers
// and cached by TTL, to the zone that signed the answer:
//
//   positive answers   every RRset used (CNAMEs included) must carry an
//                      RRSIG by that zone's authenticated DNSKEYs, valid at
//                      the validation time; a wildcard expansion also needs
//                      the proof that the name itself does not exist;
//   NXDOMAIN / NODATA  proven by NSEC or NSEC3 records whose own RRSIGs are
//                      verified first (ldns's denial checks do not look at
//                      signatures); NSEC proofs are checked here (exact
//                      match, empty non-terminal, closest encloser and
//                      wildcard), and so are NSEC3 proofs (RFC 5155 8:
//                      closest encloser, next closer, wildcard, opt-out);
//   insecure           only where a signed denial of DS proves an unsigned
//                      delegation (or an NSEC3 opt-out span covers it), or
//                      the name lies outside the anchor's zone.
//
// Everything else is Bogus, with the reason named. Work caps (RRSIGs tried
// per RRset, NSEC3 iterations, chain depth, fetches per validation) bound
// what a hostile zone can cost. validate() blocks (it fetches keys): call it
// from a worker thread, never the event loop. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "dns/answer.h"

namespace danerelay::dns {

struct Response;  // response.h

struct ValidatorLimits {
    unsigned maxSignaturesPerRrset = 4;  // RRSIGs tried for one RRset
    unsigned maxKeysPerSignature = 4;    // DNSKEYs of its key tag tried for one RRSIG
    unsigned maxKeysPerSet = 16;         // DNSKEYs considered in one set
    unsigned maxNsec3Iterations = 150;   // RFC 9276: more is treated as insecure
    unsigned maxDenialRecords = 8;       // NSEC/NSEC3 RRsets checked for one proof
    unsigned maxChainDepth = 16;         // labels walked below the anchor
    unsigned maxFetches = 40;            // DS/DNSKEY queries for one validation
    unsigned maxValidationMs = 15000;    // wall-clock budget for one validation's fetches
    uint32_t maxCacheTtl = 3600;         // DS/DNSKEY results cached at most this long
    uint32_t failureCacheTtl = 5;        // bogus/indeterminate links are re-fetched soon
};

struct Verdict {
    Security security = Security::Indeterminate;
    std::string reason;  // why it is not Secure (and for Secure, the signer)
};

class Validator {
  public:
    // Fetch: one blocking DNS query (DO and CD set) → the raw response.
    using Fetch =
        std::function<Result<std::vector<uint8_t>>(const std::string& name, uint16_t type)>;

    // Anchor text in root.key / zone-file format: DS or DNSKEY records of one
    // zone; comments (;) and blank lines allowed. Errors name where:line.
    static Result<std::shared_ptr<Validator>> create(const std::string& anchorText,
                                                     const std::string& where, Fetch fetch,
                                                     ValidatorLimits limits = {});
    static Result<std::shared_ptr<Validator>> fromFile(const std::string& anchorFile, Fetch fetch,
                                                       ValidatorLimits limits = {});
    ~Validator();

    // The response `wire` to (qname, qtype); now = validation time (Unix s).
    // Checks exactly the RRsets readResponse() resolves the question to (the
    // CNAME chain and the data, or the denial at the chain's end); a Secure
    // response with records beside them that no proof covers is Bogus.
    Verdict validate(const uint8_t* wire, size_t len, const std::string& qname, uint16_t qtype,
                     int64_t now);
    Verdict validate(const Response& r, int64_t now);

    // What delivery sees: the response's chain with the verdict as its
    // security, built from the RRsets just proven and nothing else; Bogus
    // and Indeterminate withhold every record (ServFail, the reason in
    // detail).
    Answer answer(const Response& r, int64_t now, Verdict* verdict = nullptr);

    const std::string& anchorZone() const { return anchorZone_; }

    struct Impl;

  private:
    Validator() = default;
    std::string anchorZone_;
    std::unique_ptr<Impl> impl_;
};

// A blocking query for the validator's key fetches (on a worker thread):
// UDP with EDNS0 1232, DO and CD, TCP when truncated; `attempts` tries in
// all, each (host, port) in turn.
Validator::Fetch blockingFetcher(std::vector<std::pair<std::string, uint16_t>> servers,
                                 unsigned timeoutMs, unsigned attempts);

}  // namespace danerelay::dns
