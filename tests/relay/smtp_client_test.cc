// SmtpClient against a scripted server on 127.0.0.1 (a thread with blocking
// sockets): a connection goes back to the ConnectionCache only when nothing
// is pending in either direction (audit issue 12).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <thread>

#include "relay/runtime/event_loop.h"
#include "relay/outbound/smtp_client.h"

namespace danerelay::relay {
namespace {

// One accepted connection of a listener on 127.0.0.1, driven by a script on
// a thread of its own. The script gets the connected socket.
class FakeMx {
  public:
    using Script = std::function<void(FakeMx&)>;
    explicit FakeMx(Script script) {
        lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int small = 4096;  // inherited by the accepted socket: little room for what we ignore
        ::setsockopt(lfd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        EXPECT_EQ(::listen(lfd_, 1), 0);
        socklen_t len = sizeof sa;
        ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&sa), &len);
        port_ = ntohs(sa.sin_port);
        thread_ = std::thread([this, script = std::move(script)] {
            fd_ = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd_ < 0) return;
            script(*this);
            released_.wait();  // keep the connection open until the test has looked
            ::close(fd_);
        });
    }
    ~FakeMx() {
        release();
        ::shutdown(lfd_, SHUT_RDWR);  // unblocks accept() if the client never came
        thread_.join();
        ::close(lfd_);
    }
    uint16_t port() const { return port_; }
    void release() {
        if (!releasedOnce_) {
            releasedOnce_ = true;
            release_.set_value();
        }
    }

    void say(const std::string& s) {
        for (size_t off = 0; off < s.size();) {
            ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return;
            off += static_cast<size_t>(n);
        }
    }
    // One line from the client, CRLF included ("" at EOF).
    std::string line() {
        std::string l;
        char c;
        while (::recv(fd_, &c, 1, 0) == 1) {
            l += c;
            if (c == '\n') break;
        }
        return l;
    }
    // Reads the DATA payload up to and including CRLF "." CRLF.
    void readBody() {
        std::string tail;
        char buf[65536];
        for (;;) {
            ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) return;
            tail.append(buf, static_cast<size_t>(n));
            if (tail.size() >= 5 && tail.compare(tail.size() - 5, 5, "\r\n.\r\n") == 0) return;
            if (tail.size() > 5) tail.erase(0, tail.size() - 5);
        }
    }
    // Greeting, EHLO (no extensions), MAIL, one RCPT, DATA: all accepted.
    void upToData() {
        say("220 fake.test ESMTP\r\n");
        line();  // EHLO
        say("250 fake.test\r\n");
        line();  // MAIL FROM
        say("250 2.1.0 ok\r\n");
        line();  // RCPT TO
        say("250 2.1.5 ok\r\n");
        line();  // DATA
        say("354 go ahead\r\n");
    }

  private:
    int lfd_ = -1, fd_ = -1;
    uint16_t port_ = 0;
    std::promise<void> release_;
    std::shared_future<void> released_{release_.get_future().share()};
    bool releasedOnce_ = false;
    std::thread thread_;
};

ClientRequest plainRequest(uint16_t port, size_t bodyBytes) {
    ClientRequest req;
    req.mxName = "fake.test";
    req.address = "127.0.0.1";
    req.port = port;
    req.mode = TlsMode::None;
    req.heloName = "relay.test";
    req.envelope.sender = "a@relay.test";
    queue::Recipient rcpt;
    rcpt.address = "b@fake.test";
    req.envelope.recipients.push_back(rcpt);
    req.rcptIndexes = {0};
    std::string content = "Subject: t\r\n\r\n";
    std::string line(998, 'x');
    line += "\r\n";
    while (content.size() < bodyBytes) content += line;
    req.content = std::make_shared<const std::string>(std::move(content));
    req.timeouts = {5, 5, 5, 5};
    return req;
}

struct Outcome {
    ClientResult result;
    size_t cachedAtCallback = 0;  // the cache's size when the result came
};

// Runs one session to its result (at most ~10 s).
std::optional<Outcome> runOnce(event_base* base, ConnectionCache& cache, ClientRequest req) {
    std::optional<Outcome> out;
    SmtpClient::run(
        base, nullptr, std::move(req),
        [&](const ClientResult& r) {
            out = Outcome{r, cache.size()};
        },
        &cache);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!out && std::chrono::steady_clock::now() < deadline) {
        timeval tv{0, 10000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    return out;
}

TEST(SmtpClientReuse, AQuietConnectionIsParked) {
    EventBasePtr base{event_base_new()};
    ConnectionCache cache(30, 4);
    FakeMx mx([](FakeMx& s) {
        s.upToData();
        s.readBody();
        s.say("250 2.0.0 queued\r\n");
    });
    auto out = runOnce(base.get(), cache, plainRequest(mx.port(), 4096));
    ASSERT_TRUE(out);
    EXPECT_TRUE(out->result.sessionOk) << out->result.error;
    ASSERT_EQ(out->result.rcpts.size(), 1u);
    EXPECT_EQ(out->result.rcpts[0].code, 250);
    EXPECT_EQ(out->cachedAtCallback, 1u);
    mx.release();
}

// A hostile MX answers "." while most of a large body is still unsent. The
// rest of the body would go out ahead of the next message's MAIL FROM.
TEST(SmtpClientReuse, AnEarlyReplyToDotWhileTheBodyIsUnsentIsNotParked) {
    EventBasePtr base{event_base_new()};
    ConnectionCache cache(30, 4);
    FakeMx mx([](FakeMx& s) {
        s.upToData();
        s.say("250 2.0.0 queued (early)\r\n");  // and never reads the body
    });
    // Far more than the kernel's socket buffers hold (tcp_wmem max 4 MiB).
    auto out = runOnce(base.get(), cache, plainRequest(mx.port(), 16 * 1024 * 1024));
    ASSERT_TRUE(out);
    EXPECT_EQ(out->cachedAtCallback, 0u);
    EXPECT_EQ(cache.size(), 0u);
    mx.release();
}

// A reply to "." followed by bytes the client has not read yet: a reply
// that fills the client's read exactly (16 KiB), more bytes behind it in the
// socket. Those bytes would be read as the reply to the next MAIL FROM.
TEST(SmtpClientReuse, BytesBehindTheReplyToDotAreNotParked) {
    EventBasePtr base{event_base_new()};
    ConnectionCache cache(30, 4);
    FakeMx mx([](FakeMx& s) {
        s.upToData();
        s.readBody();
        std::string reply;
        const size_t lineBytes = 2048;  // "250-" + text + CRLF
        for (int i = 0; i < 7; ++i) reply += "250-" + std::string(lineBytes - 6, 'a') + "\r\n";
        reply += "250 " + std::string(16384 - reply.size() - 6, 'b') + "\r\n";
        EXPECT_EQ(reply.size(), 16384u);
        reply += "250 2.1.0 sender ok\r\n";  // the 'answer' to a MAIL FROM not yet sent
        s.say(reply);
    });
    auto out = runOnce(base.get(), cache, plainRequest(mx.port(), 4096));
    ASSERT_TRUE(out);
    EXPECT_TRUE(out->result.sessionOk) << out->result.error;
    EXPECT_EQ(out->cachedAtCallback, 0u);
    mx.release();
}

}  // namespace
}  // namespace danerelay::relay
