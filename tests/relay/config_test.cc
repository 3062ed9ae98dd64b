#include "relay/runtime/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
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
    EXPECT_EQ(c.limits.maxSessionsPerNetwork, 20u);
    EXPECT_EQ(c.limits.maxHops, 100u);
    EXPECT_EQ(c.limits.reservedSessions, 10u);  // a tenth of max_sessions
}

TEST_F(ConfigTest, ReservedSessionsBelowMaxSessions) {
    auto cfg = [](const std::string& limits) {
        return R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}], "limits": {)" +
               limits + "}}";
    };
    EXPECT_EQ(loadConfig(write(cfg(R"("max_sessions": 5)"))).limits.reservedSessions, 0u);
    EXPECT_EQ(loadConfig(write(cfg(R"("max_sessions": 50)"))).limits.reservedSessions, 5u);
    EXPECT_EQ(loadConfig(write(cfg(R"("max_sessions": 5, "reserved_sessions": 4)")))
                  .limits.reservedSessions,
              4u);
    auto e = errorOf(cfg(R"("max_sessions": 5, "reserved_sessions": 5)"));
    EXPECT_NE(e.find("danerelay.json: limits.reserved_sessions: must be less than "
                     "limits.max_sessions (5)"),
              std::string::npos)
        << e;
}

TEST_F(ConfigTest, DnssecValidationModes) {
    auto c = loadConfig(write(
        R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
            "dns": {"validation": "local", "trust_anchor": "keys/test.anchor"}})"));
    EXPECT_EQ(c.dns.trustAnchor, dir_ + "/keys/test.anchor");  // relative to the config file
    c = loadConfig(write(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
                             "dns": {"validation": "resolver", "resolvers": ["127.0.0.1"]}})"));
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
    // Its certificate is made by etc/make-cert.sh: not checked here.
    auto c = loadConfig(path, FileCheck::Skip);
    EXPECT_EQ(c.listeners.size(), 2u);
    EXPECT_FALSE(c.relayNetworks.empty());
    EXPECT_EQ(c.dns.validation, "local");
    EXPECT_EQ(c.user, "danerelay");  // a root start drops to it
    EXPECT_EQ(c.spoolDir, "/var/spool/danerelay");
}

TEST_F(ConfigTest, UserControlGroupAndLogFormat) {
    const std::string base = R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:2525"}], )";
    for (const char* bad : {R"("user": "")", R"("user": "-x")", R"("user": "a/b")",
                            R"("user": "a b")", R"("user": 7)", R"("control_group": "x:y")"}) {
        std::string e = errorOf(base + bad + "}");
        bool named = e.find(": user: ") != std::string::npos ||
                     e.find(": control_group: must be") != std::string::npos;
        EXPECT_TRUE(named) << bad << " -> " << e;
    }
    auto c = loadConfig(
        write(base + R"("user": "danerelay", "control_group": "adm", "log_format": "json"})"));
    EXPECT_EQ(c.user, "danerelay");
    EXPECT_EQ(c.controlGroup, "adm");
    EXPECT_EQ(c.logFormat, LogFormat::Json);
    EXPECT_NE(errorOf(base + R"("log_format": "xml"})").find("log_format: must be \"kv\" or"),
              std::string::npos);
}

TEST_F(ConfigTest, MtaSts) {
    const std::string base = R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:2525"}], )";
    auto d = loadConfig(write(kMinimal));
    EXPECT_TRUE(d.mtaSts.enabled);  // on by default, with the system's CAs
    EXPECT_EQ(d.mtaSts.trustStore, "");
    EXPECT_EQ(d.mtaSts.port, 443);
    EXPECT_EQ(d.mtaSts.fetchTimeout, 60u);
    std::ofstream(dir_ + "/ca.pem") << "-----BEGIN CERTIFICATE-----\n";
    auto c = loadConfig(write(base + R"("mta_sts": {"enabled": false, "trust_store": "ca.pem",
                                        "port": 8443, "fetch_timeout": 5}})"));
    EXPECT_FALSE(c.mtaSts.enabled);
    EXPECT_EQ(c.mtaSts.trustStore, dir_ + "/ca.pem");  // relative to the config file
    EXPECT_EQ(c.mtaSts.port, 8443);
    EXPECT_EQ(c.mtaSts.fetchTimeout, 5u);
    EXPECT_NE(
        errorOf(base + R"("mta_sts": {"trust_store": "missing.pem"}})").find("mta_sts.trust_store"),
        std::string::npos);
    EXPECT_NE(errorOf(base + R"("mta_sts": {"fetch_timeout": 0}})").find("mta_sts.fetch_timeout"),
              std::string::npos);
    EXPECT_NE(errorOf(base + R"("mta_sts": {"enable": true}})").find("enable"), std::string::npos);
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

// Without dns.resolvers the relay uses resolv.conf's nameservers, as every
// other program on the machine does (issue 15); these tests name a file of
// their own, never the machine's.
TEST_F(ConfigTest, ResolversComeFromResolvConfWhenNotListed) {
    std::ofstream(dir_ + "/resolv.conf") << "# written by a test\n"
                                         << "search example.org\n"
                                         << "; another comment\n"
                                         << "nameserver 192.0.2.1\n"
                                         << "nameserver   2001:db8::53  # trailing comment\n"
                                         << "nameserver fe80::1%eth0\n"
                                         << "nameserver 192.0.2.9:53\n"
                                         << "nameserver 127.0.0.1\n"
                                         << "nameserver 192.0.2.4\n"
                                         << "options edns0\n";
    auto c = loadConfig(write(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
                                  "dns": {"resolv_conf": "resolv.conf"}})"));
    ASSERT_EQ(c.dns.resolvers.size(), 3u);  // the C library's MAXNS
    EXPECT_EQ(c.dns.resolvers[0].text(), "192.0.2.1:53");
    EXPECT_EQ(c.dns.resolvers[1].host, "2001:db8::53");
    EXPECT_EQ(c.dns.resolvers[2].text(), "127.0.0.1:53");
    // Nothing from resolv.conf is believed for its AD bit, loopback or not.
    for (const auto& r : c.dns.resolvers) EXPECT_FALSE(r.trusted) << r.text();
    EXPECT_EQ(c.dns.resolversFrom, dir_ + "/resolv.conf");
    EXPECT_EQ(resolversText(c.dns), "192.0.2.1:53,[2001:db8::53]:53,127.0.0.1:53");
    // Each skipped line is named, file:line.
    ASSERT_EQ(c.dns.resolverNotes.size(), 3u);
    EXPECT_NE(c.dns.resolverNotes[0].find("/resolv.conf:6: nameserver fe80::1%eth0"),
              std::string::npos)
        << c.dns.resolverNotes[0];
    EXPECT_NE(c.dns.resolverNotes[1].find("/resolv.conf:7: nameserver 192.0.2.9:53: not an IP"),
              std::string::npos)
        << c.dns.resolverNotes[1];
    EXPECT_NE(c.dns.resolverNotes[2].find("/resolv.conf:9: nameserver 192.0.2.4: only the first 3"),
              std::string::npos)
        << c.dns.resolverNotes[2];
}

TEST_F(ConfigTest, ResolvConfWithoutNameserversMeansLoopbackAsTheCLibrary) {
    std::ofstream(dir_ + "/resolv.conf") << "search example.org\nnameserver\n";
    auto c = loadConfig(write(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],
                                  "dns": {"resolv_conf": "resolv.conf"}})"));
    ASSERT_EQ(c.dns.resolvers.size(), 1u);
    EXPECT_EQ(c.dns.resolvers[0].text(), "127.0.0.1:53");
    EXPECT_FALSE(c.dns.resolvers[0].trusted);
    EXPECT_NE(c.dns.resolversFrom.find("no usable nameserver"), std::string::npos);
}

TEST_F(ConfigTest, ResolvConfErrorsNameTheKey) {
    const std::string head = R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}],)";
    // A file the config names must be there.
    auto e = errorOf(head + R"("dns": {"resolv_conf": "missing.conf"}})");
    EXPECT_NE(e.find("dns.resolv_conf"), std::string::npos) << e;
    EXPECT_NE(e.find("missing.conf"), std::string::npos) << e;
    // A directory, or a FIFO (which must not hang the start).
    e = errorOf(head + R"("dns": {"resolv_conf": "."}})");
    EXPECT_NE(e.find("is a directory"), std::string::npos) << e;
    ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
    e = errorOf(head + R"("dns": {"resolv_conf": "fifo"}})");
    EXPECT_NE(e.find("not a regular file"), std::string::npos) << e;
    // Both: ambiguous.
    e = errorOf(head + R"("dns": {"resolvers": ["127.0.0.1"], "resolv_conf": "x"}})");
    EXPECT_NE(e.find("not both"), std::string::npos) << e;
    // Resolver mode believes an AD bit: its resolvers are named, never inherited.
    std::ofstream(dir_ + "/resolv.conf") << "nameserver 127.0.0.1\n";
    e = errorOf(head + R"("dns": {"validation": "resolver", "resolv_conf": "resolv.conf"}})");
    EXPECT_NE(e.find("dns.resolvers"), std::string::npos) << e;
    e = errorOf(head + R"("dns": {"validation": "resolver"}})");
    EXPECT_NE(e.find("dns.resolvers"), std::string::npos) << e;
}

TEST_F(ConfigTest, HostnameMustBeADnsName) {
    auto withHost = [](const std::string& h) {
        return R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}], "hostname": )" +
               h + "}";
    };
    // It goes into the greeting: a CR LF would let the file forge SMTP replies.
    for (const char* bad :
         {R"("relay.test\r\n250 injected")", R"("relay.test\n")", R"("relay test")",
          R"("relay..test")", R"("-relay.test")", R"("relay_x.test")", R"("")", R"(".")"}) {
        auto e = errorOf(withHost(bad));
        EXPECT_NE(e.find("danerelay.json: hostname: must be a DNS host name"), std::string::npos)
            << bad << ": " << e;
    }
    EXPECT_EQ(loadConfig(write(withHost(R"("mx-1.Relay.example")"))).hostname,
              "mx-1.Relay.example");
    EXPECT_EQ(errorOf(withHost("null")), "");  // as if absent: the system's name
}

TEST_F(ConfigTest, DuplicateKeysAreRefusedWithTheirLine) {
    auto e = errorOf(
        "{\"spool_dir\": \"s\",\n \"listeners\": [{\"address\": \"127.0.0.1:25\"}],\n"
        " \"spool_dir\": \"t\"}");
    EXPECT_NE(e.find("danerelay.json:3:2: spool_dir: duplicate key"), std::string::npos) << e;
    e = errorOf(
        "{\"spool_dir\": \"s\", \"listeners\": [{\"address\": \"127.0.0.1:25\"},\n"
        "  {\"address\": \"127.0.0.1:26\", \"tls\": \"x\", \"address\": \"a\"}],\n"
        " \"limits\": {\"max_errors\": 1}}");
    EXPECT_NE(e.find("danerelay.json:2:43: listeners[1].address: duplicate key"), std::string::npos)
        << e;
    e = errorOf(
        "{\"spool_dir\": \"s\", \"listeners\": [{\"address\": \"127.0.0.1:25\"}],\n"
        " \"limits\": {\"max_errors\": 1, \"a\\\"\": 2,\n \"max_errors\": 2}}");
    EXPECT_NE(e.find("danerelay.json:3:2: limits.max_errors: duplicate key"), std::string::npos)
        << e;
    // The same key in different objects is no duplicate.
    EXPECT_EQ(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"},
                          {"address": "127.0.0.1:26"}]})"),
              "");
}

TEST_F(ConfigTest, NumbersOutOfRangeSayTheRange) {
    auto withLimit = [](const std::string& section, const std::string& kv) {
        return R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}], )" +
               (section.empty() ? kv : "\"" + section + "\": {" + kv + "}") + "}";
    };
    struct Case {
        const char* section;
        const char* key;
        const char* range;
    };
    // Every numeric key of the file.
    for (const Case& k : std::initializer_list<Case>{
             {"limits", "max_message_size", "1024 and 4294967296"},
             {"limits", "max_recipients", "1 and 100000"},
             {"limits", "max_sessions", "1 and 100000"},
             {"limits", "max_sessions_per_client", "1 and 100000"},
             {"limits", "command_timeout", "1 and 86400"},
             {"limits", "session_timeout", "1 and 86400"},
             {"limits", "max_errors", "1 and 1000"},
             {"limits", "max_sessions_per_network", "1 and 100000"},
             {"limits", "max_hops", "1 and 1000"},
             {"limits", "reserved_sessions", "0 and 100000"},
             {"", "commit_batch", "1 and 4096"},
             {"dns", "timeout_ms", "100 and 60000"},
             {"dns", "attempts", "1 and 10"},
             {"dns", "reprobe_interval", "10 and 86400"},
             {"delivery", "max_concurrent", "1 and 10000"},
             {"delivery", "max_per_destination", "1 and 10000"},
             {"delivery", "max_hosts_per_attempt", "1 and 50"},
             {"delivery", "retry_initial", "1 and 86400"},
             {"delivery", "retry_max", "1 and 604800"},
             {"delivery", "max_queue_lifetime", "1 and 8640000"},
             {"delivery", "port", "1 and 65535"},
             {"delivery", "connect_timeout", "1 and 3600"},
             {"delivery", "command_timeout", "1 and 3600"},
             {"delivery", "data_timeout", "1 and 3600"},
             {"delivery", "connection_reuse_time", "0 and 300"},
         }) {
        std::string name = std::string(*k.section ? k.section + std::string(".") : "") + k.key;
        std::string want = name + ": must be an integer between " + k.range;
        for (const char* v :
             {"-1", "99999999999", "18446744073709551616", "1.5", "\"7\"", "true"}) {
            // (appended, not "..." + std::string: GCC 12 -O2 -Wrestrict false positive)
            std::string member = std::string("\"").append(k.key).append("\": ").append(v);
            auto e = errorOf(withLimit(k.section, member));
            EXPECT_NE(e.find(want), std::string::npos) << v << ": " << e;
        }
    }
    EXPECT_NE(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:0"}]})")
                  .find("not a port number (1-65535)"),
              std::string::npos);
}

TEST_F(ConfigTest, NamedFilesMustBeThereAndReadable) {
    const std::string base = R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25"}], )";
    auto tls = [&](const std::string& cert, const std::string& key) {
        return base + R"("tls": {"certificate": ")" + cert + R"(", "key": ")" + key + R"("}})";
    };
    std::ofstream(dir_ + "/relay.crt") << "x";
    std::ofstream(dir_ + "/relay.key") << "x";
    std::filesystem::create_directory(dir_ + "/policy");
    EXPECT_EQ(errorOf(tls("relay.crt", "relay.key")), "");
    // Today GnuTLS says "Error while reading file", naming neither.
    auto e = errorOf(tls("missing.crt", "relay.key"));
    EXPECT_NE(e.find("danerelay.json: tls.certificate: " + dir_ +
                     "/missing.crt: cannot read: No such file or directory"),
              std::string::npos)
        << e;
    e = errorOf(tls("relay.crt", "missing.key"));
    EXPECT_NE(e.find("tls.key: " + dir_ + "/missing.key: cannot read: No such file"),
              std::string::npos)
        << e;
    e = errorOf(tls("policy", "relay.key"));
    EXPECT_NE(e.find("tls.certificate: " + dir_ + "/policy: is a directory"), std::string::npos)
        << e;
    e = errorOf(base + R"("tls": {"certificate": "relay.crt", "key": "relay.key"},
                          "auth": {"credentials": "users"}})");
    EXPECT_NE(e.find("danerelay.json: auth.credentials: " + dir_ + "/users: cannot read"),
              std::string::npos)
        << e;
    EXPECT_EQ(errorOf(base + R"("policy_dir": "policy"})"), "");
    e = errorOf(base + R"("policy_dir": "no-policy"})");
    EXPECT_NE(e.find("danerelay.json: policy_dir: " + dir_ + "/no-policy: cannot read"),
              std::string::npos)
        << e;
    e = errorOf(base + R"("policy_dir": "relay.crt"})");
    EXPECT_NE(e.find("policy_dir: " + dir_ + "/relay.crt: not a directory"), std::string::npos)
        << e;
    // danectl needs none of these files, and may not be allowed to read them.
    EXPECT_NO_THROW(loadConfig(write(tls("missing.crt", "missing.key")), FileCheck::Skip));
}

TEST_F(ConfigTest, ConfigPathThatIsADirectorySaysSo) {
    try {
        loadConfig(dir_);
        FAIL() << "loaded a directory";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), dir_ + ": is a directory, not a configuration file");
    }
    try {
        loadConfig(dir_ + "/none.json");
        FAIL() << "loaded a missing file";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
            << e.what();
    }
}

// Issue 13: what a start would refuse, the configuration refuses first.
TEST_F(ConfigTest, EmptySpoolDirIsRefused) {
    auto e = errorOf(R"({"spool_dir": "", "listeners": [{"address": "127.0.0.1:2525"}]})");
    EXPECT_EQ(e,
              dir_ + "/danerelay.json: spool_dir: must not be empty (a directory for the spool)");
}

TEST_F(ConfigTest, NulInAStringIsRefusedNamingTheKey) {
    // JSON may spell a NUL; the system would read the path only up to it.
    auto e = errorOf(R"({"spool_dir": "spool\u0000/elsewhere",
                         "listeners": [{"address": "127.0.0.1:2525"}]})");
    EXPECT_EQ(e, dir_ + "/danerelay.json: spool_dir: contains a NUL byte (\\u0000) at offset 5");
    e = errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:2525"}],
                   "log_file": "log\u0000.txt"})");
    EXPECT_NE(e.find("danerelay.json: log_file: contains a NUL byte"), std::string::npos) << e;
    e = errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:2525"}],
                   "control_socket": "c.sock\u0000"})");
    EXPECT_NE(e.find("danerelay.json: control_socket: contains a NUL byte"), std::string::npos)
        << e;
    e = errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1\u0000:2525"}]})");
    EXPECT_NE(e.find("danerelay.json: listeners[0].address: contains a NUL byte"),
              std::string::npos)
        << e;
}

TEST_F(ConfigTest, DuplicateListenersAreRefused) {
    auto e = errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:2525"},
                         {"address": "127.0.0.1:2526"}, {"address": "127.0.0.1:2525",
                         "tls": "starttls"}]})");
    EXPECT_EQ(e, dir_ +
                     "/danerelay.json: listeners[2].address: 127.0.0.1:2525 is listeners[0] "
                     "again (127.0.0.1:2525)");
    // However the address is spelt.
    e = errorOf(R"({"spool_dir": "s", "listeners": [{"address": "[::1]:2525"},
                   {"address": "[0:0::0:1]:2525"}]})");
    EXPECT_NE(e.find("listeners[1].address: [0:0::0:1]:2525 is listeners[0] again ([::1]:2525)"),
              std::string::npos)
        << e;
    // One address on two ports, or two addresses on one port, are fine.
    EXPECT_EQ(errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:2525"},
                          {"address": "127.0.0.2:2525"}, {"address": "[::1]:2525"}]})"),
              "");
    // A network is not an address.
    e = errorOf(R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.0/8:2525"}]})");
    EXPECT_NE(e.find("listeners[0].address: '127.0.0.0/8' is not an IP address"), std::string::npos)
        << e;
}

}  // namespace

namespace {

class ProxyConfigTest : public ConfigTest {
  protected:
    std::string listener(const std::string& extra) {
        return R"({"spool_dir": "s", "listeners": [{"address": "127.0.0.1:25")" + extra + "}]}";
    }
};

TEST_F(ProxyConfigTest, ProxyProtocolAndProxyFrom) {
    auto c = loadConfig(write(
        listener(R"(, "proxy_protocol": "v2", "proxy_from": ["127.0.0.5/32", "2001:db8::/64"])")));
    ASSERT_EQ(c.listeners.size(), 1u);
    EXPECT_EQ(c.listeners[0].proxy, ProxyProtocol::V2);
    ASSERT_EQ(c.listeners[0].proxyFrom.size(), 2u);
    EXPECT_EQ(c.listeners[0].proxyFrom[0].toString(), "127.0.0.5/32");
    c = loadConfig(write(listener(R"(, "proxy_protocol": "v1", "proxy_from": ["127.0.0.5/32"])")));
    EXPECT_EQ(c.listeners[0].proxy, ProxyProtocol::V1);
    c = loadConfig(write(listener("")));
    EXPECT_EQ(c.listeners[0].proxy, ProxyProtocol::None);  // absent: no PROXY header
}

TEST_F(ProxyConfigTest, ErrorsNameFileAndKey) {
    struct Case {
        const char* extra;
        const char* want;
    } cases[] = {
        {R"(, "proxy_protocol": "v3", "proxy_from": ["127.0.0.5/32"])",
         "listeners[0].proxy_protocol: must be \"v1\" or \"v2\""},
        {R"(, "proxy_protocol": "v2")", "listeners[0].proxy_from: must be a non-empty array"},
        {R"(, "proxy_protocol": "v2", "proxy_from": [])",
         "listeners[0].proxy_from: must be a non-empty array"},
        {R"(, "proxy_protocol": "v2", "proxy_from": "127.0.0.5/32")",
         "listeners[0].proxy_from: must be a non-empty array"},
        {R"(, "proxy_protocol": "v2", "proxy_from": ["127.0.0.5/33"])",
         "listeners[0].proxy_from[0]:"},
        {R"(, "proxy_protocol": "v2", "proxy_from": ["127.0.0.5/32", 7])",
         "listeners[0].proxy_from[1]: must be a string"},
        {R"(, "proxy_from": ["127.0.0.5/32"])",
         "listeners[0].proxy_from: needs \"proxy_protocol\""},
        {R"(, "proxy_protocol": 2, "proxy_from": ["127.0.0.5/32"])",
         "listeners[0].proxy_protocol: must be a string"},
    };
    for (const auto& c : cases) {
        std::string e = errorOf(listener(c.extra));
        EXPECT_NE(e.find(c.want), std::string::npos) << c.extra << " -> " << e;
        EXPECT_NE(e.find(dir_ + "/danerelay.json: "), std::string::npos) << e;
    }
}

}  // namespace
