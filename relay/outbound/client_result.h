// client_result.h — what one outbound SMTP session (relay/outbound/
// smtp_client.h) reports: how far it got, what ended it, what TLS and peer
// authentication it had, and each recipient's reply.
//
// Facts only, as enums: the SmtpClient never decides what they mean for a
// recipient (bounce, defer, next host); relay/outbound/trouble.h alone does.
// The text fields (error, tls, dane) are what the logs and the spool show,
// byte for byte; no decision is ever taken by reading them.
#pragma once

#include <string>
#include <vector>

#include "tls/dane.h"

namespace danerelay::relay {

struct ClientResult {
    // The stage the session was in when it ended, in protocol order. Mail and
    // later: the mail transaction began (greeting, EHLO, TLS and AUTH behind
    // us), as it has from the moment the envelope is about to be sent, so our
    // own refusal of the message for this server counts as in it. Done: the
    // transaction ran and rcpts[] holds each recipient's reply.
    enum class Stage {
        Connect,
        Greeting,
        Ehlo,
        StartTls,
        Handshake,
        Auth,
        Mail,
        Rcpt,
        Data,
        Body,
        Done
    };
    // What ended the session before Done (None at Done).
    enum class Failure {
        None,
        Network,                // bad address, socket, connect, send, recv, closed by the peer
        Timeout,                // a per-command timeout (RFC 5321 4.5.3.2)
        Reply,                  // the server refused a command: replyCode says how
        BadReply,               // a reply we cannot take: malformed, over the cap, unexpected
        StarttlsNotSupported,   // TLS required; STARTTLS not offered or refused (RFC 8460)
        Tls,                    // TLS setup, handshake, read or write failed
        DaneFailed,             // no TLSA record authenticated the peer: daneFailure says why
        CertificateNotTrusted,  // PKIX (policy verify) failed (RFC 8460)
        PinMismatch,            // the policy's tls_pins: none matched
        TlsVersionTooLow,       // the policy's min_tls_version
        Refused,                // we refused the message for this server (5.6.7, 5.3.4, 5.6.0)
        RequireTls,             // a REQUIRETLS message (RFC 8689) and this server does not
                                // meet it (not DANE-authenticated, or no REQUIRETLS offered)
    };
    // Which authentication of the peer the session ran (pass or fail).
    enum class PeerCheck { None, Dane, Pkix };

    Stage stage = Stage::Connect;
    Failure failure = Failure::None;
    int replyCode = 0;                                      // Failure::Reply: the server's code
    tls::DaneFailure daneFailure = tls::DaneFailure::None;  // Failure::DaneFailed: RFC 8460 type
    PeerCheck peerCheck = PeerCheck::None;
    // The handshake's peer checks (DANE / PKIX / pins / min version) passed.
    bool peerVerified = false;
    bool reusedConnection = false;

    std::string error;  // failed: what went wrong, e.g. "connect: Connection refused"
    std::string tls;    // "TLS1.3/AES-256-GCM", empty without TLS
    std::string dane;   // for the log: "matched 3 1 1 ab…", "pkix-verified N", an RFC 8460 name
    // MTA-STS testing (ClientRequest::stsTestName): on a new connection,
    // what enforce would have said of the peer's certificate: empty if it
    // would have passed (or nothing was checked), else why not.
    std::string stsWould;
    bool stsChecked = false;
    struct Rcpt {
        int code = 0;
        std::string reply;
    };
    std::vector<Rcpt> rcpts;  // parallel to the request's rcptIndexes

    // The transaction ran: rcpts[] holds the replies.
    bool sessionOk() const { return stage == Stage::Done; }
    bool transactionStarted() const { return stage >= Stage::Mail; }
    // A 5xx reply, or our own permanent refusal.
    bool permanent() const {
        return (failure == Failure::Reply && replyCode >= 500) || failure == Failure::Refused;
    }
};

const char* toString(ClientResult::Stage s);
const char* toString(ClientResult::Failure f);

}  // namespace danerelay::relay
