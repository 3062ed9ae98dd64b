// smtp_session.h — one inbound SMTP connection: an explicit state machine.
//
// States: TlsHandshake (implicit TLS, or after STARTTLS) → Command; Command →
// Data (after 354) → Waiting (group commit in flight) → Command; Command →
// AuthResponse (SASL exchange) → Waiting (hash check off the loop) → Command.
// Closing: the last reply is being flushed (at most command_timeout for a
// peer that does not read). Input is not read while Waiting, so a pipelining
// client cannot make us buffer without bound; nor while more than 64 KiB of
// replies wait for a peer that does not read them (backpressure): reading
// and processing resume once the output drains, input already buffered first.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <optional>
#include <string>

#include "queue/envelope.h"
#include "relay/event_loop.h"
#include "relay/smtp_parser.h"
#include "tls/session.h"

namespace danerelay::relay {

class SmtpServer;
struct ListenerConfig;

class SmtpSession : public std::enable_shared_from_this<SmtpSession> {
  public:
    SmtpSession(SmtpServer& server, int fd, const sockaddr_storage& peer,
                const ListenerConfig& listener, uint64_t id);
    ~SmtpSession();
    void start();
    const std::string& client() const { return client_; }

  private:
    enum class State { TlsHandshake, Command, AuthResponse, Data, Waiting, Closing, Closed };
    enum class AuthStep { None, PlainResponse, LoginUser, LoginPassword };

    // I/O
    void onReadable();
    void onWritable();
    void readInput();
    void pauseReading();
    void resumeReading();
    void pump();
    void flush();
    void reply(int code, const std::string& text);
    void replyMulti(int code, const std::vector<std::string>& lines);
    void closeAfterReply(int code, const std::string& text);
    void finish(const char* why);
    void startTls();
    void continueHandshake();
    void resetIdleTimer();

    // protocol
    void process();
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
    void finishData();
    void onCommitted(const std::string& id, const Status& st, uint64_t size, size_t nrcpt);
    void resetTransaction();
    bool protocolError();
    std::string receivedHeader(const std::string& id) const;
    bool mayRelay() const;

    SmtpServer& server_;
    int fd_;
    sockaddr_storage peer_;
    const ListenerConfig& listener_;
    uint64_t id_;
    std::string client_;
    State state_ = State::Command;
    Event readEv_, writeEv_, idleTimer_, sessionTimer_;

    std::unique_ptr<tls::Session> tls_;
    std::string tlsDescription_;
    bool startTlsAfterFlush_ = false;

    std::string in_, out_;
    bool discardingLongLine_ = false;
    bool peerClosed_ = false;
    bool readPaused_ = false;  // backpressure: output over kMaxPendingOutput
    unsigned errors_ = 0;

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
