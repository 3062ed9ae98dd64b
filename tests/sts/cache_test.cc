#include "sts/cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace danerelay;
using namespace danerelay::sts;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kDay = 86400;

std::string policyText(std::string_view mode = "enforce", int64_t maxAge = 7 * kDay) {
    return "version: STSv1\r\nmode: " + std::string(mode) +
           "\r\nmx: mx.example.com\r\nmx: *.example.net\r\nmax_age: " + std::to_string(maxAge) +
           "\r\n";
}

CacheEntry entry(const Clock& clock, std::string id = "abc", int64_t maxAge = 7 * kDay) {
    auto e = makeEntry("Example.COM.", std::move(id), policyText("enforce", maxAge), clock);
    EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
    return e.ok() ? *e : CacheEntry{};
}

TxtLookup found(std::string id) {
    return {TxtStatus::Found, std::move(id), ""};
}
TxtLookup status(TxtStatus s) {
    return {s, "", ""};
}

// ---- refresh rules (pure, injected clock) ----

TEST(StsRefresh, FirstContactFetchesAndHasNothingToApply) {
    ManualClock clock;
    auto d = decideRefresh(nullptr, found("abc"), {}, clock);
    EXPECT_FALSE(d.apply);
    EXPECT_EQ(d.fetch, FetchReason::FirstContact);
    EXPECT_TRUE(d.fetchNow());
    EXPECT_EQ(d.fetchId, "abc");
    // No record, a broken one, or a failed lookup: nothing to discover.
    for (auto s : {TxtStatus::Absent, TxtStatus::Invalid, TxtStatus::LookupFailed}) {
        auto n = decideRefresh(nullptr, status(s), {}, clock);
        EXPECT_FALSE(n.apply);
        EXPECT_EQ(n.fetch, FetchReason::None) << toString(s);
    }
}

TEST(StsRefresh, SameIdFreshPolicyAppliesWithoutFetch) {
    ManualClock clock;
    auto e = entry(clock);
    EXPECT_EQ(e.domain, "example.com");
    clock.advance(std::chrono::hours(1));
    auto d = decideRefresh(&e, found("abc"), e.history, clock);
    EXPECT_TRUE(d.apply);
    EXPECT_EQ(d.fetch, FetchReason::None);
    EXPECT_FALSE(d.fetchNow());
}

TEST(StsRefresh, IdChangeFetchesButKeepsApplyingTheCachedPolicy) {
    ManualClock clock;
    auto e = entry(clock);
    clock.advance(std::chrono::minutes(5));
    auto d = decideRefresh(&e, found("def"), e.history, clock);
    EXPECT_TRUE(d.apply);
    EXPECT_EQ(d.fetch, FetchReason::IdChanged);
    EXPECT_EQ(d.fetchId, "def");
}

TEST(StsRefresh, ProactiveRefreshAfterADayOrHalfMaxAge) {
    ManualClock clock;
    auto week = entry(clock, "abc", 7 * kDay);
    EXPECT_EQ(refreshDue(week), week.fetchedAt + kDay);
    clock.advance(std::chrono::seconds(kDay - 1));
    EXPECT_EQ(decideRefresh(&week, found("abc"), {}, clock).fetch, FetchReason::None);
    clock.advance(std::chrono::seconds(1));
    auto d = decideRefresh(&week, found("abc"), {}, clock);
    EXPECT_EQ(d.fetch, FetchReason::Refresh);
    EXPECT_TRUE(d.apply);

    ManualClock c2;
    auto hour = entry(c2, "abc", 3600);
    EXPECT_EQ(refreshDue(hour), hour.fetchedAt + 1800);
    c2.advance(std::chrono::seconds(1799));
    EXPECT_EQ(decideRefresh(&hour, found("abc"), {}, c2).fetch, FetchReason::None);
    c2.advance(std::chrono::seconds(1));
    EXPECT_EQ(decideRefresh(&hour, found("abc"), {}, c2).fetch, FetchReason::Refresh);
}

TEST(StsRefresh, CachedPolicySurvivesMissingOrBrokenTxtUntilMaxAge) {
    ManualClock clock;
    auto e = entry(clock, "abc", 7 * kDay);
    clock.advance(std::chrono::hours(2));
    for (auto s : {TxtStatus::Absent, TxtStatus::Invalid, TxtStatus::LookupFailed}) {
        auto d = decideRefresh(&e, status(s), {}, clock);
        EXPECT_TRUE(d.apply) << toString(s);
        EXPECT_EQ(d.fetch, FetchReason::None) << toString(s);
    }
    // Due for refresh with the TXT record hidden: fetched anyway, under the cached id.
    clock.advance(std::chrono::seconds(kDay));
    auto d = decideRefresh(&e, status(TxtStatus::Absent), {}, clock);
    EXPECT_TRUE(d.apply);
    EXPECT_EQ(d.fetch, FetchReason::Refresh);
    EXPECT_EQ(d.fetchId, "abc");
    // At max_age exactly it is over; with no TXT record there is no policy.
    ManualClock end(e.fetchedAt + 7 * kDay - 1);
    EXPECT_TRUE(decideRefresh(&e, status(TxtStatus::Absent), {}, end).apply);
    end.advance(std::chrono::seconds(1));
    auto over = decideRefresh(&e, status(TxtStatus::Absent), {}, end);
    EXPECT_FALSE(over.apply);
    EXPECT_EQ(over.fetch, FetchReason::None);
    // With a record, an expired policy is fetched again.
    auto again = decideRefresh(&e, found("abc"), {}, end);
    EXPECT_FALSE(again.apply);
    EXPECT_EQ(again.fetch, FetchReason::Expired);
}

TEST(StsRefresh, FailedRefreshKeepsThePolicyAndBacksOff) {
    ManualClock clock;
    auto e = entry(clock, "abc", 7 * kDay);
    clock.advance(std::chrono::seconds(kDay));  // due
    RefreshRules rules;                         // 60 s doubling to 3600 s
    FetchHistory h;
    for (int i = 0; i < 3; ++i) h = recordFailure(h, "timeout", clock);
    EXPECT_EQ(h.failures, 3);
    EXPECT_EQ(h.lastError, "timeout");
    auto d = decideRefresh(&e, found("def"), h, clock, rules);
    EXPECT_TRUE(d.apply);  // the attacker who blocks the fetch gains nothing
    EXPECT_EQ(d.fetch, FetchReason::IdChanged);
    EXPECT_TRUE(d.heldBack);
    EXPECT_FALSE(d.fetchNow());
    EXPECT_EQ(d.retryAt, clock.wallSeconds() + 240);  // 60 * 2^2
    clock.advance(std::chrono::seconds(240));
    EXPECT_TRUE(decideRefresh(&e, found("def"), h, clock, rules).fetchNow());
    // The wait never grows past retryMax.
    for (int i = 0; i < 50; ++i) h = recordFailure(h, "timeout", clock);
    EXPECT_EQ(decideRefresh(&e, found("def"), h, clock, rules).retryAt,
              clock.wallSeconds() + rules.retryMax);
    // Until max_age runs out, then nothing applies.
    ManualClock late(e.fetchedAt + 7 * kDay);
    EXPECT_FALSE(decideRefresh(&e, found("def"), h, late, rules).apply);
}

TEST(StsRefresh, ClockGoingBackwardsNeitherExtendsBackoffNorSkipsRefresh) {
    ManualClock clock(2'000'000'000);
    auto e = entry(clock);
    FetchHistory h = recordFailure({}, "x", clock);
    ManualClock past(1'999'000'000);  // before fetched_at and the failure
    auto d = decideRefresh(&e, found("abc"), h, past);
    EXPECT_TRUE(d.apply);
    EXPECT_EQ(d.fetch, FetchReason::Refresh);
    EXPECT_TRUE(d.fetchNow());
}

TEST(StsRefresh, MaxAgeZeroIsNeverLive) {
    ManualClock clock;
    auto e = entry(clock, "abc", 0);
    auto d = decideRefresh(&e, found("abc"), {}, clock);
    EXPECT_FALSE(d.apply);
    EXPECT_EQ(d.fetch, FetchReason::Expired);
}

// ---- the durable cache ----

class StsCacheDir : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/sts-cache-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        dir_ += "/sts";
    }
    void TearDown() override { fs::remove_all(fs::path(dir_).parent_path()); }
    PolicyCache open() {
        auto c = PolicyCache::open(dir_);
        EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
        return std::move(*c);
    }
    void write(const std::string& name, const std::string& text) {
        std::ofstream(dir_ + "/" + name, std::ios::binary) << text;
    }
    std::string read(const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }
    std::string dir_;
};

TEST_F(StsCacheDir, StoreThenLoadSurvivesReopen) {
    ManualClock clock;
    {
        auto c = open();
        auto e = entry(clock);
        e.history = recordFailure({}, "connect \"refused\"\n\xff", clock);
        ASSERT_TRUE(c.store(e).ok());
        struct stat st;
        ASSERT_EQ(::stat((dir_ + "/example.com").c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0640u);
        EXPECT_FALSE(fs::exists(dir_ + "/.tmp-example.com"));
    }
    auto c = open();  // a restart
    auto l = c.load("EXAMPLE.com.");
    ASSERT_TRUE(l.ok()) << l.error().message;
    ASSERT_TRUE(l->entry);
    EXPECT_TRUE(l->damaged.empty());
    EXPECT_EQ(l->entry->id, "abc");
    EXPECT_EQ(l->entry->fetchedAt, clock.wallSeconds());
    EXPECT_EQ(l->entry->policy.mode, Mode::Enforce);
    EXPECT_EQ(l->entry->policy.maxAge, 7 * kDay);
    EXPECT_TRUE(l->entry->policy.matchesMx("a.example.net"));
    EXPECT_EQ(l->entry->text, policyText());
    EXPECT_EQ(l->entry->history.failures, 1);
    EXPECT_EQ(l->entry->history.lastError, "connect \\\"refused\\\"\\x0a\\xff");
    auto d = c.domains();
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, std::vector<std::string>{"example.com"});
}

TEST_F(StsCacheDir, ReplaceAndRemove) {
    ManualClock clock;
    auto c = open();
    ASSERT_TRUE(c.store(entry(clock, "one")).ok());
    clock.advance(std::chrono::hours(1));
    ASSERT_TRUE(c.store(entry(clock, "two")).ok());
    EXPECT_EQ(c.load("example.com")->entry->id, "two");
    ASSERT_TRUE(c.remove("example.com").ok());
    EXPECT_FALSE(c.load("example.com")->entry);
    EXPECT_TRUE(c.remove("example.com").ok());  // already gone
}

TEST_F(StsCacheDir, NothingCached) {
    auto c = open();
    auto l = c.load("example.org");
    ASSERT_TRUE(l.ok());
    EXPECT_FALSE(l->entry);
    EXPECT_TRUE(l->damaged.empty());
}

TEST_F(StsCacheDir, HostileNamesNeverBecomePaths) {
    auto c = open();
    for (auto bad : {"../etc", "a/b.example", "", ".", "..", "damaged", ".tmp-example.com",
                     "example..com", "exa mple.com", "localhost"}) {
        auto l = c.load(bad);
        EXPECT_FALSE(l.ok()) << bad;
        CacheEntry e;
        e.domain = bad;
        e.text = policyText();
        EXPECT_FALSE(c.store(e).ok()) << bad;
        EXPECT_FALSE(c.remove(bad).ok()) << bad;
    }
    ManualClock clock;
    EXPECT_FALSE(makeEntry("../x", "abc", policyText(), clock).ok());
}

TEST_F(StsCacheDir, StoreRefusesTextThatDoesNotParse) {
    ManualClock clock;
    auto c = open();
    auto e = entry(clock);
    e.text = "version: STSv1\nmode: enforce\n";
    EXPECT_FALSE(c.store(e).ok());
    EXPECT_FALSE(fs::exists(dir_ + "/example.com"));
    EXPECT_FALSE(makeEntry("example.com", "abc", "garbage", clock).ok());
    EXPECT_FALSE(makeEntry("example.com", "a-b", policyText(), clock).ok());
    EXPECT_FALSE(makeEntry("example.com", "", policyText(), clock).ok());
    e = entry(clock);
    e.id = "\xff";
    EXPECT_FALSE(c.store(e).ok());
}

// The file's text with one field's value replaced by `value` (JSON text).
std::string setField(const std::string& fileText, const std::string& key,
                     const std::string& value) {
    auto j = nlohmann::json::parse(fileText);
    j[key] = nlohmann::json::parse(value);
    return j.dump(1);
}

TEST_F(StsCacheDir, DamagedFilesAreSetAsideAndReported) {
    ManualClock clock;
    auto c = open();
    auto good = serializeEntry(entry(clock));
    std::string flipped = good;
    flipped.replace(flipped.find("mx.example.com"), 14, "mx.evilxxx.com");
    std::string otherDomain = good;
    otherDomain.replace(otherDomain.find("\"example.com\""), 13, "\"example.org\"");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"not JSON", good.substr(0, good.size() / 2)},  // truncated
        {"checksum", flipped},
        {"example.org", otherDomain},
        {"not JSON", std::string("\0\xff\xfe", 3)},
        {"type must be string", "{\"format\": 1, \"domain\": 5}"},
        {"format", "{\"format\": 2}"},
        // Numbers no integer holds, as floats: refused, never converted
        // (undefined behaviour before; UBSan stops the test then).
        {"format", "{\"format\": 8.88889e+78}"},
        {"format", "{\"format\": 1.0}"},
        {"out of range", setField(good, "fetched_at", "1.70003e+43")},
        {"out of range", setField(good, "failures", "1e300")},
        {"out of range", setField(good, "last_failure_at", "18446744073709551615")},
        {"larger than", std::string(300000, ' ')},
        {"not JSON", ""},
    };
    size_t n = 0;
    for (const auto& [why, text] : cases) {
        write("example.com", text);
        auto l = c.load("example.com");
        ASSERT_TRUE(l.ok()) << why;
        EXPECT_FALSE(l->entry) << why;
        EXPECT_NE(l->damaged.find(why), std::string::npos) << why << ": " << l->damaged;
        EXPECT_NE(l->damaged.find("set aside as " + dir_ + "/damaged/example.com."),
                  std::string::npos)
            << l->damaged;
        EXPECT_FALSE(fs::exists(dir_ + "/example.com")) << why;
        ++n;
        EXPECT_EQ(c.damagedCount(), n);
        // Kept, byte for byte, with its reason beside it.
        std::string kept = dir_ + "/damaged/example.com." + std::to_string(n);
        EXPECT_EQ(read(kept), text) << why;
        EXPECT_NE(read(kept + ".why").find(why), std::string::npos);
    }
    // A later good store works as before.
    ASSERT_TRUE(c.store(entry(clock)).ok());
    EXPECT_TRUE(c.load("example.com")->entry);
}

TEST_F(StsCacheDir, ASymlinkIsNotFollowed) {
    auto c = open();
    std::string target = fs::path(dir_).parent_path().string() + "/secret";
    std::ofstream(target) << "secret";
    fs::create_symlink(target, dir_ + "/example.com");
    auto l = c.load("example.com");
    EXPECT_FALSE(l.ok() && l->entry);
    EXPECT_EQ(read(target), "secret");
}

// Attack: a FIFO planted under a domain's name in the cache directory. The
// open of a FIFO for reading waits for a writer, so load() hung for ever
// (the loop with it); now it is refused as not a regular file and set aside.
// Run in a child so that a hang fails the test instead of stalling it.
TEST_F(StsCacheDir, AFifoAsACacheFileNeitherHangsNorIsRead) {
    auto c = open();
    ASSERT_EQ(::mkfifo((dir_ + "/example.com").c_str(), 0640), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        auto l = c.load("example.com");
        // Refused, and set aside so that the next load does not trip on it.
        bool ok = l.ok() && !l->entry && !l->damaged.empty();
        ::_exit(ok ? 0 : 2);
    }
    int status = 0;
    bool exited = false;
    for (int i = 0; i < 100 && !exited; ++i) {  // 5 s at most
        if (::waitpid(pid, &status, WNOHANG) == pid) exited = true;
        if (!exited) ::usleep(50'000);
    }
    if (!exited) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }
    ASSERT_TRUE(exited) << "load() of a FIFO hung";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "load() of a FIFO: not refused as damaged";
}

}  // namespace

// peek(): what danectl probe shows, read only. The same name rules as
// load() (case and a trailing dot are one domain; hostile names are never
// paths), the same refusals (no symlink, no FIFO, bounded), and nothing
// written: a damaged file stays where it is, a missing directory is not
// created.
TEST_F(StsCacheDir, PeekReadsLikeLoadAndWritesNothing) {
    EXPECT_FALSE(PolicyCache::peek(dir_, "example.com").ok() &&
                 PolicyCache::peek(dir_, "example.com")->entry);
    EXPECT_FALSE(fs::exists(dir_));
    ManualClock clock;
    auto c = open();
    ASSERT_TRUE(c.store(entry(clock)).ok());
    auto l = PolicyCache::peek(dir_, "EXAMPLE.com.");
    ASSERT_TRUE(l.ok()) << l.error().message;
    ASSERT_TRUE(l->entry);
    EXPECT_EQ(l->entry->policy.mode, Mode::Enforce);
    for (auto bad : {"../etc", "a/b.example", "", "..", "damaged", ".tmp-example.com"}) {
        EXPECT_FALSE(PolicyCache::peek(dir_, bad).ok()) << bad;
    }
    write("example.org", "{not json");
    auto d = PolicyCache::peek(dir_, "example.org");
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(d->entry);
    EXPECT_FALSE(d->damaged.empty());
    EXPECT_EQ(read(dir_ + "/example.org"), "{not json");  // not set aside
    ASSERT_EQ(::mkfifo((dir_ + "/example.net").c_str(), 0640), 0);
    auto f = PolicyCache::peek(dir_, "example.net");  // O_NONBLOCK: never waits
    ASSERT_TRUE(f.ok());
    EXPECT_FALSE(f->entry);
    EXPECT_FALSE(f->damaged.empty());
    EXPECT_TRUE(fs::is_fifo(dir_ + "/example.net"));
    EXPECT_EQ(c.damagedCount(), 0u);
}
