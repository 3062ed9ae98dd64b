// dane.h — DANE authentication of a TLS peer (RFC 7671, RFC 7672), as a pure
// function of the presented chain, the usable TLSA records, the reference
// names and the time. No I/O, no global state: unit-tested with certificates
// made in the test.
//
// DANE-EE (usage 3): the leaf certificate (selector 0) or its public key
// (selector 1) matches, full (0), SHA2-256 (1) or SHA2-512 (2). No name
// check, no expiry check (RFC 7672 3.1.1); only the leaf is parsed (the
// rest of the chain, only when a DANE-TA record is to be tried).
// DANE-TA (usage 2): a certificate of the presented chain (not the leaf)
// matches, or a whole certificate published in DNS (2 0 0) is the anchor;
// then the leaf must chain to that anchor with valid signatures, every
// certificate of the path must be within its validity at `now`, and the leaf
// must match one of the reference names (RFC 7672 3.2.2).
// Digest agility (RFC 7671 9): per usage and selector, SHA2-256 records are
// ignored when SHA2-512 ones are present.
// Usages 0 and 1 are never passed in: RFC 7672 makes them unusable for SMTP,
// and the caller filters with dns::classifyTlsa. Unlike libgnutls-dane, this
// never treats them like 2/3 and always checks names for DANE-TA.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

namespace danerelay::tls {

struct TlsaRecord {
    uint8_t usage = 0, selector = 0, mtype = 0;
    std::vector<uint8_t> data;
};

// RFC 8460 result types, for logs and reports.
enum class DaneFailure {
    None,
    ValidationFailure,        // no record matched
    CertificateHostMismatch,  // DANE-TA matched, names did not
    CertificateExpired,       // DANE-TA matched, a certificate outside its validity
    TlsaInvalid,              // no usable record was given
};
const char* toString(DaneFailure f);

struct DaneResult {
    bool authenticated = false;
    std::string matched;  // "3 1 1 ab12…" of the record that matched
    DaneFailure failure = DaneFailure::None;
    std::string reason;  // human-readable why not
};

// chain: DER certificates as the peer presented them, leaf first.
DaneResult verifyDane(const std::vector<std::vector<uint8_t>>& chain,
                      const std::vector<TlsaRecord>& usableTlsa,
                      const std::vector<std::string>& referenceNames, std::time_t now);

std::string recordText(const TlsaRecord& r, size_t maxHex = 16);

// PKIX for policy "verify": the chain must lead to a CA of the trust store
// (a PEM file; empty: the system's CAs), be valid at `now`, and the leaf must
// name `hostname`. reason says why not.
bool verifyPkix(const std::vector<std::vector<uint8_t>>& chain, const std::string& trustFile,
                const std::string& hostname, std::time_t now, std::string* reason);

// SHA-256 of the leaf's SubjectPublicKeyInfo, for tls_pins.
std::vector<uint8_t> spkiSha256(const std::vector<uint8_t>& certDer);

}  // namespace danerelay::tls
