// smtp_parser.h — pure parsing of what an SMTP client sends (RFC 5321, 1870,
// 3461, 6152, 6531). No I/O, no state beyond one message's DATA decoder, so
// every rule here is unit-tested and fuzzable.
//
// Everything handled here is untrusted. Refusals come back as a reply code,
// an enhanced status code and text, ready to send: MAIL FROM and RCPT TO
// parameters are checked here in full (parseMailParams, parseRcptParams), so
// the session only applies what comes back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "queue/envelope.h"

namespace danerelay::relay {

// RFC 5321 4.5.3.1.4 and 4.5.3.1.6: command line 512 octets, text line 1000,
// both counting the CRLF.
constexpr size_t kMaxCommandLine = 512;
constexpr size_t kMaxTextLine = 1000;

struct Reply {
    int code = 0;
    std::string text;  // including the enhanced status code, e.g. "5.5.2 Syntax error"
};

struct Command {
    std::string verb;  // upper-cased
    std::string arg;   // the rest of the line after one space, unmodified
};

// Splits a command line (without its line ending).
Command parseCommand(std::string_view line);

struct Param {
    std::string keyword;  // upper-cased
    std::string value;    // empty if the parameter had no "=value"
    bool operator==(const Param&) const = default;
};

struct PathArg {
    std::string address;  // without angle brackets or source route; may be empty
    std::vector<Param> params;
};

// Parses "FROM:<path> params" (prefix "FROM:") or "TO:<path> params" ("TO:").
// The address is checked for shape: local@domain (or empty, if allowEmpty),
// no control characters, 8-bit only when allow8bit. On failure *err is set.
bool parsePathArg(std::string_view arg, std::string_view prefix, bool allowEmpty, bool allow8bit,
                  PathArg* out, Reply* err);

// What a parse gives: the value, or the reply that refuses the command.
template <typename T>
class Parsed {
  public:
    Parsed(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
    Parsed(Reply refusal) : v_(std::move(refusal)) {}  // NOLINT: implicit by design
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Reply& refusal() const { return std::get<1>(v_); }

  private:
    std::variant<T, Reply> v_;
};

// MAIL FROM's parameters, checked: SIZE (RFC 1870; over maxMessageSize is
// 552 5.3.4), BODY=7BIT|8BITMIME (6152), SMTPUTF8 (6531; also required for
// an 8-bit address, 553 5.6.7), RET=FULL|HDRS and ENVID (3461; printable
// US-ASCII once xtext-decoded, at most 100 octets), AUTH= (4954; accepted,
// not trusted, dropped), REQUIRETLS (8689; no value: the session refuses it
// outside TLS, the parser does not know the session). Refused: any parameter without EHLO (555), a
// keyword given twice (501), a bad value (501), any other keyword (555).
// Keywords arrive upper-cased (parsePathArg); values are matched without
// regard to case. The first refusal in parameter order is the one returned.
struct MailParams {
    bool eightBitMime = false;
    bool smtputf8 = false;
    queue::DsnRet ret = queue::DsnRet::Unspecified;
    std::string envid;  // decoded from xtext; empty if not given
    bool requireTls = false;
    bool operator==(const MailParams&) const = default;
};
constexpr size_t kMaxEnvid = 100;  // RFC 3461 4.4
Parsed<MailParams> parseMailParams(const PathArg& from, bool esmtp, uint64_t maxMessageSize);

// RCPT TO's parameters, checked: NOTIFY=NEVER or a comma list of SUCCESS,
// FAILURE, DELAY (3461; NEVER combined is 501), ORCPT=type;xtext (an
// address type, then at most 500 octets of UTF-8 without control bytes once
// decoded). The same refusals for EHLO, duplicates and other keywords as MAIL.
struct RcptParams {
    unsigned notify = queue::kNotifyNone;
    std::string orcpt;  // decoded from xtext ("rfc822;user@example.org"); empty if not given
    bool operator==(const RcptParams&) const = default;
};
constexpr size_t kMaxOrcpt = 500;
Parsed<RcptParams> parseRcptParams(const std::vector<Param>& params, bool esmtp);

// Decodes RFC 3461 xtext ("+2B" escapes). False on malformed input.
bool decodeXtext(std::string_view in, std::string* out);

// Is this a plausible EHLO/HELO argument (domain or address literal)?
bool isValidHeloArg(std::string_view s);

// What the relay reads in a message's header section, in one pass (the only
// reader of header fields): the Received: fields (a mail loop shows as too
// many) and RFC 8689's "TLS-Required: No". Only field names at the start of
// a line count, without regard to case and with white space allowed before
// the colon (RFC 5322 4.5.3); continuation lines never start a field (a
// folded TLS-Required value is read whole). Reading stops at the first empty
// line, or the first line that is neither a field nor a continuation: the
// body, whatever it contains, is never read. Lines end in CRLF or LF.
// tlsRequiredNo: exactly one TLS-Required field, whose value is "No" (any
// case, white space around); a second one, or another value, is not a
// request (RFC 8689 5 allows one).
struct HeaderFacts {
    size_t received = 0;
    bool tlsRequiredNo = false;
};
HeaderFacts scanHeaderSection(std::string_view content);
inline size_t countReceivedHeaders(std::string_view content) {
    return scanHeaderSection(content).received;
}

// Reads one message's DATA section, byte by byte, without ever buffering more
// than maxSize bytes of content. Only <CRLF>.<CRLF> ends it. A bare CR, a bare
// LF, a NUL, a line over 1000 octets or a message over maxSize marks the
// message as refused, but reading still goes on to the real end, so that
// nothing inside the message is ever taken as a command (SMTP smuggling).
class DataReader {
  public:
    enum class Problem { None, BareLineEnding, Nul, LineTooLong, TooBig };

    explicit DataReader(size_t maxSize) : maxSize_(maxSize) {}

    // Consumes bytes up to and including the end marker; returns how many were used.
    size_t feed(std::string_view in);
    bool done() const { return done_; }
    Problem problem() const { return problem_; }
    // The reply a refused message gets (code 0 if none).
    Reply refusal() const;
    // The unstuffed content, CRLF line endings; empty once a problem is seen.
    std::string& content() { return content_; }

  private:
    enum class LineState { Start, Dot, Body };
    void flag(Problem p);
    void append(char c);

    size_t maxSize_;
    std::string content_;
    LineState line_ = LineState::Start;
    size_t lineLen_ = 0;
    bool cr_ = false;
    bool done_ = false;
    Problem problem_ = Problem::None;
};

}  // namespace danerelay::relay
