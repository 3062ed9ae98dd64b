// danectl.cc — the operator's command line.
//
//   danectl [--config FILE | --spool DIR] queue list [--json]
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
                 "usage: danectl [--config FILE | --spool DIR] queue list [--json]\n"
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

int queueList(const std::string& spoolDir, bool asJson) {
    auto spool = queue::Spool::open(spoolDir, queue::Spool::Mode::Reader);
    if (!spool) {
        std::fprintf(stderr, "danectl: %s\n", spool.error().message.c_str());
        return 1;
    }
    json messages = json::array(), damaged = json::array();
    uint64_t totalSize = 0;
    std::vector<queue::StoredMessage> list;
    for (const auto& id : (*spool)->listIds()) {
        auto m = (*spool)->load(id);
        if (!m) {
            // Gone between listing and reading: delivered meanwhile, not damage.
            if (m.error().kind == ErrorKind::Permanent) continue;
            damaged.push_back({{"id", id}, {"error", m.error().message}});
            continue;
        }
        totalSize += m->contentSize;
        list.push_back(std::move(*m));
    }
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
    if (rest[0] == "queue" && rest.size() >= 2 && rest[1] == "list") {
        bool asJson = false;
        for (size_t k = 2; k < rest.size(); ++k) {
            if (rest[k] == "--json") {
                asJson = true;
            } else {
                return usage();
            }
        }
        if (spoolDir.empty()) {
            try {
                spoolDir = relay::loadConfig(configPath).spoolDir;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "danectl: %s\n", e.what());
                return 1;
            }
        }
        return queueList(spoolDir, asJson);
    }
    return usage();
}
