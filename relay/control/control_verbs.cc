#include "relay/control/control_verbs.h"

#include <unistd.h>

#include <map>

#include "queue/filter.h"
#include "relay/runtime/log.h"

namespace danerelay::relay {

using nlohmann::json;

namespace {

json failure(const std::string& verb, const std::string& message) {
    return {
        {"version", kControlProtocolVersion}, {"ok", false}, {"verb", verb}, {"error", message}};
}

// How many actions run at once for one request: enough to overlap disk
// work, few enough that one big "hold --all" cannot flood the worker pool.
constexpr size_t kParallelActions = 4;
// IDs one request may name: more is a filter's job (or --all).
constexpr size_t kMaxIds = 10000;
// The daemon's version, as status reports it.
constexpr const char* kDaemonVersion = "0.1.0";

// A queue action on a list of IDs, its results filled in as they end.
struct ActionRun {
    AdminAction action;
    std::vector<std::string> ids;
    std::vector<AdminResult> results;
    size_t next = 0, done = 0;
    ControlServer::Reply reply;
    std::string verb;
    std::function<void()> launch;
    bool launching = false;
};

void replyResults(const ActionRun& run) {
    json results = json::array();
    std::map<std::string, size_t> counts{
        {"done", 0}, {"unchanged", 0}, {"not-found", 0}, {"error", 0}};
    for (const auto& r : run.results) {
        ++counts[r.result];
        results.push_back({{"id", r.id}, {"result", r.result}, {"detail", r.detail}});
    }
    run.reply({{"version", kControlProtocolVersion},
               {"ok", true},
               {"verb", run.verb},
               {"matched", run.ids.size()},
               {"counts", counts},
               {"results", results}});
}

}  // namespace

ControlVerbs::ControlVerbs(const Config& cfg, Scheduler& scheduler, queue::Spool& spool,
                           WorkerPool& workers, dns::Resolver& resolver, const Clock& clock)
    : cfg_(cfg),
      scheduler_(scheduler),
      spool_(spool),
      workers_(workers),
      resolver_(resolver),
      clock_(clock),
      started_(clock.wallSeconds()) {}

void ControlVerbs::setPolicy(std::shared_ptr<const policy::PolicySet> p) {
    policy_ = p;
    policyLoaded_ = clock_.wallSeconds();
    scheduler_.setPolicy(std::move(p));
}

void ControlVerbs::noteProbe(bool validating, const std::string& detail) {
    probed_ = true;
    validating_ = validating;
    probeDetail_ = detail;
    probeAt_ = clock_.wallSeconds();
}

void ControlVerbs::handle(const json& request, ControlServer::Reply reply, ControlAccess access) {
    auto verb = request.value("verb", json()).is_string() ? request["verb"].get<std::string>() : "";
    auto version = request.find("version");
    if (version == request.end() || !version->is_number_integer() ||
        version->get<int>() != kControlProtocolVersion) {
        return reply(failure(verb, "unsupported protocol version (this daemon speaks " +
                                       std::to_string(kControlProtocolVersion) + ")"));
    }
    if (verb == "status") return status(std::move(reply));
    bool changes = verb == "queue" || verb == "reload" || verb == "drain" || verb == "resume";
    // Read-only access is status and nothing else: a verb added later is
    // refused to it until it is listed here, not let through by default.
    if (access != ControlAccess::Full) {
        if (changes) logEvent("control-refused", {{"verb", verb}, {"reason", "read-only access"}});
        return reply(failure(verb,
                             "permission denied: the daemon's group may only read "
                             "(status, queue list/summary/show); '" +
                                 verb + "' needs root, the daemon's user or control_group"));
    }
    if (verb == "queue") return queueAction(request, std::move(reply));
    if (verb == "reload") {
        return reload([this, reply](bool ok, const std::string& detail) {
            if (!ok) return reply(failure("reload", detail));
            reply({{"version", kControlProtocolVersion},
                   {"ok", true},
                   {"verb", "reload"},
                   {"policy", policyJson()}});
        });
    }
    if (verb == "drain" || verb == "resume") return drainVerb(verb == "drain", std::move(reply));
    reply(failure(verb, "unknown verb '" + verb + "' (status, reload, queue, drain, resume)"));
}

void ControlVerbs::drainVerb(bool stop, ControlServer::Reply reply) {
    const char* verb = stop ? "drain" : "resume";
    auto& hook = stop ? drainHooks_.stopAccepting : drainHooks_.resumeAccepting;
    if (!hook) return reply(failure(verb, "this daemon has no SMTP server to drain"));
    bool changed = draining() != stop;
    if (changed) {
        // The state follows the request even if one listener failed: the
        // error says which, and the operator can repeat the verb.
        auto st = hook();
        drainingSince_ = stop ? clock_.wallSeconds() : 0;
        if (!st) return reply(failure(verb, st.error().message));
    }
    reply({{"version", kControlProtocolVersion},
           {"ok", true},
           {"verb", verb},
           {"changed", changed},
           {"draining", draining()},
           {"draining_since", draining() ? json(drainingSince_) : json(nullptr)}});
}

json ControlVerbs::policyJson() const {
    if (cfg_.policyDir.empty()) {
        return {{"dir", nullptr}, {"entries", 0}, {"files", 0}, {"loaded", nullptr}};
    }
    return {{"dir", cfg_.policyDir},
            {"entries", policy_ ? policy_->size() : 0},
            {"files", policy_ ? policy_->files() : 0},
            {"loaded", policyLoaded_}};
}

void ControlVerbs::reload(std::function<void(bool ok, const std::string& detail)> done) {
    if (cfg_.policyDir.empty()) {
        if (done) done(false, "no policy_dir configured: nothing to reload");
        return;
    }
    auto loaded = std::make_shared<Result<std::shared_ptr<const policy::PolicySet>>>(
        Error::internal("not loaded"));
    workers_.run([this, loaded] { *loaded = policy::PolicySet::loadDir(cfg_.policyDir); },
                 [this, loaded, done] {
                     auto& p = *loaded;
                     if (!p) {
                         logEvent("policy-reload-FAILED",
                                  {{"error", p.error().message},
                                   {"result", "previous policy stays in force"}});
                         if (done)
                             done(false, p.error().message + " (previous policy stays in force)");
                         return;
                     }
                     setPolicy(*p);
                     logEvent("policy-reload", {{"dir", cfg_.policyDir},
                                                {"entries", std::to_string((*p)->size())},
                                                {"files", std::to_string((*p)->files())}});
                     if (done) done(true, "");
                 });
}

struct ControlVerbs::QueueCounts {
    size_t messages = 0, damaged = 0, quarantined = 0;
    std::map<std::string, size_t> byState;
};

void ControlVerbs::status(ControlServer::Reply reply) {
    // Counting by state reads every state file: on a worker, not the loop,
    // and one census at a time, which every request that comes meanwhile
    // shares: read-only peers asking over and over cannot keep the spool
    // workers (delivery's state writes wait for them) re-reading the queue.
    statusWaiting_.push_back(std::move(reply));
    if (statusWaiting_.size() > 1) return;  // the census under way answers it
    auto counts = std::make_shared<QueueCounts>();
    workers_.run(
        [this, counts] {
            for (auto s : {"pending", "deferred", "delivered", "bounced", "held"})
                counts->byState[s] = 0;
            for (const auto& id : spool_.listIds()) {
                auto m = spool_.load(id);
                if (!m) {
                    if (m.error().kind != ErrorKind::Permanent) ++counts->damaged;
                    continue;
                }
                ++counts->messages;
                for (const auto& st : m->status) ++counts->byState[queue::toString(st.state)];
            }
            counts->quarantined = spool_.quarantinedCount();
        },
        [this, counts] {
            auto waiting = std::move(statusWaiting_);
            statusWaiting_.clear();
            json answer = statusJson(*counts);
            for (auto& r : waiting) r(answer);
        });
}

json ControlVerbs::statusJson(const QueueCounts& counts) const {
    json listeners = json::array();
    for (const auto& l : cfg_.listeners) {
        listeners.push_back({{"address", l.text},
                             {"tls", l.tls == ListenerTls::Implicit ? "implicit" : "starttls"}});
    }
    int64_t now = clock_.wallSeconds();
    json probe = probed_
                     ? json{{"validating", validating_}, {"detail", probeDetail_}, {"at", probeAt_}}
                     : json(nullptr);
    return {{"version", kControlProtocolVersion},
            {"ok", true},
            {"verb", "status"},
            {"daemon",
             {{"version", kDaemonVersion},
              {"pid", static_cast<int64_t>(::getpid())},
              {"started", started_},
              {"uptime_seconds", now - started_},
              {"config", cfg_.file},
              {"hostname", cfg_.hostname}}},
            {"queue",
             {{"messages", counts.messages},
              {"damaged", counts.damaged},
              {"quarantined", counts.quarantined},
              {"recipients_by_state", counts.byState},
              {"scheduled", scheduler_.queued()},
              {"in_flight", scheduler_.running()},
              {"swept", scheduler_.counters().swept},
              {"load_retries", scheduler_.counters().loadRetries},
              {"recovery",
               {{"running", scheduler_.recovery().running},
                {"listed", scheduler_.recovery().listed},
                {"checked", scheduler_.recovery().checked}}}}},
            {"dnssec", dnssecJson(probe)},
            {"delivery",
             {{"enabled", cfg_.delivery.enabled},
              {"connections",
               {{"in_use", scheduler_.connectionsInUse()},
                {"peak", scheduler_.connectionsPeak()},
                {"limit", cfg_.limits.maxOutboundConnections},
                {"per_message", cfg_.limits.maxConnectionsPerMessage}}}}},
            {"listeners", listeners},
            {"draining", draining()},
            {"draining_since", draining() ? json(drainingSince_) : json(nullptr)},
            {"policy", policyJson()},
            {"control_socket", cfg_.controlSocket}};
}

json ControlVerbs::dnssecJson(const json& lastProbe) const {
    json d{{"mode", cfg_.dns.validation},
           {"validating", resolver_.validating()},
           {"resolvers", resolversText(cfg_.dns)},
           {"resolvers_from", cfg_.dns.resolversFrom},
           {"last_probe", lastProbe}};
    if (cfg_.dns.validation == "local") d["trust_anchor"] = cfg_.dns.trustAnchor;
    return d;
}

void ControlVerbs::queueAction(const json& request, ControlServer::Reply reply, bool swept) {
    auto actionText = request.value("action", json()).is_string()
                          ? request["action"].get<std::string>()
                          : std::string();
    AdminAction action;
    if (!parseAdminAction(actionText, &action)) {
        return reply(failure("queue", "unknown action '" + actionText +
                                          "' (hold, release, delete, flush, bounce, requeue)"));
    }
    std::string verb = "queue " + actionText;
    bool hasIds = request.contains("ids"), hasFilter = request.contains("filter"),
         all = request.value("all", json(false)) == json(true);
    if (int(hasIds) + int(hasFilter) + int(all) != 1) {
        return reply(failure(verb, "give exactly one of: ids, filter, all"));
    }
    // flush --all sweeps first: a message in the spool that the scheduler's
    // index lacks is indexed (and logged "swept") before the flush.
    if (all && action == AdminAction::Flush && !swept) {
        return scheduler_.sweep(
            [this, request, reply](const SweepReport&) { queueAction(request, reply, true); });
    }
    // Either the IDs as given, or those the filter selects now (on a worker).
    auto ids = std::make_shared<std::vector<std::string>>();
    queue::Filter filter;
    if (hasIds) {
        const auto& j = request["ids"];
        if (!j.is_array() || j.empty() || j.size() > kMaxIds)
            return reply(failure(verb, "ids: a non-empty array of at most " +
                                           std::to_string(kMaxIds) + " queue IDs"));
        for (const auto& v : j) {
            if (!v.is_string()) return reply(failure(verb, "ids: every element is a string"));
            ids->push_back(v.get<std::string>());
        }
    } else if (hasFilter) {
        auto f = queue::Filter::fromJson(request["filter"]);
        if (!f) return reply(failure(verb, f.error().message));
        if (f->empty()) return reply(failure(verb, "an empty filter; say \"all\" to mean all"));
        filter = *f;
    }
    // The filter's "older_than" counts from when the request came.
    int64_t now = clock_.wallSeconds();
    auto select = [this, hasIds, filter, ids, now] {
        if (hasIds) return;
        for (const auto& id : spool_.listIds()) {
            auto m = spool_.load(id);
            if (m && filter.matches(*m, now)) ids->push_back(id);
        }
    };
    workers_.run(select, [this, action, verb, ids, reply] {
        runActions(action, verb, std::move(*ids), reply);
    });
}

void ControlVerbs::runActions(AdminAction action, const std::string& verb,
                              std::vector<std::string> ids, ControlServer::Reply reply) {
    auto run = std::make_shared<ActionRun>();
    run->action = action;
    run->ids = std::move(ids);
    run->results.resize(run->ids.size());
    run->reply = std::move(reply);
    run->verb = verb;
    // The pending callbacks own the run; launch only looks at it.
    std::weak_ptr<ActionRun> weak = run;
    run->launch = [this, weak] {
        auto self = weak.lock();
        if (!self || self->launching) return;  // the loop below picks it up
        self->launching = true;
        while (self->next < self->ids.size() && self->next - self->done < kParallelActions) {
            size_t i = self->next++;
            scheduler_.admin(self->action, self->ids[i], [self, i](AdminResult r) {
                self->results[i] = std::move(r);
                if (++self->done == self->ids.size()) return replyResults(*self);
                self->launch();
            });
        }
        self->launching = false;
    };
    if (run->ids.empty()) return replyResults(*run);
    run->launch();
}

}  // namespace danerelay::relay
