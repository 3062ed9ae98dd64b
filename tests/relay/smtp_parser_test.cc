#include "relay/inbound/smtp_parser.h"

#include <gtest/gtest.h>

using namespace danerelay::relay;

namespace {

// Feeds the whole input at once, then again byte by byte: both must agree.
struct DataOutcome {
    bool done;
    size_t used;
    DataReader::Problem problem;
    std::string content;
};

DataOutcome readData(std::string_view in, size_t max = 1 << 20) {
    DataReader whole(max);
    size_t used = whole.feed(in);
    DataReader bytes(max);
    size_t used2 = 0;
    for (size_t i = 0; i < in.size() && !bytes.done(); ++i) used2 += bytes.feed(in.substr(i, 1));
    EXPECT_EQ(whole.done(), bytes.done());
    EXPECT_EQ(used, used2);
    EXPECT_EQ(whole.content(), bytes.content());
    EXPECT_EQ(whole.problem(), bytes.problem());
    return {whole.done(), used, whole.problem(), whole.content()};
}

TEST(DataReader, EndsOnlyAtCrlfDotCrlf) {
    auto r = readData("Subject: x\r\n\r\nhello\r\n.\r\nMAIL FROM:<a@b.c>\r\n");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.problem, DataReader::Problem::None);
    EXPECT_EQ(r.content, "Subject: x\r\n\r\nhello\r\n");
    EXPECT_EQ(r.used, std::string("Subject: x\r\n\r\nhello\r\n.\r\n").size());
}

TEST(DataReader, EmptyMessage) {
    auto r = readData(".\r\n");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.content, "");
}

TEST(DataReader, DotStuffingIsRemoved) {
    auto r = readData("..leading dot\r\n...\r\n.\r\n");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.content, ".leading dot\r\n..\r\n");
}

TEST(DataReader, BareLfDotBareLfDoesNotEndData) {
    // The SMTP smuggling payload: <LF>.<LF> followed by a second transaction.
    std::string smuggle = "hi\n.\nMAIL FROM:<evil@x.y>\r\nRCPT TO:<v@x.y>\r\nDATA\r\n";
    auto r = readData(smuggle);
    EXPECT_FALSE(r.done);
    EXPECT_EQ(r.used, smuggle.size());  // all of it swallowed as message text
    EXPECT_EQ(r.problem, DataReader::Problem::BareLineEnding);
    auto end = readData(smuggle + "\r\n.\r\n");
    EXPECT_TRUE(end.done);
    EXPECT_EQ(end.problem, DataReader::Problem::BareLineEnding);
    EXPECT_TRUE(end.content.empty());  // a refused message keeps no bytes
}

TEST(DataReader, CrLfDotLfAndLfDotCrLfDoNotEndData) {
    EXPECT_FALSE(readData("a\r\n.\nb").done);
    EXPECT_FALSE(readData("a\n.\r\nb").done);
    EXPECT_FALSE(readData("a\r.\r\nb").done);
}

TEST(DataReader, BareCrIsRefused) {
    auto r = readData("a\rb\r\n.\r\n");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.problem, DataReader::Problem::BareLineEnding);
    EXPECT_EQ(DataReader(10).refusal().code, 0);
}

TEST(DataReader, NulIsRefused) {
    auto r = readData(std::string("a\0b\r\n.\r\n", 8));
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.problem, DataReader::Problem::Nul);
}

TEST(DataReader, LineLimitIs1000OctetsWithCrlf) {
    auto ok = readData(std::string(998, 'x') + "\r\n.\r\n");
    EXPECT_EQ(ok.problem, DataReader::Problem::None);
    auto bad = readData(std::string(999, 'x') + "\r\n.\r\n");
    EXPECT_TRUE(bad.done);
    EXPECT_EQ(bad.problem, DataReader::Problem::LineTooLong);
}

TEST(DataReader, SizeCapStopsBufferingButReadsToTheEnd) {
    std::string big;
    for (int i = 0; i < 100; ++i) big += std::string(100, 'y') + "\r\n";
    DataReader r(1000);
    size_t used = r.feed(big + ".\r\nQUIT\r\n");
    EXPECT_TRUE(r.done());
    EXPECT_EQ(r.problem(), DataReader::Problem::TooBig);
    EXPECT_EQ(r.refusal().code, 552);
    EXPECT_LE(r.content().capacity(), 2000u);
    EXPECT_EQ(used, big.size() + 3);
}

TEST(Command, VerbIsUpperCasedArgKept) {
    auto c = parseCommand("mail FROM:<A@b.c> SIZE=10");
    EXPECT_EQ(c.verb, "MAIL");
    EXPECT_EQ(c.arg, "FROM:<A@b.c> SIZE=10");
    EXPECT_EQ(parseCommand("QUIT").arg, "");
}

TEST(PathArg, MailFromWithParams) {
    PathArg p;
    Reply err;
    ASSERT_TRUE(parsePathArg("FROM:<alice@example.org> SIZE=100 body=8bitmime", "FROM:", true,
                             false, &p, &err));
    EXPECT_EQ(p.address, "alice@example.org");
    ASSERT_EQ(p.params.size(), 2u);
    EXPECT_EQ(p.params[0], (Param{"SIZE", "100"}));
    EXPECT_EQ(p.params[1], (Param{"BODY", "8bitmime"}));
}

TEST(PathArg, NullSenderOnlyWhereAllowed) {
    PathArg p;
    Reply err;
    EXPECT_TRUE(parsePathArg("FROM:<>", "FROM:", true, false, &p, &err));
    EXPECT_EQ(p.address, "");
    EXPECT_FALSE(parsePathArg("TO:<>", "TO:", false, false, &p, &err));
}

TEST(PathArg, SourceRouteIsIgnored) {
    PathArg p;
    Reply err;
    ASSERT_TRUE(
        parsePathArg("TO:<@a.example,@b.example:user@c.example>", "TO:", false, false, &p, &err));
    EXPECT_EQ(p.address, "user@c.example");
}

TEST(PathArg, QuotedLocalPartMayHoldSpacesAndBrackets) {
    PathArg p;
    Reply err;
    ASSERT_TRUE(parsePathArg("TO:<\"john >doe\"@example.com>", "TO:", false, false, &p, &err));
    EXPECT_EQ(p.address, "\"john >doe\"@example.com");
}

TEST(PathArg, RejectsMalformedAddresses) {
    PathArg p;
    Reply err;
    for (const char* bad :
         {"TO:user@example.com", "TO:<user@example.com", "TO:<user>", "TO:<user@>",
          "TO:<@example.com>", "TO:<us er@example.com>", "TO:<user@exa..mple.com>",
          "TO:<user@example.com>garbage", "TO:<user\x01@example.com>", "FROM:<user@example.com>"}) {
        EXPECT_FALSE(parsePathArg(bad, "TO:", false, false, &p, &err)) << bad;
        EXPECT_GE(err.code, 500) << bad;
    }
}

TEST(PathArg, EightBitNeedsSmtpUtf8) {
    PathArg p;
    Reply err;
    EXPECT_FALSE(parsePathArg("TO:<j\xc3\xb6rg@example.com>", "TO:", false, false, &p, &err));
    EXPECT_NE(err.text.find("5.6.7"), std::string::npos);
    EXPECT_TRUE(parsePathArg("TO:<j\xc3\xb6rg@example.com>", "TO:", false, true, &p, &err));
}

TEST(PathArg, EightBitAddressMustBeUtf8) {
    PathArg p;
    Reply err;
    EXPECT_TRUE(
        parsePathArg("TO:<j\xC3\xB6rg@b\xC3\xBC"
                     "cher.example>",
                     "TO:", false, true, &p, &err));
    for (const char* bad : {"TO:<\xff\xfe@example.com>", "TO:<a\xC3@example.com>",
                            "TO:<a@ex\xED\xA0\x80"
                            "ample.com>",
                            "TO:<\"\xC0\xAF\"@example.com>"}) {
        EXPECT_FALSE(parsePathArg(bad, "TO:", false, true, &p, &err)) << bad;
        EXPECT_EQ(err.code, 553);
        EXPECT_NE(err.text.find("UTF-8"), std::string::npos);
    }
}

TEST(PathArg, BadParameterKeyword) {
    PathArg p;
    Reply err;
    EXPECT_FALSE(parsePathArg("FROM:<a@b.c> =x", "FROM:", true, false, &p, &err));
    EXPECT_EQ(err.code, 555);
}

// MAIL FROM and RCPT TO parameters: each parameter good and bad, with the
// exact reply the session sends for a refusal.
Parsed<MailParams> mail(std::string_view arg, bool esmtp = true, uint64_t maxSize = 1000) {
    PathArg p;
    Reply err;
    EXPECT_TRUE(parsePathArg(arg, "FROM:", true, true, &p, &err)) << arg << ": " << err.text;
    return parseMailParams(p, esmtp, maxSize);
}

Parsed<RcptParams> rcpt(std::string_view arg, bool esmtp = true) {
    PathArg p;
    Reply err;
    EXPECT_TRUE(parsePathArg(arg, "TO:", false, true, &p, &err)) << arg << ": " << err.text;
    return parseRcptParams(p.params, esmtp);
}

std::string refusal(const Reply& r) {
    return std::to_string(r.code) + " " + r.text;
}

template <typename T>
std::string refusal(const Parsed<T>& p) {
    return p ? std::string("accepted") : refusal(p.refusal());
}

TEST(MailParams, NoneGivesDefaults) {
    auto m = mail("FROM:<a@b.example>");
    ASSERT_TRUE(m);
    EXPECT_EQ(m.value(), MailParams{});
    EXPECT_EQ(m->ret, danerelay::queue::DsnRet::Unspecified);
}

TEST(MailParams, Size) {
    EXPECT_TRUE(mail("FROM:<a@b.example> SIZE=1000"));
    EXPECT_TRUE(mail("FROM:<a@b.example> SIZE=0"));
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> SIZE=1001")),
              "552 5.3.4 Message size exceeds fixed limit");
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> SIZE=9999999999999999999")),
              "552 5.3.4 Message size exceeds fixed limit");
    for (const char* bad :
         {"FROM:<a@b.example> SIZE", "FROM:<a@b.example> SIZE=", "FROM:<a@b.example> SIZE=12a",
          "FROM:<a@b.example> SIZE=-1", "FROM:<a@b.example> SIZE=99999999999999999999"}) {
        EXPECT_EQ(refusal(mail(bad)), "501 5.5.4 Error: bad SIZE value") << bad;
    }
}

TEST(MailParams, Body) {
    auto m = mail("FROM:<a@b.example> BODY=8bitmime");
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->eightBitMime);
    m = mail("FROM:<a@b.example> BODY=7BIT");
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->eightBitMime);
    for (const char* bad : {"FROM:<a@b.example> BODY=BINARYMIME", "FROM:<a@b.example> BODY"}) {
        EXPECT_EQ(refusal(mail(bad)), "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME") << bad;
    }
}

TEST(MailParams, SmtpUtf8) {
    auto m = mail("FROM:<a@b.example> smtputf8");
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->smtputf8);
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> SMTPUTF8=yes")),
              "501 5.5.4 Error: SMTPUTF8 takes no value");
    // An 8-bit sender needs it, wherever it comes in the list.
    EXPECT_EQ(refusal(mail("FROM:<j\xC3\xB6rg@b.example> BODY=8BITMIME")),
              "553 5.6.7 Non-ASCII address requires SMTPUTF8");
    EXPECT_TRUE(mail("FROM:<j\xC3\xB6rg@b.example> BODY=8BITMIME SMTPUTF8"));
    // A parameter refusal comes before the 8-bit one.
    EXPECT_EQ(refusal(mail("FROM:<j\xC3\xB6rg@b.example> BODY=x")),
              "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME");
}

// RFC 8689: a flag without a value; whether the session is over TLS is the
// session's to check (SmtpSession refuses it in plaintext with 530 5.7.10).
TEST(MailParams, RequireTls) {
    auto m = mail("FROM:<a@b.example> REQUIRETLS");
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->requireTls);
    EXPECT_FALSE(mail("FROM:<a@b.example>")->requireTls);
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> REQUIRETLS=YES")),
              "501 5.5.4 Error: REQUIRETLS takes no value");
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> REQUIRETLS REQUIRETLS")).substr(0, 3), "501");
}

TEST(MailParams, Ret) {
    auto m = mail("FROM:<a@b.example> RET=full");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->ret, danerelay::queue::DsnRet::Full);
    m = mail("FROM:<a@b.example> RET=HDRS");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->ret, danerelay::queue::DsnRet::Headers);
    for (const char* bad : {"FROM:<a@b.example> RET=HEADERS", "FROM:<a@b.example> RET"}) {
        EXPECT_EQ(refusal(mail(bad)), "501 5.5.4 Error: RET must be FULL or HDRS") << bad;
    }
}

TEST(MailParams, Envid) {
    auto m = mail("FROM:<a@b.example> ENVID=abc+2B1");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->envid, "abc+1");
    EXPECT_TRUE(mail("FROM:<a@b.example> ENVID=" + std::string(kMaxEnvid, 'x')));
    for (const std::string& bad : std::vector<std::string>{
             "ENVID", "ENVID=", "ENVID=+FF", "ENVID=a+0D+0Ab", "ENVID=a+7F", "ENVID=a+2",
             "ENVID=a+zz", "ENVID=" + std::string(kMaxEnvid + 1, 'x')}) {
        EXPECT_EQ(refusal(mail("FROM:<a@b.example> " + bad)), "501 5.5.4 Error: bad ENVID") << bad;
    }
}

TEST(MailParams, AuthIsAcceptedAndIgnored) {
    auto m = mail("FROM:<a@b.example> AUTH=<> AUTH2=x", true);
    EXPECT_EQ(refusal(m), "555 5.5.4 Error: unsupported parameter AUTH2");
    m = mail("FROM:<a@b.example> AUTH=someone+40example.org");
    ASSERT_TRUE(m);
    EXPECT_EQ(m.value(), MailParams{});
}

TEST(MailParams, UnknownDuplicateAndWithoutEhlo) {
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> NOTIFY=NEVER")),
              "555 5.5.4 Error: unsupported parameter NOTIFY");
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> SIZE=1 size=2")),
              "501 5.5.4 Error: duplicate SIZE parameter");
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> AUTH=<> BODY=7BIT AUTH=<>")),
              "501 5.5.4 Error: duplicate AUTH parameter");
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> SIZE=1", false)),
              "555 5.5.4 Error: parameters need EHLO");
    // Without EHLO the first parameter is refused, whatever it is.
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> X=1", false)),
              "555 5.5.4 Error: parameters need EHLO");
    EXPECT_TRUE(mail("FROM:<a@b.example>", false));
    // The first refusal in order wins.
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> BODY=x SIZE=y")),
              "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME");
    EXPECT_EQ(refusal(mail("FROM:<a@b.example> X-Y=1 SIZE=y")),
              "555 5.5.4 Error: unsupported parameter X-Y");
}

TEST(MailParams, AllTogether) {
    auto m = mail(
        "FROM:<j\xC3\xB6rg@b.example> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS "
        "ENVID=q+2Bq AUTH=<>");
    ASSERT_TRUE(m) << refusal(m);
    EXPECT_EQ(m.value(),
              (MailParams{true, true, danerelay::queue::DsnRet::Headers, std::string("q+q")}));
}

TEST(RcptParams, NoneGivesDefaults) {
    auto r = rcpt("TO:<b@c.example>");
    ASSERT_TRUE(r);
    EXPECT_EQ(r.value(), RcptParams{});
    EXPECT_EQ(r->notify, danerelay::queue::kNotifyNone);
}

TEST(RcptParams, Notify) {
    using namespace danerelay::queue;
    auto r = rcpt("TO:<b@c.example> NOTIFY=failure,DELAY");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->notify, unsigned{kNotifyFailure | kNotifyDelay});
    r = rcpt("TO:<b@c.example> NOTIFY=SUCCESS,FAILURE,DELAY");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->notify, unsigned{kNotifySuccess | kNotifyFailure | kNotifyDelay});
    r = rcpt("TO:<b@c.example> NOTIFY=NEVER");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->notify, unsigned{kNotifyNever});
    EXPECT_EQ(refusal(rcpt("TO:<b@c.example> NOTIFY=NEVER,SUCCESS")),
              "501 5.5.4 Error: NOTIFY=NEVER cannot be combined");
    EXPECT_EQ(refusal(rcpt("TO:<b@c.example> NOTIFY=DELAY,NEVER")),
              "501 5.5.4 Error: NOTIFY=NEVER cannot be combined");
    for (const char* bad : {"NOTIFY", "NOTIFY=", "NOTIFY=SOMETIMES", "NOTIFY=FAILURE,",
                            "NOTIFY=,FAILURE", "NOTIFY=FAILURE,,DELAY"}) {
        EXPECT_EQ(refusal(rcpt(std::string("TO:<b@c.example> ") + bad)),
                  "501 5.5.4 Error: bad NOTIFY value")
            << bad;
    }
}

TEST(RcptParams, Orcpt) {
    auto r = rcpt("TO:<b@c.example> ORCPT=rfc822;b+2Bx@c.example");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->orcpt, "rfc822;b+x@c.example");
    // xtext is ASCII: 8-bit octets are never taken raw.
    EXPECT_EQ(refusal(rcpt("TO:<b@c.example> ORCPT=utf-8;j\xC3\xB6rg@c.example")),
              "501 5.5.4 Error: bad ORCPT");
    EXPECT_TRUE(rcpt("TO:<b@c.example> ORCPT=rfc822;" + std::string(kMaxOrcpt - 7, 'x')));
    for (const std::string& bad :
         std::vector<std::string>{"ORCPT", "ORCPT=", "ORCPT=noaddresstype", "ORCPT=;b@c.example",
                                  "ORCPT=rfc822;x+FF@c.example", "ORCPT=rfc822;x+0D+0A@c.example",
                                  "ORCPT=rfc822;x+7F", "ORCPT=rfc822;x+2", "ORCPT=utf-8;\xC3",
                                  "ORCPT=rfc822;" + std::string(kMaxOrcpt - 6, 'x')}) {
        EXPECT_EQ(refusal(rcpt("TO:<b@c.example> " + bad)), "501 5.5.4 Error: bad ORCPT") << bad;
    }
}

TEST(RcptParams, UnknownDuplicateAndWithoutEhlo) {
    EXPECT_EQ(refusal(rcpt("TO:<b@c.example> SIZE=1")),
              "555 5.5.4 Error: unsupported parameter SIZE");
    EXPECT_EQ(refusal(rcpt("TO:<b@c.example> NOTIFY=DELAY notify=DELAY")),
              "501 5.5.4 Error: duplicate NOTIFY parameter");
    EXPECT_EQ(refusal(rcpt("TO:<b@c.example> ORCPT=rfc822;x ORCPT=rfc822;y")),
              "501 5.5.4 Error: duplicate ORCPT parameter");
    EXPECT_EQ(refusal(rcpt("TO:<b@c.example> NOTIFY=DELAY", false)),
              "555 5.5.4 Error: parameters need EHLO");
    EXPECT_TRUE(rcpt("TO:<b@c.example>", false));
    auto r = rcpt("TO:<b@c.example> NOTIFY=NEVER ORCPT=rfc822;b@c.example");
    ASSERT_TRUE(r);
    EXPECT_EQ(r.value(), (RcptParams{danerelay::queue::kNotifyNever, "rfc822;b@c.example"}));
}

TEST(Xtext, DecodesPlusHex) {
    std::string out;
    ASSERT_TRUE(decodeXtext("rfc822;a+2Bb@example.com", &out));
    EXPECT_EQ(out, "rfc822;a+b@example.com");
    EXPECT_FALSE(decodeXtext("a+2", &out));
    EXPECT_FALSE(decodeXtext("a+zz", &out));
    EXPECT_FALSE(decodeXtext("a b", &out));
}

TEST(Helo, AcceptsNamesAndLiterals) {
    EXPECT_TRUE(isValidHeloArg("mail.example.org"));
    EXPECT_TRUE(isValidHeloArg("[192.0.2.1]"));
    EXPECT_FALSE(isValidHeloArg(""));
    EXPECT_FALSE(isValidHeloArg("evil\x1b[31m"));
    EXPECT_FALSE(isValidHeloArg("a b"));
}

TEST(ReceivedHeaders, CountsFieldNamesInTheHeaderOnly) {
    EXPECT_EQ(countReceivedHeaders(""), 0u);
    EXPECT_EQ(countReceivedHeaders("Received: a\r\nReceived: b\r\n\r\nbody\r\n"), 2u);
    // Any case, white space before the colon (RFC 5322 4.5.3), LF endings.
    EXPECT_EQ(countReceivedHeaders("received: a\nRECEIVED  : b\nReceived\t: c\n\n"), 3u);
    // Continuation lines and other fields mentioning Received never count.
    EXPECT_EQ(countReceivedHeaders("Received: a\r\n Received: folded\r\n"
                                   "\tReceived: folded\r\nX-Received: x\r\n"
                                   "Subject: Received: y\r\nReceivedx: z\r\n\r\n"),
              1u);
    // The body never counts: after the empty line, nor after a line that is
    // not a field (a message with no empty line before its body).
    EXPECT_EQ(countReceivedHeaders("Subject: s\r\n\r\nReceived: in body\r\n"), 0u);
    EXPECT_EQ(countReceivedHeaders("Received: a\r\nnot a header\r\nReceived: b\r\n"), 1u);
    EXPECT_EQ(countReceivedHeaders(": no name\r\nReceived: b\r\n"), 0u);
    // A last line without its ending still counts.
    EXPECT_EQ(countReceivedHeaders("Received: a\r\nReceived: b"), 2u);
    std::string many;
    for (int i = 0; i < 150; ++i) many += "Received: from hop\r\n\tby x; date\r\n";
    EXPECT_EQ(countReceivedHeaders(many + "\r\n" + many), 150u);
}

// RFC 8689 5: "TLS-Required: No", read by the same scan.
TEST(HeaderFacts, TlsRequiredNoOnlyAsOneFieldInTheHeader) {
    auto no = [](std::string_view m) { return scanHeaderSection(m).tlsRequiredNo; };
    EXPECT_TRUE(no("Subject: s\r\nTLS-Required: No\r\n\r\nbody\r\n"));
    EXPECT_TRUE(no("tls-required :   no  \r\n\r\n"));  // any case, white space around
    EXPECT_TRUE(no("TLS-Required:\r\n No\r\n\r\n"));   // folded
    EXPECT_TRUE(no("TLS-Required: No"));               // no line end at all
    EXPECT_FALSE(no(""));
    EXPECT_FALSE(no("TLS-Required: Yes\r\n\r\n"));
    EXPECT_FALSE(no("TLS-Required: No thanks\r\n\r\n"));
    EXPECT_FALSE(no("TLS-Required: N\r\n o\r\n\r\n"));  // folding is white space: "N o"
    EXPECT_FALSE(no("X-TLS-Required: No\r\n\r\n"));
    EXPECT_FALSE(no("Subject: s\r\n\r\nTLS-Required: No\r\n"));   // in the body
    EXPECT_FALSE(no("not a field\r\nTLS-Required: No\r\n"));      // the body, too
    EXPECT_FALSE(no("Subject: s\r\n TLS-Required: No\r\n\r\n"));  // a continuation
    // Two fields (RFC 8689 allows one): not a request, whatever they say.
    EXPECT_FALSE(no("TLS-Required: No\r\nTLS-Required: No\r\n\r\n"));
    // An over-long value is not read without bound, and is not "No".
    EXPECT_FALSE(no("TLS-Required: No" + std::string(100000, ' ') + "x\r\n\r\n"));
    auto f = scanHeaderSection("Received: a\r\nTLS-Required: No\r\nReceived: b\r\n\r\n");
    EXPECT_EQ(f.received, 2u);
    EXPECT_TRUE(f.tlsRequiredNo);
}

}  // namespace
