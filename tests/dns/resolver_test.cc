// Resolver behaviour against a fake DNS server on 127.0.0.1 (a thread with a
// UDP socket and a TCP listener). The real resolver, Unbound, is met in the
// end-to-end tests; this checks our transport rules quickly.
#include "dns/resolver.h"
#include "dns/validator.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "tests/dns/dns_test_util.h"
#include "tests/dns/test_zone.h"

using namespace danerelay::dns;
using danerelay::ManualClock;
using danerelay::dns::testing::build;
using danerelay::dns::testing::Reply;
using danerelay::dns::testing::TestZone;

namespace {

using Packets = std::vector<std::vector<uint8_t>>;

struct Query {
    uint16_t id;
    std::string name;
    uint16_t type;
    bool cd;
    bool tcp;
};

class FakeServer {
  public:
    // handler returns the packets to send back, in order.
    using Handler = std::function<std::vector<std::vector<uint8_t>>(const Query&)>;

    explicit FakeServer(Handler h) : handler_(std::move(h)) {
        udp_ = socket(AF_INET, SOCK_DGRAM, 0);
        tcp_ = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(tcp_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(udp_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
        socklen_t len = sizeof sa;
        getsockname(udp_, reinterpret_cast<sockaddr*>(&sa), &len);
        port_ = ntohs(sa.sin_port);
        bind(tcp_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
        listen(tcp_, 8);
        thread_ = std::thread([this] { run(); });
    }
    ~FakeServer() {
        stop_ = true;
        thread_.join();
        close(udp_);
        close(tcp_);
    }
    uint16_t port() const { return port_; }
    int count() const { return count_; }

  private:
    static bool decode(const uint8_t* p, size_t n, Query* q) {
        ldns_pkt* raw = nullptr;
        ldns_status st = ldns_wire2pkt(&raw, p, n);
        Pkt pkt(raw);
        if (st != LDNS_STATUS_OK) return false;
        const ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0);
        q->id = ldns_pkt_id(pkt.get());
        q->name = takeString(ldns_rdf2str(ldns_rr_owner(rr)));
        q->type = static_cast<uint16_t>(ldns_rr_get_type(rr));
        q->cd = ldns_pkt_cd(pkt.get());
        return true;
    }

    void run() {
        while (!stop_) {
            pollfd fds[2] = {{udp_, POLLIN, 0}, {tcp_, POLLIN, 0}};
            if (poll(fds, 2, 50) <= 0) continue;
            uint8_t buf[65536];
            if (fds[0].revents & POLLIN) {
                sockaddr_storage from{};
                socklen_t flen = sizeof from;
                ssize_t n =
                    recvfrom(udp_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
                Query q{};
                if (n > 0 && decode(buf, static_cast<size_t>(n), &q)) {
                    q.tcp = false;
                    ++count_;
                    for (auto& out : handler_(q)) {
                        sendto(udp_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from),
                               flen);
                    }
                }
            }
            if (fds[1].revents & POLLIN) {
                int c = accept(tcp_, nullptr, nullptr);
                uint8_t len[2];
                if (c >= 0 && recv(c, len, 2, MSG_WAITALL) == 2) {
                    size_t want = static_cast<size_t>(len[0] << 8 | len[1]);
                    Query q{};
                    if (recv(c, buf, want, MSG_WAITALL) == static_cast<ssize_t>(want) &&
                        decode(buf, want, &q)) {
                        q.tcp = true;
                        ++count_;
                        for (auto& out : handler_(q)) {
                            uint8_t l[2] = {static_cast<uint8_t>(out.size() >> 8),
                                            static_cast<uint8_t>(out.size() & 0xff)};
                            send(c, l, 2, 0);
                            send(c, out.data(), out.size(), 0);
                        }
                    }
                }
                if (c >= 0) close(c);
            }
        }
    }

    Handler handler_;
    int udp_ = -1, tcp_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> count_{0};
    std::thread thread_;
};

Reply mxReply(const Query& q, bool ad = true) {
    Reply r;
    r.id = q.id;
    r.qname = q.name;
    r.qtype = q.type;
    r.ad = ad;
    r.answer = {q.name + " 300 IN MX 10 mx.example.org."};
    return r;
}

class ResolverTest : public ::testing::Test {
  protected:
    void SetUp() override { base_ = event_base_new(); }
    void TearDown() override { event_base_free(base_); }

    ResolverOptions options(std::initializer_list<uint16_t> ports, unsigned timeoutMs = 300) {
        ResolverOptions o;
        for (auto p : ports) {
            ServerAddress s;
            s.host = "127.0.0.1";
            s.port = p;
            s.trusted = true;
            o.servers.push_back(s);
        }
        o.timeoutMs = timeoutMs;
        o.attempts = 3;
        return o;
    }
    // Runs the loop until n answers arrived (or 5 s).
    std::vector<Answer> run(Resolver& r, std::vector<std::pair<std::string, uint16_t>> qs) {
        std::vector<Answer> out;
        size_t want = qs.size();
        for (auto& [name, type] : qs) {
            r.lookup(name, type, [&, want](const Answer& a) {
                out.push_back(a);
                if (out.size() == want) event_base_loopbreak(base_);
            });
        }
        timeval limit{5, 0};
        event_base_loopexit(base_, &limit);
        event_base_dispatch(base_);
        return out;
    }
    event_base* base_ = nullptr;
};

TEST_F(ResolverTest, AnswersAndCoalescesIdenticalLookups) {
    FakeServer server([](const Query& q) { return Packets{build(mxReply(q))}; });
    Resolver r(base_, options({server.port()}));
    auto answers = run(r, {{"example.org", kTypeMx}, {"EXAMPLE.org.", kTypeMx}});
    ASSERT_EQ(answers.size(), 2u);
    for (const auto& a : answers) {
        EXPECT_EQ(a.outcome, Outcome::Data);
        EXPECT_EQ(a.security, Security::Secure);
    }
    EXPECT_EQ(server.count(), 1);
}

TEST_F(ResolverTest, CacheHonoursTtlWithInjectedClock) {
    FakeServer server([](const Query& q) { return Packets{build(mxReply(q))}; });
    ManualClock clock;
    Resolver r(base_, options({server.port()}));
    r.setClock(clock);
    run(r, {{"example.org", kTypeMx}});
    auto cached = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(cached.size(), 1u);
    EXPECT_TRUE(cached[0].fromCache);
    EXPECT_EQ(server.count(), 1);
    clock.advance(std::chrono::seconds(301));
    auto fresh = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(fresh.size(), 1u);
    EXPECT_FALSE(fresh[0].fromCache);
    EXPECT_EQ(server.count(), 2);
}

TEST_F(ResolverTest, CacheEntryExpiresExactlyAtItsTtl) {
    FakeServer server([](const Query& q) { return Packets{build(mxReply(q))}; });
    ManualClock clock;
    Resolver r(base_, options({server.port()}), clock);
    run(r, {{"example.org", kTypeMx}});
    clock.advance(std::chrono::seconds(299));
    auto cached = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(cached.size(), 1u);
    EXPECT_TRUE(cached[0].fromCache);
    clock.advance(std::chrono::seconds(1));  // 300 s: the TTL is over
    auto fresh = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(fresh.size(), 1u);
    EXPECT_FALSE(fresh[0].fromCache);
    EXPECT_EQ(server.count(), 2);
}

TEST_F(ResolverTest, LocalValidationRunsAtTheClocksWallTime) {
    // The zone's signatures hold for [kNow - 1 h, kNow + 1 d]: the verdict
    // follows the injected clock, not the machine's.
    TestZone zone;
    auto wire =
        TestZone::packet("t.", "MX", LDNS_RCODE_NOERROR, zone.sign({"t. 300 IN MX 10 mx.t."}));
    FakeServer server([&](const Query& q) {
        auto w = wire;
        w[0] = static_cast<uint8_t>(q.id >> 8);
        w[1] = static_cast<uint8_t>(q.id & 0xff);
        return Packets{w};
    });
    auto verdictAt = [&](int64_t now) {
        auto v = Validator::create(
            zone.anchor(), "test anchor",
            [&](const std::string& name, uint16_t type) -> danerelay::Result<std::vector<uint8_t>> {
                if (name == "t." && type == 48) return zone.dnskeyAnswer();
                return danerelay::Error::temporary("no answer for " + name);
            });
        EXPECT_TRUE(v);
        ResolverOptions o = options({server.port()});
        o.validator = *v;
        o.offload = [](std::function<void()> work, std::function<void()> done) {
            work();
            done();
        };
        ManualClock clock(now);
        Resolver r(base_, o, clock);
        auto a = run(r, {{"t", kTypeMx}});
        return a.empty() ? Security::Indeterminate : a[0].security;
    };
    EXPECT_EQ(verdictAt(TestZone::kNow), Security::Secure);
    EXPECT_EQ(verdictAt(TestZone::kNow + 2 * 86400), Security::Bogus);
}

TEST_F(ResolverTest, SpoofedIdAndForeignQuestionAreDropped) {
    FakeServer server([](const Query& q) {
        Query wrongId = q;
        wrongId.id = static_cast<uint16_t>(q.id + 1);
        Reply forged = mxReply(wrongId);
        forged.answer = {q.name + " 300 IN MX 10 evil.example."};
        Reply other = mxReply(q);
        other.qname = "other.example.";
        other.answer = {"other.example. 300 IN MX 10 evil.example."};
        // Our ID and our question, but a body that does not parse: read
        // once, found wanting, dropped like the others (never the answer,
        // never a failure of the lookup).
        Reply cutReply = mxReply(q);
        cutReply.answer = {q.name + " 300 IN MX 10 evil.example."};
        auto cut = build(cutReply);
        cut.resize(cut.size() - 3);
        return Packets{build(forged), build(other), cut, build(mxReply(q))};
    });
    Resolver r(base_, options({server.port()}));
    auto a = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(a[0].mx.size(), 1u);
    EXPECT_EQ(a[0].mx[0].host, "mx.example.org");
}

TEST_F(ResolverTest, TruncatedUdpIsRetriedOverTcp) {
    FakeServer server([](const Query& q) {
        Reply r = mxReply(q);
        if (!q.tcp) {
            r.tc = true;
            r.answer.clear();
        }
        return Packets{build(r)};
    });
    Resolver r(base_, options({server.port()}));
    auto a = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].outcome, Outcome::Data);
    EXPECT_EQ(server.count(), 2);  // one UDP, one TCP
}

TEST_F(ResolverTest, SilentServerTimesOutAndTheNextAnswers) {
    FakeServer silent([](const Query&) { return Packets{}; });
    FakeServer good([](const Query& q) { return Packets{build(mxReply(q))}; });
    Resolver r(base_, options({silent.port(), good.port()}, 200));
    auto a = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].outcome, Outcome::Data);
    Resolver r2(base_, options({silent.port()}, 100));
    auto t = run(r2, {{"example.org", kTypeMx}});
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].outcome, Outcome::Timeout);
    EXPECT_EQ(t[0].security, Security::Indeterminate);
}

TEST_F(ResolverTest, EachQueryWalksTheServersWhateverOthersDo) {
    // Two servers, two attempts, the first server silent: every one of
    // many concurrent lookups must reach the good one on its second try,
    // however the others take their turns.
    FakeServer silent([](const Query&) { return Packets{}; });
    FakeServer good([](const Query& q) { return Packets{build(mxReply(q))}; });
    auto o = options({silent.port(), good.port()}, 200);
    o.attempts = 2;
    Resolver r(base_, o);
    std::vector<std::pair<std::string, uint16_t>> qs;
    for (int i = 0; i < 20; ++i) qs.emplace_back("n" + std::to_string(i) + ".example.org", kTypeMx);
    auto a = run(r, qs);
    ASSERT_EQ(a.size(), qs.size());
    for (const auto& x : a) EXPECT_EQ(x.outcome, Outcome::Data) << x.qname << ": " << x.detail;
}

TEST_F(ResolverTest, ServfailThatValidatesWithCdIsBogus) {
    FakeServer server([](const Query& q) {
        Reply r = mxReply(q, false);
        if (!q.cd) {
            r.rcode = LDNS_RCODE_SERVFAIL;
            r.answer.clear();
        }
        return Packets{build(r)};
    });
    Resolver r(base_, options({server.port()}));
    auto a = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].security, Security::Bogus);
    EXPECT_TRUE(a[0].mx.empty());  // bogus data is never handed out
}

TEST_F(ResolverTest, RecordsBesideASecureAnswerStayBogusNotIndeterminate) {
    // Resolver mode: an on-path attacker appends a class-CH record to the
    // validating resolver's answer, with or without CD. Our Bogus verdict
    // (and its reason) is final; the CD retry for a server's own SERVFAIL
    // must not turn it into an indeterminate lookup failure.
    FakeServer server([](const Query& q) {
        Reply r = mxReply(q);
        r.answer.push_back(q.name + " 300 CH MX 0 mx.evil.example.");
        return Packets{build(r)};
    });
    Resolver r(base_, options({server.port()}));
    auto a = run(r, {{"example.org", kTypeMx}});
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].security, Security::Bogus) << a[0].detail;
    EXPECT_TRUE(a[0].mx.empty());
    EXPECT_NE(a[0].detail.find("CH MX"), std::string::npos) << a[0].detail;
    EXPECT_EQ(server.count(), 1);
}

TEST(BlockingFetcher, AServfailIsRetriedNotTakenAsTheAnswer) {
    // The validator's key fetches: one SERVFAIL from a loaded resolver (an
    // upstream timeout) must cost an attempt, not the whole fetch.
    std::atomic<int> asked{0};
    FakeServer server([&](const Query& q) {
        Reply r = mxReply(q, false);
        if (asked++ == 0) {
            r.rcode = LDNS_RCODE_SERVFAIL;
            r.answer.clear();
        }
        return Packets{build(r)};
    });
    auto fetch = blockingFetcher({{"127.0.0.1", server.port()}}, 1000, 3);
    auto wire = fetch("example.org.", kTypeMx);
    ASSERT_TRUE(wire) << wire.error().message;
    EXPECT_EQ(asked.load(), 2);
    ASSERT_GT(wire->size(), 4u);
    EXPECT_EQ((*wire)[3] & 0x0f, 0);  // NOERROR
    // Always SERVFAIL: the fetch fails, after `attempts` tries, saying why.
    FakeServer dead([](const Query& q) {
        Reply r = mxReply(q, false);
        r.rcode = LDNS_RCODE_SERVFAIL;
        r.answer.clear();
        return Packets{build(r)};
    });
    auto failed = blockingFetcher({{"127.0.0.1", dead.port()}}, 1000, 3)("example.org.", kTypeMx);
    ASSERT_FALSE(failed);
    EXPECT_NE(failed.error().message.find("SERVFAIL"), std::string::npos);
    EXPECT_EQ(dead.count(), 3);
}

TEST_F(ResolverTest, InvalidNameFailsWithoutAQuery) {
    FakeServer server([](const Query& q) { return Packets{build(mxReply(q))}; });
    Resolver r(base_, options({server.port()}));
    auto a = run(r, {{"bad name..example", kTypeMx}});
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].outcome, Outcome::Error);
    EXPECT_EQ(server.count(), 0);
}

TEST(ServerAddress, ParsesAndTrustsOnlyLoopbackByDefault) {
    auto a = parseServerAddress("127.0.0.1:5353");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->port, 5353);
    EXPECT_TRUE(a->trusted);
    auto b = parseServerAddress("192.0.2.53");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->port, 53);
    EXPECT_FALSE(b->trusted);
    auto c = parseServerAddress("[::1]:53");
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(c->trusted);
    EXPECT_FALSE(parseServerAddress("resolver.example").ok());
    EXPECT_FALSE(parseServerAddress("127.0.0.1:0").ok());
}

}  // namespace
