// danerelayd.cc — the daemon: load the configuration, check and bind everything a
// start needs, take the spool, recover it, run the event loop until
// SIGTERM/SIGINT.
//
// A start either succeeds or touches nothing: configuration, named files,
// listeners (bound), log file, control socket directory and spool path are
// all checked (relay/startup.h) before the spool lock is taken, and the
// control socket is listening before recovery changes the spool.
// --check-config runs the same checks and stops there.
//
// Exit codes: 0 clean stop (or --check-config passed), 1 configuration or
// start-up error (each problem on its own line, naming the file and key or
// the address), 2 usage.
#include <event2/event.h>
#include <event2/thread.h>

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/version.h"
#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/control/control.h"
#include "relay/control/control_verbs.h"
#include "relay/inbound/auth.h"
#include "relay/inbound/smtp_server.h"
#include "relay/outbound/scheduler.h"
#include "relay/runtime/committer.h"
#include "relay/runtime/config.h"
#include "relay/runtime/log.h"
#include "relay/runtime/metrics_handles.h"
#include "relay/runtime/metrics_queue.h"
#include "relay/runtime/metrics_server.h"
#include "relay/runtime/privileges.h"
#include "relay/runtime/service_notify.h"
#include "relay/runtime/startup.h"
#include "tls/session.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {

// Threads for blocking work, each pool its own so one kind cannot starve
// another. Spool reads, state writes and removals: two, so a slow disk read
// does not hold up a delivery's state write (the committer has its own).
constexpr unsigned kSpoolWorkers = 2;
// AUTH password hashing (yescrypt, deliberately slow): one thread, so
// unauthenticated clients can use at most one core.
constexpr unsigned kAuthWorkers = 1;
// Local DNSSEC validation's key fetches block on the network: four at once,
// so one slow zone's fetches leave room for others.
constexpr unsigned kValidatorWorkers = 4;

// What --help and a usage error print; docs/man/danerelayd.8.in documents the
// same options (tests/man/check_help.py compares them). --help prints to
// stdout (so `danerelayd --help | less` works), a usage error to stderr.
void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: danerelayd --config FILE [--check-config]\n"
                 "       danerelayd --help\n"
                 "  --config FILE    configuration (JSON); see danerelay.json(5)\n"
                 "  --check-config   check the configuration and everything a start\n"
                 "                   needs (listeners test-bound, log file, control\n"
                 "                   socket, spool path), change nothing, and exit\n"
                 "  -h, --help       this text, and exit 0\n"
                 "signals: HUP reloads the policy, USR1 retries the queue now,\n"
                 "         USR2 reopens log_file, TERM and INT stop; see danerelayd(8)\n");
}

// What the configuration names, loaded and bound before anything starts.
struct Prepared {
    std::optional<Credentials> creds;
    std::shared_ptr<tls::ServerCredentials> tlsCreds;
    std::shared_ptr<const policy::PolicySet> policySet;
    std::shared_ptr<dns::Validator> validator;
    std::vector<UniqueFd> listeners;
    UniqueFd metricsListener;  // metrics.listen, if configured
    uint64_t maxOpenFiles = 0;
    std::optional<RunAs> runAs;         // the account dropped to (a root start)
    std::optional<gid_t> adminGid;      // control_group
    std::vector<std::string> warnings;  // for the log, after the start line
};

// Take the spool: clear debris, quarantine damage (logged), list the queue.
// Recovery's quick first step (tmp/ cleared, orphaned state dropped, msg/
// listed), before the committer can write: the rest runs while the relay
// serves (Scheduler::recover). New queue IDs follow the newest listed.
queue::RecoveryScan beginRecovery(queue::Spool& spool, queue::QueueIdGenerator& ids) {
    auto scan = spool.beginRecovery();
    for (auto it = scan.ids.rbegin(); it != scan.ids.rend(); ++it) {
        if (queue::isValidQueueId(*it)) {
            ids.observe(*it);
            break;
        }
    }
    return scan;
}

// Recovery's end, logged as it always was: what is queued, what was set aside.
void logRecovered(const Config& cfg, const Scheduler::RecoveryProgress& r, size_t debris,
                  std::chrono::steady_clock::time_point started) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    logEvent("recovered", {{"spool", cfg.spoolDir},
                           {"queued", std::to_string(r.queued)},
                           {"quarantined", std::to_string(r.quarantined.size())},
                           {"debris_removed", std::to_string(debris)},
                           {"ms", std::to_string(ms)}});
}

// What `systemctl status` shows.
std::string statusLine(const Scheduler& scheduler, bool validating) {
    const auto& r = scheduler.recovery();
    std::string queue = std::to_string(scheduler.queued()) + " messages queued";
    if (r.running) {
        queue += " (recovering the spool: " + std::to_string(r.checked) + " of " +
                 std::to_string(r.listed) + " read)";
    }
    return queue + "; DNSSEC " +
           (validating ? "validating" : "NOT validating: DANE deliveries defer");
}

// DNSSEC: without a validating resolver the relay cannot tell which
// destinations publish DANE. Say so loudly, and keep asking.
class ProbeLoop {
  public:
    ProbeLoop(event_base* base, dns::Resolver& resolver, ControlVerbs& verbs, Scheduler& scheduler,
              ServiceNotifier& notifier, unsigned interval)
        : resolver_(resolver),
          verbs_(verbs),
          scheduler_(scheduler),
          notifier_(notifier),
          interval_(interval),
          timer_(base, -1, 0, [this](short) { run(); }) {}
    void run() {
        bool before = resolver_.validating();
        resolver_.probe([this, before](bool ok, const std::string& detail) {
            if (ok != before || !ok) {
                logEvent(ok ? "dnssec-probe" : "dnssec-probe-FAILED",
                         {{"result", ok ? "validating" : "NOT VALIDATING: DANE deliveries defer"},
                          {"detail", detail}});
            }
            verbs_.noteProbe(ok, detail);
            scheduler_.setReady();
            notifier_.status(statusLine(scheduler_, ok));
            timer_.addSeconds(interval_);
        });
    }

  private:
    dns::Resolver& resolver_;
    ControlVerbs& verbs_;
    Scheduler& scheduler_;
    ServiceNotifier& notifier_;
    unsigned interval_;
    Event timer_;
};

// SIGHUP reloads the policy (a broken file keeps the policy in force; the
// files are read on a worker thread, never on the loop); SIGUSR1 retries
// everything now, like "postqueue -f"; SIGUSR2 reopens log_file (after
// logrotate moved it); SIGTERM and SIGINT stop.
struct Running {
    event_base* base;
    const Config& cfg;
    ControlVerbs& verbs;
    Scheduler& scheduler;
    SmtpServer& server;
    Committer& committer;
    ServiceNotifier& notifier;
};

class Signals {
  public:
    explicit Signals(Running r)
        : r_(r),
          hup_(r.base, SIGHUP, EV_SIGNAL | EV_PERSIST, [this](short) { reload(); }),
          usr1_(r.base, SIGUSR1, EV_SIGNAL | EV_PERSIST, [this](short) { flush(); }),
          usr2_(r.base, SIGUSR2, EV_SIGNAL | EV_PERSIST, [this](short) { reopenLog(); }),
          term_(r.base, SIGTERM, EV_SIGNAL | EV_PERSIST, [this](short) { stop(); }),
          int_(r.base, SIGINT, EV_SIGNAL | EV_PERSIST, [this](short) { stop(); }) {
        for (Event* e : {&hup_, &usr1_, &usr2_, &term_, &int_}) e->add();
    }

  private:
    void reload() {
        if (r_.cfg.policyDir.empty()) return;
        r_.notifier.reloading();
        r_.verbs.reload([this](bool, const std::string&) { r_.notifier.reloaded(); });
    }
    void flush() {
        logEvent("flush", {{"queued", std::to_string(r_.scheduler.queued())}});
        r_.scheduler.flush();
    }
    void reopenLog() {
        if (r_.cfg.logFile.empty()) return;  // standard error: journald's
        if (logReopen()) {
            logEvent("log-reopened", {{"file", r_.cfg.logFile}});
        } else {
            // Still writing to the old file (or where logrotate moved it).
            logEvent("log-reopen-FAILED", {{"file", r_.cfg.logFile},
                                           {"reason", std::strerror(errno)},
                                           {"result", "still writing to the file opened before"}});
        }
    }
    void stop() {
        r_.notifier.stopping();
        logEvent("stop", {{"sessions", std::to_string(r_.server.sessionCount())},
                          {"committed", std::to_string(r_.committer.messagesCommitted())},
                          {"commit_batches", std::to_string(r_.committer.batchesCommitted())}});
        event_base_loopexit(r_.base, nullptr);
    }
    Running r_;
    Event hup_, usr1_, usr2_, term_, int_;
};

// The account this process runs as, for the start line.
std::string runningAs() {
    std::string uid = "uid " + std::to_string(::geteuid());
    if (passwd* pw = ::getpwuid(::geteuid())) return std::string(pw->pw_name) + " (" + uid + ")";
    return uid;
}

void logStart(const Config& cfg, const Prepared& p) {
    logEvent("start",
             {{"version", kVersion},
              {"config", cfg.file},
              {"user", p.runAs ? p.runAs->name + " (dropped from root)" : runningAs()},
              {"hostname", cfg.hostname},
              {"resolvers", resolversText(cfg.dns)},
              {"resolvers_from", cfg.dns.resolversFrom},
              {"max_open_files", std::to_string(p.maxOpenFiles)},
              {"dnssec", p.validator ? "local validation, anchor " + p.validator->anchorZone() +
                                           " from " + cfg.dns.trustAnchor
                                     : std::string("resolver's AD bit")}});
    for (const auto& n : cfg.dns.resolverNotes) logEvent("resolv-conf-warning", {{"detail", n}});
    for (const auto& w : p.warnings) logEvent("start-warning", {{"detail", w}});
}

// Local DNSSEC validation: key fetches block, so they run on a pool of their
// own, where a slow zone cannot hold up spool reads and writes.
dns::ResolverOptions dnsOptions(const Config& cfg, const Prepared& p, WorkerPool& validators) {
    auto o = resolverOptions(cfg.dns);
    if (p.validator) {
        o.validator = p.validator;
        o.offload = [&validators](std::function<void()> work, std::function<void()> done) {
            validators.run(std::move(work), std::move(done));
        };
    }
    return o;
}

ServerContext serverContext(const Config& cfg, Prepared& p, event_base* base, WorkerPool& workers,
                            WorkerPool& authWorkers, Committer& committer,
                            queue::QueueIdGenerator& ids, Scheduler& scheduler) {
    ServerContext ctx;
    ctx.config = &cfg;
    ctx.base = base;
    ctx.workers = &workers;
    ctx.authWorkers = &authWorkers;
    ctx.committer = &committer;
    ctx.ids = &ids;
    ctx.tlsCredentials = std::move(p.tlsCreds);
    ctx.credentials = p.creds ? &*p.creds : nullptr;
    ctx.onQueued = [&scheduler](const std::string& id) { scheduler.enqueue(id); };
    return ctx;
}

// Delivery cannot run without its TLS client credentials: a start error
// (said on stderr; null then).
std::unique_ptr<Scheduler> makeScheduler(event_base* base, const Config& cfg, queue::Spool& spool,
                                         WorkerPool& workers, Committer& committer,
                                         dns::Resolver& resolver, queue::QueueIdGenerator& ids) {
    try {
        return std::make_unique<Scheduler>(base, cfg, spool, workers, committer, resolver, ids);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "danerelayd: %s\n", e.what());
        return nullptr;
    }
}

// The modules count into these whether or not metrics.listen is set
// (relay/runtime/metrics_handles.h): made before the committer, so that they
// outlive every module that counts.
struct DaemonMetrics {
    metrics::Registry registry;
    RelayMetrics relay{registry};
    std::unique_ptr<QueueGauges> queue;  // with the endpoint only
};

dns::ResolverOptions withMetrics(dns::ResolverOptions o, DaemonMetrics& m) {
    o.observer = &m.relay.dns;
    return o;
}

ServerContext withMetrics(ServerContext ctx, DaemonMetrics& m) {
    ctx.metrics = &m.relay.inbound;
    return ctx;
}

// Gauges read at scrape time from the queue, the resolver and the
// connection slots.
void registerStateGauges(metrics::Registry& registry, Scheduler& scheduler,
                         dns::Resolver& resolver) {
    registry.gaugeFn("danerelay_queue_messages", "Messages in the queue (any state).",
                     [&scheduler] { return static_cast<double>(scheduler.queued()); });
    registry.gaugeFn("danerelay_queue_deliveries_running", "Message deliveries in flight.",
                     [&scheduler] { return static_cast<double>(scheduler.running()); });
    registry.gaugeFn("danerelay_outbound_connections_open",
                     "Outbound connection slots in use (DNS lookups and SMTP sessions).",
                     [&scheduler] { return static_cast<double>(scheduler.connectionsInUse()); });
    registry.gaugeFn("danerelay_dnssec_probe_ok",
                     "1 while the DNSSEC probe finds validation working, 0 when it does not.",
                     [&resolver] { return resolver.validating() ? 1.0 : 0.0; });
    registry.gaugeFn("danerelay_dnssec_probe_last_success_timestamp_seconds",
                     "When the DNSSEC probe last found validation working (Unix seconds; 0: "
                     "never).",
                     [&resolver] { return static_cast<double>(resolver.lastProbeSuccess()); });
    registry.gaugeFn("danerelay_dns_cache_entries", "Answers in the DNS cache.",
                     [&resolver] { return static_cast<double>(resolver.cacheSize()); });
}

// The Prometheus endpoint, if metrics.listen is set: process and build
// metrics, gauges read at scrape time, and the queue census.
std::unique_ptr<MetricsServer> startMetrics(event_base* base, DaemonMetrics& m, UniqueFd listener,
                                            Scheduler& scheduler, dns::Resolver& resolver,
                                            const queue::Spool& spool, WorkerPool& workers) {
    registerProcessMetrics(m.registry);
    registerStateGauges(m.registry, scheduler, resolver);
    if (!listener.valid()) return nullptr;
    m.queue = std::make_unique<QueueGauges>(m.registry, spool, workers);
    auto server = std::make_unique<MetricsServer>(base, m.registry);
    if (auto st = server->serve(std::move(listener)); !st) {
        logEvent("error", {{"where", "metrics"}, {"reason", st.error().message}});
        return nullptr;
    }
    server->setBeforeScrape([&m] { m.queue->requestCensus(); });
    return server;
}

// danectl drain/resume: the verbs reach the listeners through these, and
// the metrics show which it is.
void wireDrain(ControlVerbs& verbs, SmtpServer& server, metrics::Registry& registry) {
    verbs.setDrainHooks({[&server] { return server.stopAccepting(); },
                         [&server] { return server.resumeAccepting(); }});
    registry.gaugeFn("danerelay_smtp_accepting",
                     "1 while the SMTP listeners accept sessions, 0 while draining (danectl "
                     "drain).",
                     [&server] { return server.accepting() ? 1.0 : 0.0; });
}

int run(const Config& cfg, Prepared p) {
    auto spool = queue::Spool::open(cfg.spoolDir, queue::Spool::Mode::Writer);
    if (!spool) {
        std::fprintf(stderr, "danerelayd: %s: spool_dir: %s\n", cfg.file.c_str(),
                     spool.error().message.c_str());
        return 1;
    }
    EventBasePtr base(event_base_new());
    // The control socket: after the spool lock (which says that a socket
    // left there is stale), before recovery, so that a start failing here
    // has changed nothing. Requests wait in its backlog until the loop runs,
    // and by then verbs is set.
    ControlVerbs* verbsPtr = nullptr;
    ControlServer control(
        base.get(), cfg.controlSocket,
        [&verbsPtr](const nlohmann::json& req, ControlAccess access, ControlServer::Reply reply) {
            verbsPtr->handle(req, std::move(reply), access);
        },
        ControlRule{::geteuid(), ::getegid(), p.adminGid});
    if (auto st = control.listen(); !st) {
        std::fprintf(stderr, "danerelayd: %s: %s\n", cfg.file.c_str(), st.error().message.c_str());
        return 1;
    }
    queue::QueueIdGenerator ids;
    auto recoveryStarted = std::chrono::steady_clock::now();
    auto scan = beginRecovery(**spool, ids);

    LoopPoster poster(base.get());
    WorkerPool workers(poster, kSpoolWorkers);
    // AUTH password hashing: one thread of its own, a bounded queue, so
    // unauthenticated clients can neither delay spool work nor queue without end.
    WorkerPool authWorkers(poster, kAuthWorkers, kMaxQueuedAuth);
    DaemonMetrics counted;
    Committer committer(poster, **spool, cfg.commitBatch);
    committer.setMetrics(&counted.relay.commit);
    WorkerPool validators(poster, p.validator ? kValidatorWorkers : 0);
    dns::Resolver resolver(base.get(), withMetrics(dnsOptions(cfg, p, validators), counted));
    auto outbound = makeScheduler(base.get(), cfg, **spool, workers, committer, resolver, ids);
    if (!outbound) return 1;
    Scheduler& scheduler = *outbound;
    scheduler.setMetrics(&counted.relay.outbound);
    ControlVerbs verbs(cfg, scheduler, **spool, workers, resolver);
    verbs.setPolicy(p.policySet);
    verbsPtr = &verbs;

    SmtpServer server(withMetrics(
        serverContext(cfg, p, base.get(), workers, authWorkers, committer, ids, scheduler),
        counted));
    if (auto st = server.listen(std::move(p.listeners)); !st) {
        std::fprintf(stderr, "danerelayd: %s\n", st.error().message.c_str());
        return 1;
    }
    wireDrain(verbs, server, counted.registry);
    auto metricsServer = startMetrics(base.get(), counted, std::move(p.metricsListener), scheduler,
                                      resolver, **spool, workers);
    // systemd (Type=notify): ready once the listeners are bound; the
    // watchdog pings from this loop.
    ServiceNotifier notifier(base.get());
    ProbeLoop probe(base.get(), resolver, verbs, scheduler, notifier, cfg.dns.reprobeInterval);
    probe.run();
    Signals signals({base.get(), cfg, verbs, scheduler, server, committer, notifier});
    logStart(cfg, p);
    // The queue is read while the relay already accepts new mail: ready now,
    // and STATUS= says how far recovery is.
    scheduler.recover(std::move(scan.ids), [&, debris = scan.debrisRemoved,
                                            recoveryStarted](const Scheduler::RecoveryProgress& r) {
        logRecovered(cfg, r, debris, recoveryStarted);
        notifier.status(statusLine(scheduler, resolver.validating()));
    });
    notifier.ready(statusLine(scheduler, resolver.validating()));
    event_base_dispatch(base.get());
    validators.stop();
    authWorkers.stop();
    workers.stop();
    return 0;
}

// The files the configuration names, loaded; every problem is collected and
// reported, not only the first.
std::vector<std::string> loadNamedFiles(const Config& cfg, Prepared& p) {
    std::vector<std::string> problems;
    if (!cfg.credentialsFile.empty()) {
        try {
            p.creds = Credentials::load(cfg.credentialsFile);
        } catch (const std::exception& e) {
            problems.push_back(cfg.file + ": auth.credentials: " + e.what());
        }
    }
    if (!cfg.tlsCertificate.empty()) {
        auto c = tls::ServerCredentials::load(cfg.tlsCertificate, cfg.tlsKey);
        if (c) {
            p.tlsCreds = *c;
        } else {
            problems.push_back(cfg.file + ": tls: " + c.error().message);
        }
    }
    if (!cfg.policyDir.empty()) {
        auto ps = policy::PolicySet::loadDir(cfg.policyDir);
        if (ps) {
            p.policySet = *ps;
        } else {
            problems.push_back(ps.error().message);
        }
    }
    if (cfg.dns.validation == "local") {
        auto v = loadValidator(cfg.dns);
        if (v) {
            p.validator = *v;
        } else {
            problems.push_back(cfg.file + ": " + v.error().message);
        }
    }
    return problems;
}

// Arguments: the exit code when there is nothing to run (help, usage error).
std::optional<int> parseArgs(int argc, char** argv, std::string* configPath, bool* checkOnly) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--config" && i + 1 < argc) {
            *configPath = argv[++i];
        } else if (a == "--check-config") {
            *checkOnly = true;
        } else {
            bool help = a == "--help" || a == "-h";
            usage(help ? stdout : stderr);
            return help ? 0 : 2;
        }
    }
    if (configPath->empty()) {
        usage(stderr);
        return 2;
    }
    return std::nullopt;
}

// user and control_group looked up (problems added); true when a root
// start is to create a missing spool_dir for the run user.
bool resolveAccounts(const Config& cfg, Prepared& p, std::vector<std::string>& problems) {
    auto runAs = resolveRunAs(cfg, ::geteuid());
    if (runAs) {
        p.runAs = *runAs;
    } else {
        problems.push_back(runAs.error().message);
    }
    auto admin = resolveControlGroup(cfg);
    if (admin) {
        p.adminGid = *admin;
    } else {
        problems.push_back(admin.error().message);
    }
    return p.runAs.has_value();
}

// Every problem on its own line; false if there were any.
bool reportProblems(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    for (const auto* list : {&a, &b}) {
        for (const auto& pr : *list) std::fprintf(stderr, "danerelayd: %s\n", pr.c_str());
    }
    return a.empty() && b.empty();
}

// The log, opened before the drop (its directory may be root's), and then
// the run user's, so that it can reopen it after a rotation.
bool openLog(const Config& cfg, const Prepared& p) {
    LogStyle style = cfg.logFormat == LogFormat::Json ? LogStyle::Json : LogStyle::Kv;
    if (!logOpen(cfg.logFile, style)) {
        int e = errno;
        std::fprintf(stderr, "danerelayd: %s: log_file: cannot open %s: %s\n", cfg.file.c_str(),
                     cfg.logFile.c_str(),
                     e == ELOOP    ? "it is a symbolic link (not followed as root)"
                     : e == EMLINK ? "it has more than one hard link"
                     : e == EINVAL ? "not a regular file"
                                   : std::strerror(e));
        return false;
    }
    if (!p.runAs) return true;
    if (auto st = giveLogFile(logFileDescriptor(), cfg.logFile, *p.runAs); !st) {
        std::fprintf(stderr, "danerelayd: %s: log_file: %s\n", cfg.file.c_str(),
                     st.error().message.c_str());
        return false;
    }
    return true;
}

// A root start: the spool_dir made for the run user (a start with nothing
// wrong so far only), then root given up for good. Nothing to do for a
// start as that user.
bool becomeRunUser(const Config& cfg, const Prepared& p, bool makeSpool) {
    if (!p.runAs) return true;
    if (makeSpool) {
        if (auto st = prepareSpoolDir(cfg.spoolDir, *p.runAs); !st) {
            std::fprintf(stderr, "danerelayd: %s: spool_dir: %s\n", cfg.file.c_str(),
                         st.error().message.c_str());
            return false;
        }
    }
    if (auto st = dropPrivileges(*p.runAs); !st) {
        std::fprintf(stderr, "danerelayd: %s: user: %s\n", cfg.file.c_str(),
                     st.error().message.c_str());
        return false;
    }
    return true;
}

void printCheck(const Config& cfg, const Prepared& p, const StartCheck& started) {
    std::printf("%s: configuration ok\nresolvers: %s from %s\n", cfg.file.c_str(),
                resolversText(cfg.dns).c_str(), cfg.dns.resolversFrom.c_str());
    std::printf("runs as: %s\n", p.runAs ? (p.runAs->name +
                                            " (after binding as root; spool "
                                            "and control socket checked as " +
                                            p.runAs->name + ")")
                                               .c_str()
                                         : runningAs().c_str());
    for (const auto& n : cfg.dns.resolverNotes) std::printf("warning: %s\n", n.c_str());
    for (const auto& n : started.notes) std::printf("note: %s\n", n.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    std::string configPath;
    bool checkOnly = false;
    if (auto code = parseArgs(argc, argv, &configPath, &checkOnly)) return *code;
    std::signal(SIGPIPE, SIG_IGN);
    std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit is a write error, not a crash

    Config cfg;
    try {
        cfg = loadConfig(configPath);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "danerelayd: %s\n", e.what());
        return 1;
    }
    Prepared p;
    std::vector<std::string> problems = loadNamedFiles(cfg, p);
    // More descriptors than the usual 1,024 for sessions, DNS and outbound
    // connections; the figure goes into the start line.
    p.maxOpenFiles = checkOnly ? 0 : raiseFileLimit();
    bool spoolByRoot = resolveAccounts(cfg, p, problems);
    // What the start would try as the user it was started as: the listeners
    // are bound now and kept.
    StartCheck started = checkAsStarted(cfg, !checkOnly, spoolByRoot);
    problems.insert(problems.end(), started.problems.begin(), started.problems.end());
    bool starting = !checkOnly && problems.empty();
    if (starting && !openLog(cfg, p)) return 1;
    // From here on never root: the rest is checked, and done, as the run
    // user (checked even after a problem, so that all are reported at once).
    if (!becomeRunUser(cfg, p, starting)) return 1;
    StartCheck asUser;
    checkAsRunUser(cfg, spoolByRoot, &asUser);
    if (!reportProblems(problems, asUser.problems)) {
        if (p.runAs && !asUser.problems.empty()) {
            std::fprintf(stderr,
                         "danerelayd: (checked as user %s, uid %u, which it runs as: "
                         "give it what it needs, e.g. chown -R %s %s)\n",
                         p.runAs->name.c_str(), static_cast<unsigned>(p.runAs->uid),
                         p.runAs->name.c_str(), cfg.spoolDir.c_str());
        }
        return 1;
    }
    started.notes.insert(started.notes.end(), asUser.notes.begin(), asUser.notes.end());
    if (checkOnly) {
        printCheck(cfg, p, started);
        return 0;
    }
    p.warnings = std::move(asUser.notes);
    p.listeners = std::move(started.listeners);
    p.metricsListener = std::move(started.metrics);
    return run(cfg, std::move(p));
}
