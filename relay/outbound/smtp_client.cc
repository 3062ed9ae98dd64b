#include "relay/outbound/smtp_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "relay/runtime/base64.h"
#include "relay/runtime/connection.h"
#include "relay/runtime/log.h"
#include "relay/runtime/net_address.h"

namespace danerelay::relay {

using F = ClientResult::Failure;

namespace {
std::string xtextEncode(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (c < 0x21 || c > 0x7e || c == '+' || c == '=') {
            char buf[4];
            std::snprintf(buf, sizeof buf, "+%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

bool has8bit(const std::string& s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}
// Where the first bare CR or bare LF in c is, or npos.
size_t bareLineEnding(std::string_view c) {
    for (size_t i = 0; i < c.size(); ++i) {
        if (c[i] == '\r' && (i + 1 == c.size() || c[i + 1] != '\n')) return i;
        if (c[i] == '\n' && (i == 0 || c[i - 1] != '\r')) return i;
    }
    return std::string_view::npos;
}

Error bareLineEndingError(std::string_view c, size_t at) {
    std::string why = "5.6.0 the message has a bare ";
    why += c[at] == '\r' ? "CR" : "LF";
    why += " at byte ";
    why += std::to_string(at);
    why += "; lines must end with CRLF";
    return Error::permanent(std::move(why));
}
}  // namespace

// Everything that authenticated the peer, and everything else the session
// was set up with, serialised without ambiguity (each field length-prefixed),
// then SHA-256. Sets (TLSA records, reference names, pins) are sorted, so
// the same RRset in another order is the same key; the whole of every TLSA
// record counts, never a prefix.
std::string SmtpClient::cacheKey(const ClientRequest& req) {
    std::string buf = "danerelay-conn-v2";
    auto field = [&buf](const std::string& v) {
        uint64_t n = v.size();
        for (int i = 0; i < 8; ++i) buf += static_cast<char>((n >> (8 * i)) & 0xff);
        buf += v;
    };
    auto set = [&field](std::vector<std::string> items) {
        std::sort(items.begin(), items.end());
        items.erase(std::unique(items.begin(), items.end()), items.end());
        field(std::to_string(items.size()));
        for (const auto& i : items) field(i);
    };
    field(req.mxName);
    field(req.address);
    field(std::to_string(req.port));
    field(toString(req.mode));
    field(req.sni);
    field(req.heloName);
    std::vector<std::string> tlsa;
    for (const auto& t : req.tlsa) {
        tlsa.push_back(std::string{static_cast<char>(t.usage), static_cast<char>(t.selector),
                                   static_cast<char>(t.mtype)} +
                       std::string(t.data.begin(), t.data.end()));
    }
    set(std::move(tlsa));
    set(req.referenceNames);
    field(std::to_string(req.implicitTls));
    field(req.authUser);
    field(req.authPassword);
    field(std::to_string(req.minTlsVersion));
    field(req.trustStore);
    field(req.verifyName);
    field(std::to_string(req.stsEnforced));
    std::vector<std::string> pins;
    for (const auto& p : req.tlsPins) pins.emplace_back(p.begin(), p.end());
    set(std::move(pins));
    unsigned char digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, buf.data(), buf.size(), digest) < 0) {
        return {};  // no key: the session is never cached (see run())
    }
    static const char* hex = "0123456789abcdef";
    std::string k;
    for (unsigned char c : digest) {
        k += hex[c >> 4];
        k += hex[c & 15];
    }
    return k;
}

void SmtpClient::run(Dispatcher& d, std::shared_ptr<tls::ClientCredentials> creds,
                     ClientRequest req, Callback done, ConnectionCache* cache) {
    std::string key = cacheKey(req);
    if (key.empty()) cache = nullptr;  // no digest, no reuse
    if (cache) {
        if (auto idle = cache->take(key)) return idle->reuse(std::move(req), std::move(done));
    }
    std::shared_ptr<SmtpClient> c(
        new SmtpClient(d, std::move(creds), std::move(req), std::move(done)));
    c->cache_ = cache;
    c->cacheKey_ = std::move(key);
    c->start();
}

// A parked session takes the next message: same peer, same TLS and DANE
// outcome (already verified on this connection), a fresh transaction.
void SmtpClient::reuse(ClientRequest req, Callback done) {
    std::string tlsDesc = result_.tls, dane = result_.dane;
    bool verified = result_.peerVerified;
    auto check = result_.peerCheck;
    req_ = std::move(req);
    done_ = std::move(done);
    result_ = ClientResult{};
    result_.tls = tlsDesc;
    result_.dane = dane;
    result_.peerVerified = verified;
    result_.peerCheck = check;
    result_.rcpts.resize(req_.rcptIndexes.size());
    result_.reusedConnection = true;
    nextRcpt_ = rcptAccepted_ = 0;
    replies_.reset();
    reused_ = true;
    selfRef_ = shared_from_this();
    sendEnvelope();
}

// A connection goes back to the cache only when it is quiet: everything we
// wrote has left (a hostile server may answer "." before the body is out:
// the rest would otherwise precede the next MAIL FROM), and nothing the
// server sent waits to be read (bytes after its reply would be taken as the
// reply to the next command).
bool SmtpClient::quiescent() const {
    if (!out_.empty() || !in_.empty() || replies_.inProgress()) return false;
    if (tls_ && tls_->pending() > 0) return false;
    int unread = 0;
    if (!fd_.valid() || ::ioctl(fd_.get(), FIONREAD, &unread) != 0 || unread != 0) return false;
    return true;
}

void SmtpClient::completed() {
    result_.stage = ClientResult::Stage::Done;
    finish();
}

void SmtpClient::transactionDone() {
    result_.stage = ClientResult::Stage::Done;
    if (!cache_ || state_ != State::Body || !quiescent()) return finish();
    // Park for the next message to the same destination and policy.
    state_ = State::Idle;
    reused_ = false;
    if (!cache_->put(cacheKey_, shared_from_this())) return finish();
    arm(cache_->idleSeconds());
    auto done = std::move(done_);
    auto keep = std::move(selfRef_);
    done(result_);
}

// Every callback holds a strong reference for its duration, so the object
// is never destroyed from under its own callback.
SmtpClient::SmtpClient(Dispatcher& d, std::shared_ptr<tls::ClientCredentials> creds,
                       ClientRequest req, Callback done)
    : dispatcher_(d),
      creds_(std::move(creds)),
      req_(std::move(req)),
      done_(std::move(done)),
      timer_(d.base(), -1, 0, [this](short) {
          auto self = shared_from_this();
          fail(F::Timeout, "timeout in state " + std::to_string(static_cast<int>(state_)) +
                               " after " +
                               std::to_string(state_ == State::Connecting ? req_.timeouts.connect
                                                                          : req_.timeouts.command) +
                               " s");
      }) {
    result_.rcpts.resize(req_.rcptIndexes.size());
}

SmtpClient::~SmtpClient() = default;

void SmtpClient::start() {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!toSockaddr(req_.address, req_.port, &ss, &len)) {
        return fail(F::Network, "bad address " + req_.address);
    }
    fd_.reset(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_.valid()) return fail(F::Network, std::string("socket: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
        return fail(F::Network, std::string("connect: ") + std::strerror(errno));
    }
    auto onIo = [this](short what) {
        auto self = shared_from_this();
        onEvent(what);
    };
    readable_ = std::make_unique<Event>(dispatcher_.base(), fd_.get(), EV_READ | EV_PERSIST, onIo);
    writable_ = std::make_unique<Event>(dispatcher_.base(), fd_.get(), EV_WRITE | EV_PERSIST, onIo);
    // Keep ourselves alive while libevent holds raw pointers to us.
    selfRef_ = shared_from_this();
    watch(EV_WRITE);  // connected (or failed to)
    arm(req_.timeouts.connect);
}

void SmtpClient::arm(unsigned seconds) {
    timer_.addSeconds(seconds);
}

void SmtpClient::onEvent(short what) {
    if (finished_) return;
    if (state_ == State::Idle) {
        auto keep = shared_from_this();
        return finish();  // the server spoke or hung up while we were idle
    }
    if (state_ == State::Connecting) return onConnected();
    if (state_ == State::Handshake) return continueHandshake();
    if (what & EV_WRITE) flush();
    if (finished_) return;
    if (what & EV_READ) readSome();
}

void SmtpClient::onConnected() {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail(F::Network, std::string("connect: ") + std::strerror(err));
    if (req_.implicitTls) return startHandshake();  // RFC 8314: TLS before the greeting
    state_ = State::Greeting;
    watch(EV_READ);
    arm(req_.timeouts.command);
}

void SmtpClient::send(const std::string& data) {
    out_ += data;
    flush();
}

void SmtpClient::flush() {
    if (tls_) {
        auto r = tls_->drain(out_);
        if (!r) return fail(F::Tls, "TLS write: " + r.error().message);
    }
    if (!tls_ && !finished_) {
        auto w = flushPlain(fd_.get(), out_);
        if (w.outcome == IoOutcome::SocketError) return fail(F::Network, "send: " + w.error);
    }
    if (finished_) return;
    // Wait for writability only while something is pending.
    watch(EV_READ | (out_.empty() ? 0 : EV_WRITE));
}

void SmtpClient::watch(short events) {
    if (!readable_) return;
    if (events & EV_READ) {
        if (!readable_->pending()) readable_->add();
    } else {
        readable_->del();
    }
    if (events & EV_WRITE) {
        if (!writable_->pending()) writable_->add();
    } else {
        writable_->del();
    }
}

void SmtpClient::readSome() {
    char buf[16384];
    for (;;) {
        auto r = readOnce(fd_.get(), tls_.get(), buf, sizeof buf);
        switch (r.outcome) {
            case IoOutcome::TlsError:
                return fail(F::Tls, "TLS read: " + r.error);
            case IoOutcome::SocketError:
                return fail(F::Network, "recv: " + r.error);
            case IoOutcome::Eof:
                return fail(F::Network, "connection closed by server");
            case IoOutcome::WouldBlock:
                return;
            case IoOutcome::Progress:
                break;
        }
        in_.append(buf, r.bytes);
        parseReplies();
        if (finished_ || state_ == State::Handshake) return;
    }
}

void SmtpClient::parseReplies() {
    for (;;) {
        SmtpReply reply;
        std::string error;
        auto step = replies_.next(in_, &reply, &error);
        if (step == ReplyAssembler::Step::NeedMore) return;
        if (step == ReplyAssembler::Step::Error) return fail(F::BadReply, error);
        // EHLO: keep every line, the extensions.
        bool ehlo = state_ == State::Ehlo || state_ == State::Ehlo2;
        onReply(reply.code, ehlo ? reply.allLines() : reply.text());
        if (finished_ || state_ == State::Handshake) return;
    }
}

void SmtpClient::onReply(int code, const std::string& text) {
    auto temporary = [&](const std::string& where) {
        std::string t = text;
        if (state_ == State::Ehlo || state_ == State::Ehlo2) {
            // EHLO text is the reply's lines without the code: log one line, with it
            t = std::to_string(code) + " " + t.substr(0, t.find('\n'));
        }
        fail(F::Reply, where + ": " + t, code);
    };
    switch (state_) {
        case State::Greeting:
            if (code != 220) return temporary("greeting");
            state_ = State::Ehlo;
            arm(req_.timeouts.command);
            return send("EHLO " + req_.heloName + "\r\n");
        case State::Ehlo:
            if (code != 250) {
                if (req_.mode != TlsMode::Opportunistic && req_.mode != TlsMode::None) {
                    return temporary("EHLO");
                }
                // HELO only where no TLS is required
                state_ = State::Ehlo2;
                esmtp_ = false;
                return send("HELO " + req_.heloName + "\r\n");
            }
            afterEhlo(text, false);
            return;
        case State::StartTls:
            return onStartTlsReply(code, text);
        case State::Ehlo2:
            if (code != 250) return temporary(esmtp_ ? "EHLO after STARTTLS" : "HELO");
            if (esmtp_ || tls_) {
                afterEhlo(text, true);
            } else {
                sendEnvelope();
            }
            return;
        case State::Auth:
            if (code != 235) return temporary("AUTH");
            return sendEnvelope();
        case State::Mail:
            if (code != 250) return temporary("MAIL FROM");
            state_ = State::Rcpt;
            if (!pipelining_) sendRcpt(0);
            return;
        case State::Rcpt:
            return onRcptReply(code, text);
        case State::Data:
            return onDataReply(code, text);
        case State::Body:
            replyToAccepted(code, text);
            return transactionDone();
        default:
            return fail(F::BadReply, "unexpected reply: " + text);
    }
}

void SmtpClient::onStartTlsReply(int code, const std::string& text) {
    if (code != 220) {
        if (req_.mode == TlsMode::Opportunistic && req_.authUser.empty()) {
            // offered but refused: carry on in plaintext only where TLS is optional
            starttls_ = false;
            return sendEnvelope();
        }
        result_.dane = "starttls-not-supported";
        return fail(F::StarttlsNotSupported, "STARTTLS refused: " + text);
    }
    if (!in_.empty()) {
        // RFC 3207 / CVE-2011-0411 class: nothing read before the
        // handshake may be taken as a reply after it.
        logEvent("discard", {{"mx", req_.mxName},
                             {"reason", "server data ahead of TLS handshake"},
                             {"bytes", std::to_string(in_.size())}});
        in_.clear();
    }
    startHandshake();
}

void SmtpClient::onRcptReply(int code, const std::string& text) {
    auto& r = result_.rcpts[nextRcpt_];
    r.code = code;
    r.reply = text;
    if (code / 100 == 2) ++rcptAccepted_;
    ++nextRcpt_;
    if (nextRcpt_ < req_.rcptIndexes.size()) {
        if (!pipelining_) sendRcpt(nextRcpt_);
        return;
    }
    state_ = State::Data;
    if (!pipelining_) {
        if (rcptAccepted_ == 0) return completed();
        arm(req_.timeouts.dataInit);
        send("DATA\r\n");
    }
}

void SmtpClient::onDataReply(int code, const std::string& text) {
    if (code != 354) {
        // Recipients accepted but DATA refused: each gets DATA's reply.
        replyToAccepted(code, text);
        return completed();
    }
    if (rcptAccepted_ == 0) {
        // A pipelined DATA the server took with no recipient: end it empty.
        state_ = State::Body;
        return send(".\r\n");
    }
    sendBody();
}

void SmtpClient::replyToAccepted(int code, const std::string& text) {
    for (auto& r : result_.rcpts) {
        if (r.code / 100 == 2) {
            r.code = code;
            r.reply = text;
        }
    }
}

void SmtpClient::afterEhlo(const std::string& lines, bool secondTime) {
    // Everything advertised before is forgotten: this EHLO reply alone counts.
    esmtp_ = true;
    auto ext = parseEhlo(lines);
    pipelining_ = ext.pipelining;
    starttls_ = ext.starttls;
    dsn_ = ext.dsn;
    smtputf8_ = ext.smtputf8;
    eightBitMime_ = ext.eightBitMime;
    size_ = ext.size;
    requireTls_ = ext.requireTls;
    sizeLimit_ = ext.sizeLimit;
    if (secondTime || tls_) return afterTlsEhlo();
    if (req_.mode == TlsMode::None) return sendEnvelope();
    if (starttls_) {
        state_ = State::StartTls;
        arm(req_.timeouts.command);
        return send("STARTTLS\r\n");
    }
    if (req_.mode != TlsMode::Opportunistic) {
        result_.dane = "starttls-not-supported";
        return fail(F::StarttlsNotSupported, "STARTTLS not offered, but TLS is required (" +
                                                 std::string(toString(req_.mode)) + ")");
    }
    sendEnvelope();
}

bool SmtpClient::checkPeer() {
    auto chain = tls_->peerChain();
    if (req_.mode == TlsMode::Dane) {
        result_.peerCheck = ClientResult::PeerCheck::Dane;
        auto v = tls::verifyDane(chain, req_.tlsa, req_.referenceNames,
                                 static_cast<std::time_t>(dispatcher_.now()));
        if (!v.authenticated) {
            result_.daneFailure = v.failure;
            result_.dane = tls::toString(v.failure);
            // No envelope goes to an unauthenticated peer; say goodbye over TLS.
            fail(F::DaneFailed, "DANE authentication failed (" + result_.dane + "): " + v.reason);
            return false;
        }
        result_.dane = "matched " + v.matched;
    }
    if (req_.mode == TlsMode::Verify) {
        result_.peerCheck = ClientResult::PeerCheck::Pkix;
        std::string why;
        if (!tls::verifyPkix(chain, req_.trustStore, req_.verifyName,
                             static_cast<std::time_t>(dispatcher_.now()), &why)) {
            result_.dane = "certificate-not-trusted";
            fail(F::CertificateNotTrusted, "certificate verification failed: " + why);
            return false;
        }
        result_.dane = "pkix-verified " + req_.verifyName;
    } else if (!req_.stsTestName.empty()) {
        // MTA-STS testing: what enforce would have said, reported only.
        std::string why;
        result_.stsChecked = true;
        if (!tls::verifyPkix(chain, req_.trustStore, req_.stsTestName,
                             static_cast<std::time_t>(dispatcher_.now()), &why)) {
            result_.stsWould = "certificate not valid for " + req_.stsTestName + ": " + why;
        }
    }
    if (!req_.tlsPins.empty()) {
        auto pin = chain.empty() ? std::vector<uint8_t>{} : tls::spkiSha256(chain[0]);
        if (std::find(req_.tlsPins.begin(), req_.tlsPins.end(), pin) == req_.tlsPins.end()) {
            fail(F::PinMismatch, "the server's key matches none of the policy's tls_pins");
            return false;
        }
    }
    if (req_.minTlsVersion > 0 && tls_->protocolVersion() < req_.minTlsVersion) {
        fail(F::TlsVersionTooLow,
             "TLS version " + result_.tls + " is below the policy's min_tls_version");
        return false;
    }
    result_.peerVerified = true;
    return true;
}

void SmtpClient::afterTlsEhlo() {
    if (req_.authUser.empty()) return sendEnvelope();
    std::string plain = std::string(1, '\0') + req_.authUser + '\0' + req_.authPassword;
    state_ = State::Auth;
    arm(req_.timeouts.command);
    send("AUTH PLAIN " + base64Encode(plain) + "\r\n");
}

void SmtpClient::startHandshake() {
    auto s = tls::Session::client(fd_.get(), creds_, req_.sni);
    if (!s) return fail(F::Tls, "TLS setup: " + s.error().message);
    tls_ = std::move(*s);
    state_ = State::Handshake;
    arm(req_.timeouts.command);
    continueHandshake();
}

void SmtpClient::continueHandshake() {
    auto r = tls_->handshake();
    if (!r) return fail(F::Tls, "TLS handshake: " + r.error().message);
    if (*r != tls::IoState::Done) {
        watch(*r == tls::IoState::NeedWrite ? EV_WRITE : EV_READ);
        return;
    }
    result_.tls = tls_->description();
    if (!checkPeer()) return;
    if (req_.implicitTls) {
        state_ = State::Greeting;
        arm(req_.timeouts.command);
        flush();  // re-registers the read event
        if (tls_->pending() > 0) readSome();
        return;
    }
    state_ = State::Ehlo2;
    arm(req_.timeouts.command);
    flush();  // re-registers the read event
    send("EHLO " + req_.heloName + "\r\n");
    // The server may already have sent its reply inside the TLS records we read.
    if (tls_->pending() > 0) readSome();
}

std::string SmtpClient::mailFromLine() const {
    const auto& env = req_.envelope;
    std::string l = "MAIL FROM:<" + env.sender + ">";
    if (esmtp_) {
        if (size_) l += " SIZE=" + std::to_string(req_.content->size());
        if (env.eightBitMime && eightBitMime_) l += " BODY=8BITMIME";
        if (env.smtputf8 && smtputf8_) l += " SMTPUTF8";
        if (env.requireTls) l += " REQUIRETLS";  // sendEnvelope() checked the server offers it
        if (dsn_) {
            if (env.ret == queue::DsnRet::Full) l += " RET=FULL";
            if (env.ret == queue::DsnRet::Headers) l += " RET=HDRS";
            if (!env.envid.empty()) l += " ENVID=" + xtextEncode(env.envid);
        }
    }
    return l + "\r\n";
}

std::string SmtpClient::rcptLine(size_t i) const {
    const auto& r = req_.envelope.recipients[req_.rcptIndexes[i]];
    std::string l = "RCPT TO:<" + r.address + ">";
    if (esmtp_ && dsn_) {
        if (r.notify != queue::kNotifyNone) {
            if (r.notify & queue::kNotifyNever) {
                l += " NOTIFY=NEVER";
            } else {
                std::string n;
                if (r.notify & queue::kNotifySuccess) n += ",SUCCESS";
                if (r.notify & queue::kNotifyFailure) n += ",FAILURE";
                if (r.notify & queue::kNotifyDelay) n += ",DELAY";
                l += " NOTIFY=" + n.substr(1);
            }
        }
        if (!r.orcpt.empty()) {
            auto semi = r.orcpt.find(';');
            l += " ORCPT=" + r.orcpt.substr(0, semi + 1) + xtextEncode(r.orcpt.substr(semi + 1));
        }
    }
    return l + "\r\n";
}

void SmtpClient::sendEnvelope() {
    const auto& env = req_.envelope;
    if (!reused_ && !req_.stsTestName.empty() && result_.tls.empty()) {
        result_.stsChecked = true;  // MTA-STS testing: enforce would have wanted TLS
        result_.stsWould = "no TLS (STARTTLS not offered or refused)";
    }
    // RFC 8689 4.2.1: a REQUIRETLS message goes only to a server whose TLS
    // was authenticated by DANE or under an MTA-STS enforce policy (PKIX for
    // the MX name the policy lists) and that offers REQUIRETLS; checked
    // before a byte of it is sent, on a reused connection too (whose cache
    // key holds the mode and stsEnforced).
    if (env.requireTls) {
        bool authenticated =
            result_.peerCheck == ClientResult::PeerCheck::Dane ||
            (result_.peerCheck == ClientResult::PeerCheck::Pkix && req_.stsEnforced);
        if (result_.tls.empty() || !result_.peerVerified || !authenticated) {
            return fail(
                F::RequireTls,
                "REQUIRETLS: TLS to this server is not authenticated by DANE or MTA-STS (" +
                    std::string(result_.tls.empty()     ? "no TLS"
                                : !result_.peerVerified ? "TLS not verified"
                                                        : "PKIX without an MTA-STS policy") +
                    ")");
        }
        if (!requireTls_)
            return fail(F::RequireTls, "REQUIRETLS: the server does not offer REQUIRETLS");
    }
    if (env.smtputf8 && !smtputf8_) {
        bool needs = has8bit(env.sender);
        for (size_t i : req_.rcptIndexes) needs = needs || has8bit(env.recipients[i].address);
        if (needs) {
            return fail(F::Refused,
                        "5.6.7 the server does not support SMTPUTF8, which this message needs");
        }
    }
    // Refused before MAIL FROM, not half-way through DATA (checked again there).
    if (auto at = bareLineEnding(*req_.content); at != std::string_view::npos) {
        return fail(F::Refused, bareLineEndingError(*req_.content, at).message);
    }
    if (sizeLimit_ > 0 && req_.content->size() > sizeLimit_) {
        return fail(F::Refused, "5.3.4 message size " + std::to_string(req_.content->size()) +
                                    " exceeds the server's limit of " + std::to_string(sizeLimit_));
    }
    state_ = State::Mail;
    arm(req_.timeouts.command);
    if (pipelining_) {
        std::string batch = mailFromLine();
        for (size_t i = 0; i < req_.rcptIndexes.size(); ++i) batch += rcptLine(i);
        batch += "DATA\r\n";
        send(batch);
    } else {
        send(mailFromLine());
    }
}

void SmtpClient::sendRcpt(size_t i) {
    arm(req_.timeouts.command);
    send(rcptLine(i));
}

Result<std::string> encodeBody(std::string_view c) {
    if (auto at = bareLineEnding(c); at != std::string_view::npos) {
        return bareLineEndingError(c, at);
    }
    std::string out;
    out.reserve(c.size() + c.size() / 64 + 8);
    bool lineStart = true;
    for (char ch : c) {
        if (lineStart && ch == '.') out += '.';  // dot-stuffing
        out += ch;
        lineStart = ch == '\n';
    }
    if (!lineStart) out.append("\r\n");
    out.append(".\r\n");
    return out;
}

void SmtpClient::sendBody() {
    state_ = State::Body;
    arm(req_.timeouts.dataFinal);
    auto body = encodeBody(*req_.content);
    // No dot: the server drops the transaction when we QUIT.
    if (!body) return fail(F::Refused, body.error().message);
    send(*body);
}

ClientResult::Stage SmtpClient::stageOf(State s) {
    using S = ClientResult::Stage;
    switch (s) {
        case State::Connecting:
            return S::Connect;
        case State::Greeting:
            return S::Greeting;
        case State::Ehlo:
            return S::Ehlo;
        case State::StartTls:
            return S::StartTls;
        case State::Handshake:
            return S::Handshake;
        case State::Ehlo2:
            return S::Ehlo;
        case State::Auth:
            return S::Auth;
        case State::Mail:
            return S::Mail;
        case State::Rcpt:
            return S::Rcpt;
        case State::Data:
            return S::Data;
        case State::Body:
            return S::Body;
        case State::Idle:  // a parked session takes its next message at MAIL
            return S::Mail;
        case State::Done:
            return S::Body;
    }
    return S::Connect;
}

void SmtpClient::fail(ClientResult::Failure kind, const std::string& error, int replyCode) {
    if (finished_) return;
    if (reused_ && state_ == State::Mail && nextRcpt_ == 0 && done_) {
        // The parked connection died while idle (server timeout): this
        // message never reached it. Start it afresh on a new connection.
        reused_ = false;
        auto req = req_;
        auto done = std::move(done_);
        auto keep = shared_from_this();
        finish();
        return run(dispatcher_, creds_, std::move(req), std::move(done), cache_);
    }
    result_.stage = stageOf(state_);
    // Our refusal of the message comes as the envelope is about to go out:
    // it is part of the transaction.
    if (kind == F::Refused || kind == F::RequireTls)
        result_.stage = std::max(result_.stage, ClientResult::Stage::Mail);
    result_.failure = kind;
    result_.replyCode = replyCode;
    result_.error = error;
    finish();
}

void SmtpClient::finish() {
    if (finished_) return;
    finished_ = true;
    if (fd_.valid() && state_ != State::Connecting) {
        // Polite, best effort, never waited for.
        const char quit[] = "QUIT\r\n";
        if (tls_) {
            std::string q = quit;
            (void)tls_->drain(q);
            tls_->bye();
        } else {
            [[maybe_unused]] auto n = ::send(fd_.get(), quit, sizeof quit - 1, MSG_NOSIGNAL);
        }
    }
    // The events stay (unregistered) until the destructor: this may be
    // running inside one of their callbacks.
    watch(0);
    timer_.del();
    tls_.reset();
    fd_.reset();
    std::shared_ptr<SmtpClient> keep = std::move(selfRef_);
    // Parked: the cache's reference. Not parked after all (the cache was
    // full, or a reuse took it out): the in-flight one, never nothing.
    if (state_ == State::Idle && cache_) {
        if (auto parked = cache_->remove(this)) keep = std::move(parked);
    }
    state_ = State::Done;
    auto done = std::move(done_);
    if (done) done(result_);
    if (keep) dispatcher_.deferredDelete(std::move(keep));
}

}  // namespace danerelay::relay
