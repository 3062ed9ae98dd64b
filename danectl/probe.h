// probe.h — danectl probe: what the daemon would do for a destination now.
//
// Resolves DOMAIN's MX hosts, addresses and TLSA records through the same
// resolver, validator and outbound decision code as the daemon
// (relay/outbound/destination.h, delivery.h), with the configuration's DNS
// settings and policy, and prints what it found and the delivery plan (text,
// or JSON with --json). Nothing is sent. Exit 0 when the MX lookup gave an
// answer (data or no data), 1 otherwise or when the configuration, policy or
// trust anchor cannot be read.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "dns/resolver.h"

namespace danerelay::danectl {

// MX hosts looked at when no configuration is read (with --resolver it is
// not); with one, its delivery.max_hosts_per_attempt, the daemon's limit.
// Ten is what probe has always used without one (the daemon's own default
// is five): kept, so that such probes show what they showed before.
constexpr size_t kProbeMaxHostsWithoutConfig = 10;

struct ProbeOptions {
    std::string domain;
    // --resolver: these servers, and the configuration is not read at all
    // (neither its DNS settings nor its policy).
    std::vector<dns::ServerAddress> resolvers;
    std::string validation;               // --validation: local or resolver
    std::string trustAnchor;              // --trust-anchor
    std::string probeSecure, probeBogus;  // --probe-names
};

int probe(const std::string& configPath, const ProbeOptions& options, bool asJson);

}  // namespace danerelay::danectl
