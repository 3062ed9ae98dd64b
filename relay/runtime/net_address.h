// cidr.h — IPv4/IPv6 networks ("192.0.2.0/24", "::1/128") and membership tests,
// for the relay_networks setting. Parsing errors name the offending text.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace danerelay::relay {

class Cidr {
  public:
    static Result<Cidr> parse(std::string_view text);
    bool contains(const sockaddr_storage& addr) const;
    std::string toString() const;

  private:
    int family_ = AF_INET;
    std::array<uint8_t, 16> bytes_{};
    int prefix_ = 0;
};

bool anyContains(const std::vector<Cidr>& nets, const sockaddr_storage& addr);

// "192.0.2.1" or "2001:db8::1" (IPv4-mapped IPv6 shown as IPv4).
std::string addressToString(const sockaddr_storage& addr);

// A numeric IPv4/IPv6 address and a port as a socket address; false if the
// text is not a numeric address.
bool toSockaddr(const std::string& host, uint16_t port, sockaddr_storage* ss, socklen_t* len);

}  // namespace danerelay::relay
