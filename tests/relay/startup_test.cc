// The checks a start makes before it touches anything (relay/startup.h),
// on real sockets on loopback and real directories under /tmp.
#include "relay/runtime/startup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

using namespace danerelay;
using namespace danerelay::relay;

namespace {

// A TCP socket listening on 127.0.0.1 on a port the kernel chose.
UniqueFd listenAnywhere(uint16_t* port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), len), 0);
    EXPECT_EQ(::listen(fd.get(), 4), 0);
    EXPECT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

uint16_t freePort() {
    uint16_t port = 0;
    listenAnywhere(&port);  // closed again at once
    return port;
}

bool connects(uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
}

class StartupTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-startup-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        cfg_.file = dir_ + "/danerelay.json";
        cfg_.spoolDir = dir_ + "/spool";
        cfg_.controlSocket = cfg_.spoolDir + "/control.sock";
        cfg_.logFile = dir_ + "/danerelayd.log";
        cfg_.listeners.push_back(listener("127.0.0.1", freePort()));
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    static ListenerConfig listener(const std::string& host, uint16_t port) {
        ListenerConfig l;
        l.host = host;
        l.port = port;
        l.text = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                 std::to_string(port);
        return l;
    }
    // The one problem checkStart() found (fails the test unless exactly one).
    std::string problem() {
        auto c = checkStart(cfg_);
        EXPECT_EQ(c.problems.size(), 1u);
        std::string all;
        for (const auto& p : c.problems) all += p + "\n";
        return c.problems.size() == 1 ? c.problems[0] : all;
    }

    std::string dir_;
    Config cfg_;
};

TEST_F(StartupTest, AGoodConfigBindsEveryListenerAndCreatesNothing) {
    cfg_.listeners.push_back(listener("127.0.0.2", cfg_.listeners[0].port));
    auto c = checkStart(cfg_);
    EXPECT_TRUE(c.problems.empty()) << c.problems.front();
    ASSERT_EQ(c.listeners.size(), 2u);
    EXPECT_TRUE(c.listeners[0].valid());
    EXPECT_TRUE(connects(cfg_.listeners[0].port));  // listening, held for the start
    // The spool, its socket and the log are a start's to create, not a check's.
    EXPECT_FALSE(std::filesystem::exists(cfg_.spoolDir));
    EXPECT_FALSE(std::filesystem::exists(cfg_.logFile));
    c.listeners.clear();
    EXPECT_FALSE(connects(cfg_.listeners[0].port));
}

TEST_F(StartupTest, APortInUseNamesTheKeyAndTheFile) {
    uint16_t port = 0;
    UniqueFd other = listenAnywhere(&port);
    cfg_.listeners.push_back(listener("127.0.0.1", port));
    EXPECT_EQ(problem(), cfg_.file + ": listeners[1].address: 127.0.0.1:" + std::to_string(port) +
                             ": address in use (another process or another listener of this "
                             "configuration listens there)");
}

TEST_F(StartupTest, OverlappingListenersCannotBothBind) {
    // The wildcard address covers 127.0.0.1 on the same port.
    uint16_t port = cfg_.listeners[0].port;
    cfg_.listeners.insert(cfg_.listeners.begin(), listener("0.0.0.0", port));
    EXPECT_NE(problem().find("danerelay.json: listeners[1].address: 127.0.0.1:" +
                             std::to_string(port) + ": address in use"),
              std::string::npos);
}

TEST_F(StartupTest, AnAddressThatIsNotLocalSaysSo) {
    // TEST-NET-2: not configured on any test machine's interface.
    cfg_.listeners.push_back(listener("198.51.100.7", 2525));
    EXPECT_EQ(problem(), cfg_.file +
                             ": listeners[1].address: 198.51.100.7:2525: not an address of this "
                             "host (Cannot assign requested address)");
}

TEST_F(StartupTest, APortInUseByTheRunningDaemonSaysTheSpoolIsLocked) {
    uint16_t port = 0;
    UniqueFd other = listenAnywhere(&port);
    cfg_.listeners[0] = listener("127.0.0.1", port);
    std::filesystem::create_directories(cfg_.spoolDir);
    UniqueFd lock(::open((cfg_.spoolDir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_EQ(::flock(lock.get(), LOCK_EX | LOCK_NB), 0);
    // flock() locks belong to the open file: a second open in this process
    // meets the lock as another process would.
    auto c = checkStart(cfg_);
    ASSERT_EQ(c.problems.size(), 2u);
    EXPECT_NE(c.problems[0].find("listeners[0].address"), std::string::npos);
    EXPECT_EQ(c.problems[1],
              cfg_.file + ": spool_dir: " + cfg_.spoolDir +
                  ": locked by a running danerelayd, which may be the one listening");
}

TEST_F(StartupTest, ACheckWhileTheDaemonRunsNotesItsPortsInsteadOfFailing) {
    // `--check-config` before a restart, with the daemon up: its ports are
    // in use and its spool is locked. Not a problem for the check (as
    // `postfix check`), still one for a start.
    uint16_t port = 0;
    UniqueFd other = listenAnywhere(&port);
    cfg_.listeners[0] = listener("127.0.0.1", port);
    std::filesystem::create_directories(cfg_.spoolDir);
    UniqueFd lock(::open((cfg_.spoolDir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_EQ(::flock(lock.get(), LOCK_EX | LOCK_NB), 0);
    auto c = checkStart(cfg_, false);
    EXPECT_TRUE(c.problems.empty()) << c.problems[0];
    ASSERT_EQ(c.notes.size(), 1u);
    EXPECT_NE(c.notes[0].find("listeners[0].address"), std::string::npos) << c.notes[0];
    EXPECT_NE(c.notes[0].find("not checked: a danerelayd runs on this spool"), std::string::npos)
        << c.notes[0];
    // Without a daemon on the spool, the same port in use is a problem.
    lock.reset();
    c = checkStart(cfg_, false);
    ASSERT_EQ(c.problems.size(), 1u);
    EXPECT_TRUE(c.notes.empty());
}

TEST_F(StartupTest, AFifoAsTheSpoolLockCannotHangTheCheck) {
    // A port in use makes the check look at the spool's lock; a FIFO there
    // must be reported, not opened and waited on for ever.
    uint16_t port = 0;
    UniqueFd other = listenAnywhere(&port);
    cfg_.listeners[0] = listener("127.0.0.1", port);
    std::filesystem::create_directories(cfg_.spoolDir);
    ASSERT_EQ(::mkfifo((cfg_.spoolDir + "/lock").c_str(), 0600), 0);
    auto done = std::make_shared<std::promise<std::vector<std::string>>>();
    auto result = done->get_future();
    std::thread([cfg = cfg_, done] { done->set_value(checkStart(cfg).problems); }).detach();
    ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready)
        << "checkStart() hung on a FIFO at spool/lock";
    auto problems = result.get();
    ASSERT_EQ(problems.size(), 2u);
    EXPECT_NE(problems[0].find("listeners[0].address"), std::string::npos);
    EXPECT_EQ(problems[1], cfg_.file + ": spool_dir: " + cfg_.spoolDir +
                               "/lock: is not a regular file (a damaged spool?)");
}

TEST_F(StartupTest, LogFileDirectoryMustExist) {
    cfg_.logFile = dir_ + "/no-such-dir/danerelayd.log";
    EXPECT_EQ(problem(),
              cfg_.file + ": log_file: directory " + dir_ + "/no-such-dir does not exist");
    cfg_.logFile = dir_;
    EXPECT_EQ(problem(), cfg_.file + ": log_file: " + dir_ + ": is a directory, not a file");
    std::ofstream(dir_ + "/file") << "x";
    cfg_.logFile = dir_ + "/file/danerelayd.log";
    EXPECT_EQ(problem(), cfg_.file + ": log_file: " + dir_ +
                             "/file is a file, not a directory (in " + cfg_.logFile + ")");
}

// The attack on the log (a symlink or hard link to a root file planted by
// the run user, who owns /var/log/danerelay) is refused at the open; the
// check says why beforehand.
TEST_F(StartupTest, LogFileThatIsALinkOrNotAFileIsNamed) {
    std::ofstream(dir_ + "/target") << "x";
    cfg_.logFile = dir_ + "/symlinked.log";
    ASSERT_EQ(::symlink((dir_ + "/target").c_str(), cfg_.logFile.c_str()), 0);
    EXPECT_EQ(problem(), cfg_.file + ": log_file: " + cfg_.logFile +
                             ": is a symbolic link, which the daemon does not follow (it opens "
                             "the log as root, where its user may own the directory); name the "
                             "file itself");
    cfg_.logFile = dir_ + "/hardlinked.log";
    ASSERT_EQ(::link((dir_ + "/target").c_str(), cfg_.logFile.c_str()), 0);
    EXPECT_EQ(problem(), cfg_.file + ": log_file: " + cfg_.logFile +
                             ": has 2 hard links; the daemon takes only a file with one");
    cfg_.logFile = dir_ + "/fifo.log";
    ASSERT_EQ(::mkfifo(cfg_.logFile.c_str(), 0600), 0);
    EXPECT_EQ(problem(), cfg_.file + ": log_file: " + cfg_.logFile + ": is not a regular file");
}

TEST_F(StartupTest, ControlSocketDirectoryMustExistAndThePathBeASocket) {
    cfg_.controlSocket = dir_ + "/run/danerelay.sock";
    EXPECT_EQ(problem(), cfg_.file + ": control_socket: directory " + dir_ + "/run does not exist");
    cfg_.controlSocket = dir_ + "/control.sock";
    std::ofstream(cfg_.controlSocket) << "not a socket";
    EXPECT_EQ(problem(), cfg_.file + ": control_socket: " + cfg_.controlSocket +
                             ": exists and is not a socket (a start would not replace it)");
    // The default, inside a spool that the start will create, is fine.
    cfg_.controlSocket = cfg_.spoolDir + "/control.sock";
    EXPECT_TRUE(checkStart(cfg_).problems.empty());
}

TEST_F(StartupTest, SpoolUnderAFileOrAFileAsSpoolIsRefused) {
    std::ofstream(dir_ + "/file") << "x";
    cfg_.spoolDir = dir_ + "/file/spool";
    cfg_.controlSocket = dir_ + "/control.sock";
    EXPECT_EQ(problem(), cfg_.file + ": spool_dir: " + cfg_.spoolDir +
                             ": cannot be created: " + dir_ + "/file is a file, not a directory");
    cfg_.spoolDir = dir_ + "/file";
    EXPECT_EQ(problem(), cfg_.file + ": spool_dir: " + dir_ + "/file: is a file, not a directory");
    // A spool whose msg/ is a file is damaged: say so before taking it.
    cfg_.spoolDir = dir_ + "/spool";
    std::filesystem::create_directories(cfg_.spoolDir);
    std::ofstream(cfg_.spoolDir + "/msg") << "x";
    EXPECT_EQ(problem(), cfg_.file + ": spool_dir: " + cfg_.spoolDir +
                             "/msg: is not a directory (a damaged spool?)");
}

TEST_F(StartupTest, EveryProblemIsReportedNotOnlyTheFirst) {
    uint16_t port = 0;
    UniqueFd other = listenAnywhere(&port);
    cfg_.listeners[0] = listener("127.0.0.1", port);
    cfg_.logFile = dir_ + "/no-log-dir/x.log";
    cfg_.controlSocket = dir_ + "/no-run-dir/x.sock";
    std::ofstream(dir_ + "/file") << "x";
    cfg_.spoolDir = dir_ + "/file/spool";
    auto c = checkStart(cfg_);
    ASSERT_EQ(c.problems.size(), 4u);
    EXPECT_NE(c.problems[0].find(": listeners[0].address: "), std::string::npos);
    EXPECT_NE(c.problems[1].find(": log_file: "), std::string::npos);
    EXPECT_NE(c.problems[2].find(": control_socket: "), std::string::npos);
    EXPECT_NE(c.problems[3].find(": spool_dir: "), std::string::npos);
}

TEST(FileLimit, RaisedToTheHardLimit) {
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_max == RLIM_INFINITY || saved.rlim_max <= 256) {
        GTEST_SKIP() << "hard limit unlimited or too low to test";
    }
    rlimit low = saved;
    low.rlim_cur = 256;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    uint64_t got = raiseFileLimit();
    rlimit now{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
    ::setrlimit(RLIMIT_NOFILE, &saved);
    EXPECT_EQ(got, static_cast<uint64_t>(saved.rlim_max));
    EXPECT_EQ(now.rlim_cur, saved.rlim_max);
}

}  // namespace
