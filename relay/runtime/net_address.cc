#include "relay/runtime/net_address.h"

#include <arpa/inet.h>

#include <cstring>

namespace danerelay::relay {

Result<Cidr> Cidr::parse(std::string_view text) {
    std::string s(text);
    Cidr c;
    auto slash = s.find('/');
    std::string addr = s.substr(0, slash);
    if (inet_pton(AF_INET, addr.c_str(), c.bytes_.data()) == 1) {
        c.family_ = AF_INET;
    } else if (inet_pton(AF_INET6, addr.c_str(), c.bytes_.data()) == 1) {
        c.family_ = AF_INET6;
    } else {
        return Error::permanent("'" + s + "' is not an IP address or network");
    }
    int maxPrefix = c.family_ == AF_INET ? 32 : 128;
    c.prefix_ = maxPrefix;
    if (slash != std::string::npos) {
        std::string p = s.substr(slash + 1);
        if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos ||
            std::stoi(p) > maxPrefix) {
            return Error::permanent("'" + s + "' has a bad prefix length");
        }
        c.prefix_ = std::stoi(p);
    }
    // Host bits must be zero, as in Postfix: "10.0.0.1/8" is a typo, not a network.
    int nbytes = c.family_ == AF_INET ? 4 : 16;
    for (int bit = c.prefix_; bit < nbytes * 8; ++bit) {
        if (c.bytes_[static_cast<size_t>(bit / 8)] & (0x80 >> (bit % 8))) {
            return Error::permanent("'" + s + "' has host bits set beyond /" +
                                    std::to_string(c.prefix_));
        }
    }
    return c;
}

static bool prefixMatch(const uint8_t* a, const uint8_t* b, int prefix) {
    int full = prefix / 8;
    if (std::memcmp(a, b, static_cast<size_t>(full)) != 0) return false;
    int rest = prefix % 8;
    if (rest == 0) return true;
    auto mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

bool Cidr::contains(const sockaddr_storage& ss) const {
    if (ss.ss_family == AF_INET) {
        if (family_ != AF_INET) return false;
        const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        return prefixMatch(reinterpret_cast<const uint8_t*>(&sin->sin_addr), bytes_.data(),
                           prefix_);
    }
    if (ss.ss_family == AF_INET6) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        const auto* a = reinterpret_cast<const uint8_t*>(&sin6->sin6_addr);
        if (family_ == AF_INET6) return prefixMatch(a, bytes_.data(), prefix_);
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            return prefixMatch(a + 12, bytes_.data(), prefix_);
    }
    return false;
}

std::string Cidr::toString() const {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(family_, bytes_.data(), buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(prefix_);
}

bool anyContains(const std::vector<Cidr>& nets, const sockaddr_storage& addr) {
    for (const auto& n : nets) {
        if (n.contains(addr)) return true;
    }
    return false;
}

std::string addressToString(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    } else if (ss.ss_family == AF_INET6) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            inet_ntop(AF_INET, reinterpret_cast<const uint8_t*>(&sin6->sin6_addr) + 12, buf,
                      sizeof buf);
        } else {
            inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
        }
    }
    return buf;
}

bool toSockaddr(const std::string& host, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
    *ss = sockaddr_storage{};
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof *sin;
        return true;
    }
    if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof *sin6;
        return true;
    }
    return false;
}

}  // namespace danerelay::relay
