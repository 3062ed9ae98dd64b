// fleet.h — danectl's fleet view: status and queue summary across several
// shared-nothing relays on this machine, one line per node and a total.
//
// The nodes are given as several --config FILE (each node named by its
// file), or as --fleet FILE whose lines are "NAME CONFIG-PATH" ('#' starts a
// comment; blank lines are skipped). status asks every node's daemon over
// its control socket at once, each within the timeout (kFleetTimeout unless
// --timeout says otherwise), so one silent node costs the timeout once, not
// per node; queue summary reads each node's spool read-only.
// A node that cannot be asked (its configuration unreadable, its daemon down
// or silent, its spool unreadable) is a line saying so; the others are still
// shown, the totals count only the nodes that answered, and the exit is 1.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace danerelay::danectl {

// How long a fleet status waits for each node, unless --timeout is given.
constexpr int kFleetTimeout = 10;

struct FleetNode {
    std::string name;
    std::string config;
};

// The nodes listed in a fleet file; an error names file:line.
Result<std::vector<FleetNode>> readFleetFile(const std::string& path);
// Nodes named by their configuration files.
std::vector<FleetNode> nodesFromConfigs(const std::vector<std::string>& configs);

int fleetStatus(const std::vector<FleetNode>& nodes, int timeoutSeconds, bool asJson);
int fleetQueueSummary(const std::vector<FleetNode>& nodes, bool asJson);

}  // namespace danerelay::danectl
