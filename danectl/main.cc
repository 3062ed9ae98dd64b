// danectl.cc — the operator's command line.
//
//   danectl [GLOBAL] status [--json]       the running daemon: uptime, queue, DNSSEC, listeners
//   danectl [GLOBAL] reload [--json]       re-read the policy directory (like SIGHUP)
//   danectl [GLOBAL] queue list [--json] [FILTERS]
//   danectl [GLOBAL] queue show ID [--json] [--body]
//   danectl [GLOBAL] queue summary [--json]
//   danectl [GLOBAL] queue hold|release|delete|flush|bounce|requeue [--json]
//                         (ID... | FILTERS | --all)
//   danectl [--config FILE] probe [--json] [--resolver ADDR]... DOMAIN
//   danectl policy check [--json] DIR
//   danectl passwd [--json]
//   GLOBAL:  --config FILE | --spool DIR | --socket PATH | --timeout SECONDS
//   FILTERS: --state S --domain D --sender ADDR --older-than SECONDS
//
// list, show and summary read the spool directly and read-only (they work
// with the daemon down); a file that cannot be read is listed as damaged,
// never skipped in silence. status, reload and the queue actions go to the
// daemon over its control socket, so that they and the scheduler agree.
// Exit codes: 0 success (and --help, which prints the usage of the verb it
// follows on stdout), 1 not found, partly done or the daemon unreachable,
// 2 usage error; messages go to stderr. --json output shapes (each with a
// "version") are documented in docs/danectl-json.md.
#include <crypt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <event2/event.h>

#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/filter.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "queue/utf8.h"
#include "relay/runtime/config.h"
#include "relay/control/control.h"
#include "relay/control/control_client.h"
#include "relay/outbound/delivery.h"
#include "relay/outbound/destination.h"

using namespace danerelay;
using nlohmann::json;

namespace {

constexpr const char* kDefaultConfig = "/etc/danerelay/danerelay.json";

// The usage, one entry per verb (queue's by action), so that "danectl VERB
// --help" can show just that verb's lines.
struct UsageLine {
    const char* verb;
    const char* sub;  // queue and policy: the second word
    const char* text;
};
constexpr UsageLine kUsage[] = {
    {"status", "", "danectl [GLOBAL] status [--json]\n"},
    {"reload", "", "danectl [GLOBAL] reload [--json]\n"},
    {"queue", "list", "danectl [GLOBAL] queue list [--json] [FILTERS]\n"},
    {"queue", "show", "danectl [GLOBAL] queue show ID [--json] [--body]\n"},
    {"queue", "summary", "danectl [GLOBAL] queue summary [--json]\n"},
    {"queue", "hold|release|delete|flush|bounce|requeue",
     "danectl [GLOBAL] queue hold|release|delete|flush|bounce|requeue [--json]\n"
     "               (ID... | FILTERS | --all)\n"},
    {"probe", "",
     "danectl [--config FILE] probe [--json] [--resolver ADDR]...\n"
     "               [--validation local|resolver] [--trust-anchor FILE]\n"
     "               [--probe-names SIGNED_NAME BOGUS_NAME] DOMAIN\n"},
    {"policy", "check", "danectl policy check [--json] DIR\n"},
    {"passwd", "", "danectl passwd [--json]   (password on stdin; prints a yescrypt hash)\n"},
};

bool subMatches(const char* subs, const std::string& sub) {
    std::string all = std::string("|") + subs + "|";
    return all.find("|" + sub + "|") != std::string::npos;
}

// The lines for verb (and sub, if it names one of its sub-verbs); all of them
// for an empty verb. Empty: no such verb.
std::string usageText(const std::string& verb, const std::string& sub) {
    std::string out;
    bool subKnown = false;
    for (const auto& u : kUsage) {
        if (verb == u.verb && subMatches(u.sub, sub)) subKnown = true;
    }
    for (const auto& u : kUsage) {
        if (!verb.empty() && verb != u.verb) continue;
        if (subKnown && !subMatches(u.sub, sub)) continue;
        out += (out.empty() ? "usage: " : "       ") + std::string(u.text);
    }
    if (out.empty()) return out;
    out += "GLOBAL:  --config FILE | --spool DIR | --socket PATH | --timeout SECONDS\n";
    if (out.find("FILTERS") != std::string::npos)
        out += "FILTERS: --state S | --domain D | --sender ADDR | --older-than SECONDS\n";
    return out;
}

int usage() {
    std::fputs(usageText("", "").c_str(), stderr);
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

using queue::dumpJson;
using queue::Filter;

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

json historyJson(const queue::RecipientStatus& st) {
    json h = json::array();
    for (const auto& a : st.history) {
        h.push_back({{"at", isoTime(a.at)},
                     {"mx", a.mx},
                     {"ip", a.ip},
                     {"tls", a.tls},
                     {"dane", a.dane},
                     {"reply", a.reply}});
    }
    return h;
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
             {"last_error", st.lastError},
             {"history", historyJson(st)}});
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
        std::cout << dumpJson(out, 2) << "\n";
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
    std::string probeSecure, probeBogus, validation, trustAnchor;
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
        } else if (args[i] == "--validation" && i + 1 < args.size()) {
            validation = args[++i];
            if (validation != "local" && validation != "resolver") {
                std::fprintf(stderr, "danectl: --validation is local or resolver\n");
                return 2;
            }
        } else if (args[i] == "--trust-anchor" && i + 1 < args.size()) {
            trustAnchor = args[++i];
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
    relay::OwnAddresses self;  // the daemon's listeners: an MX that is us is a loop
    if (!haveResolvers) {
        try {
            auto cfg = relay::loadConfig(configPath, relay::FileCheck::Skip);
            dnsConfig = cfg.dns;
            policyDir = cfg.policyDir;
            self = relay::ownAddresses(cfg.listeners, cfg.delivery.port);
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
    if (!validation.empty()) dnsConfig.validation = validation;
    if (!trustAnchor.empty()) dnsConfig.trustAnchor = trustAnchor;
    auto options = relay::resolverOptions(dnsConfig);
    if (dnsConfig.validation == "local") {
        auto v = relay::loadValidator(dnsConfig);
        if (!v) {
            std::fprintf(stderr, "danectl: %s\n", v.error().message.c_str());
            return 1;
        }
        options.validator = *v;
        // A command line may block: validate in line.
        options.offload = [](std::function<void()> work, std::function<void()> done) {
            work();
            done();
        };
    }
    std::unique_ptr<event_base, decltype(&event_base_free)> base(event_base_new(),
                                                                 &event_base_free);
    dns::Resolver resolver(base.get(), options);
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
        j["decision"] =
            relay::toJson(relay::plan(info, validating, false, pol.effective.level, self));
        j["policy"] = {{"destination", pol.effective.destination},
                       {"level", policy::toString(pol.effective.level)},
                       {"where", pol.effective.file.empty() ? "" : pol.effective.where()},
                       {"warnings", pol.warnings}};
        std::cout << dumpJson(j, 2) << "\n";
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
        std::fputs(
            relay::toText(relay::plan(info, validating, false, pol.effective.level, self)).c_str(),
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
        std::cout << dumpJson(j, 2) << "\n";
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
        for (const auto& a : st.history) {
            std::printf("    %s  %s [%s]  tls %s  dane %s\n        %s\n", isoTime(a.at).c_str(),
                        a.mx.c_str(), a.ip.c_str(), a.tls.c_str(), a.dane.c_str(), a.reply.c_str());
        }
    }
    std::printf("\n%s", (body ? *content : headers).c_str());
    return 0;
}

int queueSummary(const std::string& spoolDir, bool asJson) {
    std::vector<queue::StoredMessage> list;
    json damaged = json::array();
    if (!loadAll(spoolDir, Filter{}, &list, &damaged)) return 1;
    size_t quarantined = 0;
    if (auto spool = queue::Spool::open(spoolDir, queue::Spool::Mode::Reader); spool)
        quarantined = (*spool)->quarantinedCount();
    std::map<std::string, int> byState, byDomain, byError;
    const queue::StoredMessage* oldest = nullptr;
    for (const auto& m : list) {
        if (!oldest || m.envelope.arrival < oldest->envelope.arrival) oldest = &m;
        for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
            const auto& st = m.status[i];
            ++byState[queue::toString(st.state)];
            if (st.state == queue::RcptState::Delivered || st.state == queue::RcptState::Bounced)
                continue;
            std::string domain = queue::domainOf(m.envelope.recipients[i].address);
            ++byDomain[domain];
            // The reason, without what varies per message (queue IDs, times).
            std::string reason(queue::utf8Prefix(st.lastError, 80));  // never half a character
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
                  {"damaged", damaged.size()},
                  {"quarantined", quarantined}};
        std::cout << dumpJson(j, 2) << "\n";
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
    if (quarantined > 0)
        std::printf("%zu message(s) QUARANTINED as damaged: see %s/quarantine/ (*.why)\n",
                    quarantined, spoolDir.c_str());
    return 0;
}

int policyCheck(const std::string& dir, bool asJson) {
    auto p = policy::PolicySet::loadDir(dir);
    if (asJson) {
        json j = {{"version", 1}, {"ok", p.ok()}, {"dir", dir}};
        if (p) {
            j["entries"] = (*p)->size();
            j["files"] = (*p)->files();
        } else {
            j["error"] = p.error().message;
        }
        std::printf("%s\n", dumpJson(j, 2).c_str());
    }
    if (!p) {
        std::fprintf(stderr, "%s\n", p.error().message.c_str());
        return 1;
    }
    if (!asJson)
        std::printf("%s: ok, %zu entries in %zu files\n", dir.c_str(), (*p)->size(), (*p)->files());
    return 0;
}

// ---------------------------------------------------------------- daemon verbs

// One request to the running daemon. Failures print on stderr (and, with
// --json, as {"version":1,"ok":false,"error":…} on stdout) and give nullopt.
std::optional<json> ask(const std::string& socket, const json& request, bool asJson, int timeout) {
    auto r = relay::controlRequest(socket, request, timeout);
    json reply = r ? *r : json{{"version", 1}, {"ok", false}, {"error", r.error().message}};
    if (!reply.value("ok", false)) {
        if (asJson) std::printf("%s\n", dumpJson(reply, 2).c_str());
        std::fprintf(stderr, "danectl: %s\n", reply.value("error", "failed").c_str());
        return std::nullopt;
    }
    return reply;
}

std::string duration(int64_t s) {
    char buf[64];
    if (s >= 86400) {
        std::snprintf(buf, sizeof buf, "%lldd %02lldh %02lldm", (long long)(s / 86400),
                      (long long)(s % 86400 / 3600), (long long)(s % 3600 / 60));
    } else {
        std::snprintf(buf, sizeof buf, "%lldh %02lldm %02llds", (long long)(s / 3600),
                      (long long)(s % 3600 / 60), (long long)(s % 60));
    }
    return buf;
}

int status(const std::string& socket, bool asJson, int timeout) {
    auto r = ask(socket, {{"version", 1}, {"verb", "status"}}, asJson, timeout);
    if (!r) return 1;
    if (asJson) {
        std::printf("%s\n", dumpJson(*r, 2).c_str());
        return 0;
    }
    const json& d = (*r)["daemon"];
    const json& q = (*r)["queue"];
    const json& dn = (*r)["dnssec"];
    std::printf("danerelayd %s, pid %lld, up %s (since %s)\n",
                d["version"].get<std::string>().c_str(), d["pid"].get<long long>(),
                duration(d["uptime_seconds"].get<int64_t>()).c_str(),
                isoTime(d["started"].get<int64_t>()).c_str());
    std::string states;
    for (const auto& [k, v] : q["recipients_by_state"].items()) {
        if (v.get<int64_t>() == 0) continue;
        states += (states.empty() ? "" : ", ") + std::to_string(v.get<int64_t>()) + " " + k;
    }
    std::printf("queue:     %lld messages (recipients: %s), %lld in delivery",
                q["messages"].get<long long>(), states.empty() ? "none" : states.c_str(),
                q["in_flight"].get<long long>());
    if (q["damaged"].get<int64_t>() > 0)
        std::printf(", %lld DAMAGED (see queue list)", q["damaged"].get<long long>());
    if (q.value("quarantined", 0) > 0)
        std::printf(", %lld QUARANTINED", q["quarantined"].get<long long>());
    std::printf("\n");
    std::printf(
        "dnssec:    %s validation%s%s, %s", dn["mode"].get<std::string>().c_str(),
        dn.contains("trust_anchor") ? " from " : "",
        dn.contains("trust_anchor") ? dn["trust_anchor"].get<std::string>().c_str() : "",
        dn["validating"].get<bool>() ? "validating" : "NOT VALIDATING (DANE deliveries defer)");
    if (dn["last_probe"].is_object())
        std::printf("; last probe %s: %s", isoTime(dn["last_probe"]["at"].get<int64_t>()).c_str(),
                    dn["last_probe"]["detail"].get<std::string>().c_str());
    std::printf("\n");
    if (dn.contains("resolvers"))  // a daemon from before the field has none
        std::printf("resolvers: %s from %s\n", dn["resolvers"].get<std::string>().c_str(),
                    dn.value("resolvers_from", std::string("?")).c_str());
    for (const auto& l : (*r)["listeners"])
        std::printf("listener:  %s (%s)\n", l["address"].get<std::string>().c_str(),
                    l["tls"].get<std::string>().c_str());
    const json& p = (*r)["policy"];
    if (p["dir"].is_string()) {
        std::printf("policy:    %s: %lld entries in %lld files, loaded %s\n",
                    p["dir"].get<std::string>().c_str(), p["entries"].get<long long>(),
                    p["files"].get<long long>(), isoTime(p["loaded"].get<int64_t>()).c_str());
    } else {
        std::printf("policy:    built-in (dane for every destination)\n");
    }
    std::printf("delivery:  %s", (*r)["delivery"]["enabled"].get<bool>()
                                     ? "enabled"
                                     : "DISABLED in the configuration");
    if (const auto& c = (*r)["delivery"].value("connections", json()); c.is_object())
        std::printf("; connections %lld in use (peak %lld), limit %lld, %lld per message",
                    c["in_use"].get<long long>(), c["peak"].get<long long>(),
                    c["limit"].get<long long>(), c["per_message"].get<long long>());
    std::printf("\n");
    return 0;
}

int reload(const std::string& socket, bool asJson, int timeout) {
    auto r = ask(socket, {{"version", 1}, {"verb", "reload"}}, asJson, timeout);
    if (!r) return 1;
    if (asJson) {
        std::printf("%s\n", dumpJson(*r, 2).c_str());
    } else {
        const json& p = (*r)["policy"];
        std::printf("policy reloaded: %lld entries in %lld files\n", p["entries"].get<long long>(),
                    p["files"].get<long long>());
    }
    return 0;
}

// queue hold|release|delete|flush|bounce|requeue: by IDs, a filter, or --all.
int queueAction(const std::string& socket, const std::string& action,
                const std::vector<std::string>& ids, const Filter& filter, bool all, bool asJson,
                int timeout) {
    json req = {{"version", 1}, {"verb", "queue"}, {"action", action}};
    if (!ids.empty()) {
        req["ids"] = ids;
    } else if (all) {
        req["all"] = true;
    } else {
        req["filter"] = filter.toJson();
    }
    auto r = ask(socket, req, asJson, timeout);
    if (!r) return 1;
    const json& c = (*r)["counts"];
    bool partly = c["not-found"].get<int64_t>() > 0 || c["error"].get<int64_t>() > 0 ||
                  (*r)["matched"].get<int64_t>() == 0;
    if (asJson) {
        std::printf("%s\n", dumpJson(*r, 2).c_str());
    } else {
        for (const auto& x : (*r)["results"]) {
            std::printf("%s: %s (%s)\n", x["id"].get<std::string>().c_str(),
                        x["result"].get<std::string>().c_str(),
                        x["detail"].get<std::string>().c_str());
        }
        std::printf("%s: %lld matched, %lld done, %lld unchanged, %lld not found, %lld failed\n",
                    action.c_str(), (*r)["matched"].get<long long>(), c["done"].get<long long>(),
                    c["unchanged"].get<long long>(), c["not-found"].get<long long>(),
                    c["error"].get<long long>());
    }
    int64_t notFound = c["not-found"].get<int64_t>();
    if ((*r)["matched"].get<int64_t>() == 0) {
        std::fprintf(stderr, "danectl: no message matched\n");
    } else if (notFound == (*r)["matched"].get<int64_t>()) {
        // Nothing was there to act on: "partly done" would say otherwise.
        std::string which;
        for (const auto& x : (*r)["results"]) which += " " + x["id"].get<std::string>();
        std::fprintf(stderr, "danectl: %s: not found:%s\n", action.c_str(), which.c_str());
    } else if (partly)
        std::fprintf(stderr, "danectl: %s: partly done (see above)\n", action.c_str());
    return partly ? 1 : 0;
}

int passwd(bool asJson) {
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
    if (asJson) {
        std::printf("%s\n", dumpJson(json({{"version", 1}, {"hash", hash}}), 2).c_str());
    } else {
        std::printf("%s\n", hash);
    }
    return 0;
}

}  // namespace

namespace {

bool isAction(const std::string& v) {
    for (const char* a : {"hold", "release", "delete", "flush", "bounce", "requeue"}) {
        if (v == a) return true;
    }
    return false;
}

bool parseSeconds(const std::string& v, int64_t* out) {
    if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos)
        return false;
    *out = std::stoll(v);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string configPath, spoolDir, socketPath;
    int timeout = 600;
    size_t i = 0;
    for (; i < args.size(); ++i) {
        int64_t t = 0;
        if (args[i] == "--config" && i + 1 < args.size()) {
            configPath = args[++i];
        } else if (args[i] == "--spool" && i + 1 < args.size()) {
            spoolDir = args[++i];
        } else if (args[i] == "--socket" && i + 1 < args.size()) {
            socketPath = args[++i];
        } else if (args[i] == "--timeout" && i + 1 < args.size()) {
            if (!parseSeconds(args[++i], &t) || t == 0 || t > 86400) {
                std::fprintf(stderr, "danectl: --timeout takes seconds (1-86400)\n");
                return 2;
            }
            timeout = static_cast<int>(t);
        } else {
            break;
        }
    }
    std::vector<std::string> rest(args.begin() + static_cast<long>(i), args.end());
    // --help (or -h) anywhere: the usage asked for, on stdout, and success.
    if (std::find_if(rest.begin(), rest.end(), [](const std::string& a) {
            return a == "--help" || a == "-h";
        }) != rest.end()) {
        std::string verb = rest[0] == "--help" || rest[0] == "-h" ? "" : rest[0];
        std::string text = usageText(verb, rest.size() > 1 ? rest[1] : "");
        if (text.empty()) {
            std::fprintf(stderr, "danectl: unknown verb '%s'\n", verb.c_str());
            return usage();
        }
        std::fputs(text.c_str(), stdout);
        return 0;
    }
    if (rest.empty()) return usage();
    // --json anywhere after the verb.
    bool asJson = false;
    std::erase_if(rest, [&](const std::string& a) { return a == "--json" && (asJson = true); });
    if (rest.empty()) return usage();
    if (rest[0] == "passwd" && rest.size() == 1) return passwd(asJson);
    if (rest[0] == "policy" && rest.size() == 3 && rest[1] == "check")
        return policyCheck(rest[2], asJson);
    if (configPath.empty()) {
        const char* env = std::getenv("DANERELAY_CONFIG");
        configPath = env ? env : kDefaultConfig;
    }
    if (rest[0] == "probe") {
        std::vector<std::string> pargs(rest.begin() + 1, rest.end());
        if (asJson) pargs.insert(pargs.begin(), "--json");
        return probe(configPath, pargs);
    }
    // Where the spool and the daemon's socket are: --spool/--socket, or the
    // configuration file.
    auto locate = [&]() -> bool {
        if (!spoolDir.empty() && !socketPath.empty()) return true;
        if (!spoolDir.empty()) {
            socketPath = spoolDir + "/control.sock";
            return true;
        }
        try {
            auto cfg = relay::loadConfig(configPath, relay::FileCheck::Skip);
            spoolDir = cfg.spoolDir;
            if (socketPath.empty()) socketPath = cfg.controlSocket;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "danectl: %s\n", e.what());
            return false;
        }
        return true;
    };
    if ((rest[0] == "status" || rest[0] == "reload") && rest.size() == 1) {
        if (!locate()) return 1;
        return rest[0] == "status" ? status(socketPath, asJson, timeout)
                                   : reload(socketPath, asJson, timeout);
    }
    if (rest[0] != "queue" || rest.size() < 2) return usage();
    const std::string& verb = rest[1];
    bool action = isAction(verb);
    if (!action && verb != "list" && verb != "show" && verb != "summary") return usage();
    bool body = false, all = false;
    Filter filter;
    std::vector<std::string> ids;
    bool filters = verb == "list" || action;
    for (size_t k = 2; k < rest.size(); ++k) {
        const auto& a = rest[k];
        bool hasValue = k + 1 < rest.size();
        if (a == "--body" && verb == "show") {
            body = true;
        } else if (a == "--all" && action) {
            all = true;
        } else if (a == "--state" && hasValue && filters) {
            filter.state = rest[++k];
            queue::RcptState ignored;
            if (!queue::parseRcptState(filter.state, &ignored)) {
                std::fprintf(stderr,
                             "danectl: unknown state '%s' (pending, deferred, delivered, "
                             "bounced, held)\n",
                             filter.state.c_str());
                return 2;
            }
        } else if (a == "--domain" && hasValue && filters) {
            filter.domain = rest[++k];
        } else if (a == "--sender" && hasValue && filters) {
            filter.sender = rest[++k];
        } else if (a == "--older-than" && hasValue && filters) {
            if (!parseSeconds(rest[++k], &filter.olderThan)) {
                std::fprintf(stderr, "danectl: --older-than takes seconds\n");
                return 2;
            }
        } else if ((verb == "show" || action) && !a.empty() && a[0] != '-') {
            if (verb == "show" && !ids.empty()) return usage();
            if (!queue::isValidQueueId(a)) {
                std::fprintf(stderr, "danectl: '%s' is not a queue ID (14 hex digits)\n",
                             a.c_str());
                return 2;
            }
            ids.push_back(a);
        } else {
            return usage();
        }
    }
    if (verb == "show" && ids.empty()) return usage();
    if (action) {
        // Exactly one selection; an action on everything must say --all.
        int selections = int(!ids.empty()) + int(all) + int(!filter.empty());
        if (selections != 1) {
            std::fprintf(stderr,
                         "danectl: queue %s takes queue IDs, or filters (--state, --domain, "
                         "--sender, --older-than), or --all: exactly one of them\n",
                         verb.c_str());
            return 2;
        }
    }
    if (!locate()) return 1;
    if (action) return queueAction(socketPath, verb, ids, filter, all, asJson, timeout);
    if (verb == "show") return queueShow(spoolDir, ids[0], asJson, body);
    if (verb == "summary") return queueSummary(spoolDir, asJson);
    return queueList(spoolDir, asJson, filter);
}
