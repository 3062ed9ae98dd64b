// sink_drive — the benchmark sink's own capacity figure (not a test): C
// client threads, each with its own SMTP sessions to smtp_sink, send N
// messages in all, over plaintext or STARTTLS, and print messages a second
// from the first connection to the last 250. Each message is MAIL, RCPT and
// DATA pipelined (as the relay sends them), then the body; --per-session
// messages go over one session (the relay reuses its connections), then
// QUIT and a new session (with a new TLS handshake).
//
//   sink_drive --connect 127.0.1.1:25 [--messages 20000] [--clients 8]
//              [--per-session 100] [--size 2048] [--tls] [--domains 1]
//
// Every reply is read with a 30 s bound; any failure ends the run (exit 1).
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
    std::string host = "127.0.1.1";
    int port = 25;
    long messages = 20000, perSession = 100, size = 2048, domains = 1;
    int clients = 8;
    bool tls = false;
};

class Conn {
  public:
    explicit Conn(int fd) : fd_(fd) {}
    ~Conn() {
        if (tls_) gnutls_deinit(tls_);
        if (fd_ >= 0) ::close(fd_);
    }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    bool send(const std::string& s) {
        size_t off = 0;
        while (off < s.size()) {
            ssize_t n = tls_ ? gnutls_record_send(tls_, s.data() + off, s.size() - off)
                             : ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += static_cast<size_t>(n);
        }
        return true;
    }
    // One complete reply; its code, or -1.
    int reply() {
        for (int rounds = 0; rounds < 10000; ++rounds) {
            size_t start = 0;
            for (;;) {
                size_t nl = buf_.find('\n', start);
                if (nl == std::string::npos) break;
                if (nl - start >= 4 && buf_[start + 3] == ' ') {
                    int code = std::atoi(buf_.substr(start, 3).c_str());
                    buf_.erase(0, nl + 1);
                    return code;
                }
                start = nl + 1;
            }
            char tmp[16384];
            ssize_t n =
                tls_ ? gnutls_record_recv(tls_, tmp, sizeof tmp) : ::recv(fd_, tmp, sizeof tmp, 0);
            if (tls_ && (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)) continue;  // a ticket
            if (n <= 0) return -1;
            buf_.append(tmp, static_cast<size_t>(n));
            if (buf_.size() > 65536) return -1;
        }
        return -1;
    }
    bool startTls(gnutls_certificate_credentials_t cred) {
        if (gnutls_init(&tls_, GNUTLS_CLIENT) < 0) return false;
        gnutls_set_default_priority(tls_);
        gnutls_credentials_set(tls_, GNUTLS_CRD_CERTIFICATE, cred);
        gnutls_transport_set_int(tls_, fd_);
        gnutls_handshake_set_timeout(tls_, 30000);
        int rc;
        do {
            rc = gnutls_handshake(tls_);
        } while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
        buf_.clear();
        return rc >= 0;
    }

  private:
    int fd_;
    gnutls_session_t tls_ = nullptr;
    std::string buf_;
};

std::atomic<long> next{0}, done{0}, failures{0};

bool session(const Options& o, gnutls_certificate_credentials_t cred, const std::string& body) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    Conn c(fd);
    timeval tv{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(o.port));
    inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) return false;
    if (c.reply() != 220 || !c.send("EHLO drive.test\r\n") || c.reply() != 250) return false;
    if (o.tls) {
        if (!c.send("STARTTLS\r\n") || c.reply() != 220 || !c.startTls(cred)) return false;
        if (!c.send("EHLO drive.test\r\n") || c.reply() != 250) return false;
    }
    for (long i = 0; i < o.perSession; ++i) {
        long n = next.fetch_add(1);
        if (n >= o.messages) break;
        std::string dom =
            o.domains > 1 ? "d" + std::to_string(n % o.domains) + ".dest.test" : "secure.test";
        if (!c.send("MAIL FROM:<drive@inside.test>\r\nRCPT TO:<sink@" + dom + ">\r\nDATA\r\n"))
            return false;
        if (c.reply() != 250 || c.reply() != 250 || c.reply() != 354) return false;
        std::string msg = "Message-ID: <drive." + std::to_string(n) + "@drive.test>\r\n" + body;
        if (!c.send(msg) || c.reply() != 250) return false;
        done.fetch_add(1);
    }
    c.send("QUIT\r\n");
    c.reply();
    return true;
}

int usage() {
    std::fprintf(stderr,
                 "usage: sink_drive --connect ADDR:PORT [--messages N] [--clients C]\n"
                 "                  [--per-session M] [--size BYTES] [--tls] [--domains D]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--tls") {
            o.tls = true;
            continue;
        }
        if (i + 1 >= argc) return usage();
        std::string v = argv[++i];
        if (a == "--connect") {
            size_t colon = v.rfind(':');
            if (colon == std::string::npos) return usage();
            o.host = v.substr(0, colon);
            o.port = std::atoi(v.c_str() + colon + 1);
        } else if (a == "--messages") {
            o.messages = std::atol(v.c_str());
        } else if (a == "--clients") {
            o.clients = std::atoi(v.c_str());
        } else if (a == "--per-session") {
            o.perSession = std::atol(v.c_str());
        } else if (a == "--size") {
            o.size = std::atol(v.c_str());
        } else if (a == "--domains") {
            o.domains = std::atol(v.c_str());
        } else {
            return usage();
        }
    }
    in_addr probe{};
    if (inet_pton(AF_INET, o.host.c_str(), &probe) != 1 || (ntohl(probe.s_addr) >> 24) != 127 ||
        o.port <= 0 || o.port > 65535 || o.messages < 1 || o.clients < 1 || o.clients > 1000 ||
        o.perSession < 1 || o.size < 0 || o.size > (16 << 20) || o.domains < 1)
        return usage();
    std::string body = "From: drive@inside.test\r\nSubject: sink capacity\r\n\r\n";
    std::string line(76, 'x');
    while (static_cast<long>(body.size()) < o.size) body += line + "\r\n";
    body += ".\r\n";

    gnutls_global_init();
    gnutls_certificate_credentials_t cred = nullptr;
    gnutls_certificate_allocate_credentials(&cred);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < o.clients; ++t) {
        threads.emplace_back([&] {
            for (int guard = 0; guard < 1000000 && next.load() < o.messages; ++guard) {
                if (!session(o, cred, body)) {
                    failures.fetch_add(1);
                    return;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "sink_drive: %ld messages of %ld bytes, %d clients, %ld per session, %s: "
        "%.2f s = %.0f msg/s%s\n",
        done.load(), o.size, o.clients, o.perSession, o.tls ? "STARTTLS" : "plaintext", secs,
        static_cast<double>(done.load()) / secs, failures.load() ? " (SESSIONS FAILED)" : "");
    gnutls_certificate_free_credentials(cred);
    gnutls_global_deinit();
    return failures.load() || done.load() < o.messages ? 1 : 0;
}
