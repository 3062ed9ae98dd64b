#include "queue/spool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "queue/queue_id.h"

using namespace danerelay;
using namespace danerelay::queue;
namespace fs = std::filesystem;

namespace {

class SpoolTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-spool-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::unique_ptr<Spool> open() {
        auto s = Spool::open(dir_ + "/spool", Spool::Mode::Writer);
        EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
        return std::move(*s);
    }

    static NewMessage message(const std::string& id,
                              std::string content = "Subject: hi\r\n\r\nbody\r\n") {
        NewMessage m;
        m.id = id;
        m.envelope.sender = "alice@example.org";
        m.envelope.recipients = {{"bob@example.com", "rfc822;bob@example.com", kNotifyFailure},
                                 {"carol@example.net", "", kNotifyNone}};
        m.envelope.envid = "env-1";
        m.envelope.ret = DsnRet::Headers;
        m.envelope.arrival = 1700000000;
        m.envelope.clientAddress = "127.0.0.1";
        m.content = std::move(content);
        return m;
    }

    size_t count(const std::string& sub) {
        size_t n = 0;
        for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_ + "/spool/" + sub)) ++n;
        return n;
    }

    std::string dir_;
    QueueIdGenerator ids_;
};

TEST_F(SpoolTest, CommitThenLoadRoundTrips) {
    auto spool = open();
    auto m = message(ids_.next());
    ASSERT_TRUE(spool->commitOne(m).ok());
    auto loaded = spool->load(m.id);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_EQ(loaded->envelope, m.envelope);
    ASSERT_EQ(loaded->status.size(), 2u);
    EXPECT_EQ(loaded->status[0].state, RcptState::Pending);
    EXPECT_EQ(loaded->contentSize, m.content.size());
    auto content = spool->loadContent(m.id);
    ASSERT_TRUE(content.ok());
    EXPECT_EQ(*content, m.content);
    EXPECT_EQ(count("tmp"), 0u);
}

// REQUIRETLS (RFC 8689) is part of the envelope on disk: a message that
// asked for it must never be relayed as if it had not, after any restart.
TEST_F(SpoolTest, RequireTlsSurvivesTheSpool) {
    auto spool = open();
    auto m = message(ids_.next());
    m.envelope.requireTls = true;
    ASSERT_TRUE(spool->commitOne(m).ok());
    auto loaded = spool->load(m.id);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_TRUE(loaded->envelope.requireTls);
    auto plain = message(ids_.next());
    ASSERT_TRUE(spool->commitOne(plain).ok());
    EXPECT_FALSE(spool->load(plain.id)->envelope.requireTls);
    EXPECT_FALSE(spool->load(plain.id)->envelope.tlsRequiredNo);
    // "TLS-Required: No" (RFC 8689 5), read at accept, travels the same way.
    auto no = message(ids_.next());
    no.envelope.tlsRequiredNo = true;
    ASSERT_TRUE(spool->commitOne(no).ok());
    EXPECT_TRUE(spool->load(no.id)->envelope.tlsRequiredNo);
}

TEST_F(SpoolTest, GroupCommitStoresEveryMessageOfTheBatch) {
    auto spool = open();
    std::vector<NewMessage> msgs;
    for (int i = 0; i < 50; ++i) {
        std::string content = "n";  // not "n" + temporary: GCC 12 -Wrestrict at -O3
        msgs.push_back(message(ids_.next(), content += std::to_string(i)));
    }
    std::vector<const NewMessage*> ptrs;
    for (auto& m : msgs) ptrs.push_back(&m);
    auto results = spool->commit(ptrs);
    ASSERT_EQ(results.size(), 50u);
    for (auto& r : results) EXPECT_TRUE(r.ok());
    EXPECT_EQ(spool->listIds().size(), 50u);
    EXPECT_EQ(*spool->loadContent(msgs[17].id), "n17");
}

TEST_F(SpoolTest, ExistingMessageIsNeverOverwritten) {
    auto spool = open();
    auto m = message("0000000000000A", "first");
    ASSERT_TRUE(spool->commitOne(m).ok());
    auto again = message("0000000000000A", "second");
    EXPECT_FALSE(spool->commitOne(again).ok());
    EXPECT_EQ(*spool->loadContent(m.id), "first");
    EXPECT_EQ(count("tmp"), 0u);
}

TEST_F(SpoolTest, PerRecipientStateIsDurableAndIndependent) {
    auto spool = open();
    auto m = message(ids_.next());
    ASSERT_TRUE(spool->commitOne(m).ok());
    std::vector<RecipientStatus> st(2);
    st[0].state = RcptState::Delivered;
    st[1].state = RcptState::Deferred;
    st[1].nextAttempt = 1700000300;
    st[1].attempts = 1;
    st[1].lastError = "4.7.5 TLSA mismatch";
    ASSERT_TRUE(spool->writeStatus(m.id, st).ok());
    // A second Spool object (a restart) sees the same.
    spool.reset();
    auto reopened = open();
    auto loaded = reopened->load(m.id);
    ASSERT_TRUE(loaded.ok());
    EXPECT_EQ(loaded->status, st);
}

// One writer per message: a second write of the same ID while the first is
// in progress is refused and changes nothing. The first is held inside
// writeStatus() by a FIFO where its temporary file goes (open(O_WRONLY)
// blocks until a reader comes).
TEST_F(SpoolTest, OverlappingWritesOfOneMessageAreRefused) {
    auto spool = open();
    auto m = message(ids_.next());
    ASSERT_TRUE(spool->commitOne(m).ok());
    std::string fifo = dir_ + "/spool/tmp/" + m.id + ".state";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::vector<RecipientStatus> st(2);
    st[0].state = RcptState::Delivered;
    std::atomic<pid_t> tid{0};
    std::future<Status> first = std::async(std::launch::async, [&] {
        tid = static_cast<pid_t>(::syscall(SYS_gettid));
        return spool->writeStatus(m.id, st);
    });
    std::future<Status> second;
    // Whatever happens below, the writers are let go before the test ends.
    struct Release {
        std::string fifo;
        std::vector<std::future<Status>*> writers;
        void go() {
            for (auto* w : writers) {
                for (int i = 0; i < 500 && w->valid(); ++i) {
                    UniqueFd reader(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
                    if (w->wait_for(std::chrono::milliseconds(10)) == std::future_status::ready)
                        (void)w->get();
                }
            }
        }
        ~Release() { go(); }
    } release{fifo, {&first, &second}};
    // Wait (at most 5 s) until the first writer is blocked in openat() of the FIFO.
    bool blocked = false;
    for (int i = 0; i < 500 && !blocked; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (tid == 0) continue;
        std::ifstream sc("/proc/self/task/" + std::to_string(tid.load()) + "/syscall");
        long nr = -1;
        blocked = (sc >> nr) && nr == SYS_openat;
    }
    ASSERT_TRUE(blocked) << "the first writer never reached open() of the FIFO";
    second = std::async(std::launch::async, [&] { return spool->writeStatus(m.id, st); });
    // Refused at once; without the claim it would block on the FIFO too.
    ASSERT_EQ(second.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    auto refused = second.get();
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().kind, ErrorKind::Internal);
    EXPECT_NE(refused.error().message.find(m.id), std::string::npos) << refused.error().message;
    EXPECT_NE(refused.error().message.find("overlapped"), std::string::npos);
    EXPECT_FALSE(spool->remove(m.id, false).ok());
    EXPECT_EQ(count("msg"), 1u);  // the refused remove() changed nothing
    release.go();                 // the first goes on (and fails: fsync of a FIFO)
    ::unlink(fifo.c_str());
    // The claim is released: the next write goes through.
    EXPECT_TRUE(spool->writeStatus(m.id, st).ok());
    EXPECT_TRUE(spool->remove(m.id, false).ok());
}

TEST_F(SpoolTest, SecondWriterIsRefusedByTheLock) {
    auto spool = open();
    auto second = Spool::open(dir_ + "/spool", Spool::Mode::Writer);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("locked"), std::string::npos);
}

TEST_F(SpoolTest, RemoveDeletesMessageAndState) {
    auto spool = open();
    auto m = message(ids_.next());
    ASSERT_TRUE(spool->commitOne(m).ok());
    ASSERT_TRUE(spool->writeStatus(m.id, std::vector<RecipientStatus>(2)).ok());
    ASSERT_TRUE(spool->remove(m.id).ok());
    EXPECT_EQ(count("msg"), 0u);
    EXPECT_EQ(count("state"), 0u);
    EXPECT_FALSE(spool->remove(m.id).ok());
}

// ---- recovery of damaged spools: set aside and reported, never deleted

TEST_F(SpoolTest, RecoveryQuarantinesTruncatedAndGarbageFiles) {
    std::string good, truncated, garbageState;
    {
        auto spool = open();
        good = ids_.next();
        truncated = ids_.next();
        garbageState = ids_.next();
        for (auto& id : {good, truncated, garbageState}) {
            ASSERT_TRUE(spool->commitOne(message(id)).ok());
        }
    }
    fs::resize_file(dir_ + "/spool/msg/" + truncated, 40);
    std::ofstream(dir_ + "/spool/state/" + garbageState) << "{not json";
    std::ofstream(dir_ + "/spool/msg/not-an-id") << "whatever";

    auto spool = open();
    auto report = spool->recover();
    EXPECT_EQ(report.queued, std::vector<std::string>{good});
    ASSERT_EQ(report.quarantined.size(), 3u);
    for (const auto& q : report.quarantined) EXPECT_FALSE(q.reason.empty()) << q.file;
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/" + truncated));
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/" + truncated + ".why"));
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/" + garbageState));
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/" + garbageState + ".state"));
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/not-an-id"));
}

TEST_F(SpoolTest, AFifoInTheSpoolIsDamageNotAHang) {
    // A FIFO named like a message, or like a message's state: opening one
    // for reading would wait for a writer for ever, and recovery with it.
    std::string good, fifoMsg;
    {
        auto spool = open();
        good = ids_.next();
        fifoMsg = ids_.next();
        ASSERT_TRUE(spool->commitOne(message(good)).ok());
    }
    ASSERT_EQ(::mkfifo((dir_ + "/spool/msg/" + fifoMsg).c_str(), 0600), 0);
    ASSERT_EQ(::mkfifo((dir_ + "/spool/state/" + good).c_str(), 0600), 0);
    auto spool = open();
    auto done = std::make_shared<std::promise<RecoveryReport>>();
    auto result = done->get_future();
    std::thread([spool = spool.get(), done] { done->set_value(spool->recover()); }).detach();
    ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready)
        << "recovery hung on a FIFO";
    auto report = result.get();
    EXPECT_TRUE(report.queued.empty());
    ASSERT_EQ(report.quarantined.size(), 2u);
    for (const auto& q : report.quarantined)
        EXPECT_NE(q.reason.find("not a regular file"), std::string::npos)
            << q.file << ": " << q.reason;
    auto l = spool->load(fifoMsg);
    EXPECT_FALSE(l.ok());
}

TEST_F(SpoolTest, ChecksumCatchesFlippedContentByte) {
    auto spool = open();
    auto m = message(ids_.next());
    ASSERT_TRUE(spool->commitOne(m).ok());
    std::string path = dir_ + "/spool/msg/" + m.id;
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('X');
    f.close();
    auto c = spool->loadContent(m.id);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("checksum"), std::string::npos);
}

TEST_F(SpoolTest, RecoveryQuarantinesAFlippedContentByte) {
    // load() reads only the envelope; recovery must check the checksum too,
    // or the message looks queued and is then never delivered nor bounced.
    std::string good, flipped;
    {
        auto spool = open();
        good = ids_.next();
        flipped = ids_.next();
        for (auto& id : {good, flipped}) ASSERT_TRUE(spool->commitOne(message(id)).ok());
    }
    {
        std::fstream f(dir_ + "/spool/msg/" + flipped,
                       std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-3, std::ios::end);
        f.put('X');
    }
    auto spool = open();
    auto report = spool->recover();
    EXPECT_EQ(report.queued, std::vector<std::string>{good});
    ASSERT_EQ(report.quarantined.size(), 1u);
    EXPECT_EQ(report.quarantined[0].file, "msg/" + flipped);
    EXPECT_NE(report.quarantined[0].reason.find("checksum mismatch"), std::string::npos);
    EXPECT_TRUE(fs::exists(dir_ + "/spool/quarantine/" + flipped));  // set aside, not deleted
    std::ifstream why(dir_ + "/spool/quarantine/" + flipped + ".why");
    std::string line;
    std::getline(why, line);
    EXPECT_NE(line.find("checksum mismatch"), std::string::npos) << line;
    EXPECT_FALSE(fs::exists(dir_ + "/spool/msg/" + flipped));
}

TEST_F(SpoolTest, QuarantinedFilesAreCountedByTheirNotes) {
    std::string id = ids_.next();
    {
        auto spool = open();
        ASSERT_TRUE(spool->commitOne(message(id)).ok());
        EXPECT_EQ(spool->quarantinedCount(), 0u);
        ASSERT_TRUE(spool->quarantine(id, "test: set aside").ok());
        EXPECT_EQ(spool->quarantinedCount(), 1u);
    }
    auto reader = Spool::open(dir_ + "/spool", Spool::Mode::Reader);
    ASSERT_TRUE(reader.ok());
    EXPECT_EQ((*reader)->quarantinedCount(), 1u);  // danectl queue summary's view
    EXPECT_TRUE((*reader)->listIds().empty());
}

TEST_F(SpoolTest, VerifyChecksTheWholeFileInPieces) {
    auto spool = open();
    auto big = message(ids_.next(), std::string(300000, 'a'));  // several 64 KiB reads
    ASSERT_TRUE(spool->commitOne(big).ok());
    EXPECT_TRUE(spool->verify(big.id).ok());
    {
        std::fstream f(dir_ + "/spool/msg/" + big.id,
                       std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(200000);
        f.put('b');
    }
    auto v = spool->verify(big.id);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(classifyLoadError(v.error()), LoadFailure::Damaged);
    EXPECT_TRUE(spool->load(big.id).ok());  // the envelope alone cannot tell
    // Appended bytes: the size no longer matches the header.
    auto m2 = message(ids_.next());
    ASSERT_TRUE(spool->commitOne(m2).ok());
    std::ofstream(dir_ + "/spool/msg/" + m2.id, std::ios::app) << "extra";
    auto v2 = spool->verify(m2.id);
    ASSERT_FALSE(v2.ok());
    EXPECT_NE(v2.error().message.find("size"), std::string::npos) << v2.error().message;
    EXPECT_EQ(classifyLoadError(spool->verify("0000000000FFFF").error()), LoadFailure::NotFound);
}

TEST_F(SpoolTest, LoadErrorsAreToldApartNotFoundTransientDamaged) {
    auto spool = open();
    auto m = message(ids_.next());
    ASSERT_TRUE(spool->commitOne(m).ok());
    EXPECT_EQ(classifyLoadError(spool->load("0000000000FFFF").error()), LoadFailure::NotFound);
    EXPECT_EQ(classifyLoadError(spool->loadContent("0000000000FFFF").error()),
              LoadFailure::NotFound);

    // EMFILE: no descriptor left. The message is fine; it must not be
    // quarantined nor dropped by the scheduler.
    rlimit old{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    int highest = 0;
    for (auto& e : fs::directory_iterator("/proc/self/fd"))
        highest = std::max(highest, std::stoi(e.path().filename().string()));
    rlimit tight{static_cast<rlim_t>(highest) + 1, old.rlim_max};
    // Close the gaps below the limit so that every open() fails.
    std::vector<int> fillers;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
    for (int i = 0; i < 4096; ++i) {  // bounded
        int fd = ::open("/dev/null", O_RDONLY);
        if (fd < 0) break;
        fillers.push_back(fd);
    }
    auto l = spool->load(m.id);
    auto c = spool->loadContent(m.id);
    auto v = spool->verify(m.id);
    for (int fd : fillers) ::close(fd);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(classifyLoadError(l.error()), LoadFailure::Transient) << l.error().message;
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(classifyLoadError(c.error()), LoadFailure::Transient) << c.error().message;
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(classifyLoadError(v.error()), LoadFailure::Transient) << v.error().message;
    EXPECT_TRUE(fs::exists(dir_ + "/spool/msg/" + m.id));

    // Damage: a header that says more than the file holds.
    fs::resize_file(dir_ + "/spool/msg/" + m.id, 40);
    EXPECT_EQ(classifyLoadError(spool->load(m.id).error()), LoadFailure::Damaged);
    EXPECT_EQ(classifyLoadError(spool->loadContent(m.id).error()), LoadFailure::Damaged);
}

TEST_F(SpoolTest, OrphanedStateAndTmpDebrisAreCleared) {
    {
        auto spool = open();
        std::ofstream(dir_ + "/spool/state/0000000000000B") << "{}";
        std::ofstream(dir_ + "/spool/tmp/0000000000000C") << "half a message";
    }
    auto spool = open();
    auto report = spool->recover();
    EXPECT_EQ(report.debrisRemoved, 2u);
    EXPECT_TRUE(report.queued.empty());
    EXPECT_EQ(count("tmp"), 0u);
    EXPECT_EQ(count("state"), 0u);
}

// ---- a write error while accepting: an error, and nothing left behind

TEST_F(SpoolTest, WriteFailureLeavesNoPartialFile) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::signal(SIGXFSZ, SIG_IGN);
        auto s = Spool::open(dir_ + "/spool", Spool::Mode::Writer);
        if (!s) _exit(3);
        rlimit lim{1024, 1024};  // the "disk" is full after 1 KiB
        setrlimit(RLIMIT_FSIZE, &lim);
        auto big = message("0000000000000D", std::string(4096, 'x'));
        auto small = message("0000000000000E", "small");
        const NewMessage* batch[] = {&big, &small};
        auto r = (*s)->commit(batch);
        _exit(!r[0].ok() && r[0].error().kind == ErrorKind::Temporary && r[1].ok() ? 0 : 4);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(count("tmp"), 0u);
    auto spool = open();
    EXPECT_EQ(spool->listIds(), std::vector<std::string>{"0000000000000E"});
}

// ---- crash tests: SIGKILL the writer at each stage of a commit

class CrashTest : public SpoolTest, public ::testing::WithParamInterface<CommitStage> {};

TEST_P(CrashTest, RecoveryFindsNothingHalfDone) {
    const CommitStage killAt = GetParam();
    const std::string id = "0000000000001F";
    const std::string content = "Subject: crash\r\n\r\n" + std::string(100000, 'c') + "\r\n";
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        auto s = Spool::open(dir_ + "/spool", Spool::Mode::Writer);
        if (!s) _exit(3);
        (*s)->setCommitHook([killAt](CommitStage st) {
            if (st == killAt) ::kill(::getpid(), SIGKILL);
        });
        auto m = message(id, content);
        (void)(*s)->commitOne(m);
        _exit(0);  // not reached
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGKILL);

    auto spool = open();  // the dead writer's lock is gone with it
    auto report = spool->recover();
    EXPECT_TRUE(report.quarantined.empty());
    EXPECT_EQ(count("tmp"), 0u);
    bool renamed = killAt == CommitStage::Renamed || killAt == CommitStage::DirSynced;
    if (renamed) {
        // The rename happened: the whole message is there, intact.
        ASSERT_EQ(report.queued, std::vector<std::string>{id});
        auto c = spool->loadContent(id);
        ASSERT_TRUE(c.ok()) << c.error().message;
        EXPECT_EQ(*c, content);
    } else {
        // Never acknowledged, never visible: only debris, now removed.
        EXPECT_TRUE(report.queued.empty());
        EXPECT_EQ(report.debrisRemoved, 1u);
    }
}

INSTANTIATE_TEST_SUITE_P(EveryStage, CrashTest,
                         ::testing::Values(CommitStage::TmpWritten, CommitStage::TmpSynced,
                                           CommitStage::Renamed, CommitStage::DirSynced));

TEST_F(SpoolTest, ReaderModeCreatesNothing) {
    auto r = Spool::open(dir_ + "/nowhere", Spool::Mode::Reader);
    EXPECT_FALSE(r.ok());
    EXPECT_FALSE(fs::exists(dir_ + "/nowhere"));
}

}  // namespace
