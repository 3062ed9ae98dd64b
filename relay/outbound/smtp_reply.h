// smtp_reply.h — what the outbound client makes of the bytes a server sends
// back: reply assembly, the enhanced status code, the EHLO keywords. Pure
// functions and one small buffer-in, reply-out class; no I/O, no clock.
//
// Server replies are hostile input. ReplyAssembler takes lines ending in LF
// (CRLF or bare LF: the CR is dropped), a three-digit code followed by ' ',
// '-' or the end of the line; the last line's code is the reply's. It
// refuses (an error, after which the connection is unusable) a line longer
// than kMaxReplyLine, a reply longer than kMaxReplyBytes or kMaxReplyLines
// lines, and a line without a code.
// It never throws and never holds more than about kMaxReplyBytes.
//
// The text it hands back is safe to put anywhere: valid UTF-8 (invalid
// sequences replaced by U+FFFD, as queue/utf8.h does), and no control
// characters but HT (NUL, bare CR, ESC, DEL, ... each become U+FFFD), so a
// reply can go into JSON, a log line or a DSN header without further ado.
// The three code digits are ASCII by construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace danerelay::relay {

constexpr size_t kMaxReplyLine = 4096;        // one line, without its CRLF
constexpr size_t kMaxReplyBytes = 64 * 1024;  // one reply, all its lines
constexpr size_t kMaxReplyLines = 256;        // one reply (EHLO lists ~15)

struct SmtpReply {
    int code = 0;                    // 200..599 in practice; 000..999 accepted
    std::vector<std::string> lines;  // the text of each line, after "NNN " or "NNN-"
    // "NNN text-of-the-last-line": what is recorded and shown for a reply.
    std::string text() const;
    // Every line's text, each followed by "\n": what parseEhlo() reads.
    std::string allLines() const;
};

class ReplyAssembler {
  public:
    enum class Step { NeedMore, Reply, Error };
    // Takes complete lines from the front of in (erasing what it used) until
    // one whole reply is assembled (Reply, *out set), the data runs out
    // (NeedMore: call again with more), or the server broke the rules
    // (Error, *error set, sanitised like reply text).
    Step next(std::string& in, SmtpReply* out, std::string* error);
    // Forget a partly assembled reply (a connection reused, TLS started).
    void reset();
    // Lines of a multi-line reply taken, its last line not yet seen.
    bool inProgress() const { return !partial_.lines.empty(); }

  private:
    SmtpReply partial_;
    size_t bytes_ = 0;
};

// Text from a server made safe (see the contract above), cut to at most
// maxBytes without splitting a character.
std::string sanitizeReplyText(std::string_view s, size_t maxBytes = kMaxReplyBytes);

// RFC 3463 / RFC 2034: the enhanced status code at the start of a reply's
// text ("4.3.0" in "451 4.3.0 try later"), valid only if its class matches
// the reply code's first digit; "" if there is none.
struct EnhancedStatus {
    std::string code;    // "c.sss.ddd", or empty
    std::string detail;  // the text after it (all of the text if there is none)
};
EnhancedStatus splitEnhancedStatus(int replyCode, std::string_view text);

// What a server's EHLO reply advertises. The first line names the server
// and is no keyword. Keywords are case-insensitive; SIZE's limit is taken
// only if it is all digits and fits (0: none given).
struct EhloExtensions {
    bool pipelining = false, starttls = false, dsn = false, smtputf8 = false, eightBitMime = false,
         size = false, requireTls = false;
    uint64_t sizeLimit = 0;
};
EhloExtensions parseEhlo(std::string_view allLines);

}  // namespace danerelay::relay
