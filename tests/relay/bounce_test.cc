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

// The DSN's parts: what lies between each "--boundary" line and the next.
std::vector<std::string> parts(const std::string& dsn, const std::string& boundary) {
    std::vector<std::string> out;
    std::string delim = "\r\n--" + boundary;
    size_t at = dsn.find(delim);
    while (at != std::string::npos) {
        size_t start = at + delim.size();
        if (dsn.compare(start, 2, "--") == 0) break;  // the end
        start += 2;                                   // CRLF
        size_t next = dsn.find(delim, start);
        out.push_back(
            dsn.substr(start, next == std::string::npos ? std::string::npos : next - start));
        at = next;
    }
    return out;
}

bool has(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

// RFC 3464: a multipart/report of report-type delivery-status, three parts in
// order (human-readable, message/delivery-status, the returned message),
// per-message fields, then one block of per-recipient fields for each failed
// recipient, each block after a blank line.
TEST(Bounce, StructureIsAnRfc3464Report) {
    auto m = message();
    m.envelope.recipients.push_back({"carol@example.net", "", queue::kNotifyNone});
    m.envelope.recipients.push_back({"dave@example.net", "", queue::kNotifyNone});
    m.status.resize(3);
    auto dsn = buildFailureDsn("relay.example", m, kContent,
                               {{0, "5.1.1", "550 5.1.1 no such user", "mx.example.com"},
                                {2, "5.4.7", "5.4.7 delivery time expired; last error: x", ""}},
                               1700000100);
    expectClean(dsn);
    const std::string boundary = "0123456789ABCDEF/relay.example";
    auto head = dsn.substr(0, dsn.find("\r\n\r\n"));
    EXPECT_TRUE(has(head, "\r\nTo: <alice@example.org>\r\n"));
    EXPECT_TRUE(has(head, "From: MAILER-DAEMON@relay.example"));
    EXPECT_TRUE(has(head, "\r\nAuto-Submitted: auto-replied\r\n"));
    EXPECT_TRUE(has(head, "\r\nMIME-Version: 1.0\r\n"));
    EXPECT_TRUE(has(head,
                    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                    "\tboundary=\"" +
                        boundary + "\""));

    auto p = parts(dsn, boundary);
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p[0].rfind("Content-Description: Notification\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n\r\n",
                         0),
              0u);
    EXPECT_TRUE(has(p[0], "<bob@example.com>: 550 5.1.1 no such user\r\n"));
    EXPECT_TRUE(has(p[0], "<dave@example.net>: 5.4.7 delivery time expired"));
    EXPECT_FALSE(has(p[0], "carol@example.net"));  // not failed, not reported

    const std::string status = p[1];
    EXPECT_EQ(status.rfind("Content-Description: Delivery report\r\n"
                           "Content-Type: message/delivery-status\r\n\r\n",
                           0),
              0u);
    // The per-message fields, then a blank line before each recipient block.
    auto fields = status.substr(status.find("\r\n\r\n") + 4);
    auto blocks = std::vector<std::string>{};
    for (size_t at = 0; at != std::string::npos;) {
        size_t next = fields.find("\r\n\r\n", at);
        blocks.push_back(fields.substr(at, next == std::string::npos ? next : next + 2 - at));
        at = next == std::string::npos ? next : next + 4;
    }
    ASSERT_GE(blocks.size(), 3u);
    EXPECT_EQ(blocks[0].rfind("Reporting-MTA: dns; relay.example\r\n", 0), 0u);
    EXPECT_TRUE(has(blocks[0], "\r\nArrival-Date: "));
    EXPECT_FALSE(has(blocks[0], "Original-Envelope-Id"));  // no ENVID given
    EXPECT_EQ(blocks[1],
              "Final-Recipient: rfc822; bob@example.com\r\n"
              "Original-Recipient: rfc822;bob@example.com\r\n"
              "Action: failed\r\n"
              "Status: 5.1.1\r\n"
              "Remote-MTA: dns; mx.example.com\r\n"
              "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n");
    // No ORCPT, no remote MTA (we gave up ourselves): those fields are left out.
    EXPECT_EQ(blocks[2].rfind("Final-Recipient: rfc822; dave@example.net\r\n"
                              "Action: failed\r\n"
                              "Status: 5.4.7\r\n"
                              "Diagnostic-Code: smtp; 5.4.7 delivery time expired",
                              0),
              0u)
        << blocks[2];

    // RET unspecified: the whole message comes back.
    EXPECT_EQ(p[2],
              "Content-Description: Undelivered Message\r\n"
              "Content-Type: message/rfc822\r\n\r\n" +
                  kContent);
}

TEST(Bounce, RetHeadersReturnsTheHeaderOnlyAndRetFullTheWholeMessage) {
    auto m = message();
    const std::string boundary = "0123456789ABCDEF/relay.example";
    m.envelope.ret = queue::DsnRet::Headers;
    auto dsn =
        buildFailureDsn("relay.example", m, kContent, {{0, "5.0.0", "550 no", ""}}, 1700000100);
    expectClean(dsn);
    auto p = parts(dsn, boundary);
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p[2],
              "Content-Description: Undelivered Message Headers\r\n"
              "Content-Type: text/rfc822-headers\r\n\r\n"
              "Subject: hello\r\nFrom: alice@example.org\r\n");
    EXPECT_FALSE(has(dsn, "body\r\n"));

    m.envelope.ret = queue::DsnRet::Full;
    dsn = buildFailureDsn("relay.example", m, kContent, {{0, "5.0.0", "550 no", ""}}, 1700000100);
    p = parts(dsn, boundary);
    ASSERT_EQ(p.size(), 3u);
    EXPECT_TRUE(has(p[2], "Content-Type: message/rfc822\r\n\r\n" + kContent));
}

// RFC 8689 5: the DSN of a REQUIRETLS message is not itself REQUIRETLS, so
// it never carries the content, whatever RET asked for.
TEST(Bounce, ARequireTlsMessageReturnsItsHeadersOnly) {
    auto m = message();
    m.envelope.requireTls = true;
    m.envelope.ret = queue::DsnRet::Full;
    auto dsn = buildFailureDsn("relay.example", m, kContent, {{0, "5.7.30", "not offered", ""}},
                               1700000100);
    expectClean(dsn);
    auto p = parts(dsn, "0123456789ABCDEF/relay.example");
    ASSERT_EQ(p.size(), 3u);
    EXPECT_TRUE(has(p[2], "Content-Type: text/rfc822-headers\r\n"));
    EXPECT_TRUE(has(p[2], "Subject: hello\r\n"));
    EXPECT_FALSE(has(dsn, "body\r\n"));
}

TEST(Bounce, EnvidAndOrcptAreReportedWhenGiven) {
    auto m = message();
    m.envelope.envid = "QQ314159";
    auto dsn =
        buildFailureDsn("relay.example", m, kContent, {{0, "5.0.0", "550 no", ""}}, 1700000100);
    EXPECT_TRUE(has(dsn, "\r\nOriginal-Envelope-Id: QQ314159\r\n"));
    EXPECT_TRUE(has(dsn, "\r\nOriginal-Recipient: rfc822;bob@example.com\r\n"));
    m.envelope.envid.clear();
    m.envelope.recipients[0].orcpt.clear();
    dsn = buildFailureDsn("relay.example", m, kContent, {{0, "5.0.0", "550 no", ""}}, 1700000100);
    EXPECT_FALSE(has(dsn, "Original-Envelope-Id"));
    EXPECT_FALSE(has(dsn, "Original-Recipient"));
}

TEST(Bounce, NotifyDecidesWhetherAFailureIsReported) {
    auto rcpt = [](unsigned notify) { return queue::Recipient{"r@example.com", "", notify}; };
    EXPECT_TRUE(wantsFailureDsn(rcpt(queue::kNotifyNone)));  // no NOTIFY: failures are reported
    EXPECT_TRUE(wantsFailureDsn(rcpt(queue::kNotifyFailure)));
    EXPECT_TRUE(wantsFailureDsn(rcpt(queue::kNotifyFailure | queue::kNotifyDelay)));
    EXPECT_TRUE(wantsFailureDsn(rcpt(queue::kNotifySuccess | queue::kNotifyFailure)));
    EXPECT_FALSE(wantsFailureDsn(rcpt(queue::kNotifyNever)));
    EXPECT_FALSE(wantsFailureDsn(rcpt(queue::kNotifySuccess)));
    EXPECT_FALSE(wantsFailureDsn(rcpt(queue::kNotifyDelay)));
    EXPECT_FALSE(wantsFailureDsn(rcpt(queue::kNotifySuccess | queue::kNotifyDelay)));
}

// Every value from outside is capped at kMaxDsnValue bytes, however long the
// remote reply: the DSN stays small whatever a hostile MX says.
TEST(Bounce, EachQuotedValueIsCapped) {
    auto m = message();
    std::string huge(100000, 'a');
    auto dsn = buildFailureDsn("relay.example", m, kContent,
                               {{0, "5.0.0", huge, std::string(9000, 'm')}}, 1700000100);
    expectClean(dsn);
    auto unfold = [](std::string s) {
        std::string out;
        for (size_t i = 0; i < s.size(); ++i) {
            if (s.compare(i, 3, "\r\n ") == 0) {
                i += 2;
                continue;
            }
            if (s.compare(i, 2, "\r\n") == 0) break;
            out += s[i];
        }
        return out;
    };
    auto at = dsn.find("Diagnostic-Code: smtp; ");
    ASSERT_NE(at, std::string::npos);
    auto diag = unfold(dsn.substr(at + 23));
    EXPECT_EQ(diag, std::string(kMaxDsnValue, 'a'));
    at = dsn.find("Remote-MTA: dns; ");
    ASSERT_NE(at, std::string::npos);
    EXPECT_EQ(unfold(dsn.substr(at + 17)).size(), kMaxDsnValue);
    // Two quotes of the reply (notification and report), each capped: the DSN
    // is the message plus a bounded overhead.
    EXPECT_LT(dsn.size(), kContent.size() + 3 * kMaxDsnValue + 4096);
    EXPECT_EQ(dsnText(huge).size(), kMaxDsnValue);
    EXPECT_EQ(dsnText(huge, 10), std::string(10, 'a'));
}

TEST(Bounce, InvalidUtf8FromTheRemoteIsReplacedNotPassedOn) {
    auto t = dsnText("550 caf\xe9 \xc3\x28 ok");
    EXPECT_TRUE(queue::isValidUtf8(t));
    EXPECT_EQ(t.rfind("550 caf", 0), 0u);
    EXPECT_TRUE(has(t, "\xEF\xBF\xBD"));  // U+FFFD in place of what was not UTF-8
    EXPECT_TRUE(has(t, " ok"));
    // Valid UTF-8 is kept as it is.
    EXPECT_EQ(dsnText("550 ma\xC3\xAEtre \xE2\x82\xAC"), "550 ma\xC3\xAEtre \xE2\x82\xAC");
}

}  // namespace
