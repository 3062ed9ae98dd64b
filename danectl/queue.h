// queue.h — danectl queue: the verbs on the mail queue.
//
//   list, show, summary   read the spool directly and read-only, so they work
//                         with the daemon down; a file that cannot be read is
//                         listed as damaged, never skipped in silence (and
//                         makes list exit 1)
//   hold, release, delete, flush, bounce, requeue
//                         go to the daemon over its control socket, so that
//                         they and the scheduler agree; exit 1 when nothing
//                         matched or not every message was done
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "danectl/client.h"
#include "queue/filter.h"

namespace danerelay::danectl {

// A queue verb as parsed from the command line.
struct QueueCommand {
    std::string verb;   // list, show, summary, or an action (isQueueAction)
    bool body = false;  // show --body: the whole message, not only its headers
    bool all = false;   // an action's --all
    queue::Filter filter;
    std::vector<std::string> ids;
};

// hold, release, delete, flush, bounce, requeue: the verbs the daemon runs.
bool isQueueAction(const std::string& verb);

int queueList(const std::string& spoolDir, bool asJson, const queue::Filter& filter);
int queueShow(const std::string& spoolDir, const std::string& id, bool asJson, bool body);
int queueSummary(const std::string& spoolDir, bool asJson);
// summary's --json document; nullopt (the reason in *error, or on stderr if
// error is null) when the spool cannot be opened. The fleet view uses it.
std::optional<nlohmann::json> queueSummaryJson(const std::string& spoolDir, std::string* error);
// By IDs, a filter, or --all (exactly one of them is set in command).
int queueAction(const Daemon& daemon, const QueueCommand& command, bool asJson);

}  // namespace danerelay::danectl
