#include "relay/outbound/message_delivery.h"

#include <algorithm>

#include "queue/filter.h"
#include "queue/utf8.h"
#include "relay/outbound/destination.h"
#include "relay/runtime/log.h"

namespace danerelay::relay {

using queue::domainOf;
using queue::RcptState;

std::string attemptReply(std::string_view reply) {
    return std::string(queue::utf8Prefix(reply, kMaxAttemptReply));
}

struct MessageDelivery::HostAttempt {
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

MessageDelivery::MessageDelivery(DeliveryHost& host, std::string id, bool force)
    : host_(host), s_(host.services()), id_(std::move(id)), force_(force) {}

std::shared_ptr<MessageDelivery> MessageDelivery::bouncer(
    DeliveryHost& host, std::string id, std::function<void(queue::AdminResult)> done) {
    auto d = std::make_shared<MessageDelivery>(host, std::move(id));
    d->bounceDone_ = std::move(done);
    return d;
}

void MessageDelivery::start() {
    auto self = shared_from_this();
    auto loaded = std::make_shared<std::pair<Result<queue::StoredMessage>, Result<std::string>>>(
        Error::internal("not loaded"), Error::internal("not loaded"));
    s_.workers.run(
        [self, loaded] {
            loaded->first = self->s_.spool.load(self->id_);
            if (loaded->first) loaded->second = self->s_.spool.loadContent(self->id_);
        },
        [self, loaded] { self->onLoaded(std::move(loaded->first), std::move(loaded->second)); });
}

void MessageDelivery::onLoaded(Result<queue::StoredMessage> m, Result<std::string> content) {
    if (!m || !content) {
        const auto& e = !m ? m.error() : content.error();
        bool gone = e.kind == ErrorKind::Permanent;
        if (bounceDone_) {
            host_.adminFinished(id_, gone, 0, false);
            return bounceDone_({id_, gone ? "not-found" : "error", e.message});
        }
        return host_.loadFailed(id_, e);
    }
    host_.loaded(id_);
    msg_ = std::move(*m);
    content_ = std::make_shared<const std::string>(std::move(*content));
    if (bounceDone_) return bounceAll();
    int64_t t = now();
    std::map<std::string, std::vector<size_t>> byDomain;
    for (size_t i = 0; i < msg_.status.size(); ++i) {
        const auto& st = msg_.status[i];
        bool due = st.state == RcptState::Pending ||
                   (st.state == RcptState::Deferred && (force_ || st.nextAttempt <= t));
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
void MessageDelivery::startDomains() {
    if (startingDomains_) return;  // the loop below picks it up
    startingDomains_ = true;
    auto self = shared_from_this();
    while (activeDomains_ < s_.cfg.limits.maxConnectionsPerMessage && !waitingDomains_.empty()) {
        auto [domain, idx] = std::move(waitingDomains_.front());
        waitingDomains_.pop_front();
        ++activeDomains_;
        host_.acquireDomain(domain, [self, domain, idx] {
            self->host_.acquireConnection(
                [self, domain, idx] { self->deliverDomain(domain, idx); });
        });
    }
    startingDomains_ = false;
}

void MessageDelivery::bounceAll() {
    size_t n = 0;
    AttemptLog where;
    where.event = "operator-bounce";
    for (size_t i = 0; i < msg_.status.size(); ++i) {
        auto st = msg_.status[i].state;
        if (st != RcptState::Pending && st != RcptState::Deferred && st != RcptState::Held)
            continue;
        record(i, {RcptState::Bounced, "5.0.0", "message bounced by the operator", ""}, where);
        ++n;
    }
    if (n == 0) {
        host_.adminFinished(id_, false, queue::dueOf(msg_.status, now()), false);
        return bounceDone_({id_, "unchanged", "no recipient left to bounce"});
    }
    complete();
}

void MessageDelivery::deliverDomain(const std::string& domain, const std::vector<size_t>& idx) {
    auto self = shared_from_this();
    policy::Decision pol;
    if (auto p = host_.policy()) {
        pol = p->lookup(domain, now());
    } else {
        pol.effective.destination = "(built-in default)";
    }
    for (const auto& w : pol.warnings) logEvent("policy-warning", {{"qid", id_}, {"detail", w}});
    lowerForTlsRequiredNo(domain, pol);
    const auto& eff = pol.effective;
    policyText_[domain] =
        std::string(policy::toString(eff.level)) + (eff.file.empty() ? "" : "@" + eff.where());
    destinationLabel_[domain] = destinationLabel(eff.file.empty() ? "" : eff.destination);
    // MTA-STS is looked up after the MX lookup, and only where some host is
    // not DANE's (DANE decides where it applies: a DANE destination costs no
    // TXT query). A first contact waits for the policy fetch.
    bool stsWanted = s_.mtaSts && eff.mtaSts && !eff.nextHop && eff.level != policy::Level::None &&
                     eff.level != policy::Level::May;
    auto onInfo = [self, domain, idx, pol, stsWanted](const DestinationInfo& info) {
        if (!stsWanted || !needsSts(info)) return self->onPlan(domain, idx, pol, info, nullptr);
        self->s_.mtaSts->lookup(domain, [self, domain, idx, pol, info](const StsView& v) {
            self->onPlan(domain, idx, pol, info, &v);
        });
    };
    if (eff.nextHop) {
        DestinationLookup::runNextHop(s_.resolver, domain, eff.nextHop->host, eff.nextHop->literal,
                                      eff.nextHop->port, onInfo);
    } else {
        DestinationLookup::run(s_.resolver, domain, s_.cfg.delivery.maxHostsPerAttempt, onInfo);
    }
}

// RFC 8689 5: "TLS-Required: No" asks for delivery despite TLS policy
// failures. Where the operator allows it (delivery.allow_tls_required_no)
// the destination's policy becomes "may" for this message (opportunistic
// TLS, no DANE or MTA-STS enforcement), logged; never for a REQUIRETLS
// message (RFC 8689 4.1: the header is then ignored), never below "none".
void MessageDelivery::lowerForTlsRequiredNo(const std::string& domain, policy::Decision& pol) {
    const auto& env = msg_.envelope;
    if (!env.tlsRequiredNo || env.requireTls) return;
    auto& e = pol.effective;
    if (!s_.cfg.delivery.allowTlsRequiredNo) {
        logEvent("tls-required-no", {{"qid", id_},
                                     {"domain", domain},
                                     {"action", "ignored"},
                                     {"detail", "delivery.allow_tls_required_no is false"}});
        return;
    }
    if (e.level == policy::Level::None || e.level == policy::Level::May) return;
    logEvent("tls-required-no",
             {{"qid", id_},
              {"domain", domain},
              {"action", "honoured"},
              {"detail", std::string("policy ") + policy::toString(e.level) +
                             " lowered to may for this message (TLS-Required: No)"}});
    e.level = policy::Level::May;
    e.reason = "TLS-Required: No";
    pol.reported.reset();
}

void MessageDelivery::onPlan(const std::string& domain, const std::vector<size_t>& idx,
                             const policy::Decision& pol, const DestinationInfo& info,
                             const StsView* sts) {
    DeliveryPlan p = plan(info, s_.resolver.validating(), true, pol.effective.level,
                          ownAddresses(s_.cfg.listeners, s_.cfg.delivery.port), sts);
    for (const auto& n : p.notes)
        logEvent("addresses-dropped", {{"qid", id_}, {"domain", domain}, {"detail", n}});
    if (pol.reported) report(domain, info, *pol.reported, p, sts);
    if (info.mx.security == dns::Security::Bogus) {
        s_.metrics->tlsResult("dnssec-invalid", destinationLabel_[domain]);
    }
    if (p.action != DeliveryPlan::Action::Deliver) {
        for (size_t i : idx) record(i, {stateOfPlan(p), p.status, p.reason, ""}, {});
        return domainDone(domain);
    }
    auto attempt = std::make_shared<HostAttempt>();
    attempt->plan = std::move(p);
    attempt->rcpts = idx;
    attempt->domain = domain;
    attempt->port = info.nextHop.empty() ? s_.cfg.delivery.port : info.port;
    attempt->policy = pol.effective;
    tryNext(attempt);
}

// A report-only entry: what it would have done, logged; delivery follows
// the effective policy.
void MessageDelivery::report(const std::string& domain, const DestinationInfo& info,
                             const policy::Entry& e, const DeliveryPlan& effective,
                             const StsView* sts) {
    DeliveryPlan strict =
        plan(info, s_.resolver.validating(), false, e.level,
             ownAddresses(s_.cfg.listeners, s_.cfg.delivery.port), e.mtaSts ? sts : nullptr);
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
    logEvent("policy-report", {{"qid", id_},
                               {"domain", domain},
                               {"policy", std::string(policy::toString(e.level)) + "@" + e.where()},
                               {"result", would},
                               {"enforced", toString(effective.action)}});
}

void MessageDelivery::tryNext(std::shared_ptr<HostAttempt> a) {
    auto& hosts = a->plan.hosts;
    while (a->host < hosts.size() &&
           (hosts[a->host].skip || a->address >= hosts[a->host].addresses.size())) {
        if (hosts[a->host].skip) {
            a->lastError = hosts[a->host].name + ": " + hosts[a->host].why;
            a->lastStatus = skippedHostStatus(hosts[a->host]);
        }
        ++a->host;
        a->address = 0;
    }
    if (a->host >= hosts.size() || a->tries >= s_.cfg.delivery.maxHostsPerAttempt * 2) {
        AttemptLog where;
        where.modes = a->lastModes;
        for (size_t i : a->rcpts) {
            record(i, {RcptState::Deferred, a->lastStatus, a->lastError, ""}, where);
        }
        return domainDone(a->domain);
    }
    const HostPlan& h = hosts[a->host];
    ClientRequest req = request(*a, h);
    ++a->tries;
    auto self = shared_from_this();
    AttemptLog where;
    where.mx = h.name;
    where.ip = req.address;
    where.sts = h.sts;
    where.modes = {toString(h.mode), toString(req.mode)};
    TlsMode required = req.mode;
    SmtpClient::run(
        s_.dispatcher, s_.clientCreds, std::move(req),
        [self, a, where, required](const ClientResult& r) {
            self->onSession(a, r, where, required);
        },
        s_.cfg.delivery.connectionReuseTime > 0 ? &s_.connections : nullptr);
}

// The next address of host h, under its plan and the destination's policy.
ClientRequest MessageDelivery::request(HostAttempt& a, const HostPlan& h) {
    ClientRequest req;
    req.mxName = h.name;
    req.address = h.addresses[a.address++];
    req.port = a.port;
    const auto& pe = a.policy;
    req.implicitTls = pe.implicitTls;
    req.authUser = pe.authUser;
    req.authPassword = pe.authPassword;
    req.tlsPins = pe.tlsPins;
    req.minTlsVersion = pe.minTlsVersion;
    req.trustStore = pe.trustStore;
    // PKIX name (policy verify): plan() chose it (the MX host only under a
    // secure MX RRset, else the next-hop domain).
    req.verifyName = h.referenceNames.empty() ? h.name : h.referenceNames.front();
    req.mode = requiredMode(h.mode, pe);
    applyStsToRequest(req, h, pe, s_.mtaSts ? s_.mtaSts->trustStore() : "");
    req.tlsa = h.tlsa;
    req.sni = h.sni;
    req.referenceNames = h.referenceNames;
    req.heloName = s_.cfg.hostname;
    req.envelope = msg_.envelope;
    req.rcptIndexes = a.rcpts;
    req.content = content_;
    req.timeouts = {s_.cfg.delivery.connectTimeout, s_.cfg.delivery.commandTimeout,
                    s_.cfg.delivery.commandTimeout, s_.cfg.delivery.dataTimeout};
    return req;
}

void applyStsToRequest(ClientRequest& req, const HostPlan& h, const policy::Entry& pe,
                       const std::string& stsTrustStore) {
    if (std::string_view(h.sts) == "enforced" && h.mode == TlsMode::Verify) {
        req.stsEnforced = true;
        // The operator's CA for this destination, if named, stays the only one.
        req.trustStore = pe.trustStore.empty() ? stsTrustStore : pe.trustStore;
        req.verifyName = h.name;
    } else if (std::string_view(h.sts) == "testing" && h.stsWould.empty() &&
               req.mode != TlsMode::Verify) {
        req.stsTestName = h.name;
        if (req.mode != TlsMode::Dane && pe.trustStore.empty()) req.trustStore = stsTrustStore;
    }
}

// What the session means is decided by judgeAttempt() (trouble.h), never
// here: this only carries it out.
void MessageDelivery::onSession(std::shared_ptr<HostAttempt> a, const ClientResult& r,
                                const AttemptLog& where, TlsMode required) {
    AttemptJudgement j = judgeAttempt(required, r, a->rcpts.size());
    countSession(*a, r, required);
    const HostPlan& hp = a->plan.hosts[a->host];
    if (std::string_view(hp.sts) == "testing") reportSts(*a, hp, &r);
    AttemptLog log = where;
    log.tls = r.tls;
    log.dane = r.dane;
    if (j.nextHost) {
        // Nothing decided (connection, greeting, EHLO, TLS, AUTH): log it
        // for every recipient, then the next address or host, under that
        // host's own plan. Never a plaintext or unauthenticated retry of
        // this one, and never a bounce.
        for (size_t i : a->rcpts) logAttempt(i, log, j.reason, "retry-next-host");
        a->lastError = where.mx + "[" + where.ip + "]: " + j.reason +
                       (std::string_view(hp.sts) == "enforced"
                            ? " (MTA-STS policy of " + a->domain + ", mode enforce)"
                            : "");
        a->lastStatus = j.status;
        a->lastModes = where.modes;
        return tryNext(a);
    }
    log.conn = !r.sessionOk() ? "-" : r.reusedConnection ? "reused" : "new";
    for (size_t k = 0; k < a->rcpts.size(); ++k) {
        auto& jr = j.rcpts[k];
        record(a->rcpts[k], {jr.state, std::move(jr.status), std::move(jr.text), where.mx}, log);
    }
    domainDone(a->domain);
}

void MessageDelivery::reportSts(const HostAttempt& a, const HostPlan& h, const ClientResult* r) {
    std::string would = h.stsWould;
    if (would.empty() && r && r->stsChecked) would = r->stsWould;
    if (would.empty()) return;
    logEvent("sts-report", {{"qid", id_},
                            {"domain", a.domain},
                            {"mx", h.name},
                            {"mode", "testing"},
                            {"result", "would defer under enforce: " + would}});
    s_.metrics->stsTestingWouldFail.inc();
}

void MessageDelivery::logAttempt(size_t i, const AttemptLog& w, const std::string& reply,
                                 const std::string& outcome) {
    const std::string tls = w.tls.empty() ? "none" : w.tls;
    const std::string dane = w.dane.empty() ? "none" : w.dane;
    tries_[i].push_back({now(), w.mx, w.ip, tls, dane, attemptReply(reply)});
    logEvent(w.event, {{"qid", id_},
                       {"rcpt", msg_.envelope.recipients[i].address},
                       {"mx", w.mx},
                       {"ip", w.ip},
                       {"tls_policy", w.modes.policy},
                       {"tls_required", w.modes.required},
                       {"tls", tls},
                       {"dane", dane},
                       {"sts", w.sts},
                       {"conn", w.conn},
                       {"policy", policyText_[domainOf(msg_.envelope.recipients[i].address)]},
                       {"reply", reply},
                       {"outcome", outcome}});
}

void MessageDelivery::countSession(const HostAttempt& a, const ClientResult& r, TlsMode required) {
    auto& m = *s_.metrics;
    if (r.transactionStarted()) (r.reusedConnection ? m.sessionsReused : m.sessionsNew).inc();
    if (!r.reusedConnection && !r.tls.empty()) {
        (r.failure == ClientResult::Failure::None || r.transactionStarted() ? m.handshakesOk
                                                                            : m.handshakesFailed)
            .inc();
    } else if (r.stage == ClientResult::Stage::Handshake) {
        m.handshakesFailed.inc();
    }
    if (const char* result = tlsReportResult(required, r)) {
        m.tlsResult(result, destinationLabel(a.policy.file.empty() ? "" : a.policy.destination));
    }
}

void MessageDelivery::countSettled(size_t i, queue::RcptState state, int64_t t) {
    if (state != RcptState::Delivered && state != RcptState::Deferred &&
        state != RcptState::Bounced) {
        return;
    }
    const std::string& domain = domainOf(msg_.envelope.recipients[i].address);
    auto d = destinationLabel_.find(domain);
    auto tls = tlsUsed_.find(i);
    s_.metrics->outcome(queue::toString(state), tls == tlsUsed_.end() ? "none" : tls->second,
                        d == destinationLabel_.end() ? "other" : d->second);
    if (state == RcptState::Delivered) {
        s_.metrics->latency.observe(
            static_cast<double>(std::max<int64_t>(0, t - msg_.envelope.arrival)));
    }
}

void MessageDelivery::record(size_t i, RcptOutcome o, const AttemptLog& where) {
    // The TLS the session was held to; "none" without a session, or when
    // opportunistic TLS was not had.
    const std::string& mode = where.modes.required;
    tlsUsed_[i] = mode == "-" || (mode == "opportunistic" && where.tls.empty()) ? "none" : mode;
    AttemptLog w = where;
    if (w.mx.empty()) w.mx = "-";
    if (w.ip.empty()) w.ip = "-";
    logAttempt(i, w,
               o.text.rfind(o.status, 4) != std::string::npos ? o.text : o.status + " " + o.text,
               queue::toString(o.state));
    outcomes_[i] = std::move(o);
}

void MessageDelivery::domainDone(const std::string& domain) {
    host_.releaseConnection();
    host_.releaseDomain(domain);
    --activeDomains_;
    if (--pendingDomains_ == 0) return complete();
    startDomains();
}

// This attempt's tries into each recipient's history, and each outcome
// settled (trouble.h: settle()) into its stored state. Returns the
// recipients given up (for the DSN); nextDue: the earliest retry (0: none).
std::vector<FailedRecipient> MessageDelivery::settleAll(int64_t t, int64_t* nextDue,
                                                        bool* allFinal) {
    std::vector<FailedRecipient> failed;
    *nextDue = 0;
    *allFinal = true;
    for (size_t i = 0; i < msg_.status.size(); ++i) {
        auto& st = msg_.status[i];
        if (auto tr = tries_.find(i); tr != tries_.end()) {
            auto& h = st.history;
            h.insert(h.end(), tr->second.begin(), tr->second.end());
            if (h.size() > queue::RecipientStatus::kMaxHistory)
                h.erase(h.begin(), h.end() - queue::RecipientStatus::kMaxHistory);
        }
        if (auto it = outcomes_.find(i); it != outcomes_.end()) {
            Settled s =
                settle(it->second, ++st.attempts, msg_.envelope.arrival, t, s_.cfg.delivery);
            st.state = s.state;
            st.lastError = std::move(s.lastError);
            if (s.nextAttempt) st.nextAttempt = *s.nextAttempt;
            if (s.dsnStatus) failed.push_back({i, *s.dsnStatus, s.dsnText, it->second.mx});
            countSettled(i, st.state, t);
        }
        if (st.state == RcptState::Pending || st.state == RcptState::Deferred) {
            *allFinal = false;
            int64_t due = st.state == RcptState::Pending ? t : st.nextAttempt;
            *nextDue = *nextDue == 0 ? due : std::min(*nextDue, due);
        } else if (st.state == RcptState::Held) {
            *allFinal = false;
        }
    }
    return failed;
}

// The DSN: only for recipients that asked for one, never to <>.
std::shared_ptr<queue::NewMessage> MessageDelivery::makeDsn(
    const std::vector<FailedRecipient>& given, int64_t t) {
    std::vector<FailedRecipient> failed = given;
    std::erase_if(failed, [&](const FailedRecipient& f) {
        return !wantsFailureDsn(msg_.envelope.recipients[f.index]);
    });
    if (failed.empty() || msg_.envelope.sender.empty()) return nullptr;
    auto dsn = std::make_shared<queue::NewMessage>();
    dsn->id = s_.ids.next();
    dsn->envelope.sender = "";
    dsn->envelope.recipients = {{msg_.envelope.sender, "", queue::kNotifyNone}};
    dsn->envelope.arrival = t;
    dsn->envelope.clientAddress = "127.0.0.1";
    dsn->envelope.heloName = s_.cfg.hostname;
    dsn->content = buildFailureDsn(s_.cfg.hostname, msg_, *content_, failed, t);
    return dsn;
}

void MessageDelivery::complete() {
    int64_t t = now(), nextDue = 0;
    bool allFinal = true;
    auto failed = settleAll(t, &nextDue, &allFinal);
    commit(makeDsn(failed, t), nextDue, allFinal);
}

// The DSN (if any) on disk first, then the original's new state (or its
// removal), then the Scheduler told.
void MessageDelivery::commit(std::shared_ptr<queue::NewMessage> dsn, int64_t nextDue, bool remove) {
    auto self = shared_from_this();
    auto status = msg_.status;
    auto done = [self, remove, nextDue](bool ok) {
        int64_t retry = ok ? nextDue : self->now() + 60;
        if (self->bounceDone_) {
            self->host_.adminFinished(self->id_, ok && remove, retry, false);
            return self->bounceDone_(
                {self->id_, ok ? "done" : "error", ok ? "bounced" : "could not record the bounce"});
        }
        self->host_.finished(self->id_, ok && remove, retry);
    };
    auto writeState = [self, status, remove, done] {
        auto result = std::make_shared<bool>(false);
        self->s_.workers.run(
            [self, status, remove, result] {
                // Every recipient final: the message goes; its last state
                // need not be written first (a crash in between means
                // at worst a second delivery, never a lost one).
                auto st = remove ? self->s_.spool.remove(self->id_)
                                 : self->s_.spool.writeStatus(self->id_, status);
                *result = st.ok();
                if (!st) logEvent("error", {{"qid", self->id_}, {"reason", st.error().message}});
            },
            [done, result] { done(*result); });
    };
    if (!dsn) return writeState();
    // The DSN is on disk before the original's state says "bounced".
    std::string dsnId = dsn->id;
    s_.committer.submit(std::move(*dsn), [self, dsnId, writeState, done](Status st) {
        if (!st) {
            logEvent("error",
                     {{"qid", self->id_}, {"reason", "cannot queue DSN: " + st.error().message}});
            return done(false);  // retry later; nothing was recorded as bounced
        }
        logEvent("bounce",
                 {{"qid", self->id_}, {"dsn_qid", dsnId}, {"to", self->msg_.envelope.sender}});
        self->host_.enqueue(dsnId);
        writeState();
    });
}

}  // namespace danerelay::relay
