#include "danectl/fleet.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "danectl/client.h"
#include "danectl/daemon.h"
#include "danectl/output.h"
#include "danectl/queue.h"
#include "relay/control/control.h"
#include "relay/control/control_client.h"
#include "relay/runtime/config.h"

namespace danerelay::danectl {

using nlohmann::json;

namespace {

// A node's configuration, read for where its socket and spool are; false
// (the reason in *error) if it cannot be read.
bool locateNode(const FleetNode& n, relay::Config* cfg, std::string* error) {
    try {
        *cfg = relay::loadConfig(n.config, relay::FileCheck::Skip);
    } catch (const std::exception& e) {
        *error = e.what();
        return false;
    }
    return true;
}

// The node column: as wide as the longest name (at least 16), so the
// columns line up whatever the nodes are called.
int nameWidth(const std::vector<FleetNode>& nodes) {
    size_t w = 16;
    for (const auto& n : nodes) w = std::max(w, n.name.size());
    return static_cast<int>(std::min<size_t>(w, 200));
}

json nodeBase(const FleetNode& n) {
    return {{"node", n.name}, {"config", n.config}};
}

json nodeFailed(const FleetNode& n, const std::string& error) {
    json j = nodeBase(n);
    j["ok"] = false;
    j["error"] = error;
    return j;
}

// One node's status reply, or why there is none.
json askNode(const FleetNode& n, int timeoutSeconds) {
    relay::Config cfg;
    std::string error;
    if (!locateNode(n, &cfg, &error)) return nodeFailed(n, error);
    auto r = relay::controlRequest(cfg.controlSocket, controlRequestFor("status"), timeoutSeconds);
    if (!r) return nodeFailed(n, r.error().message);
    if (!r->value("ok", false)) return nodeFailed(n, r->value("error", std::string("failed")));
    json j = nodeBase(n);
    j["ok"] = true;
    j["status"] = *r;
    return j;
}

void addCounts(json* into, const json& counts) {
    for (const auto& [k, v] : counts.items())
        (*into)[k] = into->value(k, int64_t{0}) + v.get<int64_t>();
}

// The fleet's totals over the nodes that answered.
json statusTotal(const json& nodes) {
    json t{{"nodes", nodes.size()},
           {"answering", 0},
           {"draining", 0},
           {"messages", 0},
           {"in_flight", 0},
           {"not_validating", 0},
           {"recipients_by_state", json::object()}};
    for (const auto& n : nodes) {
        if (!n["ok"].get<bool>()) continue;
        const json& s = n["status"];
        t["answering"] = t["answering"].get<int64_t>() + 1;
        if (s.value("draining", false)) t["draining"] = t["draining"].get<int64_t>() + 1;
        if (!s["dnssec"]["validating"].get<bool>())
            t["not_validating"] = t["not_validating"].get<int64_t>() + 1;
        t["messages"] = t["messages"].get<int64_t>() + s["queue"]["messages"].get<int64_t>();
        t["in_flight"] = t["in_flight"].get<int64_t>() + s["queue"]["in_flight"].get<int64_t>();
        addCounts(&t["recipients_by_state"], s["queue"]["recipients_by_state"]);
    }
    return t;
}

// "2 pending, 1 deferred": the non-zero counts.
std::string countsText(const json& counts) {
    std::string out;
    for (const auto& [k, v] : counts.items()) {
        if (v.get<int64_t>() == 0) continue;
        out += (out.empty() ? "" : ", ") + std::to_string(v.get<int64_t>()) + " " + k;
    }
    return out.empty() ? "none" : out;
}

void printStatusLine(const json& n, int width) {
    const char* name = n["node"].get_ref<const std::string&>().c_str();
    if (!n["ok"].get<bool>()) {
        std::printf("%-*s UNREACHABLE: %s\n", width, name, n["error"].get<std::string>().c_str());
        return;
    }
    const json& s = n["status"];
    std::printf("%-*s %-10s %8lld %8lld  %-14s %s\n", width, name,
                s.value("draining", false) ? "DRAINING" : "yes",
                s["queue"]["messages"].get<long long>(), s["queue"]["in_flight"].get<long long>(),
                s["dnssec"]["validating"].get<bool>() ? "validating" : "NOT-VALIDATING",
                countsText(s["queue"]["recipients_by_state"]).c_str());
}

// One node's queue summary, or why there is none.
json summaryOfNode(const FleetNode& n) {
    relay::Config cfg;
    std::string error;
    if (!locateNode(n, &cfg, &error)) return nodeFailed(n, error);
    auto s = queueSummaryJson(cfg.spoolDir, &error);
    if (!s) return nodeFailed(n, error);
    json j = nodeBase(n);
    j["ok"] = true;
    j["summary"] = *s;
    return j;
}

json summaryTotal(const json& nodes) {
    json t{{"nodes", nodes.size()},
           {"answering", 0},
           {"messages", 0},
           {"damaged", 0},
           {"quarantined", 0},
           {"recipients_by_state", json::object()},
           {"pending_by_domain", json::object()},
           {"oldest", nullptr}};
    for (const auto& n : nodes) {
        if (!n["ok"].get<bool>()) continue;
        const json& s = n["summary"];
        t["answering"] = t["answering"].get<int64_t>() + 1;
        for (const char* k : {"messages", "damaged", "quarantined"})
            t[k] = t[k].get<int64_t>() + s[k].get<int64_t>();
        addCounts(&t["recipients_by_state"], s["recipients_by_state"]);
        addCounts(&t["pending_by_domain"], s["pending_by_domain"]);
        // ISO 8601 UTC times of one format: their text order is their time order.
        if (s["oldest"].is_object() &&
            (t["oldest"].is_null() || s["oldest"]["arrival"] < t["oldest"]["arrival"]))
            t["oldest"] = {{"node", n["node"]},
                           {"id", s["oldest"]["id"]},
                           {"arrival", s["oldest"]["arrival"]}};
    }
    return t;
}

void printSummaryLine(const json& n, int width) {
    const char* name = n["node"].get_ref<const std::string&>().c_str();
    if (!n["ok"].get<bool>()) {
        std::printf("%-*s UNREADABLE: %s\n", width, name, n["error"].get<std::string>().c_str());
        return;
    }
    const json& s = n["summary"];
    std::printf("%-*s %8lld  %-20s  %s\n", width, name, s["messages"].get<long long>(),
                s["oldest"].is_object() ? s["oldest"]["arrival"].get<std::string>().c_str() : "-",
                countsText(s["recipients_by_state"]).c_str());
}

// The JSON document (or the lines) and the exit code: 1 if any node failed.
int finish(const char* verb, const json& nodes, const json& total, bool asJson) {
    bool all = total["answering"] == total["nodes"];
    if (asJson) {
        printJson({{"version", relay::kControlProtocolVersion},
                   {"ok", all},
                   {"verb", verb},
                   {"nodes", nodes},
                   {"total", total}});
    }
    for (const auto& n : nodes) {
        if (!n["ok"].get<bool>())
            printError(n["node"].get<std::string>() + ": " + n["error"].get<std::string>());
    }
    return all ? 0 : 1;
}

}  // namespace

Result<std::vector<FleetNode>> readFleetFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) return Error::permanent(path + ": cannot be read");
    std::vector<FleetNode> nodes;
    std::string line;
    for (int lineNo = 1; std::getline(in, line); ++lineNo) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        std::istringstream words(line);
        FleetNode n;
        std::string extra;
        if (!(words >> n.name)) continue;
        if (!(words >> n.config) || (words >> extra))
            return Error::permanent(path + ":" + std::to_string(lineNo) +
                                    ": expected \"NAME CONFIG-PATH\"");
        nodes.push_back(std::move(n));
    }
    if (nodes.empty()) return Error::permanent(path + ": no nodes listed");
    return nodes;
}

std::vector<FleetNode> nodesFromConfigs(const std::vector<std::string>& configs) {
    std::vector<FleetNode> nodes;
    for (const auto& c : configs) nodes.push_back({c, c});
    return nodes;
}

int fleetStatus(const std::vector<FleetNode>& nodes, int timeoutSeconds, bool asJson) {
    std::vector<std::future<json>> asks;
    for (const auto& n : nodes)
        asks.push_back(std::async(std::launch::async, askNode, n, timeoutSeconds));
    json results = json::array();
    for (auto& a : asks) results.push_back(a.get());
    json total = statusTotal(results);
    int width = nameWidth(nodes);
    if (!asJson) {
        std::printf("%-*s %-10s %8s %8s  %-14s %s\n", width, "NODE", "ACCEPTING", "MESSAGES",
                    "SENDING", "DNSSEC", "RECIPIENTS");
        for (const auto& n : results) printStatusLine(n, width);
        std::printf(
            "total: %lld of %lld nodes answer, %lld draining, %lld not validating, "
            "%lld messages, %lld in delivery, recipients: %s\n",
            total["answering"].get<long long>(), total["nodes"].get<long long>(),
            total["draining"].get<long long>(), total["not_validating"].get<long long>(),
            total["messages"].get<long long>(), total["in_flight"].get<long long>(),
            countsText(total["recipients_by_state"]).c_str());
    }
    return finish("fleet status", results, total, asJson);
}

int fleetQueueSummary(const std::vector<FleetNode>& nodes, bool asJson) {
    json results = json::array();
    for (const auto& n : nodes) results.push_back(summaryOfNode(n));
    json total = summaryTotal(results);
    int width = nameWidth(nodes);
    if (!asJson) {
        std::printf("%-*s %8s  %-20s  %s\n", width, "NODE", "MESSAGES", "OLDEST", "RECIPIENTS");
        for (const auto& n : results) printSummaryLine(n, width);
        std::printf("total: %lld of %lld nodes read, %lld messages, recipients: %s\n",
                    total["answering"].get<long long>(), total["nodes"].get<long long>(),
                    total["messages"].get<long long>(),
                    countsText(total["recipients_by_state"]).c_str());
        if (!total["pending_by_domain"].empty()) std::printf("waiting, by destination:\n");
        for (const auto& [k, v] : total["pending_by_domain"].items())
            std::printf("  %-30s %lld\n", k.c_str(), v.get<long long>());
    }
    return finish("fleet queue summary", results, total, asJson);
}

}  // namespace danerelay::danectl
