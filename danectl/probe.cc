#include "danectl/probe.h"

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>

#include "common/clock.h"
#include "common/event.h"
#include "danectl/output.h"
#include "policy/policy.h"
#include "relay/outbound/delivery.h"
#include "relay/outbound/destination.h"
#include "relay/outbound/mta_sts.h"
#include "relay/runtime/config.h"
#include "sts/cache.h"
#include "sts/fetcher.h"
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
    relay::MtaStsConfig mtaSts;
    std::string spoolDir;  // the daemon's policy cache is SPOOL/sts/ (read only here)
};

// What the resolver said: its probe, and the destination.
struct ProbeFindings {
    bool validating = false;
    std::string detail;
    relay::DestinationInfo info;
    // MTA-STS (RFC 8461): the _mta-sts TXT record, the daemon's cached
    // policy (read from its cache file, nothing written) and one fetched now.
    sts::TxtLookup sts;
    dns::Security stsSecurity = dns::Security::Indeterminate;
    std::optional<sts::CacheEntry> cached;
    std::string cacheNote;  // why nothing cached could be shown
    std::optional<sts::Policy> fetched;
    std::string fetchNote;  // not fetched, or the failure
    bool done = false;
};

// The daemon's cached policy for domain, read without side effects.
void readCached(const std::string& spoolDir, const std::string& domain, ProbeFindings* found) {
    if (spoolDir.empty()) {
        found->cacheNote = "no configuration read";
        return;
    }
    // The daemon's own reading (sts/cache.h), read only: the domain in its
    // normal form (case, trailing dot), no symlink or FIFO followed.
    auto l = sts::PolicyCache::peek(spoolDir + "/sts", domain);
    if (!l) {
        found->cacheNote = l.error().message;
    } else if (l->entry) {
        found->cached = std::move(l->entry);
    } else {
        found->cacheNote = l->damaged.empty() ? "nothing cached" : l->damaged;
    }
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
            setup->mtaSts = cfg.mtaSts;
            setup->spoolDir = cfg.spoolDir;
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

// The resolver's probe, then the destination (or the policy's next hop),
// then MTA-STS: the TXT record, the cache, and a fetch now.
ProbeFindings resolve(const dns::ResolverOptions& options, const ProbeSetup& setup,
                      const std::string& domain, const policy::Decision& pol) {
    EventBasePtr base(event_base_new());
    dns::Resolver resolver(base.get(), options);
    Dispatcher dispatcher(base.get());
    sts::FetchOptions fo;
    fo.caFile = setup.mtaSts.trustStore;
    fo.port = setup.mtaSts.port;
    fo.totalTimeout = std::chrono::seconds(setup.mtaSts.fetchTimeout);
    fo.connectTimeout = std::min(fo.connectTimeout, fo.totalTimeout);
    sts::Fetcher fetcher(dispatcher, fo);
    auto alive = std::make_shared<bool>(true);
    ProbeFindings found;
    auto finish = [&] {
        found.done = true;
        event_base_loopbreak(base.get());
    };
    auto fetch = [&] {
        readCached(setup.spoolDir, domain, &found);
        if (!setup.mtaSts.enabled) {
            found.fetchNote = "mta_sts.enabled is false";
            return finish();
        }
        if (found.sts.status != sts::TxtStatus::Found && !found.cached) {
            found.fetchNote = "not fetched: no _mta-sts record";
            return finish();
        }
        relay::fetchPolicyBody(resolver, fetcher, domain, alive, [&](Result<std::string> body) {
            if (!body) {
                found.fetchNote = body.error().message;
            } else if (auto p = sts::parsePolicy(domain, *body); p) {
                found.fetched = std::move(*p);
            } else {
                found.fetchNote = p.error().message;
            }
            finish();
        });
    };
    resolver.probe([&](bool ok, const std::string& detail) {
        found.validating = ok;
        found.detail = detail;
        auto got = [&](const relay::DestinationInfo& d) {
            found.info = d;
            resolver.lookup("_mta-sts." + domain, dns::kTypeTxt, [&](const dns::Answer& a) {
                found.sts = relay::stsRecord(domain, a);
                found.stsSecurity = a.security;
                fetch();
            });
        };
        const auto& hop = pol.effective.nextHop;
        if (hop) {
            relay::DestinationLookup::runNextHop(resolver, domain, hop->host, hop->literal,
                                                 hop->port, got);
        } else {
            relay::DestinationLookup::run(resolver, domain, setup.maxHosts, got);
        }
    });
    event_base_dispatch(base.get());
    *alive = false;
    return found;
}

// What the daemon would apply now: a live cached policy, else (first
// contact, or expired) the one just fetched; nothing where MTA-STS is off.
std::optional<relay::StsView> stsView(const ProbeSetup& setup, const ProbeFindings& found,
                                      const policy::Decision& pol) {
    const auto& e = pol.effective;
    if (!setup.mtaSts.enabled || !e.mtaSts || e.nextHop || e.level == policy::Level::None ||
        e.level == policy::Level::May) {
        return std::nullopt;
    }
    relay::StsView v;
    int64_t now = SystemClock::instance().wallSeconds();
    if (found.cached && found.cached->liveAt(now)) {
        v.policy = found.cached->policy;
        v.why = "cached policy id " + found.cached->id;
    } else if (found.fetched) {
        v.policy = found.fetched;
        v.why = "policy fetched now";
    } else {
        v.why = found.fetchNote;
    }
    return v;
}

relay::DeliveryPlan probePlan(const ProbeSetup& setup, const ProbeFindings& found,
                              const policy::Decision& pol) {
    auto sts = stsView(setup, found, pol);
    return relay::plan(found.info, found.validating, false, pol.effective.level, setup.self,
                       sts ? &*sts : nullptr);
}

// Which mechanism authenticates delivery: per usable host, DANE, MTA-STS
// or nothing; said once for the destination.
std::string deciding(const relay::DeliveryPlan& p) {
    bool dane = false, sts = false, none = false;
    for (const auto& h : p.hosts) {
        if (h.skip) continue;
        if (h.mode == relay::TlsMode::Dane || h.mode == relay::TlsMode::Mandatory) {
            dane = true;
        } else if (std::string_view(h.sts) == "enforced") {
            sts = true;
        } else {
            none = true;
        }
    }
    std::string out;
    if (dane) out += "dane";
    if (sts) out += std::string(out.empty() ? "" : "+") + "mta-sts";
    if (none) out += std::string(out.empty() ? "" : "+") + "none";
    return out.empty() ? "no usable host" : out;
}

nlohmann::json policyJson(const sts::Policy& p) {
    return {{"mode", sts::toString(p.mode)}, {"max_age", p.maxAge}, {"mx", p.mx}};
}

void printJsonReport(const ProbeSetup& setup, const std::string& servers,
                     const ProbeFindings& found, const policy::Decision& pol) {
    auto j = relay::toJson(found.info);
    j["resolver"] = {
        {"servers", servers}, {"validating", found.validating}, {"detail", found.detail}};
    auto decision = probePlan(setup, found, pol);
    j["decision"] = relay::toJson(decision);
    j["policy"] = {{"destination", pol.effective.destination},
                   {"level", policy::toString(pol.effective.level)},
                   {"where", pol.effective.file.empty() ? "" : pol.effective.where()},
                   {"warnings", pol.warnings}};
    json sts = {{"record", sts::toString(found.sts.status)},
                {"id", found.sts.id},
                {"error", found.sts.error},
                {"dnssec", dns::toString(found.stsSecurity)},
                {"cached", nullptr},
                {"fetched", nullptr},
                {"decides", deciding(decision)}};
    if (found.cached) {
        sts["cached"] = policyJson(found.cached->policy);
        sts["cached"]["id"] = found.cached->id;
        sts["cached"]["fetched_at"] = found.cached->fetchedAt;
        sts["cached"]["expires_at"] = found.cached->expiresAt();
    } else {
        sts["cache_note"] = found.cacheNote;
    }
    if (found.fetched) {
        sts["fetched"] = policyJson(*found.fetched);
    } else {
        sts["fetch_note"] = found.fetchNote;
    }
    j["mta_sts"] = sts;
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
    std::printf("mta-sts: _mta-sts.%s TXT: %s%s%s (dnssec %s)\n", found.info.domain.c_str(),
                sts::toString(found.sts.status),
                found.sts.id.empty() ? "" : (", id " + found.sts.id).c_str(),
                found.sts.error.empty() ? "" : (": " + found.sts.error).c_str(),
                dns::toString(found.stsSecurity));
    auto show = [](const sts::Policy& p) {
        return std::string("mode ") + sts::toString(p.mode) + ", max_age " +
               std::to_string(p.maxAge) + ", mx " + (p.mx.empty() ? "-" : p.mxText());
    };
    if (found.cached) {
        std::printf("  cached:  id %s, %s\n", found.cached->id.c_str(),
                    show(found.cached->policy).c_str());
    } else {
        std::printf("  cached:  %s\n", found.cacheNote.c_str());
    }
    std::printf("  fetched: %s\n",
                found.fetched ? show(*found.fetched).c_str() : found.fetchNote.c_str());
    auto decision = probePlan(setup, found, pol);
    std::printf("authenticated by: %s\n", deciding(decision).c_str());
    std::fputs(relay::toText(decision).c_str(), stdout);
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
    auto found = resolve(*resolverOptions, setup, options.domain, pol);
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
