// The control socket's server and client on a real event loop: one request,
// one reply, then the close (the connection destroyed after its callback);
// the protocol version, malformed and oversized requests refused without
// reaching the handler; a peer that is neither root nor the daemon's user
// refused; controlRequest's answers when the daemon is not there.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "relay/control/control.h"
#include "relay/control/control_client.h"

namespace danerelay::relay {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class ControlServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-control-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        makeServer(ControlRule{::geteuid(), ::getegid(), std::nullopt});
    }
    void makeServer(ControlRule rule) {
        server_.reset();
        server_ = std::make_unique<ControlServer>(
            base_.get(), dir_ + "/control.sock",
            [this](const json& request, ControlAccess access, auto reply) {
                ++handled_;
                reply({{"version", kControlProtocolVersion},
                       {"ok", true},
                       {"echo", request.value("verb", "")},
                       {"access", access == ControlAccess::Full ? "full" : "read-only"}});
            },
            rule);
    }
    // A status request from a child process running as uid/gid with these
    // supplementary groups; its reply.
    json requestAs(uid_t uid, gid_t gid, std::vector<gid_t> groups) {
        // Let the other user reach it (the daemon's socket is 0660 in a private directory).
        EXPECT_EQ(::chmod(dir_.c_str(), 0711), 0);
        EXPECT_EQ(::chmod(server_->path().c_str(), 0666), 0);
        int out[2];
        EXPECT_EQ(::pipe(out), 0);
        pid_t pid = ::fork();
        if (pid == 0) {
            ::close(out[0]);
            if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 ||
                ::setuid(uid) != 0)
                ::_exit(3);
            auto r = controlRequest(server_->path(), {{"version", 1}, {"verb", "status"}}, 10);
            std::string text = r ? r->dump() : "ERROR " + r.error().message;
            ssize_t w = ::write(out[1], text.data(), text.size());
            ::_exit(w == static_cast<ssize_t>(text.size()) ? 0 : 4);
        }
        ::close(out[1]);
        UniqueFd reader(out[0]);
        int status = 0;
        EXPECT_TRUE(pumpUntil([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }));
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
        std::string got(4096, '\0');
        got.resize(
            static_cast<size_t>(std::max<ssize_t>(0, ::read(reader.get(), got.data(), 4096))));
        return json::parse(got, nullptr, false);
    }
    void TearDown() override {
        server_.reset();
        fs::remove_all(dir_);
    }
    // Run the loop until done() or 10 s.
    bool pumpUntil(const std::function<bool()>& done) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return true;
    }
    // A connection handed to the server as if accepted; our end.
    UniqueFd connectPair() {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        server_->serve(UniqueFd(sv[0]));
        return UniqueFd(sv[1]);
    }
    // Everything the server sends until it closes (or 10 s pass).
    std::string exchange(int fd, const std::string& request) {
        EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(request.size()));
        std::string got;
        bool closed = false;
        pumpUntil([&] {
            char buf[4096];
            ssize_t n;
            while ((n = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
            closed = n == 0;
            return closed;
        });
        EXPECT_TRUE(closed) << "the server did not close after its reply";
        return got;
    }

    // A peer of gid `gid` (uid nobody, the daemon being root with group
    // 4242) holds 40 idle connections; then root asks, and must be served.
    void holdConnectionsThenAskAsRoot(gid_t gid) {
        makeServer(ControlRule{0, 4242, std::nullopt});
        ASSERT_TRUE(server_->listen().ok());
        ASSERT_EQ(::chmod(dir_.c_str(), 0711), 0);
        ASSERT_EQ(::chmod(server_->path().c_str(), 0666), 0);
        int ready[2], release[2];
        ASSERT_EQ(::pipe(ready), 0);
        ASSERT_EQ(::pipe(release), 0);
        constexpr int kHeld = 40;
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::alarm(60);
            ::close(ready[0]);
            ::close(release[1]);
            if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(65534) != 0)
                ::_exit(3);
            sockaddr_un sa;
            controlSocketAddress(server_->path(), &sa);
            std::vector<int> held;
            for (int i = 0; i < kHeld; ++i) {
                int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
                if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) ::_exit(4);
                held.push_back(fd);  // and never a byte of a request
            }
            char c = 'r';
            if (::write(ready[1], &c, 1) != 1) ::_exit(5);
            [[maybe_unused]] auto n = ::read(release[0], &c, 1);  // until the parent is done
            ::_exit(0);
        }
        ::close(ready[1]);
        ::close(release[0]);
        UniqueFd readyR(ready[0]), releaseW(release[1]);
        ASSERT_EQ(::fcntl(readyR.get(), F_SETFL, O_NONBLOCK), 0);
        char c;
        ASSERT_TRUE(pumpUntil([&] { return ::read(readyR.get(), &c, 1) == 1; }));
        // Let the server take all it will from the backlog.
        auto settle = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
        pumpUntil([&] { return std::chrono::steady_clock::now() > settle; });
        EXPECT_LE(server_->connections(), 8u) << "read-only peers hold more than their share";
        auto reply = std::async(std::launch::async, [&] {
            return controlRequest(server_->path(), {{"version", 1}, {"verb", "drain"}}, 10);
        });
        ASSERT_TRUE(pumpUntil(
            [&] { return reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
        auto r = reply.get();
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ((*r)["ok"], true) << *r;  // not "busy: too many control connections"
        EXPECT_EQ((*r)["access"], "full") << *r;
        releaseW.reset();
        int status = 0;
        EXPECT_TRUE(pumpUntil([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }));
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }

    EventBasePtr base_{event_base_new()};
    std::string dir_;
    std::unique_ptr<ControlServer> server_;
    int handled_ = 0;
};

TEST_F(ControlServerTest, AnswersOneRequestOnOneLineThenClosesAndForgetsTheConnection) {
    auto fd = connectPair();
    EXPECT_EQ(server_->connections(), 1u);
    std::string got = exchange(fd.get(), R"({"version":1,"verb":"status"})"
                                         "\n");
    EXPECT_EQ(got, R"({"access":"full","echo":"status","ok":true,"version":1})"
                   "\n");
    EXPECT_EQ(handled_, 1);
    EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(ControlServerTest, AnotherProtocolVersionIsRefusedBeforeTheHandler) {
    // 4294967297 would be 1 if it were truncated to an int.
    for (const char* version : {"2", "0", "4294967297", "\"1\"", "1.0"}) {
        auto fd = connectPair();
        std::string got =
            exchange(fd.get(), std::string(R"({"verb":"status","version":)") + version + "}\n");
        auto reply = json::parse(got);
        EXPECT_EQ(reply["ok"], false) << version;
        EXPECT_EQ(reply["version"], kControlProtocolVersion);
        EXPECT_EQ(reply["error"], "unsupported protocol version (this daemon speaks 1)") << version;
    }
    auto fd = connectPair();
    auto reply = json::parse(exchange(fd.get(), "{\"verb\":\"status\"}\n"));
    EXPECT_EQ(reply["ok"], false);
    EXPECT_EQ(handled_, 0);
}

TEST_F(ControlServerTest, WhatIsNotAJsonObjectOnOneLineIsRefused) {
    for (const char* line : {"status\n", "[1]\n", "{\"version\":1\n"}) {
        auto fd = connectPair();
        auto reply = json::parse(exchange(fd.get(), line));
        EXPECT_EQ(reply["error"], "request is not a JSON object on one line") << line;
    }
    EXPECT_EQ(handled_, 0);
}

TEST_F(ControlServerTest, ARequestLongerThan64KiBIsRefusedWithoutWaitingForItsEnd) {
    auto fd = connectPair();
    std::string got = exchange(fd.get(), std::string(64 * 1024 + 1, ' '));  // no newline yet
    EXPECT_EQ(json::parse(got)["error"], "request longer than 64 KiB");
    EXPECT_EQ(handled_, 0);
}

// A frame built to crash a recursive parser or destructor: 32,000 nested
// arrays inside the 64 KiB request. Parsed, answered, and gone.
TEST_F(ControlServerTest, DeeplyNestedRequestIsAnsweredNotACrash) {
    std::string deep = R"({"version":1,"verb":"status","x":)" + std::string(32000, '[') +
                       std::string(32000, ']') + "}\n";
    ASSERT_LT(deep.size(), 64u * 1024);
    auto fd = connectPair();
    auto reply = json::parse(exchange(fd.get(), deep), nullptr, false);
    EXPECT_EQ(reply["ok"], true) << reply;
    EXPECT_EQ(handled_, 1);
}

// The client leaves while its request is in hand: the late answer finds the
// connection gone, and the connection is closed and destroyed, not kept.
TEST_F(ControlServerTest, AnAnswerForAClientThatLeftClosesTheConnection) {
    ControlServer::Reply later;
    ControlServer server(
        base_.get(), dir_ + "/other.sock",
        [&](const json&, ControlAccess, ControlServer::Reply r) { later = std::move(r); },
        ControlRule{});
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    server.serve(UniqueFd(sv[0]));
    {
        UniqueFd client(sv[1]);
        std::string req = "{\"version\":1}\n";
        ASSERT_EQ(::send(client.get(), req.data(), req.size(), 0),
                  static_cast<ssize_t>(req.size()));
        ASSERT_TRUE(pumpUntil([&] { return static_cast<bool>(later); }));
    }  // the client goes before the answer
    EXPECT_EQ(server.connections(), 1u);
    later({{"version", 1}, {"ok", true}});
    EXPECT_TRUE(pumpUntil([&] { return server.connections() == 0; }));
}

TEST(ControlPeer, RootTheUserAndControlGroupMayDoAllTheDaemonsGroupMayRead) {
    ControlRule rule{1000, 1000, std::nullopt};
    EXPECT_EQ(rule.accessOf(0, 0, {}), ControlAccess::Full);
    EXPECT_EQ(rule.accessOf(1000, 5, {}), ControlAccess::Full);
    EXPECT_EQ(rule.accessOf(1001, 1000, {}), ControlAccess::ReadOnly);      // primary group
    EXPECT_EQ(rule.accessOf(1001, 5, {7, 1000}), ControlAccess::ReadOnly);  // supplementary
    EXPECT_EQ(rule.accessOf(1001, 5, {7}), ControlAccess::None);
    EXPECT_EQ(rule.accessOf(65534, 65534, {}), ControlAccess::None);
    rule.adminGid = 2000;
    EXPECT_EQ(rule.accessOf(1001, 2000, {}), ControlAccess::Full);
    EXPECT_EQ(rule.accessOf(1001, 5, {2000}), ControlAccess::Full);
    EXPECT_EQ(rule.accessOf(1001, 5, {1000}), ControlAccess::ReadOnly);
    EXPECT_EQ(rule.accessOf(1001, 5, {}), ControlAccess::None);
}

// Through listen() and a real connect from another user: the refusal comes
// as the answer to its request, and the handler never runs.
TEST_F(ControlServerTest, AnotherUserIsRefusedWithAnAnswerNotAReset) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
    makeServer(ControlRule{0, 4242, std::nullopt});
    ASSERT_TRUE(server_->listen().ok());
    auto reply = requestAs(65534, 65534, {});
    ASSERT_TRUE(reply.is_object()) << reply;
    EXPECT_EQ(reply["ok"], false);
    EXPECT_EQ(reply["error"],
              "permission denied: uid 65534 is neither root, the daemon's user, in its group, "
              "nor in control_group");
    EXPECT_EQ(handled_, 0);
}

// The kernel's word on the peer's groups decides: a member of the daemon's
// group (primary or supplementary) may read; one in control_group may do all.
TEST_F(ControlServerTest, GroupsComeFromThePeersCredentials) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
    makeServer(ControlRule{0, 4242, gid_t{5151}});
    ASSERT_TRUE(server_->listen().ok());
    auto primary = requestAs(65534, 4242, {});
    EXPECT_EQ(primary["access"], "read-only") << primary;
    auto supplementary = requestAs(65534, 65534, {4242});
    EXPECT_EQ(supplementary["access"], "read-only") << supplementary;
    auto admin = requestAs(65534, 65534, {4242, 5151});
    EXPECT_EQ(admin["access"], "full") << admin;
    auto none = requestAs(65534, 65534, {6161});
    EXPECT_EQ(none["ok"], false) << none;
    EXPECT_EQ(handled_, 3);
}

// The attack: a member of the daemon's group (read-only: status) opens
// every connection the server takes and sends nothing, again every 10 s;
// root's danectl (drain, flush, hold during an incident) is then told
// "busy". Those who may only read share a few slots of their own.
TEST_F(ControlServerTest, ReadOnlyPeersHoldingConnectionsCannotLockOutTheAdmin) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
    holdConnectionsThenAskAsRoot(4242);  // the daemon's group: read-only
}

// Refused peers (reaching the socket through a setgid directory or an ACL)
// are capped the same way, not held without limit for 10 s each.
TEST_F(ControlServerTest, RefusedPeersHoldingConnectionsAreCappedToo) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
    holdConnectionsThenAskAsRoot(6161);  // no access at all
}

// controlRequest in a thread against the listening server on this loop.
TEST_F(ControlServerTest, ClientAndServerAgreeOverTheListeningSocket) {
    ASSERT_TRUE(server_->listen().ok());
    struct stat st;
    ASSERT_EQ(::stat(server_->path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    auto reply = std::async(std::launch::async, [&] {
        return controlRequest(server_->path(), {{"version", 1}, {"verb", "hello"}}, 10);
    });
    ASSERT_TRUE(pumpUntil(
        [&] { return reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
    auto r = reply.get();
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)["echo"], "hello");
}

TEST(ControlClient, SaysWhenNoDaemonListens) {
    auto r = controlRequest("/nonexistent-dir/control.sock", {{"version", 1}}, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, ErrorKind::Temporary);
    EXPECT_NE(r.error().message.find("(is danerelayd running?)"), std::string::npos)
        << r.error().message;
    auto bad = controlRequest(std::string(200, 'x'), {{"version", 1}}, 1);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().kind, ErrorKind::Permanent);
}

TEST(ControlClient, GivesUpWhenTheDaemonDoesNotAnswerInTime) {
    char tmpl[] = "/tmp/danerelay-control-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string path = dir + "/control.sock";
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un sa;
    ASSERT_TRUE(controlSocketAddress(path, &sa));
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);  // accepted by the kernel, never answered
    auto r = controlRequest(path, {{"version", 1}}, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "no reply from the daemon within 1 seconds");
    fs::remove_all(dir);
}

}  // namespace
}  // namespace danerelay::relay
