#include "relay/runtime/service_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/unique_fd.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {

// A service manager's end: a datagram socket the test binds and names in
// $NOTIFY_SOCKET, as systemd does for a Type=notify unit.
class NotifySocket {
  public:
    NotifySocket() {
        path_ = "/tmp/danerelay-notify-" + std::to_string(::getpid());
        ::unlink(path_.c_str());
        fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        path_.copy(a.sun_path, sizeof a.sun_path - 1);
        EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    }
    ~NotifySocket() {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
        ::unlink(path_.c_str());
    }
    std::vector<std::string> received() {
        std::vector<std::string> out;
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
            if (n <= 0) return out;
            out.emplace_back(buf, static_cast<size_t>(n));
        }
    }

  private:
    std::string path_;
    UniqueFd fd_;
};

struct ServiceNotifyTest : ::testing::Test {
    EventBasePtr base{event_base_new()};
    void runFor(std::chrono::milliseconds ms) {
        timeval tv{0, static_cast<suseconds_t>(ms.count() * 1000)};
        event_base_loopexit(base.get(), &tv);
        event_base_dispatch(base.get());
    }
};

TEST_F(ServiceNotifyTest, SaysNothingWithoutANotifySocket) {
    ::unsetenv("NOTIFY_SOCKET");
    ServiceNotifier n(base.get());
    EXPECT_FALSE(n.enabled());
    n.ready("queue 0");  // no socket: nothing happens, nothing fails
}

TEST_F(ServiceNotifyTest, ReadyReloadingStoppingAndStatusReachTheManager) {
    NotifySocket sock;
    ServiceNotifier n(base.get());
    ASSERT_TRUE(n.enabled());
    n.ready("queue 3 messages, DNSSEC validating");
    n.reloading();
    n.reloaded();
    n.status("queue 4\nREADY=1");  // a newline cannot smuggle a second variable
    n.stopping();
    auto got = sock.received();
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(got[0], "READY=1\nSTATUS=queue 3 messages, DNSSEC validating");
    EXPECT_EQ(got[1].rfind("RELOADING=1\n", 0), 0u) << got[1];
    EXPECT_EQ(got[2], "READY=1");
    EXPECT_EQ(got[3], "STATUS=queue 4 READY=1");
    EXPECT_EQ(got[4].rfind("STOPPING=1", 0), 0u) << got[4];
}

TEST_F(ServiceNotifyTest, WatchdogPingsKeepComingFromTheLoop) {
    NotifySocket sock;
    ::setenv("WATCHDOG_USEC", "100000", 1);  // 100 ms: a ping every 50 ms
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    ServiceNotifier n(base.get());
    EXPECT_EQ(n.watchdogInterval(), std::chrono::microseconds(100000));
    runFor(std::chrono::milliseconds(400));
    auto got = sock.received();
    size_t pings = 0;
    for (const auto& m : got) pings += m == "WATCHDOG=1";
    // One at start, then one per 50 ms of loop time: well over three in 400 ms.
    EXPECT_GE(pings, 4u) << got.size();
}

TEST_F(ServiceNotifyTest, NoWatchdogForAnotherProcess) {
    NotifySocket sock;
    ::setenv("WATCHDOG_USEC", "100000", 1);
    ::setenv("WATCHDOG_PID", "1", 1);  // meant for someone else
    ServiceNotifier n(base.get());
    EXPECT_EQ(n.watchdogInterval().count(), 0);
    runFor(std::chrono::milliseconds(150));
    EXPECT_TRUE(sock.received().empty());
}

}  // namespace
