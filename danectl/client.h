// client.h — danectl's requests to the running daemon over its control
// socket (relay/control/control_client.h), in protocol version
// kControlProtocolVersion.
//
// ask() gives the reply only when the daemon says "ok"; otherwise (daemon
// unreachable, no reply in time, the request refused) it prints the error on
// stderr and, with --json, {"version":…,"ok":false,"error":…} on stdout,
// and gives nullopt: the verb exits 1.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace danerelay::danectl {

// Where the daemon listens, and how long a reply may take.
struct Daemon {
    std::string socket;
    int timeoutSeconds = 0;
};

// {"version": kControlProtocolVersion, "verb": verb}
nlohmann::json controlRequestFor(const std::string& verb);

std::optional<nlohmann::json> ask(const Daemon& daemon, const nlohmann::json& request, bool asJson);

}  // namespace danerelay::danectl
