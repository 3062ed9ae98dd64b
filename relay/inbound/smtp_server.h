// smtp_server.h — the inbound ESMTP server that internal hosts submit to.
//
// Listeners are plain-with-STARTTLS (25/587 style) or implicit TLS (465, RFC
// 8314). Relaying is allowed to clients in relay_networks or authenticated
// with AUTH PLAIN/LOGIN over TLS; anyone else gets 554 5.7.1 at RCPT.
// "250 Ok: queued as ID" is sent only after the spool's group commit reported
// the message durable; a failed write or fsync gets 452 4.3.1.
//
// Hostile input: command lines over 512 octets are refused without being
// buffered; DATA is read by DataReader (only CRLF.CRLF ends it; bare CR/LF,
// NUL, long lines refuse the message); input pipelined after STARTTLS is
// discarded and all state reset after the handshake; per-command and
// per-session timeouts (a command line must be complete within
// command_timeout whatever trickles in; DATA must keep up 500 bytes/s; the
// TLS handshake has command_timeout in all; on the implicit-TLS port nothing
// is ever sent in cleartext, not even a 421); caps on recipients, errors and
// sessions (in all, per client address, and per /24 or /64 for clients
// outside relay_networks, so that one neighbourhood cannot take every slot;
// and the last limits.reserved_sessions slots only for relay_networks);
// messages carrying max_hops Received: fields are refused (554 5.4.6); no input is
// read while 64 KiB of replies wait for a client that does not read them;
// password hashing on a pool of its own whose queue is bounded (454 beyond).
// A proxy_protocol listener takes connections only from its proxy_from
// peers (anyone else is closed with a log line, nothing sent); such a
// session holds one of max_sessions from accept, but is counted per client
// and per network (and against reserved_sessions) only once its PROXY
// header named the client, under that client's address: the balancer's
// own address would put every client in one bucket.
// A session that fails is closed alone; the server and other sessions go on.
// Out of descriptors (EMFILE/ENFILE), the listeners pause 100 ms to 1 s
// instead of spinning on a backlog they cannot take.
// A finished session is destroyed through the Dispatcher (deferredDelete),
// after the callback in which it finished has returned.
// Draining (danectl drain): stopAccepting() takes every listener out of
// LISTEN (connections are refused, so a load balancer's check fails and new
// sessions go elsewhere) while sessions in progress finish; the sockets stay
// bound, so resumeAccepting() needs no privilege to listen again.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/dispatcher.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "queue/queue_id.h"
#include "relay/inbound/auth.h"
#include "relay/runtime/committer.h"
#include "relay/runtime/config.h"
#include "relay/runtime/metrics_handles.h"
#include "tls/session.h"

namespace danerelay::relay {

class SmtpSession;

// Password checks waiting for the hashing pool beyond this are refused
// (454 4.7.0) at once: an unauthenticated flood cannot queue without end.
constexpr size_t kMaxQueuedAuth = 32;

struct ServerContext {
    const Config* config = nullptr;
    event_base* base = nullptr;
    // The loop's Dispatcher (deferred deletes, the clock). Null: the server
    // makes one of its own on base, with the system clock.
    Dispatcher* dispatcher = nullptr;
    WorkerPool* workers = nullptr;
    // Password hashing, apart from spool work; made with a queue bound
    // (kMaxQueuedAuth). Null: workers.
    WorkerPool* authWorkers = nullptr;
    Committer* committer = nullptr;
    queue::QueueIdGenerator* ids = nullptr;
    std::shared_ptr<tls::ServerCredentials> tlsCredentials;  // null: no TLS
    const Credentials* credentials = nullptr;                // null: no AUTH
    std::function<void(const std::string& queueId)> onQueued;
    // Where sessions count (relay/runtime/metrics_handles.h). Null: in a
    // registry of the server's own, which nobody scrapes.
    InboundMetrics* metrics = nullptr;
};

// The network a client is counted in for limits.max_sessions_per_network:
// "192.0.2.0/24" for IPv4 (and IPv4-mapped IPv6), "2001:db8:1:2::/64" for IPv6.
std::string clientNetwork(const sockaddr_storage& peer);

class SmtpServer {
  public:
    explicit SmtpServer(ServerContext ctx);
    ~SmtpServer();
    // Serves on the listening sockets checkStart() bound (relay/startup.h),
    // one per configured listener, in order; binds none itself.
    Status listen(std::vector<UniqueFd> bound);
    size_t sessionCount() const { return sessions_.size(); }
    const ServerContext& context() const { return ctx_; }
    Dispatcher& dispatcher() const { return *dispatcher_; }
    InboundMetrics& metrics() const { return *metrics_; }

  private:
    friend class SmtpSession;
    struct Listener {
        ListenerConfig config;
        UniqueFd fd;
        std::unique_ptr<Event> ev;
    };
    void onAccept(Listener& l);
    // One accepted connection: refused with 421 (not on an implicit-TLS
    // listener) if a session limit is reached, else a session is started.
    void admit(Listener& l, UniqueFd fd, const sockaddr_storage& peer);
    // Which session limit a new client would exceed, with `open` other
    // sessions; null if none.
    const char* overLimit(const sockaddr_storage& peer, const std::string& client,
                          const std::string& network, size_t open);
    // A proxied session whose header named its client (s.peer()): the
    // limits a direct client meets at accept, then counted; null if
    // admitted, else the limit it would exceed (nothing counted).
    const char* admitProxied(const SmtpSession& s);
    void count(const std::string& client, const std::string& network);
    // Called by a session that is done; it is destroyed later, not from
    // under its own callback.
    void release(uint64_t sessionId, const std::string& client);
    void uncount(const std::string& client, const std::string& network);
    // The network key a session is counted under ("" if not counted:
    // relay_networks clients).
    std::string countedNetwork(const sockaddr_storage& peer) const;
    // accept() failed for want of descriptors or memory (EMFILE, ENFILE,
    // ENOBUFS, ENOMEM): stop listening for a while instead of spinning on a
    // backlog we cannot take; logged once per episode (accept-paused, then
    // accept-resumed at the next successful accept).
    void pauseAccepting(int err);
    static constexpr unsigned kAcceptBackoffMinMs = 100;
    static constexpr unsigned kAcceptBackoffMaxMs = 1000;

    ServerContext ctx_;
    // Declared before the sessions: a Dispatcher of our own outlives them.
    std::unique_ptr<Dispatcher> ownDispatcher_;
    Dispatcher* dispatcher_;
    std::shared_ptr<InboundMetrics> metrics_;  // commit completions may hold it longer
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::map<uint64_t, std::shared_ptr<SmtpSession>> sessions_;
    std::map<std::string, unsigned> perClient_;
    std::map<std::string, unsigned> perNetwork_;
    Event acceptResume_;
    unsigned acceptBackoffMs_ = 0;  // 0: accepting normally
    uint64_t nextSessionId_ = 1;

  public:
    // Drain: stop listening (new connections get RST: "connection refused";
    // the backlog not yet accepted is reset too); open sessions go on.
    // shutdown(SHUT_RD) on a listening socket leaves it bound in state CLOSE
    // on Linux (as HAProxy pauses a listener), so listen() again resumes it.
    // Both are idempotent; each logs one line (drain, resume) when it acts.
    Status stopAccepting();
    Status resumeAccepting();
    bool accepting() const { return !draining_; }

  private:
    bool draining_ = false;
};

}  // namespace danerelay::relay
