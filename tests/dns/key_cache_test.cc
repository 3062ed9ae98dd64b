// The validator's cached public keys (dns/dnssec_util.h ZoneKeys): each
// DNSKEY is converted to an OpenSSL key once while its zone's keys are
// cached, and that cached key still refuses what ldns refused: a signature
// by another key claiming the same key tag and algorithm, an edited or
// shortened RRset, a signature out of its validity period. Every algorithm
// the validator supports signs and verifies (tests/dns/test_zone.h signs
// with ldns).
//
// And the signatures it remembers as verified (dnssec_util.h
// VerifiedSignatures): the same RRSIG over the same RRset by the same key
// is computed once, and nothing else passes for it: another signature over
// the same RRset, the same signature over other records or with another
// validity period or original TTL, a remembered signature past its
// expiration, or by a key the zone no longer has.
#include <gtest/gtest.h>

#include "dns/dnssec_util.h"  // VerifiedSignatures, tested on its own below
#include "dns/validator.h"
#include "tests/dns/test_zone.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

using namespace danerelay;
using namespace danerelay::dns;
using danerelay::dns::testing::TestZone;

namespace {

const std::string kTlsa = "3 1 1 1111111111111111111111111111111111111111111111111111111111111111";
const std::string kTlsa2 = "3 1 1 2222222222222222222222222222222222222222222222222222222222222222";
const std::string kTlsa3 = "3 1 1 3333333333333333333333333333333333333333333333333333333333333333";
const std::string kEvil = "3 1 1 0000000000000000000000000000000000000000000000000000000000000000";

// A validator anchored at the zone's DNSKEY, which it fetches from the
// zone and nothing else.
std::shared_ptr<Validator> validatorFor(const TestZone& zone) {
    auto v = Validator::create(
        zone.anchor(), "test anchor",
        [&zone](const std::string& name, uint16_t type) -> Result<std::vector<uint8_t>> {
            if (name == zone.apex() && type == 48) return zone.dnskeyAnswer();
            return Error::temporary("no answer for " + name);
        });
    EXPECT_TRUE(v) << (v ? "" : v.error().message);
    return v ? *v : nullptr;
}

Verdict check(Validator& v, const std::vector<uint8_t>& wire, const std::string& name,
              int64_t now = TestZone::kNow) {
    return v.validate(wire.data(), wire.size(), name, kTypeTlsa, now);
}

std::vector<uint8_t> tlsaPacket(const std::string& name, const std::vector<std::string>& rrs) {
    return TestZone::packet(name, "TLSA", LDNS_RCODE_NOERROR, rrs);
}

// A zone-file line with its tabs (ldns prints them) as spaces.
std::string spaced(std::string line) {
    std::replace(line.begin(), line.end(), '\t', ' ');
    return line;
}

// The TLSA line with its record data replaced.
std::string withData(const std::string& line, const std::string& data) {
    std::string l = spaced(line);
    auto at = l.find(" TLSA ");
    if (at == std::string::npos) ADD_FAILURE() << "not a TLSA line: " << l;
    return at == std::string::npos ? line : l.substr(0, at + 6) + data;
}

// The same key converted once, however many signatures it checks.
TEST(DnssecKeyCacheTest, AKeyIsConvertedOnceForManySignatures) {
    TestZone zone;
    auto v = validatorFor(zone);
    ASSERT_TRUE(v);
    uint64_t before = dnskeyConversions();
    auto first = tlsaPacket("_25._tcp.mx0.t.", zone.sign({"_25._tcp.mx0.t. 300 IN TLSA " + kTlsa}));
    ASSERT_EQ(check(*v, first, "_25._tcp.mx0.t.").security, Security::Secure);
    uint64_t cold = dnskeyConversions() - before;
    // The anchor's DNSKEY set checked with the anchored key, which the
    // cached set then keeps: one conversion for the zone's one key.
    EXPECT_EQ(cold, 1u);
    for (int i = 1; i <= 50; ++i) {
        std::string name = "_25._tcp.mx" + std::to_string(i) + ".t.";
        auto wire = tlsaPacket(name, zone.sign({name + " 300 IN TLSA " + kTlsa}));
        EXPECT_EQ(check(*v, wire, name).security, Security::Secure) << name;
    }
    EXPECT_EQ(dnskeyConversions() - before, cold) << "50 signatures, no new conversion";
    // A second validator has its own cache, so its own conversion.
    auto other = validatorFor(zone);
    ASSERT_TRUE(other);
    EXPECT_EQ(check(*other, first, "_25._tcp.mx0.t.").security, Security::Secure);
    EXPECT_EQ(dnskeyConversions() - before, 2 * cold);
}

// The cached key is the zone's, not whatever key a signature claims: an
// RRSIG with the zone's signer, algorithm and key tag made by another key
// is Bogus, before the key is cached and after.
TEST(DnssecKeyCacheTest, ASignatureByAnotherKeyWithTheSameTagIsBogus) {
    TestZone zone;
    auto v = validatorFor(zone);
    ASSERT_TRUE(v);
    auto forged = zone.signWithImpostor({"_25._tcp.mx.t. 300 IN TLSA " + kEvil});
    ASSERT_EQ(forged.size(), 2u);
    // It claims the zone's key: same key tag, same algorithm, same signer.
    Rr sig(TestZone::parse(forged[1]));
    ASSERT_EQ(ldns_rdf2native_int16(ldns_rr_rrsig_keytag(sig.get())), zone.keyTag());
    ASSERT_EQ(ldns_rdf2native_int8(ldns_rr_rrsig_algorithm(sig.get())), 13);
    ASSERT_EQ(fqdnOf(ldns_rr_rrsig_signame(sig.get())), "t.");

    Verdict cold = check(*v, tlsaPacket("_25._tcp.mx.t.", forged), "_25._tcp.mx.t.");
    EXPECT_EQ(cold.security, Security::Bogus) << cold.reason;
    EXPECT_EQ(cold.bogus, BogusReason::NoValidRrsig) << cold.reason;
    // Now with the zone's key cached (a genuine answer checked first).
    auto good = tlsaPacket("_25._tcp.mx.t.", zone.sign({"_25._tcp.mx.t. 300 IN TLSA " + kTlsa}));
    ASSERT_EQ(check(*v, good, "_25._tcp.mx.t.").security, Security::Secure);
    Verdict warm = check(*v, tlsaPacket("_25._tcp.mx.t.", forged), "_25._tcp.mx.t.");
    EXPECT_EQ(warm.security, Security::Bogus) << warm.reason;
    EXPECT_EQ(warm.bogus, BogusReason::NoValidRrsig) << warm.reason;
    // The impostor's RRSIG beside the genuine one does not make the
    // attacker's record Secure either.
    auto mixed = zone.sign({"_25._tcp.mx.t. 300 IN TLSA " + kTlsa});
    mixed.push_back(forged[0]);
    Verdict both = check(*v, tlsaPacket("_25._tcp.mx.t.", mixed), "_25._tcp.mx.t.");
    EXPECT_EQ(both.security, Security::Bogus) << both.reason;
}

// With the key cached: the RRset is checked in canonical order at the
// RRSIG's original TTL (any order and lowered TTLs verify), and an edited,
// shortened or padded RRset or an expired signature does not.
TEST(DnssecKeyCacheTest, TheCachedKeyChecksTheWholeCanonicalRrset) {
    TestZone zone;
    auto v = validatorFor(zone);
    ASSERT_TRUE(v);
    const std::string n = "_25._tcp.mx.t.";
    auto signedSet = zone.sign(
        {n + " 300 IN TLSA " + kTlsa, n + " 300 IN TLSA " + kTlsa2, n + " 300 IN TLSA " + kTlsa3});
    ASSERT_EQ(signedSet.size(), 4u);
    const std::string rrsig = signedSet[3];
    ASSERT_EQ(check(*v, tlsaPacket(n, signedSet), n).security, Security::Secure);

    // Another order, and TTLs a cache has counted down; the name in
    // upper case.
    std::vector<std::string> reordered = {"_25._TCP.MX.T. 17 IN TLSA " + kTlsa3,
                                          n + " 17 IN TLSA " + kTlsa, n + " 17 IN TLSA " + kTlsa2,
                                          rrsig};
    Verdict ok = check(*v, tlsaPacket(n, reordered), n);
    EXPECT_EQ(ok.security, Security::Secure) << ok.reason;

    auto edited = signedSet;
    edited[1] = withData(edited[1], kEvil);
    EXPECT_EQ(check(*v, tlsaPacket(n, edited), n).security, Security::Bogus);
    std::vector<std::string> shortened = {signedSet[0], signedSet[2], rrsig};
    EXPECT_EQ(check(*v, tlsaPacket(n, shortened), n).security, Security::Bogus);
    auto padded = signedSet;
    padded.insert(padded.begin(), n + " 300 IN TLSA " + kEvil);
    EXPECT_EQ(check(*v, tlsaPacket(n, padded), n).security, Security::Bogus);

    // Signatures out of their validity period, the zone's key cached
    // (its own signature on the DNSKEY set still valid).
    auto expired =
        zone.signValid({n + " 300 IN TLSA " + kTlsa}, TestZone::kNow - 3600, TestZone::kNow - 60);
    Verdict late = check(*v, tlsaPacket(n, expired), n);
    EXPECT_EQ(late.security, Security::Bogus);
    EXPECT_EQ(late.bogus, BogusReason::SignatureExpired) << late.reason;
    auto future =
        zone.signValid({n + " 300 IN TLSA " + kTlsa}, TestZone::kNow + 60, TestZone::kNow + 86400);
    Verdict early = check(*v, tlsaPacket(n, future), n);
    EXPECT_EQ(early.security, Security::Bogus);
    EXPECT_EQ(early.bogus, BogusReason::SignatureNotYetValid) << early.reason;
    // Expiration before inception, though now is inside neither.
    auto backwards =
        zone.signValid({n + " 300 IN TLSA " + kTlsa}, TestZone::kNow + 3600, TestZone::kNow - 3600);
    EXPECT_EQ(check(*v, tlsaPacket(n, backwards), n).security, Security::Bogus);
    // The same signatures inside their periods verify.
    EXPECT_EQ(check(*v, tlsaPacket(n, expired), n, TestZone::kNow - 120).security,
              Security::Secure);
}

// Wildcard expansion with the cached key: the RRSIG's labels say the
// wildcard's name is what was signed.
TEST(DnssecKeyCacheTest, AWildcardSignatureVerifiesAtTheWildcardName) {
    TestZone zone;
    auto v = validatorFor(zone);
    ASSERT_TRUE(v);
    auto expanded = zone.sign({"*.w.t. 300 IN TLSA " + kTlsa}, "x.w.t.");
    // The NSEC *.w.t. -> t. covers x.w.t.: it does not exist.
    auto proof = zone.sign({"*.w.t. 300 IN NSEC t. TLSA RRSIG NSEC"});
    auto wire = TestZone::packet("x.w.t.", "TLSA", LDNS_RCODE_NOERROR, expanded, proof);
    Verdict good = check(*v, wire, "x.w.t.");
    EXPECT_EQ(good.security, Security::Secure) << good.reason;
    // The same records placed at the name without claiming the wildcard
    // (labels edited to the owner's) no longer verify.
    auto claimed = expanded;
    // RRSIG presentation: owner ttl IN RRSIG type alg labels ...
    auto fields = spaced(claimed[1]);
    auto pos = fields.find("RRSIG TLSA 13 ");
    ASSERT_NE(pos, std::string::npos);
    fields[pos + 14] = '3';  // labels 3 (x.w.t.), was 2
    claimed[1] = fields;
    Verdict bad =
        check(*v, TestZone::packet("x.w.t.", "TLSA", LDNS_RCODE_NOERROR, claimed, proof), "x.w.t.");
    EXPECT_EQ(bad.security, Security::Bogus) << bad.reason;
}

// Every algorithm the validator supports: signed answers Secure, edited
// ones Bogus, a same-tag impostor Bogus, each key converted once.
struct Algorithm {
    const char* name;
    ldns_signing_algorithm alg;
    uint16_t bits;
};

class DnssecKeyCacheAlgorithmTest : public ::testing::TestWithParam<Algorithm> {};

TEST_P(DnssecKeyCacheAlgorithmTest, SignsVerifiesAndRefusesForgeries) {
    TestZone zone("t.", GetParam().alg, GetParam().bits);
    auto v = validatorFor(zone);
    ASSERT_TRUE(v);
    const std::string n = "_25._tcp.mx.t.";
    auto set = zone.sign({n + " 300 IN TLSA " + kTlsa, n + " 300 IN TLSA " + kTlsa2});
    ASSERT_EQ(set.size(), 3u);
    Verdict good = check(*v, tlsaPacket(n, set), n);
    EXPECT_EQ(good.security, Security::Secure) << good.reason;
    uint64_t warm = dnskeyConversions();
    for (int i = 0; i < 5; ++i) {
        std::string name = "_25._tcp.m" + std::to_string(i) + ".t.";
        auto wire = tlsaPacket(name, zone.sign({name + " 300 IN TLSA " + kTlsa}));
        EXPECT_EQ(check(*v, wire, name).security, Security::Secure) << name;
    }
    EXPECT_EQ(dnskeyConversions(), warm);
    auto edited = set;
    edited[0] = withData(edited[0], kEvil);
    EXPECT_EQ(check(*v, tlsaPacket(n, edited), n).security, Security::Bogus);
    auto forged = zone.signWithImpostor({n + " 300 IN TLSA " + kEvil});
    ASSERT_EQ(forged.size(), 2u);
    Rr sig(TestZone::parse(forged[1]));
    ASSERT_EQ(ldns_rdf2native_int16(ldns_rr_rrsig_keytag(sig.get())), zone.keyTag());
    Verdict f = check(*v, tlsaPacket(n, forged), n);
    EXPECT_EQ(f.security, Security::Bogus) << f.reason;
    EXPECT_EQ(f.bogus, BogusReason::NoValidRrsig) << f.reason;
}

INSTANTIATE_TEST_SUITE_P(
    Algorithms, DnssecKeyCacheAlgorithmTest,
    ::testing::Values(Algorithm{"RSASHA1", LDNS_SIGN_RSASHA1, 1024},
                      Algorithm{"RSASHA256", LDNS_SIGN_RSASHA256, 2048},
                      Algorithm{"RSASHA512", LDNS_SIGN_RSASHA512, 2048},
                      Algorithm{"ECDSAP256SHA256", LDNS_SIGN_ECDSAP256SHA256, 256},
                      Algorithm{"ECDSAP384SHA384", LDNS_SIGN_ECDSAP384SHA384, 384},
                      Algorithm{"ED25519", LDNS_SIGN_ED25519, 256},
                      Algorithm{"ED448", LDNS_SIGN_ED448, 456}),
    [](const ::testing::TestParamInfo<Algorithm>& i) { return std::string(i.param.name); });

// ------------------------------------------------ verified signatures

// The RRSIG line with the field `after` places after "RRSIG" (1 type
// covered, 2 algorithm, 3 labels, 4 original TTL, 5 expiration, 6
// inception, 7 key tag, 8 signer, 9 signature) replaced.
std::string withRrsigField(const std::string& line, size_t after, const std::string& value) {
    std::vector<std::string> f;
    std::string cur;
    for (char c : spaced(line) + " ") {
        if (c != ' ') {
            cur += c;
        } else if (!cur.empty()) {
            f.push_back(cur);
            cur.clear();
        }
    }
    auto at = std::find(f.begin(), f.end(), "RRSIG");
    if (at == f.end() || static_cast<size_t>(f.end() - at) <= after) {
        ADD_FAILURE() << "not an RRSIG line: " << line;
        return line;
    }
    at[static_cast<std::ptrdiff_t>(after)] = value;
    std::string out;
    for (const auto& x : f) out += (out.empty() ? "" : " ") + x;
    return out;
}

// The RRSIG line with one character of its signature changed (still base64).
std::string withFlippedSignature(const std::string& line) {
    std::string l = spaced(line);
    size_t i = l.size() - 10;
    l[i] = l[i] == 'A' ? 'B' : 'A';
    return l;
}

struct Counts {
    uint64_t computed = signatureVerifications();
    uint64_t remembered = verifiedSignatureHits();
    uint64_t newlyComputed() const { return signatureVerifications() - computed; }
    uint64_t newlyRemembered() const { return verifiedSignatureHits() - remembered; }
};

// A wildcard answer and its NSEC proof, the same signed bytes for every name
// the wildcard synthesises: computed for the first name, remembered after.
TEST(DnssecVerifiedSignaturesTest, AWildcardAndItsProofAreComputedOnce) {
    TestZone zone;
    auto v = validatorFor(zone);
    ASSERT_TRUE(v);
    // Signed once, as a zone is (ECDSA signatures differ at every signing),
    // and expanded by the server to each name asked for.
    auto proof = zone.sign({"*.w.t. 300 IN NSEC t. TLSA RRSIG NSEC"});
    auto wildcard = zone.sign({"*.w.t. 300 IN TLSA " + kTlsa});
    auto wireFor = [&](const std::string& name) {
        auto expanded = wildcard;
        for (auto& line : expanded) line = name + line.substr(std::string("*.w.t.").size());
        return TestZone::packet(name, "TLSA", LDNS_RCODE_NOERROR, expanded, proof);
    };
    Counts first;
    ASSERT_EQ(check(*v, wireFor("x0.w.t."), "x0.w.t.").security, Security::Secure);
    // The DNSKEY set, the expanded TLSA RRset, the NSEC record.
    EXPECT_EQ(first.newlyComputed(), 3u);
    Counts rest;
    for (int i = 1; i <= 30; ++i) {
        std::string name = "x" + std::to_string(i) + ".w.t.";
        Verdict ok = check(*v, wireFor(name), name);
        EXPECT_EQ(ok.security, Security::Secure) << name << ": " << ok.reason;
    }
    EXPECT_EQ(rest.newlyComputed(), 0u);
    EXPECT_EQ(rest.newlyRemembered(), 60u);
    // A second validator remembers nothing of the first's.
    auto other = validatorFor(zone);
    ASSERT_TRUE(other);
    Counts fresh;
    EXPECT_EQ(check(*other, wireFor("x1.w.t."), "x1.w.t.").security, Security::Secure);
    EXPECT_EQ(fresh.newlyComputed(), 3u);
}

// With the genuine RRSIG remembered: everything an on-path attacker can
// change in the RRset or its RRSIG is verified afresh and refused; only
// the record TTLs (not signed) may differ.
TEST(DnssecVerifiedSignaturesTest, ARememberedSignatureCoversExactlyWhatItSigned) {
    TestZone zone;
    auto v = validatorFor(zone);
    ASSERT_TRUE(v);
    const std::string n = "_25._tcp.mx.t.";
    auto genuine = zone.sign({n + " 300 IN TLSA " + kTlsa, n + " 300 IN TLSA " + kTlsa2});
    ASSERT_EQ(genuine.size(), 3u);
    ASSERT_EQ(check(*v, tlsaPacket(n, genuine), n).security, Security::Secure);
    Counts warm;
    ASSERT_EQ(check(*v, tlsaPacket(n, genuine), n).security, Security::Secure);
    ASSERT_EQ(warm.newlyComputed(), 0u) << "the genuine answer is remembered";

    auto refused = [&](const std::vector<std::string>& lines, const char* what) {
        Verdict r = check(*v, tlsaPacket(n, lines), n);
        EXPECT_EQ(r.security, Security::Bogus) << what << ": " << r.reason;
    };
    // Another signature over the same RRset: one character changed, and
    // one made by another key claiming the zone's key tag.
    auto flipped = genuine;
    flipped[2] = withFlippedSignature(genuine[2]);
    refused(flipped, "signature changed");
    auto impostor =
        zone.signWithImpostor({n + " 300 IN TLSA " + kTlsa, n + " 300 IN TLSA " + kTlsa2});
    ASSERT_EQ(impostor.size(), 3u);
    refused(impostor, "signed by an impostor key with the same tag");
    // The genuine signature over other records: one changed, one left out,
    // one added.
    refused({withData(genuine[0], kEvil), genuine[1], genuine[2]}, "record changed");
    refused({genuine[0], genuine[2]}, "record left out");
    refused({genuine[0], genuine[1], n + " 300 IN TLSA " + kEvil, genuine[2]}, "record added");
    // The genuine signature with its validity period stretched, its
    // original TTL raised, its labels lowered (a claimed wildcard).
    refused({genuine[0], genuine[1], withRrsigField(genuine[2], 5, "20300101000000")},
            "expiration moved");
    refused({genuine[0], genuine[1], withRrsigField(genuine[2], 6, "20200101000000")},
            "inception moved");
    refused({genuine[0], genuine[1], withRrsigField(genuine[2], 4, "86400")},
            "original TTL raised");
    refused({genuine[0], genuine[1], withRrsigField(genuine[2], 3, "3")}, "labels lowered");
    // Lower record TTLs (a cache counting down) are the same signed data,
    // remembered as such; the answer keeps the lower TTL.
    std::vector<std::string> counted = {n + " 42 IN TLSA " + kTlsa, n + " 42 IN TLSA " + kTlsa2,
                                        genuine[2]};
    Counts ttl;
    auto countedWire = tlsaPacket(n, counted);
    auto r = readResponse(countedWire.data(), countedWire.size(), n, kTypeTlsa);
    Answer a = v->answer(*r, TestZone::kNow);
    EXPECT_EQ(a.security, Security::Secure);
    EXPECT_EQ(a.ttl, 42u);
    EXPECT_EQ(ttl.newlyComputed(), 0u);
    // And the genuine answer still is Secure after all that.
    EXPECT_EQ(check(*v, tlsaPacket(n, genuine), n).security, Security::Secure);
}

// A remembered signature is held to its validity period at every use.
TEST(DnssecVerifiedSignaturesTest, ARememberedSignatureStillExpires) {
    TestZone zone;
    auto v = validatorFor(zone);
    ASSERT_TRUE(v);
    const std::string n = "_25._tcp.mx.t.";
    auto brief =
        zone.signValid({n + " 300 IN TLSA " + kTlsa}, TestZone::kNow - 60, TestZone::kNow + 60);
    ASSERT_EQ(check(*v, tlsaPacket(n, brief), n).security, Security::Secure);
    Counts later;
    Verdict expired = check(*v, tlsaPacket(n, brief), n, TestZone::kNow + 120);
    EXPECT_EQ(expired.security, Security::Bogus);
    EXPECT_EQ(expired.bogus, BogusReason::SignatureExpired) << expired.reason;
    Verdict early = check(*v, tlsaPacket(n, brief), n, TestZone::kNow - 120);
    EXPECT_EQ(early.security, Security::Bogus);
    EXPECT_EQ(early.bogus, BogusReason::SignatureNotYetValid) << early.reason;
    // Those were the remembered arithmetic, not a recomputation.
    EXPECT_EQ(later.newlyComputed(), 0u);
    EXPECT_EQ(later.newlyRemembered(), 2u);
    EXPECT_EQ(check(*v, tlsaPacket(n, brief), n, TestZone::kNow + 30).security, Security::Secure);
}

// A key rollover: a signature remembered as made by a zone key no longer
// counts once that key has left the zone's DNSKEY set.
TEST(DnssecVerifiedSignaturesTest, ARememberedSignatureDiesWithItsKey) {
    TestZone ksk;                           // the anchor; signs the DNSKEY set
    TestZone zsk;                           // signs the data until it is rolled out
    auto shortTtl = [](std::string line) {  // the DNSKEY set is re-fetched after 60 s
        line = spaced(line);
        auto at = line.find(" 3600 ");
        if (at != std::string::npos) line.replace(at, 6, " 60 ");
        return line;
    };
    bool rolled = false;
    auto v = Validator::create(
        ksk.anchor(), "test anchor",
        [&](const std::string& name, uint16_t type) -> Result<std::vector<uint8_t>> {
            if (name != "t." || type != 48) return Error::temporary("no answer for " + name);
            std::vector<std::string> keys = {shortTtl(ksk.anchor())};
            if (!rolled) keys.push_back(shortTtl(zsk.anchor()));
            return TestZone::packet("t.", "DNSKEY", LDNS_RCODE_NOERROR, ksk.sign(keys));
        });
    ASSERT_TRUE(v) << v.error().message;
    const std::string n = "_25._tcp.mx.t.";
    auto byZsk = zsk.sign({n + " 300 IN TLSA " + kTlsa});
    ASSERT_EQ(check(**v, tlsaPacket(n, byZsk), n).security, Security::Secure);
    // Still in the set after the DNSKEY set was fetched again: remembered.
    Counts again;
    EXPECT_EQ(check(**v, tlsaPacket(n, byZsk), n, TestZone::kNow + 120).security, Security::Secure);
    EXPECT_EQ(again.newlyComputed(), 1u) << "the DNSKEY set only";
    EXPECT_EQ(again.newlyRemembered(), 1u);
    // Rolled out: the remembered signature is worth nothing.
    rolled = true;
    Verdict gone = check(**v, tlsaPacket(n, byZsk), n, TestZone::kNow + 240);
    EXPECT_EQ(gone.security, Security::Bogus) << gone.reason;
    EXPECT_EQ(gone.bogus, BogusReason::NoValidRrsig) << gone.reason;
}

// The store itself: bounded in entries, bytes and age; exact keys only.
TEST(DnssecVerifiedSignaturesTest, TheStoreIsBoundedAndExact) {
    VerifiedSignatures s(3, 64 * 100, 3600);
    const int64_t t = TestZone::kNow;
    s.add("a", t);
    s.add("b", t);
    s.add("c", t);
    EXPECT_TRUE(s.contains("a", t));
    EXPECT_FALSE(s.contains("a ", t));
    EXPECT_FALSE(s.contains("", t));
    s.add("d", t);  // past 3 entries: the oldest goes
    EXPECT_EQ(s.size(), 3u);
    EXPECT_FALSE(s.contains("a", t));
    EXPECT_TRUE(s.contains("d", t));
    // Too old (either way: the validation time is injected).
    EXPECT_FALSE(s.contains("d", t + 3600));
    EXPECT_FALSE(s.contains("d", t - 3600));
    EXPECT_TRUE(s.contains("d", t + 3599));
    // Added again after it expired: good again, for another maxAge.
    s.add("d", t + 3600);
    EXPECT_TRUE(s.contains("d", t + 7000));
    // A key over maxBytes / 64 is not kept; the bytes bound drops the oldest.
    s.add(std::string(101, 'x'), t);
    EXPECT_FALSE(s.contains(std::string(101, 'x'), t));
    VerifiedSignatures small(100, 64 * 100, 3600);
    auto key = [](int i) { return std::to_string(i) + std::string(90, 'k'); };
    for (int i = 0; i < 80; ++i) small.add(key(i), t);
    EXPECT_LE(small.bytes(), 64u * 100u);
    EXPECT_LT(small.size(), 80u);
    EXPECT_FALSE(small.contains(key(0), t));
    EXPECT_TRUE(small.contains(key(79), t));
    // None kept at all with 0 entries.
    VerifiedSignatures none(0, 1000, 3600);
    none.add("a", t);
    EXPECT_FALSE(none.contains("a", t));
}

}  // namespace
