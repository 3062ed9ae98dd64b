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

#include "common/result.h"
#include "queue/envelope.h"
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
};

struct ClientResult {
    bool sessionOk = false;  // the transaction ran; rcpts[] holds each recipient's reply
    bool permanent = false;  // !sessionOk and the reply (or our own check) was a 5xx
    // The mail transaction began (greeting, EHLO, TLS and AUTH behind us):
    // a 5xx before it never bounces (judgeAttempt()).
    bool transactionStarted = false;
    // The handshake's peer checks (DANE / PKIX / pins / min version) passed.
    bool peerVerified = false;
    std::string error;  // !sessionOk: what went wrong, e.g. "connect: Connection refused"
    std::string tls;    // "TLS1.3/AES-256-GCM", empty without TLS
    std::string dane;   // DANE result: "matched 3 1 1 ab…", an RFC 8460 name, or ""
    bool reusedConnection = false;
    struct Rcpt {
        int code = 0;
        std::string reply;
    };
    std::vector<Rcpt> rcpts;  // parallel to rcptIndexes
};

class SmtpClient;

// The DATA payload for content (CRLF lines, unstuffed): dot-stuffed, ending
// in CRLF "." CRLF. A bare CR or a bare LF anywhere is refused (Permanent):
// passed on, it could end DATA early at a receiver that takes <LF>.<LF> or
// <CR>.<CR> as the end (SMTP smuggling). Exposed for tests.
Result<std::string> encodeBody(std::string_view content);

// Connection reuse: after a completed transaction a session may wait here,
// idle, for the next message to the same host, address, TLS mode, SNI,
// reference names, whole TLSA RRset and policy (RFC 7672: never across a
// change of policy); the key is a SHA-256 over all of them (cacheKey()). A
// session is parked only when nothing is pending in either direction: all
// of its output sent, no input unread (in our buffer, inside GnuTLS or in
// the socket) and no reply half assembled; a server that answers "." before
// the body is out, or says more than its reply, loses the connection. An
// idle session is closed after idleSeconds, or when the server speaks or
// hangs up.
class ConnectionCache {
  public:
    ConnectionCache(unsigned idleSeconds, size_t maxIdle)
        : idleSeconds_(idleSeconds), maxIdle_(maxIdle) {}
    std::shared_ptr<SmtpClient> take(const std::string& key);
    bool put(const std::string& key, std::shared_ptr<SmtpClient> c);
    void remove(const SmtpClient* c);
    unsigned idleSeconds() const { return idleSeconds_; }
    size_t size() const { return idle_.size(); }
    uint64_t reused() const { return reused_; }

  private:
    unsigned idleSeconds_;
    size_t maxIdle_;
    std::vector<std::pair<std::string, std::shared_ptr<SmtpClient>>> idle_;
    uint64_t reused_ = 0;
};

class SmtpClient : public std::enable_shared_from_this<SmtpClient> {
  public:
    using Callback = std::function<void(const ClientResult&)>;
    // cache may be null (no reuse).
    static void run(event_base* base, std::shared_ptr<tls::ClientCredentials> creds,
                    ClientRequest req, Callback done, ConnectionCache* cache = nullptr);
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
    SmtpClient(event_base* base, std::shared_ptr<tls::ClientCredentials> creds, ClientRequest req,
               Callback done);
    void start();
    void onEvent(short what);
    void onConnected();
    void readSome();
    void parseReplies();
    void onReply(int code, const std::string& text);
    void send(const std::string& data);
    void flush();
    void watch(short events);  // (re)register the socket event
    void arm(unsigned seconds);
    void startHandshake();
    void continueHandshake();
    void afterEhlo(const std::string& lines, bool secondTime);
    void sendEnvelope();
    void afterTlsEhlo();  // AUTH if configured, then the envelope
    bool checkPeer();     // DANE / PKIX / pins / version after the handshake
    void sendRcpt(size_t i);
    void sendBody();
    void fail(const std::string& error, bool permanent = false);
    void finish();
    void transactionDone();
    bool quiescent() const;  // nothing pending in either direction (see transactionDone())
    void reuse(ClientRequest req, Callback done);
    std::string mailFromLine() const;
    std::string rcptLine(size_t i) const;

    event_base* base_;
    std::shared_ptr<tls::ClientCredentials> creds_;
    ClientRequest req_;
    Callback done_;
    ClientResult result_;
    State state_ = State::Connecting;
    int fd_ = -1;
    event* ev_ = nullptr;
    event* timer_ = nullptr;
    std::unique_ptr<tls::Session> tls_;
    std::string in_, out_;
    ReplyAssembler replies_;
    // what the server advertised (after the last EHLO)
    bool esmtp_ = false, pipelining_ = false, starttls_ = false, dsn_ = false, smtputf8_ = false,
         eightBitMime_ = false, size_ = false;
    uint64_t sizeLimit_ = 0;
    size_t nextRcpt_ = 0;  // replies to RCPT received so far
    size_t rcptAccepted_ = 0;
    bool finished_ = false;
    std::shared_ptr<SmtpClient> selfRef_;  // alive while in flight
    ConnectionCache* cache_ = nullptr;
    std::string cacheKey_;
    bool reused_ = false;
};

}  // namespace danerelay::relay
