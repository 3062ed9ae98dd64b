#include "dns/answer.h"
#include "dns/response.h"

#include <gtest/gtest.h>

#include "tests/dns/dns_test_util.h"

using namespace danerelay::dns;
using danerelay::dns::testing::build;
using danerelay::dns::testing::Reply;

namespace {

Answer parse(const Reply& r, const std::string& qname = "example.org", uint16_t qtype = kTypeMx,
             bool trusted = true) {
    auto wire = build(r);
    return parseResponse(wire.data(), wire.size(), qname, qtype, trusted);
}

constexpr const char* kDigest32 =
    "0101010101010101010101010101010101010101010101010101010101010101";

TEST(Answer, MxSortedWithSecurityFromTrustedAd) {
    Reply r;
    r.ad = true;
    r.answer = {"example.org. 300 IN MX 20 b.example.org.",
                "example.org. 100 IN MX 10 A.Example.org."};
    auto a = parse(r);
    EXPECT_EQ(a.outcome, Outcome::Data);
    EXPECT_EQ(a.security, Security::Secure);
    ASSERT_EQ(a.mx.size(), 2u);
    EXPECT_EQ(a.mx[0], (MxRecord{10, "a.example.org"}));
    EXPECT_EQ(a.mx[1], (MxRecord{20, "b.example.org"}));
    EXPECT_EQ(a.ttl, 100u);
}

TEST(Answer, AdBitMeansNothingFromAnUntrustedServer) {
    Reply r;
    r.ad = true;
    r.answer = {"example.org. 300 IN MX 10 mx.example.org."};
    EXPECT_EQ(parse(r, "example.org", kTypeMx, false).security, Security::Indeterminate);
    r.ad = false;
    EXPECT_EQ(parse(r).security, Security::Insecure);
}

TEST(Answer, QuestionMustEchoOurs) {
    Reply r;
    r.qname = "evil.example.";
    r.answer = {"evil.example. 300 IN MX 10 mx.evil.example."};
    auto a = parse(r);
    EXPECT_EQ(a.outcome, Outcome::Error);
    EXPECT_EQ(a.security, Security::Indeterminate);
    r.qname = "example.org.";
    EXPECT_EQ(parse(r, "example.org", kTypeA).outcome, Outcome::Error);  // wrong type
}

TEST(Answer, NegativeAnswersAndTtlFromSoa) {
    Reply r;
    r.rcode = LDNS_RCODE_NXDOMAIN;
    r.ad = true;
    r.authority = {"org. 900 IN SOA ns.org. h.org. 1 2 3 4 60"};
    auto a = parse(r);
    EXPECT_EQ(a.outcome, Outcome::NxDomain);
    EXPECT_EQ(a.security, Security::Secure);
    EXPECT_EQ(a.ttl, 60u);
    r.rcode = LDNS_RCODE_NOERROR;
    EXPECT_EQ(parse(r).outcome, Outcome::NoData);
    r.rcode = LDNS_RCODE_SERVFAIL;
    auto s = parse(r);
    EXPECT_EQ(s.outcome, Outcome::ServFail);
    EXPECT_EQ(s.security, Security::Indeterminate);  // never "insecure"
    r.rcode = LDNS_RCODE_REFUSED;
    EXPECT_EQ(parse(r).outcome, Outcome::Error);
}

TEST(Answer, AReferralIsNotNoData) {
    // A server that does not recurse hands back a delegation: NS records in
    // authority, no SOA. Taking it for NODATA would invent absence.
    Reply r;
    r.authority = {"example.org. 3600 IN NS ns1.example.net."};
    auto a = parse(r);
    EXPECT_EQ(a.outcome, Outcome::Error);
    EXPECT_NE(a.detail.find("referral to example.org"), std::string::npos) << a.detail;
    r.authority.push_back("org. 900 IN SOA ns.org. h.org. 1 2 3 4 60");
    EXPECT_EQ(parse(r).outcome, Outcome::NoData);
}

TEST(Answer, NullMx) {
    Reply r;
    r.answer = {"example.org. 300 IN MX 0 ."};
    auto a = parse(r);
    ASSERT_EQ(a.mx.size(), 1u);
    EXPECT_EQ(a.mx[0].host, "");
}

TEST(Answer, CnameChainIsFollowedAndForeignRecordsIgnored) {
    Reply r;
    r.qname = "mail.example.org.";
    r.qtype = kTypeA;
    r.answer = {"mail.example.org. 300 IN CNAME mx.example.net.",
                "mx.example.net. 200 IN CNAME host.example.com.",
                "host.example.com. 50 IN A 192.0.2.1",
                "unrelated.example. 300 IN A 192.0.2.66"};  // injected: not on the chain
    auto a = parse(r, "mail.example.org", kTypeA);
    EXPECT_EQ(a.outcome, Outcome::Data);
    EXPECT_EQ(a.canonicalName, "host.example.com");
    EXPECT_EQ(a.cnameChain, (std::vector<std::string>{"mail.example.org", "mx.example.net"}));
    EXPECT_EQ(a.addresses, std::vector<std::string>{"192.0.2.1"});
    EXPECT_EQ(a.ttl, 50u);
}

TEST(Answer, CnameLoopAndOverlongChainAreErrors) {
    Reply r;
    r.qname = "a.example.";
    r.qtype = kTypeA;
    r.answer = {"a.example. 300 IN CNAME b.example.", "b.example. 300 IN CNAME a.example."};
    auto loop = parse(r, "a.example", kTypeA);
    EXPECT_EQ(loop.outcome, Outcome::Error);
    EXPECT_NE(loop.detail.find("loop"), std::string::npos);
    r.answer.clear();
    for (int i = 0; i < 12; ++i) {
        std::string rr = "c";  // not "c" + temporary: GCC 12 -Wrestrict at -O3
        rr += std::to_string(i) + ".example. 300 IN CNAME c" + std::to_string(i + 1) + ".example.";
        r.answer.push_back(rr);
    }
    r.qname = "c0.example.";
    EXPECT_EQ(parse(r, "c0.example", kTypeA).outcome, Outcome::Error);
}

TEST(Answer, MalformedBytesAreAnErrorNotACrash) {
    std::vector<uint8_t> junk = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 7, 'x'};
    auto a = parseResponse(junk.data(), junk.size(), "example.org", kTypeMx, true);
    EXPECT_EQ(a.outcome, Outcome::Error);
    EXPECT_EQ(parseResponse(junk.data(), 3, "example.org", kTypeMx, true).outcome, Outcome::Error);
}

// TXT (for MTA-STS's _mta-sts record): each record's character-strings
// joined, bytes kept as they came, NUL and 8-bit included (the reader in
// sts/ judges them), with the answer's security like any other type.
TEST(Answer, TxtStringsAreJoinedPerRecord) {
    Reply r;
    r.qname = "_mta-sts.example.org.";
    r.qtype = kTypeTxt;
    r.ad = true;
    r.answer = {"_mta-sts.example.org. 300 IN TXT \"v=STSv1; \" \"id=20261203\"",
                "_mta-sts.example.org. 300 IN TXT \"v=spf1 -all\"",
                "_mta-sts.example.org. 300 IN TXT \"a\\000b\\255\""};
    auto a = parse(r, "_mta-sts.example.org", kTypeTxt);
    EXPECT_EQ(a.outcome, Outcome::Data);
    EXPECT_EQ(a.security, Security::Secure);
    ASSERT_EQ(a.txt.size(), 3u);
    EXPECT_EQ(a.txt[0], "v=STSv1; id=20261203");
    EXPECT_EQ(a.txt[1], "v=spf1 -all");
    EXPECT_EQ(a.txt[2], std::string("a\0b\xff", 4));
    EXPECT_TRUE(a.mx.empty());
}

TEST(Tlsa, ClassificationPerRfc7672) {
    Reply r;
    r.qname = "_25._tcp.mx.example.org.";
    r.qtype = kTypeTlsa;
    r.ad = true;
    r.answer = {std::string("_25._tcp.mx.example.org. 300 IN TLSA 3 1 1 ") + kDigest32,
                std::string("_25._tcp.mx.example.org. 300 IN TLSA 2 0 1 ") + kDigest32,
                std::string("_25._tcp.mx.example.org. 300 IN TLSA 1 1 1 ") + kDigest32,
                std::string("_25._tcp.mx.example.org. 300 IN TLSA 0 0 1 ") + kDigest32,
                "_25._tcp.mx.example.org. 300 IN TLSA 3 1 1 0102030405",
                std::string("_25._tcp.mx.example.org. 300 IN TLSA 3 1 2 ") + kDigest32,
                std::string("_25._tcp.mx.example.org. 300 IN TLSA 3 2 1 ") + kDigest32,
                std::string("_25._tcp.mx.example.org. 300 IN TLSA 3 1 3 ") + kDigest32,
                "_25._tcp.mx.example.org. 300 IN TLSA 2 0 0 3082"};
    auto a = parse(r, "_25._tcp.mx.example.org", kTypeTlsa);
    ASSERT_EQ(a.tlsa.size(), 9u);
    std::vector<bool> usable;
    for (const auto& t : a.tlsa) usable.push_back(t.usable);
    EXPECT_EQ(usable,
              (std::vector<bool>{true, true, false, false, false, false, false, false, true}));
    EXPECT_NE(a.tlsa[4].unusableReason.find("5 octets"), std::string::npos);
    EXPECT_EQ(tlsaStatus(a), TlsaStatus::Usable);
}

TEST(Tlsa, TheOutcomesKeptApart) {
    Reply r;
    r.qname = "_25._tcp.mx.example.org.";
    r.qtype = kTypeTlsa;
    r.ad = true;
    r.answer = {std::string("_25._tcp.mx.example.org. 300 IN TLSA 0 0 1 ") + kDigest32};
    EXPECT_EQ(tlsaStatus(parse(r, "_25._tcp.mx.example.org", kTypeTlsa)), TlsaStatus::NoneUsable);
    r.answer.clear();
    EXPECT_EQ(tlsaStatus(parse(r, "_25._tcp.mx.example.org", kTypeTlsa)),
              TlsaStatus::SecurelyAbsent);
    r.ad = false;
    EXPECT_EQ(tlsaStatus(parse(r, "_25._tcp.mx.example.org", kTypeTlsa)), TlsaStatus::Insecure);
    r.rcode = LDNS_RCODE_SERVFAIL;
    EXPECT_EQ(tlsaStatus(parse(r, "_25._tcp.mx.example.org", kTypeTlsa)), TlsaStatus::Failed);
    Answer bogus;
    bogus.outcome = Outcome::Data;
    bogus.security = Security::Bogus;
    EXPECT_EQ(tlsaStatus(bogus), TlsaStatus::Failed);
    Answer unknown;
    unknown.outcome = Outcome::NxDomain;
    unknown.security = Security::Indeterminate;
    EXPECT_EQ(tlsaStatus(unknown), TlsaStatus::Failed);  // never "absent"
}

TEST(Names, Normalize) {
    std::string out;
    EXPECT_TRUE(normalizeName("Mail.Example.ORG.", &out));
    EXPECT_EQ(out, "mail.example.org");
    EXPECT_TRUE(normalizeName("_25._tcp.mx.example.org", &out));
    EXPECT_FALSE(normalizeName("", &out));
    EXPECT_FALSE(normalizeName("a..b", &out));
    EXPECT_FALSE(normalizeName("bad name.example", &out));
    EXPECT_FALSE(normalizeName(std::string(64, 'a') + ".example", &out));
    EXPECT_FALSE(normalizeName("a\\.b.example", &out));
}

// fqdnOf reads plain names from the wire itself (the answer path asks it
// for every owner and every question): the text must be exactly what it was
// through ldns_rdf2str, lower-cased, for every byte value in a label, for
// escapes, the root, long labels and names, and bytes after the root label.
TEST(Names, FqdnOfIsLdnsTextLowerCased) {
    auto reference = [](const ldns_rdf* d) {
        char* raw = ldns_rdf2str(d);
        std::string out = raw ? raw : "";
        free(raw);
        for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (out.empty() || out.back() != '.') out += '.';
        return out;
    };
    auto check = [&](const std::vector<uint8_t>& wire) {
        ldns_rdf* d = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, wire.size(), wire.data());
        ASSERT_NE(d, nullptr);
        EXPECT_EQ(fqdnOf(d), reference(d)) << "wire of " << wire.size() << " bytes";
        ldns_rdf_deep_free(d);
    };
    for (int b = 0; b < 256; ++b) {
        auto c = static_cast<uint8_t>(b);
        check({3, 'A', c, 'z', 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 0});
        check({1, c, 0});
    }
    check({0});
    check({1, '*', 1, 'W', 1, 't', 0});
    check({4, '_', '2', '5', 'X', 4, '_', 't', 'c', 'p', 0});
    std::vector<uint8_t> longest;  // 4 labels of 63, 61 and the root: 255 bytes
    for (int l = 0; l < 3; ++l) {
        longest.push_back(63);
        longest.insert(longest.end(), 63, 'M');
    }
    longest.push_back(61);
    longest.insert(longest.end(), 61, 'q');
    longest.push_back(0);
    ASSERT_EQ(longest.size(), 255u);
    check(longest);
    check({1, 'a', 0, 1, 'b', 0});  // bytes after the root label
    check({1, 'a', 0, 0});
}

}  // namespace
