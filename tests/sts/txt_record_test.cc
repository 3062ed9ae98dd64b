#include "sts/txt_record.h"

#include <gtest/gtest.h>

using namespace danerelay;
using namespace danerelay::sts;

namespace {

std::string idOf(std::string_view r) {
    auto id = parseTxtRecord("example.com", r);
    return id ? *id : "ERROR: " + id.error().message;
}

std::string errorOf(std::string_view r) {
    auto id = parseTxtRecord("example.com", r);
    return id ? "" : id.error().message;
}

TEST(StsTxtRecord, RfcExample) {
    // RFC 8461 3.1.
    EXPECT_EQ(idOf("v=STSv1; id=20160831085700Z;"), "20160831085700Z");
    EXPECT_EQ(idOf("v=STSv1; id=20160831085700Z"), "20160831085700Z");
}

TEST(StsTxtRecord, DelimitersAndExtensions) {
    EXPECT_EQ(idOf("v=STSv1;id=abc"), "abc");
    EXPECT_EQ(idOf("v=STSv1 \t;\t id=abc \t; "), "abc");
    EXPECT_EQ(idOf("v=STSv1; foo=bar; id=abc; x.y_z-1=!\"#$%&'()*+,-./:<>?@[]^_`{|}~"), "abc");
    EXPECT_EQ(idOf("v=STSv1; id=" + std::string(32, 'a')), std::string(32, 'a'));
}

TEST(StsTxtRecord, StrictSyntax) {
    EXPECT_NE(errorOf("v=STSv1"), "");                 // no field at all
    EXPECT_NE(errorOf("v=STSv1;"), "");                // no id
    EXPECT_NE(errorOf("v=STSv1; foo=bar"), "");        // no id
    EXPECT_NE(errorOf("v=STSv2; id=abc"), "");         // other version
    EXPECT_NE(errorOf("V=STSv1; id=abc"), "");         // case-sensitive
    EXPECT_NE(errorOf("v=stsv1; id=abc"), "");         // case-sensitive
    EXPECT_NE(errorOf(" v=STSv1; id=abc"), "");        // leading space
    EXPECT_NE(errorOf("v=STSv1 id=abc"), "");          // no delimiter
    EXPECT_NE(errorOf("v=STSv1; id=abc "), "");        // trailing space without ';'
    EXPECT_NE(errorOf("v=STSv1; id="), "");            // empty id
    EXPECT_NE(errorOf("v=STSv1; id=2019-04-29"), "");  // not alphanumeric
    EXPECT_NE(errorOf("v=STSv1; id=" + std::string(33, 'a')), "");
    EXPECT_NE(errorOf("v=STSv1; id=abc; id=abc"), "");    // a second id
    EXPECT_NE(errorOf("v=STSv1; id=abc;; foo=bar"), "");  // empty field
    EXPECT_NE(errorOf("v=STSv1; id=abc; foo"), "");       // no '='
    EXPECT_NE(errorOf("v=STSv1; id=abc; foo="), "");      // empty value
    EXPECT_NE(errorOf("v=STSv1; id=abc; foo=a=b"), "");   // '=' in a value
    EXPECT_NE(errorOf("v=STSv1; id=abc; _foo=1"), "");    // name starts with '_'
    EXPECT_NE(errorOf("v=STSv1; id=abc; " + std::string(33, 'n') + "=1"), "");
    EXPECT_NE(errorOf(std::string("v=STSv1; id=ab\0c", 16)), "");
    EXPECT_NE(errorOf("v=STSv1; id=abc; x=\xc3\xa9"), "");  // not printable ASCII
    EXPECT_NE(errorOf("v=STSv1; id=abc\r\n"), "");
}

TEST(StsTxtRecord, ErrorsNameTheDomainAndQuoteSafely) {
    auto e = errorOf("v=STSv1; id=\x01\xff\"bad");
    EXPECT_NE(e.find("_mta-sts.example.com"), std::string::npos) << e;
    EXPECT_NE(e.find("\\x01\\xff\\\"bad"), std::string::npos) << e;
    auto huge = errorOf("v=STSv1; junk" + std::string(100000, 'x'));
    EXPECT_LT(huge.size(), 300u) << huge;
}

TEST(StsTxtRecord, ExactlyOneRecord) {
    auto one = selectTxtRecord("example.com", {"v=spf1 -all", "v=STSv1; id=abc", "hello"});
    EXPECT_EQ(one.status, TxtStatus::Found);
    EXPECT_EQ(one.id, "abc");

    auto none = selectTxtRecord("example.com", {"v=spf1 -all", "v=STSv10; id=abc"});
    EXPECT_EQ(none.status, TxtStatus::Absent);
    EXPECT_EQ(selectTxtRecord("example.com", {}).status, TxtStatus::Absent);

    // Two records, even identical or one of them broken: no usable record.
    auto two = selectTxtRecord("example.com", {"v=STSv1; id=abc", "v=STSv1; id=abc"});
    EXPECT_EQ(two.status, TxtStatus::Invalid);
    EXPECT_NE(two.error.find("_mta-sts.example.com"), std::string::npos) << two.error;
    EXPECT_EQ(selectTxtRecord("example.com", {"v=STSv1; id=abc", "v=STSv1"}).status,
              TxtStatus::Invalid);
    // A record with space before the delimiter still counts as STSv1 (the
    // ABNF's delimiter), so it is not silently discarded.
    EXPECT_EQ(selectTxtRecord("example.com", {"v=STSv1; id=abc", "v=STSv1 ;id=def"}).status,
              TxtStatus::Invalid);

    auto broken = selectTxtRecord("example.com", {"v=STSv1; id=a-b"});
    EXPECT_EQ(broken.status, TxtStatus::Invalid);
    EXPECT_NE(broken.error.find("_mta-sts.example.com"), std::string::npos) << broken.error;
    EXPECT_TRUE(broken.id.empty());
}

}  // namespace
