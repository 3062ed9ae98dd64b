// main.cc — danerelayd: load the configuration, check and bind everything a
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

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/inbound/auth.h"
#include "relay/runtime/config.h"
#include "relay/control/control.h"
#include "relay/control/control_verbs.h"
#include "relay/runtime/committer.h"
#include "relay/runtime/log.h"
#include "relay/outbound/scheduler.h"
#include "relay/inbound/smtp_server.h"
#include "relay/runtime/startup.h"
#include "tls/session.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: danerelayd --config FILE [--check-config]\n"
                 "  --config FILE    configuration (JSON); see etc/danerelay.json\n"
                 "  --check-config   check the configuration and everything a start\n"
                 "                   needs (listeners test-bound, log file, control\n"
                 "                   socket, spool path), change nothing, and exit\n");
}

int run(const Config& cfg, const std::optional<Credentials>& creds,
        std::shared_ptr<tls::ServerCredentials> tlsCreds,
        std::shared_ptr<const policy::PolicySet> policySet,
        std::shared_ptr<dns::Validator> validator, std::vector<UniqueFd> listeners,
        uint64_t maxOpenFiles) {
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
    ControlServer control(base.get(), cfg.controlSocket,
                          [&verbsPtr](const nlohmann::json& req, ControlServer::Reply reply) {
                              verbsPtr->handle(req, std::move(reply));
                          });
    if (auto st = control.listen(); !st) {
        std::fprintf(stderr, "danerelayd: %s: %s\n", cfg.file.c_str(), st.error().message.c_str());
        return 1;
    }

    auto report = (*spool)->recover();
    for (const auto& q : report.quarantined) {
        logEvent("quarantine", {{"file", cfg.spoolDir + "/" + q.file},
                                {"reason", q.reason},
                                {"moved_to", cfg.spoolDir + "/quarantine/"}});
    }
    queue::QueueIdGenerator ids;
    if (!report.queued.empty()) ids.observe(report.queued.back());
    logEvent("recovered", {{"spool", cfg.spoolDir},
                           {"queued", std::to_string(report.queued.size())},
                           {"quarantined", std::to_string(report.quarantined.size())},
                           {"debris_removed", std::to_string(report.debrisRemoved)}});

    LoopPoster poster(base.get());
    WorkerPool workers(poster, 2);
    // AUTH password hashing: one thread of its own, a bounded queue, so
    // unauthenticated clients can neither delay spool work nor queue without end.
    WorkerPool authWorkers(poster, 1, kMaxQueuedAuth);
    Committer committer(poster, **spool, cfg.commitBatch);

    // Local DNSSEC validation: key fetches block, so they run on a pool of
    // their own, where a slow zone cannot hold up spool reads and writes.
    WorkerPool validators(poster, validator ? 4 : 0);
    auto dnsOptions = resolverOptions(cfg.dns);
    if (validator) {
        dnsOptions.validator = validator;
        dnsOptions.offload = [&validators](std::function<void()> work, std::function<void()> done) {
            validators.run(std::move(work), std::move(done));
        };
    }
    dns::Resolver resolver(base.get(), dnsOptions);
    // Delivery cannot run without its TLS client credentials: a start error.
    std::unique_ptr<Scheduler> outbound;
    try {
        outbound = std::make_unique<Scheduler>(base.get(), cfg, **spool, workers, committer,
                                               resolver, ids);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "danerelayd: %s\n", e.what());
        return 1;
    }
    Scheduler& scheduler = *outbound;
    ControlVerbs verbs(cfg, scheduler, **spool, workers, resolver);
    verbs.setPolicy(policySet);
    verbsPtr = &verbs;
    scheduler.load(report.queued);

    ServerContext ctx;
    ctx.config = &cfg;
    ctx.base = base.get();
    ctx.workers = &workers;
    ctx.authWorkers = &authWorkers;
    ctx.committer = &committer;
    ctx.ids = &ids;
    ctx.tlsCredentials = std::move(tlsCreds);
    ctx.credentials = creds ? &*creds : nullptr;
    ctx.onQueued = [&scheduler](const std::string& id) { scheduler.enqueue(id); };
    SmtpServer server(ctx);
    if (auto st = server.listen(std::move(listeners)); !st) {
        std::fprintf(stderr, "danerelayd: %s\n", st.error().message.c_str());
        return 1;
    }

    // DNSSEC: without a validating resolver the relay cannot tell which
    // destinations publish DANE. Say so loudly, and keep asking.
    std::function<void()> runProbe;
    Event reprobe(base.get(), -1, 0, [&](short) { runProbe(); });
    runProbe = [&] {
        bool before = resolver.validating();
        resolver.probe([&, before](bool ok, const std::string& detail) {
            if (ok != before || !ok) {
                logEvent(ok ? "dnssec-probe" : "dnssec-probe-FAILED",
                         {{"result", ok ? "validating" : "NOT VALIDATING: DANE deliveries defer"},
                          {"detail", detail}});
            }
            verbs.noteProbe(ok, detail);
            scheduler.setReady();
            reprobe.addSeconds(cfg.dns.reprobeInterval);
        });
    };
    runProbe();

    auto stop = [&](short) {
        logEvent("stop", {{"sessions", std::to_string(server.sessionCount())},
                          {"committed", std::to_string(committer.messagesCommitted())},
                          {"commit_batches", std::to_string(committer.batchesCommitted())}});
        event_base_loopexit(base.get(), nullptr);
    };
    // SIGHUP: reload the policy; a broken file keeps the policy in force.
    // The files are read on a worker thread, never on the loop.
    Event sighup(base.get(), SIGHUP, EV_SIGNAL | EV_PERSIST, [&](short) {
        if (!cfg.policyDir.empty()) verbs.reload(nullptr);
    });
    sighup.add();
    // SIGUSR1: retry everything now, like "postqueue -f".
    Event sigusr1(base.get(), SIGUSR1, EV_SIGNAL | EV_PERSIST, [&](short) {
        logEvent("flush", {{"queued", std::to_string(scheduler.queued())}});
        scheduler.flush();
    });
    sigusr1.add();
    Event sigterm(base.get(), SIGTERM, EV_SIGNAL | EV_PERSIST, stop);
    Event sigint(base.get(), SIGINT, EV_SIGNAL | EV_PERSIST, stop);
    sigterm.add();
    sigint.add();
    logEvent("start",
             {{"version", "0.1.0"},
              {"config", cfg.file},
              {"hostname", cfg.hostname},
              {"resolvers", resolversText(cfg.dns)},
              {"resolvers_from", cfg.dns.resolversFrom},
              {"max_open_files", std::to_string(maxOpenFiles)},
              {"dnssec", validator ? "local validation, anchor " + validator->anchorZone() +
                                         " from " + cfg.dns.trustAnchor
                                   : std::string("resolver's AD bit")}});
    for (const auto& n : cfg.dns.resolverNotes) logEvent("resolv-conf-warning", {{"detail", n}});
    event_base_dispatch(base.get());
    validators.stop();
    authWorkers.stop();
    workers.stop();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string configPath;
    bool checkOnly = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--config" && i + 1 < argc) {
            configPath = argv[++i];
        } else if (a == "--check-config") {
            checkOnly = true;
        } else if (a == "--help" || a == "-h") {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (configPath.empty()) {
        usage();
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit is a write error, not a crash

    Config cfg;
    try {
        cfg = loadConfig(configPath);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "danerelayd: %s\n", e.what());
        return 1;
    }
    // Every remaining problem is collected and reported, not only the first.
    std::vector<std::string> problems;
    std::optional<Credentials> creds;
    if (!cfg.credentialsFile.empty()) {
        try {
            creds = Credentials::load(cfg.credentialsFile);
        } catch (const std::exception& e) {
            problems.push_back(configPath + ": auth.credentials: " + e.what());
        }
    }
    std::shared_ptr<tls::ServerCredentials> tlsCreds;
    if (!cfg.tlsCertificate.empty()) {
        auto c = tls::ServerCredentials::load(cfg.tlsCertificate, cfg.tlsKey);
        if (c) {
            tlsCreds = *c;
        } else {
            problems.push_back(configPath + ": tls: " + c.error().message);
        }
    }
    std::shared_ptr<const policy::PolicySet> policySet;
    if (!cfg.policyDir.empty()) {
        auto p = policy::PolicySet::loadDir(cfg.policyDir);
        if (p) {
            policySet = *p;
        } else {
            problems.push_back(p.error().message);
        }
    }
    std::shared_ptr<dns::Validator> validator;
    if (cfg.dns.validation == "local") {
        auto v = loadValidator(cfg.dns);
        if (v) {
            validator = *v;
        } else {
            problems.push_back(configPath + ": " + v.error().message);
        }
    }
    // More descriptors than the usual 1,024 for sessions, DNS and outbound
    // connections; the figure goes into the start line.
    uint64_t maxOpenFiles = checkOnly ? 0 : raiseFileLimit();
    // What the start would try: the listeners are bound now and kept.
    StartCheck started = checkStart(cfg, !checkOnly);
    problems.insert(problems.end(), started.problems.begin(), started.problems.end());
    if (!problems.empty()) {
        for (const auto& p : problems) std::fprintf(stderr, "danerelayd: %s\n", p.c_str());
        return 1;
    }
    if (checkOnly) {
        std::printf("%s: configuration ok\nresolvers: %s from %s\n", configPath.c_str(),
                    resolversText(cfg.dns).c_str(), cfg.dns.resolversFrom.c_str());
        for (const auto& n : cfg.dns.resolverNotes) std::printf("warning: %s\n", n.c_str());
        for (const auto& n : started.notes) std::printf("note: %s\n", n.c_str());
        return 0;
    }
    if (!logOpen(cfg.logFile)) {
        std::fprintf(stderr, "danerelayd: %s: log_file: cannot open %s: %s\n", configPath.c_str(),
                     cfg.logFile.c_str(), std::strerror(errno));
        return 1;
    }
    return run(cfg, creds, std::move(tlsCreds), std::move(policySet), std::move(validator),
               std::move(started.listeners), maxOpenFiles);
}
