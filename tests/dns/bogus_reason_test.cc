// Unit tests for the validator's BogusReason: each kind of broken answer
// an attacker (or a broken zone) can produce is classified as what it is,
// while the text that is logged stays exactly what it was before the enum
// (e2e log assertions depend on it). Built with tests/dns/test_zone.h, so
// every case is a genuinely signed part, edited.
#include <gtest/gtest.h>

#include "dns/answer.h"
#include "dns/validator.h"
#include "tests/dns/test_zone.h"

using namespace danerelay;
using namespace danerelay::dns;
using danerelay::dns::testing::TestZone;

namespace {

class BogusReasonTest : public danerelay::dns::testing::SignedZoneTest {
  protected:
    std::vector<uint8_t> signedMx() const {
        return TestZone::packet("t.", "MX", LDNS_RCODE_NOERROR,
                                zone_.sign({"t. 300 IN MX 10 mx.t."}));
    }
    static std::string ldnsText(ldns_status s) { return ldns_get_errorstr_by_id(s); }
};

TEST_F(BogusReasonTest, SecureAnswersCarryNoBogusReason) {
    Verdict v = check(signedMx(), "t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Secure) << v.reason;
    EXPECT_EQ(v.bogus, BogusReason::None);
    EXPECT_EQ(v.reason, "signed by t.");
}

TEST_F(BogusReasonTest, MissingRrsigIsNoRrsig) {
    auto wire = TestZone::packet("t.", "MX", LDNS_RCODE_NOERROR, {"t. 300 IN MX 10 mx.t."});
    Verdict v = check(wire, "t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_EQ(v.bogus, BogusReason::NoRrsig) << toString(v.bogus);
    EXPECT_EQ(v.reason, "t. MX: no RRSIG in the signed zone t.");
}

TEST_F(BogusReasonTest, ExpiredAndNotYetValidSignaturesSayWhich) {
    // TestZone signs for [kNow - 1 h, kNow + 1 d]; its DNSKEY set too, so
    // the anchor's own key set is the first thing to fail.
    Verdict late = check(signedMx(), "t.", kTypeMx, TestZone::kNow + 2 * 86400);
    EXPECT_EQ(late.security, Security::Bogus);
    EXPECT_EQ(late.bogus, BogusReason::SignatureExpired) << toString(late.bogus);
    EXPECT_EQ(late.reason, "DNSKEY set of t.: " + ldnsText(LDNS_STATUS_CRYPTO_SIG_EXPIRED));
    SetUp();  // a fresh validator: the key cache is not for travelling back in time
    Verdict early = check(signedMx(), "t.", kTypeMx, TestZone::kNow - 2 * 3600);
    EXPECT_EQ(early.security, Security::Bogus);
    EXPECT_EQ(early.bogus, BogusReason::SignatureNotYetValid) << toString(early.bogus);
    EXPECT_EQ(early.reason, "DNSKEY set of t.: " + ldnsText(LDNS_STATUS_CRYPTO_SIG_NOT_INCEPTED));
}

TEST_F(BogusReasonTest, ForgedDataUnderAGenuineRrsigIsNoValidRrsig) {
    auto sig = zone_.sign({"t. 300 IN MX 10 mx.t."});
    sig[0] = "t. 300 IN MX 10 mx.evil.example.";  // the RRSIG stays the genuine one
    auto wire = TestZone::packet("t.", "MX", LDNS_RCODE_NOERROR, sig);
    Verdict v = check(wire, "t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_EQ(v.bogus, BogusReason::NoValidRrsig) << toString(v.bogus);
    EXPECT_EQ(v.reason, "t. MX: " + ldnsText(LDNS_STATUS_CRYPTO_BOGUS));
}

TEST_F(BogusReasonTest, AnotherZonesSignatureIsWrongSigner) {
    TestZone other("u.");
    auto wire =
        TestZone::packet("t.", "MX", LDNS_RCODE_NOERROR, other.sign({"t. 300 IN MX 10 mx.t."}));
    Verdict v = check(wire, "t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_EQ(v.bogus, BogusReason::WrongSigner) << toString(v.bogus);
    EXPECT_EQ(v.reason, "t. MX: signed by u., not an ancestor");
}

TEST_F(BogusReasonTest, DenialWithoutNsecIsNoDenial) {
    auto wire = TestZone::packet("x.t.", "MX", LDNS_RCODE_NXDOMAIN, {},
                                 zone_.sign({"t. 300 IN SOA ns.t. host.t. 1 3600 600 86400 300"}));
    Verdict v = check(wire, "x.t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_EQ(v.bogus, BogusReason::NoDenial) << toString(v.bogus);
    EXPECT_EQ(v.reason, "denial of x.t. MX: no signed NSEC or NSEC3 records");
}

TEST_F(BogusReasonTest, NsecThatDoesNotCoverTheNameIsInvalidDenial) {
    // A genuine NSEC from t. to a.t.: it says nothing about x.t.
    auto wire =
        TestZone::packet("x.t.", "MX", LDNS_RCODE_NXDOMAIN, {},
                         plus(zone_.sign({"t. 300 IN SOA ns.t. host.t. 1 3600 600 86400 300"}),
                              zone_.sign({"t. 300 IN NSEC a.t. SOA MX RRSIG NSEC DNSKEY"})));
    Verdict v = check(wire, "x.t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_EQ(v.bogus, BogusReason::InvalidDenial) << toString(v.bogus);
    EXPECT_EQ(v.reason, "denial of x.t. MX: no NSEC covers x.t.");
}

TEST_F(BogusReasonTest, WildcardWithoutItsProofIsInvalidDenial) {
    auto wire = TestZone::packet("x.t.", "MX", LDNS_RCODE_NOERROR,
                                 zone_.sign({"*.t. 300 IN MX 10 mx.t."}, "x.t."));
    Verdict v = check(wire, "x.t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_EQ(v.bogus, BogusReason::InvalidDenial) << toString(v.bogus);
    EXPECT_EQ(v.reason, "x.t. MX: wildcard answer without proof that the name does not exist");
}

TEST_F(BogusReasonTest, RecordsBesideASecureAnswerAreUnexpectedRecords) {
    auto wire = TestZone::packet(
        "t.", "MX", LDNS_RCODE_NOERROR,
        plus(zone_.sign({"t. 300 IN MX 10 mx.t."}), {"t. 300 CH MX 0 mx.evil.example."}));
    Verdict v = check(wire, "t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_EQ(v.bogus, BogusReason::UnexpectedRecords) << toString(v.bogus);
    EXPECT_NE(v.reason.find("CH MX"), std::string::npos) << v.reason;
}

TEST_F(BogusReasonTest, GarbageIsNotAnAnswer) {
    std::vector<uint8_t> junk{1, 2, 3};
    Verdict v = check(junk, "t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_EQ(v.bogus, BogusReason::NotAnAnswer) << toString(v.bogus);
    EXPECT_EQ(v.reason, "malformed response");
}

TEST_F(BogusReasonTest, TheChainDepthCapIsAWorkLimit) {
    ValidatorLimits shallow;
    shallow.maxChainDepth = 1;
    auto v = Validator::create(
        zone_.anchor(), "test anchor",
        [this](const std::string& name, uint16_t type) -> Result<std::vector<uint8_t>> {
            if (name == "t." && type == 48) return zone_.dnskeyAnswer();
            return Error::temporary("no answer for " + name);
        },
        shallow);
    ASSERT_TRUE(v) << v.error().message;
    auto wire = TestZone::packet("a.b.t.", "MX", LDNS_RCODE_NOERROR, {"a.b.t. 300 IN MX 10 mx.t."});
    Verdict verdict = (*v)->validate(wire.data(), wire.size(), "a.b.t.", kTypeMx, TestZone::kNow);
    EXPECT_EQ(verdict.security, Security::Bogus);
    EXPECT_EQ(verdict.bogus, BogusReason::WorkLimit) << toString(verdict.bogus);
    EXPECT_EQ(verdict.reason, "a.b.t.: more than 1 labels below the anchor");
}

TEST(BogusReasonNames, EveryReasonHasAName) {
    for (int i = 0; i <= static_cast<int>(BogusReason::WorkLimit); ++i)
        EXPECT_STRNE(toString(static_cast<BogusReason>(i)), "?") << i;
}

}  // namespace
