#include "danectl/daemon.h"

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "danectl/output.h"

namespace danerelay::danectl {

using nlohmann::json;

namespace {

void printDaemonLine(const json& d) {
    std::printf("danerelayd %s, pid %lld, up %s (since %s)\n",
                d["version"].get<std::string>().c_str(), d["pid"].get<long long>(),
                duration(d["uptime_seconds"].get<int64_t>()).c_str(),
                isoTime(d["started"].get<int64_t>()).c_str());
}

void printQueueLine(const json& q) {
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
    if (const auto& r = q.value("recovery", json()); r.is_object() && r["running"].get<bool>())
        std::printf("; recovering the spool: %lld of %lld read", r["checked"].get<long long>(),
                    r["listed"].get<long long>());
    std::printf("\n");
}

void printDnssecLines(const json& dn) {
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
}

void printPolicyLine(const json& p) {
    if (p["dir"].is_string()) {
        std::printf("policy:    %s: %lld entries in %lld files, loaded %s\n",
                    p["dir"].get<std::string>().c_str(), p["entries"].get<long long>(),
                    p["files"].get<long long>(), isoTime(p["loaded"].get<int64_t>()).c_str());
    } else {
        std::printf("policy:    built-in (dane for every destination)\n");
    }
}

void printDeliveryLine(const json& delivery) {
    std::printf("delivery:  %s",
                delivery["enabled"].get<bool>() ? "enabled" : "DISABLED in the configuration");
    if (const auto& c = delivery.value("connections", json()); c.is_object())
        std::printf("; connections %lld in use (peak %lld), limit %lld, %lld per message",
                    c["in_use"].get<long long>(), c["peak"].get<long long>(),
                    c["limit"].get<long long>(), c["per_message"].get<long long>());
    std::printf("\n");
}

}  // namespace

int status(const Daemon& daemon, bool asJson) {
    auto r = ask(daemon, controlRequestFor("status"), asJson);
    if (!r) return 1;
    if (asJson) {
        printJson(*r);
        return 0;
    }
    printDaemonLine((*r)["daemon"]);
    printQueueLine((*r)["queue"]);
    printDnssecLines((*r)["dnssec"]);
    for (const auto& l : (*r)["listeners"])
        std::printf("listener:  %s (%s)\n", l["address"].get<std::string>().c_str(),
                    l["tls"].get<std::string>().c_str());
    std::printf("accepting: %s\n", acceptingText(*r).c_str());
    printPolicyLine((*r)["policy"]);
    printDeliveryLine((*r)["delivery"]);
    return 0;
}

std::string acceptingText(const json& statusReply) {
    if (!statusReply.value("draining", false)) return "yes";
    std::string since = statusReply["draining_since"].is_number_integer()
                            ? isoTime(statusReply["draining_since"].get<int64_t>())
                            : "?";
    return "NO: draining since " + since + " (danectl resume to accept again)";
}

namespace {

// What is left in the queue, as status reports it: messages and, of the
// recipients, those not yet done.
std::string leftText(const json& q) {
    std::string states;
    for (const auto& [k, v] : q["recipients_by_state"].items()) {
        if (v.get<int64_t>() == 0 || k == "delivered" || k == "bounced") continue;
        states += (states.empty() ? "" : ", ") + std::to_string(v.get<int64_t>()) + " " + k;
    }
    return std::to_string(q["messages"].get<int64_t>()) + " message(s) in the queue" +
           (states.empty() ? "" : " (recipients: " + states + ")");
}

// Polls status once a second until the queue is empty or the time is up;
// the last status reply (nullopt: the daemon stopped answering).
std::optional<json> waitEmpty(const Daemon& daemon, int seconds, bool asJson, bool* empty) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    for (;;) {
        auto st = ask(daemon, controlRequestFor("status"), asJson);
        if (!st) return std::nullopt;
        *empty = (*st)["queue"]["messages"].get<int64_t>() == 0;
        if (*empty || std::chrono::steady_clock::now() >= deadline) return st;
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
}

}  // namespace

int drain(const Daemon& daemon, const DrainOptions& options, bool asJson) {
    auto r = ask(daemon, controlRequestFor("drain"), asJson);
    if (!r) return 1;
    if (!options.wait) {
        if (asJson) {
            printJson(*r);
        } else {
            std::printf("draining: not accepting SMTP sessions%s; the queue is still delivered\n",
                        (*r)["changed"].get<bool>() ? "" : " (already)");
        }
        return 0;
    }
    auto started = std::chrono::steady_clock::now();
    bool empty = false;
    auto st = waitEmpty(daemon, options.waitSeconds, asJson, &empty);
    if (!st) return 1;
    auto waited =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started)
            .count();
    if (asJson) {
        (*r)["wait"] = {{"empty", empty},
                        {"waited_seconds", waited},
                        {"messages", (*st)["queue"]["messages"]},
                        {"recipients_by_state", (*st)["queue"]["recipients_by_state"]}};
        printJson(*r);
    } else if (empty) {
        std::printf("drained: not accepting SMTP sessions, the queue is empty (%llds)\n",
                    static_cast<long long>(waited));
    } else {
        std::printf("draining: not accepting SMTP sessions; after %llds still %s\n",
                    static_cast<long long>(waited), leftText((*st)["queue"]).c_str());
    }
    return empty ? 0 : 1;
}

int resume(const Daemon& daemon, bool asJson) {
    auto r = ask(daemon, controlRequestFor("resume"), asJson);
    if (!r) return 1;
    if (asJson) {
        printJson(*r);
    } else {
        std::printf("accepting SMTP sessions%s\n", (*r)["changed"].get<bool>() ? "" : " (already)");
    }
    return 0;
}

int reload(const Daemon& daemon, bool asJson) {
    auto r = ask(daemon, controlRequestFor("reload"), asJson);
    if (!r) return 1;
    if (asJson) {
        printJson(*r);
    } else {
        const json& p = (*r)["policy"];
        std::printf("policy reloaded: %lld entries in %lld files\n", p["entries"].get<long long>(),
                    p["files"].get<long long>());
    }
    return 0;
}

}  // namespace danerelay::danectl
