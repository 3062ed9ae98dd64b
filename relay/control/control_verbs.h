// control_verbs.h — what the control socket can be asked: the daemon's side
// of danectl's status, reload and queue actions.
//
// Requests (one JSON object; "version" is the protocol version, 1):
//   {"version":1, "verb":"status"}
//   {"version":1, "verb":"reload"}
//   {"version":1, "verb":"drain"}     stop accepting SMTP sessions; the queue goes on
//   {"version":1, "verb":"resume"}    accept again
//   {"version":1, "verb":"queue", "action":"hold|release|delete|flush|bounce|requeue",
//    "ids":["…"]  |  "filter":{"state":…, "domain":…, "sender":…, "older_than":…}
//                 |  "all":true}
// Every reply carries "version" and "ok"; a failed request has "error".
// The reply shapes are documented in docs/danectl-json.md and checked by the
// end-to-end tests against docs/danectl.schema.json.
// The time (start, uptime, policy load, probe, a filter's "older_than") comes
// from the Clock given, the system's unless a test gives a ManualClock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/spool.h"
#include "relay/control/control.h"
#include "relay/outbound/scheduler.h"
#include "relay/runtime/config.h"
#include "relay/runtime/event_loop.h"

namespace danerelay::relay {

// How drain and resume reach the SMTP server (set by danerelayd's run();
// unset, the verbs answer that draining is not available).
struct DrainHooks {
    std::function<Status()> stopAccepting;
    std::function<Status()> resumeAccepting;
};

class ControlVerbs {
  public:
    ControlVerbs(const Config& cfg, Scheduler& scheduler, queue::Spool& spool, WorkerPool& workers,
                 dns::Resolver& resolver, const Clock& clock = SystemClock::instance());

    // access ReadOnly allows only status; queue actions, reload, drain and
    // resume need Full. Status requests that come while a spool census is
    // under way share it (one scan at a time, however many ask).
    void handle(const nlohmann::json& request, ControlServer::Reply reply,
                ControlAccess access = ControlAccess::Full);

    // Re-read the policy directory on a worker and swap it in on the loop; a
    // broken policy keeps the one in force. done (optional) gets the outcome.
    void reload(std::function<void(bool ok, const std::string& detail)> done);
    // The latest DNSSEC probe result, for status.
    void noteProbe(bool validating, const std::string& detail);
    void setPolicy(std::shared_ptr<const policy::PolicySet> p);
    void setDrainHooks(DrainHooks hooks) { drainHooks_ = std::move(hooks); }
    bool draining() const { return drainingSince_ != 0; }

  private:
    struct QueueCounts;
    void status(ControlServer::Reply reply);
    nlohmann::json statusJson(const QueueCounts& counts) const;
    // swept: the sweep that flush --all starts with has run.
    void queueAction(const nlohmann::json& request, ControlServer::Reply reply, bool swept = false);
    // Run action on every ID (a few at a time); reply once all have ended.
    void runActions(AdminAction action, const std::string& verb, std::vector<std::string> ids,
                    ControlServer::Reply reply);
    nlohmann::json policyJson() const;
    nlohmann::json dnssecJson(const nlohmann::json& lastProbe) const;
    // drain (stop true) or resume: idempotent; "changed" says whether it acted.
    void drainVerb(bool stop, ControlServer::Reply reply);

    const Config& cfg_;
    Scheduler& scheduler_;
    queue::Spool& spool_;
    WorkerPool& workers_;
    dns::Resolver& resolver_;
    const Clock& clock_;
    int64_t started_;
    std::shared_ptr<const policy::PolicySet> policy_;
    int64_t policyLoaded_ = 0;
    bool probed_ = false, validating_ = false;
    std::string probeDetail_;
    int64_t probeAt_ = 0;
    DrainHooks drainHooks_;
    int64_t drainingSince_ = 0;  // 0: accepting
    // Status replies waiting for the spool census under way (empty: none is).
    std::vector<ControlServer::Reply> statusWaiting_;
};

}  // namespace danerelay::relay
