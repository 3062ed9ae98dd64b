// SmtpClient::cacheKey(): a parked connection is reused only under exactly
// what authenticated its peer. Each test is a pair of requests an attacker
// would like to see share a connection.
#include <gtest/gtest.h>

#include "relay/outbound/smtp_client.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {

tls::TlsaRecord record(uint8_t usage, size_t len, uint8_t fill) {
    tls::TlsaRecord r;
    r.usage = usage;
    r.selector = 0;
    r.mtype = 0;  // full certificate: long records
    r.data.assign(len, fill);
    return r;
}

ClientRequest daneRequest() {
    ClientRequest req;
    req.mxName = "mx.example.org";
    req.address = "192.0.2.1";
    req.port = 25;
    req.mode = TlsMode::Dane;
    req.sni = "mx.example.org";
    req.referenceNames = {"mx.example.org", "example.org"};
    req.heloName = "relay.example.net";
    req.tlsa = {record(2, 600, 0x30)};
    return req;
}

TEST(ConnectionKey, IsASha256Digest) {
    auto k = SmtpClient::cacheKey(daneRequest());
    EXPECT_EQ(k.size(), 64u);
    EXPECT_EQ(k.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(k, SmtpClient::cacheKey(daneRequest()));
}

TEST(ConnectionKey, TlsaSetsSharingTheirFirst128BytesDiffer) {
    auto a = daneRequest(), b = daneRequest();
    b.tlsa[0].data[300] ^= 1;  // same first 128 bytes (and more), another anchor
    EXPECT_NE(SmtpClient::cacheKey(a), SmtpClient::cacheKey(b));
    // Same leading records, one more record in the set.
    auto c = daneRequest();
    c.tlsa.push_back(record(3, 32, 0x41));
    EXPECT_NE(SmtpClient::cacheKey(a), SmtpClient::cacheKey(c));
}

TEST(ConnectionKey, SameTlsaRrsetInAnotherOrderIsTheSameKey) {
    auto a = daneRequest(), b = daneRequest();
    a.tlsa.push_back(record(3, 32, 0x41));
    b.tlsa.insert(b.tlsa.begin(), record(3, 32, 0x41));
    EXPECT_EQ(SmtpClient::cacheKey(a), SmtpClient::cacheKey(b));
}

TEST(ConnectionKey, ReferenceNamesAreKeyed) {
    auto a = daneRequest(), b = daneRequest();
    b.referenceNames = {"mx.example.org", "attacker.example"};
    EXPECT_NE(SmtpClient::cacheKey(a), SmtpClient::cacheKey(b));
    auto c = daneRequest();
    c.referenceNames = {"mx.example.org"};
    EXPECT_NE(SmtpClient::cacheKey(a), SmtpClient::cacheKey(c));
}

TEST(ConnectionKey, PolicyVerifyNameTrustStorePinsAndModeAreKeyed) {
    auto base = daneRequest();
    base.mode = TlsMode::Verify;
    base.verifyName = "example.org";
    auto k = SmtpClient::cacheKey(base);
    auto v = base;
    v.verifyName = "mx.attacker.example";
    EXPECT_NE(k, SmtpClient::cacheKey(v));
    auto t = base;
    t.trustStore = "/etc/other-ca.pem";
    EXPECT_NE(k, SmtpClient::cacheKey(t));
    auto p = base;
    p.tlsPins = {std::vector<uint8_t>(32, 1)};
    EXPECT_NE(k, SmtpClient::cacheKey(p));
    auto m = base;
    m.mode = TlsMode::Mandatory;
    EXPECT_NE(k, SmtpClient::cacheKey(m));
}

TEST(ConnectionKey, FieldBoundariesCannotBeShifted) {
    // With a plain separator, "a|b" + "c" and "a" + "b|c" could collide.
    auto a = daneRequest(), b = daneRequest();
    // assign(), not operator=: GCC 12's -Wrestrict misfires on the latter
    // here in Release builds.
    a.authUser.assign("user|1");
    a.authPassword.assign(1, 'x');
    b.authUser.assign("user");
    b.authPassword.assign("1|x");
    EXPECT_NE(SmtpClient::cacheKey(a), SmtpClient::cacheKey(b));
    auto c = daneRequest(), d = daneRequest();
    c.referenceNames = {"ab", "c"};
    d.referenceNames = {"a", "bc"};
    EXPECT_NE(SmtpClient::cacheKey(c), SmtpClient::cacheKey(d));
}

}  // namespace
