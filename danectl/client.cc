#include "danectl/client.h"

#include "danectl/output.h"
#include "relay/control/control.h"
#include "relay/control/control_client.h"

namespace danerelay::danectl {

using nlohmann::json;

json controlRequestFor(const std::string& verb) {
    return {{"version", relay::kControlProtocolVersion}, {"verb", verb}};
}

std::optional<json> ask(const Daemon& daemon, const json& request, bool asJson) {
    auto r = relay::controlRequest(daemon.socket, request, daemon.timeoutSeconds);
    json reply = r ? *r
                   : json{{"version", relay::kControlProtocolVersion},
                          {"ok", false},
                          {"error", r.error().message}};
    if (!reply.value("ok", false)) {
        if (asJson) printJson(reply);
        printError(reply.value("error", "failed"));
        return std::nullopt;
    }
    return reply;
}

}  // namespace danerelay::danectl
