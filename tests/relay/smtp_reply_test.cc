// The outbound reply parser: what a hostile server can send back.
#include "relay/outbound/smtp_reply.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "queue/utf8.h"
#include "relay/outbound/smtp_client.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {

using Step = ReplyAssembler::Step;

struct Fed {
    Step step;
    SmtpReply reply;
    std::string error;
};

Fed feed(ReplyAssembler& a, std::string& in) {
    Fed f{Step::NeedMore, {}, {}};
    f.step = a.next(in, &f.reply, &f.error);
    return f;
}

TEST(SmtpReply, SingleAndMultiLine) {
    ReplyAssembler a;
    std::string in =
        "220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
    auto f = feed(a, in);
    ASSERT_EQ(f.step, Step::Reply);
    EXPECT_EQ(f.reply.code, 220);
    EXPECT_EQ(f.reply.text(), "220 mx.example ESMTP");
    f = feed(a, in);
    ASSERT_EQ(f.step, Step::Reply);
    EXPECT_EQ(f.reply.code, 250);
    EXPECT_EQ(f.reply.lines.size(), 3u);
    EXPECT_EQ(f.reply.text(), "250 SIZE 1000");
    EXPECT_EQ(f.reply.allLines(), "mx.example\nPIPELINING\nSIZE 1000\n");
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(feed(a, in).step, Step::NeedMore);
}

TEST(SmtpReply, PiecesAndBareLfAndCodeOnly) {
    ReplyAssembler a;
    std::string in = "451-first\n45";
    EXPECT_EQ(feed(a, in).step, Step::NeedMore);
    EXPECT_EQ(in, "45");  // the complete line was taken
    in += "1\r\n";
    auto f = feed(a, in);
    ASSERT_EQ(f.step, Step::Reply);
    EXPECT_EQ(f.reply.code, 451);
    EXPECT_EQ(f.reply.text(), "451 ");
}

TEST(SmtpReply, MalformedLinesAreErrors) {
    for (std::string bad :
         {"hello\r\n", "25\r\n", "2x0 ok\r\n", "250_ok\r\n", "\xff\xfe\xfd\r\n"}) {
        ReplyAssembler a;
        auto f = feed(a, bad);
        EXPECT_EQ(f.step, Step::Error) << bad;
        EXPECT_NE(f.error.find("malformed server reply"), std::string::npos);
        EXPECT_TRUE(queue::isValidUtf8(f.error));
    }
}

TEST(SmtpReply, InvalidUtf8AndControlsAreReplaced) {
    ReplyAssembler a;
    std::string in = std::string("451 4.3.0 \xff\xfe and\r\x1b[2J\0 done\r\n", 29);
    auto f = feed(a, in);
    ASSERT_EQ(f.step, Step::Reply);
    EXPECT_EQ(f.reply.code, 451);
    const std::string r = "\xEF\xBF\xBD";
    EXPECT_EQ(f.reply.text(), "451 4.3.0 " + r + r + " and" + r + r + "[2J" + r + " done");
    EXPECT_NO_THROW((void)nlohmann::json(f.reply.text()).dump());
    // A reply cut in the middle of a character.
    in = "550 5.1.1 caf\xC3\r\n";
    f = feed(a, in);
    ASSERT_EQ(f.step, Step::Reply);
    EXPECT_EQ(f.reply.text(), "550 5.1.1 caf" + r);
    // Valid UTF-8 and tabs pass.
    in = "250 ok\tcaf\xC3\xA9\r\n";
    f = feed(a, in);
    EXPECT_EQ(f.reply.text(), "250 ok\tcaf\xC3\xA9");
}

TEST(SmtpReply, CapsOnLineReplyAndLineCount) {
    {
        ReplyAssembler a;
        std::string in(kMaxReplyLine + 10, 'a');  // no newline yet
        in.insert(0, "250 ");
        EXPECT_EQ(feed(a, in).step, Step::Error);
    }
    {
        ReplyAssembler a;
        std::string in = "250 " + std::string(kMaxReplyLine, 'a') + "\r\n";
        EXPECT_EQ(feed(a, in).step, Step::Error);
    }
    {
        ReplyAssembler a;  // many short lines, never ending
        std::string in;
        for (size_t i = 0; i < kMaxReplyLines + 1; ++i) in += "250-x\r\n";
        auto f = feed(a, in);
        EXPECT_EQ(f.step, Step::Error);
        EXPECT_EQ(f.error, "server reply too long");
    }
    {
        ReplyAssembler a;  // many long lines: the byte cap
        std::string in;
        for (size_t i = 0; i < 40; ++i) in += "250-" + std::string(4000, 'b') + "\r\n";
        EXPECT_EQ(feed(a, in).step, Step::Error);
    }
    {
        // Just under every cap is fine, and reset() forgets a partial reply.
        ReplyAssembler a;
        std::string in = "250-" + std::string(kMaxReplyLine - 4, 'c') + "\r\n";
        EXPECT_EQ(feed(a, in).step, Step::NeedMore);
        a.reset();
        in = "221 bye\r\n";
        auto f = feed(a, in);
        ASSERT_EQ(f.step, Step::Reply);
        EXPECT_EQ(f.reply.lines.size(), 1u);
    }
}

TEST(SmtpReply, EnhancedStatusSplit) {
    auto s = splitEnhancedStatus(451, "4.3.0 try later");
    EXPECT_EQ(s.code, "4.3.0");
    EXPECT_EQ(s.detail, "try later");
    EXPECT_EQ(splitEnhancedStatus(550, "5.1.10 x").code, "5.1.10");
    EXPECT_EQ(splitEnhancedStatus(550, "5.123.456").code, "5.123.456");
    // The class must match the reply's; the shape must be right.
    for (const char* t : {"4.3.0 mismatch", "5.1234.1 x", "5..1 x", "5.1. x", "5.1.1x", "x 5.1.1",
                          "", "5", "5.", "5.1", "5.1.", "3.0.0 x"}) {
        auto n = splitEnhancedStatus(550, t);
        EXPECT_EQ(n.code, "") << t;
        EXPECT_EQ(n.detail, t);
    }
}

TEST(SmtpReply, EhloKeywords) {
    auto e = parseEhlo(
        "mx.example greets you\nPIPELINING\nstarttls\nDSN\nSMTPUTF8\n8BITMIME\n"
        "SIZE 52428800\n");
    EXPECT_TRUE(e.pipelining && e.starttls && e.dsn && e.smtputf8 && e.eightBitMime && e.size);
    EXPECT_EQ(e.sizeLimit, 52428800u);
    // The greeting line is no keyword; odd SIZE values are ignored.
    e = parseEhlo("STARTTLS\nSIZE 99999999999999999999\n");
    EXPECT_FALSE(e.starttls);
    EXPECT_TRUE(e.size);
    EXPECT_EQ(e.sizeLimit, 0u);
    EXPECT_EQ(parseEhlo("x\nSIZE -1\n").sizeLimit, 0u);
    EXPECT_TRUE(parseEhlo("x\nrequiretls\n").requireTls);
    EXPECT_FALSE(
        parseEhlo("REQUIRETLS\nSIZE 1\n").requireTls);  // the greeting line names the server
    EXPECT_EQ(parseEhlo("x\nSIZE\n").sizeLimit, 0u);
    EXPECT_FALSE(parseEhlo("x\nSTARTTLSX\n").starttls);
}

TEST(SmtpBody, DotStuffedAndTerminated) {
    auto b = encodeBody("Subject: x\r\n\r\n.hidden\r\n..two\r\nend");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(*b, "Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n");
    EXPECT_EQ(*encodeBody(""), ".\r\n");
    EXPECT_EQ(*encodeBody(".\r\n"), "..\r\n.\r\n");
}

TEST(SmtpBody, BareCrAndBareLfAreRefused) {
    // The smuggling shapes: each could end DATA early at some receiver.
    for (std::string bad : {"a\r\n\n.\n\r\nb\r\n", "a\r\n\r.\r\r\nb\r\n", "a\rb\r\n", "a\nb\r\n",
                            "end\r", "\nstart\r\n", "a\r\n.\r\rMAIL FROM:<x>\r\n"}) {
        auto b = encodeBody(bad);
        ASSERT_FALSE(b.ok()) << bad;
        EXPECT_EQ(b.error().kind, ErrorKind::Permanent);
        EXPECT_NE(b.error().message.find("bare"), std::string::npos);
    }
}

}  // namespace
