#include "relay/outbound/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <deque>

#include "queue/filter.h"
#include "queue/utf8.h"
#include "relay/outbound/bounce.h"
#include "relay/outbound/delivery.h"
#include "relay/outbound/destination.h"
#include "relay/runtime/log.h"
#include "relay/outbound/smtp_client.h"

namespace danerelay::relay {

using queue::domainOf;
using queue::RcptState;

namespace {

int64_t nowSeconds() {
    return static_cast<int64_t>(std::time(nullptr));
}

// For the log: the plan's TLS mode for the host, and the mode actually
// enforced on the connection (raised by pins, credentials, ...).
struct TlsModes {
    std::string policy = "-", required = "-";
};

}  // namespace

// ---------------------------------------------------------------- one message

// One delivery attempt of one message: every due recipient, grouped by
// domain, each domain through DestinationLookup → plan() → SMTP sessions.
class MessageDelivery : public std::enable_shared_from_this<MessageDelivery> {
  public:
    MessageDelivery(Scheduler& s, std::string id, bool force = false)
        : s_(s), id_(std::move(id)), force_(force) {}
    // Operator's bounce: every recipient not yet final fails now, with a DSN.
    static std::shared_ptr<MessageDelivery> bouncer(Scheduler& s, std::string id,
                                                    std::function<void(AdminResult)> done) {
        auto d = std::make_shared<MessageDelivery>(s, std::move(id));
        d->bounceDone_ = std::move(done);
        return d;
    }

    void start() {
        auto self = shared_from_this();
        auto loaded =
            std::make_shared<std::pair<Result<queue::StoredMessage>, Result<std::string>>>(
                Error::internal("not loaded"), Error::internal("not loaded"));
        s_.workers_.run(
            [self, loaded] {
                loaded->first = self->s_.spool_.load(self->id_);
                if (loaded->first) loaded->second = self->s_.spool_.loadContent(self->id_);
            },
            [self, loaded] {
                self->onLoaded(std::move(loaded->first), std::move(loaded->second));
            });
    }

  private:
    struct Outcome {
        RcptState state = RcptState::Deferred;
        std::string status, text, mx;
    };

    void onLoaded(Result<queue::StoredMessage> m, Result<std::string> content) {
        if (!m || !content) {
            const auto& e = !m ? m.error() : content.error();
            bool gone = e.kind == ErrorKind::Permanent;
            if (bounceDone_) {
                s_.adminFinished(id_, gone, 0, false);
                return bounceDone_({id_, gone ? "not-found" : "error", e.message});
            }
            return s_.loadFailed(id_, e);
        }
        if (auto it = s_.entries_.find(Scheduler::keyOf(id_)); it != s_.entries_.end())
            it->second.loadFailures = 0;
        msg_ = std::move(*m);
        content_ = std::make_shared<const std::string>(std::move(*content));
        if (bounceDone_) return bounceAll();
        int64_t now = nowSeconds();
        std::map<std::string, std::vector<size_t>> byDomain;
        for (size_t i = 0; i < msg_.status.size(); ++i) {
            const auto& st = msg_.status[i];
            bool due = st.state == RcptState::Pending ||
                       (st.state == RcptState::Deferred && (force_ || st.nextAttempt <= now));
            if (due) byDomain[domainOf(msg_.envelope.recipients[i].address)].push_back(i);
        }
        if (byDomain.empty()) return complete();
        pendingDomains_ = byDomain.size();
        for (auto& [domain, idx] : byDomain) waitingDomains_.emplace_back(domain, std::move(idx));
        startDomains();
    }

    // Fan-out: at most limits.max_connections_per_message domains of this
    // message at once, each holding its destination's slot and then one of
    // the limits.max_outbound_connections slots (in that order, always, so
    // that no slot is held while waiting for one of another kind that its
    // holders need) for its DNS lookups and its one SMTP session at a time.
    void startDomains() {
        if (startingDomains_) return;  // the loop below picks it up
        startingDomains_ = true;
        auto self = shared_from_this();
        while (activeDomains_ < s_.cfg_.limits.maxConnectionsPerMessage &&
               !waitingDomains_.empty()) {
            auto [domain, idx] = std::move(waitingDomains_.front());
            waitingDomains_.pop_front();
            ++activeDomains_;
            s_.acquireDomain(domain, [self, domain, idx] {
                self->s_.acquireConnection(
                    [self, domain, idx] { self->deliverDomain(domain, idx); });
            });
        }
        startingDomains_ = false;
    }

    void bounceAll() {
        size_t n = 0;
        for (size_t i = 0; i < msg_.status.size(); ++i) {
            auto st = msg_.status[i].state;
            if (st != RcptState::Pending && st != RcptState::Deferred && st != RcptState::Held)
                continue;
            record(i, {RcptState::Bounced, "5.0.0", "message bounced by the operator", ""}, "", "",
                   "", "", {}, "-", "operator-bounce");
            ++n;
        }
        if (n == 0) {
            s_.adminFinished(id_, false, Scheduler::dueOf(msg_.status, nowSeconds()), false);
            return bounceDone_({id_, "unchanged", "no recipient left to bounce"});
        }
        complete();
    }

    void deliverDomain(const std::string& domain, const std::vector<size_t>& idx) {
        auto self = shared_from_this();
        policy::Decision pol;
        if (s_.policy_) {
            pol = s_.policy_->lookup(domain, nowSeconds());
        } else {
            pol.effective.destination = "(built-in default)";
        }
        for (const auto& w : pol.warnings)
            logEvent("policy-warning", {{"qid", id_}, {"detail", w}});
        const auto& eff = pol.effective;
        policyText_[domain] =
            std::string(policy::toString(eff.level)) + (eff.file.empty() ? "" : "@" + eff.where());
        auto onInfo = [self, domain, idx, pol](const DestinationInfo& info) {
            bool validating = self->s_.resolver_.validating();
            DeliveryPlan p =
                plan(info, validating, true, pol.effective.level,
                     ownAddresses(self->s_.cfg_.listeners, self->s_.cfg_.delivery.port));
            for (const auto& n : p.notes)
                logEvent("addresses-dropped",
                         {{"qid", self->id_}, {"domain", domain}, {"detail", n}});
            if (pol.reported) self->report(domain, info, *pol.reported, p);
            if (p.action != DeliveryPlan::Action::Deliver) {
                RcptState st = p.action == DeliveryPlan::Action::Bounce ? RcptState::Bounced
                                                                        : RcptState::Deferred;
                for (size_t i : idx) {
                    self->record(i, {st, p.status, p.reason, ""}, "", "", "", "");
                }
                return self->domainDone(domain);
            }
            auto attempt = std::make_shared<HostAttempt>();
            attempt->plan = std::move(p);
            attempt->rcpts = idx;
            attempt->domain = domain;
            attempt->port = info.nextHop.empty() ? self->s_.cfg_.delivery.port : info.port;
            attempt->policy = pol.effective;
            self->tryNext(attempt);
        };
        if (eff.nextHop) {
            DestinationLookup::runNextHop(s_.resolver_, domain, eff.nextHop->host,
                                          eff.nextHop->literal, eff.nextHop->port, onInfo);
        } else {
            DestinationLookup::run(s_.resolver_, domain, s_.cfg_.delivery.maxHostsPerAttempt,
                                   onInfo);
        }
    }

    // A report-only entry: what it would have done, logged; delivery follows
    // the effective policy.
    void report(const std::string& domain, const DestinationInfo& info, const policy::Entry& e,
                const DeliveryPlan& effective) {
        DeliveryPlan strict = plan(info, s_.resolver_.validating(), false, e.level,
                                   ownAddresses(s_.cfg_.listeners, s_.cfg_.delivery.port));
        std::string would;
        if (strict.action != DeliveryPlan::Action::Deliver) {
            would = std::string("would ") + toString(strict.action) + ": " + strict.status + " " +
                    strict.reason;
        } else {
            for (const auto& h : strict.hosts) {
                if (!h.skip) {
                    would = "would deliver via " + h.name + " (" + toString(h.mode) + ")";
                    break;
                }
            }
        }
        logEvent("policy-report",
                 {{"qid", id_},
                  {"domain", domain},
                  {"policy", std::string(policy::toString(e.level)) + "@" + e.where()},
                  {"result", would},
                  {"enforced", toString(effective.action)}});
    }

    struct HostAttempt {
        DeliveryPlan plan;
        std::string domain;
        std::vector<size_t> rcpts;  // still undecided
        size_t host = 0, address = 0, tries = 0;
        std::string lastError = "no MX host could be tried";
        std::string lastStatus = "4.4.1";
        uint16_t port = 25;
        policy::Entry policy;
        TlsModes lastModes;  // of the last host tried, for the final deferral
    };

    void tryNext(std::shared_ptr<HostAttempt> a) {
        auto& hosts = a->plan.hosts;
        while (a->host < hosts.size() &&
               (hosts[a->host].skip || a->address >= hosts[a->host].addresses.size())) {
            if (hosts[a->host].skip) {
                a->lastError = hosts[a->host].name + ": " + hosts[a->host].why;
                a->lastStatus =
                    hosts[a->host].status.rfind("4.", 0) == 0 ? hosts[a->host].status : "4.7.5";
            }
            ++a->host;
            a->address = 0;
        }
        if (a->host >= hosts.size() || a->tries >= s_.cfg_.delivery.maxHostsPerAttempt * 2) {
            for (size_t i : a->rcpts) {
                record(i, {RcptState::Deferred, a->lastStatus, a->lastError, ""}, "", "", "", "",
                       a->lastModes);
            }
            return domainDone(a->domain);
        }
        const HostPlan& h = hosts[a->host];
        ClientRequest req;
        req.mxName = h.name;
        req.address = h.addresses[a->address++];
        req.port = a->port;
        const auto& pe = a->policy;
        req.implicitTls = pe.implicitTls;
        req.authUser = pe.authUser;
        req.authPassword = pe.authPassword;
        req.tlsPins = pe.tlsPins;
        req.minTlsVersion = pe.minTlsVersion;
        req.trustStore = pe.trustStore;
        // PKIX name (policy verify): plan() chose it (the MX host only under a
        // secure MX RRset, else the next-hop domain).
        req.verifyName = h.referenceNames.empty() ? h.name : h.referenceNames.front();
        req.mode = h.mode;
        req.tlsa = h.tlsa;
        req.sni = h.sni;
        req.referenceNames = h.referenceNames;
        req.heloName = s_.cfg_.hostname;
        req.envelope = msg_.envelope;
        req.rcptIndexes = a->rcpts;
        req.content = content_;
        req.timeouts = {s_.cfg_.delivery.connectTimeout, s_.cfg_.delivery.commandTimeout,
                        s_.cfg_.delivery.commandTimeout, s_.cfg_.delivery.dataTimeout};
        // Pins, a minimum version or credentials all need TLS.
        bool needsTls =
            pe.implicitTls || !pe.authUser.empty() || !pe.tlsPins.empty() || pe.minTlsVersion > 0;
        if (needsTls && (req.mode == TlsMode::Opportunistic || req.mode == TlsMode::None)) {
            req.mode = TlsMode::Mandatory;
        }
        ++a->tries;
        auto self = shared_from_this();
        std::string mx = h.name, ip = req.address;
        TlsMode required = req.mode;
        TlsModes modes{toString(h.mode), toString(required)};
        SmtpClient::run(
            s_.base_, s_.clientCreds_, std::move(req),
            [self, a, mx, ip, required, modes](const ClientResult& r) {
                self->onSession(a, r, mx, ip, required, modes);
            },
            s_.cfg_.delivery.connectionReuseTime > 0 ? &s_.connections_ : nullptr);
    }

    // What the session means is decided by judgeAttempt() (relay/delivery),
    // never here: this only carries it out.
    void onSession(std::shared_ptr<HostAttempt> a, const ClientResult& r, const std::string& mx,
                   const std::string& ip, TlsMode required, const TlsModes& modes) {
        AttemptJudgement j = judgeAttempt(required, r, a->rcpts.size());
        if (j.nextHost) {
            // Nothing decided (connection, greeting, EHLO, TLS, AUTH): log it
            // for every recipient, then the next address or host, under that
            // host's own plan. Never a plaintext or unauthenticated retry of
            // this one, and never a bounce.
            for (size_t i : a->rcpts) {
                logAttempt(i, mx, ip, r.tls, r.dane, modes, j.reason, "retry-next-host");
            }
            a->lastError = mx + "[" + ip + "]: " + j.reason;
            a->lastStatus = j.status;
            a->lastModes = modes;
            return tryNext(a);
        }
        const char* conn = !r.sessionOk ? "-" : r.reusedConnection ? "reused" : "new";
        for (size_t k = 0; k < a->rcpts.size(); ++k) {
            auto& jr = j.rcpts[k];
            record(a->rcpts[k], {jr.state, std::move(jr.status), std::move(jr.text), mx}, mx, ip,
                   r.tls, r.dane, modes, conn);
        }
        domainDone(a->domain);
    }

    void logAttempt(size_t i, const std::string& mx, const std::string& ip, const std::string& tls,
                    const std::string& dane, const TlsModes& modes, const std::string& reply,
                    const std::string& outcome, const char* conn = "-",
                    const char* event = "delivery") {
        tries_[i].push_back({nowSeconds(), mx, ip, tls.empty() ? "none" : tls,
                             dane.empty() ? "none" : dane, Scheduler::attemptReply(reply)});
        logEvent(event, {{"qid", id_},
                         {"rcpt", msg_.envelope.recipients[i].address},
                         {"mx", mx},
                         {"ip", ip},
                         {"tls_policy", modes.policy},
                         {"tls_required", modes.required},
                         {"tls", tls.empty() ? "none" : tls},
                         {"dane", dane.empty() ? "none" : dane},
                         {"conn", conn},
                         {"policy", policyText_[domainOf(msg_.envelope.recipients[i].address)]},
                         {"reply", reply},
                         {"outcome", outcome}});
    }

    void record(size_t i, Outcome o, const std::string& mx, const std::string& ip,
                const std::string& tls, const std::string& dane, const TlsModes& modes = {},
                const char* conn = "-", const char* event = "delivery") {
        logAttempt(
            i, mx.empty() ? "-" : mx, ip.empty() ? "-" : ip, tls, dane, modes,
            o.text.rfind(o.status, 4) != std::string::npos ? o.text : o.status + " " + o.text,
            queue::toString(o.state), conn, event);
        outcomes_[i] = std::move(o);
    }

    void domainDone(const std::string& domain) {
        s_.releaseConnection();
        s_.releaseDomain(domain);
        --activeDomains_;
        if (--pendingDomains_ == 0) return complete();
        startDomains();
    }

    // Every domain has an outcome: make the new state durable, bounce what
    // failed, remove the message when nothing is left to do.
    void complete() {
        int64_t now = nowSeconds();
        const auto& dc = s_.cfg_.delivery;
        std::vector<FailedRecipient> failed;
        int64_t nextDue = 0;
        bool allFinal = true;
        for (size_t i = 0; i < msg_.status.size(); ++i) {
            auto& st = msg_.status[i];
            if (auto t = tries_.find(i); t != tries_.end()) {
                auto& h = st.history;
                h.insert(h.end(), t->second.begin(), t->second.end());
                if (h.size() > queue::RecipientStatus::kMaxHistory)
                    h.erase(h.begin(), h.end() - queue::RecipientStatus::kMaxHistory);
            }
            auto it = outcomes_.find(i);
            if (it != outcomes_.end()) {
                const Outcome& o = it->second;
                ++st.attempts;
                st.lastError = o.status + " " + o.text;
                st.state = o.state;
                if (o.state == RcptState::Deferred) {
                    if (now - msg_.envelope.arrival >= static_cast<int64_t>(dc.maxQueueLifetime)) {
                        st.state = RcptState::Bounced;
                        st.lastError =
                            "5.4.7 delivery time expired; last error: " + o.status + " " + o.text;
                        failed.push_back({i, "5.4.7", st.lastError, o.mx});
                    } else {
                        st.nextAttempt = now + Scheduler::backoff(dc, st.attempts);
                    }
                } else if (o.state == RcptState::Bounced) {
                    failed.push_back(
                        {i, o.status.empty() ? "5.0.0" : o.status, o.status + " " + o.text, o.mx});
                }
            }
            if (st.state == RcptState::Pending || st.state == RcptState::Deferred) {
                allFinal = false;
                int64_t due = st.state == RcptState::Pending ? now : st.nextAttempt;
                nextDue = nextDue == 0 ? due : std::min(nextDue, due);
            } else if (st.state == RcptState::Held) {
                allFinal = false;
            }
        }
        // The DSN: only for recipients that asked for one, never to <>.
        std::erase_if(failed, [&](const FailedRecipient& f) {
            return !wantsFailureDsn(msg_.envelope.recipients[f.index]);
        });
        std::shared_ptr<queue::NewMessage> dsn;
        if (!failed.empty() && !msg_.envelope.sender.empty()) {
            dsn = std::make_shared<queue::NewMessage>();
            dsn->id = s_.ids_.next();
            dsn->envelope.sender = "";
            dsn->envelope.recipients = {{msg_.envelope.sender, "", queue::kNotifyNone}};
            dsn->envelope.arrival = now;
            dsn->envelope.clientAddress = "127.0.0.1";
            dsn->envelope.heloName = s_.cfg_.hostname;
            dsn->content = buildFailureDsn(s_.cfg_.hostname, msg_, *content_, failed, now);
        }
        auto self = shared_from_this();
        auto status = msg_.status;
        bool remove = allFinal;
        auto done = [self, remove, nextDue](bool ok) {
            if (self->bounceDone_) {
                self->s_.adminFinished(self->id_, ok && remove, ok ? nextDue : nowSeconds() + 60,
                                       false);
                return self->bounceDone_({self->id_, ok ? "done" : "error",
                                          ok ? "bounced" : "could not record the bounce"});
            }
            self->s_.finished(self->id_, ok && remove, ok ? nextDue : nowSeconds() + 60);
        };
        auto writeState = [self, status, remove, done] {
            auto result = std::make_shared<bool>(false);
            self->s_.workers_.run(
                [self, status, remove, result] {
                    // Every recipient final: the message goes; its last state
                    // need not be written first (a crash in between means
                    // at worst a second delivery, never a lost one).
                    auto st = remove ? self->s_.spool_.remove(self->id_)
                                     : self->s_.spool_.writeStatus(self->id_, status);
                    *result = st.ok();
                    if (!st)
                        logEvent("error", {{"qid", self->id_}, {"reason", st.error().message}});
                },
                [done, result] { done(*result); });
        };
        if (!dsn) return writeState();
        // The DSN is on disk before the original's state says "bounced".
        std::string dsnId = dsn->id;
        s_.committer_.submit(std::move(*dsn), [self, dsnId, writeState, done](Status st) {
            if (!st) {
                logEvent("error", {{"qid", self->id_},
                                   {"reason", "cannot queue DSN: " + st.error().message}});
                return done(false);  // retry later; nothing was recorded as bounced
            }
            logEvent("bounce",
                     {{"qid", self->id_}, {"dsn_qid", dsnId}, {"to", self->msg_.envelope.sender}});
            self->s_.enqueue(dsnId);
            writeState();
        });
    }

    Scheduler& s_;
    std::string id_;
    queue::StoredMessage msg_;
    std::shared_ptr<const std::string> content_;
    std::map<size_t, Outcome> outcomes_;
    std::map<size_t, std::vector<queue::AttemptRecord>> tries_;  // this attempt's tries
    std::map<std::string, std::string> policyText_;              // domain → "level@file:line"
    size_t pendingDomains_ = 0;
    std::deque<std::pair<std::string, std::vector<size_t>>> waitingDomains_;  // not started yet
    unsigned activeDomains_ = 0;
    bool startingDomains_ = false;
    bool force_ = false;
    std::function<void(AdminResult)> bounceDone_;
};

// ---------------------------------------------------------------- scheduler

Scheduler::Scheduler(event_base* base, const Config& cfg, queue::Spool& spool, WorkerPool& workers,
                     Committer& committer, dns::Resolver& resolver, queue::QueueIdGenerator& ids)
    : base_(base),
      cfg_(cfg),
      spool_(spool),
      workers_(workers),
      committer_(committer),
      resolver_(resolver),
      ids_(ids),
      connections_(cfg.delivery.connectionReuseTime, cfg.delivery.maxConcurrent),
      timer_(base, -1, 0, [this](short) { pump(); }),
      sweepTimer_(base, -1, 0, [this](short) {
          sweep();
          sweepTimer_.addSeconds(cfg_.limits.queueSweepInterval);
      }) {
    auto c = tls::ClientCredentials::create();
    if (c) clientCreds_ = *c;
    sweepTimer_.addSeconds(cfg_.limits.queueSweepInterval);
}

Scheduler::~Scheduler() = default;

int64_t Scheduler::backoff(const DeliveryConfig& d, int attempts) {
    int64_t b = d.retryInitial;
    for (int i = 1; i < attempts && b < d.retryMax; ++i) b *= 2;
    return std::min<int64_t>(b, d.retryMax);
}

std::string Scheduler::attemptReply(std::string_view reply) {
    return std::string(queue::utf8Prefix(reply, kMaxAttemptReply));
}

int64_t Scheduler::dueOf(const std::vector<queue::RecipientStatus>& status, int64_t now) {
    int64_t due = 0;
    for (const auto& st : status) {
        int64_t d = st.state == RcptState::Pending    ? now
                    : st.state == RcptState::Deferred ? st.nextAttempt
                                                      : 0;
        if (d != 0) due = due == 0 ? d : std::min(due, d);
    }
    return due;
}

void Scheduler::load(const std::vector<std::string>& ids) {
    int64_t now = nowSeconds();
    for (const auto& id : ids) {
        auto m = spool_.load(id);
        if (!m) {
            // Unreadable now (or damaged since recovery): the delivery path
            // retries or quarantines it; only a message that is gone is dropped.
            if (queue::classifyLoadError(m.error()) != queue::LoadFailure::NotFound)
                schedule(id, now);
            continue;
        }
        if (int64_t due = dueOf(m->status, now); due != 0) schedule(id, due);
    }
    kick();
}

int64_t Scheduler::loadRetryDelay(unsigned failures) {
    int64_t d = kLoadRetryInitial;
    for (unsigned i = 1; i < failures && d < kLoadRetryMax; ++i) d *= 2;
    return std::min(d, kLoadRetryMax);
}

int64_t Scheduler::dueTime(const std::string& id) const {
    if (!queue::isValidQueueId(id)) return 0;
    auto it = entries_.find(keyOf(id));
    return it == entries_.end() ? 0 : it->second.due;
}

void Scheduler::loadFailed(const std::string& id, const Error& e) {
    Key k = keyOf(id);
    auto retry = [this, id, k](const std::string& why) {
        auto it = entries_.find(k);
        unsigned n = it == entries_.end() ? 1u : it->second.loadFailures + 1u;
        int64_t delay = loadRetryDelay(n);
        ++counters_.loadRetries;
        logEvent("load-deferred", {{"qid", id},
                                   {"reason", why},
                                   {"failures", std::to_string(n)},
                                   {"retry_in", std::to_string(delay)}});
        finished(id, false, nowSeconds() + delay);
        if (auto again = entries_.find(k); again != entries_.end())
            again->second.loadFailures = static_cast<uint16_t>(std::min(n, 60000u));
    };
    switch (queue::classifyLoadError(e)) {
        case queue::LoadFailure::NotFound:
            return finished(id, true, 0);
        case queue::LoadFailure::Transient:
            return retry(e.message);
        case queue::LoadFailure::Damaged:
            break;
    }
    // Set aside with a .why, as recovery does, and never deleted. Still
    // marked running meanwhile, so nothing else touches it.
    auto moved = std::make_shared<Status>(okStatus());
    workers_.run([this, id, e, moved] { *moved = spool_.quarantine(id, e.message); },
                 [this, id, e, moved, retry] {
                     if (!*moved) return retry("cannot quarantine: " + moved->error().message);
                     ++counters_.quarantined;
                     logEvent("quarantine", {{"qid", id},
                                             {"file", spool_.dir() + "/msg/" + id},
                                             {"reason", e.message},
                                             {"moved_to", spool_.dir() + "/quarantine/"}});
                     finished(id, true, 0);
                 });
}

std::vector<std::string> Scheduler::unindexed(const std::vector<std::string>& spoolIds) const {
    std::vector<std::string> out;
    for (const auto& id : spoolIds) {
        if (!queue::isValidQueueId(id)) continue;  // recovery's to quarantine
        if (!entries_.contains(keyOf(id))) out.push_back(id);
    }
    return out;
}

void Scheduler::sweep(std::function<void(const SweepReport&)> done) {
    struct Found {
        std::string id;
        int64_t due = 0;         // 0: nothing to deliver
        std::string unreadable;  // why a load failed (not "not found")
    };
    struct Sweep {
        SweepReport report;
        std::vector<std::string> listed, candidates;
        std::vector<Found> found;
    };
    auto sw = std::make_shared<Sweep>();
    // 1. List msg/ on a worker; 2. compare on the loop; 3. read the state of
    // the missing ones on a worker; 4. schedule on the loop what is still
    // missing then (a commit or an operator may have indexed it meanwhile).
    workers_.run(
        [this, sw] { sw->listed = spool_.listIds(); },
        [this, sw, done] {
            sw->report.listed = sw->listed.size();
            sw->candidates = unindexed(sw->listed);
            sw->listed.clear();
            workers_.run(
                [this, sw] {
                    int64_t now = nowSeconds();
                    for (const auto& id : sw->candidates) {
                        auto m = spool_.load(id);
                        if (m) {
                            sw->found.push_back({id, dueOf(m->status, now), ""});
                        } else if (queue::classifyLoadError(m.error()) !=
                                   queue::LoadFailure::NotFound) {
                            sw->found.push_back({id, now, m.error().message});
                        }
                    }
                },
                [this, sw, done] {
                    for (const auto& f : sw->found) {
                        if (entries_.contains(keyOf(f.id))) continue;
                        if (f.due == 0) {
                            ++sw->report.notDue;
                            continue;
                        }
                        schedule(f.id, f.due);
                        sw->report.scheduled.push_back(f.id);
                        ++counters_.swept;
                        std::string due = std::to_string(f.due);
                        if (f.unreadable.empty()) {
                            logEvent("swept", {{"qid", f.id}, {"due", due}});
                        } else {
                            logEvent("swept",
                                     {{"qid", f.id}, {"due", due}, {"unreadable", f.unreadable}});
                        }
                    }
                    if (!sw->report.scheduled.empty()) kick();
                    if (done) done(sw->report);
                });
        });
}

void Scheduler::enqueue(const std::string& id) {
    schedule(id, nowSeconds());
    kick();
}

Scheduler::Key Scheduler::keyOf(const std::string& id) {
    return std::stoull(id, nullptr, 16);  // the spool only hands out valid IDs
}

std::string Scheduler::idOf(Key k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%014llX", static_cast<unsigned long long>(k));
    return buf;
}

void Scheduler::flush() {
    std::vector<Key> keys;
    for (const auto& [k, e] : entries_) {
        if (!e.running && !e.busy) keys.push_back(k);
    }
    for (Key k : keys) {
        schedule(idOf(k), 0);
        entries_[k].force = true;
    }
    kick();
    sweep();
}

void Scheduler::schedule(const std::string& id, int64_t due) {
    Key k = keyOf(id);
    auto& e = entries_[k];
    if (e.running || e.busy) return;
    due_.erase({e.due, k});
    e.due = due;
    due_.insert({due, k});
}

void Scheduler::kick() {
    timeval now{0, 0};
    timer_.add(&now);
}

void Scheduler::setReady() {
    if (ready_) return;
    ready_ = true;
    kick();
}

void Scheduler::pump() {
    if (!ready_ || !cfg_.delivery.enabled) return;
    int64_t now = nowSeconds();
    while (running_ < cfg_.delivery.maxConcurrent && !due_.empty() && due_.begin()->first <= now) {
        Key k = due_.begin()->second;
        due_.erase(due_.begin());
        auto& e = entries_[k];
        e.running = true;
        bool force = std::exchange(e.force, false);
        ++running_;
        std::make_shared<MessageDelivery>(*this, idOf(k), force)->start();
    }
    // Wake for the next due message (at most a minute away, to notice flushes).
    int64_t wait = 60;
    if (!due_.empty()) wait = std::clamp<int64_t>(due_.begin()->first - now, 1, 60);
    if (running_ < cfg_.delivery.maxConcurrent || due_.empty())
        timer_.addSeconds(static_cast<unsigned>(wait));
}

void Scheduler::acquireDomain(const std::string& domain, std::function<void()> start) {
    auto& n = domainInFlight_[domain];
    if (n < cfg_.delivery.maxPerDestination) {
        ++n;
        return start();
    }
    domainWaiting_[domain].push_back(std::move(start));
}

void Scheduler::acquireConnection(std::function<void()> start) {
    if (connectionsInUse_ < cfg_.limits.maxOutboundConnections && connectionWaiting_.empty()) {
        ++connectionsInUse_;
        connectionsPeak_ = std::max(connectionsPeak_, connectionsInUse_);
        return start();
    }
    connectionWaiting_.push_back(std::move(start));
}

void Scheduler::releaseConnection() {
    --connectionsInUse_;
    if (dispatchingConnections_) return;  // the loop below hands the slot on
    dispatchingConnections_ = true;
    while (connectionsInUse_ < cfg_.limits.maxOutboundConnections && !connectionWaiting_.empty()) {
        auto next = std::move(connectionWaiting_.front());
        connectionWaiting_.pop_front();
        ++connectionsInUse_;
        connectionsPeak_ = std::max(connectionsPeak_, connectionsInUse_);
        next();
    }
    dispatchingConnections_ = false;
}

void Scheduler::releaseDomain(const std::string& domain) {
    auto w = domainWaiting_.find(domain);
    if (w != domainWaiting_.end() && !w->second.empty()) {
        auto next = std::move(w->second.front());
        w->second.erase(w->second.begin());
        if (w->second.empty()) domainWaiting_.erase(w);
        return next();  // the slot passes straight to the next waiter
    }
    if (--domainInFlight_[domain] == 0) domainInFlight_.erase(domain);
}

void Scheduler::finished(const std::string& id, bool removed, int64_t nextDue) {
    --running_;
    auto it = entries_.find(keyOf(id));
    if (it != entries_.end()) it->second.running = false;
    if (removed || nextDue == 0) {
        entries_.erase(keyOf(id));
    } else {
        schedule(id, nextDue);
    }
    kick();
    runWaiting(keyOf(id));
}

// ---------------------------------------------------------------- operator

const char* toString(AdminAction a) {
    switch (a) {
        case AdminAction::Hold:
            return "hold";
        case AdminAction::Release:
            return "release";
        case AdminAction::Delete:
            return "delete";
        case AdminAction::Flush:
            return "flush";
        case AdminAction::Bounce:
            return "bounce";
        case AdminAction::Requeue:
            return "requeue";
    }
    return "?";
}

bool parseAdminAction(const std::string& s, AdminAction* out) {
    for (auto a : {AdminAction::Hold, AdminAction::Release, AdminAction::Delete, AdminAction::Flush,
                   AdminAction::Bounce, AdminAction::Requeue}) {
        if (s == toString(a)) {
            *out = a;
            return true;
        }
    }
    return false;
}

void Scheduler::admin(AdminAction a, const std::string& id, std::function<void(AdminResult)> done) {
    if (!queue::isValidQueueId(id)) return done({id, "not-found", "not a queue ID"});
    Key k = keyOf(id);
    auto it = entries_.find(k);
    if (it != entries_.end() && (it->second.running || it->second.busy)) {
        // Never alongside a delivery (or another action) of the same message.
        waiting_[k].push_back([this, a, id, done] { admin(a, id, done); });
        return;
    }
    auto& e = entries_[k];
    due_.erase({e.due, k});
    e.busy = true;
    if (a == AdminAction::Bounce) return MessageDelivery::bouncer(*this, id, done)->start();
    adminDisk(a, id, std::move(done));
}

// Hold, release, requeue, delete, flush: read the state, change it, write
// it (fsync'd) on a worker; index the message again on the loop.
void Scheduler::adminDisk(AdminAction a, const std::string& id,
                          std::function<void(AdminResult)> done) {
    struct Out {
        AdminResult r;
        bool removed = false;
        int64_t due = 0;
    };
    auto out = std::make_shared<Out>();
    out->r.id = id;
    workers_.run(
        [this, a, id, out] {
            auto m = spool_.load(id);
            if (!m) {
                bool gone = m.error().kind == ErrorKind::Permanent;
                out->r.result = gone ? "not-found" : "error";
                out->r.detail = gone ? "no such message (delivered or removed)" : m.error().message;
                out->removed = gone;
                return;
            }
            int64_t now = nowSeconds();
            auto status = m->status;
            size_t changed = 0;
            for (auto& st : status) {
                switch (a) {
                    case AdminAction::Hold:
                        if (st.state == RcptState::Pending || st.state == RcptState::Deferred) {
                            st.state = RcptState::Held;
                            ++changed;
                        }
                        break;
                    case AdminAction::Release:
                        if (st.state == RcptState::Held) {
                            // Back to what it was, with its retry time (as
                            // postsuper -H): tried before, it waits for that
                            // time or a flush; never tried, it goes now.
                            st.state = st.attempts > 0 ? RcptState::Deferred : RcptState::Pending;
                            ++changed;
                        }
                        break;
                    case AdminAction::Requeue:
                        // Retry now, and the backoff starts again from retry_initial.
                        if (st.state == RcptState::Deferred) {
                            st.nextAttempt = now;
                            st.attempts = 0;
                            ++changed;
                        }
                        break;
                    case AdminAction::Flush:
                        if (st.state == RcptState::Pending || st.state == RcptState::Deferred)
                            ++changed;
                        break;
                    case AdminAction::Delete:
                    case AdminAction::Bounce:
                        ++changed;
                        break;
                }
            }
            Status st = okStatus();
            if (a == AdminAction::Delete) {
                st = spool_.remove(id, /*durable=*/true);
                out->removed = st.ok();
            } else if (changed > 0 && a != AdminAction::Flush) {
                st = spool_.writeStatus(id, status);
            }
            if (!st) {
                out->r.result = "error";
                out->r.detail = st.error().message;
                out->due = dueOf(m->status, now);
                return;
            }
            out->due = dueOf(status, now);
            if (changed == 0) {
                out->r.result = "unchanged";
                out->r.detail = a == AdminAction::Release   ? "no recipient on hold"
                                : a == AdminAction::Requeue ? "no deferred recipient"
                                                            : "no recipient waiting for delivery";
                return;
            }
            out->r.result = "done";
            out->r.detail = std::to_string(changed) + " recipient(s)";
            if (a == AdminAction::Delete) out->r.detail = "deleted";
        },
        [this, a, out, done] {
            bool flushed = a == AdminAction::Flush && out->r.result == "done";
            if (out->r.result == "done" || out->r.result == "error") {
                logEvent(
                    std::string("operator-") + toString(a),
                    {{"qid", out->r.id}, {"result", out->r.result}, {"detail", out->r.detail}});
            }
            adminFinished(out->r.id, out->removed, flushed ? 0 : out->due, flushed);
            done(out->r);
        });
}

void Scheduler::adminFinished(const std::string& id, bool removed, int64_t nextDue, bool force) {
    Key k = keyOf(id);
    auto it = entries_.find(k);
    if (it != entries_.end()) {
        it->second.busy = false;
        if (removed || (nextDue == 0 && !force)) {
            entries_.erase(it);
        } else {
            schedule(id, nextDue);
            entries_[k].force = force;
        }
    }
    kick();
    runWaiting(k);
}

void Scheduler::runWaiting(Key k) {
    auto w = waiting_.find(k);
    if (w == waiting_.end()) return;
    auto next = std::move(w->second.front());
    w->second.pop_front();
    if (w->second.empty()) waiting_.erase(w);
    next();  // it marks the message busy again; the rest wait for it
}

}  // namespace danerelay::relay
