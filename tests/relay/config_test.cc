#include "relay/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace danerelay::relay;

namespace {

class ConfigTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-config-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string write(const std::string& text) {
        std::string path = dir_ + "/danerelay.json";
        std::ofstream(path) << text;
        return path;
    }
    std::string errorOf(const std::string& text) {
        try {
            loadConfig(write(text));
        } catch (const ConfigError& e) {
            return e.what();
        }
        return "";
    }
    std::string dir_;
};

constexpr const char* kMinimal =
    R"({"spool_dir": "spool", "listeners": [{"address": "127.0.0.1:2525"}]})";

TEST_F(ConfigTest, MinimalWithDefaults) {
    auto c = loadConfig(write(kMinimal));
    EXPECT_EQ(c.spoolDir, dir_ + "/spool");  // relative to the config file
    ASSERT_EQ(c.listeners.size(), 1u);
    EXPECT_EQ(c.listeners[0].port, 2525);
    EXPECT_EQ(c.listeners[0].tls, ListenerTls::StartTls);
    EXPECT_EQ(c.limits.maxMessageSize, 10240000u);
    EXPECT_FALSE(c.hostname.empty());
    // DNSSEC is validated in-process by default, from Debian's root anchor.
    EXPECT_EQ(c.dns.validation, "local");
    EXPECT_EQ(c.dns.trustAnchor, "/usr/share/dns/root.key");
}

TEST_F(ConfigTest, DnssecValidationModes) {
    auto c = loadConfig(write(
        R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
            "dns": {"validation": "local", "trust_anchor": "keys/test.anchor"}})"));
    EXPECT_EQ(c.dns.trustAnchor, dir_ + "/keys/test.anchor");  // relative to the config file
    c = loadConfig(write(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
                             "dns": {"validation": "resolver"}})"));
    EXPECT_EQ(c.dns.validation, "resolver");
    EXPECT_NE(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
                          "dns": {"validation": "ad-bit"}})")
                  .find("dns.validation"),
              std::string::npos);
}

TEST_F(ConfigTest, MissingTrustAnchorIsAClearError) {
    DnsConfig d;
    d.trustAnchor = dir_ + "/no-such.key";
    auto v = loadValidator(d);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("dns.trust_anchor"), std::string::npos) << v.error().message;
    EXPECT_NE(v.error().message.find(dir_ + "/no-such.key"), std::string::npos);
    std::ofstream(dir_ + "/bad.key") << ". IN DNSKEY 257 3 8 AwEAAaz\n. IN A 127.0.0.1\n";
    d.trustAnchor = dir_ + "/bad.key";
    v = loadValidator(d);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("bad.key:"), std::string::npos) << v.error().message;
}

TEST_F(ConfigTest, ShippedExampleLoads) {
    const char* src = std::getenv("DANERELAY_SOURCE");
    std::string path = std::string(src ? src : DANERELAY_SOURCE_DIR) + "/etc/danerelay.json";
    auto c = loadConfig(path);
    EXPECT_EQ(c.listeners.size(), 2u);
    EXPECT_FALSE(c.relayNetworks.empty());
    EXPECT_EQ(c.dns.validation, "local");
}

TEST_F(ConfigTest, SyntaxErrorNamesLineAndColumn) {
    auto e = errorOf("{\n  \"spool_dir\": \"x\",\n  \"listeners\": [,]\n}");
    EXPECT_NE(e.find("danerelay.json:3:"), std::string::npos) << e;
}

TEST_F(ConfigTest, SemanticErrorsNameTheKey) {
    EXPECT_NE(
        errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:2525"}], "bogus": 1})")
            .find("bogus: unknown key"),
        std::string::npos);
    EXPECT_NE(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1"}]})")
                  .find("listeners[0].address"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:99999"}]})")
                  .find("not a port"),
              std::string::npos);
    EXPECT_NE(
        errorOf(R"({"listeners": [{"address": "127.0.0.1:25"}]})").find("spool_dir: is required"),
        std::string::npos);
    EXPECT_NE(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
                          "relay_networks": ["127.0.0.1/8"]})")
                  .find("relay_networks[0]"),
              std::string::npos);
    EXPECT_NE(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
                          "limits": {"max_recipients": 0}})")
                  .find("limits.max_recipients"),
              std::string::npos);
    EXPECT_NE(
        errorOf(
            R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:465", "tls": "implicit"}]})")
            .find("no 'tls' section"),
        std::string::npos);
    EXPECT_NE(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
                          "auth": {"credentials": "c"}})")
                  .find("only offered over TLS"),
              std::string::npos);
}

}  // namespace
