// The log's two formats say the same fields, and neither can be forged into
// a second line or broken JSON by a peer's bytes; logReopen() follows a
// rotation and keeps the old file when it cannot open the new one.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "relay/runtime/log.h"

namespace danerelay::relay {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kTs = "2026-12-02T18:00:00.000000Z";

TEST(LogFormat, JsonCarriesTheSameFieldsInOrder) {
    std::string kv =
        formatLogLine(LogStyle::Kv, kTs, "connect", {{"client", "127.0.0.1"}, {"helo", "a b"}});
    EXPECT_EQ(kv, std::string(kTs) + " event=connect client=127.0.0.1 helo=\"a b\"\n");
    std::string js =
        formatLogLine(LogStyle::Json, kTs, "connect", {{"client", "127.0.0.1"}, {"helo", "a b"}});
    ASSERT_EQ(js.back(), '\n');
    EXPECT_EQ(js.find('\n'), js.size() - 1);
    auto doc = json::parse(js);
    EXPECT_EQ(doc.dump(), R"({"client":"127.0.0.1","event":"connect","helo":"a b","ts":")" +
                              std::string(kTs) + "\"}");
    EXPECT_EQ(js.rfind("{\"ts\":", 0), 0u);  // the timestamp first, then the event
}

TEST(LogFormat, HostileBytesStayInsideOneJsonString) {
    std::string evil = "x\r\n2026 event=forged\"},{\"event\":\"forged\x7f\x01\\";
    std::string js = formatLogLine(LogStyle::Json, kTs, "helo", {{"name", evil}});
    EXPECT_EQ(js.find('\n'), js.size() - 1);
    auto doc = json::parse(js);
    EXPECT_EQ(doc["name"], evil);  // lossless for UTF-8
    EXPECT_EQ(doc.size(), 3u);
    // Not UTF-8: written as the kv line writes it, so nothing is lost and
    // the line stays valid JSON.
    std::string bad = formatLogLine(LogStyle::Json, kTs, "helo", {{"name", "a\xff\xfe"}});
    EXPECT_EQ(json::parse(bad)["name"], "a\\xff\\xfe");
}

// Log injection past the ASCII escapes: a HELO (or address, or reply) with
// C1 controls (U+009B is CSI: "\xc2\x9b" "2J" clears the screen of whoever
// tails the log; U+009D starts an OSC, which can set a terminal's clipboard),
// U+0085, U+2028 and U+2029 (line breaks to Python's splitlines() and to
// JavaScript before ES2019: a forged second line) or bidi overrides (U+202E
// shows the rest of a line reversed). None may appear raw in either format;
// each stays lossless (kv: the bytes as \xHH; JSON: \uXXXX).
TEST(LogFormat, C1ControlsLineSeparatorsAndBidiOverridesAreEscaped) {
    const std::string csi = "\xc2\x9b", osc = "\xc2\x9d", nel = "\xc2\x85", ls = "\xe2\x80\xa8",
                      ps = "\xe2\x80\xa9", rlo = "\xe2\x80\xae", lri = "\xe2\x81\xa6";
    std::string evil = "mx" + csi + "2J" + osc + "52;c;cm0gLXJmIH4K" + "\xc2\x9c" + nel + ls +
                       std::string(kTs) + " event=delivered" + ps + rlo + "gpj.exe" + lri + "x";
    std::string kv = formatLogLine(LogStyle::Kv, kTs, "helo", {{"name", evil}});
    std::string js = formatLogLine(LogStyle::Json, kTs, "helo", {{"name", evil}});
    for (const auto& raw : {csi, osc, nel, ls, ps, rlo, lri}) {
        EXPECT_EQ(kv.find(raw), std::string::npos) << kv;
        EXPECT_EQ(js.find(raw), std::string::npos) << js;
    }
    EXPECT_NE(kv.find(R"(name="mx\xc2\x9b2J\xc2\x9d52;c;)"), std::string::npos) << kv;
    EXPECT_EQ(json::parse(js)["name"], evil);  // \u009b and the rest: lossless
    EXPECT_NE(js.find(R"(\u2028)"), std::string::npos) << js;
    // Ordinary non-ASCII text stays as it is, unquoted.
    EXPECT_EQ(formatLogValue("müller@bücher.example"), "müller@bücher.example");
    EXPECT_EQ(formatLogValue("a" + ls), "\"a\\xe2\\x80\\xa8\"");
}

TEST(LogReopen, FollowsARotationAndKeepsTheOldFileOnFailure) {
    char tmpl[] = "/tmp/danerelay-log-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string path = dir + "/relay.log";
    ASSERT_TRUE(logOpen(path, LogStyle::Kv));
    logEvent("one", {});
    fs::rename(path, path + ".1");
    ASSERT_TRUE(logReopen());
    logEvent("two", {});
    auto text = [](const std::string& p) {
        std::ifstream in(p);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    EXPECT_NE(text(path + ".1").find("event=one"), std::string::npos);
    EXPECT_EQ(text(path + ".1").find("event=two"), std::string::npos);
    EXPECT_NE(text(path).find("event=two"), std::string::npos);
    // The name now points at a directory: the reopen fails, the old stays.
    fs::rename(path, path + ".2");
    fs::create_directory(path);
    EXPECT_FALSE(logReopen());
    logEvent("three", {});
    EXPECT_NE(text(path + ".2").find("event=three"), std::string::npos);
    ASSERT_TRUE(logOpen(""));  // back to standard error for the other tests
    fs::remove_all(dir);
}

}  // namespace
}  // namespace danerelay::relay
