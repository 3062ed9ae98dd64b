// Forged answers an on-path attacker can assemble from genuinely signed
// parts (tests/dns/test_zone.h signs a zone "t." whose DNSKEY is the
// anchor): each must fail validation, and none of the attacker's records
// may reach the Answer that delivery acts on. These use only the public API
// (Validator::validate on the wire, parseResponse), and each one passed as
// Secure before the single reader (dns/response.h) and strict NSEC cover.
#include <gtest/gtest.h>

#include "dns/answer.h"
#include "dns/validator.h"
#include "tests/dns/lab_answers.h"
#include "tests/dns/test_zone.h"

using namespace danerelay;
using namespace danerelay::dns;
using danerelay::dns::testing::TestZone;

namespace {

class ForgeryTest : public danerelay::dns::testing::SignedZoneTest {};

TEST_F(ForgeryTest, TheSignedAnswersThemselvesAreSecure) {
    auto tlsa = TestZone::packet("_25._tcp.mx.t.", "TLSA", LDNS_RCODE_NOERROR,
                                 zone_.sign({"_25._tcp.mx.t. 300 IN TLSA " + kGoodTlsa}));
    EXPECT_EQ(check(tlsa, "_25._tcp.mx.t.", kTypeTlsa).security, Security::Secure);
    auto mx =
        TestZone::packet("t.", "MX", LDNS_RCODE_NOERROR, zone_.sign({"t. 300 IN MX 10 mx.t."}));
    EXPECT_EQ(check(mx, "t.", kTypeMx).security, Security::Secure);
}

TEST_F(ForgeryTest, UnsignedCnameBesideSignedTlsaIsNotFollowed) {
    // The genuine signed TLSA RRset, and beside it an unsigned CNAME to a
    // name the attacker controls, with the attacker's TLSA there.
    auto wire = TestZone::packet("_25._tcp.mx.t.", "TLSA", LDNS_RCODE_NOERROR,
                                 plus(zone_.sign({"_25._tcp.mx.t. 300 IN TLSA " + kGoodTlsa}),
                                      {"_25._tcp.mx.t. 300 IN CNAME evil.example.",
                                       "evil.example. 300 IN TLSA " + kEvilTlsa}),
                                 {}, true);
    Verdict v = check(wire, "_25._tcp.mx.t.", kTypeTlsa);
    EXPECT_NE(v.security, Security::Secure) << v.reason;
    // Resolver mode, the AD bit from a trusted resolver: the same reading.
    Answer a = parseResponse(wire.data(), wire.size(), "_25._tcp.mx.t", kTypeTlsa, true);
    for (const auto& t : a.tlsa) EXPECT_NE(tlsaToString(t), kEvilTlsa);
    EXPECT_NE(a.security, Security::Secure);
}

TEST_F(ForgeryTest, UnsignedCnameBesideSignedMxIsNotFollowed) {
    auto wire = TestZone::packet(
        "t.", "MX", LDNS_RCODE_NOERROR,
        plus(zone_.sign({"t. 300 IN MX 10 mx.t."}),
             {"t. 300 IN CNAME evil.example.", "evil.example. 300 IN MX 0 mx.evil.example."}),
        {}, true);
    EXPECT_NE(check(wire, "t.", kTypeMx).security, Security::Secure);
    Answer a = parseResponse(wire.data(), wire.size(), "t", kTypeMx, true);
    for (const auto& m : a.mx) EXPECT_NE(m.host, "mx.evil.example");
}

TEST_F(ForgeryTest, ClassChRecordsBesideSecureDataAreBogus) {
    for (auto [qtype, qt, good, evil] :
         std::vector<std::tuple<std::string, uint16_t, std::string, std::string>>{
             {"MX", kTypeMx, "t. 300 IN MX 10 mx.t.", "t. 300 CH MX 0 mx.evil.example."},
             {"A", kTypeA, "t. 300 IN A 192.0.2.1", "t. 300 CH A 192.0.2.66"},
             {"TLSA", kTypeTlsa, "t. 300 IN TLSA " + kGoodTlsa, "t. 300 CH TLSA " + kEvilTlsa}}) {
        auto wire = TestZone::packet("t.", qtype, LDNS_RCODE_NOERROR,
                                     plus(zone_.sign({good}), {evil}), {}, true);
        Verdict v = check(wire, "t.", qt);
        EXPECT_EQ(v.security, Security::Bogus) << qtype << ": " << v.reason;
        Answer a = parseResponse(wire.data(), wire.size(), "t", qt, true);
        EXPECT_NE(a.security, Security::Secure) << qtype;
        for (const auto& m : a.mx) EXPECT_NE(m.host, "mx.evil.example");
        for (const auto& x : a.addresses) EXPECT_NE(x, "192.0.2.66");
        for (const auto& t : a.tlsa) EXPECT_NE(tlsaToString(t), kEvilTlsa);
    }
}

TEST_F(ForgeryTest, WildcardExpansionOntoANameThatExistsIsBogus) {
    // Zone: t., *.w.t. (MX 10 mx.t.), x.w.t. (MX 20 real.t.). NSEC chain
    // t. -> *.w.t. -> x.w.t. -> t. The attacker answers x.w.t. MX with the
    // wildcard's MX expanded there, "proven" by x.w.t.'s own NSEC.
    auto expanded = zone_.sign({"*.w.t. 300 IN MX 10 mx.t."}, "x.w.t.");
    auto nsecOfX = zone_.sign({"x.w.t. 300 IN NSEC t. MX RRSIG NSEC"});
    auto wire = TestZone::packet("x.w.t.", "MX", LDNS_RCODE_NOERROR, expanded, nsecOfX);
    Verdict v = check(wire, "x.w.t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
    // The genuine expansion, onto a name that does not exist, is secure:
    // the NSEC *.w.t. -> x.w.t. covers a.w.t.
    auto genuine = TestZone::packet("a.w.t.", "MX", LDNS_RCODE_NOERROR,
                                    zone_.sign({"*.w.t. 300 IN MX 10 mx.t."}, "a.w.t."),
                                    zone_.sign({"*.w.t. 300 IN NSEC x.w.t. MX RRSIG NSEC"}));
    EXPECT_EQ(check(genuine, "a.w.t.", kTypeMx).security, Security::Secure)
        << check(genuine, "a.w.t.", kTypeMx).reason;
}

TEST_F(ForgeryTest, WildcardCloserMatchDeniesTheExpansion) {
    // b.t. exists; *.t. exists. a.b.t. must not be answered from *.t.:
    // b.t.'s NSEC (b.t. -> c.t.) covers a.b.t., but its closest encloser is
    // b.t., not t., so the expansion of *.t. is no proof.
    auto expanded = zone_.sign({"*.t. 300 IN MX 10 mx.t."}, "a.b.t.");
    auto nsec = zone_.sign({"b.t. 300 IN NSEC c.t. TXT RRSIG NSEC"});
    auto wire = TestZone::packet("a.b.t.", "MX", LDNS_RCODE_NOERROR, expanded, nsec);
    EXPECT_EQ(check(wire, "a.b.t.", kTypeMx).security, Security::Bogus);
}

TEST_F(ForgeryTest, Nsec3WildcardExpansionOntoANameThatExistsIsBogus) {
    // NSEC3 zone: t., w.t. (TXT), *.w.t. (MX), x.w.t. (MX). The expansion of
    // *.w.t. placed at x.w.t., "proven" by the NSEC3 that matches x.w.t.
    auto chain = zone_.nsec3Chain({{"t.", "SOA NS DNSKEY RRSIG NSEC3PARAM"},
                                   {"w.t.", "TXT RRSIG"},
                                   {"*.w.t.", "MX RRSIG"},
                                   {"x.w.t.", "MX RRSIG"}});
    auto wire = TestZone::packet("x.w.t.", "MX", LDNS_RCODE_NOERROR,
                                 zone_.sign({"*.w.t. 300 IN MX 10 mx.t."}, "x.w.t."), chain);
    EXPECT_EQ(check(wire, "x.w.t.", kTypeMx).security, Security::Bogus);
}

TEST_F(ForgeryTest, Nsec3NxdomainUnderAnExistingWildcardIsBogus) {
    // n.w.t. exists through the wildcard *.w.t.; an NXDOMAIN for it needs an
    // NSEC3 that COVERS hash(*.w.t.). The one that MATCHES it proves the
    // wildcard exists, the opposite.
    auto chain = zone_.nsec3Chain(
        {{"t.", "SOA NS DNSKEY RRSIG NSEC3PARAM"}, {"w.t.", "TXT RRSIG"}, {"*.w.t.", "MX RRSIG"}});
    auto wire = TestZone::packet("n.w.t.", "MX", LDNS_RCODE_NXDOMAIN, {}, chain);
    Verdict v = check(wire, "n.w.t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
    // Without the wildcard, the same kind of proof is a genuine NXDOMAIN.
    auto plain = zone_.nsec3Chain(
        {{"t.", "SOA NS DNSKEY RRSIG NSEC3PARAM"}, {"w.t.", "TXT RRSIG"}, {"v.w.t.", "MX RRSIG"}});
    auto nx = TestZone::packet("n.w.t.", "MX", LDNS_RCODE_NXDOMAIN, {}, plain);
    Verdict ok = check(nx, "n.w.t.", kTypeMx);
    EXPECT_EQ(ok.security, Security::Secure) << ok.reason;
}

TEST_F(ForgeryTest, Nsec3OfAnEmptyNonTerminalProvesNodata) {
    // e.t. has no records of its own (only x.e.t. below): its NSEC3 has an
    // empty type bitmap. A NODATA for e.t. DS rests on it.
    auto chain = zone_.nsec3Chain(
        {{"t.", "SOA NS DNSKEY RRSIG NSEC3PARAM"}, {"e.t.", ""}, {"x.e.t.", "MX RRSIG"}});
    auto wire = TestZone::packet("e.t.", "MX", LDNS_RCODE_NOERROR, {}, chain);
    Verdict v = check(wire, "e.t.", kTypeMx);
    EXPECT_EQ(v.security, Security::Secure) << v.reason;
}

TEST(LabForgery, Nsec3EmptyNonTerminalInTheLab) {
    // _tcp.mx1.nsec3.test. is an empty non-terminal above the TLSA record;
    // the NODATA for its DS (asked on the walk down) rests on an NSEC3 with
    // an empty type bitmap.
    const auto& lab = danerelay::dns::testing::labAnswers();
    auto v = Validator::create(
        lab.anchor, "lab anchor",
        [&lab](const std::string& name, uint16_t type) -> Result<std::vector<uint8_t>> {
            auto it = lab.answers.find({name, type});
            if (it == lab.answers.end()) return Error::temporary("not recorded");
            return it->second;
        });
    ASSERT_TRUE(v);
    const auto& wire = lab.answers.at({"_tcp.mx1.nsec3.test.", 43});
    Verdict verdict = (*v)->validate(wire.data(), wire.size(), "_tcp.mx1.nsec3.test.", 43, lab.now);
    EXPECT_EQ(verdict.security, Security::Secure) << verdict.reason;
}

}  // namespace
