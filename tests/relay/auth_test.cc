#include "relay/inbound/auth.h"
#include "relay/runtime/base64.h"

#include <crypt.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace danerelay::relay;

namespace {

std::string yescrypt(const std::string& pw) {
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    EXPECT_NE(crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof salt), nullptr);
    crypt_data d{};
    return crypt_r(pw.c_str(), salt, &d);
}

class AuthTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-auth-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string write(const std::string& text) {
        std::ofstream(dir_ + "/creds") << text;
        return dir_ + "/creds";
    }
    std::string dir_;
};

TEST_F(AuthTest, VerifiesYescryptHashes) {
    auto c = Credentials::load(write("# users\n\napp:" + yescrypt("s3cret") + "\n"));
    EXPECT_EQ(c.size(), 1u);
    EXPECT_TRUE(c.verify("app", "s3cret"));
    EXPECT_FALSE(c.verify("app", "s3cret "));
    EXPECT_FALSE(c.verify("nobody", "s3cret"));
}

TEST_F(AuthTest, PlaintextPasswordIsRefusedWithFileAndLine) {
    try {
        Credentials::load(write("ok:" + yescrypt("x") + "\nbad:hunter2\n"));
        FAIL() << "expected an error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("creds:2:"), std::string::npos) << e.what();
    }
}

TEST_F(AuthTest, DuplicateUserIsAnError) {
    auto h = yescrypt("x");
    EXPECT_THROW(Credentials::load(write("a:" + h + "\na:" + h + "\n")), std::runtime_error);
}

TEST(Base64, RoundTripAndRejects) {
    for (const std::string& s :
         std::vector<std::string>{"", "a", "ab", "abc", std::string("\0user\0pw", 8)}) {
        auto d = base64Decode(base64Encode(s));
        ASSERT_TRUE(d.has_value());
        EXPECT_EQ(*d, s);
    }
    EXPECT_FALSE(base64Decode("abc").has_value());
    EXPECT_FALSE(base64Decode("a=bc").has_value());
    EXPECT_FALSE(base64Decode("ab!c").has_value());
    EXPECT_FALSE(base64Decode("a===").has_value());
}

TEST(SaslPlain, Decodes) {
    std::string u, p;
    EXPECT_TRUE(decodeSaslPlain(std::string("\0app\0pw", 7), &u, &p));
    EXPECT_EQ(u, "app");
    EXPECT_EQ(p, "pw");
    EXPECT_TRUE(decodeSaslPlain(std::string("app\0app\0pw", 10), &u, &p));
    EXPECT_FALSE(decodeSaslPlain(std::string("other\0app\0pw", 12), &u, &p));
    EXPECT_FALSE(decodeSaslPlain("nonul", &u, &p));
    EXPECT_FALSE(decodeSaslPlain(std::string("\0\0pw", 4), &u, &p));
}

}  // namespace
