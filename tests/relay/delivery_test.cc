// plan(): the RFC 7672 decision table, one case per row, from DNS facts made
// in the test (no network).
#include "relay/delivery.h"

#include <gtest/gtest.h>

using namespace danerelay;
using namespace danerelay::relay;
using dns::Outcome;
using dns::Security;
using dns::TlsaStatus;

namespace {

dns::Answer ans(Outcome o, Security s, std::vector<std::string> addrs = {}) {
    dns::Answer a;
    a.outcome = o;
    a.security = s;
    a.addresses = std::move(addrs);
    return a;
}

HostInfo host(const std::string& name, uint16_t pref, Security addr, TlsaStatus t) {
    HostInfo h;
    h.name = name;
    h.preference = pref;
    h.a = ans(Outcome::Data, addr, {"192.0.2.1"});
    h.aaaa = ans(Outcome::NoData, addr);
    h.tlsaLooked = true;
    h.tlsaBase = name;
    h.tlsaStatus = t;
    if (t == TlsaStatus::Usable) {
        dns::TlsaRecord r;
        r.usage = 3;
        r.selector = 1;
        r.mtype = 1;
        r.data.assign(32, 7);
        r.usable = true;
        h.tlsa.tlsa.push_back(r);
    }
    return h;
}

DestinationInfo dest(Security mxSec, std::vector<HostInfo> hosts,
                     Outcome mxOutcome = Outcome::Data) {
    DestinationInfo d;
    d.domain = "example.org";
    d.mx = ans(mxOutcome, mxSec);
    d.hosts = std::move(hosts);
    return d;
}

TEST(Plan, SecureMxSecureHostUsableTlsaIsDane) {
    auto p = plan(
        dest(Security::Secure, {host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable)}),
        true, false);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver);
    ASSERT_EQ(p.hosts.size(), 1u);
    EXPECT_EQ(p.hosts[0].mode, TlsMode::Dane);
    EXPECT_EQ(p.hosts[0].sni, "mx.example.org");
    EXPECT_EQ(p.hosts[0].tlsa.size(), 1u);
    // reference names: TLSA base (= MX host here) and the next-hop domain
    EXPECT_EQ(p.hosts[0].referenceNames,
              (std::vector<std::string>{"mx.example.org", "example.org"}));
}

TEST(Plan, TlsaOutcomesMapToTlsModes) {
    auto mode = [](TlsaStatus t) {
        auto p = plan(dest(Security::Secure, {host("mx.example.org", 10, Security::Secure, t)}),
                      true, false);
        return p.hosts.at(0).skip ? std::string("skip") : std::string(toString(p.hosts[0].mode));
    };
    EXPECT_EQ(mode(TlsaStatus::NoneUsable), "mandatory-unauthenticated");
    EXPECT_EQ(mode(TlsaStatus::SecurelyAbsent), "opportunistic");
    EXPECT_EQ(mode(TlsaStatus::Failed), "skip");
}

TEST(Plan, FailedTlsaOnEveryHostDefers475) {
    auto p = plan(
        dest(Security::Secure, {host("a.example.org", 10, Security::Secure, TlsaStatus::Failed)}),
        true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
}

TEST(Plan, InsecureMxOrHostIsOpportunistic) {
    auto p = plan(dest(Security::Insecure,
                       {host("mx.example.org", 10, Security::Insecure, TlsaStatus::Insecure)}),
                  true, false);
    EXPECT_EQ(p.hosts.at(0).mode, TlsMode::Opportunistic);
    auto q = plan(dest(Security::Secure,
                       {host("mx.example.org", 10, Security::Insecure, TlsaStatus::Insecure)}),
                  true, false);
    EXPECT_EQ(q.hosts.at(0).mode, TlsMode::Opportunistic);
}

TEST(Plan, BogusAddressSkipsTheHostOnly) {
    auto p = plan(dest(Security::Secure,
                       {host("bad.example.org", 10, Security::Bogus, TlsaStatus::Failed),
                        host("good.example.org", 20, Security::Secure, TlsaStatus::Usable)}),
                  true, false);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver);
    EXPECT_TRUE(p.hosts[0].skip);
    EXPECT_FALSE(p.hosts[1].skip);
    EXPECT_TRUE(p.hosts[0].addresses.empty());  // never an address from a bogus answer
}

TEST(Plan, AFailedAaaaLookupDoesNotSwitchDaneOff) {
    // A secure, AAAA timed out (an attacker dropped it): still DANE over the
    // A address, never opportunistic.
    HostInfo h = host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable);
    h.aaaa = ans(Outcome::Timeout, Security::Indeterminate);
    EXPECT_EQ(h.addressSecurity(), Security::Secure);
    auto p = plan(dest(Security::Secure, {h}), true, false);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver);
    EXPECT_EQ(p.hosts[0].mode, TlsMode::Dane);
    EXPECT_EQ(p.hosts[0].addresses, std::vector<std::string>{"192.0.2.1"});
    // Both failed: the host is skipped, not downgraded.
    h.a = ans(Outcome::ServFail, Security::Indeterminate);
    p = plan(dest(Security::Secure, {h}), true, false);
    EXPECT_NE(p.action, DeliveryPlan::Action::Deliver);
}

TEST(Plan, MxLookupFailuresDeferNeverInsecure) {
    EXPECT_EQ(plan(dest(Security::Bogus, {}, Outcome::ServFail), true, false).status, "4.7.5");
    EXPECT_EQ(plan(dest(Security::Indeterminate, {}, Outcome::Timeout), true, false).action,
              DeliveryPlan::Action::Defer);
    EXPECT_EQ(plan(dest(Security::Indeterminate, {}, Outcome::ServFail), true, false).action,
              DeliveryPlan::Action::Defer);
}

TEST(Plan, NonValidatingResolverDefers) {
    auto p = plan(dest(Security::Insecure,
                       {host("mx.example.org", 10, Security::Insecure, TlsaStatus::Insecure)}),
                  false, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
}

TEST(Plan, NxDomainAndNullMxBounce) {
    EXPECT_EQ(plan(dest(Security::Secure, {}, Outcome::NxDomain), true, false).status, "5.1.2");
    auto d = dest(Security::Secure, {});
    d.nullMx = true;
    auto p = plan(d, true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Bounce);
    EXPECT_EQ(p.status, "5.1.10");
}

TEST(Plan, PreferenceOrderKept) {
    auto p = plan(
        dest(Security::Secure, {host("b.example.org", 20, Security::Secure, TlsaStatus::Usable),
                                host("a.example.org", 10, Security::Secure, TlsaStatus::Usable)}),
        true, true);
    EXPECT_EQ(p.hosts[0].name, "a.example.org");
    EXPECT_EQ(p.hosts[1].name, "b.example.org");
}

}  // namespace

namespace {

using danerelay::policy::Level;

DeliveryPlan planWith(Level level, TlsaStatus t, Security addr = Security::Secure,
                      bool validating = true) {
    return plan(dest(Security::Secure, {host("mx.example.org", 10, addr, t)}), validating, false,
                level);
}

TEST(PlanPolicy, DaneOnlySkipsHostsWithoutDane) {
    auto p = planWith(Level::DaneOnly, TlsaStatus::SecurelyAbsent);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
    EXPECT_EQ(planWith(Level::DaneOnly, TlsaStatus::Usable).hosts.at(0).mode, TlsMode::Dane);
}

TEST(PlanPolicy, EncryptRaisesOpportunisticOnly) {
    EXPECT_EQ(planWith(Level::Encrypt, TlsaStatus::SecurelyAbsent).hosts.at(0).mode,
              TlsMode::Mandatory);
    EXPECT_EQ(planWith(Level::Encrypt, TlsaStatus::Usable).hosts.at(0).mode, TlsMode::Dane);
}

TEST(PlanPolicy, MayLowersEvenAFailedTlsaAndNoneDropsTls) {
    auto may = planWith(Level::May, TlsaStatus::Failed);
    ASSERT_EQ(may.action, DeliveryPlan::Action::Deliver);
    EXPECT_EQ(may.hosts.at(0).mode, TlsMode::Opportunistic);
    EXPECT_TRUE(may.hosts.at(0).tlsa.empty());
    EXPECT_EQ(planWith(Level::None, TlsaStatus::Usable).hosts.at(0).mode, TlsMode::None);
}

TEST(PlanPolicy, NonValidatingResolverDefersDaneButNotAnExplicitMay) {
    EXPECT_EQ(planWith(Level::Dane, TlsaStatus::Insecure, Security::Insecure, false).action,
              DeliveryPlan::Action::Defer);
    EXPECT_EQ(planWith(Level::May, TlsaStatus::Insecure, Security::Insecure, false).action,
              DeliveryPlan::Action::Deliver);
}

}  // namespace
