// resolv_conf.h — the nameservers of a resolv.conf(5) file, read the way
// the C library reads them, for a relay configured without dns.resolvers.
//
// Only "nameserver ADDRESS" lines count; comments start with '#' or ';';
// the first three addresses are used (the C library's MAXNS) and later ones
// are noted, not used. An address the relay cannot use (not an IP address,
// an IPv6 address with a %zone) is skipped with a note naming file:line.
// No server read here is trusted for its AD bit: DNSSEC from resolv.conf's
// servers is validated locally, never believed.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "dns/resolver.h"

namespace danerelay::dns {

struct ResolvConf {
    std::vector<ServerAddress> servers;  // in file order, at most kMaxServers
    std::vector<std::string> notes;      // "FILE:LINE: why this line was skipped"
    static constexpr size_t kMaxServers = 3;
};

// Reads `path` (at most 64 KiB). Fails only when the file cannot be read;
// a file without a usable nameserver line gives an empty list.
Result<ResolvConf> readResolvConf(const std::string& path);

// The same, from text already read (`path` names it in notes).
ResolvConf parseResolvConf(const std::string& text, const std::string& path);

}  // namespace danerelay::dns
