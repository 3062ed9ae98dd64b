#include "relay/smtp_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

using namespace danerelay::relay;

namespace {
sockaddr_storage addr(const char* s) {
    sockaddr_storage ss{};
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
        ss.ss_family = AF_INET;
    } else {
        EXPECT_EQ(inet_pton(AF_INET6, s, &sin6->sin6_addr), 1) << s;
        ss.ss_family = AF_INET6;
    }
    return ss;
}
}  // namespace

TEST(ClientNetwork, Ipv4Slash24) {
    EXPECT_EQ(clientNetwork(addr("192.0.2.77")), "192.0.2.0/24");
    EXPECT_EQ(clientNetwork(addr("192.0.2.255")), "192.0.2.0/24");
    EXPECT_NE(clientNetwork(addr("192.0.3.1")), clientNetwork(addr("192.0.2.1")));
    EXPECT_EQ(clientNetwork(addr("127.0.0.4")), "127.0.0.0/24");
    EXPECT_EQ(clientNetwork(addr("127.0.1.2")), "127.0.1.0/24");
}

TEST(ClientNetwork, Ipv6Slash64AndMappedIpv4) {
    EXPECT_EQ(clientNetwork(addr("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), "2001:db8:1:2::/64");
    EXPECT_EQ(clientNetwork(addr("2001:db8:1:2::1")), clientNetwork(addr("2001:db8:1:2:ffff::9")));
    EXPECT_NE(clientNetwork(addr("2001:db8:1:3::1")), clientNetwork(addr("2001:db8:1:2::1")));
    // An IPv4 client on a dual-stack socket is counted in its /24.
    EXPECT_EQ(clientNetwork(addr("::ffff:192.0.2.9")), "192.0.2.0/24");
}
