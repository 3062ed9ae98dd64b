// DSNs carry bytes from outside (remote replies, ENVID, ORCPT, addresses):
// none of them may start a line, a header or a MIME part of its own.
#include "relay/outbound/bounce.h"

#include <gtest/gtest.h>

#include <sstream>

#include "queue/utf8.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {

queue::StoredMessage message() {
    queue::StoredMessage m;
    m.id = "0123456789ABCDEF";
    m.envelope.sender = "alice@example.org";
    m.envelope.recipients = {{"bob@example.com", "rfc822;bob@example.com", queue::kNotifyFailure}};
    m.envelope.arrival = 1700000000;
    m.status.resize(1);
    return m;
}

const std::string kContent = "Subject: hello\r\nFrom: alice@example.org\r\n\r\nbody\r\n";

// The DSN's lines, checking on the way that every CR is followed by LF and
// every LF preceded by CR.
std::vector<std::string> crlfLines(const std::string& dsn) {
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t i = 0; i < dsn.size(); ++i) {
        if (dsn[i] == '\r') {
            EXPECT_TRUE(i + 1 < dsn.size() && dsn[i + 1] == '\n') << "bare CR at " << i;
        } else if (dsn[i] == '\n') {
            EXPECT_TRUE(i > 0 && dsn[i - 1] == '\r') << "bare LF at " << i;
            lines.push_back(dsn.substr(start, i - 1 - start));
            start = i + 1;
        }
    }
    return lines;
}

void expectClean(const std::string& dsn) {
    size_t boundaries = 0;
    for (const auto& l : crlfLines(dsn)) {
        boundaries += l.rfind("--0123456789ABCDEF/relay.example", 0) == 0;
        EXPECT_LT(l.size() + 2, 998u) << l.substr(0, 60);
        for (unsigned char c : l) {
            EXPECT_FALSE((c < 0x20 && c != '\t') || c == 0x7f) << "control byte in: " << l;
        }
        EXPECT_NE(l.rfind("X-Injected", 0), 0u) << "injected header: " << l;
        EXPECT_NE(l.rfind("Bcc:", 0), 0u) << "injected header: " << l;
    }
    // Three parts and the end: none added by what the DSN quotes.
    EXPECT_EQ(boundaries, 4u);
    EXPECT_EQ(crlfLines(dsn).back(), "--0123456789ABCDEF/relay.example--");
    EXPECT_TRUE(queue::isValidUtf8(dsn));
}

TEST(Bounce, RemoteReplyCannotInjectLinesOrParts) {
    auto m = message();
    std::string reply = "550 5.1.1 no\r\nX-Injected: yes\n\r\n--0123456789ABCDEF/relay.example--\r";
    reply += std::string("\0\x1b[31m\x7f", 7);
    auto dsn =
        buildFailureDsn("relay.example", m, kContent,
                        {{0, "5.1.1", reply, "mx.example.com\r\nX-Injected: 1"}}, 1700000100);
    expectClean(dsn);
    // The text is kept, flattened: the operator can still read it.
    EXPECT_NE(dsn.find("Diagnostic-Code: smtp; 550 5.1.1 no  X-Injected: yes"), std::string::npos);
}

TEST(Bounce, EnvidAndOrcptAreSanitised) {
    auto m = message();
    m.envelope.envid = "id\r\nBcc: victim@example.net\xff";  // decoded from xtext: any byte
    m.envelope.recipients[0].orcpt =
        std::string("rfc822;bob\n\0X-Injected: 1\xfe@example.com\0", 39);
    auto dsn =
        buildFailureDsn("relay.example", m, kContent, {{0, "5.0.0", "550 no", ""}}, 1700000100);
    expectClean(dsn);
    EXPECT_NE(dsn.find("Original-Envelope-Id: id  Bcc: victim@example.net\xEF\xBF\xBD"),
              std::string::npos);
}

TEST(Bounce, LongRepliesAreFoldedUnder998) {
    auto m = message();
    std::string spaced, solid = "550 ";
    for (int i = 0; i < 400; ++i) spaced += "word" + std::to_string(i) + " ";
    while (solid.size() < 3000) solid += "\xC3\xA9x";  // no space, 2-byte characters
    for (const auto& reply : {spaced, solid, std::string(20000, 'a')}) {
        auto dsn =
            buildFailureDsn("relay.example", m, kContent, {{0, "5.0.0", reply, ""}}, 1700000100);
        expectClean(dsn);
    }
    // Folding keeps every word, split only at spaces.
    std::string unfolded;
    auto line = dsnLine("Diagnostic-Code: smtp; ", spaced);
    for (size_t i = 0; i < line.size(); ++i) {
        if (line.compare(i, 2, "\r\n") == 0) {
            ++i;
            continue;
        }
        unfolded += line[i];
    }
    EXPECT_EQ(unfolded, "Diagnostic-Code: smtp; " + spaced);
    for (const auto& l : crlfLines(line)) EXPECT_LE(l.size(), 78u);
}

TEST(Bounce, DsnTextCutsAtACharacterBoundary) {
    std::string s;
    while (s.size() < 100) s += "\xE2\x82\xAC";
    auto t = dsnText(s, 10);
    EXPECT_EQ(t.size(), 9u);
    EXPECT_TRUE(queue::isValidUtf8(t));
    EXPECT_EQ(dsnText("a\tb\rc\nd"), "a b c d");
}

}  // namespace
