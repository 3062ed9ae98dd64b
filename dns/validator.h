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
// Everything else is Bogus, with the reason named: a BogusReason for code
// and tests, and the text that is logged. Work caps (ValidatorLimits: RRSIGs
// tried per RRset, NSEC3 iterations, chain depth, fetches per validation,
// cache size) bound what a hostile zone can cost. validate() blocks (it
// fetches keys): call it from a worker thread, never the event loop.
// Thread-safe.
//
// Inside dns/: validator.cc coordinates; key_chain.{h,cc} is the chain of
// trust (anchor, DS → DNSKEY, the link cache), denial.{h,cc} the NSEC/NSEC3
// proofs, key_fetch.{h,cc} the DS/DNSKEY queries (and blockingFetcher), and
// dnssec_util.{h,cc} the names and the one RRSIG check they share.
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

// Every cap on what one answer (or a hostile zone) can make the validator
// do or keep. Defaults are what the daemon runs with.
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
    // A DS, DNSKEY or NSEC/NSEC3 record's TTL counts as at most this much
    // (before maxCacheTtl applies to the link).
    uint32_t maxRecordTtl = 3600;
    // Names in the key cache; past it the cache is emptied and starts again
    // (one hostile sender asking for endless names cannot grow it).
    size_t maxCacheEntries = 10000;
    // Signatures remembered as verified (dnssec_util.h VerifiedSignatures):
    // at most this many, in at most this many bytes, each for at most
    // maxCacheTtl; 0 entries: none remembered.
    size_t maxVerifiedSignatures = 10000;
    size_t maxVerifiedBytes = 8 << 20;
};

// Why an answer is Bogus, in the spirit of PowerDNS's vState: the check
// that failed. The text logged (Verdict::reason) is unchanged by it; the
// enum is what code and tests compare.
enum class BogusReason {
    None,                  // not Bogus (Secure, Insecure, Indeterminate)
    NotAnAnswer,           // the response is malformed or not an answer to us
    NoRrsig,               // an RRset in a signed zone carries no RRSIG
    NoValidRrsig,          // RRSIGs present, none verifies (bad signature, wrong signer, no key)
    SignatureExpired,      // the only verifiable RRSIG has expired at the validation time
    SignatureNotYetValid,  // ... or is not yet valid
    UnsupportedAlgorithm,  // signed (or hashed) with an algorithm we cannot check
    NoValidDnskey,         // no DNSKEY set that the anchor or the parent's DS vouches for
    DsMismatch,            // DS records, but no DNSKEY matches any
    WrongSigner,           // signed by a zone that is not the owner's ancestor under the anchor
    SignerNotAZone,        // the signer is proven not to be a zone, or not to exist
    NoDenial,              // a negative answer without signed NSEC/NSEC3 records
    InvalidDenial,         // NSEC/NSEC3 records that do not prove what they must
    UnexpectedRecords,     // records beside a Secure answer that no proof covers
    WorkLimit,             // a ValidatorLimits cap was reached
};
const char* toString(BogusReason r);

struct Verdict {
    Security security = Security::Indeterminate;
    BogusReason bogus = BogusReason::None;  // for Bogus: which check failed
    std::string reason;  // why it is not Secure (and for Secure, the signer), as logged
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

// DNSKEY records converted to public keys so far, by every Validator of the
// process (each key once while its zone's keys are cached): for tests and
// benchmarks.
uint64_t dnskeyConversions();
// Signatures computed (an RRSIG checked against one key's public key) and
// signatures found already verified, by every Validator of the process:
// for tests and benchmarks.
uint64_t signatureVerifications();
uint64_t verifiedSignatureHits();

// A blocking query for the validator's key fetches (on a worker thread):
// UDP with EDNS0 1232, DO and CD, TCP when truncated; `attempts` tries in
// all, each (host, port) in turn.
Validator::Fetch blockingFetcher(std::vector<std::pair<std::string, uint16_t>> servers,
                                 unsigned timeoutMs, unsigned attempts);

}  // namespace danerelay::dns
