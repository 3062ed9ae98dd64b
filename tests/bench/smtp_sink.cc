// smtp_sink — a benchmark SMTP server (not a test, not part of ctest): the
// receiving end of the delivery benchmarks, fast enough that the relay, not
// the receiver, is what they measure.
//
// It listens on loopback addresses only (127.0.0.0/8, ::1), offers ESMTP with
// PIPELINING and STARTTLS (the lab's MX certificate and key, so the relay's
// DANE 3 1 1 check passes), accepts every message and discards its body. It
// counts messages per recipient domain and keeps the time of the last
// receipt; the counts go to a JSON stats file, rewritten every --stats-ms and
// at once on SIGUSR1, and at exit (SIGTERM, SIGINT). With --receipts it
// appends "MESSAGE-ID TAB EPOCH-SECONDS" per message, for latency figures.
//
// Refuses: non-loopback listeners; command lines over 1,000 bytes (500 and
// the session closes); more than --max-sessions sessions at once (421);
// more than 1,000 recipients per message (452); messages over 64 MiB (552,
// the rest of the body skipped); sessions idle for 60 s (closed); clients
// that pipeline without reading (output over 1 MiB: closed); commands
// pipelined after STARTTLS (discarded). Header and body lines of any length
// are skipped in bounded memory. Distinct domains counted: at most
// --max-domains, the rest under "(other)".
//
//   smtp_sink --listen 127.0.1.1:25 [--listen ...] [--cert CHAIN --key KEY]
//             [--stats FILE] [--stats-ms 100] [--receipts FILE]
//             [--max-sessions 4000] [--max-domains 100000] [--hostname NAME]
#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace {

constexpr size_t kMaxLine = 1000;
constexpr size_t kMaxRecipients = 1000;
constexpr uint64_t kMaxMessage = 64ull << 20;
constexpr size_t kMaxOut = 1u << 20;
constexpr size_t kMaxMessageId = 200;
constexpr int kIdleSeconds = 60;
constexpr size_t kReadChunk = 64 * 1024;

struct Options {
    std::vector<std::string> listen;
    std::string cert, key, stats, receipts, hostname = "sink.test";
    size_t maxSessions = 4000;
    size_t maxDomains = 100000;
    int statsMs = 100;
};

double nowEpoch() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

bool iequalsPrefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
        char a = s[i];
        if (a >= 'a' && a <= 'z') a = static_cast<char>(a - 32);
        if (a != prefix[i]) return false;
    }
    return true;
}

// The domain of "RCPT TO:<local@domain> ...", lower-cased; "(invalid)" when
// it is not a plausible host name.
std::string recipientDomain(std::string_view line) {
    size_t lt = line.find('<'), gt = line.find('>');
    if (lt == std::string_view::npos || gt == std::string_view::npos || gt < lt) return "(invalid)";
    std::string_view addr = line.substr(lt + 1, gt - lt - 1);
    size_t at = addr.rfind('@');
    if (at == std::string_view::npos) return "(invalid)";
    std::string_view dom = addr.substr(at + 1);
    if (dom.empty() || dom.size() > 253) return "(invalid)";
    std::string out;
    out.reserve(dom.size());
    for (char c : dom) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return "(invalid)";
        out.push_back(c);
    }
    return out;
}

struct Stats {
    uint64_t messages = 0, recipients = 0, sessionsTotal = 0, tlsSessions = 0;
    uint64_t refused = 0, tlsFailures = 0, bytes = 0;
    size_t sessionsOpen = 0;
    double firstReceipt = 0, lastReceipt = 0;
    std::unordered_map<std::string, uint64_t> domains;
};

class Sink;

struct EventDeleter {
    void operator()(event* e) const { event_free(e); }
};
using EventPtr = std::unique_ptr<event, EventDeleter>;

struct TlsDeleter {
    void operator()(gnutls_session_t s) const { gnutls_deinit(s); }
};
using TlsPtr = std::unique_ptr<std::remove_pointer_t<gnutls_session_t>, TlsDeleter>;

class Session {
  public:
    Session(Sink& sink, int fd);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    bool start();

  private:
    enum class State { Command, Data, StartTls, Handshake, Closing };

    static void onEvent(evutil_socket_t, short what, void* self) {
        static_cast<Session*>(self)->handle(what);
    }
    void handle(short what);
    bool readSome();
    bool process();
    bool command(std::string_view line);
    bool dataLine(std::string_view line);
    void endMessage();
    void reply(std::string_view text) { out_.append(text).append("\r\n"); }
    bool flush();
    bool handshake();
    void close();

    Sink& sink_;
    int fd_;
    EventPtr rev_, wev_;
    TlsPtr tls_;
    State state_ = State::Command;
    std::string in_, out_;
    size_t inPos_ = 0, outPos_ = 0, tlsRetry_ = 0;
    bool mail_ = false, midLine_ = false, inHeaders_ = false, tooBig_ = false;
    bool quit_ = false;
    std::vector<std::string> domains_;
    uint64_t msgBytes_ = 0;
    std::string messageId_;
};

class Sink {
  public:
    explicit Sink(Options opt) : opt_(std::move(opt)) {}
    ~Sink();
    bool init();
    int run();

    event_base* base() { return base_; }
    gnutls_certificate_credentials_t cred() { return cred_; }
    const gnutls_datum_t* ticketKey() { return &ticketKey_; }
    const Options& opt() const { return opt_; }
    Stats& stats() { return stats_; }
    void receipt(const std::string& messageId, double when);
    void closed(Session* s) { doomed_.push_back(s); }

  private:
    static void onAccept(evutil_socket_t fd, short, void* self) {
        static_cast<Sink*>(self)->accept(fd);
    }
    static void onTick(evutil_socket_t, short, void* self) { static_cast<Sink*>(self)->tick(); }
    static void onSignal(evutil_socket_t sig, short, void* self) {
        auto* s = static_cast<Sink*>(self);
        if (sig == SIGUSR1) {
            s->writeStats();
        } else {
            event_base_loopbreak(s->base_);
        }
    }
    bool listenOn(const std::string& spec);
    void accept(int fd);
    void tick();
    void reap();
    void writeStats();
    void flushReceipts();

    Options opt_;
    event_base* base_ = nullptr;
    gnutls_certificate_credentials_t cred_ = nullptr;
    gnutls_datum_t ticketKey_{nullptr, 0};
    std::vector<int> listeners_;
    std::vector<EventPtr> events_;
    std::unordered_set<Session*> sessions_;
    std::vector<Session*> doomed_;
    Stats stats_;
    std::string receiptBuf_;
    FILE* receipts_ = nullptr;
    uint64_t statsWritten_ = UINT64_MAX;

    friend class Session;
};

// ------------------------------------------------------------------ Session

Session::Session(Sink& sink, int fd) : sink_(sink), fd_(fd) {}

Session::~Session() {
    rev_.reset();
    wev_.reset();
    tls_.reset();
    ::close(fd_);
}

bool Session::start() {
    rev_.reset(event_new(sink_.base(), fd_, EV_READ | EV_PERSIST, onEvent, this));
    wev_.reset(event_new(sink_.base(), fd_, EV_WRITE, onEvent, this));
    if (!rev_ || !wev_) return false;
    timeval idle{kIdleSeconds, 0};
    event_add(rev_.get(), &idle);
    reply("220 " + sink_.opt().hostname + " ESMTP smtp_sink");
    return flush();
}

void Session::close() {
    if (state_ == State::Closing) return;
    state_ = State::Closing;
    event_del(rev_.get());
    event_del(wev_.get());
    sink_.closed(this);
}

void Session::handle(short what) {
    if (state_ == State::Closing) return;
    if (what & EV_TIMEOUT) return close();
    if (state_ == State::Handshake) {
        if (!handshake()) return close();
        // The client's first command may already sit in GnuTLS's buffer.
        if (state_ == State::Command && gnutls_record_check_pending(tls_.get()) > 0 && !readSome())
            close();
        return;
    }
    if ((what & EV_WRITE) && !flush()) return close();
    if ((what & EV_READ) && !readSome()) return close();
}

bool Session::handshake() {
    int rc = gnutls_handshake(tls_.get());
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
        if (gnutls_record_get_direction(tls_.get()) == 1) event_add(wev_.get(), nullptr);
        return true;
    }
    if (rc < 0) {
        sink_.stats().tlsFailures++;
        return false;
    }
    sink_.stats().tlsSessions++;
    state_ = State::Command;
    mail_ = false;
    domains_.clear();
    return true;
}

bool Session::readSome() {
    char buf[kReadChunk];
    for (int round = 0; round < 16; ++round) {
        ssize_t n;
        if (tls_) {
            n = gnutls_record_recv(tls_.get(), buf, sizeof buf);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) break;
            if (n < 0) return false;
        } else {
            n = ::read(fd_, buf, sizeof buf);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
            if (n < 0) return false;
        }
        if (n == 0) return false;
        in_.append(buf, static_cast<size_t>(n));
        if (!process()) return false;
        if (state_ != State::Command && state_ != State::Data) break;
        if (tls_ && gnutls_record_check_pending(tls_.get()) == 0 && n < 16384) break;
        if (!tls_ && static_cast<size_t>(n) < sizeof buf) break;
    }
    return flush();
}

// Consumes every complete line of in_; false closes the session.
bool Session::process() {
    while (state_ == State::Command || state_ == State::Data) {
        size_t nl = in_.find('\n', inPos_);
        if (nl == std::string::npos) {
            size_t pending = in_.size() - inPos_;
            if (pending > kMaxLine) {
                if (state_ == State::Command) {
                    reply("500 5.5.2 Line too long");
                    quit_ = true;
                    in_.clear();
                    inPos_ = 0;
                    return true;
                }
                msgBytes_ += pending;  // a long body line: skipped, not kept
                in_.clear();
                inPos_ = 0;
                midLine_ = true;
            }
            break;
        }
        std::string_view line(in_.data() + inPos_, nl - inPos_);
        inPos_ = nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bool ok = state_ == State::Command ? command(line) : dataLine(line);
        if (!ok) return false;
        if (quit_) break;
    }
    if (inPos_ > 0) {
        in_.erase(0, inPos_);
        inPos_ = 0;
    }
    return out_.size() <= kMaxOut;
}

bool Session::command(std::string_view line) {
    if (line.size() > kMaxLine) {
        reply("500 5.5.2 Line too long");
        quit_ = true;
        return true;
    }
    if (iequalsPrefix(line, "EHLO ")) {
        std::string r = "250-" + sink_.opt().hostname + "\r\n250-PIPELINING\r\n";
        r += "250-SIZE 67108864\r\n250-8BITMIME\r\n";
        if (!tls_ && sink_.cred()) r += "250-STARTTLS\r\n";
        r += "250 ENHANCEDSTATUSCODES";
        reply(r);
        mail_ = false;
        domains_.clear();
    } else if (iequalsPrefix(line, "HELO ")) {
        reply("250 " + sink_.opt().hostname);
    } else if (iequalsPrefix(line, "STARTTLS") && line.size() == 8) {
        if (tls_ || !sink_.cred()) {
            reply("503 5.5.1 TLS not available");
            return true;
        }
        gnutls_session_t s = nullptr;
        if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) return false;
        tls_.reset(s);
        if (gnutls_set_default_priority(s) < 0 ||
            gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, sink_.cred()) < 0)
            return false;
        gnutls_session_ticket_enable_server(s, sink_.ticketKey());
        gnutls_transport_set_int(s, fd_);
        reply("220 2.0.0 Ready to start TLS");
        state_ = State::StartTls;
    } else if (iequalsPrefix(line, "MAIL FROM:")) {
        if (mail_) {
            reply("503 5.5.1 Nested MAIL");
        } else {
            mail_ = true;
            domains_.clear();
            reply("250 2.1.0 Ok");
        }
    } else if (iequalsPrefix(line, "RCPT TO:")) {
        if (!mail_) {
            reply("503 5.5.1 Need MAIL");
        } else if (domains_.size() >= kMaxRecipients) {
            reply("452 4.5.3 Too many recipients");
        } else {
            domains_.push_back(recipientDomain(line));
            reply("250 2.1.5 Ok");
        }
    } else if (iequalsPrefix(line, "DATA") && line.size() == 4) {
        if (domains_.empty()) {
            reply("503 5.5.1 Need RCPT");
        } else {
            reply("354 End data with <CR><LF>.<CR><LF>");
            state_ = State::Data;
            inHeaders_ = true;
            midLine_ = false;
            tooBig_ = false;
            msgBytes_ = 0;
            messageId_.clear();
        }
    } else if (iequalsPrefix(line, "RSET")) {
        mail_ = false;
        domains_.clear();
        reply("250 2.0.0 Ok");
    } else if (iequalsPrefix(line, "NOOP")) {
        reply("250 2.0.0 Ok");
    } else if (iequalsPrefix(line, "QUIT")) {
        reply("221 2.0.0 Bye");
        quit_ = true;
    } else {
        reply("502 5.5.2 Command not recognised");
    }
    return true;
}

bool Session::dataLine(std::string_view line) {
    if (midLine_) {  // the tail of a line too long to keep
        midLine_ = false;
        msgBytes_ += line.size() + 2;
        return true;
    }
    if (line == ".") {
        endMessage();
        return true;
    }
    msgBytes_ += line.size() + 2;
    if (msgBytes_ > kMaxMessage) tooBig_ = true;
    if (inHeaders_) {
        if (line.empty()) {
            inHeaders_ = false;
        } else if (iequalsPrefix(line, "MESSAGE-ID:")) {
            std::string_view v = line.substr(11);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
            if (v.size() > kMaxMessageId) v = v.substr(0, kMaxMessageId);
            messageId_.clear();
            for (char c : v) messageId_.push_back(c > ' ' && c < 127 ? c : '?');
        }
    }
    return true;
}

void Session::endMessage() {
    state_ = State::Command;
    mail_ = false;
    if (tooBig_) {
        reply("552 5.3.4 Message too big");
        domains_.clear();
        return;
    }
    double when = nowEpoch();
    Stats& st = sink_.stats();
    st.messages++;
    st.bytes += msgBytes_;
    st.recipients += domains_.size();
    if (st.firstReceipt == 0) st.firstReceipt = when;
    st.lastReceipt = when;
    std::unordered_set<std::string_view> seen;
    for (const auto& d : domains_) {
        if (!seen.insert(d).second) continue;
        auto it = st.domains.find(d);
        if (it != st.domains.end()) {
            it->second++;
        } else if (st.domains.size() < sink_.opt().maxDomains) {
            st.domains.emplace(d, 1);
        } else {
            st.domains["(other)"]++;
        }
    }
    domains_.clear();
    if (!messageId_.empty()) sink_.receipt(messageId_, when);
    reply("250 2.0.0 Ok: discarded");
}

bool Session::flush() {
    while (outPos_ < out_.size()) {
        const char* p = out_.data() + outPos_;
        size_t len = out_.size() - outPos_;
        ssize_t n;
        if (tls_ && state_ != State::StartTls) {
            // After GNUTLS_E_AGAIN the same call again (GnuTLS holds the record).
            if (tlsRetry_ > 0) len = tlsRetry_;
            n = gnutls_record_send(tls_.get(), p, len);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                tlsRetry_ = len;
                event_add(wev_.get(), nullptr);
                return true;
            }
            tlsRetry_ = 0;
            if (n < 0) return false;
        } else {
            n = ::send(fd_, p, len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                event_add(wev_.get(), nullptr);
                return true;
            }
            if (n < 0) return false;
        }
        outPos_ += static_cast<size_t>(n);
    }
    out_.clear();
    outPos_ = 0;
    if (quit_) return false;
    if (state_ == State::StartTls) {  // the 220 is out: what was pipelined after it is dropped
        in_.clear();
        inPos_ = 0;
        state_ = State::Handshake;
        return handshake();
    }
    return true;
}

// ------------------------------------------------------------------ Sink

Sink::~Sink() {
    for (Session* s : sessions_) delete s;
    sessions_.clear();
    events_.clear();
    for (int fd : listeners_) ::close(fd);
    if (receipts_) std::fclose(receipts_);
    if (cred_) gnutls_certificate_free_credentials(cred_);
    if (ticketKey_.data) gnutls_free(ticketKey_.data);
    if (base_) event_base_free(base_);
}

bool Sink::listenOn(const std::string& spec) {
    size_t colon = spec.rfind(':');
    if (colon == std::string::npos) return false;
    std::string host = spec.substr(0, colon), port = spec.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end || p <= 0 || p > 65535) return false;
    sockaddr_storage ss{};
    socklen_t len;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) return false;
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(p));
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) return false;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(p));
        len = sizeof *v6;
    } else {
        return false;
    }
    int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0 || ::listen(fd, 1024) < 0) {
        std::fprintf(stderr, "smtp_sink: %s: %s\n", spec.c_str(), std::strerror(errno));
        ::close(fd);
        return false;
    }
    listeners_.push_back(fd);
    EventPtr ev(event_new(base_, fd, EV_READ | EV_PERSIST, onAccept, this));
    if (!ev || event_add(ev.get(), nullptr) < 0) return false;
    events_.push_back(std::move(ev));
    return true;
}

bool Sink::init() {
    base_ = event_base_new();
    if (!base_) return false;
    if (!opt_.cert.empty()) {
        if (gnutls_certificate_allocate_credentials(&cred_) < 0) return false;
        int rc = gnutls_certificate_set_x509_key_file2(cred_, opt_.cert.c_str(), opt_.key.c_str(),
                                                       GNUTLS_X509_FMT_PEM, nullptr, 0);
        if (rc < 0) {
            std::fprintf(stderr, "smtp_sink: certificate: %s\n", gnutls_strerror(rc));
            return false;
        }
        if (gnutls_session_ticket_key_generate(&ticketKey_) < 0) return false;
    }
    if (!opt_.receipts.empty()) {
        receipts_ = std::fopen(opt_.receipts.c_str(), "a");
        if (!receipts_) return false;
    }
    for (const auto& l : opt_.listen) {
        if (!listenOn(l)) {
            std::fprintf(stderr, "smtp_sink: cannot listen on %s (loopback ADDR:PORT only)\n",
                         l.c_str());
            return false;
        }
    }
    timeval tick{opt_.statsMs / 1000, (opt_.statsMs % 1000) * 1000};
    EventPtr t(event_new(base_, -1, EV_PERSIST, onTick, this));
    if (!t || event_add(t.get(), &tick) < 0) return false;
    events_.push_back(std::move(t));
    for (int sig : {SIGUSR1, SIGTERM, SIGINT}) {
        EventPtr s(evsignal_new(base_, sig, onSignal, this));
        if (!s || event_add(s.get(), nullptr) < 0) return false;
        events_.push_back(std::move(s));
    }
    return true;
}

void Sink::accept(int lfd) {
    reap();  // sessions closed since the last tick no longer count
    for (int i = 0; i < 64; ++i) {
        int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (sessions_.size() >= opt_.maxSessions) {
            static const char busy[] = "421 4.3.2 Too many sessions\r\n";
            (void)!::send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            stats_.refused++;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto* s = new Session(*this, fd);
        sessions_.insert(s);
        stats_.sessionsTotal++;
        if (!s->start()) {
            sessions_.erase(s);
            delete s;
        }
    }
}

void Sink::receipt(const std::string& messageId, double when) {
    if (!receipts_) return;
    char t[32];
    std::snprintf(t, sizeof t, "\t%.6f\n", when);
    receiptBuf_.append(messageId).append(t);
    if (receiptBuf_.size() > (1u << 20)) flushReceipts();
}

void Sink::flushReceipts() {
    if (!receipts_ || receiptBuf_.empty()) return;
    std::fwrite(receiptBuf_.data(), 1, receiptBuf_.size(), receipts_);
    std::fflush(receipts_);
    receiptBuf_.clear();
}

void Sink::reap() {
    for (Session* s : doomed_) {
        sessions_.erase(s);
        delete s;
    }
    doomed_.clear();
}

void Sink::tick() {
    reap();
    flushReceipts();
    writeStats();
}

void Sink::writeStats() {
    stats_.sessionsOpen = sessions_.size() - doomed_.size();
    if (opt_.stats.empty()) return;
    std::string j = "{";
    char num[160];
    std::snprintf(num, sizeof num,
                  "\"messages\": %llu, \"recipients\": %llu, \"bytes\": %llu, "
                  "\"first_receipt\": %.6f, \"last_receipt\": %.6f, ",
                  static_cast<unsigned long long>(stats_.messages),
                  static_cast<unsigned long long>(stats_.recipients),
                  static_cast<unsigned long long>(stats_.bytes), stats_.firstReceipt,
                  stats_.lastReceipt);
    j += num;
    std::snprintf(num, sizeof num,
                  "\"sessions_open\": %zu, \"sessions_total\": %llu, \"tls_sessions\": %llu, "
                  "\"tls_failures\": %llu, \"refused\": %llu, \"domains\": {",
                  stats_.sessionsOpen, static_cast<unsigned long long>(stats_.sessionsTotal),
                  static_cast<unsigned long long>(stats_.tlsSessions),
                  static_cast<unsigned long long>(stats_.tlsFailures),
                  static_cast<unsigned long long>(stats_.refused));
    j += num;
    bool first = true;
    for (const auto& [d, n] : stats_.domains) {
        if (!first) j += ", ";
        first = false;
        j += "\"" + d + "\": " + std::to_string(n);  // d holds [a-z0-9.-()] only
    }
    j += "}}\n";
    std::string tmp = opt_.stats + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) return;
    bool ok = std::fwrite(j.data(), 1, j.size(), f) == j.size();
    ok = std::fclose(f) == 0 && ok;
    if (ok) std::rename(tmp.c_str(), opt_.stats.c_str());
}

int Sink::run() {
    writeStats();
    event_base_dispatch(base_);
    reap();
    flushReceipts();
    writeStats();
    return 0;
}

int usage() {
    std::fprintf(stderr,
                 "usage: smtp_sink --listen ADDR:PORT [--listen ...] [--cert CHAIN --key KEY]\n"
                 "                 [--stats FILE] [--stats-ms N] [--receipts FILE]\n"
                 "                 [--max-sessions N] [--max-domains N] [--hostname NAME]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) return usage();
        std::string v = argv[++i];
        if (a == "--listen") {
            opt.listen.push_back(v);
        } else if (a == "--cert") {
            opt.cert = v;
        } else if (a == "--key") {
            opt.key = v;
        } else if (a == "--stats") {
            opt.stats = v;
        } else if (a == "--receipts") {
            opt.receipts = v;
        } else if (a == "--hostname") {
            opt.hostname = v;
        } else if (a == "--stats-ms") {
            opt.statsMs = std::atoi(v.c_str());
            if (opt.statsMs < 10 || opt.statsMs > 60000) return usage();
        } else if (a == "--max-sessions") {
            opt.maxSessions = std::strtoul(v.c_str(), nullptr, 10);
            if (opt.maxSessions < 1 || opt.maxSessions > 100000) return usage();
        } else if (a == "--max-domains") {
            opt.maxDomains = std::strtoul(v.c_str(), nullptr, 10);
            if (opt.maxDomains < 1 || opt.maxDomains > 10000000) return usage();
        } else {
            return usage();
        }
    }
    if (opt.listen.empty() || opt.cert.empty() != opt.key.empty()) return usage();
    for (char c : opt.hostname)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return usage();
    std::signal(SIGPIPE, SIG_IGN);
    if (gnutls_global_init() < 0) return 1;
    int rc;
    {
        Sink sink(std::move(opt));
        rc = sink.init() ? sink.run() : 1;
    }
    gnutls_global_deinit();
    return rc;
}
