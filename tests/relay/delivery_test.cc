// plan(): the RFC 7672 decision table, one case per row, from DNS facts made
// in the test (no network).
#include "relay/outbound/delivery.h"
#include "relay/outbound/message_delivery.h"

#include "relay/outbound/smtp_client.h"
#include "relay/outbound/trouble.h"

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

TEST(Plan, BogusTlsaOnEveryHostDefers475) {
    HostInfo h = host("a.example.org", 10, Security::Secure, TlsaStatus::Failed);
    h.tlsa = ans(Outcome::ServFail, Security::Bogus);  // a timeout is 4.4.3 (PlanReasons)
    auto p = plan(dest(Security::Secure, {h}), true, false);
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

// ------------------------------------------------- audit: decisions an attacker cannot bend

namespace {

using danerelay::policy::Level;

TEST(PlanAudit, IndeterminateAddressesSkipTheHostNeverInsecure) {
    // Resolver mode with an untrusted resolver in the list: the A answer has
    // data but no DNSSEC verdict. That must not switch DANE off.
    HostInfo h = host("mx.example.org", 10, Security::Indeterminate, TlsaStatus::Insecure);
    h.tlsaLooked = false;
    h.a.detail = "from an untrusted resolver";
    auto p = plan(dest(Security::Secure, {h}), true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
    ASSERT_EQ(p.hosts.size(), 1u);
    EXPECT_TRUE(p.hosts[0].skip);
    EXPECT_NE(p.hosts[0].why.find("indeterminate"), std::string::npos) << p.hosts[0].why;
    EXPECT_NE(p.hosts[0].why.find("untrusted resolver"), std::string::npos) << p.hosts[0].why;
}

TEST(PlanAudit, OneIndeterminateFamilyBesideASecureOneSkipsTheHost) {
    // A secure, AAAA with data of unknown status: the attacker's AAAA must not
    // make the host "not secure" and so opportunistic.
    HostInfo h = host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable);
    h.aaaa = ans(Outcome::Data, Security::Indeterminate, {"2001:db8::66"});
    auto p = plan(dest(Security::Secure,
                       {h, host("mx2.example.org", 20, Security::Secure, TlsaStatus::Usable)}),
                  true, false);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver);
    EXPECT_TRUE(p.hosts[0].skip);
    EXPECT_EQ(p.hosts[1].mode, TlsMode::Dane);
    // Same with a NODATA of unknown status beside the secure A.
    h.aaaa = ans(Outcome::NoData, Security::Indeterminate);
    p = plan(dest(Security::Secure, {h}), true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
}

TEST(PlanAudit, IndeterminateAddressUnderAnInsecureMxIsSkippedToo) {
    HostInfo h = host("mx.example.org", 10, Security::Indeterminate, TlsaStatus::Insecure);
    auto p = plan(dest(Security::Insecure, {h}), true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_TRUE(p.hosts.at(0).skip);
    // No policy raises it back to a delivery; only an operator's explicit may/none.
    for (auto level : {Level::Encrypt, Level::Verify, Level::DaneOnly}) {
        EXPECT_EQ(plan(dest(Security::Insecure, {h}), true, false, level).action,
                  DeliveryPlan::Action::Defer);
    }
    EXPECT_EQ(plan(dest(Security::Insecure, {h}), true, false, Level::May).action,
              DeliveryPlan::Action::Deliver);
}

TEST(PlanAudit, VerifyChecksTheMxNameOnlyUnderASecureMxRrset) {
    auto secure =
        plan(dest(Security::Secure,
                  {host("mx.example.org", 10, Security::Secure, TlsaStatus::SecurelyAbsent)}),
             true, false, Level::Verify);
    ASSERT_EQ(secure.hosts.at(0).mode, TlsMode::Verify);
    EXPECT_EQ(secure.hosts[0].referenceNames, std::vector<std::string>{"mx.example.org"});
    EXPECT_EQ(secure.hosts[0].sni, "mx.example.org");
    // An insecure MX RRset names whatever host the attacker likes: the
    // certificate must name the next-hop domain itself.
    auto insecure =
        plan(dest(Security::Insecure,
                  {host("mx.attacker.example", 10, Security::Insecure, TlsaStatus::Insecure)}),
             true, false, Level::Verify);
    ASSERT_EQ(insecure.hosts.at(0).mode, TlsMode::Verify);
    EXPECT_EQ(insecure.hosts[0].referenceNames, std::vector<std::string>{"example.org"});
    EXPECT_EQ(insecure.hosts[0].sni, "example.org");
}

TEST(PlanAudit, SniIsSetInEveryTlsMode) {
    struct Row {
        Level level;
        TlsaStatus tlsa;
        Security mx;
        TlsMode mode;
        const char* sni;
    };
    const Row rows[] = {
        {Level::Dane, TlsaStatus::Usable, Security::Secure, TlsMode::Dane, "mx.example.org"},
        {Level::Dane, TlsaStatus::NoneUsable, Security::Secure, TlsMode::Mandatory,
         "mx.example.org"},
        {Level::Dane, TlsaStatus::SecurelyAbsent, Security::Secure, TlsMode::Opportunistic,
         "mx.example.org"},
        {Level::Dane, TlsaStatus::Insecure, Security::Insecure, TlsMode::Opportunistic,
         "mx.example.org"},
        {Level::Encrypt, TlsaStatus::Insecure, Security::Insecure, TlsMode::Mandatory,
         "mx.example.org"},
        {Level::Verify, TlsaStatus::Insecure, Security::Insecure, TlsMode::Verify, "example.org"},
        {Level::May, TlsaStatus::Failed, Security::Secure, TlsMode::Opportunistic,
         "mx.example.org"},
    };
    for (const auto& r : rows) {
        Security addr = r.mx == Security::Secure ? Security::Secure : Security::Insecure;
        auto p = plan(dest(r.mx, {host("mx.example.org", 10, addr, r.tlsa)}), true, false, r.level);
        ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver) << toString(r.mode);
        EXPECT_EQ(p.hosts.at(0).mode, r.mode);
        EXPECT_EQ(p.hosts[0].sni, r.sni) << toString(r.mode);
    }
    // An IP literal next hop cannot be an SNI name: the next-hop domain is.
    auto d =
        dest(Security::Insecure, {host("192.0.2.25", 0, Security::Insecure, TlsaStatus::Insecure)});
    EXPECT_EQ(plan(d, true, false, Level::Encrypt).hosts.at(0).sni, "example.org");
}

}  // namespace

// ------------------------------------------------- judgeAttempt(): bounce or defer

namespace {

using queue::RcptState;

ClientResult failedAt(const std::string& error, bool permanent, bool inTransaction,
                      bool tls = true) {
    ClientResult r;
    r.error = error;
    r.failure = permanent ? ClientResult::Failure::Reply : ClientResult::Failure::Network;
    r.replyCode = permanent ? 550 : 0;
    r.stage = inTransaction ? ClientResult::Stage::Mail : ClientResult::Stage::Greeting;
    if (tls) {
        r.tls = "TLS1.3/AES-256-GCM";
        r.peerVerified = true;
        r.dane = "matched 3 1 1 0707";
    }
    return r;
}

TEST(Judge, FiveHundredAtTheGreetingOrEhloNeverBounces) {
    for (auto mode : {TlsMode::Dane, TlsMode::Verify, TlsMode::Mandatory, TlsMode::Opportunistic,
                      TlsMode::None}) {
        for (const char* e : {"greeting: 554 go away", "EHLO: 550 5.7.1 no", "HELO: 550 no",
                              "STARTTLS refused: 554 5.7.0 no TLS for you"}) {
            auto j = judgeAttempt(mode, failedAt(e, true, false, false), 2);
            EXPECT_TRUE(j.nextHost) << e << " " << toString(mode);
            EXPECT_TRUE(j.rcpts.empty());
            ASSERT_FALSE(j.status.empty());
            EXPECT_EQ(j.status[0], '4') << j.status;
        }
    }
    // The server's own enhanced code keeps its detail, made temporary.
    EXPECT_EQ(
        judgeAttempt(TlsMode::Dane, failedAt("EHLO: 550 5.7.1 no", true, false, false), 1).status,
        "4.7.1");
    // After TLS (EHLO again, AUTH) it is still before the transaction.
    auto j = judgeAttempt(TlsMode::Dane, failedAt("AUTH: 535 5.7.8 bad", true, false), 1);
    EXPECT_TRUE(j.nextHost);
    EXPECT_EQ(j.status, "4.7.8");
}

TEST(Judge, FiveHundredToMailFromBouncesOnlyWhenTheTlsRequirementWasMet) {
    auto ok =
        judgeAttempt(TlsMode::Dane, failedAt("MAIL FROM: 550 5.7.1 sender refused", true, true), 2);
    ASSERT_FALSE(ok.nextHost);
    ASSERT_EQ(ok.rcpts.size(), 2u);
    EXPECT_EQ(ok.rcpts[0].state, RcptState::Bounced);
    EXPECT_EQ(ok.rcpts[0].status, "5.7.1");
    // The same reply from a server reached without the TLS DANE requires
    // (cannot happen while TLS is enforced; the rule holds anyway).
    for (auto broken : {failedAt("MAIL FROM: 550 5.7.1 x", true, true, false), [] {
                            auto r = failedAt("MAIL FROM: 550 5.7.1 x", true, true);
                            r.peerVerified = false;  // TLS, but the peer was not authenticated
                            return r;
                        }()}) {
        for (auto mode : {TlsMode::Dane, TlsMode::Verify, TlsMode::Mandatory}) {
            auto j = judgeAttempt(mode, broken, 2);
            EXPECT_TRUE(j.nextHost) << toString(mode);
            EXPECT_EQ(j.status[0], '4');
            EXPECT_NE(j.reason.find("not bounced"), std::string::npos) << j.reason;
        }
    }
    // Opportunistic: there was no requirement to meet.
    EXPECT_EQ(
        judgeAttempt(TlsMode::Opportunistic, failedAt("MAIL FROM: 550 x", true, true, false), 1)
            .rcpts.at(0)
            .state,
        RcptState::Bounced);
}

TEST(Judge, RcptAndDataRepliesPerRecipient) {
    ClientResult r = failedAt("", false, true);
    r.failure = ClientResult::Failure::None;
    r.stage = ClientResult::Stage::Done;
    r.rcpts = {{250, "250 2.1.5 ok"}, {550, "550 5.1.1 no such user"}, {451, "451 4.3.0 later"}};
    auto j = judgeAttempt(TlsMode::Dane, r, 3);
    ASSERT_EQ(j.rcpts.size(), 3u);
    EXPECT_EQ(j.rcpts[0].state, RcptState::Delivered);
    EXPECT_EQ(j.rcpts[1].state, RcptState::Bounced);
    EXPECT_EQ(j.rcpts[1].status, "5.1.1");
    EXPECT_EQ(j.rcpts[2].state, RcptState::Deferred);
    EXPECT_EQ(j.rcpts[2].status, "4.3.0");
    // A 5xx to RCPT from a server that did not meet the TLS requirement is
    // deferred with a 4.x.x status, never bounced.
    r.peerVerified = false;
    j = judgeAttempt(TlsMode::Dane, r, 3);
    EXPECT_EQ(j.rcpts[1].state, RcptState::Deferred);
    EXPECT_EQ(j.rcpts[1].status, "4.1.1");
    EXPECT_NE(j.rcpts[1].text.find("not bounced"), std::string::npos);
    r.tls.clear();
    EXPECT_EQ(judgeAttempt(TlsMode::Mandatory, r, 3).rcpts[1].state, RcptState::Deferred);
    EXPECT_EQ(judgeAttempt(TlsMode::Opportunistic, r, 3).rcpts[1].state, RcptState::Bounced);
}

TEST(Judge, TlsFailuresDefer475AndConnectionFailures441) {
    ClientResult r;
    r.error = "DANE authentication failed (validation-failure)";
    r.failure = ClientResult::Failure::DaneFailed;
    r.peerCheck = ClientResult::PeerCheck::Dane;
    r.daneFailure = tls::DaneFailure::ValidationFailure;
    r.dane = "validation-failure";
    r.tls = "TLS1.3/AES-256-GCM";
    auto j = judgeAttempt(TlsMode::Dane, r, 1);
    EXPECT_TRUE(j.nextHost);
    EXPECT_EQ(j.status, "4.7.5");
    ClientResult c;
    c.failure = ClientResult::Failure::Network;
    c.error = "connect: Connection refused";
    EXPECT_EQ(judgeAttempt(TlsMode::Dane, c, 1).status, "4.4.1");
}

// statusOf() reads the enhanced code with splitEnhancedStatus(): at the
// start of the reply's text and of the reply code's class only.
TEST(StatusOf, ReadsTheCodeAtTheStartOfTheText) {
    EXPECT_EQ(statusOf(550, "550 5.1.1 gone", "5.0.0"), "5.1.1");
    EXPECT_EQ(statusOf(451, "451 4.3.0 later", "4.0.0"), "4.3.0");
    EXPECT_EQ(statusOf(250, "250 2.0.0 queued", "2.0.0"), "2.0.0");
    EXPECT_EQ(statusOf(550, "MAIL FROM: 550 5.7.1 refused", "5.0.0"), "5.7.1");  // quoted
    EXPECT_EQ(statusOf(550, "5.6.7 the server does not support SMTPUTF8", "5.0.0"), "5.6.7");
    EXPECT_EQ(statusOf(550, "550 no code at all", "5.0.0"), "5.0.0");
    EXPECT_EQ(statusOf(421, "421 closing", "4.0.0"), "4.0.0");
}

TEST(StatusOf, ACodeElsewhereOrOfAnotherClassIsNotTaken) {
    // Text a server (or whoever it quotes) chose: not a status code.
    EXPECT_EQ(statusOf(250, "250 ok, queued as 5.1.1", "2.0.0"), "2.0.0");
    EXPECT_EQ(statusOf(550, "550 mailbox unavailable (see 2.0.0)", "5.0.0"), "5.0.0");
    EXPECT_EQ(statusOf(451, "451 try later; was 5.7.1", "4.0.0"), "4.0.0");
    // A code of the wrong class, or malformed, at the start.
    EXPECT_EQ(statusOf(550, "550 4.2.0 full", "5.0.0"), "5.0.0");
    EXPECT_EQ(statusOf(550, "550 5.1.1x gone", "5.0.0"), "5.0.0");
    EXPECT_EQ(statusOf(550, "550 5.1.1234 gone", "5.0.0"), "5.0.0");
}

TEST(Judge, AStatusCodeInsideTheTextNeverBecomesTheRecipientsStatus) {
    ClientResult r = failedAt("", false, true);
    r.failure = ClientResult::Failure::None;
    r.stage = ClientResult::Stage::Done;
    r.rcpts = {{550, "550 mailbox unavailable, see 2.0.0"}, {250, "250 ok id 5.7.1"}};
    auto j = judgeAttempt(TlsMode::Dane, r, 2);
    ASSERT_EQ(j.rcpts.size(), 2u);
    EXPECT_EQ(j.rcpts[0].state, RcptState::Bounced);
    EXPECT_EQ(j.rcpts[0].status, "5.0.0");  // a bounce with a 2.0.0 status is nonsense
    EXPECT_EQ(j.rcpts[1].state, RcptState::Delivered);
    EXPECT_EQ(j.rcpts[1].status, "2.0.0");
}

}  // namespace

// ------------------------------------------------- issue 13: every deferral says why

namespace {

// A host whose TLSA lookup came back as `t` (security and outcome as given).
HostInfo tlsaFailed(const std::string& name, uint16_t pref, Outcome o, Security s,
                    const std::string& detail) {
    HostInfo h = host(name, pref, Security::Secure, TlsaStatus::Failed);
    h.tlsa = ans(o, s);
    h.tlsa.qname = "_25._tcp." + name;
    h.tlsa.detail = detail;
    return h;
}

TEST(PlanReasons, ABogusTlsaNamesTheHostTheLookupAndTheFailure475) {
    auto p = plan(
        dest(Security::Secure, {tlsaFailed("mx.example.org", 10, Outcome::ServFail, Security::Bogus,
                                           "signature not yet valid (inception 2031-01-01)")}),
        true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
    EXPECT_EQ(p.reason,
              "no usable MX host for example.org: mx.example.org: TLSA _25._tcp.mx.example.org "
              "lookup failed DNSSEC validation: bogus (signature not yet valid (inception "
              "2031-01-01))");
}

TEST(PlanReasons, ATlsaTimeoutIsALookupFailure443) {
    auto p =
        plan(dest(Security::Secure, {tlsaFailed("mx.example.org", 10, Outcome::Timeout,
                                                Security::Indeterminate, "127.0.0.1:53: timeout")}),
             true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.4.3");
    EXPECT_NE(p.reason.find("mx.example.org: TLSA _25._tcp.mx.example.org lookup timed out "
                            "(127.0.0.1:53: timeout)"),
              std::string::npos)
        << p.reason;
}

TEST(PlanReasons, AForgedAddressNamesTheFamily475AndATimeout443) {
    HostInfo forged = host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable);
    forged.a = ans(Outcome::ServFail, Security::Bogus);
    forged.a.detail = "records that no proof covers beside the answer";
    auto p = plan(dest(Security::Secure, {forged}), true, false);
    EXPECT_EQ(p.status, "4.7.5");
    EXPECT_NE(p.reason.find("mx.example.org: A lookup failed DNSSEC validation: bogus (records "
                            "that no proof covers"),
              std::string::npos)
        << p.reason;
    HostInfo slow = host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable);
    slow.a = ans(Outcome::Timeout, Security::Indeterminate);
    slow.aaaa = ans(Outcome::Timeout, Security::Indeterminate);
    p = plan(dest(Security::Secure, {slow}), true, false);
    EXPECT_EQ(p.status, "4.4.3");
    EXPECT_NE(p.reason.find("mx.example.org: A lookup timed out; AAAA lookup timed out"),
              std::string::npos)
        << p.reason;
}

TEST(PlanReasons, MixedFailuresAre475IfAnyHostFailedAuthenticationInEitherOrder) {
    auto bogus = tlsaFailed("b.example.org", 20, Outcome::ServFail, Security::Bogus, "x");
    auto slow = tlsaFailed("a.example.org", 10, Outcome::Timeout, Security::Indeterminate, "y");
    for (auto hosts : {std::vector<HostInfo>{bogus, slow}, std::vector<HostInfo>{slow, bogus}}) {
        auto p = plan(dest(Security::Secure, hosts), true, true);
        EXPECT_EQ(p.status, "4.7.5");
        // Preference order in the reason, whatever the shuffle did.
        auto a = p.reason.find("a.example.org: TLSA"), b = p.reason.find("; b.example.org: TLSA");
        ASSERT_NE(a, std::string::npos) << p.reason;
        ASSERT_NE(b, std::string::npos) << p.reason;
        EXPECT_LT(a, b);
        EXPECT_EQ(p.hosts[0].status, "4.4.3");
        EXPECT_EQ(p.hosts[1].status, "4.7.5");
    }
}

TEST(PlanReasons, TheReasonIsBoundedAndOneSafeLine) {
    std::vector<HostInfo> hosts;
    for (int i = 0; i < 40; ++i) {
        hosts.push_back(tlsaFailed("mx" + std::to_string(i) + ".example.org",
                                   static_cast<uint16_t>(i), Outcome::ServFail, Security::Bogus,
                                   std::string(500, 'z') + "\r\n250 injected\xff"));
    }
    auto p = plan(dest(Security::Secure, hosts), true, false);
    EXPECT_EQ(p.status, "4.7.5");
    EXPECT_LE(p.reason.size(), kMaxPlanReason);
    EXPECT_EQ(p.reason.find_first_of("\r\n"), std::string::npos);
    EXPECT_EQ(p.reason.find('\xff'), std::string::npos);
    EXPECT_NE(p.reason.find("mx0.example.org: TLSA"), std::string::npos);
    EXPECT_NE(p.reason.find("more hosts"), std::string::npos) << p.reason;
    EXPECT_EQ(p.reason.rfind("no usable MX host for example.org: ", 0), 0u);
}

TEST(PlanReasons, DaneOnlyWithoutTlsaIs475NoAddressesIs443) {
    auto p = planWith(Level::DaneOnly, TlsaStatus::SecurelyAbsent);
    EXPECT_EQ(p.status, "4.7.5");
    EXPECT_NE(p.reason.find("mx.example.org: policy dane-only"), std::string::npos) << p.reason;
    HostInfo none = host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable);
    none.a = ans(Outcome::NoData, Security::Secure);
    p = plan(dest(Security::Secure, {none}), true, false);
    EXPECT_EQ(p.status, "4.4.3");
    EXPECT_NE(p.reason.find("mx.example.org: no addresses"), std::string::npos) << p.reason;
}

// ------------------------------------------------- one family bogus: drop it, not the host

TEST(PlanFamilies, ABogusAaaaBesideASecureAIsDroppedAndTheHostKeepsDane) {
    HostInfo h = host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable);
    h.aaaa = ans(Outcome::ServFail, Security::Bogus);
    h.aaaa.detail = "forged";
    EXPECT_EQ(h.addressSecurity(), Security::Secure);
    EXPECT_TRUE(h.dropped(h.aaaa));
    EXPECT_FALSE(h.dropped(h.a));
    auto p = plan(dest(Security::Secure, {h}), true, false);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver) << p.reason;
    EXPECT_EQ(p.hosts[0].mode, TlsMode::Dane);
    EXPECT_EQ(p.hosts[0].addresses, std::vector<std::string>{"192.0.2.1"});
    ASSERT_EQ(p.notes.size(), 1u);
    EXPECT_NE(p.notes[0].find("mx.example.org: AAAA lookup failed DNSSEC validation: bogus "
                              "(forged): AAAA addresses dropped"),
              std::string::npos)
        << p.notes[0];
    EXPECT_NE(p.hosts[0].why.find("AAAA addresses dropped"), std::string::npos);
}

TEST(PlanFamilies, ABogusABesideASecureAaaaIsDroppedToo) {
    HostInfo h = host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable);
    h.aaaa = ans(Outcome::Data, Security::Secure, {"2001:db8::25"});
    h.a = ans(Outcome::ServFail, Security::Bogus);
    auto p = plan(dest(Security::Secure, {h}), true, false);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver) << p.reason;
    EXPECT_EQ(p.hosts[0].mode, TlsMode::Dane);
    EXPECT_EQ(p.hosts[0].addresses, std::vector<std::string>{"2001:db8::25"});
    EXPECT_EQ(p.notes.size(), 1u);
}

TEST(PlanFamilies, BogusBesideNothingUsableStillSkipsTheHost) {
    // A bogus, AAAA securely absent: no validated address at all.
    HostInfo h = host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable);
    h.a = ans(Outcome::ServFail, Security::Bogus);
    auto p = plan(dest(Security::Secure, {h}), true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
    // Indeterminate data beside a bogus family: never used, never insecure.
    h.aaaa = ans(Outcome::Data, Security::Indeterminate, {"2001:db8::66"});
    EXPECT_FALSE(h.dropped(h.a));
    p = plan(dest(Security::Secure, {h}), true, false);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_TRUE(p.hosts.at(0).addresses.empty() || p.hosts[0].skip);
}

// ------------------------------------------------- mail loops: never to ourselves

OwnAddresses own(std::vector<OwnAddresses::Listener> listeners, uint16_t port = 25,
                 std::vector<std::string> interfaces = {}) {
    OwnAddresses o;
    o.listeners = std::move(listeners);
    o.port = port;
    o.interfaces = std::move(interfaces);
    return o;
}

HostInfo at(const std::string& name, uint16_t pref, std::vector<std::string> v4,
            std::vector<std::string> v6 = {}) {
    HostInfo h = host(name, pref, Security::Secure, TlsaStatus::Usable);
    h.a = ans(v4.empty() ? Outcome::NoData : Outcome::Data, Security::Secure, std::move(v4));
    h.aaaa = ans(v6.empty() ? Outcome::NoData : Outcome::Data, Security::Secure, std::move(v6));
    return h;
}

TEST(OwnAddresses, WhatReachesOurListeners) {
    auto exact = own({{"192.0.2.25", 25}, {"127.0.0.1", 2525}});
    EXPECT_TRUE(exact.reaches("192.0.2.25"));
    EXPECT_TRUE(exact.reaches("::ffff:192.0.2.25"));  // IPv4-mapped
    EXPECT_FALSE(exact.reaches("192.0.2.26"));
    EXPECT_FALSE(exact.reaches("127.0.0.1"));  // that listener is on another port
    EXPECT_FALSE(exact.reaches("not an address"));
    auto loop = own({{"127.0.0.1", 25}});
    EXPECT_TRUE(loop.reaches("127.0.0.1"));
    EXPECT_TRUE(loop.reaches("0.0.0.0"));     // the unspecified address is this host
    EXPECT_FALSE(loop.reaches("127.0.0.2"));  // bound elsewhere: not us
    auto any4 = own({{"0.0.0.0", 25}}, 25, {"198.51.100.7", "fe80::1%eth0", "2001:db8::7"});
    EXPECT_TRUE(any4.reaches("127.0.0.2"));
    EXPECT_TRUE(any4.reaches("198.51.100.7"));
    EXPECT_FALSE(any4.reaches("198.51.100.8"));
    EXPECT_FALSE(any4.reaches("::1"));  // 0.0.0.0 takes no IPv6
    auto any6 = own({{"::", 25}}, 25, {"fe80::1%eth0", "2001:db8::7"});
    EXPECT_TRUE(any6.reaches("::1"));
    EXPECT_FALSE(any6.reaches("127.0.0.1"));  // listeners set IPV6_V6ONLY
    EXPECT_TRUE(any6.reaches("2001:db8::7"));
    EXPECT_TRUE(any6.reaches("fe80::1"));
    EXPECT_FALSE(any6.reaches("2001:db8::8"));
    EXPECT_FALSE(own({}).reaches("127.0.0.1"));
}

TEST(PlanLoops, TheBestMxBeingOurselvesBounces546) {
    auto self = own({{"192.0.2.25", 25}});
    auto p = plan(dest(Security::Secure, {at("mx.example.org", 10, {"192.0.2.25"}),
                                          at("backup.example.org", 20, {"198.51.100.1"})}),
                  true, false, Level::Dane, self);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Bounce);
    EXPECT_EQ(p.status, "5.4.6");
    EXPECT_EQ(p.reason,
              "mail for example.org loops back to myself (mx.example.org[192.0.2.25]:25 is one "
              "of our own listeners)");
    // No policy level lowers it.
    EXPECT_EQ(plan(dest(Security::Secure, {at("mx.example.org", 10, {"192.0.2.25"})}), true, false,
                   Level::None, self)
                  .status,
              "5.4.6");
    // Another port: not us.
    EXPECT_EQ(plan(dest(Security::Secure, {at("mx.example.org", 10, {"192.0.2.25"})}), true, false,
                   Level::Dane, own({{"192.0.2.25", 587}}))
                  .action,
              DeliveryPlan::Action::Deliver);
}

TEST(PlanLoops, AsABackupMxOnlyMorePreferredHostsAreTried) {
    auto self = own({{"::", 25}, {"0.0.0.0", 25}});
    auto p = plan(dest(Security::Secure, {at("primary.example.org", 10, {"198.51.100.1"}),
                                          at("us.example.org", 20, {"198.51.100.2"}, {"::1"}),
                                          at("tertiary.example.org", 30, {"198.51.100.3"})}),
                  true, false, Level::Dane, self);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver);
    EXPECT_FALSE(p.hosts[0].skip);
    EXPECT_TRUE(p.hosts[1].skip);
    EXPECT_TRUE(p.hosts[2].skip);
    EXPECT_EQ(p.hosts[1].status, "5.4.6");
    // The more preferred host fails: a deferral for its own reason, not a bounce.
    auto q = plan(dest(Security::Secure, {tlsaFailed("primary.example.org", 10, Outcome::Timeout,
                                                     Security::Indeterminate, "t"),
                                          at("us.example.org", 20, {"127.0.0.1"})}),
                  true, false, Level::Dane, self);
    EXPECT_EQ(q.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(q.status, "4.4.3");
    EXPECT_NE(q.reason.find("us.example.org: an address of this host is one of our own"),
              std::string::npos)
        << q.reason;
}

TEST(PlanLoops, APolicyNextHopNamingUsIsObeyedAndUnverifiedAddressesDoNotCount) {
    auto self = own({{"127.0.0.1", 25}});
    auto d = dest(Security::Secure, {at("127.0.0.1", 0, {"127.0.0.1"})});
    d.nextHop = "[127.0.0.1]:25";
    EXPECT_EQ(plan(d, true, false, Level::Dane, self).action, DeliveryPlan::Action::Deliver);
    // An address whose DNSSEC status is unknown is never used, so it cannot
    // bounce the message either.
    HostInfo h = at("mx.example.org", 10, {"127.0.0.1"});
    h.a.security = Security::Indeterminate;
    auto p = plan(dest(Security::Secure, {h}), true, false, Level::Dane, self);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
}

}  // namespace

// ------------------------------------------------ MTA-STS (RFC 8461) in plan()

namespace {

StsView stsPolicy(sts::Mode mode, std::vector<std::string> mx) {
    StsView v;
    v.policy = sts::Policy{};
    v.policy->mode = mode;
    v.policy->maxAge = 86400;
    v.policy->mx = std::move(mx);
    v.why = "test policy";
    return v;
}

const HostPlan& hostNamed(const DeliveryPlan& p, const std::string& name) {
    for (const auto& h : p.hosts)
        if (h.name == name) return h;
    throw std::runtime_error("no host " + name);
}

}  // namespace

TEST(PlanSts, EnforceUsesOnlyMatchingHostsWithPkixForTheirOwnName) {
    auto d = dest(Security::Insecure,
                  {host("mx1.example.org", 10, Security::Insecure, TlsaStatus::Insecure),
                   host("evil.attacker.test", 5, Security::Insecure, TlsaStatus::Insecure),
                   host("a.b.example.org", 20, Security::Insecure, TlsaStatus::Insecure)});
    auto sts = stsPolicy(sts::Mode::Enforce, {"*.example.org"});
    auto p = plan(d, true, false, policy::Level::Dane, {}, &sts);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver);
    const auto& good = hostNamed(p, "mx1.example.org");
    EXPECT_FALSE(good.skip);
    EXPECT_EQ(good.mode, TlsMode::Verify);
    EXPECT_EQ(good.referenceNames, std::vector<std::string>{"mx1.example.org"});
    EXPECT_EQ(good.sni, "mx1.example.org");
    EXPECT_STREQ(good.sts, "enforced");
    // An MX the attacker put in the (unsigned) MX RRset is never used...
    const auto& evil = hostNamed(p, "evil.attacker.test");
    EXPECT_TRUE(evil.skip);
    EXPECT_EQ(evil.status, "4.7.5");
    EXPECT_NE(evil.why.find("MTA-STS"), std::string::npos) << evil.why;
    // ... nor one two labels under the wildcard (RFC 8461 4.1).
    EXPECT_TRUE(hostNamed(p, "a.b.example.org").skip);
}

TEST(PlanSts, EnforceWithNoMatchingHostDefers475NamingThePolicy) {
    auto d = dest(Security::Insecure,
                  {host("mx.example.org", 10, Security::Insecure, TlsaStatus::Insecure)});
    auto sts = stsPolicy(sts::Mode::Enforce, {"mx.elsewhere.test"});
    auto p = plan(d, true, false, policy::Level::Dane, {}, &sts);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
    EXPECT_NE(p.reason.find("MTA-STS policy of example.org"), std::string::npos) << p.reason;
    EXPECT_NE(p.reason.find("mx.elsewhere.test"), std::string::npos) << p.reason;
}

TEST(PlanSts, DaneDecidesWhereItAppliesAndIsNeverRescued) {
    // DANE host, policy not listing it: DANE decides, MTA-STS stays out.
    auto sts = stsPolicy(sts::Mode::Enforce, {"*.elsewhere.test"});
    auto p = plan(
        dest(Security::Secure, {host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable)}),
        true, false, policy::Level::Dane, {}, &sts);
    ASSERT_EQ(p.action, DeliveryPlan::Action::Deliver);
    EXPECT_EQ(p.hosts[0].mode, TlsMode::Dane);
    EXPECT_STREQ(p.hosts[0].sts, "none");
    // TLSA lookup failed (bogus): skipped, and a policy listing the host
    // does not bring it back (RFC 8461 2).
    auto ok = stsPolicy(sts::Mode::Enforce, {"mx.example.org"});
    auto q = plan(
        dest(Security::Secure, {host("mx.example.org", 10, Security::Secure, TlsaStatus::Failed)}),
        true, false, policy::Level::Dane, {}, &ok);
    EXPECT_EQ(q.action, DeliveryPlan::Action::Defer);
    EXPECT_TRUE(q.hosts[0].skip);
    EXPECT_STREQ(q.hosts[0].sts, "none");
    // TLSA present but none usable: DANE's mandatory TLS, not MTA-STS's PKIX.
    auto r = plan(dest(Security::Secure,
                       {host("mx.example.org", 10, Security::Secure, TlsaStatus::NoneUsable)}),
                  true, false, policy::Level::Dane, {}, &sts);
    EXPECT_EQ(r.hosts[0].mode, TlsMode::Mandatory);
    EXPECT_FALSE(r.hosts[0].skip);
    // A host without TLSA in the same DANE domain: MTA-STS applies to it.
    auto mixed =
        plan(dest(Security::Secure,
                  {host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable),
                   host("mx2.example.org", 20, Security::Secure, TlsaStatus::SecurelyAbsent)}),
             true, false, policy::Level::Dane, {}, &sts);
    EXPECT_EQ(hostNamed(mixed, "mx.example.org").mode, TlsMode::Dane);
    EXPECT_TRUE(hostNamed(mixed, "mx2.example.org").skip);
}

TEST(PlanSts, TestingDeliversAsBeforeAndSaysWhatEnforceWouldRefuse) {
    auto d = dest(Security::Insecure,
                  {host("mx.example.org", 10, Security::Insecure, TlsaStatus::Insecure),
                   host("mx.other.test", 20, Security::Insecure, TlsaStatus::Insecure)});
    auto sts = stsPolicy(sts::Mode::Testing, {"mx.example.org"});
    auto p = plan(d, true, false, policy::Level::Dane, {}, &sts);
    const auto& listed = hostNamed(p, "mx.example.org");
    const auto& other = hostNamed(p, "mx.other.test");
    EXPECT_EQ(listed.mode, TlsMode::Opportunistic);
    EXPECT_EQ(other.mode, TlsMode::Opportunistic);
    EXPECT_FALSE(other.skip);
    EXPECT_STREQ(listed.sts, "testing");
    EXPECT_TRUE(listed.stsWould.empty());  // its certificate decides, on the connection
    EXPECT_NE(other.stsWould.find("not an MX host"), std::string::npos);
    // mode none, or no policy at all: nothing changes.
    StsView nothing;
    const StsView* nothingPtr = &nothing;
    for (const StsView* v : {static_cast<const StsView*>(nullptr), nothingPtr}) {
        auto q = plan(d, true, false, policy::Level::Dane, {}, v);
        EXPECT_EQ(q.hosts[0].mode, TlsMode::Opportunistic);
        EXPECT_STREQ(q.hosts[0].sts, "none");
    }
    auto none = stsPolicy(sts::Mode::None, {});
    EXPECT_STREQ(plan(d, true, false, policy::Level::Dane, {}, &none).hosts[0].sts, "none");
}

// A policy that cannot be known (its cache file unreadable) may be an
// enforce policy: the hosts DANE does not cover wait, DANE's are used.
TEST(PlanSts, AnUnknownPolicySkipsTheHostsDaneDoesNotCover) {
    StsView unknown;
    unknown.unknown = true;
    unknown.why = "MTA-STS cache unreadable: open: I/O error";
    auto d = dest(Security::Insecure,
                  {host("mx.example.org", 10, Security::Insecure, TlsaStatus::Insecure)});
    auto p = plan(d, true, false, policy::Level::Dane, {}, &unknown);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
    EXPECT_NE(p.reason.find("cannot be known"), std::string::npos) << p.reason;
    auto mixed =
        plan(dest(Security::Secure,
                  {host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable),
                   host("mx2.example.org", 20, Security::Secure, TlsaStatus::SecurelyAbsent)}),
             true, false, policy::Level::Dane, {}, &unknown);
    EXPECT_EQ(mixed.action, DeliveryPlan::Action::Deliver);
    EXPECT_EQ(hostNamed(mixed, "mx.example.org").mode, TlsMode::Dane);
    EXPECT_TRUE(hostNamed(mixed, "mx2.example.org").skip);
    // The operator's lowering still lowers.
    EXPECT_EQ(plan(d, true, false, policy::Level::May, {}, &unknown).action,
              DeliveryPlan::Action::Deliver);
}

// The request under an enforce policy: PKIX for the MX name, stsEnforced;
// a trust store the operator named for the destination (a private CA) is
// never replaced by mta_sts.trust_store (that would trust every public CA
// where the operator trusted one).
TEST(PlanSts, TheRequestKeepsTheOperatorsTrustStoreUnderEnforce) {
    HostPlan h;
    h.name = "mx.example.org";
    h.mode = TlsMode::Verify;
    h.sts = "enforced";
    h.referenceNames = {"mx.example.org"};
    policy::Entry pe;
    pe.level = policy::Level::Verify;
    pe.trustStore = "/etc/danerelay/partner-ca.pem";
    ClientRequest req;
    req.mode = TlsMode::Verify;
    req.trustStore = pe.trustStore;
    req.verifyName = "example.org";
    applyStsToRequest(req, h, pe, "/etc/danerelay/mta-sts-ca.pem");
    EXPECT_TRUE(req.stsEnforced);
    EXPECT_EQ(req.verifyName, "mx.example.org");
    EXPECT_EQ(req.trustStore, "/etc/danerelay/partner-ca.pem");
    // No trust store of the destination's own: mta_sts.trust_store.
    policy::Entry plain;
    ClientRequest r2;
    r2.mode = TlsMode::Verify;
    applyStsToRequest(r2, h, plain, "/etc/danerelay/mta-sts-ca.pem");
    EXPECT_TRUE(r2.stsEnforced);
    EXPECT_EQ(r2.trustStore, "/etc/danerelay/mta-sts-ca.pem");
    // Testing: checked and reported, never enforced.
    h.sts = "testing";
    h.mode = TlsMode::Opportunistic;
    ClientRequest r3;
    r3.mode = TlsMode::Opportunistic;
    applyStsToRequest(r3, h, plain, "/etc/danerelay/mta-sts-ca.pem");
    EXPECT_FALSE(r3.stsEnforced);
    EXPECT_EQ(r3.stsTestName, "mx.example.org");
}

TEST(PlanSts, LevelStsRequiresAPolicyWhereDaneDoesNotApply) {
    auto insecure = dest(Security::Insecure,
                         {host("mx.example.org", 10, Security::Insecure, TlsaStatus::Insecure)});
    StsView none;
    none.why = "_mta-sts.example.org TXT: absent";
    auto p = plan(insecure, true, false, policy::Level::Sts, {}, &none);
    EXPECT_EQ(p.action, DeliveryPlan::Action::Defer);
    EXPECT_EQ(p.status, "4.7.5");
    EXPECT_NE(p.reason.find("policy sts"), std::string::npos) << p.reason;
    EXPECT_NE(p.reason.find("absent"), std::string::npos) << p.reason;
    // testing is applied as enforce under level sts
    auto testing = stsPolicy(sts::Mode::Testing, {"mx.example.org"});
    auto q = plan(insecure, true, false, policy::Level::Sts, {}, &testing);
    EXPECT_EQ(q.hosts[0].mode, TlsMode::Verify);
    EXPECT_STREQ(q.hosts[0].sts, "enforced");
    // DANE is enough: no policy needed.
    auto r = plan(
        dest(Security::Secure, {host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable)}),
        true, false, policy::Level::Sts, {}, &none);
    EXPECT_EQ(r.action, DeliveryPlan::Action::Deliver);
    EXPECT_EQ(r.hosts[0].mode, TlsMode::Dane);
}

TEST(PlanSts, LoweringsAndNextHopsLeaveMtaStsOut) {
    auto d = dest(Security::Insecure,
                  {host("mx.example.org", 10, Security::Insecure, TlsaStatus::Insecure)});
    auto sts = stsPolicy(sts::Mode::Enforce, {"mx.elsewhere.test"});
    for (auto level : {policy::Level::May, policy::Level::None}) {
        auto p = plan(d, true, false, level, {}, &sts);
        EXPECT_EQ(p.action, DeliveryPlan::Action::Deliver) << policy::toString(level);
        EXPECT_STREQ(p.hosts[0].sts, "none");
    }
    auto hop = d;
    hop.nextHop = "mx.example.org:25";
    EXPECT_EQ(plan(hop, true, false, policy::Level::Dane, {}, &sts).action,
              DeliveryPlan::Action::Deliver);
    // encrypt keeps the enforce policy's PKIX (stricter), verify too.
    auto ok = stsPolicy(sts::Mode::Enforce, {"mx.example.org"});
    EXPECT_EQ(plan(d, true, false, policy::Level::Encrypt, {}, &ok).hosts[0].mode, TlsMode::Verify);
    auto v = plan(d, true, false, policy::Level::Verify, {}, &ok);
    EXPECT_EQ(v.hosts[0].mode, TlsMode::Verify);
    EXPECT_EQ(v.hosts[0].referenceNames, std::vector<std::string>{"mx.example.org"});
}

TEST(PlanSts, ADaneDestinationNeedsNoMtaStsLookup) {
    auto dane =
        dest(Security::Secure, {host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable),
                                host("mx2.example.org", 20, Security::Secure, TlsaStatus::Failed)});
    EXPECT_FALSE(needsSts(dane));  // every host DANE's: no TXT query
    auto mixed = dane;
    mixed.hosts.push_back(
        host("mx3.example.org", 30, Security::Secure, TlsaStatus::SecurelyAbsent));
    EXPECT_TRUE(needsSts(mixed));
    // An insecure MX RRset: DANE covers nothing, whatever TLSA says.
    EXPECT_TRUE(needsSts(dest(Security::Insecure,
                              {host("mx.example.org", 10, Security::Secure, TlsaStatus::Usable)})));
    EXPECT_FALSE(needsSts(dest(Security::Insecure, {})));  // no host: nothing to apply it to
}
