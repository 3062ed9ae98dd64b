// message_delivery.h — one delivery attempt of one queued message: load it
// (on a worker), group its due recipients by domain, and for each domain run
// DestinationLookup → plan() → SMTP sessions, host after host; then record
// every recipient's outcome durably, queue the DSN for what failed, and
// remove the message once every recipient is final. What an outcome means
// (next host, defer, bounce, expiry, backoff) is decided by relay/outbound/
// trouble.h, never here; this carries it out and logs it.
//
// It reaches the Scheduler only through DeliveryHost: the services it uses
// (spool, workers, resolver, ...) and the few calls back (slots, finished).
// It keeps itself alive (shared_from_this) for as long as work is in flight,
// and ends with exactly one of DeliveryHost::finished / adminFinished /
// loadFailed.
#pragma once

#include <event2/event.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/dispatcher.h"
#include "dns/resolver.h"
#include "policy/policy.h"
#include "queue/admin.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/outbound/bounce.h"
#include "relay/outbound/connection_cache.h"
#include "relay/outbound/mta_sts.h"
#include "relay/outbound/smtp_client.h"
#include "relay/outbound/trouble.h"
#include "relay/runtime/committer.h"
#include "relay/runtime/config.h"
#include "relay/runtime/metrics_handles.h"
#include "tls/session.h"

namespace danerelay::relay {

// What a delivery works with; every reference outlives every delivery.
struct DeliveryServices {
    Dispatcher& dispatcher;  // the loop, and the clock
    const Config& cfg;
    queue::Spool& spool;
    WorkerPool& workers;
    Committer& committer;
    dns::Resolver& resolver;
    queue::QueueIdGenerator& ids;
    std::shared_ptr<tls::ClientCredentials> clientCreds;
    ConnectionCache& connections;
    OutboundMetrics* metrics = nullptr;  // set by the Scheduler; never null during a delivery
    MtaSts* mtaSts = nullptr;            // null: MTA-STS off (mta_sts.enabled false)
};

// The MTA-STS part of host h's ClientRequest (request() fills the rest
// first, req.mode and req.trustStore from the destination's policy pe):
// under an enforce policy (h.sts "enforced", mode Verify) PKIX for the MX
// name with stsEnforced, against the trust store the operator named for the
// destination (policy trust_store: a private CA stays the only one
// trusted) or else mta_sts.trust_store (stsTrustStore); under testing, the
// same name checked on the connection and only reported.
void applyStsToRequest(ClientRequest& req, const HostPlan& h, const policy::Entry& pe,
                       const std::string& stsTrustStore);

// The Scheduler as a delivery sees it.
class DeliveryHost {
  public:
    virtual const DeliveryServices& services() const = 0;
    // The per-destination policy now (replaced whole on reload); may be null.
    virtual std::shared_ptr<const policy::PolicySet> policy() const = 0;
    // The message loaded: its count of load failures in a row starts again.
    virtual void loaded(const std::string& id) = 0;
    // The message could not be loaded (see Scheduler::loadFailed).
    virtual void loadFailed(const std::string& id, const Error& e) = 0;
    // The attempt ended: removed, or next due at nextDue (0: never).
    virtual void finished(const std::string& id, bool removed, int64_t nextDue) = 0;
    // An operator's action (bounce) ended.
    virtual void adminFinished(const std::string& id, bool removed, int64_t nextDue,
                               bool force) = 0;
    // A new message (a DSN) is on disk: schedule it now.
    virtual void enqueue(const std::string& id) = 0;
    // The per-destination slot, then the outbound connection slot: start()
    // runs now, or when one frees; each is released once.
    virtual void acquireDomain(const std::string& domain, std::function<void()> start) = 0;
    virtual void releaseDomain(const std::string& domain) = 0;
    virtual void acquireConnection(std::function<void()> start) = 0;
    virtual void releaseConnection() = 0;

  protected:
    ~DeliveryHost() = default;
};

// For the log: the plan's TLS mode for the host, and the mode actually
// enforced on the connection (raised by pins, credentials, ...).
struct TlsModes {
    std::string policy = "-", required = "-";
};

// Where and how one recipient's try went, for its log line and history.
struct AttemptLog {
    std::string mx = "-", ip = "-", tls, dane;
    const char* sts = "none";  // MTA-STS for the host: enforced, testing, none
    TlsModes modes;
    const char* conn = "-";
    const char* event = "delivery";
};

// The reply an attempt record keeps (queue::AttemptRecord::reply): at most
// kMaxAttemptReply bytes, cut between characters, never inside one
// (queue::utf8Prefix).
constexpr size_t kMaxAttemptReply = 512;
std::string attemptReply(std::string_view reply);

class MessageDelivery : public std::enable_shared_from_this<MessageDelivery> {
  public:
    MessageDelivery(DeliveryHost& host, std::string id, bool force = false);
    // Operator's bounce: every recipient not yet final fails now, with a DSN.
    static std::shared_ptr<MessageDelivery> bouncer(DeliveryHost& host, std::string id,
                                                    std::function<void(queue::AdminResult)> done);
    void start();

  private:
    struct HostAttempt;
    void onLoaded(Result<queue::StoredMessage> m, Result<std::string> content);
    void startDomains();
    void bounceAll();
    void deliverDomain(const std::string& domain, const std::vector<size_t>& idx);
    void lowerForTlsRequiredNo(const std::string& domain, policy::Decision& pol);
    void onPlan(const std::string& domain, const std::vector<size_t>& idx,
                const policy::Decision& pol, const DestinationInfo& info, const StsView* sts);
    void report(const std::string& domain, const DestinationInfo& info, const policy::Entry& e,
                const DeliveryPlan& effective, const StsView* sts);
    // MTA-STS testing: what enforce would have refused on this host, logged
    // (event sts-report) and counted; delivery goes on.
    void reportSts(const HostAttempt& a, const HostPlan& h, const ClientResult* r);
    void tryNext(std::shared_ptr<HostAttempt> a);
    ClientRequest request(HostAttempt& a, const HostPlan& h);  // takes the next address
    void onSession(std::shared_ptr<HostAttempt> a, const ClientResult& r, const AttemptLog& where,
                   TlsMode required);
    void logAttempt(size_t i, const AttemptLog& where, const std::string& reply,
                    const std::string& outcome);
    void record(size_t i, RcptOutcome o, const AttemptLog& where);
    void domainDone(const std::string& domain);
    // Every domain has an outcome: make the new state durable, bounce what
    // failed, remove the message when nothing is left to do.
    void complete();
    std::vector<FailedRecipient> settleAll(int64_t now, int64_t* nextDue, bool* allFinal);
    std::shared_ptr<queue::NewMessage> makeDsn(const std::vector<FailedRecipient>& failed,
                                               int64_t now);
    void commit(std::shared_ptr<queue::NewMessage> dsn, int64_t nextDue, bool remove);
    int64_t now() const { return s_.dispatcher.now(); }
    // Metrics: the session's connection, handshake and TLS result; each
    // recipient's settled outcome, under its TLS mode and destination.
    void countSession(const HostAttempt& a, const ClientResult& r, TlsMode required);
    void countSettled(size_t i, queue::RcptState state, int64_t t);

    DeliveryHost& host_;
    const DeliveryServices& s_;
    std::string id_;
    queue::StoredMessage msg_;
    std::shared_ptr<const std::string> content_;
    std::map<size_t, RcptOutcome> outcomes_;
    std::map<size_t, std::vector<queue::AttemptRecord>> tries_;  // this attempt's tries
    std::map<std::string, std::string> policyText_;              // domain → "level@file:line"
    std::map<std::string, std::string> destinationLabel_;        // domain → metrics label
    std::map<size_t, std::string> tlsUsed_;                      // recipient → metrics label
    size_t pendingDomains_ = 0;
    std::deque<std::pair<std::string, std::vector<size_t>>> waitingDomains_;  // not started yet
    unsigned activeDomains_ = 0;
    bool startingDomains_ = false;
    bool force_ = false;
    std::function<void(queue::AdminResult)> bounceDone_;
};

}  // namespace danerelay::relay
