// answer.h — what a DNS lookup hands back.
//
// Every Answer carries its DNSSEC status. Nothing above dns/ ever looks at an
// AD bit: it is turned into Security in dns/, and only when the caller says
// the server is trusted. Bogus and Indeterminate are never "insecure".
//
// An Answer is built from one reading of the response (dns/response.h): the
// CNAME chain from our name and the RRset at its end, class IN, and nothing
// else; with local validation, exactly those RRsets are what the validator
// proved. Responses are hostile input: a malformation is an Outcome::Error
// with a reason, never a crash (tests/fuzz/dns_fuzz.cc, dns_diff_fuzz.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace danerelay::dns {

enum class Security { Secure, Insecure, Bogus, Indeterminate };
enum class Outcome { Data, NxDomain, NoData, ServFail, Timeout, Error };

const char* toString(Security s);
const char* toString(Outcome o);

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeNs = 2;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeSoa = 6;
constexpr uint16_t kTypeMx = 15;
constexpr uint16_t kTypeTxt = 16;
constexpr uint16_t kTypeAaaa = 28;
constexpr uint16_t kTypeTlsa = 52;

constexpr size_t kMaxCnameChain = 8;
constexpr size_t kMaxRecords = 64;
// A TXT record's character-strings joined (RFC 8461 3.1, RFC 7208 3.3) are
// at most what 64 KiB of RDATA holds; longer ones are not kept.
constexpr size_t kMaxTxtBytes = 65535;

struct MxRecord {
    uint16_t preference = 0;
    std::string host;  // lower case, no trailing dot; "" for the null MX target "."
    bool operator==(const MxRecord&) const = default;
};

struct TlsaRecord {
    uint8_t usage = 0, selector = 0, mtype = 0;
    std::vector<uint8_t> data;
    bool usable = false;
    std::string unusableReason;  // why not, when !usable
};

// RFC 7672 3.1.3 / RFC 7671: only DANE-TA(2) and DANE-EE(3), selectors 0/1,
// matching types 0 (full, non-empty), 1 (32 octets), 2 (64 octets).
void classifyTlsa(TlsaRecord& r);
std::string tlsaToString(const TlsaRecord& r);

struct Answer {
    std::string qname;  // as asked, lower case, no trailing dot
    uint16_t qtype = 0;
    Outcome outcome = Outcome::Error;
    Security security = Security::Indeterminate;
    std::string canonicalName;            // end of the CNAME chain (== qname without one)
    std::vector<std::string> cnameChain;  // the aliases followed, in order
    uint32_t ttl = 0;                     // for caching: min TTL of what was used
    std::vector<MxRecord> mx;
    std::vector<std::string> addresses;  // A / AAAA, textual
    std::vector<TlsaRecord> tlsa;
    // TXT: each record's character-strings joined, bytes as they came (no
    // decoding: a reader such as sts/txt_record checks them itself).
    std::vector<std::string> txt;
    std::string detail;  // human-readable: why Error/Bogus/..., which server
    bool fromCache = false;
};

// Resolver mode: one response to (qname, qtype), read by readResponse().
// trustAd: the server is a trusted validating resolver, so its AD bit means
// Secure (and records no proof covers beside that answer make it Bogus).
Answer parseResponse(const uint8_t* wire, size_t len, const std::string& qname, uint16_t qtype,
                     bool trustAd);

// True if the packet parses and its question is exactly (qname, qtype, IN):
// anything else is not an answer to us and is dropped unread.
bool questionMatches(const uint8_t* wire, size_t len, const std::string& qname, uint16_t qtype);

// Lower case, strip one trailing dot; false if not a plausible host/domain
// name (LDH labels, '_' allowed, 1..63 per label, 253 in all).
bool normalizeName(const std::string& in, std::string* out);

// What a TLSA answer means for DANE (RFC 7672 2.2), the three outcomes Postfix
// keeps apart plus "not secure".
enum class TlsaStatus {
    Usable,          // secure, at least one usable record
    NoneUsable,      // secure, records present, none usable
    SecurelyAbsent,  // secure NXDOMAIN / NODATA
    Insecure,        // answer not DNSSEC-secure: DANE does not apply
    Failed,          // bogus, SERVFAIL, timeout, malformed: defer, never "absent"
};
TlsaStatus tlsaStatus(const Answer& a);
const char* toString(TlsaStatus s);

}  // namespace danerelay::dns
