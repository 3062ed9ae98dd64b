// smtp_session.h — one inbound SMTP connection: an explicit state machine.
//
// States: ProxyHeader (a proxy_protocol listener: the load balancer's
// header, read within 10 s (or command_timeout) without a byte past it;
// nothing is sent before it names the client, and from then on that client
// is the one relay_networks, session limits, logs and Received: see) →
// TlsHandshake (implicit TLS, or after STARTTLS) → Command; Command →
// Data (after 354) → Waiting (group commit in flight) → Command; Command →
// AuthResponse (SASL exchange) → Waiting (hash check off the loop) → Command.
// Closing: the last reply is being flushed (at most command_timeout for a
// peer that does not read). Input is not read while Waiting, so a pipelining
// client cannot make us buffer without bound; nor while more than 64 KiB of
// replies wait for a peer that does not read them (backpressure): reading
// and processing resume once the output drains, input already buffered first.
// A session that is done hands itself back to the server, whose Dispatcher
// destroys it once the current callback has returned. Every time it reads
// (Received: date, arrival, deadlines) comes from the Dispatcher's clock.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/event.h"
#include "common/unique_fd.h"
#include "queue/envelope.h"
#include "relay/inbound/proxy_protocol.h"
#include "relay/inbound/smtp_parser.h"
#include "tls/session.h"

namespace danerelay::queue {
struct NewMessage;
}

namespace danerelay::relay {

class SmtpServer;
struct ListenerConfig;

class SmtpSession : public std::enable_shared_from_this<SmtpSession> {
  public:
    // counted: the server counted the peer in its limits at accept (every
    // listener but a proxied one).
    SmtpSession(SmtpServer& server, UniqueFd fd, const sockaddr_storage& peer,
                const ListenerConfig& listener, uint64_t id, bool counted = true);
    ~SmtpSession();
    void start();
    const std::string& client() const { return client_; }
    const sockaddr_storage& peer() const { return peer_; }
    uint64_t id() const { return id_; }
    // Counted in the server's per-client and per-network limits (a proxied
    // session only once its header named the client).
    bool counted() const { return counted_; }

  private:
    enum class State {
        ProxyHeader,
        TlsHandshake,
        Command,
        AuthResponse,
        Data,
        Waiting,
        Closing,
        Closed
    };
    enum class AuthStep { None, PlainResponse, LoginUser, LoginPassword };

    // I/O
    void onReadable();
    // ProxyHeader: peek, take the header bytes only, and once it is whole
    // admit the client it names (proxyDone) or close with a log line.
    void readProxyHeader();
    void proxyFailed(const std::string& why);
    void proxyDone(const ProxyHeader& h);
    // The greeting (or implicit TLS), once the client is known.
    void begin();
    void onWritable();
    void readInput();
    void pauseReading();
    void resumeReading();
    void pump();
    void flush();
    void reply(int code, const std::string& text);
    void reply(const Reply& r) { reply(r.code, r.text); }
    void replyMulti(int code, const std::vector<std::string>& lines);
    void closeAfterReply(int code, const std::string& text);
    void finish(const char* why);
    void startTls();
    void continueHandshake();
    // command_timeout: the deadline for the next complete command line
    // (idle time and the line itself; bytes do not move it), armed when a
    // line is taken, a Waiting answer is sent, a TLS handshake starts (the
    // whole handshake) or ends, and when closing (to flush the last reply).
    void resetIdleTimer();
    // DATA: `bytes` more arrived; the deadline moves on by bytes/kMinDataRate
    // seconds, at most to command_timeout from now.
    void creditDataBytes(size_t bytes);
    // command_timeout or session_timeout fired. Waiting: remembered, acted on
    // once the answer is sent (closeIfExpired). TLS handshake: closed with
    // nothing sent. Otherwise 421 4.4.2 and close.
    void onTimeout(const char* which);
    const char* stateName() const;
    // Waiting for the committer or the hashing pool: no input is read and
    // the idle timer is off (the client waits for us). stopWaiting() goes
    // back to Command and starts a new command_timeout.
    void startWaiting();
    void stopWaiting();
    // After a Waiting answer was sent: if session_timeout fired meanwhile,
    // 421 and close now (true).
    bool closeIfExpired();

    // protocol
    void process();
    // The next command (or SASL response) line out of in_, its line ending
    // removed. A line over its cap is never buffered: it is dropped as it
    // comes and answered once its end is seen (Dropped; Closing if that
    // answer ended the session). NeedMore: no complete line yet.
    enum class LineStep { Line, Dropped, NeedMore, Closing };
    LineStep takeLine(std::string* line);
    // A line over its cap was dropped: 500, and if it was a SASL response
    // the exchange ends (back to Command). True if the session is closing.
    bool lineTooLong();
    void handleLine(std::string_view line);
    void handleCommand(const Command& c);
    void cmdEhlo(const Command& c, bool extended);
    void cmdStartTls(const Command& c);
    void cmdAuth(const Command& c);
    void cmdMail(const Command& c);
    void cmdRcpt(const Command& c);
    void cmdData(const Command& c);
    void authResponse(std::string_view line);
    void checkPassword(std::string user, std::string password);
    // DATA's end marker came: refused (DataReader's verdict, a mail loop)
    // or handed to the committer.
    void finishData();
    void refuseData(const Reply& refusal);
    void refuseLoop(size_t hops);
    void commitMessage();
    // The message as it goes to the spool: envelope completed, arrival now
    // (the Dispatcher's clock), our Received: field in front.
    queue::NewMessage takeMessage();
    // The commit's answer for a session still Waiting for it. Scheduling
    // and the accept log line happen before, in the completion, whether or
    // not the session still exists.
    void onCommitted(const std::string& id, const Status& st);
    void resetTransaction();
    bool protocolError();
    std::string receivedHeader(const std::string& id, int64_t when) const;
    bool mayRelay() const;

    SmtpServer& server_;
    UniqueFd fd_;
    sockaddr_storage peer_;
    const ListenerConfig& listener_;
    uint64_t id_;
    std::string client_;
    bool counted_;
    std::optional<ProxyHeaderReader> proxy_;
    std::string via_;  // the load balancer's address, once its header is taken
    State state_ = State::Command;
    Event readEv_, writeEv_, idleTimer_, sessionTimer_;
    // When idleTimer_ fires (Command, Data, handshake), on the Dispatcher's
    // clock (monotonic).
    std::chrono::steady_clock::time_point deadline_{};

    std::unique_ptr<tls::Session> tls_;
    std::string tlsDescription_;
    bool startTlsAfterFlush_ = false;

    std::string in_, out_;
    bool discardingLongLine_ = false;
    bool peerClosed_ = false;
    bool readPaused_ = false;  // backpressure: output over kMaxPendingOutput
    unsigned errors_ = 0;
    bool expired_ = false;  // session_timeout fired while Waiting

    std::string helo_;
    bool esmtp_ = false;
    std::string authUser_;
    AuthStep authStep_ = AuthStep::None;
    std::string authLoginUser_;

    bool inTransaction_ = false;
    queue::Envelope env_;
    std::optional<DataReader> data_;
    unsigned accepted_ = 0;
};

}  // namespace danerelay::relay
