// Who the daemon becomes: resolveRunAs() decides, dropPrivileges() does it
// for good (checked in a child process, since it cannot be undone).
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "relay/runtime/config.h"
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

}  // namespace
}  // namespace danerelay::relay
