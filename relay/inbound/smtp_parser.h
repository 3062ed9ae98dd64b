// smtp_parser.h — pure parsing of what an SMTP client sends (RFC 5321, 1870,
// 3461, 6152, 6531). No I/O, no state beyond one message's DATA decoder, so
// every rule here is unit-tested and fuzzable.
//
// Everything handled here is untrusted. Refusals come back as a reply code,
// an enhanced status code and text, ready to send.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// Decodes RFC 3461 xtext ("+2B" escapes). False on malformed input.
bool decodeXtext(std::string_view in, std::string* out);

// Is this a plausible EHLO/HELO argument (domain or address literal)?
bool isValidHeloArg(std::string_view s);

// Counts the Received: fields of a message's header section (a mail loop
// shows as too many). Only field names at the start of a line count, without
// regard to case and with white space allowed before the colon (RFC 5322
// 4.5.3); continuation lines never do. Counting stops at the first empty
// line, or the first line that is neither a field nor a continuation: the
// body, whatever it contains, is never counted. Lines end in CRLF or LF.
size_t countReceivedHeaders(std::string_view content);

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
