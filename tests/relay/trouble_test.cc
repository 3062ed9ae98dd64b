// trouble.h: every row of the table that says what a failure means (next
// host, defer 4.4.x / 4.7.5, bounce, expiry 5.4.7, backoff), from
// ClientResults made in the test.
#include "relay/outbound/trouble.h"

#include <gtest/gtest.h>

#include "relay/runtime/config.h"

using namespace danerelay;
using namespace danerelay::relay;
using queue::RcptState;
using F = ClientResult::Failure;
using S = ClientResult::Stage;

namespace {

ClientResult ended(F failure, S stage, std::string error = "x", int code = 0) {
    ClientResult r;
    r.failure = failure;
    r.stage = stage;
    r.error = std::move(error);
    r.replyCode = code;
    return r;
}

ClientResult withDane(ClientResult r) {
    r.tls = "TLS1.3/AES-256-GCM";
    r.peerCheck = ClientResult::PeerCheck::Dane;
    r.peerVerified = true;
    r.dane = "matched 3 1 1 0707";
    return r;
}

TEST(Trouble, PolicyRaisesNoneAndOpportunisticToMandatory) {
    policy::Entry none;
    for (auto m : {TlsMode::None, TlsMode::Opportunistic, TlsMode::Mandatory, TlsMode::Dane,
                   TlsMode::Verify}) {
        EXPECT_EQ(requiredMode(m, none), m) << toString(m);
    }
    auto withPins = none;
    withPins.tlsPins = {{1, 2, 3}};
    auto withVersion = none;
    withVersion.minTlsVersion = 13;
    auto withImplicit = none;
    withImplicit.implicitTls = true;
    auto withAuth = none;
    withAuth.authUser = "u";
    for (const auto& pe : {withPins, withVersion, withImplicit, withAuth}) {
        EXPECT_EQ(requiredMode(TlsMode::None, pe), TlsMode::Mandatory);
        EXPECT_EQ(requiredMode(TlsMode::Opportunistic, pe), TlsMode::Mandatory);
        EXPECT_EQ(requiredMode(TlsMode::Dane, pe), TlsMode::Dane);
        EXPECT_EQ(requiredMode(TlsMode::Verify, pe), TlsMode::Verify);
        EXPECT_EQ(requiredMode(TlsMode::Mandatory, pe), TlsMode::Mandatory);
    }
}

TEST(Trouble, APlanThatDoesNotDeliver) {
    DeliveryPlan p;
    p.action = DeliveryPlan::Action::Bounce;
    EXPECT_EQ(stateOfPlan(p), RcptState::Bounced);
    p.action = DeliveryPlan::Action::Defer;
    EXPECT_EQ(stateOfPlan(p), RcptState::Deferred);
}

TEST(Trouble, ASkippedHostDefersWithItsOwnTemporaryStatusElse475) {
    HostPlan h;
    h.status = "4.4.3";
    EXPECT_EQ(skippedHostStatus(h), "4.4.3");
    h.status = "4.7.5";
    EXPECT_EQ(skippedHostStatus(h), "4.7.5");
    h.status = "5.4.6";  // a loop: never a bounce from here
    EXPECT_EQ(skippedHostStatus(h), "4.7.5");
    h.status = "";
    EXPECT_EQ(skippedHostStatus(h), "4.7.5");
}

TEST(Trouble, FailuresBeforeTheTransactionGoToTheNextHost) {
    struct Row {
        ClientResult r;
        const char* status;
    } rows[] = {
        {ended(F::Network, S::Connect, "connect: Connection refused"), "4.4.1"},
        {ended(F::Timeout, S::Greeting, "timeout in state 1 after 300 s"), "4.4.1"},
        {ended(F::Reply, S::Greeting, "greeting: 554 5.7.1 go away", 554), "4.7.1"},
        {ended(F::Reply, S::Ehlo, "EHLO: 550 no", 550), "4.0.0"},
        {ended(F::Reply, S::Greeting, "greeting: 421 busy", 421), "4.4.1"},
        {ended(F::BadReply, S::Ehlo, "reply too long"), "4.4.1"},
        {ended(F::Tls, S::Handshake, "TLS handshake: error"), "4.4.1"},
        {ended(F::StarttlsNotSupported, S::Ehlo, "STARTTLS not offered"), "4.7.5"},
        {ended(F::DaneFailed, S::Handshake, "DANE authentication failed"), "4.7.5"},
        {ended(F::CertificateNotTrusted, S::Handshake, "certificate verification failed"), "4.7.5"},
        {withDane(ended(F::Reply, S::Auth, "AUTH: 535 5.7.8 bad", 535)), "4.7.8"},
    };
    for (const auto& row : rows) {
        for (auto mode : {TlsMode::Dane, TlsMode::Opportunistic}) {
            auto j = judgeAttempt(mode, row.r, 2);
            EXPECT_TRUE(j.nextHost) << row.r.error;
            EXPECT_TRUE(j.rcpts.empty());
            EXPECT_EQ(j.status, row.status) << row.r.error;
            EXPECT_EQ(j.reason, row.r.error);
        }
    }
}

TEST(Trouble, PinsAndVersionAre475OnlyAfterADaneOrPkixCheck) {
    for (auto f : {F::PinMismatch, F::TlsVersionTooLow}) {
        auto r = ended(f, S::Handshake);
        r.tls = "TLS1.2/AES-128-GCM";
        EXPECT_FALSE(authenticationFailed(r));
        EXPECT_EQ(judgeAttempt(TlsMode::Mandatory, r, 1).status, "4.4.1");
        r.peerCheck = ClientResult::PeerCheck::Dane;
        EXPECT_TRUE(authenticationFailed(r));
        EXPECT_EQ(judgeAttempt(TlsMode::Dane, r, 1).status, "4.7.5");
        r.peerCheck = ClientResult::PeerCheck::Pkix;
        EXPECT_EQ(judgeAttempt(TlsMode::Verify, r, 1).status, "4.7.5");
    }
}

TEST(Trouble, AFiveHundredInTheTransactionBouncesWhereTlsWasMet) {
    for (auto r : {withDane(ended(F::Reply, S::Mail, "MAIL FROM: 550 5.7.1 refused", 550)),
                   withDane(ended(F::Refused, S::Mail,
                                  "5.6.7 the server does not support "
                                  "SMTPUTF8, which this message needs")),
                   withDane(ended(F::Refused, S::Body, "5.6.0 the message has a bare LF"))}) {
        auto j = judgeAttempt(TlsMode::Dane, r, 2);
        ASSERT_FALSE(j.nextHost) << r.error;
        ASSERT_EQ(j.rcpts.size(), 2u);
        EXPECT_EQ(j.rcpts[1].state, RcptState::Bounced);
        EXPECT_EQ(j.rcpts[1].status, statusOf(550, r.error, "5.0.0"));
        EXPECT_EQ(j.rcpts[1].text, r.error);
        // Not met: deferred, softened, and said so.
        r.peerVerified = false;
        j = judgeAttempt(TlsMode::Dane, r, 2);
        EXPECT_TRUE(j.nextHost);
        EXPECT_EQ(j.status[0], '4');
        EXPECT_EQ(j.reason, r.error +
                                " (not bounced: the server did not meet the required TLS, "
                                "dane)");
    }
    // A 4xx in the transaction: next host, 4.4.1 (no code is taken from it).
    auto t = withDane(ended(F::Reply, S::Rcpt, "MAIL FROM: 451 4.3.0 later", 451));
    EXPECT_EQ(judgeAttempt(TlsMode::Dane, t, 1).status, "4.4.1");
}

TEST(Trouble, EachRecipientsReplyAfterTheTransaction) {
    auto r = withDane(ended(F::None, S::Done, ""));
    r.rcpts = {{250, "250 2.1.5 ok"},
               {550, "550 5.1.1 unknown"},
               {451, "451 4.3.0 later"},
               {0, ""},
               {250, "250 ok"}};
    auto j = judgeAttempt(TlsMode::Dane, r, 6);
    ASSERT_FALSE(j.nextHost);
    ASSERT_EQ(j.rcpts.size(), 6u);
    EXPECT_EQ(j.rcpts[0].state, RcptState::Delivered);
    EXPECT_EQ(j.rcpts[0].status, "2.1.5");
    EXPECT_EQ(j.rcpts[1].state, RcptState::Bounced);
    EXPECT_EQ(j.rcpts[1].status, "5.1.1");
    EXPECT_EQ(j.rcpts[2].state, RcptState::Deferred);
    EXPECT_EQ(j.rcpts[2].status, "4.3.0");
    EXPECT_EQ(j.rcpts[3].text, "no reply to RCPT");
    EXPECT_EQ(j.rcpts[3].status, "4.0.0");
    EXPECT_EQ(j.rcpts[4].status, "2.0.0");
    EXPECT_EQ(j.rcpts[5].text, "no reply to RCPT");  // more recipients than replies
    r.peerVerified = false;
    j = judgeAttempt(TlsMode::Dane, r, 2);
    EXPECT_EQ(j.rcpts[1].state, RcptState::Deferred);
    EXPECT_EQ(j.rcpts[1].status, "4.1.1");
    EXPECT_EQ(j.rcpts[1].text,
              "550 5.1.1 unknown (not bounced: the server did not meet the required TLS, dane)");
}

TEST(Trouble, SettleDefersWithBackoffThenExpires547) {
    DeliveryConfig d;
    d.retryInitial = 300;
    d.retryMax = 3600;
    d.maxQueueLifetime = 86400;
    const int64_t arrival = 1'700'000'000;
    RcptOutcome o{RcptState::Deferred, "4.4.1", "connect: refused", "mx.example"};
    auto s = settle(o, 1, arrival, arrival + 10, d);
    EXPECT_EQ(s.state, RcptState::Deferred);
    EXPECT_EQ(s.lastError, "4.4.1 connect: refused");
    ASSERT_TRUE(s.nextAttempt);
    EXPECT_EQ(*s.nextAttempt, arrival + 10 + 300);
    EXPECT_FALSE(s.dsnStatus);
    EXPECT_EQ(*settle(o, 3, arrival, arrival, d).nextAttempt, arrival + 1200);
    EXPECT_EQ(*settle(o, 30, arrival, arrival, d).nextAttempt, arrival + 3600);
    // One second short of the lifetime: still deferred; at it: bounced.
    EXPECT_EQ(settle(o, 9, arrival, arrival + 86399, d).state, RcptState::Deferred);
    s = settle(o, 9, arrival, arrival + 86400, d);
    EXPECT_EQ(s.state, RcptState::Bounced);
    EXPECT_EQ(s.lastError, "5.4.7 delivery time expired; last error: 4.4.1 connect: refused");
    EXPECT_FALSE(s.nextAttempt);
    EXPECT_EQ(s.dsnStatus, "5.4.7");
    EXPECT_EQ(s.dsnText, s.lastError);
}

// RFC 8689: a REQUIRETLS message and a server that does not meet it (not
// DANE-verified, or no REQUIRETLS offered): nothing was sent, so never a
// bounce there and then: the next host, 4.7.30; at the queue lifetime the
// bounce says 5.7.30, not a plain 5.4.7 timeout.
TEST(Trouble, RequireTlsNotMetWaitsThenBounces5730) {
    for (auto r : {ended(F::RequireTls, S::Mail, "REQUIRETLS: the server does not offer it"),
                   withDane(ended(F::RequireTls, S::Mail, "REQUIRETLS: not offered"))}) {
        EXPECT_FALSE(r.permanent());
        auto j = judgeAttempt(TlsMode::Dane, r, 2);
        EXPECT_TRUE(j.nextHost);
        EXPECT_EQ(j.status, "4.7.30");
        EXPECT_TRUE(j.rcpts.empty());
        EXPECT_EQ(j.reason, r.error);
    }
    DeliveryConfig d;
    d.maxQueueLifetime = 100;
    RcptOutcome o{RcptState::Deferred, "4.7.30", "REQUIRETLS: not offered", "mx.example"};
    EXPECT_EQ(settle(o, 1, 1000, 1050, d).state, RcptState::Deferred);
    auto s = settle(o, 5, 1000, 1100, d);
    EXPECT_EQ(s.state, RcptState::Bounced);
    EXPECT_EQ(s.dsnStatus, "5.7.30");
    EXPECT_EQ(s.lastError,
              "5.7.30 REQUIRETLS support required: delivery time expired; last error: 4.7.30 "
              "REQUIRETLS: not offered");
}

TEST(Trouble, SettleBouncesAndDelivers) {
    DeliveryConfig d;
    RcptOutcome b{RcptState::Bounced, "5.1.1", "550 5.1.1 unknown", "mx"};
    auto s = settle(b, 1, 0, 1'000'000'000, d);  // never expiry for a bounce
    EXPECT_EQ(s.state, RcptState::Bounced);
    EXPECT_EQ(s.dsnStatus, "5.1.1");
    EXPECT_EQ(s.dsnText, "5.1.1 550 5.1.1 unknown");
    b.status.clear();
    EXPECT_EQ(settle(b, 1, 0, 0, d).dsnStatus, "5.0.0");
    RcptOutcome ok{RcptState::Delivered, "2.0.0", "250 ok", "mx"};
    s = settle(ok, 1, 0, 1'000'000'000, d);
    EXPECT_EQ(s.state, RcptState::Delivered);
    EXPECT_FALSE(s.dsnStatus);
    EXPECT_FALSE(s.nextAttempt);
}

TEST(Trouble, BackoffDoublesUpToTheCap) {
    DeliveryConfig d;
    d.retryInitial = 60;
    d.retryMax = 1000;
    EXPECT_EQ(backoff(d, 0), 60);
    EXPECT_EQ(backoff(d, 1), 60);
    EXPECT_EQ(backoff(d, 2), 120);
    EXPECT_EQ(backoff(d, 5), 960);
    EXPECT_EQ(backoff(d, 6), 1000);
    EXPECT_EQ(backoff(d, 1000), 1000);
}

}  // namespace
