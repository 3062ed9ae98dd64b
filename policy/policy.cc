#include "policy/policy.h"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/text_position.h"

namespace danerelay::policy {

using nlohmann::json;

const char* toString(Level l) {
    switch (l) {
        case Level::None:
            return "none";
        case Level::May:
            return "may";
        case Level::Encrypt:
            return "encrypt";
        case Level::Dane:
            return "dane";
        case Level::DaneOnly:
            return "dane-only";
        case Level::Verify:
            return "verify";
        case Level::Sts:
            return "sts";
    }
    return "?";
}

int strictness(Level l) {
    switch (l) {
        case Level::None:
            return 0;
        case Level::May:
            return 1;
        case Level::Encrypt:
            return 2;
        case Level::Dane:
            return 2;  // DANE where published, else opportunistic
        case Level::DaneOnly:
            return 3;
        case Level::Verify:
            return 3;
        case Level::Sts:
            return 3;  // DANE where published, else a valid MTA-STS policy, required
    }
    return 0;
}

static bool lowers(Level l) {
    return l == Level::None || l == Level::May;
}

bool parseIso8601(const std::string& s, int64_t* out) {
    int Y, M, D, h, m, sec;
    char tail[16] = {};
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%15s", &Y, &M, &D, &h, &m, &sec, tail) !=
        7) {
        return false;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return false;
    int offset = 0;
    std::string t = tail;
    if (t == "Z") {
        offset = 0;
    } else if (t.size() == 6 && (t[0] == '+' || t[0] == '-') && t[3] == ':') {
        int oh = std::atoi(t.substr(1, 2).c_str()), om = std::atoi(t.substr(4, 2).c_str());
        offset = (oh * 60 + om) * 60 * (t[0] == '-' ? -1 : 1);
    } else {
        return false;
    }
    tm tmv{};
    tmv.tm_year = Y - 1900;
    tmv.tm_mon = M - 1;
    tmv.tm_mday = D;
    tmv.tm_hour = h;
    tmv.tm_min = m;
    tmv.tm_sec = sec;
    *out = static_cast<int64_t>(timegm(&tmv)) - offset;
    return true;
}

namespace {

bool validDomain(const std::string& d) {
    if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
    size_t label = 0;
    for (char c : d) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
        if (++label > 63) return false;
    }
    return true;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Where a JSON key first appears at or after `from` in the text: its line and
// column, so that errors point at the place a human must edit.
struct Locator {
    const std::string& text;
    size_t find(const std::string& key, size_t from) const {
        auto p = text.find("\"" + key + "\"", from);
        return p == std::string::npos ? from : p;
    }
    std::string at(size_t pos) const { return lineColumn(text, pos); }
    int lineOf(size_t pos) const {
        return static_cast<int>(
                   std::count(text.begin(),
                              text.begin() + static_cast<long>(std::min(pos, text.size())), '\n')) +
               1;
    }
};

// A pin: 32 octets, written as 64 hex digits or as base64.
std::optional<std::vector<uint8_t>> decodePin(const std::string& s) {
    std::vector<uint8_t> out;
    if (s.size() == 64 && s.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos) {
        for (size_t i = 0; i < 64; i += 2) {
            out.push_back(static_cast<uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
        }
        return out;
    }
    static const std::string b64 =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned acc = 0;
    int bits = 0;
    for (char c : s) {
        if (c == '=') break;
        auto p = b64.find(c);
        if (p == std::string::npos) return std::nullopt;
        acc = (acc << 6) | static_cast<unsigned>(p);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<uint8_t>((acc >> bits) & 0xff));
        }
    }
    if (out.size() != 32) return std::nullopt;
    return out;
}

Result<NextHop> parseNextHop(const std::string& s) {
    NextHop h;
    std::string port;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string::npos) return Error::permanent("missing ']'");
        h.host = s.substr(1, close - 1);
        h.literal = true;
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') return Error::permanent("expected [ip]:port");
            port = s.substr(close + 2);
        }
    } else {
        auto colon = s.rfind(':');
        h.host = colon == std::string::npos ? s : s.substr(0, colon);
        if (colon != std::string::npos) port = s.substr(colon + 1);
        if (!validDomain(h.host)) return Error::permanent("'" + h.host + "' is not a host name");
        h.host = lower(h.host);
    }
    if (!port.empty()) {
        if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
            std::stoul(port) == 0 || std::stoul(port) > 65535) {
            return Error::permanent("'" + port + "' is not a port number");
        }
        h.port = static_cast<uint16_t>(std::stoul(port));
    }
    if (h.host.empty()) return Error::permanent("empty host");
    return h;
}

// One entry's errors: file:line:column, then "'dest': ..." as written.
struct EntryErrors {
    const std::string& file;
    const Locator& loc;
    const std::string& dest;  // as written in the file
    size_t at;                // where the entry starts
    // At the entry itself, or at one of its keys.
    Error operator()(const std::string& msg) const { return atPos(at, msg); }
    Error key(const std::string& k, const std::string& msg) const {
        return atPos(loc.find(k, at), "'" + dest + "': " + msg);
    }
    Error atPos(size_t pos, const std::string& msg) const {
        return Error::permanent(file + ":" + loc.at(pos) + ": " + msg);
    }
};

// Every key known, and of the right JSON type.
Status checkEntryKeys(const json& ej, const EntryErrors& err) {
    static const char* known[] = {
        "level", "next_hop", "reason",          "expires",     "mode",   "implicit_tls",
        "auth",  "tls_pins", "min_tls_version", "trust_store", "mta_sts"};
    for (const auto& [k, v] : ej.items()) {
        if (std::find(std::begin(known), std::end(known), k) == std::end(known)) {
            return err.key(k, "unknown key '" + k + "'");
        }
        bool flag = k == "implicit_tls" || k == "mta_sts";
        bool ok = flag ? v.is_boolean() : k == "tls_pins" ? v.is_array() : v.is_string();
        if (!ok) {
            const char* want = flag              ? "true or false"
                               : k == "tls_pins" ? "an array of strings"
                                                 : "a string";
            return err.key(k, "'" + k + "' must be " + want);
        }
    }
    return okStatus();
}

// level, next_hop, reason, implicit_tls, auth, trust_store.
Status readRouting(const json& ej, const EntryErrors& err, Entry& e) {
    if (auto l = ej.find("level"); l != ej.end()) {
        std::string s = l->get<std::string>();
        bool ok = false;
        for (Level lv : {Level::None, Level::May, Level::Encrypt, Level::Dane, Level::DaneOnly,
                         Level::Verify, Level::Sts}) {
            if (s == toString(lv)) {
                e.level = lv;
                ok = true;
            }
        }
        if (!ok) {
            return err.key(
                "level",
                "level '" + s + "' is not none, may, encrypt, dane, dane-only, verify or sts");
        }
    }
    if (auto n = ej.find("next_hop"); n != ej.end()) {
        auto hop = parseNextHop(n->get<std::string>());
        if (!hop) return err.key("next_hop", "next_hop: " + hop.error().message);
        e.nextHop = *hop;
    }
    if (auto r = ej.find("reason"); r != ej.end()) e.reason = r->get<std::string>();
    if (auto x = ej.find("implicit_tls"); x != ej.end()) e.implicitTls = x->get<bool>();
    if (auto x = ej.find("mta_sts"); x != ej.end()) e.mtaSts = x->get<bool>();
    if (auto x = ej.find("auth"); x != ej.end()) e.authFile = x->get<std::string>();
    if (auto x = ej.find("trust_store"); x != ej.end()) e.trustStore = x->get<std::string>();
    return okStatus();
}

// min_tls_version, tls_pins.
Status readTlsAndMode(const json& ej, const EntryErrors& err, Entry& e) {
    if (auto x = ej.find("min_tls_version"); x != ej.end()) {
        std::string v = x->get<std::string>();
        if (v == "TLS1.2") {
            e.minTlsVersion = 12;
        } else if (v == "TLS1.3") {
            e.minTlsVersion = 13;
        } else {
            return err.key("min_tls_version", "min_tls_version must be TLS1.2 or TLS1.3");
        }
    }
    if (auto x = ej.find("tls_pins"); x != ej.end()) {
        for (const auto& pin : *x) {
            auto bytes = pin.is_string() ? decodePin(pin.get<std::string>()) : std::nullopt;
            if (!bytes) {
                return err.key("tls_pins",
                               "each pin must be the SHA-256 of a public key, base64 or hex");
            }
            e.tlsPins.push_back(*bytes);
        }
    }
    return okStatus();
}

Status readLifetime(const json& ej, const EntryErrors& err, Entry& e) {
    if (auto x = ej.find("expires"); x != ej.end()) {
        int64_t t = 0;
        if (!parseIso8601(x->get<std::string>(), &t)) {
            return err.key("expires",
                           "expires must be an ISO 8601 instant like 2026-12-01T00:00:00Z");
        }
        e.expires = t;
    }
    if (auto m = ej.find("mode"); m != ej.end()) {
        std::string mode = m->get<std::string>();
        if (mode == "report-only") {
            e.reportOnly = true;
        } else if (mode != "enforce") {
            return err.key("mode", "mode must be enforce or report-only");
        }
    }
    return okStatus();
}

// The rules between keys: what needs a next_hop, what needs a reason.
Status checkEntryRules(const Entry& e, const EntryErrors& err) {
    if (!e.authFile.empty() && !e.nextHop) {
        return err.key("auth", "auth needs a next_hop (credentials go to one named server only)");
    }
    if (e.implicitTls && !e.nextHop) {
        return err.key("implicit_tls", "implicit_tls needs a next_hop");
    }
    if (!e.mtaSts && e.level == Level::Sts) {
        return err.key("mta_sts", "level sts needs MTA-STS; \"mta_sts\": false contradicts it");
    }
    return okStatus();
}

Status checkLowering(const Entry& e, const EntryErrors& err) {
    if (lowers(e.level) && e.reason.empty()) {
        return err("'" + err.dest + "': level " + toString(e.level) +
                   " lowers security below dane and needs a \"reason\"");
    }
    if (!e.mtaSts && e.reason.empty()) {
        return err.key("mta_sts", "'" + err.dest +
                                      "': \"mta_sts\": false ignores the domain's MTA-STS "
                                      "policy and needs a \"reason\"");
    }
    if (e.reportOnly && strictness(e.level) <= strictness(Level::Dane) &&
        e.level != Level::Encrypt) {
        return err("'" + err.dest + "': report-only is for stricter entries (encrypt, dane-only)");
    }
    if (lowers(e.level) && e.destination == "default") {
        return err("the default may not lower security; name each domain");
    }
    return okStatus();
}

Result<Entry> parseEntry(const std::string& dest, const json& ej, const EntryErrors& err) {
    Entry e;
    e.destination = lower(dest);
    e.file = err.file;
    e.line = err.loc.lineOf(err.at);
    std::string bare = e.destination.front() == '.' ? e.destination.substr(1) : e.destination;
    if (e.destination != "default" && !validDomain(bare)) {
        return err("'" + dest + "' is not a domain, a .suffix or \"default\"");
    }
    if (!ej.is_object()) return err("the policy for '" + dest + "' must be an object");
    if (auto st = checkEntryKeys(ej, err); !st) return st.error();
    if (auto st = readRouting(ej, err, e); !st) return st.error();
    if (auto st = readTlsAndMode(ej, err, e); !st) return st.error();
    if (auto st = checkEntryRules(e, err); !st) return st.error();
    if (auto st = readLifetime(ej, err, e); !st) return st.error();
    if (auto st = checkLowering(e, err); !st) return st.error();
    return e;
}

}  // namespace

Result<std::shared_ptr<const PolicySet>> PolicySet::loadText(
    const std::vector<std::pair<std::string, std::string>>& files) {
    auto r = parse(files);
    if (!r) return r.error();
    return std::shared_ptr<const PolicySet>(*r);
}

Status PolicySet::parseFile(const std::string& name, const std::string& text,
                            std::map<std::string, std::string>& seen) {
    Locator loc{text};
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        return Error::permanent(name + ":" + loc.at(e.byte == 0 ? 0 : e.byte - 1) +
                                ": JSON syntax error: " + e.what());
    }
    auto err = [&](size_t pos, const std::string& msg) {
        return Error::permanent(name + ":" + loc.at(pos) + ": " + msg);
    };
    if (!j.is_object()) return err(0, "a policy file must be a JSON object");
    for (const auto& [k, v] : j.items()) {
        if (k != "policies") return err(loc.find(k, 0), "unknown key '" + k + "'");
    }
    auto p = j.find("policies");
    if (p == j.end() || !p->is_object()) return err(0, "'policies' must be an object");
    size_t cursor = loc.find("policies", 0);
    for (const auto& [dest, ej] : p->items()) {
        size_t at = loc.find(dest, cursor);
        auto e = parseEntry(dest, ej, EntryErrors{name, loc, dest, at});
        if (!e) return e.error();
        if (auto prev = seen.find(e->destination); prev != seen.end()) {
            return err(at, "'" + dest + "' is already defined at " + prev->second);
        }
        seen[e->destination] = e->where();
        entries_.push_back(std::move(*e));
        cursor = at;
    }
    ++files_;
    return okStatus();
}

Result<std::shared_ptr<PolicySet>> PolicySet::parse(
    const std::vector<std::pair<std::string, std::string>>& files) {
    auto set = std::make_shared<PolicySet>();
    std::map<std::string, std::string> seen;  // destination → where
    for (const auto& [name, text] : files) {
        if (auto st = set->parseFile(name, text, seen); !st) return st.error();
    }
    return set;
}

Result<std::shared_ptr<const PolicySet>> PolicySet::loadDir(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return Error::permanent(dir + ": cannot open policy directory");
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0 && n[0] != '.')
            names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& n : names) {
        std::ifstream in(dir + "/" + n);
        if (!in) return Error::permanent(dir + "/" + n + ": cannot read");
        std::stringstream ss;
        ss << in.rdbuf();
        files.emplace_back(dir + "/" + n, ss.str());
    }
    auto set = parse(files);
    if (!set) return set.error();
    // Paths are relative to the policy directory; credentials are read now,
    // so that a missing or malformed file stops the load, not a delivery.
    for (auto& e : (*set)->entries_) {
        auto resolve = [&](std::string& path) {
            if (!path.empty() && path.front() != '/') path = dir + "/" + path;
        };
        resolve(e.trustStore);
        if (e.authFile.empty()) continue;
        resolve(e.authFile);
        std::ifstream in(e.authFile);
        std::string line;
        if (!in || !std::getline(in, line)) {
            return Error::permanent(e.where() + ": auth file " + e.authFile + " cannot be read");
        }
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto colon = line.find(':');
        if (colon == std::string::npos || colon == 0) {
            return Error::permanent(e.where() + ": auth file " + e.authFile +
                                    ": expected user:password");
        }
        e.authUser = line.substr(0, colon);
        e.authPassword = line.substr(colon + 1);
    }
    return std::shared_ptr<const PolicySet>(*set);
}

Decision PolicySet::lookup(const std::string& domainIn, int64_t now) const {
    std::string domain = lower(domainIn);
    Decision d;
    // Candidates in precedence order: exact, longest suffix first, default.
    std::vector<const Entry*> order;
    for (const auto& e : entries_) {
        if (e.destination == domain) order.push_back(&e);
    }
    std::vector<const Entry*> suffixes;
    for (const auto& e : entries_) {
        if (e.destination.front() == '.' && domain.size() > e.destination.size() &&
            domain.compare(domain.size() - e.destination.size(), e.destination.size(),
                           e.destination) == 0) {
            suffixes.push_back(&e);
        }
    }
    std::sort(suffixes.begin(), suffixes.end(), [](const Entry* a, const Entry* b) {
        return a->destination.size() > b->destination.size();
    });
    order.insert(order.end(), suffixes.begin(), suffixes.end());
    for (const auto& e : entries_) {
        if (e.destination == "default") order.push_back(&e);
    }
    Entry builtin;
    builtin.destination = "(built-in default)";
    builtin.level = Level::Dane;
    bool haveEffective = false;
    for (const Entry* e : order) {
        if (e->expires && now >= *e->expires) {
            d.warnings.push_back("policy " + e->where() + " for '" + e->destination +
                                 "' expired; it no longer applies");
            continue;
        }
        if (e->reportOnly) {
            if (!d.reported && !haveEffective) d.reported = *e;
            continue;
        }
        d.effective = *e;
        haveEffective = true;
        break;
    }
    if (!haveEffective) d.effective = builtin;
    return d;
}

}  // namespace danerelay::policy
