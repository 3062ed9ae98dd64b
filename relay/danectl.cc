// danectl.cc — the operator's command line.
//
//   danectl [--config FILE | --spool DIR] queue list [--json] [filters]
//   danectl [--config FILE | --spool DIR] queue show ID [--json] [--body]
//   danectl [--config FILE | --spool DIR] queue summary [--json]
//   danectl [--config FILE] probe [--json] [--resolver ADDR]... DOMAIN
//                             what DNS says about DOMAIN for DANE: MX hosts,
//                             addresses, TLSA records, each with its DNSSEC status
//   danectl policy check DIR  validate a policy directory without a daemon
//   danectl passwd            read a password on stdin, print a yescrypt hash
//
// queue list reads the spool directly and read-only (it works with the
// daemon down). A file that cannot be read is listed as damaged, never
// skipped in silence. Exit codes: 0 success, 1 not found or partly done,
// 2 usage error; messages go to stderr.
#include <crypt.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <event2/event.h>

#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/spool.h"
#include "relay/config.h"
#include "relay/delivery.h"
#include "relay/destination.h"

using namespace danerelay;
using nlohmann::json;

namespace {

constexpr const char* kDefaultConfig = "/etc/danerelay/danerelay.json";

int usage() {
    std::fprintf(stderr,
                 "usage: danectl [--config FILE | --spool DIR] queue list [--json] [--state S]\n"
                 "               [--domain D] [--sender ADDR] [--older-than SECONDS]\n"
                 "       danectl [--config FILE | --spool DIR] queue show ID [--json] [--body]\n"
                 "       danectl [--config FILE | --spool DIR] queue summary [--json]\n"
                 "       danectl [--config FILE] probe [--json] [--resolver ADDR]...\n"
                 "               [--probe-names SIGNED_NAME BOGUS_NAME] DOMAIN\n"
                 "       danectl policy check DIR\n"
                 "       danectl passwd    (password on stdin; prints a yescrypt hash)\n");
    return 2;
}

std::string isoTime(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    tm tmv{};
    gmtime_r(&tt, &tmv);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    return buf;
}

// Which messages a verb applies to. A message matches when one of its
// recipients matches the state and domain filters.
struct Filter {
    std::string state, domain, sender;
    int64_t olderThan = -1;  // seconds
    bool matches(const queue::StoredMessage& m, int64_t now) const {
        if (!sender.empty() && lowerCase(m.envelope.sender) != lowerCase(sender)) return false;
        if (olderThan >= 0 && now - m.envelope.arrival < olderThan) return false;
        for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
            if (!state.empty() && queue::toString(m.status[i].state) != state) continue;
            if (!domain.empty() && domainOf(m.envelope.recipients[i].address) != lowerCase(domain))
                continue;
            return true;
        }
        return false;
    }
    static std::string lowerCase(std::string s) {
        for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
    }
    static std::string domainOf(const std::string& a) {
        auto at = a.rfind('@');
        return lowerCase(at == std::string::npos ? "" : a.substr(at + 1));
    }
};

// Every readable message (filtered), and the unreadable ones as damaged.
bool loadAll(const std::string& spoolDir, const Filter& f, std::vector<queue::StoredMessage>* out,
             json* damaged) {
    auto spool = queue::Spool::open(spoolDir, queue::Spool::Mode::Reader);
    if (!spool) {
        std::fprintf(stderr, "danectl: %s\n", spool.error().message.c_str());
        return false;
    }
    int64_t now = static_cast<int64_t>(std::time(nullptr));
    for (const auto& id : (*spool)->listIds()) {
        auto m = (*spool)->load(id);
        if (!m) {
            // Gone between listing and reading: delivered meanwhile, not damage.
            if (m.error().kind == ErrorKind::Permanent) continue;
            damaged->push_back({{"id", id}, {"error", m.error().message}});
            continue;
        }
        if (f.matches(*m, now)) out->push_back(std::move(*m));
    }
    return true;
}

json recipientsJson(const queue::StoredMessage& m) {
    json rcpts = json::array();
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
        const auto& st = m.status[i];
        rcpts.push_back(
            {{"address", m.envelope.recipients[i].address},
             {"state", queue::toString(st.state)},
             {"attempts", st.attempts},
             {"next_attempt", st.nextAttempt ? json(isoTime(st.nextAttempt)) : json(nullptr)},
             {"last_error", st.lastError}});
    }
    return rcpts;
}

int queueList(const std::string& spoolDir, bool asJson, const Filter& filter) {
    json messages = json::array(), damaged = json::array();
    std::vector<queue::StoredMessage> list;
    if (!loadAll(spoolDir, filter, &list, &damaged)) return 1;
    uint64_t totalSize = 0;
    for (const auto& m : list) totalSize += m.contentSize;
    if (asJson) {
        for (const auto& m : list) {
            json rcpts = json::array();
            for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
                const auto& st = m.status[i];
                rcpts.push_back({{"address", m.envelope.recipients[i].address},
                                 {"state", queue::toString(st.state)},
                                 {"attempts", st.attempts},
                                 {"next_attempt",
                                  st.nextAttempt ? json(isoTime(st.nextAttempt)) : json(nullptr)},
                                 {"last_error", st.lastError}});
            }
            messages.push_back({{"id", m.id},
                                {"arrival", isoTime(m.envelope.arrival)},
                                {"size", m.contentSize},
                                {"sender", m.envelope.sender},
                                {"client", m.envelope.clientAddress},
                                {"tls", m.envelope.tls},
                                {"recipients", rcpts}});
        }
        json out = {{"version", 1}, {"messages", messages}, {"damaged", damaged}};
        std::cout << out.dump(2) << "\n";
        return damaged.empty() ? 0 : 1;
    }
    if (list.empty() && damaged.empty()) {
        std::printf("Mail queue is empty\n");
        return 0;
    }
    std::printf("%-14s %10s %-20s  %s\n", "-Queue ID-", "--Size--", "----Arrival Time----",
                "-Sender/Recipient-------");
    for (const auto& m : list) {
        std::printf("%-14s %10llu %-20s  %s\n", m.id.c_str(),
                    static_cast<unsigned long long>(m.contentSize),
                    isoTime(m.envelope.arrival).c_str(),
                    m.envelope.sender.empty() ? "<>" : m.envelope.sender.c_str());
        for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
            const auto& st = m.status[i];
            std::printf("%47s  %-9s %s", "", queue::toString(st.state),
                        m.envelope.recipients[i].address.c_str());
            if (!st.lastError.empty()) std::printf("  (%s)", st.lastError.c_str());
            std::printf("\n");
        }
    }
    for (const auto& d : damaged) {
        std::printf("%-14s DAMAGED: %s\n", d["id"].get<std::string>().c_str(),
                    d["error"].get<std::string>().c_str());
    }
    std::printf(
        "-- %llu bytes in %zu message%s%s.\n", static_cast<unsigned long long>(totalSize),
        list.size(), list.size() == 1 ? "" : "s",
        damaged.empty() ? "" : (", " + std::to_string(damaged.size()) + " damaged").c_str());
    return damaged.empty() ? 0 : 1;
}

int probe(const std::string& configPath, const std::vector<std::string>& args) {
    bool asJson = false;
    std::string domain;
    relay::DnsConfig dnsConfig;
    bool haveResolvers = false;
    std::string probeSecure, probeBogus;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--json") {
            asJson = true;
        } else if (args[i] == "--resolver" && i + 1 < args.size()) {
            auto sa = dns::parseServerAddress(args[++i]);
            if (!sa) {
                std::fprintf(stderr, "danectl: --resolver %s\n", sa.error().message.c_str());
                return 2;
            }
            if (!haveResolvers) dnsConfig.resolvers.clear();
            dnsConfig.resolvers.push_back(*sa);
            haveResolvers = true;
        } else if (args[i] == "--probe-names" && i + 2 < args.size()) {
            probeSecure = args[++i];
            probeBogus = args[++i];
        } else if (domain.empty() && !args[i].empty() && args[i][0] != '-') {
            domain = args[i];
        } else {
            return usage();
        }
    }
    if (domain.empty()) return usage();
    std::string policyDir;
    if (!haveResolvers) {
        try {
            auto cfg = relay::loadConfig(configPath);
            dnsConfig = cfg.dns;
            policyDir = cfg.policyDir;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "danectl: %s\n", e.what());
            return 1;
        }
    }
    policy::Decision pol;
    pol.effective.destination = "(built-in default)";
    if (!policyDir.empty()) {
        auto ps = policy::PolicySet::loadDir(policyDir);
        if (!ps) {
            std::fprintf(stderr, "danectl: %s\n", ps.error().message.c_str());
            return 1;
        }
        pol = (*ps)->lookup(domain, static_cast<int64_t>(std::time(nullptr)));
    }
    if (!probeSecure.empty()) {
        dnsConfig.probeSecureName = probeSecure;
        dnsConfig.probeBogusName = probeBogus;
    }
    std::unique_ptr<event_base, decltype(&event_base_free)> base(event_base_new(),
                                                                 &event_base_free);
    dns::Resolver resolver(base.get(), relay::resolverOptions(dnsConfig));
    bool validating = false;
    std::string probeDetail;
    relay::DestinationInfo info;
    bool done = false;
    resolver.probe([&](bool ok, const std::string& detail) {
        validating = ok;
        probeDetail = detail;
        auto got = [&](const relay::DestinationInfo& d) {
            info = d;
            done = true;
            event_base_loopbreak(base.get());
        };
        const auto& hop = pol.effective.nextHop;
        if (hop) {
            relay::DestinationLookup::runNextHop(resolver, domain, hop->host, hop->literal,
                                                 hop->port, got);
        } else {
            relay::DestinationLookup::run(resolver, domain, 10, got);
        }
    });
    event_base_dispatch(base.get());
    if (!done) {
        std::fprintf(stderr, "danectl: probe did not finish\n");
        return 1;
    }
    std::string servers;
    for (const auto& s : dnsConfig.resolvers) {
        servers += (servers.empty() ? "" : ",") + s.text() + (s.trusted ? "" : "(untrusted)");
    }
    if (asJson) {
        auto j = relay::toJson(info);
        j["resolver"] = {{"servers", servers}, {"validating", validating}, {"detail", probeDetail}};
        j["decision"] = relay::toJson(relay::plan(info, validating, false, pol.effective.level));
        j["policy"] = {{"destination", pol.effective.destination},
                       {"level", policy::toString(pol.effective.level)},
                       {"where", pol.effective.file.empty() ? "" : pol.effective.where()},
                       {"warnings", pol.warnings}};
        std::cout << j.dump(2) << "\n";
    } else {
        std::printf("resolver %s: %s (%s)\n", servers.c_str(),
                    validating ? "validating" : "NOT VALIDATING", probeDetail.c_str());
        if (!validating) {
            std::printf(
                "  DNSSEC status cannot be trusted: deliveries that ask for DANE will defer\n");
        }
        std::fputs(relay::toText(info).c_str(), stdout);
        std::printf("policy: %s for %s%s\n", policy::toString(pol.effective.level),
                    pol.effective.destination.c_str(),
                    pol.effective.file.empty() ? "" : (" (" + pol.effective.where() + ")").c_str());
        for (const auto& w : pol.warnings) std::printf("  warning: %s\n", w.c_str());
        std::fputs(relay::toText(relay::plan(info, validating, false, pol.effective.level)).c_str(),
                   stdout);
    }
    bool resolved =
        info.mx.outcome == dns::Outcome::Data || info.mx.outcome == dns::Outcome::NoData;
    return resolved ? 0 : 1;
}

int queueShow(const std::string& spoolDir, const std::string& id, bool asJson, bool body) {
    auto spool = queue::Spool::open(spoolDir, queue::Spool::Mode::Reader);
    if (!spool) {
        std::fprintf(stderr, "danectl: %s\n", spool.error().message.c_str());
        return 1;
    }
    auto m = (*spool)->load(id);
    if (!m) {
        std::fprintf(stderr, "danectl: %s\n", m.error().message.c_str());
        return 1;
    }
    auto content = (*spool)->loadContent(id);
    if (!content) {
        std::fprintf(stderr, "danectl: %s\n", content.error().message.c_str());
        return 1;
    }
    auto split = content->find("\r\n\r\n");
    std::string headers =
        content->substr(0, split == std::string::npos ? content->size() : split + 2);
    const auto& e = m->envelope;
    if (asJson) {
        json j = {{"version", 1},
                  {"id", m->id},
                  {"arrival", isoTime(e.arrival)},
                  {"size", m->contentSize},
                  {"sender", e.sender},
                  {"client", e.clientAddress},
                  {"helo", e.heloName},
                  {"auth", e.authUser},
                  {"tls", e.tls},
                  {"envid", e.envid},
                  {"recipients", recipientsJson(*m)},
                  {"headers", headers}};
        if (body) j["content"] = *content;
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::printf("Queue ID: %s\nArrival:  %s\nSize:     %llu\nSender:   <%s>\n", m->id.c_str(),
                isoTime(e.arrival).c_str(), static_cast<unsigned long long>(m->contentSize),
                e.sender.c_str());
    std::printf("Client:   %s (HELO %s)%s%s\nTLS:      %s\n", e.clientAddress.c_str(),
                e.heloName.c_str(), e.authUser.empty() ? "" : ", authenticated as ",
                e.authUser.c_str(), e.tls.empty() ? "none" : e.tls.c_str());
    for (size_t i = 0; i < e.recipients.size(); ++i) {
        const auto& st = m->status[i];
        std::printf("Recipient <%s>: %s, %d attempt%s", e.recipients[i].address.c_str(),
                    queue::toString(st.state), st.attempts, st.attempts == 1 ? "" : "s");
        if (st.nextAttempt) std::printf(", next %s", isoTime(st.nextAttempt).c_str());
        std::printf("\n");
        if (!st.lastError.empty()) std::printf("    last result: %s\n", st.lastError.c_str());
    }
    std::printf("\n%s", (body ? *content : headers).c_str());
    return 0;
}

int queueSummary(const std::string& spoolDir, bool asJson) {
    std::vector<queue::StoredMessage> list;
    json damaged = json::array();
    if (!loadAll(spoolDir, Filter{}, &list, &damaged)) return 1;
    std::map<std::string, int> byState, byDomain, byError;
    const queue::StoredMessage* oldest = nullptr;
    for (const auto& m : list) {
        if (!oldest || m.envelope.arrival < oldest->envelope.arrival) oldest = &m;
        for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
            const auto& st = m.status[i];
            ++byState[queue::toString(st.state)];
            if (st.state == queue::RcptState::Delivered || st.state == queue::RcptState::Bounced)
                continue;
            std::string domain = Filter::domainOf(m.envelope.recipients[i].address);
            ++byDomain[domain];
            // The reason, without what varies per message (queue IDs, times).
            std::string reason = st.lastError.substr(0, 80);
            if (!reason.empty()) ++byError[domain + ": " + reason];
        }
    }
    if (asJson) {
        json j = {{"version", 1},
                  {"messages", list.size()},
                  {"recipients_by_state", byState},
                  {"pending_by_domain", byDomain},
                  {"pending_by_reason", byError},
                  {"oldest",
                   oldest ? json{{"id", oldest->id}, {"arrival", isoTime(oldest->envelope.arrival)}}
                          : json(nullptr)},
                  {"damaged", damaged.size()}};
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::printf("%zu message%s in the queue", list.size(), list.size() == 1 ? "" : "s");
    if (oldest)
        std::printf(", oldest %s (%s)", oldest->id.c_str(),
                    isoTime(oldest->envelope.arrival).c_str());
    std::printf("\nrecipients by state:\n");
    for (const auto& [k, v] : byState) std::printf("  %-10s %d\n", k.c_str(), v);
    std::printf("waiting, by destination:\n");
    for (const auto& [k, v] : byDomain) std::printf("  %-30s %d\n", k.c_str(), v);
    std::printf("waiting, by last result:\n");
    for (const auto& [k, v] : byError) std::printf("  %5d  %s\n", v, k.c_str());
    if (!damaged.empty())
        std::printf("%zu damaged file(s): see danectl queue list\n", damaged.size());
    return 0;
}

int policyCheck(const std::string& dir) {
    auto p = policy::PolicySet::loadDir(dir);
    if (!p) {
        std::fprintf(stderr, "%s\n", p.error().message.c_str());
        return 1;
    }
    std::printf("%s: ok, %zu entries in %zu files\n", dir.c_str(), (*p)->size(), (*p)->files());
    return 0;
}

int passwd() {
    std::string password;
    if (!std::getline(std::cin, password) || password.empty()) {
        std::fprintf(stderr, "danectl passwd: no password on standard input\n");
        return 2;
    }
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof salt)) {
        std::fprintf(stderr, "danectl passwd: cannot make a salt\n");
        return 1;
    }
    crypt_data data{};
    const char* hash = crypt_r(password.c_str(), salt, &data);
    if (!hash || hash[0] == '*') {
        std::fprintf(stderr, "danectl passwd: crypt failed\n");
        return 1;
    }
    std::printf("%s\n", hash);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string configPath, spoolDir;
    size_t i = 0;
    for (; i < args.size(); ++i) {
        if (args[i] == "--config" && i + 1 < args.size()) {
            configPath = args[++i];
        } else if (args[i] == "--spool" && i + 1 < args.size()) {
            spoolDir = args[++i];
        } else {
            break;
        }
    }
    std::vector<std::string> rest(args.begin() + static_cast<long>(i), args.end());
    if (rest.empty()) return usage();
    if (rest[0] == "passwd" && rest.size() == 1) return passwd();
    if (rest[0] == "policy" && rest.size() == 3 && rest[1] == "check") return policyCheck(rest[2]);
    if (configPath.empty()) {
        const char* env = std::getenv("DANERELAY_CONFIG");
        configPath = env ? env : kDefaultConfig;
    }
    if (rest[0] == "probe") return probe(configPath, {rest.begin() + 1, rest.end()});
    if (rest[0] == "queue" && rest.size() >= 2 &&
        (rest[1] == "list" || rest[1] == "show" || rest[1] == "summary")) {
        bool asJson = false, body = false;
        Filter filter;
        std::string id;
        for (size_t k = 2; k < rest.size(); ++k) {
            const auto& a = rest[k];
            bool hasValue = k + 1 < rest.size();
            if (a == "--json") {
                asJson = true;
            } else if (a == "--body" && rest[1] == "show") {
                body = true;
            } else if (a == "--state" && hasValue && rest[1] == "list") {
                filter.state = rest[++k];
                queue::RcptState ignored;
                if (!queue::parseRcptState(filter.state, &ignored)) {
                    std::fprintf(stderr,
                                 "danectl: unknown state '%s' (pending, deferred, delivered, "
                                 "bounced, held)\n",
                                 filter.state.c_str());
                    return 2;
                }
            } else if (a == "--domain" && hasValue && rest[1] == "list") {
                filter.domain = rest[++k];
            } else if (a == "--sender" && hasValue && rest[1] == "list") {
                filter.sender = rest[++k];
            } else if (a == "--older-than" && hasValue && rest[1] == "list") {
                const auto& v = rest[++k];
                if (v.empty() || v.size() > 9 ||
                    v.find_first_not_of("0123456789") != std::string::npos) {
                    std::fprintf(stderr, "danectl: --older-than takes seconds\n");
                    return 2;
                }
                filter.olderThan = std::stoll(v);
            } else if (rest[1] == "show" && id.empty() && !a.empty() && a[0] != '-') {
                id = a;
            } else {
                return usage();
            }
        }
        if (rest[1] == "show" && id.empty()) return usage();
        if (spoolDir.empty()) {
            try {
                spoolDir = relay::loadConfig(configPath).spoolDir;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "danectl: %s\n", e.what());
                return 1;
            }
        }
        if (rest[1] == "show") return queueShow(spoolDir, id, asJson, body);
        if (rest[1] == "summary") return queueSummary(spoolDir, asJson);
        return queueList(spoolDir, asJson, filter);
    }
    return usage();
}
