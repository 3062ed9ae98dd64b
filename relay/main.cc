// main.cc — danerelayd: load the configuration, recover the spool, listen,
// run the event loop until SIGTERM/SIGINT.
//
// Exit codes: 0 clean stop (or --check-config passed), 1 configuration or
// start-up error (the message names the file and key or the address), 2 usage.
#include <event2/event.h>
#include <event2/thread.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/auth.h"
#include "relay/config.h"
#include "relay/control.h"
#include "relay/control_verbs.h"
#include "relay/event_loop.h"
#include "relay/log.h"
#include "relay/scheduler.h"
#include "relay/smtp_server.h"
#include "tls/session.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: danerelayd --config FILE [--check-config]\n"
                 "  --config FILE    configuration (JSON); see etc/danerelay.json\n"
                 "  --check-config   validate the configuration and exit\n");
}

int run(const Config& cfg, const std::optional<Credentials>& creds,
        std::shared_ptr<tls::ServerCredentials> tlsCreds,
        std::shared_ptr<const policy::PolicySet> policySet,
        std::shared_ptr<dns::Validator> validator) {
    auto spool = queue::Spool::open(cfg.spoolDir, queue::Spool::Mode::Writer);
    if (!spool) {
        std::fprintf(stderr, "danerelayd: %s\n", spool.error().message.c_str());
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

    EventBasePtr base(event_base_new());
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
    Scheduler scheduler(base.get(), cfg, **spool, workers, committer, resolver, ids);
    ControlVerbs verbs(cfg, scheduler, **spool, workers, resolver);
    verbs.setPolicy(policySet);
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
    if (auto st = server.listen(); !st) {
        std::fprintf(stderr, "danerelayd: %s\n", st.error().message.c_str());
        return 1;
    }
    // danectl's way in: status, reload and queue actions (operator only).
    ControlServer control(base.get(), cfg.controlSocket,
                          [&verbs](const nlohmann::json& req, ControlServer::Reply reply) {
                              verbs.handle(req, std::move(reply));
                          });
    if (auto st = control.listen(); !st) {
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
    std::optional<Credentials> creds;
    std::shared_ptr<tls::ServerCredentials> tlsCreds;
    try {
        cfg = loadConfig(configPath);
        if (!cfg.credentialsFile.empty()) creds = Credentials::load(cfg.credentialsFile);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "danerelayd: %s\n", e.what());
        return 1;
    }
    if (!cfg.tlsCertificate.empty()) {
        auto c = tls::ServerCredentials::load(cfg.tlsCertificate, cfg.tlsKey);
        if (!c) {
            std::fprintf(stderr, "danerelayd: %s\n", c.error().message.c_str());
            return 1;
        }
        tlsCreds = *c;
    }
    std::shared_ptr<const policy::PolicySet> policySet;
    if (!cfg.policyDir.empty()) {
        auto p = policy::PolicySet::loadDir(cfg.policyDir);
        if (!p) {
            std::fprintf(stderr, "danerelayd: %s\n", p.error().message.c_str());
            return 1;
        }
        policySet = *p;
    }
    std::shared_ptr<dns::Validator> validator;
    if (cfg.dns.validation == "local") {
        auto v = loadValidator(cfg.dns);
        if (!v) {
            std::fprintf(stderr, "danerelayd: %s: %s\n", configPath.c_str(),
                         v.error().message.c_str());
            return 1;
        }
        validator = *v;
    }
    if (checkOnly) {
        std::printf("%s: configuration ok\nresolvers: %s from %s\n", configPath.c_str(),
                    resolversText(cfg.dns).c_str(), cfg.dns.resolversFrom.c_str());
        for (const auto& n : cfg.dns.resolverNotes) std::printf("warning: %s\n", n.c_str());
        return 0;
    }
    if (!logOpen(cfg.logFile)) {
        std::fprintf(stderr, "danerelayd: cannot open log file %s: %s\n", cfg.logFile.c_str(),
                     std::strerror(errno));
        return 1;
    }
    return run(cfg, creds, std::move(tlsCreds), std::move(policySet), std::move(validator));
}
