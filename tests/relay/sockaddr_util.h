// sockaddr_util.h — a numeric IPv4 or IPv6 address as a sockaddr_storage,
// for tests of code that classifies peers (cidr, per-network limits).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

namespace danerelay::relay::testing {

inline sockaddr_storage addr(const char* s) {
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

}  // namespace danerelay::relay::testing
