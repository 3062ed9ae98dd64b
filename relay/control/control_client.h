// control_client.h — danectl's side of the control socket (control.h): send
// one request, wait for the one-line reply.
//
// Blocking, for a command line. Fails (Temporary) when the daemon cannot be
// reached (with a hint: not running, or not our user), when it does not answer
// within the timeout, when the reply is larger than 256 MiB, and when the
// reply is not a JSON object. A daemon that refuses and closes before reading
// the request is still heard: its answer is read, not lost to EPIPE.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace danerelay::relay {

Result<nlohmann::json> controlRequest(const std::string& path, const nlohmann::json& request,
                                      int timeoutSeconds);

}  // namespace danerelay::relay
