#include "policy/policy.h"

#include <gtest/gtest.h>

using namespace danerelay;
using namespace danerelay::policy;

namespace {

std::shared_ptr<const PolicySet> load(const std::string& text, const std::string& name = "p.json") {
    auto r = PolicySet::loadText({{name, text}});
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : nullptr;
}

std::string errorOf(const std::vector<std::pair<std::string, std::string>>& files) {
    auto r = PolicySet::loadText(files);
    return r.ok() ? "" : r.error().message;
}

std::string errorOf(const std::string& text) {
    return errorOf({{"p.json", text}});
}

constexpr int64_t kNow = 1795000000;  // 2026-11-18

TEST(Policy, PrecedenceExactThenLongestSuffixThenDefault) {
    auto p = load(R"({"policies": {
        "default": {"level": "dane"},
        ".example.org": {"level": "encrypt"},
        ".mail.example.org": {"level": "dane-only"},
        "example.org": {"level": "may", "reason": "test"}
    }})");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->lookup("example.org", kNow).effective.level, Level::May);
    EXPECT_EQ(p->lookup("EXAMPLE.org", kNow).effective.level, Level::May);
    EXPECT_EQ(p->lookup("a.example.org", kNow).effective.level, Level::Encrypt);
    EXPECT_EQ(p->lookup("x.mail.example.org", kNow).effective.level, Level::DaneOnly);
    EXPECT_EQ(p->lookup("mail.example.org", kNow).effective.level,
              Level::Encrypt);  // suffix: subdomains only
    EXPECT_EQ(p->lookup("other.net", kNow).effective.destination, "default");
    auto none = load(R"({"policies": {}})");
    EXPECT_EQ(none->lookup("x.net", kNow).effective.level, Level::Dane);  // built in
}

TEST(Policy, ExpiredEntryStopsApplyingWithAWarning) {
    auto p = load(R"({"policies": {
        "legacy.example": {"level": "may", "reason": "broken TLSA", "expires": "2026-11-20T00:00:00Z"}
    }})");
    ASSERT_TRUE(p);
    auto before = p->lookup("legacy.example", kNow);
    EXPECT_EQ(before.effective.level, Level::May);
    EXPECT_TRUE(before.warnings.empty());
    auto after = p->lookup("legacy.example", kNow + 7 * 86400);
    EXPECT_EQ(after.effective.level, Level::Dane);
    ASSERT_EQ(after.warnings.size(), 1u);
    EXPECT_NE(after.warnings[0].find("p.json:2"), std::string::npos) << after.warnings[0];
}

TEST(Policy, ReportOnlyIsEvaluatedBesideThePolicyBeneath) {
    auto p = load(R"({"policies": {
        "default": {"level": "dane"},
        "bank.example": {"level": "dane-only", "mode": "report-only"}
    }})");
    auto d = p->lookup("bank.example", kNow);
    EXPECT_EQ(d.effective.destination, "default");
    ASSERT_TRUE(d.reported);
    EXPECT_EQ(d.reported->level, Level::DaneOnly);
}

TEST(Policy, NextHopForms) {
    auto p = load(R"({"policies": {
        "a.example": {"next_hop": "smtp.upstream.example:587"},
        "b.example": {"next_hop": "[127.0.0.1]:10025"},
        "c.example": {"next_hop": "relay.example"}
    }})");
    auto a = p->lookup("a.example", kNow).effective.nextHop;
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "smtp.upstream.example");
    EXPECT_EQ(a->port, 587);
    EXPECT_FALSE(a->literal);
    auto b = p->lookup("b.example", kNow).effective.nextHop;
    EXPECT_TRUE(b->literal);
    EXPECT_EQ(b->host, "127.0.0.1");
    EXPECT_EQ(p->lookup("c.example", kNow).effective.nextHop->port, 25);
}

TEST(Policy, ErrorsNameFileLineAndColumn) {
    EXPECT_NE(errorOf("{\n \"policies\": {\n  \"a.example\": {\"level\": \"dane\",}\n }\n}")
                  .find("p.json:3:"),
              std::string::npos);
    EXPECT_NE(errorOf("{\"policies\": {\n\"a.example\": {\"levle\": \"dane\"}}}").find("p.json:2:"),
              std::string::npos);
    auto unknown = errorOf("{\"policies\": {\n\"a.example\": {\"levle\": \"dane\"}}}");
    EXPECT_NE(unknown.find("unknown key 'levle'"), std::string::npos) << unknown;
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"level": "strict"}}})").find("level 'strict'"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"level": 3}}})").find("must be a string"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"policies": {"bad domain": {}}})").find("is not a domain"),
              std::string::npos);
    EXPECT_NE(
        errorOf(R"({"policies": {"a.example": {"level": "none"}}})").find("needs a \"reason\""),
        std::string::npos);
    EXPECT_NE(errorOf(R"({"policies": {"default": {"level": "may", "reason": "x"}}})")
                  .find("default may not lower"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"expires": "next week"}}})").find("ISO 8601"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"next_hop": "[::1"}}})").find("next_hop"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"level": "dane", "mode": "report-only"}}})")
                  .find("report-only is for stricter"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"rules": {}})").find("unknown key 'rules'"), std::string::npos);
}

TEST(Policy, TlsKeys) {
    auto p = load(R"({"policies": {
        "a.example": {"level": "verify", "trust_store": "/etc/ssl/certs/ca-certificates.crt",
                      "min_tls_version": "TLS1.3",
                      "tls_pins": ["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                                   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
        "b.example": {"next_hop": "[127.0.0.1]:465", "implicit_tls": true, "auth": "b.auth"}
    }})");
    ASSERT_TRUE(p);
    auto a = p->lookup("a.example", kNow).effective;
    EXPECT_EQ(a.level, Level::Verify);
    EXPECT_EQ(a.minTlsVersion, 13);
    ASSERT_EQ(a.tlsPins.size(), 2u);
    EXPECT_EQ(a.tlsPins[0], a.tlsPins[1]);  // the same digest, base64 and hex
    auto b = p->lookup("b.example", kNow).effective;
    EXPECT_TRUE(b.implicitTls);
    EXPECT_EQ(b.authFile, "b.auth");
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"tls_pins": ["short"]}}})").find("SHA-256"),
              std::string::npos);
    EXPECT_NE(
        errorOf(R"({"policies": {"a.example": {"min_tls_version": "TLS1.1"}}})").find("TLS1.2"),
        std::string::npos);
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"auth": "x"}}})").find("needs a next_hop"),
              std::string::npos);
    EXPECT_NE(
        errorOf(R"({"policies": {"a.example": {"implicit_tls": "yes"}}})").find("true or false"),
        std::string::npos);
}

TEST(Policy, ConflictingEntriesAcrossFiles) {
    auto e = errorOf({{"one.json", R"({"policies": {"a.example": {"level": "dane"}}})"},
                      {"two.json", "{\"policies\": {\n\"a.example\": {\"level\": \"encrypt\"}}}"}});
    EXPECT_NE(e.find("two.json:2:"), std::string::npos) << e;
    EXPECT_NE(e.find("already defined at one.json:1"), std::string::npos) << e;
}

TEST(Policy, Iso8601) {
    int64_t t = 0;
    ASSERT_TRUE(parseIso8601("2026-12-01T00:00:00Z", &t));
    EXPECT_EQ(t, 1796083200);
    ASSERT_TRUE(parseIso8601("2026-12-01T01:00:00+01:00", &t));
    EXPECT_EQ(t, 1796083200);
    EXPECT_FALSE(parseIso8601("2026-13-01T00:00:00Z", &t));
    EXPECT_FALSE(parseIso8601("2026-12-01 00:00:00", &t));
}

}  // namespace

TEST(Policy, MtaStsLevelAndOptOut) {
    auto p = load(R"({"policies": {
        "strict.example": {"level": "sts"},
        "legacy.example": {"mta_sts": false, "reason": "their policy lists a retired MX"}
    }})");
    ASSERT_TRUE(p);
    auto strict = p->lookup("strict.example", kNow).effective;
    EXPECT_EQ(strict.level, Level::Sts);
    EXPECT_TRUE(strict.mtaSts);
    EXPECT_GT(strictness(Level::Sts), strictness(Level::Dane));
    auto legacy = p->lookup("legacy.example", kNow).effective;
    EXPECT_FALSE(legacy.mtaSts);
    EXPECT_EQ(legacy.level, Level::Dane);
    EXPECT_TRUE(p->lookup("other.example", kNow).effective.mtaSts);  // the default honours it
    // Ignoring a domain's MTA-STS policy is a lowering: a reason, always.
    auto noReason = errorOf(R"({"policies": {"a.example": {"mta_sts": false}}})");
    EXPECT_NE(noReason.find("needs a \"reason\""), std::string::npos) << noReason;
    EXPECT_NE(noReason.find("p.json:1:"), std::string::npos) << noReason;
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"mta_sts": "no"}}})").find("true or false"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"policies": {"a.example": {"level": "sts", "mta_sts": false,
                          "reason": "x"}}})")
                  .find("contradicts"),
              std::string::npos);
}
