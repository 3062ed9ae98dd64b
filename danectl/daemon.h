// daemon.h — danectl status and reload: asked of the running daemon over
// its control socket; they fail (exit 1) when it does not answer.
//
//   status   what the daemon reports of itself: uptime, queue counts, DNSSEC,
//            listeners, policy, delivery (text, or the reply itself with --json)
//   reload   the daemon re-reads its policy directory (as on SIGHUP)
#pragma once

#include "danectl/client.h"

namespace danerelay::danectl {

int status(const Daemon& daemon, bool asJson);
int reload(const Daemon& daemon, bool asJson);

}  // namespace danerelay::danectl
