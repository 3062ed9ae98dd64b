#include "relay/runtime/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/text_position.h"

namespace danerelay::relay {

using nlohmann::json;

namespace {

class Checker {
  public:
    explicit Checker(std::string file) : file_(std::move(file)) {}

    [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
        throw ConfigError(file_ + ": " + key + ": " + msg);
    }

    void onlyKeys(const json& obj, const std::string& where, std::set<std::string> allowed) const {
        if (!obj.is_object()) fail(where.empty() ? "(top level)" : where, "must be an object");
        for (const auto& [k, v] : obj.items()) {
            if (!allowed.count(k)) fail(join(where, k), "unknown key");
        }
    }

    std::string str(const json& obj, const std::string& where, const std::string& key,
                    bool required) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) {
            if (required) fail(join(where, key), "is required");
            return {};
        }
        if (!it->is_string()) fail(join(where, key), "must be a string");
        std::string v = it->get<std::string>();
        // "\u0000" would cut a path or an address short where the system
        // reads it, so another file or address would be used than written.
        if (auto nul = v.find('\0'); nul != std::string::npos) {
            fail(join(where, key),
                 "contains a NUL byte (\\u0000) at offset " + std::to_string(nul));
        }
        return v;
    }

    template <typename T>
    void number(const json& obj, const std::string& where, const std::string& key, T* out,
                uint64_t min, uint64_t max) const {
        auto it = obj.find(key);
        if (it == obj.end()) return;
        // Negative, fractional and huge (parsed as floating point) numbers
        // get the same message as any other out-of-range one: the range.
        auto range = [&] {
            return "must be an integer between " + std::to_string(min) + " and " +
                   std::to_string(max);
        };
        if (!it->is_number_unsigned()) {
            fail(join(where, key),
                 range() + (it->is_number() ? "" : ", not a " + std::string(it->type_name())));
        }
        auto v = it->get<uint64_t>();
        if (v < min || v > max) fail(join(where, key), range() + ", not " + std::to_string(v));
        *out = static_cast<T>(v);
    }

    static std::string join(const std::string& where, const std::string& key) {
        return where.empty() ? key : where + "." + key;
    }

  private:
    std::string file_;
};

// A host name as DNS spells it (letters, digits, hyphens; labels of 1-63
// bytes, 253 in all): it goes into the SMTP greeting and EHLO, so anything
// else (CR, LF, spaces) would be protocol injection.
bool isDnsHostname(const std::string& h) {
    if (h.empty() || h.size() > 253) return false;
    size_t label = 0;
    for (size_t i = 0; i < h.size(); ++i) {
        char ch = h[i];
        if (ch == '.') {
            if (label == 0 || h[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && !(ch == '-' && label > 0)) return false;
        if (++label > 63) return false;
    }
    return label > 0 && h.back() != '-';
}

// Byte offset of the n-th (0-based) object key in a JSON text that parsed up
// to there; the parser's callback knows keys, not where they are.
size_t keyOffset(const std::string& text, size_t n) {
    size_t seen = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '"') continue;
        size_t start = i;
        for (++i; i < text.size() && text[i] != '"'; ++i) {
            if (text[i] == '\\') ++i;
        }
        size_t j = i + 1;
        while (j < text.size() &&
               (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r'))
            ++j;
        if (j < text.size() && text[j] == ':' && seen++ == n) return start;
    }
    return text.size();
}

// Parses the text, refusing a key that appears twice in one object (the
// parser would silently keep the last one): file:line:column: key: ...
json parseConfigText(const std::string& path, const std::string& text) {
    struct Frame {
        std::string path;
        bool array = false;
        size_t index = 0;  // arrays: elements so far
        std::string lastKey;
        std::set<std::string> keys;
    };
    std::vector<Frame> stack;
    size_t keyCount = 0;
    std::string duplicate;
    size_t duplicateIndex = 0;
    auto childPath = [&]() -> std::string {
        if (stack.empty()) return "";
        const Frame& p = stack.back();
        if (p.array) return p.path + "[" + std::to_string(p.index) + "]";
        return p.path.empty() ? p.lastKey : p.path + "." + p.lastKey;
    };
    json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
        switch (ev) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                stack.push_back({childPath(), ev == json::parse_event_t::array_start, 0, {}, {}});
                break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                if (!stack.empty()) stack.pop_back();
                if (!stack.empty() && stack.back().array) ++stack.back().index;
                break;
            case json::parse_event_t::key: {
                Frame& f = stack.back();
                f.lastKey = parsed.get<std::string>();
                if (!f.keys.insert(f.lastKey).second && duplicate.empty()) {
                    duplicate = childPath();
                    duplicateIndex = keyCount;
                }
                ++keyCount;
                break;
            }
            case json::parse_event_t::value:
                if (!stack.empty() && stack.back().array) ++stack.back().index;
                break;
        }
        return true;
    };
    json j;
    try {
        j = json::parse(text, cb);
    } catch (const json::parse_error& e) {
        throw ConfigError(path + ":" + lineColumn(text, e.byte == 0 ? 0 : e.byte - 1) +
                          ": JSON syntax error: " + e.what());
    }
    if (!duplicate.empty()) {
        throw ConfigError(path + ":" + lineColumn(text, keyOffset(text, duplicateIndex)) + ": " +
                          duplicate + ": duplicate key (write each key once)");
    }
    return j;
}

// The file (or directory) a key names must be there and readable by us:
// the error says which key, which file, and why.
void checkReadable(const Checker& c, const std::string& key, const std::string& path,
                   bool wantDirectory) {
    // O_NONBLOCK: a FIFO must not hang the start.
    int fd =
        ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | (wantDirectory ? O_DIRECTORY : 0));
    if (fd < 0) {
        int e = errno;
        if (e == ENOTDIR && wantDirectory) c.fail(key, path + ": not a directory");
        c.fail(key, path + ": cannot read: " + std::strerror(e));
    }
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0;
    ::close(fd);
    if (!ok) c.fail(key, path + ": cannot read: " + std::strerror(errno));
    if (!wantDirectory && !S_ISREG(st.st_mode)) {
        c.fail(key, path + (S_ISDIR(st.st_mode) ? ": is a directory, not a file"
                                                : ": is not a regular file"));
    }
}

std::string resolvePath(const std::string& configFile, const std::string& p) {
    if (p.empty() || p.front() == '/') return p;
    auto slash = configFile.rfind('/');
    if (slash == std::string::npos) return p;
    return configFile.substr(0, slash + 1) + p;
}

// Two listeners on one address and port, however the address is written
// ("::1" and "0:0::1"); both parse, or parseListener() would have failed.
bool sameAddress(const ListenerConfig& a, const ListenerConfig& b) {
    if (a.port != b.port) return false;
    sockaddr_storage sa{}, sb{};
    socklen_t la = 0, lb = 0;
    if (!toSockaddr(a.host, a.port, &sa, &la) || !toSockaddr(b.host, b.port, &sb, &lb)) {
        return a.host == b.host;
    }
    return la == lb && std::memcmp(&sa, &sb, la) == 0;
}

ListenerConfig parseListener(const Checker& c, const json& lj, const std::string& where) {
    c.onlyKeys(lj, where, {"address", "tls"});
    ListenerConfig l;
    l.text = c.str(lj, where, "address", true);
    // "host:port" or "[v6]:port"
    std::string hostPart, portPart;
    if (!l.text.empty() && l.text.front() == '[') {
        auto close = l.text.find("]:");
        if (close == std::string::npos) c.fail(where + ".address", "expected [IPv6]:port");
        hostPart = l.text.substr(1, close - 1);
        portPart = l.text.substr(close + 2);
    } else {
        auto colon = l.text.rfind(':');
        if (colon == std::string::npos) c.fail(where + ".address", "expected host:port");
        hostPart = l.text.substr(0, colon);
        portPart = l.text.substr(colon + 1);
    }
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!toSockaddr(hostPart, 1, &ss, &len))
        c.fail(where + ".address", "'" + hostPart + "' is not an IP address");
    if (portPart.empty() || portPart.size() > 5 ||
        portPart.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(portPart) == 0 || std::stoul(portPart) > 65535) {
        c.fail(where + ".address", "'" + portPart + "' is not a port number (1-65535)");
    }
    l.host = hostPart;
    l.port = static_cast<uint16_t>(std::stoul(portPart));
    std::string tls = c.str(lj, where, "tls", false);
    if (tls.empty() || tls == "starttls") {
        l.tls = ListenerTls::StartTls;
    } else if (tls == "implicit") {
        l.tls = ListenerTls::Implicit;
    } else {
        c.fail(where + ".tls", "must be \"starttls\" or \"implicit\"");
    }
    return l;
}

// No dns.resolvers: the nameservers of dns.resolv_conf, for local
// validation only (resolver mode believes an AD bit, so its resolvers are
// named, never inherited). Missing file or no nameserver line: 127.0.0.1:53,
// as the C library does; a resolv_conf the config names must be readable.
void resolversFromFile(const Checker& c, DnsConfig& D, bool named) {
    if (D.validation == "resolver") {
        c.fail("dns.resolvers",
               "validation \"resolver\" believes the AD bit of the resolvers listed here: list "
               "them (the resolv.conf default is for \"local\" validation only)");
    }
    struct stat st {};
    bool missing = ::stat(D.resolvConf.c_str(), &st) != 0 && errno == ENOENT;
    auto rc = dns::readResolvConf(D.resolvConf);
    if (!rc && (named || !missing)) c.fail("dns.resolv_conf", rc.error().message);
    if (rc) {
        D.resolverNotes = rc->notes;
        D.resolvers = rc->servers;
    }
    D.resolversFrom = D.resolvConf;
    if (D.resolvers.empty()) {
        D.resolvers.push_back(*dns::parseServerAddress("127.0.0.1:53"));
        D.resolvers.back().trusted = false;
        D.resolversFrom += rc ? " (names no usable nameserver: 127.0.0.1:53, as the C library)"
                              : " (missing: 127.0.0.1:53, as the C library)";
    }
}

}  // namespace

Config loadConfig(const std::string& path, FileCheck files) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw ConfigError(path + ": cannot open configuration file: " + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        throw ConfigError(path + ": is a directory, not a configuration file");
    }
    std::ifstream in(path);
    if (!in) {
        throw ConfigError(path + ": cannot open configuration file: " + std::strerror(errno));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    json j = parseConfigText(path, text);
    Checker c(path);
    c.onlyKeys(j, "",
               {"hostname", "spool_dir", "listeners", "tls", "relay_networks", "auth", "limits",
                "dns", "delivery", "policy_dir", "log_file", "commit_batch", "control_socket"});
    Config cfg;
    cfg.file = path;
    cfg.hostname = c.str(j, "", "hostname", false);
    if (j.contains("hostname") && !j["hostname"].is_null() && !isDnsHostname(cfg.hostname)) {
        c.fail("hostname",
               "must be a DNS host name (letters, digits, '-' and '.'; labels of 1-63 bytes): " +
                   j["hostname"].dump());
    }
    if (cfg.hostname.empty()) {
        char buf[256] = {};
        ::gethostname(buf, sizeof buf - 1);
        cfg.hostname = buf;
    }
    std::string spool = c.str(j, "", "spool_dir", true);
    if (spool.empty()) c.fail("spool_dir", "must not be empty (a directory for the spool)");
    cfg.spoolDir = resolvePath(path, spool);

    auto lit = j.find("listeners");
    if (lit == j.end() || !lit->is_array() || lit->empty()) {
        c.fail("listeners", "must be a non-empty array");
    }
    for (size_t i = 0; i < lit->size(); ++i) {
        std::string where = "listeners[" + std::to_string(i) + "]";
        cfg.listeners.push_back(parseListener(c, (*lit)[i], where));
        // The same address twice (however written) could never be bound.
        for (size_t k = 0; k < i; ++k) {
            if (sameAddress(cfg.listeners[k], cfg.listeners[i])) {
                c.fail(where + ".address", cfg.listeners[i].text + " is listeners[" +
                                               std::to_string(k) + "] again (" +
                                               cfg.listeners[k].text + ")");
            }
        }
    }

    if (auto t = j.find("tls"); t != j.end()) {
        c.onlyKeys(*t, "tls", {"certificate", "key"});
        cfg.tlsCertificate = resolvePath(path, c.str(*t, "tls", "certificate", true));
        cfg.tlsKey = resolvePath(path, c.str(*t, "tls", "key", true));
    }
    for (const auto& l : cfg.listeners) {
        if (l.tls == ListenerTls::Implicit && cfg.tlsCertificate.empty()) {
            c.fail("listeners",
                   "listener " + l.text + " uses implicit TLS but there is no 'tls' section");
        }
    }

    auto nets = j.find("relay_networks");
    if (nets != j.end()) {
        if (!nets->is_array()) c.fail("relay_networks", "must be an array of networks");
        for (size_t i = 0; i < nets->size(); ++i) {
            std::string where = "relay_networks[" + std::to_string(i) + "]";
            if (!(*nets)[i].is_string()) c.fail(where, "must be a string");
            auto n = Cidr::parse((*nets)[i].get<std::string>());
            if (!n) c.fail(where, n.error().message);
            cfg.relayNetworks.push_back(*n);
        }
    }

    if (auto a = j.find("auth"); a != j.end()) {
        c.onlyKeys(*a, "auth", {"credentials"});
        cfg.credentialsFile = resolvePath(path, c.str(*a, "auth", "credentials", true));
        if (cfg.tlsCertificate.empty()) {
            c.fail("auth", "AUTH is only offered over TLS, so it needs a 'tls' section");
        }
    }

    if (auto l = j.find("limits"); l != j.end()) {
        c.onlyKeys(*l, "limits",
                   {"max_message_size", "max_recipients", "max_sessions", "max_sessions_per_client",
                    "command_timeout", "session_timeout", "max_errors", "max_sessions_per_network",
                    "max_hops", "reserved_sessions", "queue_sweep_interval",
                    "max_outbound_connections", "max_connections_per_message"});
        auto& L = cfg.limits;
        c.number(*l, "limits", "max_message_size", &L.maxMessageSize, 1024, 1ULL << 32);
        c.number(*l, "limits", "max_recipients", &L.maxRecipients, 1, 100000);
        c.number(*l, "limits", "max_sessions", &L.maxSessions, 1, 100000);
        c.number(*l, "limits", "max_sessions_per_client", &L.maxSessionsPerClient, 1, 100000);
        c.number(*l, "limits", "command_timeout", &L.commandTimeout, 1, 86400);
        c.number(*l, "limits", "session_timeout", &L.sessionTimeout, 1, 86400);
        c.number(*l, "limits", "max_errors", &L.maxErrors, 1, 1000);
        c.number(*l, "limits", "max_sessions_per_network", &L.maxSessionsPerNetwork, 1, 100000);
        c.number(*l, "limits", "max_hops", &L.maxHops, 1, 1000);
        if (l->contains("reserved_sessions")) {
            c.number(*l, "limits", "reserved_sessions", &L.reservedSessions, 0, 100000);
            if (L.reservedSessions >= L.maxSessions) {
                c.fail("limits.reserved_sessions", "must be less than limits.max_sessions (" +
                                                       std::to_string(L.maxSessions) + ")");
            }
        } else {
            L.reservedSessions = L.maxSessions / 10;
        }
        c.number(*l, "limits", "queue_sweep_interval", &L.queueSweepInterval, 1, 86400);
        c.number(*l, "limits", "max_outbound_connections", &L.maxOutboundConnections, 1, 100000);
        c.number(*l, "limits", "max_connections_per_message", &L.maxConnectionsPerMessage, 1,
                 100000);
    }
    c.number(j, "", "commit_batch", &cfg.commitBatch, 1, 4096);

    bool resolvConfSet = false;
    if (auto d = j.find("dns"); d != j.end()) {
        c.onlyKeys(*d, "dns",
                   {"resolvers", "resolv_conf", "validation", "trust_anchor", "timeout_ms",
                    "attempts", "probe_secure_name", "probe_bogus_name", "reprobe_interval"});
        auto& D = cfg.dns;
        if (auto r = d->find("resolvers"); r != d->end()) {
            if (!r->is_array() || r->empty()) c.fail("dns.resolvers", "must be a non-empty array");
            for (size_t i = 0; i < r->size(); ++i) {
                std::string where = "dns.resolvers[" + std::to_string(i) + "]";
                const auto& e = (*r)[i];
                std::string addr;
                std::optional<bool> trusted;
                if (e.is_string()) {
                    addr = e.get<std::string>();
                } else if (e.is_object()) {
                    c.onlyKeys(e, where, {"address", "trusted"});
                    addr = c.str(e, where, "address", true);
                    if (auto t = e.find("trusted"); t != e.end()) {
                        if (!t->is_boolean()) c.fail(where + ".trusted", "must be true or false");
                        trusted = t->get<bool>();
                    }
                } else {
                    c.fail(where,
                           "must be \"address[:port]\" or {\"address\": ..., \"trusted\": ...}");
                }
                auto sa = dns::parseServerAddress(addr);
                if (!sa) c.fail(where, sa.error().message);
                if (trusted) sa->trusted = *trusted;
                D.resolvers.push_back(*sa);
            }
            D.resolversFrom = "dns.resolvers";
        }
        if (d->contains("resolv_conf")) {
            if (d->contains("resolvers"))
                c.fail("dns.resolv_conf", "set dns.resolvers or dns.resolv_conf, not both");
            D.resolvConf = resolvePath(path, c.str(*d, "dns", "resolv_conf", true));
            resolvConfSet = true;
        }
        std::string v = c.str(*d, "dns", "validation", false);
        if (!v.empty() && v != "resolver" && v != "local") {
            c.fail("dns.validation",
                   "must be \"local\" (validate DNSSEC in-process from the trust anchor) or "
                   "\"resolver\" (believe the AD bit of a trusted validating resolver)");
        }
        if (!v.empty()) D.validation = v;
        if (d->contains("trust_anchor"))
            D.trustAnchor = resolvePath(path, c.str(*d, "dns", "trust_anchor", true));
        c.number(*d, "dns", "timeout_ms", &D.timeoutMs, 100, 60000);
        c.number(*d, "dns", "attempts", &D.attempts, 1, 10);
        c.number(*d, "dns", "reprobe_interval", &D.reprobeInterval, 10, 86400);
        if (d->contains("probe_secure_name"))
            D.probeSecureName = c.str(*d, "dns", "probe_secure_name", true);
        if (d->contains("probe_bogus_name"))
            D.probeBogusName = c.str(*d, "dns", "probe_bogus_name", true);
    }
    if (auto d = j.find("delivery"); d != j.end()) {
        c.onlyKeys(*d, "delivery",
                   {"enabled", "max_concurrent", "max_per_destination", "max_hosts_per_attempt",
                    "retry_initial", "retry_max", "max_queue_lifetime", "port", "connect_timeout",
                    "command_timeout", "data_timeout", "connection_reuse_time"});
        auto& D = cfg.delivery;
        if (auto en = d->find("enabled"); en != d->end()) {
            if (!en->is_boolean()) c.fail("delivery.enabled", "must be true or false");
            D.enabled = en->get<bool>();
        }
        c.number(*d, "delivery", "max_concurrent", &D.maxConcurrent, 1, 10000);
        c.number(*d, "delivery", "max_per_destination", &D.maxPerDestination, 1, 10000);
        c.number(*d, "delivery", "max_hosts_per_attempt", &D.maxHostsPerAttempt, 1, 50);
        c.number(*d, "delivery", "retry_initial", &D.retryInitial, 1, 86400);
        c.number(*d, "delivery", "retry_max", &D.retryMax, 1, 604800);
        c.number(*d, "delivery", "max_queue_lifetime", &D.maxQueueLifetime, 1, 8640000);
        c.number(*d, "delivery", "port", &D.port, 1, 65535);
        c.number(*d, "delivery", "connect_timeout", &D.connectTimeout, 1, 3600);
        c.number(*d, "delivery", "command_timeout", &D.commandTimeout, 1, 3600);
        c.number(*d, "delivery", "data_timeout", &D.dataTimeout, 1, 3600);
        c.number(*d, "delivery", "connection_reuse_time", &D.connectionReuseTime, 0, 300);
    }
    if (cfg.dns.resolvers.empty()) resolversFromFile(c, cfg.dns, resolvConfSet);
    cfg.logFile = resolvePath(path, c.str(j, "", "log_file", false));
    cfg.policyDir = resolvePath(path, c.str(j, "", "policy_dir", false));
    cfg.controlSocket = resolvePath(path, c.str(j, "", "control_socket", false));
    if (cfg.controlSocket.empty()) cfg.controlSocket = cfg.spoolDir + "/control.sock";
    if (files == FileCheck::Check) {
        if (!cfg.tlsCertificate.empty()) {
            checkReadable(c, "tls.certificate", cfg.tlsCertificate, false);
            checkReadable(c, "tls.key", cfg.tlsKey, false);
        }
        if (!cfg.credentialsFile.empty())
            checkReadable(c, "auth.credentials", cfg.credentialsFile, false);
        if (!cfg.policyDir.empty()) checkReadable(c, "policy_dir", cfg.policyDir, true);
    }
    // sockaddr_un holds 107 bytes and a NUL.
    if (cfg.controlSocket.size() > 107) {
        throw ConfigError(path +
                          ": control_socket: path longer than 107 bytes: " + cfg.controlSocket);
    }
    return cfg;
}

std::string resolversText(const DnsConfig& d) {
    std::string out;
    for (const auto& s : d.resolvers) {
        if (!out.empty()) out += ',';
        out += s.text();
    }
    return out;
}

dns::ResolverOptions resolverOptions(const DnsConfig& d) {
    dns::ResolverOptions o;
    o.servers = d.resolvers;
    o.timeoutMs = d.timeoutMs;
    o.attempts = d.attempts;
    o.probeSecureName = d.probeSecureName;
    o.probeBogusName = d.probeBogusName;
    return o;
}

Result<std::shared_ptr<dns::Validator>> loadValidator(const DnsConfig& d) {
    std::vector<std::pair<std::string, uint16_t>> servers;
    for (const auto& s : d.resolvers) servers.emplace_back(s.host, s.port);
    auto v = dns::Validator::fromFile(d.trustAnchor,
                                      dns::blockingFetcher(servers, d.timeoutMs, d.attempts));
    if (!v) {
        return Error::permanent("dns.trust_anchor: " + v.error().message +
                                " (local DNSSEC validation needs a trust anchor; Debian ships "
                                "the root's in the dns-root-data package)");
    }
    return v;
}

}  // namespace danerelay::relay
