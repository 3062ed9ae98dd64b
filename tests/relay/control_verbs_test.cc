// The control verbs on a real spool and event loop, with a ManualClock: the
// status reply's start, uptime, policy and probe times are the clock's, and a
// queue action's "older_than" filter counts from the clock's now. Delivery is
// disabled and the resolver never asked: nothing reaches the network.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <vector>

#include "queue/queue_id.h"
#include "relay/control/control_verbs.h"
#include "relay/runtime/committer.h"

namespace danerelay::relay {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int64_t kStart = 1'700'000'000;

class ControlVerbsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-verbs-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        fs::create_directory(dir_ + "/policy");
        auto sp = queue::Spool::open(dir_ + "/spool", queue::Spool::Mode::Writer);
        ASSERT_TRUE(sp.ok());
        spool_ = std::move(*sp);
        poster_ = std::make_unique<LoopPoster>(base_.get());
        workers_ = std::make_unique<WorkerPool>(*poster_, 1);
        committer_ = std::make_unique<Committer>(*poster_, *spool_, 16);
        cfg_.hostname = "relay.test";
        cfg_.spoolDir = dir_ + "/spool";
        cfg_.policyDir = dir_ + "/policy";
        cfg_.delivery.enabled = false;
        dns::ResolverOptions o;
        o.servers = {{"127.0.0.1", 9, false}};  // discard: never asked here
        o.timeoutMs = 400;
        o.attempts = 1;
        resolver_ = std::make_unique<dns::Resolver>(base_.get(), o);
        scheduler_ = std::make_unique<Scheduler>(base_.get(), cfg_, *spool_, *workers_, *committer_,
                                                 *resolver_, ids_);
        verbs_ = std::make_unique<ControlVerbs>(cfg_, *scheduler_, *spool_, *workers_, *resolver_,
                                                clock_);
    }
    void TearDown() override {
        workers_->stop();
        verbs_.reset();
        scheduler_.reset();
        committer_.reset();
        workers_.reset();
        resolver_.reset();
        poster_.reset();
        spool_.reset();
        fs::remove_all(dir_);
    }
    // The verb's reply, running the loop until it comes (at most 10 s).
    json ask(const json& request, ControlAccess access = ControlAccess::Full) {
        std::optional<json> got;
        verbs_->handle(
            request, [&](json r) { got = std::move(r); }, access);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!got && std::chrono::steady_clock::now() < deadline) {
            timeval slice{0, 20000};
            event_base_loopexit(base_.get(), &slice);
            event_base_dispatch(base_.get());
        }
        EXPECT_TRUE(got.has_value()) << "no reply to " << request.dump();
        return got.value_or(json());
    }
    std::string commit(int64_t arrival) {
        queue::NewMessage m;
        m.id = ids_.next();
        m.envelope.sender = "alice@example.org";
        m.envelope.recipients = {{"bob@example.com", "", queue::kNotifyNone}};
        m.envelope.arrival = arrival;
        m.content = "Subject: hi\r\n\r\nbody\r\n";
        EXPECT_TRUE(spool_->commitOne(m).ok());
        return m.id;
    }

    ManualClock clock_{kStart};
    std::string dir_;
    std::unique_ptr<queue::Spool> spool_;
    EventBasePtr base_{event_base_new()};
    std::unique_ptr<LoopPoster> poster_;
    std::unique_ptr<WorkerPool> workers_;
    std::unique_ptr<Committer> committer_;
    std::unique_ptr<dns::Resolver> resolver_;
    queue::QueueIdGenerator ids_;
    Config cfg_;
    std::unique_ptr<Scheduler> scheduler_;
    std::unique_ptr<ControlVerbs> verbs_;
};

TEST_F(ControlVerbsTest, StatusTellsStartAndUptimeByTheClock) {
    clock_.advance(std::chrono::seconds(3 * 3600 + 125));
    auto r = ask({{"version", kControlProtocolVersion}, {"verb", "status"}});
    EXPECT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["version"], kControlProtocolVersion);
    EXPECT_EQ(r["daemon"]["started"], kStart);
    EXPECT_EQ(r["daemon"]["uptime_seconds"], 3 * 3600 + 125);
    EXPECT_EQ(r["daemon"]["pid"], static_cast<int64_t>(::getpid()));
    EXPECT_TRUE(r["dnssec"]["last_probe"].is_null());
}

TEST_F(ControlVerbsTest, PolicyLoadAndProbeAreStampedByTheClock) {
    auto empty = policy::PolicySet::loadDir(cfg_.policyDir);
    ASSERT_TRUE(empty.ok()) << empty.error().message;
    clock_.advance(std::chrono::seconds(60));
    verbs_->setPolicy(*empty);
    clock_.advance(std::chrono::seconds(30));
    verbs_->noteProbe(true, "isc.org validates");
    clock_.advance(std::chrono::seconds(5));
    auto r = ask({{"version", kControlProtocolVersion}, {"verb", "status"}});
    EXPECT_EQ(r["policy"]["loaded"], kStart + 60);
    EXPECT_EQ(r["policy"]["dir"], cfg_.policyDir);
    EXPECT_EQ(r["dnssec"]["last_probe"]["at"], kStart + 90);
    EXPECT_EQ(r["dnssec"]["last_probe"]["detail"], "isc.org validates");
    EXPECT_EQ(r["daemon"]["uptime_seconds"], 95);
}

// A message that arrived at kStart is 100 s old by the clock (and years old
// by the system's): older_than 500 must not select it, older_than 50 must.
TEST_F(ControlVerbsTest, OlderThanCountsFromTheClocksNow) {
    std::string id = commit(kStart);
    clock_.advance(std::chrono::seconds(100));
    json req = {{"version", kControlProtocolVersion},
                {"verb", "queue"},
                {"action", "hold"},
                {"filter", {{"older_than", 500}}}};
    auto r = ask(req);
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["matched"], 0) << r.dump();
    req["filter"]["older_than"] = 50;
    r = ask(req);
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["matched"], 1) << r.dump();
    EXPECT_EQ(r["verb"], "queue hold");
    ASSERT_EQ(r["results"].size(), 1u);
    EXPECT_EQ(r["results"][0]["id"], id);
}

TEST_F(ControlVerbsTest, RequestsItCannotServeAreRefusedWithTheProtocolVersion) {
    auto r = ask({{"version", 2}, {"verb", "status"}});
    EXPECT_EQ(r["ok"], false);
    EXPECT_EQ(r["version"], kControlProtocolVersion);
    EXPECT_EQ(r["error"], "unsupported protocol version (this daemon speaks 1)");
    r = ask({{"version", 1}, {"verb", "queue"}, {"action", "hold"}, {"ids", json::array()}});
    EXPECT_EQ(r["error"], "ids: a non-empty array of at most 10000 queue IDs");
    r = ask({{"version", 1}, {"verb", "queue"}, {"action", "hold"}});
    EXPECT_EQ(r["error"], "give exactly one of: ids, filter, all");
}

// The daemon's group reads (status); changing the queue or the policy needs
// root, the daemon's user or control_group, and the refusal changes nothing.
TEST_F(ControlVerbsTest, ReadOnlyAccessMayAskStatusButNotAct) {
    std::string id = commit(1000);
    auto st = ask({{"version", 1}, {"verb", "status"}}, ControlAccess::ReadOnly);
    EXPECT_EQ(st["ok"], true) << st;
    auto hold = ask({{"version", 1}, {"verb", "queue"}, {"action", "hold"}, {"ids", {id}}},
                    ControlAccess::ReadOnly);
    EXPECT_EQ(hold["ok"], false) << hold;
    EXPECT_NE(hold["error"].get<std::string>().find("permission denied"), std::string::npos);
    auto reload = ask({{"version", 1}, {"verb", "reload"}}, ControlAccess::ReadOnly);
    EXPECT_EQ(reload["ok"], false) << reload;
    // Anything but status, known or not, is refused to read-only access
    // (deny by default: a verb added later is not read-only by omission).
    for (const char* verb : {"drain", "resume", "flush", "shutdown", ""}) {
        auto r = ask({{"version", 1}, {"verb", verb}}, ControlAccess::ReadOnly);
        EXPECT_EQ(r["ok"], false) << r;
        EXPECT_NE(r["error"].get<std::string>().find("permission denied"), std::string::npos)
            << verb << ": " << r;
    }
    auto stored = spool_->load(id);
    ASSERT_TRUE(stored.ok());
    for (const auto& r : stored->status) EXPECT_NE(r.state, queue::RcptState::Held);
    auto held = ask({{"version", 1}, {"verb", "queue"}, {"action", "hold"}, {"ids", {id}}});
    EXPECT_EQ(held["ok"], true) << held;  // the same request with full access acts
}

// The attack: read-only peers ask status over and over, each reply a census
// of the whole spool on the spool workers that delivery's state writes wait
// for. Requests that come while a census is under way share it: one scan,
// however many ask, and every one of them is answered.
TEST_F(ControlVerbsTest, StatusRequestsShareOneSpoolCensus) {
    commit(1000);
    std::promise<void> gate;
    auto opened = gate.get_future().share();
    std::promise<void> running;
    workers_->run(
        [opened, &running] {
            running.set_value();
            opened.wait();
        },
        [] {});  // the one worker, held
    running.get_future().wait();
    std::vector<json> replies;
    for (int i = 0; i < 8; ++i) {
        verbs_->handle(
            {{"version", 1}, {"verb", "status"}}, [&](json r) { replies.push_back(std::move(r)); },
            ControlAccess::ReadOnly);
    }
    EXPECT_EQ(workers_->queued(), 1u) << "each status request queued a census of its own";
    gate.set_value();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (replies.size() < 8 && std::chrono::steady_clock::now() < deadline) {
        timeval slice{0, 20000};
        event_base_loopexit(base_.get(), &slice);
        event_base_dispatch(base_.get());
    }
    ASSERT_EQ(replies.size(), 8u);
    for (const auto& r : replies) {
        EXPECT_EQ(r["ok"], true) << r;
        EXPECT_EQ(r["queue"]["messages"], 1) << r;
    }
    // A request after the census ended starts a new one (fresh numbers).
    commit(2000);
    EXPECT_EQ(ask({{"version", 1}, {"verb", "status"}})["queue"]["messages"], 2);
}

// drain and resume reach the server through the hooks danerelayd sets;
// status shows the state with the queue count, and each verb acts once.
TEST_F(ControlVerbsTest, DrainStopsAcceptingAndStatusShowsItUntilResume) {
    commit(kStart);
    int stops = 0, resumes = 0;
    verbs_->setDrainHooks(
        {[&] { return ++stops, okStatus(); }, [&] { return ++resumes, okStatus(); }});
    auto st = ask({{"version", 1}, {"verb", "status"}});
    EXPECT_EQ(st["draining"], false) << st;
    EXPECT_TRUE(st["draining_since"].is_null()) << st;
    clock_.advance(std::chrono::seconds(40));
    auto d = ask({{"version", 1}, {"verb", "drain"}});
    ASSERT_EQ(d["ok"], true) << d;
    EXPECT_EQ(d["verb"], "drain");
    EXPECT_EQ(d["changed"], true);
    EXPECT_EQ(d["draining"], true);
    EXPECT_EQ(d["draining_since"], kStart + 40);
    EXPECT_EQ(stops, 1);
    auto again = ask({{"version", 1}, {"verb", "drain"}});
    EXPECT_EQ(again["changed"], false) << again;
    EXPECT_EQ(again["draining_since"], kStart + 40);  // from the first drain
    EXPECT_EQ(stops, 1);
    st = ask({{"version", 1}, {"verb", "status"}});
    EXPECT_EQ(st["draining"], true) << st;
    EXPECT_EQ(st["draining_since"], kStart + 40);
    EXPECT_EQ(st["queue"]["messages"], 1) << st;
    auto r = ask({{"version", 1}, {"verb", "resume"}});
    ASSERT_EQ(r["ok"], true) << r;
    EXPECT_EQ(r["changed"], true);
    EXPECT_EQ(r["draining"], false);
    EXPECT_TRUE(r["draining_since"].is_null());
    EXPECT_EQ(resumes, 1);
    EXPECT_EQ(ask({{"version", 1}, {"verb", "status"}})["draining"], false);
}

// Draining is an act: the daemon's group may not, and the server is not touched.
TEST_F(ControlVerbsTest, DrainAndResumeNeedFullAccess) {
    int calls = 0;
    verbs_->setDrainHooks(
        {[&] { return ++calls, okStatus(); }, [&] { return ++calls, okStatus(); }});
    for (const char* verb : {"drain", "resume"}) {
        auto r = ask({{"version", 1}, {"verb", verb}}, ControlAccess::ReadOnly);
        EXPECT_EQ(r["ok"], false) << r;
        EXPECT_NE(r["error"].get<std::string>().find("permission denied"), std::string::npos);
    }
    EXPECT_EQ(calls, 0);
    EXPECT_EQ(ask({{"version", 1}, {"verb", "status"}})["draining"], false);
}

// A listener that cannot be stopped is reported by name; with no hooks
// (no server) drain says it cannot, and nothing claims to be draining.
TEST_F(ControlVerbsTest, DrainFailuresAreReported) {
    auto none = ask({{"version", 1}, {"verb", "drain"}});
    EXPECT_EQ(none["ok"], false) << none;
    EXPECT_EQ(ask({{"version", 1}, {"verb", "status"}})["draining"], false);
    verbs_->setDrainHooks(
        {[] { return Status(Error::internal("drain: 127.0.0.1:25: shutdown: Bad file")); },
         [] { return okStatus(); }});
    auto d = ask({{"version", 1}, {"verb", "drain"}});
    EXPECT_EQ(d["ok"], false) << d;
    EXPECT_NE(d["error"].get<std::string>().find("127.0.0.1:25"), std::string::npos) << d;
}

}  // namespace
}  // namespace danerelay::relay
