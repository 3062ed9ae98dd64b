// The MTA-STS fetcher against a real TLS server: tests/sts/https_server.py,
// started here by PID on 127.0.0.1 with the lab's PKI, stopped by PID.
#include "sts/fetcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "sts/cache.h"

extern char** environ;

using namespace danerelay;
using namespace danerelay::sts;

namespace {

class HttpsServer {
  public:
    bool start() {
        char tmpl[] = "/tmp/sts-fetch-test-XXXXXX";
        if (!::mkdtemp(tmpl)) return false;
        dir_ = tmpl;
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return false;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        std::string script = std::string(DANERELAY_SOURCE_DIR) + "/tests/sts/https_server.py";
        char* argv[] = {const_cast<char*>("python3"), script.data(), dir_.data(), nullptr};
        int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(fds[1]);
        if (rc != 0) {
            pid_ = -1;
            ::close(fds[0]);
            return false;
        }
        // "PORT CAFILE\n", within 60 s (the PKI is made first).
        std::string line;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (line.find('\n') == std::string::npos &&
               std::chrono::steady_clock::now() < deadline) {
            pollfd p{fds[0], POLLIN, 0};
            if (::poll(&p, 1, 1000) <= 0) continue;
            char buf[512];
            ssize_t n = ::read(fds[0], buf, sizeof buf);
            if (n <= 0) break;
            line.append(buf, static_cast<size_t>(n));
        }
        ::close(fds[0]);
        std::istringstream in(line);
        in >> port_ >> ca_ >> expiredPort_;
        return port_ > 0 && !ca_.empty() && expiredPort_ > 0;
    }
    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
        dir_.clear();
    }
    uint16_t port() const { return static_cast<uint16_t>(port_); }
    uint16_t expiredPort() const { return static_cast<uint16_t>(expiredPort_); }
    const std::string& ca() const { return ca_; }

  private:
    pid_t pid_ = -1;
    int port_ = 0, expiredPort_ = 0;
    std::string ca_, dir_;
};

HttpsServer* server = nullptr;

class StsFetcher : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        server = new HttpsServer;
        if (!server->start()) {
            server->stop();
            delete server;
            server = nullptr;
        }
    }
    static void TearDownTestSuite() {
        if (server) server->stop();
        delete server;
        server = nullptr;
    }
    void SetUp() override { ASSERT_NE(server, nullptr) << "the test HTTPS server did not start"; }

    FetchOptions options() const {
        FetchOptions o;
        o.caFile = server->ca();
        o.port = server->port();
        o.connectTimeout = std::chrono::milliseconds(3000);
        o.totalTimeout = std::chrono::milliseconds(10000);
        return o;
    }

    // Runs the loop until every fetch has called back (at most 20 s).
    std::vector<Result<std::string>> run(const FetchOptions& o,
                                         const std::vector<FetchRequest>& reqs) {
        EventBasePtr base(event_base_new());
        Dispatcher d(base.get());
        std::vector<std::optional<Result<std::string>>> got(reqs.size());
        size_t done = 0;
        {
            Fetcher f(d, o);
            for (size_t i = 0; i < reqs.size(); ++i) {
                f.fetch(reqs[i], [&, i](Result<std::string> r) {
                    got[i] = std::move(r);
                    if (++done == reqs.size()) event_base_loopbreak(base.get());
                });
            }
            EXPECT_EQ(done, 0u);  // never called back from inside fetch()
            Event guard(base.get(), -1, 0, [&](short) { event_base_loopbreak(base.get()); });
            guard.addSeconds(20);
            event_base_dispatch(base.get());
            EXPECT_EQ(f.inFlight(), 0u);
        }
        std::vector<Result<std::string>> out;
        for (auto& g : got) {
            out.push_back(g ? std::move(*g) : Result<std::string>(Error::internal("no callback")));
        }
        return out;
    }
    Result<std::string> fetch(const std::string& domain, const FetchOptions& o) {
        return std::move(run(o, {{domain, {"127.0.0.1"}}}).at(0));
    }
    Result<std::string> fetch(const std::string& domain) { return fetch(domain, options()); }

    static std::string errorOf(const Result<std::string>& r) {
        std::string e =
            r.ok() ? "(fetched " + std::to_string(r->size()) + " bytes)" : r.error().message;
        if (std::getenv("STS_FETCH_VERBOSE")) std::fprintf(stderr, "  %s\n", e.c_str());
        return e;
    }
};

TEST_F(StsFetcher, FetchesAValidPolicy) {
    auto r = fetch("good.example");
    ASSERT_TRUE(r.ok()) << r.error().message;
    ManualClock clock;
    auto e = makeEntry("good.example", "abc", *r, clock);
    ASSERT_TRUE(e.ok()) << e.error().message;
    EXPECT_EQ(e->policy.mode, Mode::Enforce);
    EXPECT_TRUE(e->policy.matchesMx("mx.good.example"));
    // Case-insensitive media type, with parameters.
    EXPECT_TRUE(fetch("charset.example").ok());
}

TEST_F(StsFetcher, RedirectsAreRefused) {
    auto r = fetch("redirect.example");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, ErrorKind::Temporary);
    EXPECT_NE(r.error().message.find("HTTP 301: redirects are not followed"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("https://mta-sts.redirect.example:"), std::string::npos);
}

TEST_F(StsFetcher, OversizedBodiesAreRefused) {
    // With Content-Length, and read until the peer closes.
    for (auto d : {"big.example", "stream.example"}) {
        auto r = fetch(d);
        EXPECT_NE(errorOf(r).find("larger than 65536 bytes"), std::string::npos) << errorOf(r);
    }
    // The cap is the option's.
    auto o = options();
    o.maxBytes = 20;
    EXPECT_NE(errorOf(fetch("good.example", o)).find("larger than 20 bytes"), std::string::npos);
}

TEST_F(StsFetcher, OnlyTextPlain) {
    EXPECT_NE(errorOf(fetch("html.example")).find("Content-Type \"text/html\", not text/plain"),
              std::string::npos);
    EXPECT_NE(errorOf(fetch("notype.example")).find("Content-Type missing"), std::string::npos);
    EXPECT_NE(errorOf(fetch("missing.example")).find("HTTP 404"), std::string::npos);
}

TEST_F(StsFetcher, CertificateMustNameTheHostAndChainToTheTrustStore) {
    auto wrong = fetch("wrongname.example");
    ASSERT_FALSE(wrong.ok()) << errorOf(wrong);
    EXPECT_NE(wrong.error().message.find("mta-sts.wrongname.example"), std::string::npos);
    // An expired certificate, otherwise right: refused.
    auto o = options();
    o.port = server->expiredPort();
    auto expired = fetch("expired.example", o);
    EXPECT_NE(errorOf(expired).find("certificate"), std::string::npos) << errorOf(expired);
    // Without the lab's CA (the system store): refused.
    o = options();
    o.caFile.clear();
    EXPECT_NE(errorOf(fetch("good.example", o)).find("MTA-STS policy fetch https://"),
              std::string::npos);
    // A CA file that does not exist: refused, never "no verification".
    o.caFile = "/nonexistent/ca.pem";
    EXPECT_NE(errorOf(fetch("good.example", o)).find("MTA-STS policy fetch https://"),
              std::string::npos);
}

TEST_F(StsFetcher, ATruncatedBodyIsRefused) {
    // A policy cut short could lose lines; never taken for the whole.
    auto r = fetch("short.example");
    EXPECT_FALSE(r.ok());
    EXPECT_NE(errorOf(r).find("mta-sts.short.example"), std::string::npos);
}

TEST_F(StsFetcher, ProxyFromTheEnvironmentIsIgnored) {
    for (auto v : {"https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}) {
        ::setenv(v, "http://127.0.0.1:9", 1);
    }
    auto r = fetch("good.example");
    for (auto v : {"https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}) ::unsetenv(v);
    EXPECT_TRUE(r.ok()) << errorOf(r);
}

TEST_F(StsFetcher, TimeoutsAreBounded) {
    auto o = options();
    o.totalTimeout = std::chrono::milliseconds(1000);
    auto t0 = std::chrono::steady_clock::now();
    auto r = fetch("slow.example", o);
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_NE(errorOf(r).find("imeout"), std::string::npos) << errorOf(r);
    EXPECT_LT(took, std::chrono::milliseconds(4000));
}

TEST_F(StsFetcher, ManyAtOnceOnOneLoop) {
    auto out = run(options(), {{"good.example", {"127.0.0.1"}},
                               {"html.example", {"127.0.0.1"}},
                               {"redirect.example", {"127.0.0.1"}},
                               {"charset.example", {"127.0.0.1"}},
                               {"missing.example", {"127.0.0.1"}}});
    ASSERT_EQ(out.size(), 5u);
    EXPECT_TRUE(out[0].ok());
    EXPECT_FALSE(out[1].ok());
    EXPECT_FALSE(out[2].ok());
    EXPECT_TRUE(out[3].ok());
    EXPECT_FALSE(out[4].ok());
}

TEST_F(StsFetcher, BadRequestsFailThroughTheCallback) {
    auto out = run(options(), {{"../etc", {"127.0.0.1"}},
                               {"good.example", {"not-an-ip"}},
                               {"good.example", {"127.0.0.1; rm"}}});
    EXPECT_NE(errorOf(out[0]).find("not a domain"), std::string::npos) << errorOf(out[0]);
    EXPECT_NE(errorOf(out[1]).find("not an IP address"), std::string::npos) << errorOf(out[1]);
    EXPECT_NE(errorOf(out[2]).find("not an IP address"), std::string::npos) << errorOf(out[2]);
}

TEST_F(StsFetcher, NothingListening) {
    auto o = options();
    o.port = 9;  // discard: nothing listens on loopback in the test machine
    EXPECT_NE(errorOf(fetch("good.example", o)).find("MTA-STS policy fetch https://"),
              std::string::npos);
}

TEST_F(StsFetcher, CancelledFetchNeverCallsBack) {
    EventBasePtr base(event_base_new());
    Dispatcher d(base.get());
    bool called = false;
    {
        Fetcher f(d, options());
        auto id =
            f.fetch({"slow.example", {"127.0.0.1"}}, [&](Result<std::string>) { called = true; });
        ASSERT_NE(id, 0u);
        Event later(base.get(), -1, 0, [&](short) { f.cancel(id); });
        later.addMillis(200);
        Event guard(base.get(), -1, 0, [&](short) { event_base_loopbreak(base.get()); });
        guard.addMillis(1500);
        event_base_dispatch(base.get());
        EXPECT_EQ(f.inFlight(), 0u);
    }
    EXPECT_FALSE(called);
    // Destroying a Fetcher with a fetch in flight: no callback either.
    {
        Fetcher f(d, options());
        f.fetch({"slow.example", {"127.0.0.1"}}, [&](Result<std::string>) { called = true; });
        Event guard(base.get(), -1, 0, [&](short) { event_base_loopbreak(base.get()); });
        guard.addMillis(300);
        event_base_dispatch(base.get());
    }
    Event guard(base.get(), -1, 0, [&](short) { event_base_loopbreak(base.get()); });
    guard.addMillis(300);
    event_base_dispatch(base.get());
    EXPECT_FALSE(called);
}

// Attack on the cancel() promise: the transfer has finished and its callback
// is posted, but has not run yet, when the owner cancels (its own deadline
// fired in the same loop pass) or destroys the Fetcher. Before the fix the
// callback still ran, into an owner that had let go of it.
TEST_F(StsFetcher, CancelAfterCompletionBeforeTheCallbackRunsNeverCallsBack) {
    EventBasePtr base(event_base_new());
    Dispatcher d(base.get());
    for (bool destroy : {false, true}) {
        bool called = false;
        auto f = std::make_unique<Fetcher>(d, options());
        auto id =
            f->fetch({"good.example", {"127.0.0.1"}}, [&](Result<std::string>) { called = true; });
        ASSERT_NE(id, 0u);
        // One pass at a time until the transfer is done; the Dispatcher runs
        // what was posted only after the next poll.
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (f->inFlight() > 0 && !called && std::chrono::steady_clock::now() < deadline) {
            event_base_loop(base.get(), EVLOOP_ONCE);
        }
        ASSERT_EQ(f->inFlight(), 0u);
        ASSERT_FALSE(called) << "the posted callback ran in the pass that finished the transfer";
        if (destroy) {
            f.reset();
        } else {
            f->cancel(id);
        }
        Event guard(base.get(), -1, 0, [&](short) { event_base_loopbreak(base.get()); });
        guard.addMillis(300);
        event_base_dispatch(base.get());
        EXPECT_FALSE(called) << (destroy ? "destroyed" : "cancelled") << " after completion";
    }
}

// Attack on address pinning: "the addresses given are the only ones tried".
// A fetch pinned to 127.0.0.1 left its address in the multi handle's DNS
// cache (CURLOPT_RESOLVE entries never expire) and its connection in the
// pool, so a later fetch for the same host pinned elsewhere (127.0.0.2,
// where nothing listens) or not pinned at all (mta-sts.good.example does
// not resolve here) went to 127.0.0.1 all the same: one poisoned answer
// would have outlived its TTL for the Fetcher's lifetime.
TEST_F(StsFetcher, APinnedAddressIsNotReusedForLaterFetches) {
    EventBasePtr base(event_base_new());
    Dispatcher d(base.get());
    Fetcher f(d, options());
    std::vector<Result<std::string>> got;
    std::function<void(size_t)> next;
    const std::vector<FetchRequest> reqs = {
        {"good.example", {"127.0.0.1"}}, {"good.example", {"127.0.0.2"}}, {"good.example", {}}};
    next = [&](size_t i) {
        if (i == reqs.size()) return (void)event_base_loopbreak(base.get());
        f.fetch(reqs[i], [&, i](Result<std::string> r) {
            got.push_back(std::move(r));
            next(i + 1);
        });
    };
    next(0);
    Event guard(base.get(), -1, 0, [&](short) { event_base_loopbreak(base.get()); });
    guard.addSeconds(30);
    event_base_dispatch(base.get());
    ASSERT_EQ(got.size(), 3u);
    EXPECT_TRUE(got[0].ok()) << errorOf(got[0]);
    EXPECT_FALSE(got[1].ok()) << "pinned to 127.0.0.2, fetched from 127.0.0.1";
    EXPECT_NE(errorOf(got[1]).find("connect"), std::string::npos) << errorOf(got[1]);
    EXPECT_FALSE(got[2].ok()) << "not pinned, fetched from 127.0.0.1";
    EXPECT_NE(errorOf(got[2]).find("resolve"), std::string::npos) << errorOf(got[2]);
}

TEST_F(StsFetcher, ACallbackMayFetchAgainOrDestroyTheFetcher) {
    EventBasePtr base(event_base_new());
    Dispatcher d(base.get());
    auto f = std::make_unique<Fetcher>(d, options());
    int calls = 0;
    bool secondOk = false;
    f->fetch({"html.example", {"127.0.0.1"}}, [&](Result<std::string> first) {
        ++calls;
        EXPECT_FALSE(first.ok());
        f->fetch({"good.example", {"127.0.0.1"}}, [&](Result<std::string> second) {
            ++calls;
            secondOk = second.ok();
            f.reset();  // from inside its own callback
            event_base_loopbreak(base.get());
        });
    });
    Event guard(base.get(), -1, 0, [&](short) { event_base_loopbreak(base.get()); });
    guard.addSeconds(20);
    event_base_dispatch(base.get());
    EXPECT_EQ(calls, 2);
    EXPECT_TRUE(secondOk);
    EXPECT_EQ(f, nullptr);
}

TEST(StsFetcherText, ContentTypeAndUrl) {
    EXPECT_TRUE(isTextPlain("text/plain"));
    EXPECT_TRUE(isTextPlain("TEXT/PLAIN"));
    EXPECT_TRUE(isTextPlain("text/plain; charset=utf-8"));
    EXPECT_TRUE(isTextPlain(" text/plain ;charset=us-ascii"));
    EXPECT_FALSE(isTextPlain("text/plainx"));
    EXPECT_FALSE(isTextPlain("text/html"));
    EXPECT_FALSE(isTextPlain("text/plain2; x"));
    EXPECT_FALSE(isTextPlain(""));
    EXPECT_FALSE(isTextPlain("application/octet-stream"));
    EXPECT_EQ(policyUrl("example.com"), "https://mta-sts.example.com/.well-known/mta-sts.txt");
    EXPECT_EQ(policyUrl("example.com", 8443),
              "https://mta-sts.example.com:8443/.well-known/mta-sts.txt");
}

}  // namespace
