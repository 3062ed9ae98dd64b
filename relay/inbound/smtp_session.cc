#include "relay/inbound/smtp_session.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/dispatcher.h"
#include "relay/inbound/smtp_server.h"
#include "relay/runtime/base64.h"
#include "relay/runtime/connection.h"
#include "relay/runtime/log.h"
#include "relay/runtime/mail_date.h"
#include "relay/runtime/net_address.h"

namespace danerelay::relay {

namespace {
constexpr size_t kReadChunk = 16384;
constexpr size_t kMaxInputBuffered = 64 * 1024;
// Backpressure: while this much output waits for a peer that does not read,
// no more input is read or processed (pipelined EHLOs would otherwise turn a
// small input into an unbounded pile of replies).
constexpr size_t kMaxPendingOutput = 64 * 1024;
constexpr size_t kMaxSaslLine = 12288;
// DATA progress rule (Postfix's smtpd_min_data_rate): each byte of DATA
// moves the deadline on by 1/kMinDataRate s, but never past command_timeout
// from now. A client sending at least this fast is never cut off; a slower
// one is, after command_timeout / (1 - rate / kMinDataRate).
constexpr size_t kMinDataRate = 500;  // bytes per second
// A load balancer writes its PROXY header with the connection's first
// packet; one that has not within this (or command_timeout, if shorter) is
// not a balancer we want holding a session slot.
constexpr unsigned kProxyHeaderTimeout = 10;  // seconds

bool hasControlChars(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return (c < 0x20 && c != '\t') || c == 0x7f;
    });
}
// Which refusal a DataReader's problem counts as.
InboundMetrics::Refusal dataRefusal(DataReader::Problem p) {
    using R = InboundMetrics::Refusal;
    switch (p) {
        case DataReader::Problem::TooBig:
            return R::TooBig;
        case DataReader::Problem::BareLineEnding:
            return R::Smuggling;
        default:
            return R::BadData;
    }
}
}  // namespace

SmtpSession::SmtpSession(SmtpServer& server, UniqueFd fd, const sockaddr_storage& peer,
                         const ListenerConfig& listener, uint64_t id, bool counted)
    : server_(server),
      fd_(std::move(fd)),
      peer_(peer),
      listener_(listener),
      id_(id),
      client_(addressToString(peer)),
      counted_(counted),
      readEv_(server.ctx_.base, fd_.get(), EV_READ | EV_PERSIST, [this](short) { onReadable(); }),
      writeEv_(server.ctx_.base, fd_.get(), EV_WRITE, [this](short) { onWritable(); }),
      idleTimer_(server.ctx_.base, -1, 0, [this](short) { onTimeout("command_timeout"); }),
      sessionTimer_(server.ctx_.base, -1, 0, [this](short) { onTimeout("session_timeout"); }) {}

SmtpSession::~SmtpSession() = default;

void SmtpSession::start() {
    const auto& cfg = *server_.ctx_.config;
    readEv_.add();
    sessionTimer_.addSeconds(cfg.limits.sessionTimeout);
    if (listener_.proxy != ProxyProtocol::None) {
        state_ = State::ProxyHeader;
        proxy_.emplace(listener_.proxy);
        idleTimer_.addSeconds(std::min(kProxyHeaderTimeout, cfg.limits.commandTimeout));
        return;
    }
    begin();
}

void SmtpSession::begin() {
    std::string session = std::to_string(id_);
    if (via_.empty()) {
        logEvent("connect",
                 {{"client", client_}, {"listener", listener_.text}, {"session", session}});
    } else {
        // via: the load balancer whose PROXY header named the client.
        logEvent("connect", {{"client", client_},
                             {"via", via_},
                             {"listener", listener_.text},
                             {"session", session}});
    }
    state_ = State::Command;
    resetIdleTimer();
    if (listener_.tls == ListenerTls::Implicit) {
        startTls();
    } else {
        reply(220, server_.ctx_.config->hostname + " ESMTP danerelay");
    }
}

void SmtpSession::readProxyHeader() {
    char buf[kProxyMaxHeader];
    // Peek, then take only what the reader says is header: the bytes after
    // it (the first SMTP command, or the TLS ClientHello that GnuTLS reads
    // straight off the socket) stay where the next reader finds them.
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_PEEK);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        return proxyFailed(std::string("reading the PROXY header: ") + std::strerror(errno));
    }
    if (n == 0) return proxyFailed("connection closed before a complete PROXY header");
    size_t take = proxy_->offer(std::string_view(buf, static_cast<size_t>(n)));
    if (take > 0 && ::recv(fd_.get(), buf, take, 0) != static_cast<ssize_t>(take)) {
        return proxyFailed("the socket gave back fewer bytes than it showed");
    }
    const ProxyParse& r = proxy_->result();
    if (r.step == ProxyParse::Step::Invalid) return proxyFailed(r.error);
    if (r.step == ProxyParse::Step::Done) proxyDone(r.header);
}

void SmtpSession::proxyFailed(const std::string& why) {
    // Nothing is sent: the peer is a balancer relaying to a client that
    // has had no greeting, and a header we could not read leaves no SMTP
    // stream to answer in.
    logEvent("proxy-refused", {{"peer", client_}, {"listener", listener_.text}, {"reason", why}});
    finish("bad or missing PROXY header");
}

void SmtpSession::proxyDone(const ProxyHeader& h) {
    via_ = client_;
    if (h.hasAddress) {
        peer_ = h.source;
        client_ = addressToString(peer_);
    }
    proxy_.reset();
    if (const char* refuse = server_.admitProxied(*this)) {
        logEvent("reject", {{"client", client_}, {"via", via_}, {"reason", refuse}});
        if (listener_.tls == ListenerTls::Implicit) return finish(refuse);
        state_ = State::Command;
        closeAfterReply(421, "4.7.0 " + server_.ctx_.config->hostname + " Error: " + refuse);
        return;
    }
    counted_ = true;
    begin();
}

void SmtpSession::resetIdleTimer() {
    unsigned t = server_.ctx_.config->limits.commandTimeout;
    deadline_ = server_.dispatcher().clock().monotonic() + std::chrono::seconds(t);
    idleTimer_.addSeconds(t);
}

void SmtpSession::creditDataBytes(size_t bytes) {
    auto now = server_.dispatcher().clock().monotonic();
    auto cap = now + std::chrono::seconds(server_.ctx_.config->limits.commandTimeout);
    deadline_ =
        std::min(cap, deadline_ + std::chrono::microseconds(static_cast<int64_t>(bytes) * 1000000 /
                                                            static_cast<int64_t>(kMinDataRate)));
    auto left = std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - now).count());
    timeval tv{static_cast<time_t>(left / 1000000), static_cast<suseconds_t>(left % 1000000)};
    idleTimer_.add(&tv);
}

void SmtpSession::onTimeout(const char* which) {
    if (state_ == State::Closed) return;
    if (state_ == State::Closing) return finish("timeout flushing last reply");
    if (state_ == State::ProxyHeader) return proxyFailed("no complete PROXY header in time");
    logEvent("timeout", {{"client", client_}, {"after", which}, {"state", stateName()}});
    if (state_ == State::Waiting) {
        // The idle timer is off while Waiting; the session timer is not. The
        // answer (250 or 452) still goes out first: closing now would leave
        // the client without it and retrying a message we may have accepted.
        expired_ = true;
        return;
    }
    if (state_ == State::TlsHandshake) {
        // Nothing in cleartext: on the implicit-TLS port the client expects
        // TLS records only, and mid-handshake a plaintext reply is garbage.
        return finish("timeout in TLS handshake");
    }
    bool session = std::strcmp(which, "session_timeout") == 0;
    closeAfterReply(
        421, "4.4.2 " + server_.ctx_.config->hostname +
                 (session ? " Error: session time limit exceeded" : " Error: timeout exceeded"));
}

const char* SmtpSession::stateName() const {
    switch (state_) {
        case State::ProxyHeader:
            return "proxy-header";
        case State::TlsHandshake:
            return "tls-handshake";
        case State::Command:
            return "command";
        case State::AuthResponse:
            return "auth";
        case State::Data:
            return "data";
        case State::Waiting:
            return "waiting";
        case State::Closing:
            return "closing";
        case State::Closed:
            return "closed";
    }
    return "?";
}

void SmtpSession::startWaiting() {
    state_ = State::Waiting;
    readEv_.del();     // nothing more is read until the answer comes
    idleTimer_.del();  // the client waits for us, not we for it
}

void SmtpSession::stopWaiting() {
    state_ = State::Command;
    resetIdleTimer();
}

bool SmtpSession::closeIfExpired() {
    if (!expired_ || state_ == State::Closed || state_ == State::Closing) return false;
    closeAfterReply(
        421, "4.4.2 " + server_.ctx_.config->hostname + " Error: session time limit exceeded");
    return true;
}

// ---------------------------------------------------------------- I/O

void SmtpSession::onReadable() {
    if (state_ == State::ProxyHeader) {
        readProxyHeader();
        return;
    }
    if (state_ == State::TlsHandshake) {
        continueHandshake();
        return;
    }
    pump();
}

void SmtpSession::pump() {
    // GnuTLS may hold decrypted records that the socket will never signal.
    do {
        readInput();
        process();
    } while (tls_ && tls_->pending() > 0 && !readPaused_ &&
             (state_ == State::Command || state_ == State::AuthResponse || state_ == State::Data));
}

void SmtpSession::onWritable() {
    if (state_ == State::TlsHandshake && !startTlsAfterFlush_) {
        continueHandshake();
        return;
    }
    flush();
    if (readPaused_ && out_.size() < kMaxPendingOutput && state_ != State::Closed) resumeReading();
}

void SmtpSession::pauseReading() {
    // Idempotent: Waiting's completion may have re-added the event meanwhile.
    readPaused_ = true;
    readEv_.del();
}

void SmtpSession::resumeReading() {
    readPaused_ = false;
    // Waiting re-adds the read event itself when its answer comes.
    if (state_ != State::Command && state_ != State::AuthResponse && state_ != State::Data) return;
    readEv_.add();
    // What was read before the pause (and what GnuTLS holds) has no socket
    // event to announce it: process it now.
    pump();
}

void SmtpSession::readInput() {
    if (state_ == State::Closed || state_ == State::Closing || readPaused_) return;
    char buf[kReadChunk];
    while (in_.size() < kMaxInputBuffered) {
        auto r = readOnce(fd_.get(), tls_.get(), buf, sizeof buf);
        if (r.outcome == IoOutcome::TlsError) {
            logEvent("error", {{"client", client_}, {"reason", r.error}});
            finish("tls error");
            return;
        }
        if (r.outcome == IoOutcome::SocketError) {
            finish(r.error.c_str());
            return;
        }
        if (r.outcome == IoOutcome::Eof) {
            peerClosed_ = true;
            break;
        }
        if (r.outcome == IoOutcome::WouldBlock) break;
        size_t n = r.bytes;
        in_.append(buf, n);
        // Bytes do not reset command_timeout (a client trickling one byte at
        // a time would hold its slot for session_timeout); in DATA they buy
        // time at kMinDataRate.
        if (state_ == State::Data) creditDataBytes(n);
    }
}

void SmtpSession::reply(int code, const std::string& text) {
    if (state_ == State::Closed) return;
    out_ += std::to_string(code);
    out_ += ' ';
    out_ += text;
    out_ += "\r\n";
    flush();
}

void SmtpSession::replyMulti(int code, const std::vector<std::string>& lines) {
    for (size_t i = 0; i < lines.size(); ++i) {
        out_ += std::to_string(code);
        out_ += i + 1 < lines.size() ? '-' : ' ';
        out_ += lines[i];
        out_ += "\r\n";
    }
    flush();
}

void SmtpSession::closeAfterReply(int code, const std::string& text) {
    if (state_ == State::Closed) return;
    reply(code, text);
    if (state_ == State::Closed) return;
    state_ = State::Closing;
    resetIdleTimer();  // a peer that never reads this reply is dropped then
    flush();
}

void SmtpSession::flush() {
    if (tls_ && state_ != State::TlsHandshake) {
        auto r = tls_->drain(out_);
        if (!r) {
            finish("tls write error");
            return;
        }
        if (*r != tls::IoState::Done) writeEv_.add();
    }
    if ((!tls_ || state_ == State::TlsHandshake) && state_ != State::Closed) {
        auto w = flushPlain(fd_.get(), out_);
        if (w.outcome == IoOutcome::WouldBlock) {
            writeEv_.add();
            return;
        }
        if (w.outcome == IoOutcome::SocketError) {
            finish(w.error.c_str());
            return;
        }
    }
    if (!out_.empty()) return;
    if (state_ == State::Closing) {
        finish("closed");
    } else if (startTlsAfterFlush_) {
        startTlsAfterFlush_ = false;
        continueHandshake();
    }
}

void SmtpSession::finish(const char* why) {
    if (state_ == State::Closed) return;
    state_ = State::Closed;
    readEv_.del();
    writeEv_.del();
    idleTimer_.del();
    sessionTimer_.del();
    if (tls_ && std::strcmp(why, "closed") == 0) tls_->bye();
    using T = InboundMetrics::SessionTls;
    server_.metrics().session(tlsDescription_.empty()                  ? T::None
                              : listener_.tls == ListenerTls::Implicit ? T::Implicit
                                                                       : T::StartTls);
    // Logged before the close: by the time the peer sees the connection end,
    // the log says why (what an operator, or a test, reads next).
    logEvent("disconnect", {{"client", client_},
                            {"session", std::to_string(id_)},
                            {"accepted", std::to_string(accepted_)},
                            {"reason", why}});
    fd_.reset();
    server_.release(id_, client_);
}

// ---------------------------------------------------------------- TLS

void SmtpSession::startTls() {
    auto s = tls::Session::server(fd_.get(), server_.ctx_.tlsCredentials);
    if (!s) {
        logEvent("error", {{"client", client_}, {"reason", s.error().message}});
        finish("tls setup failed");
        return;
    }
    tls_ = std::move(*s);
    state_ = State::TlsHandshake;
    resetIdleTimer();  // the whole handshake within command_timeout, bytes or not
    if (out_.empty()) {
        continueHandshake();
    } else {
        startTlsAfterFlush_ = true;  // the 220 goes out in plaintext first
        flush();
    }
}

void SmtpSession::continueHandshake() {
    auto r = tls_->handshake();
    if (!r) {
        logEvent("tls-failed", {{"client", client_}, {"reason", r.error().message}});
        server_.metrics().handshakeFailures.inc();
        finish("tls handshake failed");
        return;
    }
    if (*r == tls::IoState::NeedWrite) {
        writeEv_.add();
        return;
    }
    if (*r == tls::IoState::NeedRead) return;  // the persistent read event calls again
    tlsDescription_ = tls_->description();
    logEvent("tls", {{"client", client_}, {"tls", tlsDescription_}});
    // RFC 3207 4.2: forget everything learned before the handshake.
    helo_.clear();
    esmtp_ = false;
    authUser_.clear();
    resetTransaction();
    state_ = State::Command;
    resetIdleTimer();
    if (listener_.tls == ListenerTls::Implicit) {
        reply(220, server_.ctx_.config->hostname + " ESMTP danerelay");
    }
    // Data the client sent after its handshake may already sit inside GnuTLS.
    pump();
}

// ---------------------------------------------------------------- protocol

bool SmtpSession::protocolError() {
    if (++errors_ >= server_.ctx_.config->limits.maxErrors) {
        logEvent("reject", {{"client", client_}, {"reason", "too many errors"}});
        closeAfterReply(421, "4.7.0 " + server_.ctx_.config->hostname + " Error: too many errors");
        return true;
    }
    return false;
}

void SmtpSession::process() {
    while (state_ == State::Command || state_ == State::AuthResponse || state_ == State::Data) {
        if (out_.size() >= kMaxPendingOutput) {
            pauseReading();  // resumed by onWritable() once the peer reads
            break;
        }
        if (state_ == State::Data) {
            size_t used = data_->feed(in_);
            in_.erase(0, used);
            if (!data_->done()) break;
            finishData();
            continue;
        }
        std::string line;
        auto step = takeLine(&line);
        if (step == LineStep::NeedMore) break;
        if (step == LineStep::Closing) return;
        if (step == LineStep::Dropped) continue;
        resetIdleTimer();  // the next command's command_timeout starts now
        handleLine(line);
    }
    if (peerClosed_ && !readPaused_ && state_ != State::Closed && state_ != State::Waiting) {
        finish(state_ == State::Data ? "lost connection in DATA" : "lost connection");
    }
}

SmtpSession::LineStep SmtpSession::takeLine(std::string* line) {
    auto lf = in_.find('\n');
    size_t cap = state_ == State::AuthResponse ? kMaxSaslLine : kMaxCommandLine;
    if (discardingLongLine_) {
        if (lf == std::string::npos) {
            in_.clear();
            return LineStep::NeedMore;
        }
        in_.erase(0, lf + 1);
        discardingLongLine_ = false;
        return lineTooLong() ? LineStep::Closing : LineStep::Dropped;
    }
    if (lf == std::string::npos) {
        if (in_.size() >= cap) {
            discardingLongLine_ = true;  // drop it as it comes, never buffer it
            in_.clear();
        }
        return LineStep::NeedMore;
    }
    if (lf + 1 > cap) {
        in_.erase(0, lf + 1);
        return lineTooLong() ? LineStep::Closing : LineStep::Dropped;
    }
    *line = in_.substr(0, lf);
    in_.erase(0, lf + 1);
    if (!line->empty() && line->back() == '\r') line->pop_back();
    return LineStep::Line;
}

bool SmtpSession::lineTooLong() {
    if (state_ == State::AuthResponse) {
        // RFC 4954 6. The exchange is over: the next line is a command
        // again, never taken as a SASL response.
        authStep_ = AuthStep::None;
        authLoginUser_.clear();
        state_ = State::Command;
        logEvent("auth", {{"client", client_}, {"result", "aborted: response too long"}});
        reply(500, "5.5.6 Authentication Exchange line is too long");
    } else {
        reply(500, "5.5.2 Error: line too long");
    }
    return protocolError();
}

void SmtpSession::handleLine(std::string_view line) {
    if (line.find('\0') != std::string_view::npos || line.find('\r') != std::string_view::npos) {
        reply(500, "5.5.2 Error: invalid character in command");
        protocolError();
        return;
    }
    if (state_ == State::AuthResponse) {
        authResponse(line);
        return;
    }
    handleCommand(parseCommand(line));
}

void SmtpSession::handleCommand(const Command& c) {
    const auto& v = c.verb;
    if (v == "EHLO") return cmdEhlo(c, true);
    if (v == "HELO") return cmdEhlo(c, false);
    if (v == "STARTTLS") return cmdStartTls(c);
    if (v == "AUTH") return cmdAuth(c);
    if (v == "MAIL") return cmdMail(c);
    if (v == "RCPT") return cmdRcpt(c);
    if (v == "DATA") return cmdData(c);
    if (v == "RSET") {
        resetTransaction();
        return reply(250, "2.0.0 Ok");
    }
    if (v == "NOOP") return reply(250, "2.0.0 Ok");
    if (v == "VRFY") return reply(252, "2.0.0 Cannot VRFY user; try RCPT");
    if (v == "HELP") return reply(214, "2.0.0 See RFC 5321");
    if (v == "QUIT") return closeAfterReply(221, "2.0.0 Bye");
    reply(502, "5.5.2 Error: command not recognized");
    protocolError();
}

void SmtpSession::cmdEhlo(const Command& c, bool extended) {
    if (!isValidHeloArg(c.arg)) {
        reply(501, "5.5.4 Syntax: " + std::string(extended ? "EHLO" : "HELO") + " hostname");
        protocolError();
        return;
    }
    resetTransaction();
    helo_ = c.arg;
    esmtp_ = extended;
    const auto& cfg = *server_.ctx_.config;
    if (!extended) return reply(250, cfg.hostname);
    std::vector<std::string> lines = {cfg.hostname, "PIPELINING",
                                      "SIZE " + std::to_string(cfg.limits.maxMessageSize)};
    if (server_.ctx_.tlsCredentials && !tls_) lines.push_back("STARTTLS");
    if (server_.ctx_.credentials && tls_ && authUser_.empty()) lines.push_back("AUTH PLAIN LOGIN");
    for (const char* ext : {"ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8"}) {
        lines.emplace_back(ext);
    }
    if (tls_) lines.emplace_back("REQUIRETLS");  // RFC 8689 2: only over TLS
    replyMulti(250, lines);
}

void SmtpSession::cmdStartTls(const Command& c) {
    if (!server_.ctx_.tlsCredentials) return reply(502, "5.5.1 Error: STARTTLS not available");
    if (tls_) return reply(503, "5.5.1 Error: TLS already active");
    if (!c.arg.empty()) return reply(501, "5.5.4 Syntax: STARTTLS");
    reply(220, "2.0.0 Ready to start TLS");
    // CVE-2011-0411: whatever the client pipelined behind STARTTLS was sent in
    // plaintext and must not be acted upon after the handshake.
    if (!in_.empty()) {
        logEvent("discard", {{"client", client_},
                             {"reason", "data pipelined after STARTTLS"},
                             {"bytes", std::to_string(in_.size())}});
    }
    in_.clear();
    startTls();
}

void SmtpSession::cmdAuth(const Command& c) {
    if (!server_.ctx_.credentials) return reply(502, "5.5.1 Error: authentication not enabled");
    if (!tls_)
        return reply(538, "5.7.11 Encryption required for requested authentication mechanism");
    if (helo_.empty() || !esmtp_) return reply(503, "5.5.1 Error: send EHLO first");
    if (!authUser_.empty()) return reply(503, "5.5.1 Error: already authenticated");
    if (inTransaction_) return reply(503, "5.5.1 Error: MAIL transaction in progress");
    auto sp = c.arg.find(' ');
    std::string mech = parseCommand(c.arg.substr(0, sp)).verb;
    std::string initial = sp == std::string::npos ? "" : c.arg.substr(sp + 1);
    if (mech == "PLAIN") {
        authStep_ = AuthStep::PlainResponse;
        state_ = State::AuthResponse;
        if (initial.empty()) return reply(334, "");
        return authResponse(initial == "=" ? "" : initial);
    }
    if (mech == "LOGIN") {
        state_ = State::AuthResponse;
        if (initial.empty()) {
            authStep_ = AuthStep::LoginUser;
            return reply(334, base64Encode("Username:"));
        }
        authStep_ = AuthStep::LoginUser;
        return authResponse(initial);
    }
    reply(504, "5.5.4 Error: unsupported authentication mechanism");
    protocolError();
}

void SmtpSession::authResponse(std::string_view line) {
    auto fail = [this](int code, const std::string& text) {
        authStep_ = AuthStep::None;
        state_ = State::Command;
        reply(code, text);
        protocolError();
    };
    if (line == "*") return fail(501, "5.7.0 Authentication aborted");
    auto decoded = base64Decode(line);
    if (!decoded) return fail(501, "5.5.2 Cannot decode response");
    switch (authStep_) {
        case AuthStep::PlainResponse: {
            std::string user, pass;
            if (!decodeSaslPlain(*decoded, &user, &pass)) {
                return fail(501, "5.5.2 Malformed PLAIN response");
            }
            return checkPassword(std::move(user), std::move(pass));
        }
        case AuthStep::LoginUser:
            if (decoded->empty() || hasControlChars(*decoded)) {
                return fail(501, "5.5.2 Malformed user name");
            }
            authLoginUser_ = *decoded;
            authStep_ = AuthStep::LoginPassword;
            return reply(334, base64Encode("Password:"));
        case AuthStep::LoginPassword:
            return checkPassword(authLoginUser_, *decoded);
        case AuthStep::None:
            break;
    }
    fail(503, "5.5.1 Error: no authentication in progress");
}

void SmtpSession::checkPassword(std::string user, std::string password) {
    authStep_ = AuthStep::None;
    auto ok = std::make_shared<bool>(false);
    const Credentials* creds = server_.ctx_.credentials;
    std::weak_ptr<SmtpSession> weak = weak_from_this();
    WorkerPool* pool = server_.ctx_.authWorkers ? server_.ctx_.authWorkers : server_.ctx_.workers;
    bool queued = pool->tryRun(
        [ok, creds, user, password = std::move(password)] { *ok = creds->verify(user, password); },
        [weak, ok, user] {
            auto self = weak.lock();
            if (!self || self->state_ != State::Waiting) return;
            self->stopWaiting();
            self->readEv_.add();
            if (*ok) {
                self->authUser_ = user;
                logEvent("auth", {{"client", self->client_}, {"user", user}, {"result", "ok"}});
                self->server_.metrics().authResult(InboundMetrics::Auth::Success);
                self->reply(235, "2.7.0 Authentication successful");
            } else {
                logEvent("auth", {{"client", self->client_}, {"user", user}, {"result", "failed"}});
                self->server_.metrics().authResult(InboundMetrics::Auth::Failure);
                self->reply(535, "5.7.8 Error: authentication failed");
                if (self->protocolError()) return;
            }
            if (self->closeIfExpired()) return;
            self->pump();
        });
    if (!queued) {
        // Too many checks already wait for the hashing thread.
        state_ = State::Command;
        logEvent("auth", {{"client", client_}, {"user", user}, {"result", "busy"}});
        server_.metrics().authResult(InboundMetrics::Auth::Busy);
        return reply(454, "4.7.0 Temporary authentication failure");
    }
    startWaiting();  // nothing more is read until the check is answered
}

void SmtpSession::cmdMail(const Command& c) {
    if (helo_.empty()) return reply(503, "5.5.1 Error: send HELO/EHLO first");
    if (inTransaction_) return reply(503, "5.5.1 Error: nested MAIL command");
    PathArg p;
    Reply err;
    if (!parsePathArg(c.arg, "FROM:", true, true, &p, &err)) {
        reply(err);
        protocolError();
        return;
    }
    auto params = parseMailParams(p, esmtp_, server_.ctx_.config->limits.maxMessageSize);
    if (!params) {
        if (params.refusal().code == 552) server_.metrics().refuse(InboundMetrics::Refusal::TooBig);
        return reply(params.refusal());
    }
    // RFC 8689 4.1: the promise of TLS all the way starts with this hop.
    if (params->requireTls && !tls_)
        return reply(530, "5.7.10 REQUIRETLS needs a TLS session: STARTTLS first");
    env_ = queue::Envelope{};
    env_.sender = p.address;
    env_.envid = std::move(params->envid);
    env_.ret = params->ret;
    env_.smtputf8 = params->smtputf8;
    env_.eightBitMime = params->eightBitMime;
    env_.requireTls = params->requireTls;
    inTransaction_ = true;
    reply(250, "2.1.0 Ok");
}

bool SmtpSession::mayRelay() const {
    return !authUser_.empty() || anyContains(server_.ctx_.config->relayNetworks, peer_);
}

void SmtpSession::cmdRcpt(const Command& c) {
    if (!inTransaction_) return reply(503, "5.5.1 Error: need MAIL command");
    if (env_.recipients.size() >= server_.ctx_.config->limits.maxRecipients) {
        server_.metrics().refuse(InboundMetrics::Refusal::TooManyRecipients);
        return reply(452, "4.5.3 Error: too many recipients");
    }
    PathArg p;
    Reply err;
    if (!parsePathArg(c.arg, "TO:", false, env_.smtputf8, &p, &err)) {
        reply(err);
        protocolError();
        return;
    }
    auto params = parseRcptParams(p.params, esmtp_);
    if (!params) return reply(params.refusal());
    if (!mayRelay()) {
        logEvent("reject", {{"client", client_},
                            {"from", env_.sender},
                            {"to", p.address},
                            {"reason", "relay access denied"}});
        server_.metrics().refuse(InboundMetrics::Refusal::RelayDenied);
        reply(554, "5.7.1 <" + p.address + ">: Relay access denied");
        protocolError();
        return;
    }
    env_.recipients.push_back({p.address, std::move(params->orcpt), params->notify});
    reply(250, "2.1.5 Ok");
}

void SmtpSession::cmdData(const Command& c) {
    if (!inTransaction_) return reply(503, "5.5.1 Error: need MAIL command");
    if (env_.recipients.empty()) return reply(554, "5.5.1 Error: no valid recipients");
    if (!c.arg.empty()) return reply(501, "5.5.4 Syntax: DATA");
    data_.emplace(server_.ctx_.config->limits.maxMessageSize);
    state_ = State::Data;
    reply(354, "End data with <CR><LF>.<CR><LF>");
}

std::string SmtpSession::receivedHeader(const std::string& id, int64_t when) const {
    const auto& cfg = *server_.ctx_.config;
    std::string proto = env_.smtputf8 ? "UTF8SMTP" : (esmtp_ ? "ESMTP" : "SMTP");
    if (tls_) proto += "S";
    if (!authUser_.empty()) proto += "A";
    std::string h = "Received: from " + helo_ + " ([" + client_ + "])\r\n";
    if (!tlsDescription_.empty()) h += "\t(using " + tlsDescription_ + ")\r\n";
    h += "\tby " + cfg.hostname + " (danerelay) with " + proto + " id " + id;
    if (env_.recipients.size() == 1 && !hasControlChars(env_.recipients[0].address)) {
        h += "\r\n\tfor <" + env_.recipients[0].address + ">";
    }
    h += "; " + rfc5322Date(static_cast<std::time_t>(when)) + "\r\n";
    return h;
}

void SmtpSession::finishData() {
    auto refusal = data_->refusal();
    if (refusal.code != 0) return refuseData(refusal);
    // A mail loop: refused before it costs a commit. Ours would be one more.
    HeaderFacts header = scanHeaderSection(data_->content());
    size_t hops = header.received;
    if (hops >= server_.ctx_.config->limits.maxHops) return refuseLoop(hops);
    env_.tlsRequiredNo = header.tlsRequiredNo;
    commitMessage();
}

void SmtpSession::refuseData(const Reply& refusal) {
    logEvent("reject", {{"client", client_},
                        {"from", env_.sender},
                        {"nrcpt", std::to_string(env_.recipients.size())},
                        {"reason", refusal.text}});
    server_.metrics().refuse(dataRefusal(data_->problem()));
    data_.reset();
    resetTransaction();
    state_ = State::Command;
    resetIdleTimer();
    reply(refusal);
    protocolError();
}

void SmtpSession::refuseLoop(size_t hops) {
    logEvent("reject", {{"client", client_},
                        {"from", env_.sender},
                        {"nrcpt", std::to_string(env_.recipients.size())},
                        {"hops", std::to_string(hops)},
                        {"reason", "too many hops"}});
    server_.metrics().refuse(InboundMetrics::Refusal::Loop);
    resetTransaction();
    state_ = State::Command;
    resetIdleTimer();
    reply(554, "5.4.6 Too many hops");
}

queue::NewMessage SmtpSession::takeMessage() {
    queue::NewMessage m;
    m.id = server_.ctx_.ids->next();
    env_.arrival = server_.dispatcher().now();
    env_.clientAddress = client_;
    env_.heloName = helo_;
    env_.authUser = authUser_;
    env_.tls = tlsDescription_;
    m.content = receivedHeader(m.id, env_.arrival);
    m.content += data_->content();
    data_.reset();
    m.envelope = env_;
    return m;
}

void SmtpSession::commitMessage() {
    queue::NewMessage m = takeMessage();
    // What the completion needs, by value: it runs whatever became of this
    // session (the client may be gone, the session destroyed), and a message
    // on disk must reach the scheduler in every case.
    struct Facts {
        std::string id, client, sender, nrcpt, size, tls, auth, requireTls;
        std::shared_ptr<InboundMetrics> metrics;
        uint64_t bytes = 0;
    };
    Facts f{m.id,
            client_,
            env_.sender,
            std::to_string(env_.recipients.size()),
            std::to_string(m.content.size()),
            tlsDescription_.empty() ? "none" : tlsDescription_,
            authUser_,
            env_.requireTls ? "yes" : "no",
            server_.metrics_,
            m.content.size()};
    startWaiting();
    std::weak_ptr<SmtpSession> weak = weak_from_this();
    const auto& ctx = server_.ctx_;
    ctx.committer->submit(
        std::move(m), [weak, f = std::move(f), onQueued = ctx.onQueued](Status st) {
            auto self = weak.lock();
            bool present = self && self->state_ == State::Waiting;
            if (st) {
                logEvent("accept", {{"qid", f.id},
                                    {"client", f.client},
                                    {"from", f.sender},
                                    {"nrcpt", f.nrcpt},
                                    {"size", f.size},
                                    {"tls", f.tls},
                                    {"auth", f.auth},
                                    {"requiretls", f.requireTls},
                                    {"session", present ? "open" : "gone"}});
                f.metrics->accepted.inc();
                f.metrics->bytesAccepted.inc(f.bytes);
                if (onQueued) onQueued(f.id);
            } else {
                f.metrics->refuse(InboundMetrics::Refusal::Storage);
                logEvent("error", {{"qid", f.id},
                                   {"client", f.client},
                                   {"from", f.sender},
                                   {"reason", st.error().message},
                                   {"reply", present ? "452 4.3.1" : "none: session gone"}});
            }
            if (present) self->onCommitted(f.id, st);
        });
}

void SmtpSession::onCommitted(const std::string& id, const Status& st) {
    stopWaiting();
    if (st) {
        ++accepted_;
        reply(250, "2.0.0 Ok: queued as " + id);
    } else {
        reply(452, "4.3.1 Insufficient system storage");
    }
    resetTransaction();
    if (state_ == State::Closed || closeIfExpired()) return;
    readEv_.add();
    pump();
}

void SmtpSession::resetTransaction() {
    inTransaction_ = false;
    env_ = queue::Envelope{};
    data_.reset();
}

}  // namespace danerelay::relay
