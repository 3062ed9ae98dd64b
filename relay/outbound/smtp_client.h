// smtp_client.h — one outbound SMTP session to one address of one MX host,
// as an explicit state machine on the event loop (one enum class State, one
// transition function, onReply()).
//
// EHLO (HELO only when no TLS is required), STARTTLS as the TlsMode demands,
// EHLO again after the handshake with everything advertised before it
// forgotten, and any bytes the server sent ahead of the handshake discarded
// (response injection). DANE mode: the peer chain must pass tls::verifyDane
// or the session ends (QUIT) before any envelope is sent. PIPELINING when
// offered; SIZE, 8BITMIME, SMTPUTF8 (bounce 5.6.7 when the server lacks it),
// DSN parameters passed on when the server offers DSN; dot-stuffing; the
// per-command timeouts of RFC 5321 4.5.3.2. Server replies are hostile
// input: they are assembled, capped and made safe text by relay/smtp_reply.h.
// The body goes out only with CRLF line ends: a bare CR or LF in the content
// fails the session permanently.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/dispatcher.h"
#include "common/event.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "queue/envelope.h"
#include "relay/outbound/client_result.h"
#include "relay/outbound/connection_cache.h"
#include "relay/outbound/delivery.h"
#include "relay/outbound/smtp_reply.h"
#include "tls/dane.h"
#include "tls/session.h"

namespace danerelay::relay {

struct ClientTimeouts {
    unsigned connect = 30;
    unsigned command = 300;    // greeting, EHLO, MAIL, RCPT (RFC 5321: 5 min)
    unsigned dataInit = 120;   // DATA's 354
    unsigned dataFinal = 600;  // the reply to "."
};

struct ClientRequest {
    std::string mxName;
    std::string address;
    uint16_t port = 25;
    TlsMode mode = TlsMode::Opportunistic;
    std::vector<tls::TlsaRecord> tlsa;
    std::string sni;
    std::vector<std::string> referenceNames;
    std::string heloName;
    queue::Envelope envelope;         // sender, DSN parameters, flags
    std::vector<size_t> rcptIndexes;  // which envelope recipients this session carries
    std::shared_ptr<const std::string> content;
    ClientTimeouts timeouts;
    // From the destination's policy:
    bool implicitTls = false;                   // TLS from the first byte (465 style)
    std::string authUser, authPassword;         // AUTH PLAIN, only ever over TLS
    std::vector<std::vector<uint8_t>> tlsPins;  // SHA-256 of acceptable leaf SPKIs
    int minTlsVersion = 0;                      // 12 or 13; 0: TLS 1.2 (the floor)
    std::string trustStore;                     // Verify mode: CA file ("" = system)
    std::string verifyName;                     // Verify mode: the name to match
    // MTA-STS (RFC 8461): Verify mode under an enforce policy (which also
    // meets REQUIRETLS, RFC 8689 4.2.1); stsTestName, under a testing
    // policy: the name PKIX is checked for and reported, never enforced.
    bool stsEnforced = false;
    std::string stsTestName;
};

class SmtpClient;

// The DATA payload for content (CRLF lines, unstuffed): dot-stuffed, ending
// in CRLF "." CRLF. A bare CR or a bare LF anywhere is refused (Permanent):
// passed on, it could end DATA early at a receiver that takes <LF>.<LF> or
// <CR>.<CR> as the end (SMTP smuggling). Exposed for tests.
Result<std::string> encodeBody(std::string_view content);

class SmtpClient : public std::enable_shared_from_this<SmtpClient> {
  public:
    using Callback = std::function<void(const ClientResult&)>;
    // cache may be null (no reuse).
    // On d's loop; the peer's certificates are checked at d's clock's wall
    // time. A finished client is destroyed by d.deferredDelete, never from
    // under its own callback.
    static void run(Dispatcher& d, std::shared_ptr<tls::ClientCredentials> creds, ClientRequest req,
                    Callback done, ConnectionCache* cache = nullptr);
    ~SmtpClient();
    static std::string cacheKey(const ClientRequest& req);

  private:
    enum class State {
        Connecting,
        Greeting,
        Ehlo,
        StartTls,
        Handshake,
        Ehlo2,
        Auth,
        Mail,
        Rcpt,
        Data,
        Body,
        Idle,  // parked in the ConnectionCache after a transaction
        Done
    };
    SmtpClient(Dispatcher& d, std::shared_ptr<tls::ClientCredentials> creds, ClientRequest req,
               Callback done);
    void start();
    void onEvent(short what);
    void onConnected();
    void readSome();
    void parseReplies();
    void onReply(int code, const std::string& text);  // the transition function
    void onStartTlsReply(int code, const std::string& text);
    void onRcptReply(int code, const std::string& text);
    void onDataReply(int code, const std::string& text);
    // Every recipient accepted so far gets this reply (DATA's, or the ".").
    void replyToAccepted(int code, const std::string& text);
    void send(const std::string& data);
    void flush();
    void watch(short events);  // wait for EV_READ and/or EV_WRITE on the socket, nothing else
    void arm(unsigned seconds);
    void startHandshake();
    void continueHandshake();
    void afterEhlo(const std::string& lines, bool secondTime);
    void sendEnvelope();
    void afterTlsEhlo();  // AUTH if configured, then the envelope
    bool checkPeer();     // DANE / PKIX / pins / version after the handshake
    void sendRcpt(size_t i);
    void sendBody();
    // The session ends here: why (kind), what to log (error), and for
    // Failure::Reply the server's code.
    void fail(ClientResult::Failure kind, const std::string& error, int replyCode = 0);
    // The transaction ran: rcpts[] holds the replies.
    void completed();
    static ClientResult::Stage stageOf(State s);
    void finish();
    void transactionDone();
    bool quiescent() const;  // nothing pending in either direction (see transactionDone())
    void reuse(ClientRequest req, Callback done);
    std::string mailFromLine() const;
    std::string rcptLine(size_t i) const;

    Dispatcher& dispatcher_;
    std::shared_ptr<tls::ClientCredentials> creds_;
    ClientRequest req_;
    Callback done_;
    ClientResult result_;
    State state_ = State::Connecting;
    UniqueFd fd_;
    std::unique_ptr<Event> readable_, writable_;  // on fd_, once it exists
    Event timer_;
    std::unique_ptr<tls::Session> tls_;
    std::string in_, out_;
    ReplyAssembler replies_;
    // what the server advertised (after the last EHLO)
    bool esmtp_ = false, pipelining_ = false, starttls_ = false, dsn_ = false, smtputf8_ = false,
         eightBitMime_ = false, size_ = false, requireTls_ = false;
    uint64_t sizeLimit_ = 0;
    size_t nextRcpt_ = 0;  // replies to RCPT received so far
    size_t rcptAccepted_ = 0;
    bool finished_ = false;
    // Alive while in flight; handed to dispatcher_.deferredDelete at the end.
    std::shared_ptr<SmtpClient> selfRef_;
    ConnectionCache* cache_ = nullptr;
    std::string cacheKey_;
    bool reused_ = false;
};

}  // namespace danerelay::relay
