#include "relay/inbound/smtp_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <thread>

#include "common/clock.h"
#include "common/dispatcher.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/runtime/mail_date.h"
#include "relay/runtime/net_address.h"
#include "tests/relay/sockaddr_util.h"

using namespace danerelay::relay;

using danerelay::relay::testing::addr;

TEST(ClientNetwork, Ipv4Slash24) {
    EXPECT_EQ(clientNetwork(addr("192.0.2.77")), "192.0.2.0/24");
    EXPECT_EQ(clientNetwork(addr("192.0.2.255")), "192.0.2.0/24");
    EXPECT_NE(clientNetwork(addr("192.0.3.1")), clientNetwork(addr("192.0.2.1")));
    EXPECT_EQ(clientNetwork(addr("127.0.0.4")), "127.0.0.0/24");
    EXPECT_EQ(clientNetwork(addr("127.0.1.2")), "127.0.1.0/24");
}

TEST(ClientNetwork, Ipv6Slash64AndMappedIpv4) {
    EXPECT_EQ(clientNetwork(addr("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), "2001:db8:1:2::/64");
    EXPECT_EQ(clientNetwork(addr("2001:db8:1:2::1")), clientNetwork(addr("2001:db8:1:2:ffff::9")));
    EXPECT_NE(clientNetwork(addr("2001:db8:1:3::1")), clientNetwork(addr("2001:db8:1:2::1")));
    // An IPv4 client on a dual-stack socket is counted in its /24.
    EXPECT_EQ(clientNetwork(addr("::ffff:192.0.2.9")), "192.0.2.0/24");
}

// ------------------------------------------------------------------ a server on a real loop
//
// An SmtpServer on 127.0.0.1, a spool in a temporary directory, a group
// committer, and a Dispatcher with a ManualClock. The client is a plain
// socket in the test's own thread: it pipelines a whole session, then the
// loop runs until the server has let it go.

namespace danerelay::relay {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1'700'000'000;  // what the ManualClock says

class SmtpServerLoopTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-smtpd-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        auto sp = queue::Spool::open(dir_ + "/spool", queue::Spool::Mode::Writer);
        ASSERT_TRUE(sp.ok());
        spool_ = std::move(*sp);
        base_.reset(event_base_new());
        dispatcher_ = std::make_unique<Dispatcher>(base_.get(), clock_);
        poster_ = std::make_unique<LoopPoster>(base_.get());
        workers_ = std::make_unique<WorkerPool>(*poster_, 1);
        committer_ = std::make_unique<Committer>(*poster_, *spool_, 8);
        cfg_.hostname = "relay.test";
        cfg_.listeners = {ListenerConfig{"127.0.0.1", 0, ListenerTls::StartTls, "127.0.0.1:0"}};
        cfg_.relayNetworks = {*Cidr::parse("127.0.0.0/8")};
        startServer();
    }
    // A server on cfg_ as it is now (a test may change cfg_ and call again).
    void startServer() {
        server_.reset();
        ServerContext ctx;
        ctx.config = &cfg_;
        ctx.base = base_.get();
        ctx.dispatcher = dispatcher_.get();
        ctx.workers = workers_.get();
        ctx.committer = committer_.get();
        ctx.ids = &ids_;
        ctx.onQueued = [this](const std::string& id) { queued_.push_back(id); };
        server_ = std::make_unique<SmtpServer>(ctx);
        std::vector<UniqueFd> bound;
        bound.push_back(bindLoopback());
        ASSERT_TRUE(server_->listen(std::move(bound)).ok());
    }
    void TearDown() override {
        server_.reset();
        committer_.reset();
        if (workers_) workers_->stop();
        workers_.reset();
        dispatcher_.reset();
        poster_.reset();
        base_.reset();
        spool_.reset();
        fs::remove_all(dir_);
    }

    UniqueFd bindLoopback() {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        EXPECT_EQ(::listen(fd.get(), 8), 0);
        socklen_t len = sizeof sa;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
        port_ = ntohs(sa.sin_port);
        return fd;
    }

    // Connects, sends `script` all at once, and runs the loop until the
    // server has closed the session (or 10 s have passed).
    UniqueFd runSession(const std::string& script) {
        UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons(port_);
        EXPECT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        EXPECT_EQ(::send(c.get(), script.data(), script.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(script.size()));
        bool connected = false;
        auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < give_up) {
            event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
            connected = connected || server_->sessionCount() > 0;
            if (connected && server_->sessionCount() == 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        EXPECT_TRUE(connected);
        EXPECT_EQ(server_->sessionCount(), 0u);
        return c;
    }

    // Everything the server sent on c, up to its close.
    static std::string transcript(const UniqueFd& c) {
        std::string all;
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(c.get(), buf, sizeof buf, 0)) > 0)
            all.append(buf, static_cast<size_t>(n));
        return all;
    }

    std::string dir_;
    ManualClock clock_{kNow};
    std::unique_ptr<queue::Spool> spool_;
    EventBasePtr base_;
    std::unique_ptr<Dispatcher> dispatcher_;
    std::unique_ptr<LoopPoster> poster_;
    std::unique_ptr<WorkerPool> workers_;
    std::unique_ptr<Committer> committer_;
    queue::QueueIdGenerator ids_;
    Config cfg_;
    std::unique_ptr<SmtpServer> server_;
    uint16_t port_ = 0;
    std::vector<std::string> queued_;
};

const std::string kMessage = "Subject: t\r\n\r\nbody\r\n.\r\n";

// The session applies what parseMailParams and parseRcptParams give (each
// refusal word for word), and the arrival time and the Received: date come
// from the Dispatcher's clock, not the system's.
TEST_F(SmtpServerLoopTest, ParametersAndTimeReachTheSpool) {
    auto c = runSession(
        "EHLO client.test\r\n"
        "MAIL FROM:<a@inside.test> SIZE=1 size=2\r\n"
        "MAIL FROM:<a@inside.test> RET=hdrs ENVID=abc+2B1 BODY=8BITMIME SIZE=20 AUTH=<>\r\n"
        "RCPT TO:<c@example.com> NOTIFY=NEVER,SUCCESS\r\n"
        "RCPT TO:<c@example.com> X-FOO=1\r\n"
        "RCPT TO:<b@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b+2Bx@example.com\r\n"
        "DATA\r\n" +
        kMessage + "QUIT\r\n");
    std::string t = transcript(c);
    ASSERT_EQ(queued_.size(), 1u) << t;
    const std::string& id = queued_[0];
    auto ehloEnd = t.find("250 SMTPUTF8\r\n");
    ASSERT_NE(ehloEnd, std::string::npos) << t;
    EXPECT_EQ(t.substr(ehloEnd + 14),
              "501 5.5.4 Error: duplicate SIZE parameter\r\n"
              "250 2.1.0 Ok\r\n"
              "501 5.5.4 Error: NOTIFY=NEVER cannot be combined\r\n"
              "555 5.5.4 Error: unsupported parameter X-FOO\r\n"
              "250 2.1.5 Ok\r\n"
              "354 End data with <CR><LF>.<CR><LF>\r\n"
              "250 2.0.0 Ok: queued as " +
                  id +
                  "\r\n"
                  "221 2.0.0 Bye\r\n");
    auto stored = spool_->load(id);
    ASSERT_TRUE(stored.ok());
    const auto& env = stored->envelope;
    EXPECT_EQ(env.arrival, kNow);
    EXPECT_EQ(env.sender, "a@inside.test");
    EXPECT_EQ(env.envid, "abc+1");
    EXPECT_EQ(env.ret, queue::DsnRet::Headers);
    EXPECT_TRUE(env.eightBitMime);
    EXPECT_FALSE(env.smtputf8);
    ASSERT_EQ(env.recipients.size(), 1u);
    EXPECT_EQ(env.recipients[0], (queue::Recipient{"b@example.com", "rfc822;b+x@example.com",
                                                   queue::kNotifyFailure | queue::kNotifyDelay}));
    auto content = spool_->loadContent(id);
    ASSERT_TRUE(content.ok());
    EXPECT_EQ(content->rfind("Received: from client.test ([127.0.0.1])\r\n", 0), 0u) << *content;
    EXPECT_NE(content->find("; " + rfc5322Date(static_cast<std::time_t>(kNow)) + "\r\n"),
              std::string::npos)
        << *content;
}

// A session that finishes is not destroyed from under its own callback: the
// Dispatcher holds it until that callback has returned, then lets it go.
TEST_F(SmtpServerLoopTest, FinishedSessionGoesThroughDeferredDelete) {
    EXPECT_EQ(&server_->dispatcher(), dispatcher_.get());
    EXPECT_EQ(dispatcher_->pending(), 0u);
    auto c = runSession("QUIT\r\n");
    // The pass that closed it is over; the Dispatcher's wake-up is not.
    EXPECT_EQ(dispatcher_->pending(), 1u);
    for (int i = 0; i < 100 && dispatcher_->pending() > 0; ++i) {
        event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    EXPECT_EQ(dispatcher_->pending(), 0u);
    EXPECT_EQ(transcript(c), "220 relay.test ESMTP danerelay\r\n221 2.0.0 Bye\r\n");
}

// ------------------------------------------------------------------ PROXY protocol

class ProxyListenerTest : public SmtpServerLoopTest {
  protected:
    void SetUp() override {
        SmtpServerLoopTest::SetUp();
        cfg_.listeners[0].proxy = ProxyProtocol::V1;
        cfg_.listeners[0].proxyFrom = {*Cidr::parse("127.0.0.1/32")};
        startServer();
    }
    // Connected and sent; the loop runs until `want` sessions are open and
    // `until` has arrived on c (or 10 s).
    UniqueFd open(const std::string& script, size_t want, const std::string& until,
                  std::string* got) {
        UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons(port_);
        ::connect(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
        auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        bool sent = false;
        char buf[4096];
        while (std::chrono::steady_clock::now() < give_up) {
            if (!sent) {
                sent = ::send(c.get(), script.data(), script.size(), MSG_NOSIGNAL) ==
                       static_cast<ssize_t>(script.size());
            }
            event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
            ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
            if (n > 0) got->append(buf, static_cast<size_t>(n));
            if (server_->sessionCount() == want && got->find(until) != std::string::npos) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return c;
    }
};

// The header's client is the one relay_networks and Received: see; the
// command pipelined in the header's own segment is answered, not lost.
TEST_F(ProxyListenerTest, HeaderClientIsTheClient) {
    auto c = runSession(
        "PROXY TCP4 127.0.0.9 127.0.0.1 5555 25\r\nEHLO c.test\r\n"
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" +
        kMessage + "QUIT\r\n");
    std::string t = transcript(c);
    ASSERT_EQ(queued_.size(), 1u) << t;
    EXPECT_EQ(t.rfind("220 relay.test ESMTP danerelay\r\n250-relay.test\r\n", 0), 0u) << t;
    auto content = spool_->loadContent(queued_[0]);
    ASSERT_TRUE(content.ok());
    EXPECT_EQ(content->rfind("Received: from c.test ([127.0.0.9])\r\n", 0), 0u) << *content;
    c = runSession(
        "PROXY TCP4 192.0.2.1 127.0.0.1 5555 25\r\nEHLO c.test\r\n"
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@example.com>\r\nQUIT\r\n");
    EXPECT_NE(transcript(c).find("554 5.7.1"), std::string::npos);  // outside relay_networks
}

// Limits count the header's client, from the moment it is known: the
// balancer's own address (every session's peer) never fills a bucket.
TEST_F(ProxyListenerTest, PerClientLimitCountsTheHeaderClient) {
    cfg_.limits.maxSessionsPerClient = 1;
    startServer();
    std::string g1, g2, g3;
    auto c1 = open("PROXY TCP4 192.0.2.1 127.0.0.1 1 25\r\n", 1, "220 ", &g1);
    auto c2 = open("PROXY TCP4 192.0.2.2 127.0.0.1 1 25\r\n", 2, "220 ", &g2);
    EXPECT_EQ(g2, "220 relay.test ESMTP danerelay\r\n");  // another client: admitted
    auto c3 = open("PROXY TCP4 192.0.2.1 127.0.0.1 2 25\r\n", 2, "421 ", &g3);
    EXPECT_EQ(g3, "421 4.7.0 relay.test Error: too many sessions from this client\r\n");
    EXPECT_EQ(g1, "220 relay.test ESMTP danerelay\r\n");
    EXPECT_EQ(server_->sessionCount(), 2u);
}

// A garbage header: closed, nothing sent, the slot given back.
TEST_F(ProxyListenerTest, GarbageHeaderClosesSilently) {
    auto c = runSession("EHLO direct.test\r\n");
    EXPECT_EQ(transcript(c), "");
}

// Slowloris before the header: a peer in proxy_from that trickles a valid
// header one byte at a time (each piece NeedMore) does not move the deadline
// on: min(10 s, command_timeout) from accept for the whole header, then the
// close with nothing sent and the slot given back.
TEST_F(ProxyListenerTest, TrickledHeaderIsCutOffAtItsDeadline) {
    cfg_.limits.commandTimeout = 1;
    startServer();
    UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port_);
    ::connect(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    const std::string header = "PROXY TCP4 127.0.0.9 127.0.0.1 5555 25\r\n";
    auto start = std::chrono::steady_clock::now();
    auto next = start;
    size_t sent = 0;
    bool seen = false, closed = false;
    std::string got;
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(4)) {
        if (sent < header.size() && std::chrono::steady_clock::now() >= next) {
            if (::send(c.get(), header.data() + sent, 1, MSG_NOSIGNAL) == 1) ++sent;
            next += std::chrono::milliseconds(100);
        }
        event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
        seen = seen || server_->sessionCount() == 1;
        char buf[256];
        ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            closed = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(seen);
    EXPECT_TRUE(closed) << "still open after 4 s with " << sent << " header bytes";
    EXPECT_LT(sent, header.size()) << "the whole header got through the trickle";
    EXPECT_LT(took, std::chrono::milliseconds(2500));
    EXPECT_EQ(got, "");
    EXPECT_EQ(server_->sessionCount(), 0u);
}

// Without a Dispatcher in the context the server makes its own.
TEST(SmtpServerDispatcher, OwnWhenNoneIsGiven) {
    EventBasePtr base(event_base_new());
    Config cfg;
    ServerContext ctx;
    ctx.config = &cfg;
    ctx.base = base.get();
    SmtpServer server(ctx);
    EXPECT_EQ(server.dispatcher().base(), base.get());
    EXPECT_EQ(&server.dispatcher().clock(), &SystemClock::instance());
}

}  // namespace
}  // namespace danerelay::relay
