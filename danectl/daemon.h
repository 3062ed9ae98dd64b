// daemon.h — danectl status and reload: asked of the running daemon over
// its control socket; they fail (exit 1) when it does not answer.
//
//   status   what the daemon reports of itself: uptime, queue counts, DNSSEC,
//            listeners, policy, delivery (text, or the reply itself with --json)
//   reload   the daemon re-reads its policy directory (as on SIGHUP)
//   drain    the daemon stops accepting SMTP sessions (its listeners refuse
//            connections) and goes on delivering its queue; with wait, danectl
//            then polls status each second until the queue is empty (exit 0)
//            or waitSeconds have passed (exit 1, saying what is left)
//   resume   the daemon accepts SMTP sessions again
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "danectl/client.h"

namespace danerelay::danectl {

int status(const Daemon& daemon, bool asJson);
int reload(const Daemon& daemon, bool asJson);

struct DrainOptions {
    bool wait = false;
    int waitSeconds = 600;  // drain --wait --timeout SECONDS
};
int drain(const Daemon& daemon, const DrainOptions& options, bool asJson);
int resume(const Daemon& daemon, bool asJson);
// status's line on draining: "accepting: yes", or since when it is not.
std::string acceptingText(const nlohmann::json& statusReply);

}  // namespace danerelay::danectl
