// verifyDane with certificates made in the test (GnuTLS certtool): a root CA,
// an intermediate, good / expired / misnamed leaves, and an unrelated CA.
#include "tls/dane.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

using namespace danerelay::tls;
namespace fs = std::filesystem;

namespace {

using Der = std::vector<uint8_t>;

class Pki {
  public:
    Pki() {
        char tmpl[] = "/tmp/danerelay-dane-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        ca("root", "Test Root");
        issued("inter", "Test Intermediate", "root", true, "");
        issued("leaf", "mx.example.org", "inter", false, "dns_name = mx.example.org\n");
        issued("expired", "mx.example.org", "inter", false, "dns_name = mx.example.org\n",
               /*expired=*/true);
        issued("misnamed", "other.example.net", "inter", false, "dns_name = other.example.net\n");
        ca("otherroot", "Other Root");
        issued("otherinter", "Other Intermediate", "otherroot", true, "");
        issued("otherleaf", "mx.example.org", "otherinter", false, "dns_name = mx.example.org\n");
    }
    ~Pki() { fs::remove_all(dir_); }

    Der der(const std::string& name) const { return ders_.at(name); }
    Der spki(const std::string& name) const {
        gnutls_x509_crt_t c;
        gnutls_x509_crt_init(&c);
        Der d = der(name);
        gnutls_datum_t in{d.data(), static_cast<unsigned>(d.size())};
        gnutls_x509_crt_import(c, &in, GNUTLS_X509_FMT_DER);
        gnutls_pubkey_t k;
        gnutls_pubkey_init(&k);
        gnutls_pubkey_import_x509(k, c, 0);
        gnutls_datum_t out{};
        gnutls_pubkey_export2(k, GNUTLS_X509_FMT_DER, &out);
        Der r(out.data, out.data + out.size);
        gnutls_free(out.data);
        gnutls_pubkey_deinit(k);
        gnutls_x509_crt_deinit(c);
        return r;
    }

  private:
    void run(const std::string& cmd) {
        ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
    }
    std::string p(const std::string& name, const char* ext) const {
        return dir_ + "/" + name + ext;
    }
    void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
    void load(const std::string& name) {
        run("certtool --certificate-info --infile " + p(name, ".pem") + " --outder --outfile " +
            p(name, ".der"));
        std::ifstream f(p(name, ".der"), std::ios::binary);
        ders_[name] = Der(std::istreambuf_iterator<char>(f), {});
    }
    void ca(const std::string& name, const std::string& cn) {
        run("certtool --generate-privkey --key-type=ecdsa --outfile " + p(name, ".key"));
        write(p(name, ".tmpl"),
              "cn = \"" + cn + "\"\nca\ncert_signing_key\nexpiration_days = 365\n");
        run("certtool --generate-self-signed --load-privkey " + p(name, ".key") + " --template " +
            p(name, ".tmpl") + " --outfile " + p(name, ".pem"));
        load(name);
    }
    void issued(const std::string& name, const std::string& cn, const std::string& issuer,
                bool isCa, const std::string& extra, bool expired = false) {
        run("certtool --generate-privkey --key-type=ecdsa --outfile " + p(name, ".key"));
        std::string t = "cn = \"" + cn + "\"\n" + extra;
        t += isCa ? "ca\ncert_signing_key\n" : "tls_www_server\nsigning_key\n";
        t += expired ? "activation_date = \"2020-01-01 00:00:00 UTC\"\n"
                       "expiration_date = \"2020-02-01 00:00:00 UTC\"\n"
                     : "expiration_days = 365\n";
        write(p(name, ".tmpl"), t);
        run("certtool --generate-certificate --load-privkey " + p(name, ".key") +
            " --load-ca-certificate " + p(issuer, ".pem") + " --load-ca-privkey " +
            p(issuer, ".key") + " --template " + p(name, ".tmpl") + " --outfile " +
            p(name, ".pem"));
        load(name);
    }
    std::string dir_;
    std::map<std::string, Der> ders_;
};

Pki* pki = nullptr;

class DaneTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { pki = new Pki; }
    static void TearDownTestSuite() {
        delete pki;
        pki = nullptr;
    }

    static TlsaRecord rec(uint8_t u, uint8_t s, uint8_t m, const Der& data) {
        TlsaRecord r{u, s, m, {}};
        if (m == 0) {
            r.data = data;
        } else {
            auto alg = m == 1 ? GNUTLS_DIG_SHA256 : GNUTLS_DIG_SHA512;
            r.data.resize(gnutls_hash_get_len(alg));
            gnutls_hash_fast(alg, data.data(), data.size(), r.data.data());
        }
        return r;
    }
    static TlsaRecord of(const std::string& cert, uint8_t u, uint8_t s, uint8_t m) {
        return rec(u, s, m, s == 0 ? pki->der(cert) : pki->spki(cert));
    }
    static std::vector<Der> chain(std::initializer_list<const char*> names) {
        std::vector<Der> out;
        for (auto* n : names) out.push_back(pki->der(n));
        return out;
    }
    const std::vector<std::string> names_ = {"mx.example.org", "example.org"};
    const std::time_t now_ = std::time(nullptr);
};

TEST_F(DaneTest, DaneEeEverySelectorAndMatchingType) {
    for (int si : {0, 1}) {
        auto s = static_cast<uint8_t>(si);
        for (int mi : {0, 1, 2}) {
            auto m = static_cast<uint8_t>(mi);
            auto r = verifyDane(chain({"leaf", "inter"}), {of("leaf", 3, s, m)}, names_, now_);
            EXPECT_TRUE(r.authenticated) << int(s) << " " << int(m) << ": " << r.reason;
            EXPECT_EQ(r.matched.substr(0, 5), "3 " + std::to_string(s) + " " + std::to_string(m));
        }
    }
}

TEST_F(DaneTest, DaneEeIgnoresExpiryAndNames) {
    EXPECT_TRUE(verifyDane(chain({"expired", "inter"}), {of("expired", 3, 1, 1)}, names_, now_)
                    .authenticated);
    EXPECT_TRUE(verifyDane(chain({"misnamed", "inter"}), {of("misnamed", 3, 1, 1)}, names_, now_)
                    .authenticated);
}

// DANE-EE reads the leaf alone (RFC 7672 3.1.1): what follows it is not
// parsed unless a DANE-TA record needs the chain; the leaf itself must
// parse, even where a 3 0 0 record names its bytes exactly.
TEST_F(DaneTest, DaneEeParsesTheLeafAlone) {
    auto junkAbove = chain({"leaf", "inter"});
    junkAbove[1] = Der{0x30, 0x03, 1, 2, 3};
    auto ee = verifyDane(junkAbove, {of("leaf", 3, 1, 1)}, names_, now_);
    EXPECT_TRUE(ee.authenticated) << ee.reason;
    auto ta = verifyDane(junkAbove, {of("inter", 2, 0, 1)}, names_, now_);
    EXPECT_FALSE(ta.authenticated);
    EXPECT_NE(ta.reason.find("does not parse"), std::string::npos) << ta.reason;
    // An EE record that does not match, then a TA record: the chain is parsed.
    auto both =
        verifyDane(junkAbove, {of("otherleaf", 3, 1, 1), of("inter", 2, 0, 1)}, names_, now_);
    EXPECT_FALSE(both.authenticated);
    EXPECT_NE(both.reason.find("does not parse"), std::string::npos) << both.reason;
    // EE records only, none matching: no TA work, the plain failure.
    auto none = verifyDane(chain({"leaf", "inter"}), {of("otherleaf", 3, 1, 1)}, names_, now_);
    EXPECT_FALSE(none.authenticated);
    EXPECT_EQ(none.failure, DaneFailure::ValidationFailure);
    Der junk{0x30, 0x03, 1, 2, 3};
    TlsaRecord exact{3, 0, 0, junk};
    auto leafJunk = verifyDane({junk}, {exact}, names_, now_);
    EXPECT_FALSE(leafJunk.authenticated);
    EXPECT_NE(leafJunk.reason.find("does not parse"), std::string::npos) << leafJunk.reason;
}

TEST_F(DaneTest, DaneTaOnTheIntermediate) {
    for (int si : {0, 1}) {
        auto s = static_cast<uint8_t>(si);
        for (int mi : {0, 1, 2}) {
            auto m = static_cast<uint8_t>(mi);
            auto r = verifyDane(chain({"leaf", "inter"}), {of("inter", 2, s, m)}, names_, now_);
            EXPECT_TRUE(r.authenticated) << int(s) << " " << int(m) << ": " << r.reason;
        }
    }
}

TEST_F(DaneTest, DaneTaChecksNamesAndExpiry) {
    auto misnamed = verifyDane(chain({"misnamed", "inter"}), {of("inter", 2, 0, 1)}, names_, now_);
    EXPECT_FALSE(misnamed.authenticated);
    EXPECT_EQ(misnamed.failure, DaneFailure::CertificateHostMismatch);
    auto expired = verifyDane(chain({"expired", "inter"}), {of("inter", 2, 0, 1)}, names_, now_);
    EXPECT_FALSE(expired.authenticated);
    EXPECT_EQ(expired.failure, DaneFailure::CertificateExpired);
    // and the same leaf passes under 3 x x (above): usage decides, not the leaf
}

TEST_F(DaneTest, TrustAnchorPublishedWholeAndAbsentFromTheChain) {
    // 2 0 0 with the root certificate; the server sends only leaf + intermediate.
    auto r = verifyDane(chain({"leaf", "inter"}), {of("root", 2, 0, 0)}, names_, now_);
    EXPECT_TRUE(r.authenticated) << r.reason;
    // A digest of an absent root cannot be an anchor: nothing to verify against.
    auto d = verifyDane(chain({"leaf", "inter"}), {of("root", 2, 0, 1)}, names_, now_);
    EXPECT_FALSE(d.authenticated);
    EXPECT_EQ(d.failure, DaneFailure::ValidationFailure);
}

TEST_F(DaneTest, IntermediateThatChainsToNothingTrusted) {
    // The TLSA names the other CA's intermediate; our chain has an
    // intermediate too, but it matches nothing and leads to nothing trusted.
    auto r = verifyDane(chain({"leaf", "inter"}), {of("otherinter", 2, 0, 1)}, names_, now_);
    EXPECT_FALSE(r.authenticated);
    EXPECT_EQ(r.failure, DaneFailure::ValidationFailure);
    // A matching intermediate appended to a leaf it did not issue is no help.
    auto forged = verifyDane(chain({"otherleaf", "inter"}), {of("inter", 2, 0, 1)}, names_, now_);
    EXPECT_FALSE(forged.authenticated);
    EXPECT_NE(forged.reason.find("does not verify"), std::string::npos) << forged.reason;
}

TEST_F(DaneTest, MismatchAndEmptyInputs) {
    auto r = verifyDane(chain({"otherleaf", "otherinter"}), {of("leaf", 3, 1, 1)}, names_, now_);
    EXPECT_FALSE(r.authenticated);
    EXPECT_EQ(r.failure, DaneFailure::ValidationFailure);
    EXPECT_EQ(verifyDane(chain({"leaf"}), {}, names_, now_).failure, DaneFailure::TlsaInvalid);
    EXPECT_FALSE(verifyDane({}, {of("leaf", 3, 1, 1)}, names_, now_).authenticated);
    EXPECT_FALSE(verifyDane({Der{1, 2, 3}}, {of("leaf", 3, 1, 1)}, names_, now_).authenticated);
}

TEST_F(DaneTest, DigestAgilityPrefersTheStrongerDigest) {
    TlsaRecord wrong512 = of("otherleaf", 3, 1, 2);
    // SHA2-256 matches, but a SHA2-512 record for the same usage/selector exists: not used.
    EXPECT_FALSE(
        verifyDane(chain({"leaf"}), {of("leaf", 3, 1, 1), wrong512}, names_, now_).authenticated);
    // The other way round: the stronger one matches.
    EXPECT_TRUE(
        verifyDane(chain({"leaf"}), {of("otherleaf", 3, 1, 1), of("leaf", 3, 1, 2)}, names_, now_)
            .authenticated);
    // A different selector is a different set: 3 0 1 still counts.
    EXPECT_TRUE(
        verifyDane(chain({"leaf"}), {of("leaf", 3, 0, 1), wrong512}, names_, now_).authenticated);
}

}  // namespace
