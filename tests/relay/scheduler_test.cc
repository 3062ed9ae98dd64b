// Scheduler's pure helpers (what an attempt record keeps of a reply, load
// retry delays), and the scheduler on a real spool and event loop: damaged
// messages are quarantined, unreadable ones retried, and the sweep indexes
// what the index lacks. Nothing here reaches the network (delivery stops at
// the load, or is disabled).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "queue/utf8.h"
#include "relay/outbound/scheduler.h"
#include "tests/relay/loop_util.h"

namespace danerelay::relay {
namespace {

// A remote reply longer than the record keeps, with the cut inside a
// character: the record keeps whole characters only, so it is valid UTF-8
// as it stands (not made so later by a U+FFFD where the cut fell).
TEST(AttemptReply, IsCutBetweenCharactersNeverInsideOne) {
    std::string reply = "451 4.3.0 x";  // 11 bytes, then 2-byte characters: one at 511..512
    for (int i = 0; i < 300; ++i) reply += "\xC3\xA9";
    ASSERT_TRUE(queue::isValidUtf8(reply));
    auto kept = Scheduler::attemptReply(reply);
    EXPECT_EQ(kept.size(), 511u);  // 512 would end inside an e-acute
    EXPECT_TRUE(queue::isValidUtf8(kept));
    EXPECT_EQ(reply.compare(0, kept.size(), kept), 0);
    // A 4-byte character straddling the limit goes whole.
    std::string four(510, 'a');
    four += "\xF0\x9F\x93\xA7";  // U+1F4E7, bytes 510..513
    EXPECT_EQ(Scheduler::attemptReply(four), std::string(510, 'a'));
}

TEST(AttemptReply, ShortRepliesAndExactFitsAreKeptWhole) {
    EXPECT_EQ(Scheduler::attemptReply("250 2.0.0 ok"), "250 2.0.0 ok");
    std::string exact(510, 'a');
    exact += "\xC3\xA9";  // ends exactly at 512
    EXPECT_EQ(Scheduler::attemptReply(exact), exact);
    EXPECT_EQ(Scheduler::attemptReply(""), "");
}

TEST(LoadRetryDelay, DoublesFromTenSecondsUpToTenMinutes) {
    EXPECT_EQ(Scheduler::loadRetryDelay(0), 10);
    EXPECT_EQ(Scheduler::loadRetryDelay(1), 10);
    EXPECT_EQ(Scheduler::loadRetryDelay(2), 20);
    EXPECT_EQ(Scheduler::loadRetryDelay(4), 80);
    EXPECT_EQ(Scheduler::loadRetryDelay(7), 600);
    EXPECT_EQ(Scheduler::loadRetryDelay(60000), 600);
}

namespace fs = std::filesystem;

// A scheduler wired to real parts: a spool in a temporary directory, a
// libevent loop, a worker pool. The resolver points at a closed port and is
// never asked (every test stops before DNS).
class SchedulerSpoolTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-sched-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        auto sp = queue::Spool::open(dir_ + "/spool", queue::Spool::Mode::Writer);
        ASSERT_TRUE(sp.ok());
        spool_ = std::move(*sp);
        base_.reset(event_base_new());
        poster_ = std::make_unique<LoopPoster>(base_.get());
        workers_ = std::make_unique<WorkerPool>(*poster_, 1);
        committer_ = std::make_unique<Committer>(*poster_, *spool_, 16);
        cfg_.hostname = "relay.test";
        cfg_.spoolDir = dir_ + "/spool";
    }
    void TearDown() override {
        if (workers_) workers_->stop();
        scheduler_.reset();
        committer_.reset();
        workers_.reset();
        resolver_.reset();
        poster_.reset();
        base_.reset();
        spool_.reset();
        fs::remove_all(dir_);
    }
    Scheduler& scheduler() {
        if (!resolver_) {
            dns::ResolverOptions o;
            o.servers = {{"127.0.0.1", dnsPort_, false}};
            o.timeoutMs = 400;
            o.attempts = 1;
            resolver_ = std::make_unique<dns::Resolver>(base_.get(), o);
        }
        if (!scheduler_) {
            scheduler_ = std::make_unique<Scheduler>(base_.get(), cfg_, *spool_, *workers_,
                                                     *committer_, *resolver_, ids_, *clock_);
        }
        return *scheduler_;
    }
    std::string commit(queue::RcptState state = queue::RcptState::Pending,
                       std::vector<queue::Recipient> rcpts = {
                           {"bob@example.com", "", queue::kNotifyNone}}) {
        queue::NewMessage m;
        m.id = ids_.next();
        m.envelope.sender = "alice@example.org";
        m.envelope.recipients = std::move(rcpts);
        m.envelope.arrival = static_cast<int64_t>(std::time(nullptr));
        m.content = "Subject: hi\r\n\r\nbody\r\n";
        EXPECT_TRUE(spool_->commitOne(m).ok());
        if (state != queue::RcptState::Pending) {
            std::vector<queue::RecipientStatus> st(m.envelope.recipients.size());
            st[0].state = state;
            if (state == queue::RcptState::Deferred) {
                st[0].attempts = 1;
                st[0].nextAttempt = static_cast<int64_t>(std::time(nullptr)) + 100;
            }
            EXPECT_TRUE(spool_->writeStatus(m.id, st).ok());
        }
        return m.id;
    }
    static std::string readFile(const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }
    void flipLastContentByte(const std::string& id) {
        std::fstream f(dir_ + "/spool/msg/" + id, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-3, std::ios::end);
        f.put('X');
    }
    // Run the loop until done() or 10 s; 50 ms slices, so bounded either way.
    bool runUntil(const std::function<bool()>& done, int seconds = 10) {
        return testing::runLoopUntil(base_.get(), done, std::chrono::seconds(seconds),
                                     std::chrono::milliseconds(50));
    }

    std::string dir_;
    std::unique_ptr<queue::Spool> spool_;
    EventBasePtr base_;
    std::unique_ptr<LoopPoster> poster_;
    std::unique_ptr<WorkerPool> workers_;
    std::unique_ptr<Committer> committer_;
    std::unique_ptr<dns::Resolver> resolver_;
    uint16_t dnsPort_ = 9;  // discard: refused at once
    queue::QueueIdGenerator ids_;
    Config cfg_;
    const Clock* clock_ = &SystemClock::instance();
    std::unique_ptr<Scheduler> scheduler_;
};

// MTA-STS on, and its policy cache (SPOOL/sts) cannot be opened: a start
// error, never a daemon that quietly runs without MTA-STS (every cached
// enforce policy would be ignored, and the mail of those domains would
// leave over unauthenticated TLS). Off, the directory is not needed.
TEST_F(SchedulerSpoolTest, AnUnopenableMtaStsCacheIsAStartError) {
    std::ofstream(dir_ + "/spool/sts") << "not a directory\n";
    cfg_.mtaSts.enabled = true;
    EXPECT_THROW(scheduler(), std::exception);
    scheduler_.reset();
    cfg_.mtaSts.enabled = false;
    EXPECT_NO_THROW(scheduler());
}

// A damaged content file found when a delivery loads the message: it is set
// aside with a .why (as recovery does), not left in msg/ unscheduled until
// the next start. (Before: logged as an error and dropped from the index.)
TEST_F(SchedulerSpoolTest, DamageFoundAtLoadIsQuarantinedNotLeftUnscheduled) {
    std::string id = commit();
    flipLastContentByte(id);  // load() still reads the envelope; the checksum fails
    auto& s = scheduler();
    s.load({id});
    ASSERT_EQ(s.queued(), 1u);
    s.setReady();
    std::string q = dir_ + "/spool/quarantine/" + id;
    bool moved = runUntil([&] { return fs::exists(q + ".why") && s.queued() == 0; });
    EXPECT_TRUE(moved) << "damaged message neither quarantined nor unindexed";
    EXPECT_TRUE(fs::exists(q));  // set aside, never deleted
    EXPECT_FALSE(fs::exists(dir_ + "/spool/msg/" + id));
    std::ifstream why(q + ".why");
    std::string line;
    std::getline(why, line);
    EXPECT_NE(line.find("checksum mismatch"), std::string::npos) << line;
}

TEST_F(SchedulerSpoolTest, QuarantineIsCounted) {
    std::string id = commit();
    flipLastContentByte(id);
    auto& s = scheduler();
    s.load({id});
    s.setReady();
    ASSERT_TRUE(runUntil([&] { return s.counters().quarantined == 1; }));
    EXPECT_EQ(spool_->quarantinedCount(), 1u);
    EXPECT_EQ(s.queued(), 0u);
}

// EMFILE while loading: the message is fine, so it stays indexed and is
// loaded again after a backoff; it is not quarantined, not dropped.
TEST_F(SchedulerSpoolTest, TransientLoadFailureIsRetriedWithBackoff) {
#if defined(__SANITIZE_ADDRESS__)
    // UBSan's vptr check needs a pipe() to probe memory; with every file
    // descriptor taken it reports valid objects as "invalid vptr". The
    // normal pass of scripts/test.sh runs this test.
    GTEST_SKIP() << "exhausts file descriptors, which the sanitizer runtime needs";
#endif
    std::string id = commit();
    auto& s = scheduler();
    s.setReady();
    rlimit old{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    int highest = 0;
    for (auto& e : fs::directory_iterator("/proc/self/fd"))
        highest = std::max(highest, std::stoi(e.path().filename().string()));
    rlimit tight{static_cast<rlim_t>(highest) + 1, old.rlim_max};
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
    std::vector<int> fillers;
    for (int i = 0; i < 4096; ++i) {  // bounded: fill the gaps below the limit
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) break;
        fillers.push_back(fd);
    }
    int64_t before = static_cast<int64_t>(std::time(nullptr));
    s.load({id});  // at start-up, too, an unreadable message stays indexed
    bool retried = runUntil([&] { return s.counters().loadRetries >= 1; });
    for (int fd : fillers) ::close(fd);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    ASSERT_TRUE(retried);
    EXPECT_EQ(s.queued(), 1u);
    EXPECT_GE(s.dueTime(id), before + Scheduler::kLoadRetryInitial);
    EXPECT_TRUE(fs::exists(dir_ + "/spool/msg/" + id));
    EXPECT_EQ(spool_->quarantinedCount(), 0u);
    EXPECT_EQ(s.counters().quarantined, 0u);
}

TEST_F(SchedulerSpoolTest, UnindexedIsTheSpoolMinusTheIndexWithoutForeignNames) {
    cfg_.delivery.enabled = false;
    std::string a = commit(), b = commit(), c = commit();
    auto& s = scheduler();
    s.load({a, c});
    EXPECT_EQ(s.unindexed({a, b, "not-an-id", c}), std::vector<std::string>{b});
    EXPECT_EQ(s.unindexed({}), std::vector<std::string>{});
}

// Messages put in msg/ behind the scheduler's back (a commit whose session
// was gone, a copy from another spool): the sweep schedules each one that
// has something to deliver, leaves held ones unindexed, and a second sweep
// finds nothing new.
TEST_F(SchedulerSpoolTest, SweepSchedulesWhatTheIndexLacks) {
    cfg_.delivery.enabled = false;  // keep everything in the index
    std::string indexed = commit();
    auto& s = scheduler();
    s.load({indexed});
    std::string missing = commit(), held = commit(queue::RcptState::Held),
                deferred = commit(queue::RcptState::Deferred);
    std::ofstream(dir_ + "/spool/msg/not-an-id") << "x";
    ASSERT_EQ(s.queued(), 1u);
    std::optional<SweepReport> r;
    s.sweep([&](const SweepReport& rep) { r = rep; });
    ASSERT_TRUE(runUntil([&] { return r.has_value(); }));
    EXPECT_EQ(r->listed, 5u);
    EXPECT_EQ(r->notDue, 1u);
    EXPECT_EQ(s.dueTime(held), 0);
    EXPECT_EQ(r->scheduled, (std::vector<std::string>{missing, deferred}));
    EXPECT_EQ(s.queued(), 3u);
    EXPECT_NE(s.dueTime(missing), 0);
    EXPECT_EQ(s.counters().swept, 2u);

    std::string held2 = commit(queue::RcptState::Held);
    r.reset();
    s.sweep([&](const SweepReport& rep) { r = rep; });
    ASSERT_TRUE(runUntil([&] { return r.has_value(); }));
    EXPECT_TRUE(r->scheduled.empty());
    EXPECT_EQ(r->notDue, 2u);
    EXPECT_EQ(s.dueTime(held2), 0);
    EXPECT_EQ(s.queued(), 3u);
}

// Start-up recovery in the background: more messages than one batch, among
// them a damaged one, a held one, a deferred one, a foreign file name and an
// ID listed at start but deleted before its batch is read. The loop keeps
// running between batches (a message committed meanwhile is indexed at
// once, before recovery ends); every readable message with something to
// deliver is indexed with its due time, the damaged one and the foreign
// name are set aside (never deleted), the held one is not indexed.
TEST_F(SchedulerSpoolTest, RecoveryInTheBackgroundIndexesEverythingAndServesMeanwhile) {
    cfg_.delivery.enabled = false;  // keep everything in the index
    std::vector<std::string> ids;
    for (size_t i = 0; i < Scheduler::kRecoveryBatch * 2 + 10; ++i) ids.push_back(commit());
    std::string damaged = ids[Scheduler::kRecoveryBatch + 3];
    flipLastContentByte(damaged);
    std::string held = commit(queue::RcptState::Held);
    std::string deferred = commit(queue::RcptState::Deferred);
    std::string gone = commit();
    std::ofstream(dir_ + "/spool/msg/not-an-id") << "x";
    std::ofstream(dir_ + "/spool/tmp/leftover") << "x";
    auto scan = spool_->beginRecovery();
    EXPECT_EQ(scan.debrisRemoved, 1u);
    EXPECT_FALSE(fs::exists(dir_ + "/spool/tmp/leftover"));
    ASSERT_EQ(scan.ids.size(), ids.size() + 4);
    ASSERT_TRUE(spool_->remove(gone, true).ok());

    auto& s = scheduler();
    std::optional<Scheduler::RecoveryProgress> done;
    s.recover(scan.ids, [&](const Scheduler::RecoveryProgress& r) { done = r; });
    EXPECT_TRUE(s.recovery().running);
    // New mail while recovery runs: indexed now, not behind the old.
    std::string fresh = commit();
    s.enqueue(fresh);
    EXPECT_NE(s.dueTime(fresh), 0);
    // A sweep while recovery runs does nothing (recovery indexes msg/ itself).
    std::optional<SweepReport> swept;
    s.sweep([&](const SweepReport& r) { swept = r; });
    ASSERT_TRUE(swept.has_value());
    EXPECT_EQ(swept->listed, 0u);

    ASSERT_TRUE(runUntil([&] { return done.has_value(); }));
    EXPECT_FALSE(s.recovery().running);
    EXPECT_EQ(done->listed, ids.size() + 4);
    EXPECT_EQ(done->checked, ids.size() + 4);
    EXPECT_EQ(done->queued, ids.size() - 1 + 2);  // all but the damaged; held and deferred
    ASSERT_EQ(done->quarantined.size(), 2u);
    EXPECT_EQ(done->quarantined[0].file, "msg/" + damaged);
    EXPECT_NE(done->quarantined[0].reason.find("checksum mismatch"), std::string::npos);
    EXPECT_EQ(done->quarantined[1].file, "msg/not-an-id");
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/" + damaged));
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/not-an-id"));
    for (const auto& id : ids) {
        if (id != damaged) {
            EXPECT_NE(s.dueTime(id), 0) << id;
        }
    }
    EXPECT_EQ(s.dueTime(damaged), 0);
    EXPECT_EQ(s.dueTime(held), 0);
    EXPECT_EQ(s.dueTime(gone), 0);
    EXPECT_GT(s.dueTime(deferred), static_cast<int64_t>(std::time(nullptr)) + 50);
    EXPECT_EQ(s.queued(), ids.size() - 1 + 1 + 1);  // + deferred + fresh
}

// Attack on an operator's flush (SIGUSR1, "postqueue -f") right after a
// restart, while recovery still reads the queue: it forced only what was
// indexed so far, and the sweep it asks for is skipped while recovering, so
// a deferred message in a later batch kept its retry time (the flush was
// acknowledged, half the queue ignored). Now recovery remembers the flush
// and indexes what it finds afterwards as due at once.
TEST_F(SchedulerSpoolTest, AFlushDuringRecoveryReachesMessagesNotYetRecovered) {
    cfg_.delivery.enabled = false;  // keep everything in the index
    std::vector<std::string> ids;
    for (size_t i = 0; i < Scheduler::kRecoveryBatch + 5; ++i) ids.push_back(commit());
    std::string deferred = commit(queue::RcptState::Deferred);  // in the second batch
    std::string held = commit(queue::RcptState::Held);
    auto scan = spool_->beginRecovery();
    auto& s = scheduler();
    std::optional<Scheduler::RecoveryProgress> done;
    s.recover(scan.ids, [&](const Scheduler::RecoveryProgress& r) { done = r; });
    s.flush();
    ASSERT_TRUE(runUntil([&] { return done.has_value(); }));
    int64_t now = static_cast<int64_t>(std::time(nullptr));
    EXPECT_NE(s.dueTime(deferred), 0);
    EXPECT_LE(s.dueTime(deferred), now) << "the flush did not reach it: retry still ahead";
    EXPECT_EQ(s.dueTime(held), 0);  // a flush never releases a held message
    // A flush is one request: recovery after this one keeps due times.
    std::string later = commit(queue::RcptState::Deferred);
    std::optional<Scheduler::RecoveryProgress> again;
    s.recover({later}, [&](const Scheduler::RecoveryProgress& r) { again = r; });
    ASSERT_TRUE(runUntil([&] { return again.has_value(); }));
    EXPECT_GT(s.dueTime(later), now + 50);
}

// The first step is directory listings only: a state file whose message is
// gone (an interrupted remove) is debris; nothing in msg/ is read or moved.
TEST_F(SchedulerSpoolTest, BeginRecoveryListsAndClearsButReadsNoMessage) {
    std::string a = commit(), b = commit();
    flipLastContentByte(b);
    std::ofstream(dir_ + "/spool/state/00000000000001") << "{}";
    auto scan = spool_->beginRecovery();
    EXPECT_EQ(scan.ids, (std::vector<std::string>{a, b}));
    EXPECT_EQ(scan.debrisRemoved, 1u);
    EXPECT_FALSE(fs::exists(dir_ + "/spool/state/00000000000001"));
    EXPECT_TRUE(fs::exists(dir_ + "/spool/msg/" + b));  // damaged, still in place
    EXPECT_EQ(spool_->recoverOne(a).verdict, queue::RecoveryCheck::Verdict::Queued);
    auto c = spool_->recoverOne(b);
    EXPECT_EQ(c.verdict, queue::RecoveryCheck::Verdict::Quarantined);
    EXPECT_EQ(spool_->recoverOne(b).verdict, queue::RecoveryCheck::Verdict::Gone);
}

// Attack (kill -9 at the wrong moment): quarantine() moves msg/ID, then
// state/ID, then writes ID.why. Killed after the first rename, it left
// state/ID behind, which the next start took for debris of a remove() and
// deleted: the quarantined message lost the record of which recipients had
// it (and, without a .why, was not even counted). Now the state follows the
// message into quarantine/ and a .why says what happened.
TEST_F(SchedulerSpoolTest, AQuarantineCutOffByACrashKeepsItsStateFile) {
    std::string id = commit(queue::RcptState::Deferred);
    std::string state = readFile(dir_ + "/spool/state/" + id);
    ASSERT_FALSE(state.empty());
    fs::rename(dir_ + "/spool/msg/" + id, dir_ + "/spool/quarantine/" + id);  // the cut
    auto scan = spool_->beginRecovery();
    EXPECT_TRUE(scan.ids.empty());
    EXPECT_EQ(scan.debrisRemoved, 0u);
    EXPECT_FALSE(fs::exists(dir_ + "/spool/state/" + id));
    EXPECT_EQ(readFile(dir_ + "/spool/quarantine/" + id + ".state"), state);
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/" + id + ".why"));
    EXPECT_EQ(spool_->quarantinedCount(), 1u);
    // An orphan of an interrupted remove() is still debris.
    std::ofstream(dir_ + "/spool/state/00000000000001") << "{}";
    EXPECT_EQ(spool_->beginRecovery().debrisRemoved, 1u);
    EXPECT_FALSE(fs::exists(dir_ + "/spool/state/00000000000001"));
}

// A DNS server on loopback that never answers, and counts the queries: each
// one stays open until the resolver's timeout, so queries seen in a window
// shorter than that were open at the same time.
class SilentDns {
  public:
    SilentDns() {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        timeval tv{0, 50000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        thread_ = std::thread([this] {
            auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
            char buf[4096];
            while (!stop_ && std::chrono::steady_clock::now() < deadline) {  // bounded
                if (::recv(fd_, buf, sizeof buf, 0) > 0) {
                    std::lock_guard<std::mutex> l(mu_);
                    at_.push_back(std::chrono::steady_clock::now());
                }
            }
        });
    }
    ~SilentDns() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    uint16_t port() const { return port_; }
    // The most queries that arrived within any `window`.
    size_t peak(std::chrono::milliseconds window) {
        std::lock_guard<std::mutex> l(mu_);
        size_t best = 0;
        for (size_t i = 0, j = 0; j < at_.size(); ++j) {
            while (at_[j] - at_[i] > window) ++i;
            best = std::max(best, j - i + 1);
        }
        return best;
    }
    size_t total() {
        std::lock_guard<std::mutex> l(mu_);
        return at_.size();
    }

  private:
    int fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::vector<std::chrono::steady_clock::time_point> at_;
    std::thread thread_;
};

// Fan-out: 3 messages of 12 recipient domains each would open 36 lookups
// (and then 36 SMTP sessions) at once. With limits.max_connections_per_message
// 3 and limits.max_outbound_connections 5, at most 5 are open at a time, and
// every domain still gets its turn (each deferred after its DNS timeout).
TEST_F(SchedulerSpoolTest, OutboundConnectionsAreLimitedInAllAndPerMessage) {
    SilentDns dns;
    dnsPort_ = dns.port();
    cfg_.limits.maxOutboundConnections = 5;
    cfg_.limits.maxConnectionsPerMessage = 3;
    std::vector<std::string> msgs;
    for (int m = 0; m < 3; ++m) {
        std::vector<queue::Recipient> rcpts;
        for (int d = 0; d < 12; ++d)
            rcpts.push_back({"u@d" + std::to_string(m) + "-" + std::to_string(d) + ".example", "",
                             queue::kNotifyNone});
        msgs.push_back(commit(queue::RcptState::Pending, rcpts));
    }
    auto& s = scheduler();
    s.load(msgs);
    s.setReady();
    auto allDeferred = [&] {
        for (const auto& id : msgs) {
            auto m = spool_->load(id);
            if (!m) return false;
            for (const auto& st : m->status)
                if (st.state != queue::RcptState::Deferred) return false;
        }
        return true;
    };
    ASSERT_TRUE(runUntil(allDeferred, 40)) << dns.total() << " queries";
    EXPECT_EQ(s.connectionsPeak(), 5u);  // reached, never passed
    EXPECT_EQ(s.connectionsInUse(), 0u);
    EXPECT_GE(dns.total(), 36u);  // every domain was asked for
    // Queries open at once, seen at the server (the timeout is 400 ms).
    EXPECT_LE(dns.peak(std::chrono::milliseconds(200)), 5u);
}

// ------------------------------------------- time from a ManualClock
//
// The resolver is refused at once, so every attempt ends deferred (no MX
// could be looked up); the clock says when that happened.

class SchedulerClockTest : public SchedulerSpoolTest {
  protected:
    void SetUp() override {
        SchedulerSpoolTest::SetUp();
        clock_ = &manual_;
        cfg_.delivery.retryInitial = 300;
        cfg_.delivery.retryMax = 3600;
        cfg_.delivery.maxQueueLifetime = 86400;
    }
    // A message that arrived `age` seconds before the manual clock's now.
    std::string commitAged(int64_t age) {
        queue::NewMessage m;
        m.id = ids_.next();
        m.envelope.sender = "alice@example.org";
        m.envelope.recipients = {{"bob@example.com", "", queue::kNotifyNone}};
        m.envelope.arrival = manual_.wallSeconds() - age;
        m.content = "Subject: hi\r\n\r\nbody\r\n";
        EXPECT_TRUE(spool_->commitOne(m).ok());
        return m.id;
    }
    queue::RecipientStatus statusOf(const std::string& id) {
        auto m = spool_->load(id);
        EXPECT_TRUE(m.ok());
        return m ? m->status.at(0) : queue::RecipientStatus{};
    }
    bool attempted(const std::string& id, int attempts) {
        auto m = spool_->load(id);
        return !m || (m->status.at(0).attempts >= attempts && scheduler().running() == 0);
    }
    ManualClock manual_{static_cast<int64_t>(std::time(nullptr))};
};

TEST_F(SchedulerClockTest, ADeferredRecipientWaitsItsBackoffByTheClock) {
    std::string id = commitAged(0);
    auto& s = scheduler();
    s.load({id});
    s.setReady();
    ASSERT_TRUE(runUntil([&] { return attempted(id, 1); }));
    auto st = statusOf(id);
    EXPECT_EQ(st.state, queue::RcptState::Deferred) << st.lastError;
    EXPECT_EQ(st.nextAttempt, manual_.wallSeconds() + 300);
    EXPECT_EQ(s.dueTime(id), manual_.wallSeconds() + 300);
    // Not due until the clock says so; then tried again, the wait doubled.
    manual_.advance(std::chrono::seconds(299));
    s.load({});  // a kick: look at what is due
    runUntil([] { return false; }, 1);
    EXPECT_EQ(statusOf(id).attempts, 1);
    manual_.advance(std::chrono::seconds(1));
    s.load({});
    ASSERT_TRUE(runUntil([&] { return attempted(id, 2); }));
    st = statusOf(id);
    EXPECT_EQ(st.attempts, 2);
    EXPECT_EQ(st.nextAttempt, manual_.wallSeconds() + 600);
}

TEST_F(SchedulerClockTest, AtTheQueueLifetimeADeferralBecomesA547Bounce) {
    std::string young = commitAged(86399), old = commitAged(86400);
    auto& s = scheduler();
    s.load({young, old});
    s.setReady();
    ASSERT_TRUE(runUntil([&] { return attempted(young, 1) && !spool_->load(old).ok(); }));
    EXPECT_EQ(statusOf(young).state, queue::RcptState::Deferred);
    // The expired one is final: bounced with a DSN, and removed.
    std::vector<std::string> ids = spool_->listIds();
    ASSERT_EQ(ids.size(), 2u);  // the young one and the DSN
    std::string dsn = ids[0] == young ? ids[1] : ids[0];
    auto m = spool_->load(dsn);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->envelope.sender, "");
    EXPECT_EQ(m->envelope.arrival, manual_.wallSeconds());
    auto content = spool_->loadContent(dsn);
    ASSERT_TRUE(content.ok());
    EXPECT_NE(content->find("5.4.7"), std::string::npos);
}

// An operator's hold while the message is being delivered waits for the
// delivery to end, then applies to what is left.
TEST_F(SchedulerClockTest, AnOperatorActionWaitsForTheDeliveryInFlight) {
    SilentDns dns;  // the delivery waits 400 ms for its lookup
    dnsPort_ = dns.port();
    std::string id = commitAged(0);
    auto& s = scheduler();
    s.load({id});
    s.setReady();
    ASSERT_TRUE(runUntil([&] { return s.running() == 1; }));
    std::optional<AdminResult> held;
    s.admin(AdminAction::Hold, id, [&](AdminResult r) { held = r; });
    EXPECT_FALSE(held);  // not alongside the delivery
    ASSERT_TRUE(runUntil([&] { return held.has_value(); }));
    EXPECT_EQ(held->result, "done");
    EXPECT_EQ(held->detail, "1 recipient(s)");
    auto st = statusOf(id);
    EXPECT_EQ(st.state, queue::RcptState::Held);
    EXPECT_EQ(st.attempts, 1);  // the delivery ran first
    EXPECT_EQ(s.dueTime(id), 0);
    // Released: deferred again, with the retry time it had.
    std::optional<AdminResult> released;
    s.admin(AdminAction::Release, id, [&](AdminResult r) { released = r; });
    ASSERT_TRUE(runUntil([&] { return released.has_value(); }));
    EXPECT_EQ(statusOf(id).state, queue::RcptState::Deferred);
    EXPECT_EQ(s.dueTime(id), manual_.wallSeconds() + 300);
}

// Per destination: limits.max_per_destination sessions at once.
TEST_F(SchedulerClockTest, OneDestinationSlotAtATime) {
    SilentDns dns;
    dnsPort_ = dns.port();
    cfg_.delivery.maxPerDestination = 1;
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(commitAged(0));
    auto& s = scheduler();
    s.load(ids);
    s.setReady();
    auto allTried = [&] {
        for (const auto& id : ids)
            if (!attempted(id, 1)) return false;
        return true;
    };
    ASSERT_TRUE(runUntil(allTried, 20));
    EXPECT_EQ(s.connectionsPeak(), 1u);  // three messages, one domain: one at a time
}

}  // namespace
}  // namespace danerelay::relay
