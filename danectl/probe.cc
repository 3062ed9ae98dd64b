#include "danectl/probe.h"

#include <cstdio>
#include <functional>
#include <memory>

#include "common/clock.h"
#include "common/event.h"
#include "danectl/output.h"
#include "policy/policy.h"
#include "relay/outbound/delivery.h"
#include "relay/outbound/destination.h"
#include "relay/runtime/config.h"
#include "sts/txt_record.h"

namespace danerelay::danectl {

using nlohmann::json;

namespace {

// What the probe works from: the DNS settings, the policy, the daemon's own
// addresses (an MX that is us is a loop), the MX host limit.
struct ProbeSetup {
    relay::DnsConfig dns;
    std::string policyDir;
    relay::OwnAddresses self;
    size_t maxHosts = kProbeMaxHostsWithoutConfig;
};

// What the resolver said: its probe, and the destination.
struct ProbeFindings {
    bool validating = false;
    std::string detail;
    relay::DestinationInfo info;
    // MTA-STS (RFC 8461): the _mta-sts TXT record, shown; delivery does not
    // act on it yet (sts/ is not wired into plan()).
    sts::TxtLookup sts;
    dns::Security stsSecurity = dns::Security::Indeterminate;
    bool done = false;
};

// The _mta-sts.DOMAIN TXT record, read as sts/ reads it.
sts::TxtLookup stsRecord(const std::string& domain, const dns::Answer& a) {
    if (a.outcome == dns::Outcome::NxDomain || a.outcome == dns::Outcome::NoData)
        return sts::selectTxtRecord(domain, {});
    if (a.outcome != dns::Outcome::Data || a.security == dns::Security::Bogus) {
        sts::TxtLookup l;
        l.status = sts::TxtStatus::LookupFailed;
        l.error = "_mta-sts." + domain + ": " + dns::toString(a.outcome) + ", " +
                  dns::toString(a.security) + (a.detail.empty() ? "" : ": " + a.detail);
        return l;
    }
    return sts::selectTxtRecord(domain, a.txt);
}

bool loadSetup(const std::string& configPath, const ProbeOptions& o, ProbeSetup* setup) {
    if (!o.resolvers.empty()) {
        setup->dns.resolvers = o.resolvers;
    } else {
        try {
            auto cfg = relay::loadConfig(configPath, relay::FileCheck::Skip);
            setup->dns = cfg.dns;
            setup->policyDir = cfg.policyDir;
            setup->self = relay::ownAddresses(cfg.listeners, cfg.delivery.port);
            setup->maxHosts = cfg.delivery.maxHostsPerAttempt;
        } catch (const std::exception& e) {
            printError(e.what());
            return false;
        }
    }
    if (!o.probeSecure.empty()) {
        setup->dns.probeSecureName = o.probeSecure;
        setup->dns.probeBogusName = o.probeBogus;
    }
    if (!o.validation.empty()) setup->dns.validation = o.validation;
    if (!o.trustAnchor.empty()) setup->dns.trustAnchor = o.trustAnchor;
    return true;
}

bool lookupPolicy(const std::string& policyDir, const std::string& domain, policy::Decision* pol) {
    pol->effective.destination = "(built-in default)";
    if (policyDir.empty()) return true;
    auto ps = policy::PolicySet::loadDir(policyDir);
    if (!ps) {
        printError(ps.error().message);
        return false;
    }
    *pol = (*ps)->lookup(domain, SystemClock::instance().wallSeconds());
    return true;
}

Result<dns::ResolverOptions> probeResolverOptions(const relay::DnsConfig& dnsConfig) {
    auto options = relay::resolverOptions(dnsConfig);
    if (dnsConfig.validation == "local") {
        auto v = relay::loadValidator(dnsConfig);
        if (!v) return v.error();
        options.validator = *v;
        // A command line may block: validate in line.
        options.offload = [](std::function<void()> work, std::function<void()> done) {
            work();
            done();
        };
    }
    return options;
}

// The resolver's probe, then the destination (or the policy's next hop).
ProbeFindings resolve(const dns::ResolverOptions& options, const std::string& domain,
                      const policy::Decision& pol, size_t maxHosts) {
    EventBasePtr base(event_base_new());
    dns::Resolver resolver(base.get(), options);
    ProbeFindings found;
    resolver.probe([&](bool ok, const std::string& detail) {
        found.validating = ok;
        found.detail = detail;
        auto got = [&](const relay::DestinationInfo& d) {
            found.info = d;
            resolver.lookup("_mta-sts." + domain, dns::kTypeTxt, [&](const dns::Answer& a) {
                found.sts = stsRecord(domain, a);
                found.stsSecurity = a.security;
                found.done = true;
                event_base_loopbreak(base.get());
            });
        };
        const auto& hop = pol.effective.nextHop;
        if (hop) {
            relay::DestinationLookup::runNextHop(resolver, domain, hop->host, hop->literal,
                                                 hop->port, got);
        } else {
            relay::DestinationLookup::run(resolver, domain, maxHosts, got);
        }
    });
    event_base_dispatch(base.get());
    return found;
}

void printJsonReport(const ProbeSetup& setup, const std::string& servers,
                     const ProbeFindings& found, const policy::Decision& pol) {
    auto j = relay::toJson(found.info);
    j["resolver"] = {
        {"servers", servers}, {"validating", found.validating}, {"detail", found.detail}};
    j["decision"] = relay::toJson(
        relay::plan(found.info, found.validating, false, pol.effective.level, setup.self));
    j["policy"] = {{"destination", pol.effective.destination},
                   {"level", policy::toString(pol.effective.level)},
                   {"where", pol.effective.file.empty() ? "" : pol.effective.where()},
                   {"warnings", pol.warnings}};
    j["mta_sts"] = {{"record", sts::toString(found.sts.status)},
                    {"id", found.sts.id},
                    {"error", found.sts.error},
                    {"dnssec", dns::toString(found.stsSecurity)},
                    {"enforced", false}};
    printJson(j);
}

void printTextReport(const ProbeSetup& setup, const std::string& servers,
                     const ProbeFindings& found, const policy::Decision& pol) {
    std::printf("resolver %s: %s (%s)\n", servers.c_str(),
                found.validating ? "validating" : "NOT VALIDATING", found.detail.c_str());
    if (!found.validating) {
        std::printf("  DNSSEC status cannot be trusted: deliveries that ask for DANE will defer\n");
    }
    std::fputs(relay::toText(found.info).c_str(), stdout);
    std::printf("policy: %s for %s%s\n", policy::toString(pol.effective.level),
                pol.effective.destination.c_str(),
                pol.effective.file.empty() ? "" : (" (" + pol.effective.where() + ")").c_str());
    for (const auto& w : pol.warnings) std::printf("  warning: %s\n", w.c_str());
    std::printf("mta-sts: _mta-sts.%s TXT: %s%s%s (dnssec %s); not enforced by this version\n",
                found.info.domain.c_str(), sts::toString(found.sts.status),
                found.sts.id.empty() ? "" : (", id " + found.sts.id).c_str(),
                found.sts.error.empty() ? "" : (": " + found.sts.error).c_str(),
                dns::toString(found.stsSecurity));
    std::fputs(relay::toText(relay::plan(found.info, found.validating, false, pol.effective.level,
                                         setup.self))
                   .c_str(),
               stdout);
}

}  // namespace

int probe(const std::string& configPath, const ProbeOptions& options, bool asJson) {
    ProbeSetup setup;
    if (!loadSetup(configPath, options, &setup)) return 1;
    policy::Decision pol;
    if (!lookupPolicy(setup.policyDir, options.domain, &pol)) return 1;
    auto resolverOptions = probeResolverOptions(setup.dns);
    if (!resolverOptions) {
        printError(resolverOptions.error().message);
        return 1;
    }
    auto found = resolve(*resolverOptions, options.domain, pol, setup.maxHosts);
    if (!found.done) {
        printError("probe did not finish");
        return 1;
    }
    std::string servers;
    for (const auto& s : setup.dns.resolvers) {
        servers += (servers.empty() ? "" : ",") + s.text() + (s.trusted ? "" : "(untrusted)");
    }
    if (asJson) {
        printJsonReport(setup, servers, found, pol);
    } else {
        printTextReport(setup, servers, found, pol);
    }
    bool resolved = found.info.mx.outcome == dns::Outcome::Data ||
                    found.info.mx.outcome == dns::Outcome::NoData;
    return resolved ? 0 : 1;
}

}  // namespace danerelay::danectl
