#include "relay/runtime/net_address.h"

#include <gtest/gtest.h>

#include "tests/relay/sockaddr_util.h"

using namespace danerelay::relay;

using danerelay::relay::testing::addr;

TEST(Cidr, V4Networks) {
    auto n = Cidr::parse("127.0.0.0/8");
    ASSERT_TRUE(n.ok());
    EXPECT_TRUE(n->contains(addr("127.1.2.3")));
    EXPECT_FALSE(n->contains(addr("128.0.0.1")));
    auto host = Cidr::parse("127.0.0.2");
    ASSERT_TRUE(host.ok());
    EXPECT_TRUE(host->contains(addr("127.0.0.2")));
    EXPECT_FALSE(host->contains(addr("127.0.0.3")));
    auto odd = Cidr::parse("127.0.0.0/30");
    EXPECT_TRUE(odd->contains(addr("127.0.0.3")));
    EXPECT_FALSE(odd->contains(addr("127.0.0.4")));
}

TEST(Cidr, V6AndMapped) {
    auto n = Cidr::parse("::1/128");
    ASSERT_TRUE(n.ok());
    EXPECT_TRUE(n->contains(addr("::1")));
    EXPECT_FALSE(n->contains(addr("127.0.0.1")));
    auto v4 = Cidr::parse("127.0.0.0/8");
    EXPECT_TRUE(v4->contains(addr("::ffff:127.0.0.9")));
    EXPECT_EQ(addressToString(addr("::ffff:127.0.0.9")), "127.0.0.9");
}

TEST(Cidr, ErrorsNameTheText) {
    for (const char* bad : {"127.0.0.1/8", "300.0.0.0/8", "127.0.0.0/33", "::1/129", "nonsense",
                            "127.0.0.0/", "127.0.0.0/x"}) {
        auto r = Cidr::parse(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
    }
}
