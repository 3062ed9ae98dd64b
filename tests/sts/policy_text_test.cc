#include "sts/policy_text.h"

#include <gtest/gtest.h>

using namespace danerelay;
using namespace danerelay::sts;

namespace {

// RFC 8461 3.2's example, with CRLF line ends as the section's prose says.
constexpr std::string_view kRfcExample =
    "version: STSv1\r\n"
    "mode: enforce\r\n"
    "mx: mail.example.com\r\n"
    "mx: *.example.net\r\n"
    "mx: backupmx.example.com\r\n"
    "max_age: 604800\r\n";

Policy parse(std::string_view text) {
    auto p = parsePolicy("example.com", text);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    return p.ok() ? *p : Policy{};
}

std::string errorOf(std::string_view text) {
    auto p = parsePolicy("example.com", text);
    return p.ok() ? "" : p.error().message;
}

TEST(StsPolicyText, RfcExample) {
    auto p = parse(kRfcExample);
    EXPECT_EQ(p.mode, Mode::Enforce);
    EXPECT_EQ(p.maxAge, 604800);
    EXPECT_FALSE(p.maxAgeCapped);
    ASSERT_EQ(p.mx.size(), 3u);
    EXPECT_EQ(p.mx[0], "mail.example.com");
    EXPECT_EQ(p.mx[1], "*.example.net");
    EXPECT_EQ(p.mx[2], "backupmx.example.com");
    EXPECT_TRUE(p.matchesMx("mail.example.com"));
    EXPECT_TRUE(p.matchesMx("MAIL.Example.COM."));
    EXPECT_TRUE(p.matchesMx("mx1.example.net"));
    EXPECT_FALSE(p.matchesMx("example.net"));
    EXPECT_FALSE(p.matchesMx("a.b.example.net"));
    EXPECT_FALSE(p.matchesMx("example.com"));
    EXPECT_FALSE(p.matchesMx("evil-mail.example.com"));
    EXPECT_FALSE(p.matchesMx("mail.example.com.evil.net"));
}

TEST(StsPolicyText, LineEndsLfCrlfMixedAndNone) {
    std::string lf(kRfcExample);
    for (size_t i; (i = lf.find('\r')) != std::string::npos;) lf.erase(i, 1);
    EXPECT_EQ(parse(lf).mx.size(), 3u);
    EXPECT_EQ(parse(lf.substr(0, lf.size() - 1)).maxAge, 604800);  // no final terminator
    EXPECT_EQ(parse("version: STSv1\r\nmode: testing\nmx: a.example.com\r\nmax_age: 1").mode,
              Mode::Testing);
    // White space: after the colon and at the end of the line, spaces or tabs.
    auto p = parse("version:STSv1 \t\nmode:\t none\t\nmax_age:   0  \r\n");
    EXPECT_EQ(p.mode, Mode::None);
    EXPECT_EQ(p.maxAge, 0);
}

TEST(StsPolicyText, ModeNoneNeedsNoMx) {
    auto p = parse("version: STSv1\nmode: none\nmax_age: 86400\n");
    EXPECT_EQ(p.mode, Mode::None);
    EXPECT_TRUE(p.mx.empty());
    EXPECT_FALSE(p.matchesMx("mail.example.com"));
    EXPECT_NE(errorOf("version: STSv1\nmode: testing\nmax_age: 86400\n").find("no mx"),
              std::string::npos);
    EXPECT_NE(errorOf("version: STSv1\nmode: enforce\nmax_age: 86400\n").find("no mx"),
              std::string::npos);
}

TEST(StsPolicyText, MaxAgeBoundsAndCap) {
    auto age = [](std::string_view v) {
        return "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: " + std::string(v);
    };
    EXPECT_EQ(parse(age("31557600")).maxAge, 31557600);
    EXPECT_FALSE(parse(age("31557600")).maxAgeCapped);
    // Choice: above a year is capped (and flagged), not refused.
    EXPECT_EQ(parse(age("31557601")).maxAge, 31557600);
    EXPECT_TRUE(parse(age("31557601")).maxAgeCapped);
    EXPECT_EQ(parse(age("9999999999")).maxAge, 31557600);
    EXPECT_EQ(parse(age("0000000007")).maxAge, 7);
    EXPECT_NE(errorOf(age("10000000000")), "");  // 11 digits: outside the ABNF
    EXPECT_NE(errorOf(age("99999999999999999999999")), "");
    EXPECT_NE(errorOf(age("-1")), "");
    EXPECT_NE(errorOf(age("+5")), "");
    EXPECT_NE(errorOf(age("1e6")), "");
    EXPECT_NE(errorOf(age("86400s")), "");
    EXPECT_NE(errorOf(age("86 400")), "");
    EXPECT_NE(errorOf(age("0x10")), "");
}

TEST(StsPolicyText, DuplicatesFollowTheRfc) {
    // Every mx counts; of other fields the first is used, later ones ignored
    // (even a later value that would be invalid on its own).
    auto p = parse(
        "version: STSv1\nmode: testing\nmx: a.example.com\nmode: enforce\nmax_age: 100\n"
        "mx: b.example.com\nmax_age: 5\nversion: STSv2\nmode: bogus\n");
    EXPECT_EQ(p.mode, Mode::Testing);
    EXPECT_EQ(p.maxAge, 100);
    EXPECT_EQ(p.mx.size(), 2u);
}

TEST(StsPolicyText, UnknownFieldsIgnoredIfWellFormed) {
    auto p = parse(
        "version: STSv1\nmode: enforce\nfoo: bar baz\nx.y_z-9: =;:\"'\nMode: none\n"
        "note: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\nmx: mx.example.com\nmax_age: 60\n");
    EXPECT_EQ(p.mode, Mode::Enforce);  // "Mode" is another field: names are case-sensitive
    EXPECT_NE(errorOf("version: STSv1\nmode: none\nmax_age: 1\n_x: 1\n"), "");
    EXPECT_NE(errorOf("version: STSv1\nmode: none\nmax_age: 1\n" + std::string(33, 'a') + ": 1"),
              "");
    EXPECT_NE(errorOf("version: STSv1\nmode: none\nmax_age: 1\nx:\n"), "");           // empty
    EXPECT_NE(errorOf("version: STSv1\nmode: none\nmax_age: 1\nx: a\tb\n"), "");      // inner tab
    EXPECT_NE(errorOf("version: STSv1\nmode: none\nmax_age: 1\nx: \xc3\n"), "");      // cut UTF-8
    EXPECT_NE(errorOf("version: STSv1\nmode: none\nmax_age: 1\nx: \xc0\xaf\n"), "");  // overlong
    EXPECT_NE(errorOf("version: STSv1\nmode: none\nmax_age: 1\nx: \xed\xa0\x80\n"), "");
    EXPECT_NE(errorOf("version: STSv1\nmode: none\nmax_age: 1\nx: \xf4\x90\x80\x80\n"), "");
    EXPECT_NE(errorOf(std::string("version: STSv1\nmode: none\nmax_age: 1\nx: a\0b\n", 42)), "");
}

TEST(StsPolicyText, StrictStructure) {
    const std::string rest = "mode: enforce\nmx: mx.example.com\nmax_age: 60\n";
    EXPECT_NE(errorOf(""), "");
    EXPECT_NE(errorOf(rest).find("line 1: the first field must be version"), std::string::npos);
    EXPECT_NE(errorOf("mode: enforce\nversion: STSv1\nmx: mx.example.com\nmax_age: 60\n"), "");
    EXPECT_NE(errorOf("version: STSv2\n" + rest).find("unsupported version"), std::string::npos);
    EXPECT_NE(errorOf("version: stsv1\n" + rest), "");
    EXPECT_NE(errorOf("Version: STSv1\n" + rest), "");
    EXPECT_NE(errorOf("\xef\xbb\xbfversion: STSv1\n" + rest), "");  // a BOM is not a field
    EXPECT_NE(errorOf(" version: STSv1\n" + rest), "");
    EXPECT_NE(errorOf("version : STSv1\n" + rest), "");
    EXPECT_NE(errorOf("version: STSv1\n\n" + rest).find("line 2: empty line"), std::string::npos);
    EXPECT_NE(errorOf("version: STSv1\n" + rest + "\n"), "");  // a blank last line
    EXPECT_NE(errorOf("version: STSv1\r" + rest).find("CR not followed by LF"), std::string::npos);
    EXPECT_NE(errorOf("version: STSv1\n" + rest + "\r"), "");
    EXPECT_NE(errorOf("version: STSv1\nmode enforce\nmx: mx.example.com\nmax_age: 60\n")
                  .find("line 2: no ':'"),
              std::string::npos);
    EXPECT_NE(errorOf("version: STSv1\nmode: Enforce\nmx: mx.example.com\nmax_age: 60\n")
                  .find("line 2: mode must be"),
              std::string::npos);
    EXPECT_NE(errorOf("version: STSv1\nmode: report\nmx: mx.example.com\nmax_age: 60\n"), "");
    EXPECT_NE(errorOf("version: STSv1\nmx: mx.example.com\nmax_age: 60\n").find("no mode"),
              std::string::npos);
    EXPECT_NE(errorOf("version: STSv1\nmode: enforce\nmx: mx.example.com\n").find("no max_age"),
              std::string::npos);
}

TEST(StsPolicyText, MxPatternSyntax) {
    auto mx = [](std::string_view v) {
        return "version: STSv1\nmode: enforce\nmax_age: 60\nmx: " + std::string(v) + "\n";
    };
    EXPECT_EQ(parse(mx("MX.Example.NET.")).mx.at(0), "mx.example.net");  // choice: one dot ok
    EXPECT_EQ(parse(mx("*.Example.net")).mx.at(0), "*.example.net");
    EXPECT_EQ(parse(mx("localhost")).mx.at(0), "localhost");
    EXPECT_EQ(parse(mx("xn--bcher-kva.example")).mx.at(0), "xn--bcher-kva.example");
    for (auto bad : {"*", "*.", ".example.net", "mx..example.net", "mx.example.net..", "*.*.a.net",
                     "mx.*.example.net", "m*.example.net", "*example.net", "-mx.example.net",
                     "mx-.example.net", "mx_1.example.net", "mx example.net", "[127.0.0.1]",
                     "mx.example.net:25", "mx.exa\xc3\xa9mple.net"}) {
        EXPECT_NE(errorOf(mx(bad)).find("line 4: mx must be"), std::string::npos) << bad;
    }
    EXPECT_NE(errorOf(mx(std::string(64, 'a') + ".net")), "");
    EXPECT_EQ(parse(mx(std::string(63, 'a') + ".net")).mx.size(), 1u);
    std::string long254;
    while (long254.size() < 250) long254 += "abcdefghi.";
    long254 += "net";  // 253 octets
    EXPECT_EQ(long254.size(), 253u);
    EXPECT_EQ(parse(mx(long254)).mx.size(), 1u);
    EXPECT_NE(errorOf(mx("a" + long254)), "");
}

TEST(StsPolicyText, ErrorsNameDomainAndLineAndQuoteSafely) {
    auto e = errorOf("version: STSv1\nmode: enforce\nmx: \x01\x7f\"x\nmax_age: 60\n");
    EXPECT_NE(e.find("MTA-STS policy for example.com: line 3: "), std::string::npos) << e;
    // \x01 is not a value character at all, so the value check catches it.
    EXPECT_NE(e.find("\\x01\\x7f\\\"x"), std::string::npos) << e;
    std::string big = "version: STSv1\nmode: enforce\nmx: " + std::string(10000, 'a') + "\n";
    EXPECT_LT(errorOf(big).size(), 300u);
    EXPECT_NE(errorOf(std::string(kMaxPolicyBytes + 1, 'a')).find("larger than"),
              std::string::npos);
}

TEST(StsPolicyText, MxPatternMatchingRfc8461Section41) {
    // "*.example.com" matches "mail.example.com" but not "example.com" or
    // "foo.bar.example.com".
    EXPECT_TRUE(mxPatternMatches("*.example.com", "mail.example.com"));
    EXPECT_FALSE(mxPatternMatches("*.example.com", "example.com"));
    EXPECT_FALSE(mxPatternMatches("*.example.com", "foo.bar.example.com"));
    // Case and trailing dots on either side.
    EXPECT_TRUE(mxPatternMatches("*.EXAMPLE.com.", "Mail.Example.Com."));
    EXPECT_TRUE(mxPatternMatches("mx.example.com", "MX.EXAMPLE.COM."));
    // Hostile host names match nothing.
    EXPECT_FALSE(mxPatternMatches("*.example.com", ".example.com"));
    EXPECT_FALSE(mxPatternMatches("*.example.com", "*.example.com"));
    EXPECT_FALSE(mxPatternMatches("*.example.com", "a..example.com"));
    EXPECT_FALSE(mxPatternMatches("*.example.com", "a b.example.com"));
    EXPECT_FALSE(mxPatternMatches("*.example.com", std::string("a\0.example.com", 14)));
    EXPECT_FALSE(mxPatternMatches("*.example.com", "mail.example.com.."));
    EXPECT_FALSE(mxPatternMatches("mx.example.com", "mx.example.com.."));
    EXPECT_FALSE(mxPatternMatches("*.example.com", "mail.example.comx"));
    EXPECT_FALSE(mxPatternMatches("*.example.com", "mail.xexample.com"));
    EXPECT_FALSE(mxPatternMatches("", ""));
    EXPECT_FALSE(mxPatternMatches("*.", "a."));
    // No suffix matching without the wildcard.
    EXPECT_FALSE(mxPatternMatches("example.com", "mail.example.com"));
}

}  // namespace
