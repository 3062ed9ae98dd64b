// Security review of b7abd51 (dns/response.*, dns/validator.cc): each test
// reproduces one defect an on-path attacker (between the relay and its
// recursive resolver) can use. Every test here FAILS on the reviewed code.
// tests/dns/test_zone.h signs a zone "t." whose DNSKEY is the trust anchor.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "dns/answer.h"
#include "dns/response.h"
#include "dns/validator.h"
#include "tests/dns/test_zone.h"

using namespace danerelay;
using namespace danerelay::dns;
using danerelay::dns::testing::TestZone;

namespace {

// An RRSIG no key made: any signer name, garbage signature.
std::string junkSig(const std::string& owner, const std::string& covered, unsigned labels,
                    const std::string& signer) {
    return owner + " 300 IN RRSIG " + covered + " 13 " + std::to_string(labels) +
           " 300 20300101000000 20200101000000 4242 " + signer +
           " AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
           "==";
}

class ReviewTest : public danerelay::dns::testing::SignedZoneTest {};

// ---------------------------------------------------------------- finding 1
// The signer of an RRset is read from its first RRSIG, and walk(signer)
// answers Insecure for any name outside the anchor's zone, before a single
// signature is checked. "." is an ancestor of every name, so with a trust
// anchor below the root (a private/lab anchor, dns.trust_anchor is "DS or
// DNSKEY records of one zone"), one junk RRSIG with signer "." turns any
// forged RRset inside the anchored zone into an Insecure answer.

TEST_F(ReviewTest, JunkRootSignerMakesForgedTlsaInsecure) {
    // The attacker's TLSA, "signed" by the root with garbage.
    auto wire = TestZone::packet(
        "_25._tcp.mx.t.", "TLSA", LDNS_RCODE_NOERROR,
        {"_25._tcp.mx.t. 300 IN TLSA " + kEvilTlsa, junkSig("_25._tcp.mx.t.", "TLSA", 4, ".")});
    Verdict v = check(wire, "_25._tcp.mx.t.", kTypeTlsa);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
    Answer a = answer(wire, "_25._tcp.mx.t.", kTypeTlsa);
    EXPECT_TRUE(a.tlsa.empty()) << "the attacker's TLSA reached delivery as "
                                << toString(a.security);
}

TEST_F(ReviewTest, JunkRootSignerRedirectsASignedDomainsMx) {
    // t. is signed; the attacker replaces its MX RRset and gets it accepted
    // as Insecure: delivery goes (opportunistic TLS, no DANE) to its host.
    auto wire = TestZone::packet("t.", "MX", LDNS_RCODE_NOERROR,
                                 {"t. 300 IN MX 0 mx.evil.example.", junkSig("t.", "MX", 1, ".")});
    Verdict v = check(wire, "t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
    Answer a = answer(wire, "t.", kTypeMx);
    for (const auto& m : a.mx) EXPECT_NE(m.host, "mx.evil.example") << toString(a.security);
}

TEST_F(ReviewTest, JunkRootSignerMakesForgedDenialInsecure) {
    // A TLSA lookup in the signed zone denied by an unsigned SOA with a
    // junk RRSIG by ".": DANE silently off (downgrade).
    auto wire = TestZone::packet(
        "_25._tcp.mx.t.", "TLSA", LDNS_RCODE_NXDOMAIN, {},
        {"t. 300 IN SOA ns.t. h.t. 1 7200 3600 1209600 300", junkSig("t.", "SOA", 1, ".")});
    Verdict v = check(wire, "_25._tcp.mx.t.", kTypeTlsa);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
}

// ---------------------------------------------------------------- finding 2
// The Answer's TTL (what the resolver caches, up to maxTtl 3600 s) is the
// records' and RRSIG original TTL, never clamped to the RRSIG expiration
// (RFC 4035 5.3.3). A replayed RRset whose signatures expire in seconds is
// used as Secure for up to an hour after they expired.

TEST_F(ReviewTest, AnswerTtlOutlivesTheRrsigExpiration) {
    auto wire = TestZone::packet("_25._tcp.mx.t.", "TLSA", LDNS_RCODE_NOERROR,
                                 zone_.sign({"_25._tcp.mx.t. 3600 IN TLSA " + kGoodTlsa}));
    // TestZone signs with expiration kNow + 86400: validate 10 s before it.
    int64_t now = TestZone::kNow + 86400 - 10;
    Answer a = answer(wire, "_25._tcp.mx.t.", kTypeTlsa, now);
    ASSERT_EQ(a.security, Security::Secure) << a.detail;
    EXPECT_LE(a.ttl, 10u) << "cached " << a.ttl << " s, the RRSIG expires in 10 s";
}

// ---------------------------------------------------------------- finding 3
// The negative TTL is taken from whatever SOA sits in the authority section,
// signed or not, and the TTLs of the NSEC records that are the actual proof
// are ignored: the attacker chooses how long a Secure denial is cached.

TEST_F(ReviewTest, NegativeTtlComesFromAnUnsignedSoa) {
    // NODATA for t. TLSA, proven by t.'s signed NSEC (TTL 300); the SOA is
    // unsigned with TTL and minimum of a day.
    auto nsec = zone_.sign({"t. 300 IN NSEC mx.t. SOA NS MX DNSKEY RRSIG NSEC"});
    auto wire =
        TestZone::packet("t.", "TLSA", LDNS_RCODE_NOERROR, {},
                         plus(nsec, {"t. 86400 IN SOA ns.t. h.t. 1 7200 3600 1209600 86400"}));
    Answer a = answer(wire, "t.", kTypeTlsa);
    ASSERT_EQ(a.security, Security::Secure) << a.detail;
    ASSERT_EQ(a.outcome, Outcome::NoData);
    EXPECT_LE(a.ttl, 300u) << "negative TTL chosen by an unsigned SOA";
}

// ---------------------------------------------------------------- finding 4
// Name ancestry is decided on presentation text (isAtOrBelow): "x\.t." is
// the single label "x.t" under the root, yet ends in ".t.". So the key of
// t. signs Secure answers for names outside its zone (and outside the
// trust anchor), and the same textual test drives cutAbove, the empty
// non-terminal proof and the "denial signed by an ancestor" check.

TEST_F(ReviewTest, SignerMustBeARealAncestorNotATextualSuffix) {
    auto wire = TestZone::packet("x\\.t.", "A", LDNS_RCODE_NOERROR,
                                 zone_.sign({"x\\.t. 300 IN A 192.0.2.66"}));
    Verdict v = check(wire, "x\\.t.", kTypeA);
    EXPECT_NE(v.security, Security::Secure)
        << "t.'s key vouched for a name in the root zone: " << v.reason;
}

TEST_F(ReviewTest, EscapedDotNextNameIsNoEmptyNonTerminal) {
    // Zone t. holds 9.t. and "b.a".t. (one label with a dot in it), so a.t.
    // does not exist: the NSEC 9.t. -> b\.a.t. covers it. The attacker
    // answers a.t. MX with NOERROR/NODATA using that NSEC; its next name
    // "looks" below a.t. in text, so it passes for an empty non-terminal,
    // and a non-existent domain becomes a Secure NODATA (implicit MX).
    auto nsec = zone_.sign({"9.t. 300 IN NSEC b\\.a.t. A RRSIG NSEC"});
    auto wire = TestZone::packet("a.t.", "MX", LDNS_RCODE_NOERROR, {}, nsec);
    Verdict v = check(wire, "a.t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
}

// ---------------------------------------------------------------- finding 5
// A wildcard expansion proven with NSEC3 is accepted when the NSEC3 that
// covers the next closer name has the opt-out flag. An opt-out span proves
// nothing about unsigned delegations inside it (RFC 5155 9.2): the name may
// be an insecure child's. The attacker answers for a name in an unsigned
// delegation of t. with t.'s own wildcard data, and it is Secure.

TEST_F(ReviewTest, Nsec3OptOutSpanDoesNotProveAWildcardExpansion) {
    // Zone t. (NSEC3, opt-out): t. and *.t. in the chain; c.t. is an
    // unsigned delegation the opt-out chain leaves out.
    std::vector<std::pair<std::string, std::string>> names = {
        {TestZone::hash("t."), "SOA NS DNSKEY RRSIG NSEC3PARAM"},
        {TestZone::hash("*.t."), "MX RRSIG"}};
    std::sort(names.begin(), names.end());
    std::vector<std::string> chain;
    for (size_t i = 0; i < names.size(); ++i) {
        auto rrs = zone_.sign({names[i].first + ".t. 300 IN NSEC3 1 1 0 - " +
                               names[(i + 1) % names.size()].first + " " + names[i].second});
        chain.insert(chain.end(), rrs.begin(), rrs.end());
    }
    auto wire = TestZone::packet("c.t.", "MX", LDNS_RCODE_NOERROR,
                                 zone_.sign({"*.t. 300 IN MX 10 mx.t."}, "c.t."), chain);
    Verdict v = check(wire, "c.t.", kTypeMx);
    EXPECT_NE(v.security, Security::Secure)
        << "c.t. may be an unsigned delegation in the opt-out span: " << v.reason;
}

// ---------------------------------------------------------------- finding 6
// rrsetsOf groups records with a linear search per record: quadratic in
// the record count. readResponse runs on the resolver's event loop
// (Query::handle), so one forged 64 KB TCP answer (after a forged TC bit)
// of ~5300 empty records of distinct types stalls every connection of the
// daemon for ~100 ms; answered to each query, the loop spends its time here.
// (A timing bound, generous: linear grouping takes ~1-2 ms.)

TEST_F(ReviewTest, HugeAnswerSectionIsGroupedInLinearTime) {
    std::vector<std::string> ans = zone_.sign({"t. 300 IN A 192.0.2.1"});
    for (int i = 0; i < 5300; ++i)
        ans.push_back("t. 300 IN TYPE" + std::to_string(1000 + i) + " \\# 0");
    auto big = TestZone::packet("t.", "A", LDNS_RCODE_NOERROR, ans);
    ASSERT_LE(big.size(), 65535u);
    // Fixed: the work per response is capped (no timing asserted here; a
    // section over the cap is refused before any grouping).
    auto r = readResponse(big.data(), big.size(), "t.", kTypeA);
    EXPECT_EQ(r->outcome, Outcome::Error);
    EXPECT_NE(r->error.find("records in one section"), std::string::npos) << r->error;
    EXPECT_TRUE(r->answer.empty());
    // Under the record cap, distinct RRsets are capped too; the rest are strays.
    std::vector<std::string> many = zone_.sign({"t. 300 IN A 192.0.2.1"});
    for (int i = 0; i < 300; ++i)
        many.push_back("t. 300 IN TYPE" + std::to_string(1000 + i) + " \\# 0");
    auto mid = TestZone::packet("t.", "A", LDNS_RCODE_NOERROR, many);
    auto m = readResponse(mid.data(), mid.size(), "t.", kTypeA);
    EXPECT_LE(m->answer.size(), kMaxRrsetsPerSection);
    EXPECT_NE(validator_->validate(*m, TestZone::kNow).security, Security::Secure);
}

}  // namespace
