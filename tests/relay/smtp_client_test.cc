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

#include "common/dispatcher.h"
#include "relay/outbound/smtp_client.h"
#include "relay/runtime/event_loop.h"

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
    int fd() const { return fd_; }
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
std::optional<Outcome> runOnce(Dispatcher& d, ConnectionCache& cache, ClientRequest req) {
    event_base* base = d.base();
    std::optional<Outcome> out;
    SmtpClient::run(
        d, nullptr, std::move(req),
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
    Dispatcher d(base.get());
    ConnectionCache cache(30, 4);
    FakeMx mx([](FakeMx& s) {
        s.upToData();
        s.readBody();
        s.say("250 2.0.0 queued\r\n");
    });
    auto out = runOnce(d, cache, plainRequest(mx.port(), 4096));
    ASSERT_TRUE(out);
    EXPECT_TRUE(out->result.sessionOk()) << out->result.error;
    ASSERT_EQ(out->result.rcpts.size(), 1u);
    EXPECT_EQ(out->result.rcpts[0].code, 250);
    EXPECT_EQ(out->cachedAtCallback, 1u);
    mx.release();
}

// A hostile MX answers "." while most of a large body is still unsent. The
// rest of the body would go out ahead of the next message's MAIL FROM.
TEST(SmtpClientReuse, AnEarlyReplyToDotWhileTheBodyIsUnsentIsNotParked) {
    EventBasePtr base{event_base_new()};
    Dispatcher d(base.get());
    ConnectionCache cache(30, 4);
    FakeMx mx([](FakeMx& s) {
        s.upToData();
        s.say("250 2.0.0 queued (early)\r\n");  // and never reads the body
    });
    // Far more than the kernel's socket buffers hold (tcp_wmem max 4 MiB).
    auto out = runOnce(d, cache, plainRequest(mx.port(), 16 * 1024 * 1024));
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
    Dispatcher d(base.get());
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
    auto out = runOnce(d, cache, plainRequest(mx.port(), 4096));
    ASSERT_TRUE(out);
    EXPECT_TRUE(out->result.sessionOk()) << out->result.error;
    EXPECT_EQ(out->cachedAtCallback, 0u);
    mx.release();
}

// A finished client goes to the Dispatcher's deferredDelete, never destroyed
// from under its own callback (its Event's std::function is running then):
// also when the cache refuses to park it because it is full. (Review of
// issue 14: finish() replaced the in-flight reference with the cache's, a
// null one when the cache had refused it.)
TEST(SmtpClientLifetime, AClientTheFullCacheRefusedIsBuriedNotDestroyedInItsCallback) {
    for (size_t maxIdle : {size_t{0}, size_t{4}}) {
        EventBasePtr base{event_base_new()};
        Dispatcher d(base.get());
        ConnectionCache cache(30, maxIdle);
        FakeMx mx([](FakeMx& s) {
            s.upToData();
            s.readBody();
            s.say("250 2.0.0 queued\r\n");
        });
        std::optional<ClientResult> out;
        SmtpClient::run(
            d, nullptr, plainRequest(mx.port(), 4096),
            [&](const ClientResult& r) {
                out = r;
                event_base_loopbreak(base.get());  // before the Dispatcher drains
            },
            &cache);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!out && std::chrono::steady_clock::now() < deadline) {
            timeval tv{0, 10000};
            event_base_loopexit(base.get(), &tv);
            event_base_dispatch(base.get());
        }
        ASSERT_TRUE(out);
        EXPECT_TRUE(out->sessionOk()) << out->error;
        if (maxIdle == 0) {
            EXPECT_EQ(cache.size(), 0u);
            EXPECT_EQ(d.pending(), 1u) << "the refused client was not handed to deferredDelete";
        } else {
            EXPECT_EQ(cache.size(), 1u);  // parked: the cache holds it
        }
        mx.release();
    }
}

// The other way a client in state Idle is not in the cache: a reuse took it
// out, and our own refusal of the next message (a bare LF: 5.6.0) ends it
// before its MAIL FROM. It too is buried, with its in-flight reference.
TEST(SmtpClientLifetime, AReusedClientEndedByOurRefusalIsBuried) {
    EventBasePtr base{event_base_new()};
    Dispatcher d(base.get());
    ConnectionCache cache(30, 4);
    FakeMx mx([](FakeMx& s) {
        s.upToData();
        s.readBody();
        s.say("250 2.0.0 queued\r\n");
    });
    auto first = runOnce(d, cache, plainRequest(mx.port(), 4096));
    ASSERT_TRUE(first);
    ASSERT_EQ(cache.size(), 1u);
    auto req = plainRequest(mx.port(), 100);
    req.content = std::make_shared<const std::string>("a\nb\r\n");
    std::optional<ClientResult> out;
    size_t pendingBefore = d.pending();
    SmtpClient::run(
        d, nullptr, std::move(req), [&](const ClientResult& r) { out = r; }, &cache);
    ASSERT_TRUE(out);  // refused at once, before anything was sent
    EXPECT_TRUE(out->reusedConnection);
    EXPECT_EQ(out->failure, ClientResult::Failure::Refused);
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_EQ(d.pending(), pendingBefore + 1)
        << "the reused client was not handed to deferredDelete";
    mx.release();
}

// ------------------------------------------------ every reply at every stage
//
// What the client reports (ClientResult's stage, failure kind, reply code)
// for each way a scripted server can end the session; trouble.h decides
// what it means.

using F = ClientResult::Failure;
using S = ClientResult::Stage;

// One session against a script, no connection cache.
ClientResult session(FakeMx::Script script, std::function<void(ClientRequest&)> adjust = nullptr) {
    EventBasePtr base{event_base_new()};
    Dispatcher d(base.get());
    ConnectionCache cache(0, 0);  // nothing is ever parked
    FakeMx mx(std::move(script));
    auto req = plainRequest(mx.port(), 100);
    if (adjust) adjust(req);
    auto out = runOnce(d, cache, std::move(req));
    mx.release();
    EXPECT_TRUE(out) << "no result";
    return out ? out->result : ClientResult{};
}

void greetAndEhlo(FakeMx& s, const std::string& ehlo = "250 fake.test\r\n") {
    s.say("220 fake.test ESMTP\r\n");
    s.line();
    s.say(ehlo);
}

TEST(SmtpClientStages, FiveHundredGreeting) {
    auto r = session([](FakeMx& s) { s.say("554 5.7.1 go away\r\n"); });
    EXPECT_EQ(r.failure, F::Reply);
    EXPECT_EQ(r.stage, S::Greeting);
    EXPECT_EQ(r.replyCode, 554);
    EXPECT_EQ(r.error, "greeting: 554 5.7.1 go away");
    EXPECT_TRUE(r.permanent());
    EXPECT_FALSE(r.transactionStarted());
}

TEST(SmtpClientStages, FourHundredGreetingIsNotPermanent) {
    auto r = session([](FakeMx& s) { s.say("421 busy\r\n"); });
    EXPECT_EQ(r.failure, F::Reply);
    EXPECT_EQ(r.replyCode, 421);
    EXPECT_FALSE(r.permanent());
}

TEST(SmtpClientStages, EhloRefusedWhereTlsIsRequired) {
    auto r = session([](FakeMx& s) { greetAndEhlo(s, "550-no\r\n550 really not\r\n"); },
                     [](ClientRequest& q) { q.mode = TlsMode::Mandatory; });
    EXPECT_EQ(r.failure, F::Reply);
    EXPECT_EQ(r.stage, S::Ehlo);
    EXPECT_EQ(r.error, "EHLO: 550 no");  // one line, with its code
}

TEST(SmtpClientStages, EhloRefusedFallsBackToHeloWithoutTls) {
    auto r = session([](FakeMx& s) {
        greetAndEhlo(s, "502 no EHLO here\r\n");
        EXPECT_EQ(s.line().substr(0, 5), "HELO ");
        s.say("250 hi\r\n");
        EXPECT_EQ(s.line(), "MAIL FROM:<a@relay.test>\r\n");
        s.say("451 4.3.0 later\r\n");
    });
    EXPECT_EQ(r.failure, F::Reply);
    EXPECT_EQ(r.stage, S::Mail);
    EXPECT_TRUE(r.transactionStarted());
    EXPECT_FALSE(r.permanent());
    EXPECT_EQ(r.error, "MAIL FROM: 451 4.3.0 later");
}

TEST(SmtpClientStages, AMultilineReplyOverTheCapEndsTheSession) {
    auto r = session([](FakeMx& s) {
        std::string lines;
        for (size_t i = 0; i <= kMaxReplyLines; ++i) lines += "220-line\r\n";
        s.say(lines + "220 done\r\n");
    });
    EXPECT_EQ(r.failure, F::BadReply);
    EXPECT_EQ(r.stage, S::Greeting);
    EXPECT_FALSE(r.permanent());
}

TEST(SmtpClientStages, ALineOverTheCapEndsTheSession) {
    auto r =
        session([](FakeMx& s) { s.say("220 " + std::string(kMaxReplyLine + 10, 'x') + "\r\n"); });
    EXPECT_EQ(r.failure, F::BadReply);
}

TEST(SmtpClientStages, StarttlsNotOfferedWhereRequired) {
    auto r = session([](FakeMx& s) { greetAndEhlo(s); },
                     [](ClientRequest& q) { q.mode = TlsMode::Dane; });
    EXPECT_EQ(r.failure, F::StarttlsNotSupported);
    EXPECT_EQ(r.dane, "starttls-not-supported");
    EXPECT_EQ(r.error, "STARTTLS not offered, but TLS is required (dane)");
}

TEST(SmtpClientStages, StarttlsRefusedWhereRequired) {
    auto r = session(
        [](FakeMx& s) {
            greetAndEhlo(s, "250-fake.test\r\n250 STARTTLS\r\n");
            EXPECT_EQ(s.line(), "STARTTLS\r\n");
            s.say("454 4.7.0 TLS not available\r\n");
        },
        [](ClientRequest& q) { q.mode = TlsMode::Mandatory; });
    EXPECT_EQ(r.failure, F::StarttlsNotSupported);
    EXPECT_EQ(r.stage, S::StartTls);
    EXPECT_EQ(r.dane, "starttls-not-supported");
    EXPECT_EQ(r.error, "STARTTLS refused: 454 4.7.0 TLS not available");
}

TEST(SmtpClientStages, StarttlsRefusedCarriesOnInPlaintextWhereOptional) {
    auto r = session(
        [](FakeMx& s) {
            greetAndEhlo(s, "250-fake.test\r\n250 STARTTLS\r\n");
            s.line();
            s.say("454 4.7.0 TLS not available\r\n");
            EXPECT_EQ(s.line(), "MAIL FROM:<a@relay.test>\r\n");
            s.say("550 5.7.1 sender refused\r\n");
        },
        [](ClientRequest& q) { q.mode = TlsMode::Opportunistic; });
    EXPECT_EQ(r.failure, F::Reply);
    EXPECT_EQ(r.stage, S::Mail);
    EXPECT_TRUE(r.permanent());
    EXPECT_TRUE(r.dane.empty());
}

TEST(SmtpClientStages, RcptRefusedForEveryoneEndsWithoutData) {
    auto r = session([](FakeMx& s) {
        greetAndEhlo(s);
        s.line();
        s.say("250 ok\r\n");
        s.line();
        s.say("550 5.1.1 no such user\r\n");
        EXPECT_EQ(s.line(), "QUIT\r\n");
    });
    EXPECT_TRUE(r.sessionOk());
    EXPECT_EQ(r.failure, F::None);
    ASSERT_EQ(r.rcpts.size(), 1u);
    EXPECT_EQ(r.rcpts[0].code, 550);
    EXPECT_EQ(r.rcpts[0].reply, "550 5.1.1 no such user");
}

TEST(SmtpClientStages, DataRefusedGoesToEveryAcceptedRecipient) {
    auto r = session([](FakeMx& s) {
        greetAndEhlo(s);
        s.line();
        s.say("250 ok\r\n");
        s.line();
        s.say("250 ok\r\n");
        s.line();
        s.say("554 5.7.1 no data for you\r\n");
    });
    EXPECT_TRUE(r.sessionOk());
    ASSERT_EQ(r.rcpts.size(), 1u);
    EXPECT_EQ(r.rcpts[0].code, 554);
}

TEST(SmtpClientStages, TheReplyToDotIsEachRecipients) {
    auto r = session([](FakeMx& s) {
        s.upToData();
        s.readBody();
        s.say("451 4.3.0 try later\r\n");
    });
    EXPECT_TRUE(r.sessionOk());
    EXPECT_EQ(r.rcpts.at(0).code, 451);
    EXPECT_EQ(r.rcpts.at(0).reply, "451 4.3.0 try later");
}

TEST(SmtpClientStages, OurOwnRefusalsAreInTheTransaction) {
    auto bare = session(
        [](FakeMx& s) { greetAndEhlo(s); },
        [](ClientRequest& q) { q.content = std::make_shared<const std::string>("a\nb\r\n"); });
    EXPECT_EQ(bare.failure, F::Refused);
    EXPECT_EQ(bare.stage, S::Mail);
    EXPECT_TRUE(bare.permanent());
    EXPECT_EQ(bare.error.substr(0, 6), "5.6.0 ");
    auto big = session([](FakeMx& s) { greetAndEhlo(s, "250-fake.test\r\n250 SIZE 10\r\n"); });
    EXPECT_EQ(big.failure, F::Refused);
    EXPECT_EQ(big.error.substr(0, 6), "5.3.4 ");
    auto utf8 = session([](FakeMx& s) { greetAndEhlo(s); },
                        [](ClientRequest& q) {
                            q.envelope.smtputf8 = true;
                            q.envelope.recipients[0].address = "b\xc3\xa9@fake.test";
                        });
    EXPECT_EQ(utf8.failure, F::Refused);
    EXPECT_EQ(utf8.error.substr(0, 6), "5.6.7 ");
}

// RFC 8689: a REQUIRETLS message to a plaintext server that even offers
// REQUIRETLS: refused by us before MAIL FROM; the server reads QUIT, never
// the envelope.
TEST(SmtpClientStages, ARequireTlsMessageNeverGoesOutWithoutDane) {
    std::string after;
    auto r = session(
        [&after](FakeMx& s) {
            greetAndEhlo(s, "250-fake.test\r\n250 REQUIRETLS\r\n");
            after = s.line();
        },
        [](ClientRequest& q) { q.envelope.requireTls = true; });
    EXPECT_EQ(r.failure, F::RequireTls);
    EXPECT_EQ(r.stage, S::Mail);
    EXPECT_FALSE(r.permanent());
    EXPECT_NE(r.error.find("not authenticated by DANE"), std::string::npos) << r.error;
    EXPECT_EQ(after, "QUIT\r\n");
}

// Attacker's review of REQUIRETLS (not a bug): the other ways a session
// can reach MAIL FROM without authenticated TLS. A server that refuses EHLO
// (HELO fallback), one that refuses STARTTLS where TLS is optional, and one
// that offers REQUIRETLS in plaintext: each gets QUIT, never MAIL FROM.
TEST(SmtpClientStages, ARequireTlsMessageTakesNoPlaintextFallback) {
    struct Case {
        const char* name;
        std::function<void(FakeMx&)> upTo;
    };
    const std::vector<Case> cases = {
        {"HELO fallback",
         [](FakeMx& s) {
             s.say("220 fake.test ESMTP\r\n");
             s.line();
             s.say("502 5.5.1 no EHLO here\r\n");
             s.line();
             s.say("250 fake.test\r\n");
         }},
        {"STARTTLS refused",
         [](FakeMx& s) {
             greetAndEhlo(s, "250-fake.test\r\n250-STARTTLS\r\n250 REQUIRETLS\r\n");
             s.line();
             s.say("454 4.7.0 TLS not available\r\n");
         }},
        {"no STARTTLS", [](FakeMx& s) { greetAndEhlo(s, "250-fake.test\r\n250 REQUIRETLS\r\n"); }},
    };
    for (const auto& c : cases) {
        std::string after;
        auto r = session(
            [&](FakeMx& s) {
                c.upTo(s);
                after = s.line();
            },
            [](ClientRequest& q) {
                q.mode = TlsMode::Opportunistic;
                q.envelope.requireTls = true;
            });
        EXPECT_EQ(r.failure, F::RequireTls) << c.name << ": " << r.error;
        EXPECT_EQ(after, "QUIT\r\n") << c.name;
    }
}

// ... and a parked plaintext connection is not taken for one either: refused
// before a byte is written on it.
TEST(SmtpClientReuse, AParkedPlaintextConnectionCarriesNoRequireTlsMessage) {
    EventBasePtr base{event_base_new()};
    Dispatcher d(base.get());
    ConnectionCache cache(30, 4);
    FakeMx mx([](FakeMx& s) {
        s.upToData();
        s.readBody();
        s.say("250 2.0.0 queued\r\n");
    });
    auto first = runOnce(d, cache, plainRequest(mx.port(), 4096));
    ASSERT_TRUE(first);
    ASSERT_EQ(cache.size(), 1u);
    auto req = plainRequest(mx.port(), 100);
    req.envelope.requireTls = true;
    std::optional<ClientResult> out;
    SmtpClient::run(
        d, nullptr, std::move(req), [&](const ClientResult& r) { out = r; }, &cache);
    ASSERT_TRUE(out);  // refused at once, on the reused connection
    EXPECT_TRUE(out->reusedConnection);
    EXPECT_EQ(out->failure, F::RequireTls);
    mx.release();
}

TEST(SmtpClientStages, TheServerHangingUp) {
    auto r = session([](FakeMx& s) {
        greetAndEhlo(s);
        s.line();
        ::shutdown(s.fd(), SHUT_RDWR);
    });
    EXPECT_EQ(r.failure, F::Network);
    EXPECT_EQ(r.stage, S::Mail);
    EXPECT_EQ(r.error, "connection closed by server");
}

TEST(SmtpClientStages, ASilentServerTimesOut) {
    auto r = session([](FakeMx&) {}, [](ClientRequest& q) { q.timeouts = {1, 1, 1, 1}; });
    EXPECT_EQ(r.failure, F::Timeout);
    EXPECT_EQ(r.stage, S::Greeting);
    EXPECT_EQ(r.error, "timeout in state 1 after 1 s");
}

TEST(SmtpClientStages, NobodyListening) {
    EventBasePtr base{event_base_new()};
    Dispatcher d(base.get());
    ConnectionCache cache(0, 0);
    uint16_t port;
    {
        FakeMx gone([](FakeMx&) {});
        port = gone.port();
    }  // closed: connecting there is refused
    auto out = runOnce(d, cache, plainRequest(port, 100));
    ASSERT_TRUE(out);
    EXPECT_EQ(out->result.failure, F::Network);
    EXPECT_EQ(out->result.stage, S::Connect);
    EXPECT_EQ(out->result.error, "connect: Connection refused");
}

}  // namespace
}  // namespace danerelay::relay
