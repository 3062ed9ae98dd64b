#include "relay/inbound/smtp_server.h"

#include <gtest/gtest.h>

#include "tests/relay/sockaddr_util.h"

using namespace danerelay::relay;

using danerelay::relay::testing::addr;

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
