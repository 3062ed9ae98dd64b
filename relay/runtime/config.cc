#include "relay/runtime/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <fstream>
#include <functional>
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

// "host:port" or "[v6]:port", numeric, into l (host, port, text); errors
// name `key`.
void parseAddress(const Checker& c, const std::string& text, const std::string& key,
                  ListenerConfig& l) {
    l.text = text;
    std::string hostPart, portPart;
    if (!l.text.empty() && l.text.front() == '[') {
        auto close = l.text.find("]:");
        if (close == std::string::npos) c.fail(key, "expected [IPv6]:port");
        hostPart = l.text.substr(1, close - 1);
        portPart = l.text.substr(close + 2);
    } else {
        auto colon = l.text.rfind(':');
        if (colon == std::string::npos) c.fail(key, "expected host:port");
        hostPart = l.text.substr(0, colon);
        portPart = l.text.substr(colon + 1);
    }
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!toSockaddr(hostPart, 1, &ss, &len)) c.fail(key, "'" + hostPart + "' is not an IP address");
    if (portPart.empty() || portPart.size() > 5 ||
        portPart.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(portPart) == 0 || std::stoul(portPart) > 65535) {
        c.fail(key, "'" + portPart + "' is not a port number (1-65535)");
    }
    l.host = hostPart;
    l.port = static_cast<uint16_t>(std::stoul(portPart));
}

// "proxy_protocol" and "proxy_from": both or neither; a proxy_from without
// a protocol would be a trust rule that nothing reads, so it is refused too.
void parseProxy(const Checker& c, const json& lj, const std::string& where, ListenerConfig& l) {
    std::string proto = c.str(lj, where, "proxy_protocol", false);
    auto from = lj.find("proxy_from");
    if (proto.empty()) {
        if (from != lj.end()) c.fail(where + ".proxy_from", "needs \"proxy_protocol\"");
        return;
    }
    if (proto == "v1") {
        l.proxy = ProxyProtocol::V1;
    } else if (proto == "v2") {
        l.proxy = ProxyProtocol::V2;
    } else {
        c.fail(where + ".proxy_protocol", "must be \"v1\" or \"v2\"");
    }
    if (from == lj.end() || !from->is_array() || from->empty()) {
        c.fail(where + ".proxy_from",
               "must be a non-empty array of networks (the load balancers' addresses)");
    }
    for (size_t i = 0; i < from->size(); ++i) {
        std::string at = where + ".proxy_from[" + std::to_string(i) + "]";
        if (!(*from)[i].is_string()) c.fail(at, "must be a string");
        auto n = Cidr::parse((*from)[i].get<std::string>());
        if (!n) c.fail(at, n.error().message);
        l.proxyFrom.push_back(*n);
    }
}

ListenerConfig parseListener(const Checker& c, const json& lj, const std::string& where) {
    c.onlyKeys(lj, where, {"address", "tls", "proxy_protocol", "proxy_from"});
    ListenerConfig l;
    parseAddress(c, c.str(lj, where, "address", true), where + ".address", l);
    std::string tls = c.str(lj, where, "tls", false);
    if (tls.empty() || tls == "starttls") {
        l.tls = ListenerTls::StartTls;
    } else if (tls == "implicit") {
        l.tls = ListenerTls::Implicit;
    } else {
        c.fail(where + ".tls", "must be \"starttls\" or \"implicit\"");
    }
    parseProxy(c, lj, where, l);
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

// One object of the file (the top level or a section) as a table: each key
// it knows, listed once, with the step that reads it. read() refuses an
// unknown key before any value is looked at, then runs every step in table
// order, present or not (a step decides what absence means: a default, an
// error, or a value derived from another key).
class Section {
  public:
    using Step = std::function<void(const std::string& key)>;
    Section(const Checker& c, const json& obj, std::string where)
        : c_(c), obj_(obj), where_(std::move(where)) {}

    Section& on(std::string key, Step step) {
        steps_.emplace_back(std::move(key), std::move(step));
        return *this;
    }
    template <typename T>
    Section& number(std::string key, T* out, uint64_t min, uint64_t max) {
        return on(std::move(key), [this, out, min, max](const std::string& k) {
            c_.number(obj_, where_, k, out, min, max);
        });
    }
    Section& flag(std::string key, bool* out) {
        return on(std::move(key), [this, out](const std::string& k) {
            auto it = obj_.find(k);
            if (it == obj_.end()) return;
            if (!it->is_boolean()) c_.fail(Checker::join(where_, k), "must be true or false");
            *out = it->get<bool>();
        });
    }
    void read() const {
        std::set<std::string> known;
        for (const auto& s : steps_) known.insert(s.first);
        c_.onlyKeys(obj_, where_, std::move(known));
        for (const auto& [key, step] : steps_) step(key);
    }

  private:
    const Checker& c_;
    const json& obj_;
    std::string where_;
    std::vector<std::pair<std::string, Step>> steps_;
};

void readLimits(const Checker& c, const json& l, Limits& L) {
    Section(c, l, "limits")
        .number("max_message_size", &L.maxMessageSize, 1024, 1ULL << 32)
        .number("max_recipients", &L.maxRecipients, 1, 100000)
        .number("max_sessions", &L.maxSessions, 1, 100000)
        .number("max_sessions_per_client", &L.maxSessionsPerClient, 1, 100000)
        .number("command_timeout", &L.commandTimeout, 1, 86400)
        .number("session_timeout", &L.sessionTimeout, 1, 86400)
        .number("max_errors", &L.maxErrors, 1, 1000)
        .number("max_sessions_per_network", &L.maxSessionsPerNetwork, 1, 100000)
        .number("max_hops", &L.maxHops, 1, 1000)
        .on("reserved_sessions",
            [&](const std::string& k) {
                if (!l.contains(k)) {
                    L.reservedSessions = L.maxSessions / 10;
                    return;
                }
                c.number(l, "limits", k, &L.reservedSessions, 0, 100000);
                if (L.reservedSessions >= L.maxSessions) {
                    c.fail("limits." + k, "must be less than limits.max_sessions (" +
                                              std::to_string(L.maxSessions) + ")");
                }
            })
        .number("queue_sweep_interval", &L.queueSweepInterval, 1, 86400)
        .number("max_outbound_connections", &L.maxOutboundConnections, 1, 100000)
        .number("max_connections_per_message", &L.maxConnectionsPerMessage, 1, 100000)
        .read();
}

// One element of dns.resolvers: "address[:port]" or {"address", "trusted"}.
dns::ServerAddress readResolver(const Checker& c, const json& e, const std::string& where) {
    std::string addr;
    std::optional<bool> trusted;
    if (e.is_string()) {
        addr = e.get<std::string>();
    } else if (e.is_object()) {
        Section(c, e, where)
            .on("address", [&](const std::string& k) { addr = c.str(e, where, k, true); })
            .on("trusted",
                [&](const std::string& k) {
                    auto t = e.find(k);
                    if (t == e.end()) return;
                    if (!t->is_boolean()) c.fail(where + "." + k, "must be true or false");
                    trusted = t->get<bool>();
                })
            .read();
    } else {
        c.fail(where, "must be \"address[:port]\" or {\"address\": ..., \"trusted\": ...}");
    }
    auto sa = dns::parseServerAddress(addr);
    if (!sa) c.fail(where, sa.error().message);
    if (trusted) sa->trusted = *trusted;
    return *sa;
}

// Returns whether dns.resolv_conf was named.
bool readDns(const Checker& c, const json& d, const std::string& path, DnsConfig& D) {
    bool resolvConfSet = false;
    auto optionalPath = [&](std::string* out) {
        return [&c, &d, &path, out](const std::string& k) {
            if (d.contains(k)) *out = resolvePath(path, c.str(d, "dns", k, true));
        };
    };
    auto optionalString = [&](std::string* out) {
        return [&c, &d, out](const std::string& k) {
            if (d.contains(k)) *out = c.str(d, "dns", k, true);
        };
    };
    Section(c, d, "dns")
        .on("resolvers",
            [&](const std::string& k) {
                auto r = d.find(k);
                if (r == d.end()) return;
                if (!r->is_array() || r->empty()) c.fail("dns." + k, "must be a non-empty array");
                for (size_t i = 0; i < r->size(); ++i) {
                    D.resolvers.push_back(
                        readResolver(c, (*r)[i], "dns." + k + "[" + std::to_string(i) + "]"));
                }
                D.resolversFrom = "dns.resolvers";
            })
        .on("resolv_conf",
            [&](const std::string& k) {
                if (!d.contains(k)) return;
                if (d.contains("resolvers"))
                    c.fail("dns." + k, "set dns.resolvers or dns.resolv_conf, not both");
                D.resolvConf = resolvePath(path, c.str(d, "dns", k, true));
                resolvConfSet = true;
            })
        .on("validation",
            [&](const std::string& k) {
                std::string v = c.str(d, "dns", k, false);
                if (!v.empty() && v != "resolver" && v != "local") {
                    c.fail("dns." + k,
                           "must be \"local\" (validate DNSSEC in-process from the trust anchor) "
                           "or \"resolver\" (believe the AD bit of a trusted validating resolver)");
                }
                if (!v.empty()) D.validation = v;
            })
        .on("trust_anchor", optionalPath(&D.trustAnchor))
        .number("timeout_ms", &D.timeoutMs, 100, 60000)
        .number("attempts", &D.attempts, 1, 10)
        .number("reprobe_interval", &D.reprobeInterval, 10, 86400)
        .on("probe_secure_name", optionalString(&D.probeSecureName))
        .on("probe_bogus_name", optionalString(&D.probeBogusName))
        .read();
    return resolvConfSet;
}

void readDelivery(const Checker& c, const json& d, DeliveryConfig& D) {
    Section(c, d, "delivery")
        .flag("enabled", &D.enabled)
        .flag("allow_tls_required_no", &D.allowTlsRequiredNo)
        .number("max_concurrent", &D.maxConcurrent, 1, 10000)
        .number("max_per_destination", &D.maxPerDestination, 1, 10000)
        .number("max_hosts_per_attempt", &D.maxHostsPerAttempt, 1, 50)
        .number("retry_initial", &D.retryInitial, 1, 86400)
        .number("retry_max", &D.retryMax, 1, 604800)
        .number("max_queue_lifetime", &D.maxQueueLifetime, 1, 8640000)
        .number("port", &D.port, 1, 65535)
        .number("connect_timeout", &D.connectTimeout, 1, 3600)
        .number("command_timeout", &D.commandTimeout, 1, 3600)
        .number("data_timeout", &D.dataTimeout, 1, 3600)
        .number("connection_reuse_time", &D.connectionReuseTime, 0, 300)
        .read();
}

void readMtaSts(const Checker& c, const json& m, const std::string& path, MtaStsConfig& M) {
    Section(c, m, "mta_sts")
        .flag("enabled", &M.enabled)
        .on("trust_store",
            [&](const std::string& k) {
                std::string v = c.str(m, "mta_sts", k, false);
                M.trustStore = v.empty() ? "" : resolvePath(path, v);
            })
        .number("port", &M.port, 1, 65535)
        .number("fetch_timeout", &M.fetchTimeout, 1, 600)
        .read();
}

// metrics.listen: where Prometheus scrapes (off unless set); not one of the
// SMTP listeners' addresses.
void readMetrics(const Checker& c, const json& m, Config& cfg) {
    Section(c, m, "metrics")
        .on("listen",
            [&](const std::string& k) {
                ListenerConfig l;
                parseAddress(c, c.str(m, "metrics", k, true), "metrics." + k, l);
                for (size_t i = 0; i < cfg.listeners.size(); ++i) {
                    if (sameAddress(cfg.listeners[i], l)) {
                        c.fail("metrics." + k, l.text + " is listeners[" + std::to_string(i) +
                                                   "] (" + cfg.listeners[i].text + ")");
                    }
                }
                cfg.metricsListen = l;
            })
        .read();
}

void readHostname(const Checker& c, const json& j, const std::string& k, Config& cfg) {
    cfg.hostname = c.str(j, "", k, false);
    if (j.contains(k) && !j[k].is_null() && !isDnsHostname(cfg.hostname)) {
        c.fail(k, "must be a DNS host name (letters, digits, '-' and '.'; labels of 1-63 bytes): " +
                      j[k].dump());
    }
    if (cfg.hostname.empty()) {
        char buf[256] = {};
        ::gethostname(buf, sizeof buf - 1);
        cfg.hostname = buf;
    }
}

// user and control_group: an account name as useradd(8) allows one, so
// that it can be looked up and logged as it is.
std::string readAccountName(const Checker& c, const json& j, const std::string& k) {
    std::string name = c.str(j, "", k, false);
    if (!j.contains(k) || j[k].is_null()) return name;
    bool ok = !name.empty() && name.size() <= 32 && name[0] != '-';
    for (char ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.')
            ok = false;
    }
    if (!ok) {
        c.fail(k,
               "must be an account name (1-32 letters, digits, '_', '-', '.'; not starting "
               "with '-'): " +
                   j[k].dump());
    }
    return name;
}

LogFormat readLogFormat(const Checker& c, const json& j, const std::string& k) {
    std::string f = c.str(j, "", k, false);
    if (f.empty() || f == "kv") return LogFormat::Kv;
    if (f == "json") return LogFormat::Json;
    c.fail(k, "must be \"kv\" or \"json\": " + j[k].dump());
}

void readListeners(const Checker& c, const json& j, const std::string& k, Config& cfg) {
    auto lit = j.find(k);
    if (lit == j.end() || !lit->is_array() || lit->empty()) c.fail(k, "must be a non-empty array");
    for (size_t i = 0; i < lit->size(); ++i) {
        std::string where = k + "[" + std::to_string(i) + "]";
        cfg.listeners.push_back(parseListener(c, (*lit)[i], where));
        // The same address twice (however written) could never be bound.
        for (size_t n = 0; n < i; ++n) {
            if (sameAddress(cfg.listeners[n], cfg.listeners[i])) {
                c.fail(where + ".address", cfg.listeners[i].text + " is " + k + "[" +
                                               std::to_string(n) + "] again (" +
                                               cfg.listeners[n].text + ")");
            }
        }
    }
}

void readTls(const Checker& c, const json& j, const std::string& k, Config& cfg) {
    if (auto t = j.find(k); t != j.end()) {
        Section(c, *t, k)
            .on("certificate",
                [&](const std::string& key) {
                    cfg.tlsCertificate = resolvePath(cfg.file, c.str(*t, k, key, true));
                })
            .on("key",
                [&](const std::string& key) {
                    cfg.tlsKey = resolvePath(cfg.file, c.str(*t, k, key, true));
                })
            .read();
    }
    for (const auto& l : cfg.listeners) {
        if (l.tls == ListenerTls::Implicit && cfg.tlsCertificate.empty()) {
            c.fail("listeners",
                   "listener " + l.text + " uses implicit TLS but there is no 'tls' section");
        }
    }
}

void readRelayNetworks(const Checker& c, const json& j, const std::string& k, Config& cfg) {
    auto nets = j.find(k);
    if (nets == j.end()) return;
    if (!nets->is_array()) c.fail(k, "must be an array of networks");
    for (size_t i = 0; i < nets->size(); ++i) {
        std::string where = k + "[" + std::to_string(i) + "]";
        if (!(*nets)[i].is_string()) c.fail(where, "must be a string");
        auto n = Cidr::parse((*nets)[i].get<std::string>());
        if (!n) c.fail(where, n.error().message);
        cfg.relayNetworks.push_back(*n);
    }
}

void readAuth(const Checker& c, const json& j, const std::string& k, Config& cfg) {
    auto a = j.find(k);
    if (a == j.end()) return;
    Section(c, *a, k)
        .on("credentials",
            [&](const std::string& key) {
                cfg.credentialsFile = resolvePath(cfg.file, c.str(*a, k, key, true));
            })
        .read();
    if (cfg.tlsCertificate.empty()) {
        c.fail(k, "AUTH is only offered over TLS, so it needs a 'tls' section");
    }
}

// The files the configuration names must be there and readable now.
void checkFiles(const Checker& c, const Config& cfg) {
    if (!cfg.tlsCertificate.empty()) {
        checkReadable(c, "tls.certificate", cfg.tlsCertificate, false);
        checkReadable(c, "tls.key", cfg.tlsKey, false);
    }
    if (!cfg.credentialsFile.empty())
        checkReadable(c, "auth.credentials", cfg.credentialsFile, false);
    if (!cfg.policyDir.empty()) checkReadable(c, "policy_dir", cfg.policyDir, true);
    if (!cfg.mtaSts.trustStore.empty())
        checkReadable(c, "mta_sts.trust_store", cfg.mtaSts.trustStore, false);
}

std::string readConfigFile(const std::string& path) {
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
    return ss.str();
}

}  // namespace

Config loadConfig(const std::string& path, FileCheck files) {
    json j = parseConfigText(path, readConfigFile(path));
    Checker c(path);
    Config cfg;
    cfg.file = path;
    bool resolvConfSet = false;
    auto pathKey = [&](std::string* out) {
        return [&c, &j, &path, out](const std::string& k) {
            *out = resolvePath(path, c.str(j, "", k, false));
        };
    };
    auto inSection = [&](auto read) {
        return [&j, read](const std::string& k) {
            if (auto s = j.find(k); s != j.end()) read(*s);
        };
    };
    Section(c, j, "")
        .on("hostname", [&](const std::string& k) { readHostname(c, j, k, cfg); })
        .on("spool_dir",
            [&](const std::string& k) {
                std::string spool = c.str(j, "", k, true);
                if (spool.empty()) c.fail(k, "must not be empty (a directory for the spool)");
                cfg.spoolDir = resolvePath(path, spool);
            })
        .on("listeners", [&](const std::string& k) { readListeners(c, j, k, cfg); })
        .on("tls", [&](const std::string& k) { readTls(c, j, k, cfg); })
        .on("relay_networks", [&](const std::string& k) { readRelayNetworks(c, j, k, cfg); })
        .on("auth", [&](const std::string& k) { readAuth(c, j, k, cfg); })
        .on("limits", inSection([&](const json& s) { readLimits(c, s, cfg.limits); }))
        .number("commit_batch", &cfg.commitBatch, 1, 4096)
        .on("dns", inSection([&](const json& s) { resolvConfSet = readDns(c, s, path, cfg.dns); }))
        .on("delivery", inSection([&](const json& s) { readDelivery(c, s, cfg.delivery); }))
        .on("metrics", inSection([&](const json& s) { readMetrics(c, s, cfg); }))
        .on("mta_sts", inSection([&](const json& s) { readMtaSts(c, s, path, cfg.mtaSts); }))
        .on("log_file", pathKey(&cfg.logFile))
        .on("policy_dir", pathKey(&cfg.policyDir))
        .on("control_socket", pathKey(&cfg.controlSocket))
        .on("user", [&](const std::string& k) { cfg.user = readAccountName(c, j, k); })
        .on("control_group",
            [&](const std::string& k) { cfg.controlGroup = readAccountName(c, j, k); })
        .on("log_format", [&](const std::string& k) { cfg.logFormat = readLogFormat(c, j, k); })
        .read();
    if (cfg.dns.resolvers.empty()) resolversFromFile(c, cfg.dns, resolvConfSet);
    if (cfg.controlSocket.empty()) cfg.controlSocket = cfg.spoolDir + "/control.sock";
    if (files == FileCheck::Check) checkFiles(c, cfg);
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
