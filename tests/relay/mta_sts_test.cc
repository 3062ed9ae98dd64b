// MtaSts (relay/outbound/mta_sts.h) as an attacker sees it: the in-memory
// table, the durable cache and DNS answers an on-path attacker can delay.
// The real Resolver asks a scripted DNS server on 127.0.0.1 (trusted: its
// AD bit is believed); a name scripted silent never answers, so the
// resolver times out (Indeterminate: "lookup failed").
#include "relay/outbound/mta_sts.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "common/event.h"
#include "tests/relay/fake_dns.h"
#include "tests/relay/loop_util.h"

namespace danerelay::relay {
namespace {

using namespace testing;

// The scripted server: `answers` secure, the keys in `quiet` never
// answered, anything else secure NXDOMAIN.
FakeDns scripted(const std::map<std::string, std::vector<std::string>>& answers,
                 const std::set<std::string>& quiet) {
    std::map<std::string, Zone> zones;
    for (const auto& [key, rrs] : answers) zones[key] = secure(rrs);
    for (const auto& key : quiet) zones[key] = silent();
    return FakeDns(std::move(zones));
}

// Runs the loop until pred() holds, at most 5 s.
template <typename Pred>
bool runUntil(event_base* base, Pred pred) {
    return testing::runLoopUntil(base, pred);
}

class MtaStsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/mta-sts-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override {
        workers_.stop();
        std::filesystem::remove_all(dir_);
    }

    // An enforce policy for `domain` in the cache directory, fetched now.
    void cacheEnforce(const std::string& domain) {
        auto cache = sts::PolicyCache::open(dir_ + "/sts");
        ASSERT_TRUE(cache) << cache.error().message;
        auto e = sts::makeEntry(
            domain, "id1", "version: STSv1\nmode: enforce\nmx: mx." + domain + "\nmax_age: 86400\n",
            SystemClock::instance());
        ASSERT_TRUE(e) << e.error().message;
        ASSERT_TRUE(cache->store(*e));
    }

    // The MtaSts under test, its cache in dir_/sts (null, and a failure, if
    // it cannot be opened).
    std::unique_ptr<MtaSts> openSts(dns::Resolver& resolver, unsigned fetchTimeout) {
        MtaStsConfig cfg;
        cfg.fetchTimeout = fetchTimeout;
        auto m = MtaSts::open(dispatcher_, workers_, resolver, cfg, dir_ + "/sts");
        if (!m) ADD_FAILURE() << m.error().message;
        return m ? std::move(*m) : nullptr;
    }

    dns::ResolverOptions options(const FakeDns& server) { return server.resolverOptions(400); }

    EventBasePtr base_{event_base_new()};
    LoopPoster poster_{base_.get()};
    WorkerPool workers_{poster_, 1};
    Dispatcher dispatcher_{base_.get()};
    std::string dir_;
};

// An attacker on the path to the resolver delays the victim's TXT answer
// while mail to many other domains fills the in-memory table: the victim's
// entry, loaded from its cache file, must not be dropped from memory in
// that window (its cached enforce policy would then be unknown to the
// lookup, and a blocked fetch would leave the mail without MTA-STS).
TEST_F(MtaStsTest, ACachedPolicyIsNotForgottenWhileItsTxtLookupIsDelayed) {
    cacheEnforce("victim.example");
    auto server = scripted({}, {"_mta-sts.victim.example. TXT"});
    dns::Resolver resolver(base_.get(), options(server));
    auto m = openSts(resolver, 1);
    ASSERT_TRUE(m);
    m->setMaxDomains(4);

    std::optional<StsView> victim;
    m->lookup("victim.example", [&](const StsView& v) { victim = v; });
    // Its cache file read; its TXT query in flight (silent).
    ASSERT_TRUE(runUntil(base_.get(), [&] { return workers_.queued() == 0; }));
    timeval tv{0, 100000};
    event_base_loopexit(base_.get(), &tv);
    event_base_dispatch(base_.get());
    ASSERT_FALSE(victim.has_value());

    int others = 0;
    for (int i = 0; i < 8; ++i) {
        m->lookup("other" + std::to_string(i) + ".example", [&](const StsView&) { ++others; });
    }
    ASSERT_TRUE(runUntil(base_.get(), [&] { return victim.has_value() && others == 8; }));
    ASSERT_TRUE(victim->policy.has_value())
        << "the cached enforce policy was lost: " << victim->why;
    EXPECT_EQ(victim->policy->mode, sts::Mode::Enforce);
    // Busy entries are never dropped, so the table may pass its bound by
    // those in flight at once (here all of them), no more.
    EXPECT_LE(m->domains(), 9u);
}

// A cache file that cannot be read for a passing reason (I/O: here a
// symbolic link, which is never followed) may hide a cached enforce
// policy: the lookup says "unknown" (delivery waits) instead of "no
// policy", and the next lookup reads the file again.
TEST_F(MtaStsTest, AnUnreadableCacheFileIsUnknownNotNoPolicy) {
    cacheEnforce("victim.example");
    const std::string file = dir_ + "/sts/victim.example";
    ASSERT_EQ(::rename(file.c_str(), (dir_ + "/kept").c_str()), 0);
    ASSERT_EQ(::symlink((dir_ + "/kept").c_str(), file.c_str()), 0);
    auto server = scripted({{"_mta-sts.victim.example. TXT",
                             {"_mta-sts.victim.example. 300 IN TXT \"v=STSv1; id=id2\""}}},
                           {});
    dns::Resolver resolver(base_.get(), options(server));
    auto m = openSts(resolver, 1);
    ASSERT_TRUE(m);

    std::optional<StsView> first;
    m->lookup("victim.example", [&](const StsView& v) { first = v; });
    ASSERT_TRUE(runUntil(base_.get(), [&] { return first.has_value(); }));
    EXPECT_FALSE(first->policy.has_value());
    EXPECT_TRUE(first->unknown) << first->why;
    EXPECT_EQ(m->fetchesInFlight(), 0u);  // nothing fetched over it

    // The file readable again: the next lookup finds the policy.
    ASSERT_EQ(::unlink(file.c_str()), 0);
    ASSERT_EQ(::rename((dir_ + "/kept").c_str(), file.c_str()), 0);
    std::optional<StsView> second;
    m->lookup("victim.example", [&](const StsView& v) { second = v; });
    ASSERT_TRUE(runUntil(base_.get(), [&] { return second.has_value(); }));
    ASSERT_TRUE(second->policy.has_value()) << second->why;
    EXPECT_EQ(second->policy->mode, sts::Mode::Enforce);
    EXPECT_FALSE(second->unknown);
}

// The table stays bounded when every lookup finishes.
TEST_F(MtaStsTest, TheTableIsBoundedAfterManyDomains) {
    auto server = scripted({}, {});
    dns::Resolver resolver(base_.get(), options(server));
    auto m = openSts(resolver, 60);
    ASSERT_TRUE(m);
    m->setMaxDomains(10);
    int done = 0;
    for (int i = 0; i < 60; ++i) {
        m->lookup("d" + std::to_string(i) + ".example", [&](const StsView& v) {
            EXPECT_FALSE(v.policy.has_value());
            ++done;
        });
        ASSERT_TRUE(runUntil(base_.get(), [&] { return done == i + 1; }));
    }
    EXPECT_LE(m->domains(), 10u);
}

// ... also when every cache file is unreadable (a failing disk): such an
// entry is read again at the next lookup, so it may leave memory.
TEST_F(MtaStsTest, TheTableIsBoundedWhenCacheFilesCannotBeRead) {
    ASSERT_TRUE(sts::PolicyCache::open(dir_ + "/sts"));
    auto server = scripted({}, {});
    dns::Resolver resolver(base_.get(), options(server));
    auto m = openSts(resolver, 60);
    ASSERT_TRUE(m);
    m->setMaxDomains(10);
    int done = 0;
    for (int i = 0; i < 40; ++i) {
        std::string name = "d" + std::to_string(i) + ".example";
        ASSERT_EQ(::symlink("/nonexistent", (dir_ + "/sts/" + name).c_str()), 0);
        m->lookup(name, [&](const StsView& v) {
            EXPECT_TRUE(v.unknown) << v.why;
            ++done;
        });
        ASSERT_TRUE(runUntil(base_.get(), [&] { return done == i + 1; }));
    }
    EXPECT_LE(m->domains(), 10u);
}

// Recipient domains a hostile client may choose: every lookup answers
// (no delivery left waiting), none with a policy, nothing written outside
// the cache directory; case and a trailing dot name the same domain.
TEST_F(MtaStsTest, OddDomainNamesAnswerAndNeverEscapeTheCache) {
    cacheEnforce("victim.example");
    auto server = scripted({{"_mta-sts.victim.example. TXT",
                             {"_mta-sts.victim.example. 300 IN TXT \"v=STSv1; id=id1\""}}},
                           {});
    dns::Resolver resolver(base_.get(), options(server));
    auto m = openSts(resolver, 1);
    ASSERT_TRUE(m);
    const std::vector<std::string> odd = {std::string(300, 'a') + ".example",
                                          std::string(70, 'b') + ".example",
                                          "[127.0.0.1]",
                                          "[IPv6:::1]",
                                          "localhost",
                                          "a..b",
                                          "../../victim.example",
                                          "..",
                                          ".",
                                          "",
                                          "victim.example/../x.example",
                                          "damaged.x",
                                          ".tmp-victim.example"};
    int done = 0;
    for (const auto& name : odd) {
        m->lookup(name, [&, name](const StsView& v) {
            EXPECT_FALSE(v.policy.has_value()) << name;
            ++done;
        });
    }
    ASSERT_TRUE(runUntil(base_.get(), [&] { return done == static_cast<int>(odd.size()); }));
    for (const auto& name : {"VICTIM.Example.", "victim.example"}) {
        std::optional<StsView> v;
        m->lookup(name, [&](const StsView& got) { v = got; });
        ASSERT_TRUE(runUntil(base_.get(), [&] { return v.has_value(); }));
        ASSERT_TRUE(v->policy.has_value()) << name << ": " << v->why;
        EXPECT_EQ(v->policy->mode, sts::Mode::Enforce);
    }
    // Only the victim's file (and damaged/) in the cache; nothing beside it.
    std::set<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/sts")) {
        files.insert(e.path().filename().string());
    }
    EXPECT_EQ(files, (std::set<std::string>{"damaged", "victim.example"}));
    std::set<std::string> top;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
        top.insert(e.path().filename().string());
    }
    EXPECT_EQ(top, std::set<std::string>{"sts"});
}

}  // namespace
}  // namespace danerelay::relay
