#include "danectl/daemon.h"

#include <cstdio>
#include <string>

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
    printPolicyLine((*r)["policy"]);
    printDeliveryLine((*r)["delivery"]);
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
