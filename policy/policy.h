// policy.h — per-destination delivery policy from a directory of JSON files.
//
// Each file holds {"policies": {DESTINATION: ENTRY, ...}} where DESTINATION is
// an exact domain ("example.org"), a suffix (".example.org": its subdomains,
// not itself) or "default". An ENTRY:
//   level        "none" | "may" | "encrypt" | "dane" (the default) | "dane-only"
//                | "verify" (PKIX: a certificate chain to the trust store and a
//                name match, for destinations without DANE)
//                | "sts" (DANE where published; elsewhere a valid MTA-STS policy
//                is required and applied as enforce, RFC 8461)
//   next_hop     "host:port" or "[ip]:port": replaces the MX lookup; DANE
//                still applies to that host when its TLSA is published
//   implicit_tls true: TLS from the first byte (an upstream on a 465-style port)
//   auth         path of a file "user:password" for SMTP AUTH PLAIN (only over TLS)
//   tls_pins     ["base64 or hex SHA-256 of the server's SPKI", ...]: TLS required
//                and the leaf key must be one of them
//   min_tls_version "TLS1.2" | "TLS1.3"
//   trust_store  PEM CA file for "verify" (default: the system's CAs)
//   mta_sts      false: ignore the destination's MTA-STS policy (a lowering:
//                needs a reason); default true
//   reason       required when the entry lowers security below "dane"
//   expires      ISO 8601 instant ("2026-12-01T00:00:00Z"); after it the
//                entry no longer applies and a warning is logged
//   mode         "enforce" (default) or "report-only" (a stricter entry is
//                evaluated and logged, delivery follows the policy beneath it)
// Loading is strict: unknown keys, wrong types, bad names, a destination in
// two files, a lowering entry without a reason are errors naming the file and
// the line and column. A set that fails to load is never half-applied.
// Precedence: exact domain, then the longest matching suffix, then default.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace danerelay::policy {

enum class Level { None, May, Encrypt, Dane, DaneOnly, Verify, Sts };
const char* toString(Level l);
// Higher is stricter. Dane is the baseline a site gets without any entry.
int strictness(Level l);

struct NextHop {
    std::string host;  // a name, or an IP literal without brackets
    bool literal = false;
    uint16_t port = 25;
};

struct Entry {
    std::string destination;  // as written: "example.org", ".example.org", "default"
    Level level = Level::Dane;
    std::optional<NextHop> nextHop;
    bool implicitTls = false;
    bool mtaSts = true;  // false: the destination's MTA-STS policy is ignored
    std::string authFile;
    std::string authUser, authPassword;         // read from authFile by loadDir()
    std::vector<std::vector<uint8_t>> tlsPins;  // SHA-256 of SPKI, 32 octets each
    int minTlsVersion = 0;                      // 0: library default (1.2), 12, 13
    std::string trustStore;
    std::string reason;
    std::optional<int64_t> expires;  // Unix seconds
    bool reportOnly = false;
    std::string file;
    int line = 0;
    std::string where() const { return file + ":" + std::to_string(line); }
};

// What applies to one domain at one time.
struct Decision {
    Entry effective;                    // what delivery follows
    std::optional<Entry> reported;      // a report-only entry evaluated beside it
    std::vector<std::string> warnings;  // e.g. an entry that expired
};

class PolicySet {
  public:
    // Every *.json file of the directory, in name order.
    static Result<std::shared_ptr<const PolicySet>> loadDir(const std::string& dir);
    // One file's text (for tests and `danectl policy check`).
    static Result<std::shared_ptr<const PolicySet>> loadText(
        const std::vector<std::pair<std::string, std::string>>& files);

    Decision lookup(const std::string& domain, int64_t now) const;
    size_t size() const { return entries_.size(); }
    size_t files() const { return files_; }

  private:
    static Result<std::shared_ptr<PolicySet>> parse(
        const std::vector<std::pair<std::string, std::string>>& files);
    // One file's entries added; seen maps each destination to where it was
    // defined (a second definition, in any file, is an error).
    Status parseFile(const std::string& name, const std::string& text,
                     std::map<std::string, std::string>& seen);
    std::vector<Entry> entries_;
    size_t files_ = 0;
};

// "2026-12-01T00:00:00Z" (or with an offset, "+01:00"); false if malformed.
bool parseIso8601(const std::string& s, int64_t* out);

}  // namespace danerelay::policy
