// Who the daemon becomes: resolveRunAs() decides, dropPrivileges() does it
// for good (checked in a child process, since it cannot be undone).
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "relay/runtime/config.h"
#include "relay/runtime/log.h"
#include "relay/runtime/privileges.h"

namespace danerelay::relay {
namespace {

Config withUser(const std::string& user) {
    Config c;
    c.file = "test.json";
    c.user = user;
    return c;
}

TEST(RunAs, RootNeedsAUserAndTheUserMustNotBeRoot) {
    auto none = resolveRunAs(withUser(""), 0);
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.error().message.find("test.json: user: not set, and danerelayd was started as "
                                        "root; set \"user\""),
              std::string::npos)
        << none.error().message;
    auto root = resolveRunAs(withUser("root"), 0);
    ASSERT_FALSE(root.ok());
    EXPECT_NE(root.error().message.find("is root (uid 0)"), std::string::npos);
    auto missing = resolveRunAs(withUser("no-such-user-here"), 0);
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find("no such user"), std::string::npos);
    auto nobody = resolveRunAs(withUser("nobody"), 0);
    ASSERT_TRUE(nobody.ok()) << nobody.error().message;
    ASSERT_TRUE(nobody->has_value());
    EXPECT_EQ((*nobody)->uid, ::getpwnam("nobody")->pw_uid);
}

TEST(RunAs, AnOrdinaryUserRunsAsItselfAndCannotSwitch) {
    uid_t nobody = ::getpwnam("nobody")->pw_uid;
    auto self = resolveRunAs(withUser(""), 1234);
    ASSERT_TRUE(self.ok());
    EXPECT_FALSE(self->has_value());
    auto same = resolveRunAs(withUser("nobody"), nobody);
    ASSERT_TRUE(same.ok());
    EXPECT_FALSE(same->has_value());
    auto other = resolveRunAs(withUser("nobody"), 1234);
    ASSERT_FALSE(other.ok());
    EXPECT_NE(other.error().message.find("runs as uid 1234 and cannot switch"), std::string::npos)
        << other.error().message;
}

TEST(RunAs, ControlGroupMustExist) {
    Config c = withUser("");
    EXPECT_FALSE(resolveControlGroup(c)->has_value());
    c.controlGroup = "no-such-group-here";
    ASSERT_FALSE(resolveControlGroup(c).ok());
    c.controlGroup = "root";
    ASSERT_TRUE(resolveControlGroup(c).ok());
    EXPECT_EQ(**resolveControlGroup(c), 0u);
}

// In a child: after the drop every ID is nobody's, no group is left, and
// root cannot be had back.
TEST(DropPrivileges, IsCompleteAndForGood) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    passwd* pw = ::getpwnam("nobody");
    ASSERT_NE(pw, nullptr);
    RunAs r{"nobody", pw->pw_uid, pw->pw_gid};
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (!dropPrivileges(r).ok()) ::_exit(2);
        uid_t ru, eu, su;
        gid_t rg, eg, sg;
        ::getresuid(&ru, &eu, &su);
        ::getresgid(&rg, &eg, &sg);
        bool ok = ru == r.uid && eu == r.uid && su == r.uid && rg == r.gid && eg == r.gid &&
                  sg == r.gid && ::getgroups(0, nullptr) == 0 && ::setuid(0) != 0 &&
                  ::setgid(0) != 0;
        ::_exit(ok ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(PrepareSpoolDir, MakesAMissingSpoolForTheUserAndLeavesAnExistingOne) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    passwd* pw = ::getpwnam("nobody");
    RunAs r{"nobody", pw->pw_uid, pw->pw_gid};
    char tmpl[] = "/tmp/danerelay-priv-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string spool = dir + "/a/b/spool";
    ASSERT_TRUE(prepareSpoolDir(spool, r).ok());
    struct stat st {};
    ASSERT_EQ(::stat(spool.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, r.uid);
    EXPECT_EQ(st.st_mode & 0777, 0750u);
    ASSERT_EQ(::stat((dir + "/a").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u);  // parents stay root's
    std::string existing = dir + "/existing";
    ASSERT_EQ(::mkdir(existing.c_str(), 0700), 0);
    ASSERT_TRUE(prepareSpoolDir(existing, r).ok());
    ASSERT_EQ(::stat(existing.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u);  // not taken over: the check after the drop reports it
    std::filesystem::remove_all(dir);
}

// The attack on a root start by the run user (a compromised daemon): it owns
// the log directory (the package's /var/log/danerelay, danerelay:adm 2750)
// and puts at log_file a symlink, or a hard link, to a file of root's. The
// next start as root must neither append its log to that file nor give it
// to the run user (chown /etc/passwd to danerelay is root for danerelay).
class LogFileAttack : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root";
        passwd* pw = ::getpwnam("nobody");
        ASSERT_NE(pw, nullptr);
        runAs_ = RunAs{"nobody", pw->pw_uid, pw->pw_gid};
        char tmpl[] = "/tmp/danerelay-logattack-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        // root's file outside the log directory: stands for /etc/passwd
        ASSERT_EQ(::mkdir((dir_ + "/etc").c_str(), 0755), 0);
        secret_ = dir_ + "/etc/passwd";
        std::ofstream(secret_) << "root:x:0:0:root:/root:/bin/sh\n";
        ASSERT_EQ(::chmod(secret_.c_str(), 0644), 0);
        // the log directory, the run user's
        logDir_ = dir_ + "/log";
        ASSERT_EQ(::mkdir(logDir_.c_str(), 0750), 0);
        ASSERT_EQ(::chown(logDir_.c_str(), runAs_.uid, runAs_.gid), 0);
        logPath_ = logDir_ + "/danerelay.log";
    }
    void TearDown() override {
        logOpen("");  // standard error again for the other tests
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }
    // What a root start does with the log (danerelayd.cc openLog).
    bool rootStartOpensAndGivesTheLog() {
        if (!logOpen(logPath_, LogStyle::Kv)) return false;
        logEvent("start", {{"user", "nobody (dropped from root)"}});
        return giveLogFile(logFileDescriptor(), logPath_, runAs_).ok();
    }
    void expectSecretUntouched() {
        struct stat st {};
        ASSERT_EQ(::stat(secret_.c_str(), &st), 0);
        EXPECT_EQ(st.st_uid, 0u) << "the root file was handed to the run user";
        EXPECT_EQ(st.st_gid, 0u);
        std::ifstream in(secret_);
        std::stringstream ss;
        ss << in.rdbuf();
        EXPECT_EQ(ss.str(), "root:x:0:0:root:/root:/bin/sh\n") << "root appended its log to it";
    }
    RunAs runAs_;
    std::string dir_, secret_, logDir_, logPath_;
};

TEST_F(LogFileAttack, SymlinkPlantedByTheRunUserIsNotFollowed) {
    ASSERT_EQ(::symlink(secret_.c_str(), logPath_.c_str()), 0);
    ASSERT_EQ(::lchown(logPath_.c_str(), runAs_.uid, runAs_.gid), 0);
    errno = 0;
    EXPECT_FALSE(rootStartOpensAndGivesTheLog());
    EXPECT_EQ(errno, ELOOP);
    EXPECT_EQ(logFileDescriptor(), -1);  // standard error kept
    expectSecretUntouched();
}

TEST_F(LogFileAttack, HardLinkToARootFileIsRefused) {
    // (fs.protected_hardlinks stops an unprivileged link(2) to a file it
    // does not own; the daemon must not depend on that sysctl.)
    ASSERT_EQ(::link(secret_.c_str(), logPath_.c_str()), 0);
    errno = 0;
    EXPECT_FALSE(rootStartOpensAndGivesTheLog());
    EXPECT_EQ(errno, EMLINK);
    expectSecretUntouched();
}

TEST_F(LogFileAttack, NameSwappedAfterTheOpenIsNotChowned) {
    // Between the open and the hand-over the run user renames the real log
    // and puts a symlink in its place: only the descriptor opened is given.
    ASSERT_TRUE(logOpen(logPath_, LogStyle::Kv));
    ASSERT_EQ(::rename(logPath_.c_str(), (logPath_ + ".moved").c_str()), 0);
    ASSERT_EQ(::symlink(secret_.c_str(), logPath_.c_str()), 0);
    ASSERT_TRUE(giveLogFile(logFileDescriptor(), logPath_, runAs_).ok());
    expectSecretUntouched();
    struct stat st {};
    ASSERT_EQ(::stat((logPath_ + ".moved").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, runAs_.uid);  // the file actually opened was handed over
}

TEST_F(LogFileAttack, FifoDoesNotHangTheStart) {
    ASSERT_EQ(::mkfifo(logPath_.c_str(), 0600), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ::_exit(logOpen(logPath_, LogStyle::Kv) ? 1 : 0);
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < 100 && got == 0; ++i) {
        got = ::waitpid(pid, &status, WNOHANG);
        if (got == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (got == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        FAIL() << "logOpen blocked on a FIFO at log_file";
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a FIFO was taken as the log";
}

TEST_F(LogFileAttack, AnOrdinaryLogIsStillOpenedAndHandedOver) {
    ASSERT_TRUE(rootStartOpensAndGivesTheLog());
    struct stat st {};
    ASSERT_EQ(::stat(logPath_.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, runAs_.uid);
    EXPECT_EQ(st.st_gid, runAs_.gid);
    EXPECT_GT(st.st_size, 0);
}

}  // namespace
}  // namespace danerelay::relay
