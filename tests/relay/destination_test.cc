// DestinationLookup (relay/outbound/destination.h): how DNS facts become a
// DestinationInfo, from a scripted DNS server (tests/relay/fake_dns.h).
#include "relay/outbound/destination.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include "common/event.h"
#include "tests/relay/fake_dns.h"

namespace danerelay::relay {
namespace {

using dns::Outcome;
using dns::Security;

using namespace testing;

const char* kTlsa =
    " 300 IN TLSA 3 1 1 "
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// A secure host: A with data, AAAA securely empty.
void secureHost(std::map<std::string, Zone>& z, const std::string& name, const std::string& ip) {
    z[name + ". A"] = secure({name + ". 300 IN A " + ip});
    z[name + ". AAAA"] = secureNoData();
}

class DestinationTest : public ::testing::Test {
  protected:
    void SetUp() override { base_.reset(event_base_new()); }

    DestinationInfo lookup(FakeDns& server, const std::string& domain, size_t maxHosts = 5) {
        dns::Resolver resolver(base_.get(), server.resolverOptions(200));
        std::optional<DestinationInfo> got;
        auto done = [&](const DestinationInfo& d) {
            got = d;
            event_base_loopbreak(base_.get());
        };
        if (nextHop_.empty()) {
            DestinationLookup::run(resolver, domain, maxHosts, done);
        } else {
            DestinationLookup::runNextHop(resolver, domain, nextHop_, literal_, nextHopPort_, done);
            if (got) return *got;  // a literal: nothing to ask
        }
        timeval limit{5, 0};
        event_base_loopexit(base_.get(), &limit);
        event_base_dispatch(base_.get());
        EXPECT_TRUE(got.has_value()) << "no DestinationInfo for " << domain;
        return got.value_or(DestinationInfo{});
    }

    const HostInfo* host(const DestinationInfo& d, const std::string& name) {
        for (const auto& h : d.hosts) {
            if (h.name == name) return &h;
        }
        ADD_FAILURE() << "no host " << name;
        return nullptr;
    }

    EventBasePtr base_;
    std::string nextHop_;  // set: runNextHop() instead of run()
    bool literal_ = false;
    uint16_t nextHopPort_ = 25;
};

TEST_F(DestinationTest, MxHostsInPreferenceOrderWithTiesKept) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secure({"example.org. 300 IN MX 20 c.example.org.",
                                   "example.org. 300 IN MX 10 b.example.org.",
                                   "example.org. 300 IN MX 10 a.example.org."});
    for (auto n : {"a", "b", "c"}) secureHost(z, std::string(n) + ".example.org", "192.0.2.1");
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    EXPECT_EQ(d.mx.outcome, Outcome::Data);
    EXPECT_EQ(d.mx.security, Security::Secure);
    EXPECT_FALSE(d.nullMx);
    EXPECT_FALSE(d.implicitMx);
    ASSERT_EQ(d.hosts.size(), 3u);
    EXPECT_EQ(d.hosts[0].preference, 10);
    EXPECT_EQ(d.hosts[1].preference, 10);
    EXPECT_EQ(d.hosts[2].preference, 20);
    EXPECT_EQ(d.hosts[2].name, "c.example.org");
    // Ties keep the answer's order here; plan() shuffles them.
    EXPECT_EQ(d.hosts[0].name, "b.example.org");
    EXPECT_EQ(d.hosts[1].name, "a.example.org");
    for (const auto& h : d.hosts) {
        EXPECT_EQ(h.a.addresses, std::vector<std::string>{"192.0.2.1"}) << h.name;
        EXPECT_EQ(h.addressSecurity(), Security::Secure) << h.name;
    }
}

TEST_F(DestinationTest, TheHostCapKeepsTheLowestPreferencesAndAsksNothingOfTheRest) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secure({"example.org. 300 IN MX 30 far.example.org.",
                                   "example.org. 300 IN MX 5 near.example.org.",
                                   "example.org. 300 IN MX 10 mid.example.org."});
    for (auto n : {"far", "near", "mid"})
        secureHost(z, std::string(n) + ".example.org", "192.0.2.9");
    FakeDns server(z);
    auto d = lookup(server, "example.org", 2);
    ASSERT_EQ(d.hosts.size(), 2u);
    EXPECT_EQ(d.hosts[0].name, "near.example.org");
    EXPECT_EQ(d.hosts[1].name, "mid.example.org");
    auto asked = server.asked();
    EXPECT_FALSE(asked.contains("far.example.org. A"));
    EXPECT_FALSE(asked.contains("far.example.org. AAAA"));
}

TEST_F(DestinationTest, NullMxEndsTheLookup) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secure({"example.org. 300 IN MX 0 ."});
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    EXPECT_TRUE(d.nullMx);
    EXPECT_TRUE(d.hosts.empty());
    EXPECT_EQ(server.asked(), std::set<std::string>{"example.org. MX"});
}

TEST_F(DestinationTest, ANullMxAmongRealHostsIsIgnored) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] =
        secure({"example.org. 300 IN MX 0 .", "example.org. 300 IN MX 10 mx.example.org."});
    secureHost(z, "mx.example.org", "192.0.2.3");
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    EXPECT_FALSE(d.nullMx);
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].name, "mx.example.org");
}

TEST_F(DestinationTest, NoMxMeansTheImplicitMx) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secureNoData();
    secureHost(z, "example.org", "192.0.2.4");
    z["_25._tcp.example.org. TLSA"] = secure({std::string("_25._tcp.example.org.") + kTlsa});
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    EXPECT_TRUE(d.implicitMx);
    EXPECT_FALSE(d.nullMx);
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].name, "example.org");
    EXPECT_EQ(d.hosts[0].preference, 0);
    EXPECT_EQ(d.hosts[0].a.addresses, std::vector<std::string>{"192.0.2.4"});
    // A secure implicit MX stands where a secure MX RRset would: DANE applies.
    EXPECT_TRUE(d.hosts[0].tlsaLooked);
    EXPECT_EQ(d.hosts[0].tlsaStatus, dns::TlsaStatus::Usable);
    EXPECT_EQ(d.hosts[0].tlsaBase, "example.org");
}

TEST_F(DestinationTest, ANonexistentDomainHasNoHosts) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secureNxDomain();
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    EXPECT_EQ(d.mx.outcome, Outcome::NxDomain);
    EXPECT_FALSE(d.implicitMx);
    EXPECT_TRUE(d.hosts.empty());
    EXPECT_EQ(server.asked(), std::set<std::string>{"example.org. MX"});
}

TEST_F(DestinationTest, ABogusOrIndeterminateMxStopsThereAndIsNeverAnImplicitMx) {
    for (bool isBogus : {true, false}) {
        std::map<std::string, Zone> z;
        z["example.org. MX"] =
            isBogus ? bogus({"example.org. 300 IN MX 10 evil.example.net."}) : indeterminate();
        secureHost(z, "example.org", "192.0.2.5");
        secureHost(z, "evil.example.net", "203.0.113.66");
        FakeDns server(z);
        auto d = lookup(server, "example.org");
        EXPECT_EQ(d.mx.security, isBogus ? Security::Bogus : Security::Indeterminate);
        EXPECT_FALSE(d.implicitMx);
        EXPECT_TRUE(d.hosts.empty()) << "bogus=" << isBogus;
        for (const auto& q : server.asked()) EXPECT_EQ(q, "example.org. MX");
    }
}

TEST_F(DestinationTest, AnInsecureMxMeansNoTlsaLookup) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = insecure({"example.org. 300 IN MX 10 mx.example.org."});
    secureHost(z, "mx.example.org", "192.0.2.6");
    z["_25._tcp.mx.example.org. TLSA"] = secure({std::string("_25._tcp.mx.example.org.") + kTlsa});
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    EXPECT_EQ(d.mx.security, Security::Insecure);
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_FALSE(d.hosts[0].tlsaLooked);
    EXPECT_FALSE(server.asked().contains("_25._tcp.mx.example.org. TLSA"));
}

TEST_F(DestinationTest, InsecureAddressesMeanNoTlsaLookup) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secure({"example.org. 300 IN MX 10 mx.example.org."});
    z["mx.example.org. A"] = insecure({"mx.example.org. 300 IN A 192.0.2.7"});
    z["mx.example.org. AAAA"] = insecure({});
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].addressSecurity(), Security::Insecure);
    EXPECT_FALSE(d.hosts[0].tlsaLooked);
    EXPECT_FALSE(server.asked().contains("_25._tcp.mx.example.org. TLSA"));
}

TEST_F(DestinationTest, BogusOrIndeterminateAddressesMakeTheHostUnusableNotInsecure) {
    for (bool isBogus : {true, false}) {
        std::map<std::string, Zone> z;
        z["example.org. MX"] = secure({"example.org. 300 IN MX 10 mx.example.org."});
        z["mx.example.org. A"] =
            isBogus ? bogus({"mx.example.org. 300 IN A 203.0.113.66"}) : indeterminate();
        z["mx.example.org. AAAA"] = secureNoData();  // no data beside it: nothing to fall back on
        FakeDns server(z);
        auto d = lookup(server, "example.org");
        ASSERT_EQ(d.hosts.size(), 1u);
        const auto& h = d.hosts[0];
        EXPECT_EQ(h.addressSecurity(), isBogus ? Security::Bogus : Security::Indeterminate);
        EXPECT_FALSE(h.dropped(h.a));
        EXPECT_FALSE(h.tlsaLooked);
        // A bogus answer's records are withheld: never an address to connect to.
        EXPECT_TRUE(h.a.addresses.empty());
    }
}

TEST_F(DestinationTest, ABogusOrFailedFamilyBesideASecureOneIsDropped) {
    for (bool isBogus : {true, false}) {
        std::map<std::string, Zone> z;
        z["example.org. MX"] = secure({"example.org. 300 IN MX 10 mx.example.org."});
        z["mx.example.org. A"] = secure({"mx.example.org. 300 IN A 192.0.2.8"});
        z["mx.example.org. AAAA"] =
            isBogus ? bogus({"mx.example.org. 300 IN AAAA 2001:db8::66"}) : indeterminate();
        z["_25._tcp.mx.example.org. TLSA"] =
            secure({std::string("_25._tcp.mx.example.org.") + kTlsa});
        FakeDns server(z);
        auto d = lookup(server, "example.org");
        ASSERT_EQ(d.hosts.size(), 1u);
        const auto& h = d.hosts[0];
        EXPECT_TRUE(h.dropped(h.aaaa)) << "bogus=" << isBogus;
        EXPECT_TRUE(h.aaaa.addresses.empty());
        // Judged on the family that validated: DANE still applies.
        EXPECT_EQ(h.addressSecurity(), Security::Secure);
        EXPECT_TRUE(h.tlsaLooked);
        EXPECT_EQ(h.tlsaStatus, dns::TlsaStatus::Usable);
    }
}

TEST_F(DestinationTest, BogusOrIndeterminateTlsaIsAFailureNeverAbsence) {
    for (bool isBogus : {true, false}) {
        std::map<std::string, Zone> z;
        z["example.org. MX"] = secure({"example.org. 300 IN MX 10 mx.example.org."});
        secureHost(z, "mx.example.org", "192.0.2.10");
        z["_25._tcp.mx.example.org. TLSA"] =
            isBogus ? bogus({std::string("_25._tcp.mx.example.org.") + kTlsa}) : indeterminate();
        FakeDns server(z);
        auto d = lookup(server, "example.org");
        ASSERT_EQ(d.hosts.size(), 1u);
        EXPECT_TRUE(d.hosts[0].tlsaLooked);
        EXPECT_EQ(d.hosts[0].tlsaStatus, dns::TlsaStatus::Failed) << "bogus=" << isBogus;
        EXPECT_TRUE(d.hosts[0].tlsa.tlsa.empty());
    }
}

TEST_F(DestinationTest, SecurelyAbsentTlsaAtTheHostName) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secure({"example.org. 300 IN MX 10 mx.example.org."});
    secureHost(z, "mx.example.org", "192.0.2.11");
    FakeDns server(z);  // TLSA: secure NXDOMAIN
    auto d = lookup(server, "example.org");
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_TRUE(d.hosts[0].tlsaLooked);
    EXPECT_EQ(d.hosts[0].tlsaStatus, dns::TlsaStatus::SecurelyAbsent);
    EXPECT_EQ(d.hosts[0].tlsaBase, "mx.example.org");
}

// RFC 7672 2.2.3: a CNAME'd MX host, its address lookup secure: TLSA first at
// the fully expanded name, then (only if securely absent there) at the MX
// host's own name.
TEST_F(DestinationTest, ACnamedMxTakesTlsaFromTheExpandedNameFirst) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secure({"example.org. 300 IN MX 10 mx.example.org."});
    z["mx.example.org. A"] = secure({"mx.example.org. 300 IN CNAME real.example.net.",
                                     "real.example.net. 300 IN A 192.0.2.12"});
    z["mx.example.org. AAAA"] = secure({"mx.example.org. 300 IN CNAME real.example.net."});
    z["_25._tcp.real.example.net. TLSA"] =
        secure({std::string("_25._tcp.real.example.net.") + kTlsa});
    z["_25._tcp.mx.example.org. TLSA"] = secure({std::string("_25._tcp.mx.example.org.") + kTlsa});
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    ASSERT_EQ(d.hosts.size(), 1u);
    const auto& h = d.hosts[0];
    EXPECT_EQ(h.name, "mx.example.org");
    EXPECT_EQ(h.a.canonicalName, "real.example.net");
    EXPECT_EQ(h.a.addresses, std::vector<std::string>{"192.0.2.12"});
    EXPECT_EQ(h.tlsaStatus, dns::TlsaStatus::Usable);
    EXPECT_EQ(h.tlsaBase, "real.example.net");
    EXPECT_FALSE(server.asked().contains("_25._tcp.mx.example.org. TLSA"));
}

TEST_F(DestinationTest, ACnamedMxFallsBackToItsOwnNameOnlyWhenSecurelyAbsent) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secure({"example.org. 300 IN MX 10 mx.example.org."});
    z["mx.example.org. A"] = secure({"mx.example.org. 300 IN CNAME real.example.net.",
                                     "real.example.net. 300 IN A 192.0.2.13"});
    z["mx.example.org. AAAA"] = secure({"mx.example.org. 300 IN CNAME real.example.net."});
    z["_25._tcp.mx.example.org. TLSA"] = secure({std::string("_25._tcp.mx.example.org.") + kTlsa});
    {
        FakeDns server(z);  // nothing at _25._tcp.real.example.net: secure NXDOMAIN
        auto d = lookup(server, "example.org");
        ASSERT_EQ(d.hosts.size(), 1u);
        EXPECT_TRUE(server.asked().contains("_25._tcp.real.example.net. TLSA"));
        EXPECT_EQ(d.hosts[0].tlsaStatus, dns::TlsaStatus::Usable);
        EXPECT_EQ(d.hosts[0].tlsaBase, "mx.example.org");
    }
    // Bogus at the expanded name is a failure, not an absence: no fallback.
    z["_25._tcp.real.example.net. TLSA"] =
        bogus({std::string("_25._tcp.real.example.net.") + kTlsa});
    base_.reset(event_base_new());
    FakeDns server(z);
    auto d = lookup(server, "example.org");
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].tlsaStatus, dns::TlsaStatus::Failed);
    EXPECT_FALSE(server.asked().contains("_25._tcp.mx.example.org. TLSA"));
}

// A next hop from policy stands where a secure MX RRset would: no MX lookup,
// TLSA at _port._tcp.host; an IP literal has no DNSSEC, so no DANE.
TEST_F(DestinationTest, APolicyNextHopReplacesTheMxLookup) {
    std::map<std::string, Zone> z;
    z["example.org. MX"] = secure({"example.org. 300 IN MX 10 mx.example.org."});
    secureHost(z, "relay.example.net", "192.0.2.20");
    z["_587._tcp.relay.example.net. TLSA"] =
        secure({std::string("_587._tcp.relay.example.net.") + kTlsa});
    {
        FakeDns server(z);
        nextHop_ = "relay.example.net";
        nextHopPort_ = 587;
        auto d = lookup(server, "example.org");
        EXPECT_EQ(d.nextHop, "relay.example.net:587");
        EXPECT_EQ(d.port, 587);
        EXPECT_EQ(d.mx.security, Security::Secure);
        ASSERT_EQ(d.hosts.size(), 1u);
        EXPECT_EQ(d.hosts[0].tlsaStatus, dns::TlsaStatus::Usable);
        EXPECT_EQ(d.hosts[0].tlsaBase, "relay.example.net");
        EXPECT_FALSE(server.asked().contains("example.org. MX"));
    }
    FakeDns server(z);
    nextHop_ = "192.0.2.21";
    literal_ = true;
    nextHopPort_ = 25;
    auto d = lookup(server, "example.org");
    EXPECT_EQ(d.nextHop, "[192.0.2.21]:25");
    EXPECT_EQ(d.mx.security, Security::Insecure);
    ASSERT_EQ(d.hosts.size(), 1u);
    EXPECT_EQ(d.hosts[0].a.addresses, std::vector<std::string>{"192.0.2.21"});
    EXPECT_FALSE(d.hosts[0].tlsaLooked);
    EXPECT_TRUE(server.asked().empty());
}

}  // namespace
}  // namespace danerelay::relay
