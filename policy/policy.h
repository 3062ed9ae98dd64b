// policy.h — per-destination delivery policy from a directory of JSON files.
//
// Each file holds {"policies": {DESTINATION: ENTRY, ...}} where DESTINATION is
// an exact domain ("example.org"), a suffix (".example.org": its subdomains,
// not itself) or "default". An ENTRY:
//   level        "none" | "may" | "encrypt" | "dane" (the default) | "dane-only"
//   next_hop     "host:port" or "[ip]:port": replaces the MX lookup; DANE
//                still applies to that host when its TLSA is published
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
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace danerelay::policy {

enum class Level { None, May, Encrypt, Dane, DaneOnly };
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
    std::vector<Entry> entries_;
    size_t files_ = 0;
};

// "2026-12-01T00:00:00Z" (or with an offset, "+01:00"); false if malformed.
bool parseIso8601(const std::string& s, int64_t* out);

}  // namespace danerelay::policy
