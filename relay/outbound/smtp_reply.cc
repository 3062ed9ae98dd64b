#include "relay/outbound/smtp_reply.h"

#include <algorithm>
#include <cctype>

#include "queue/utf8.h"

namespace danerelay::relay {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}
}  // namespace

std::string sanitizeReplyText(std::string_view s, size_t maxBytes) {
    std::string out;
    out.reserve(std::min(s.size(), maxBytes));
    for (size_t i = 0; i < s.size();) {
        auto seq = queue::utf8SequenceAt(s, i);
        auto c = static_cast<unsigned char>(s[i]);
        std::string_view piece = s.substr(i, seq.length);
        if (!seq.valid || (c < 0x20 && c != '\t') || c == 0x7f) piece = kReplacement;
        if (out.size() + piece.size() > maxBytes) break;
        out.append(piece);
        i += seq.length;
    }
    return out;
}

std::string SmtpReply::text() const {
    std::string t = std::to_string(code);
    t.insert(0, 3 - std::min<size_t>(3, t.size()), '0');
    t += ' ';
    if (!lines.empty()) t += lines.back();
    return t;
}

std::string SmtpReply::allLines() const {
    std::string t;
    for (const auto& l : lines) {
        t += l;
        t += '\n';
    }
    return t;
}

void ReplyAssembler::reset() {
    partial_ = SmtpReply{};
    bytes_ = 0;
}

ReplyAssembler::Step ReplyAssembler::next(std::string& in, SmtpReply* out, std::string* error) {
    auto refuse = [&](std::string why) {
        *error = std::move(why);
        reset();
        return Step::Error;
    };
    size_t pos = 0;
    Step step = Step::NeedMore;
    while (step == Step::NeedMore) {
        auto nl = in.find('\n', pos);
        if (nl == std::string::npos) {
            if (in.size() - pos > kMaxReplyLine + 1) {
                in.erase(0, pos);
                return refuse("server reply line too long");
            }
            break;
        }
        std::string_view line(in.data() + pos, nl - pos);
        pos = nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bytes_ += line.size();
        if (line.size() > kMaxReplyLine || bytes_ > kMaxReplyBytes ||
            partial_.lines.size() >= kMaxReplyLines) {
            in.erase(0, pos);
            return refuse("server reply too long");
        }
        if (line.size() < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) ||
            (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
            std::string shown = sanitizeReplyText(line, 80);
            in.erase(0, pos);
            return refuse("malformed server reply: " + shown);
        }
        partial_.lines.push_back(sanitizeReplyText(line.size() > 4 ? line.substr(4) : ""));
        if (line.size() > 3 && line[3] == '-') continue;
        partial_.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        *out = std::move(partial_);
        reset();
        step = Step::Reply;
    }
    in.erase(0, pos);
    return step;
}

EnhancedStatus splitEnhancedStatus(int replyCode, std::string_view text) {
    // class "." subject "." detail: 1 digit, 1-3 digits, 1-3 digits (RFC 3463).
    size_t i = 0;
    auto digits = [&](size_t max) {
        size_t start = i;
        while (i < text.size() && isDigit(text[i]) && i - start < max + 1) ++i;
        return i - start;
    };
    EnhancedStatus none{"", std::string(text)};
    if (text.empty() || (text[0] != '2' && text[0] != '4' && text[0] != '5')) return none;
    if (text[0] - '0' != replyCode / 100) return none;
    ++i;
    if (i >= text.size() || text[i++] != '.') return none;
    size_t n = digits(3);
    if (n == 0 || n > 3 || i >= text.size() || text[i++] != '.') return none;
    n = digits(3);
    if (n == 0 || n > 3) return none;
    if (i < text.size() && text[i] != ' ' && text[i] != '\t') return none;
    EnhancedStatus s;
    s.code = std::string(text.substr(0, i));
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    s.detail = std::string(text.substr(i));
    return s;
}

EhloExtensions parseEhlo(std::string_view allLines) {
    EhloExtensions e;
    size_t pos = 0;
    bool first = true;
    while (pos < allLines.size()) {
        auto nl = allLines.find('\n', pos);
        std::string_view l = allLines.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
        pos = nl == std::string_view::npos ? allLines.size() : nl + 1;
        if (first) {  // the greeting line names the server, not an extension
            first = false;
            continue;
        }
        std::string kw(l.substr(0, l.find(' ')));
        std::transform(kw.begin(), kw.end(), kw.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        if (kw == "PIPELINING") e.pipelining = true;
        if (kw == "STARTTLS") e.starttls = true;
        if (kw == "DSN") e.dsn = true;
        if (kw == "SMTPUTF8") e.smtputf8 = true;
        if (kw == "8BITMIME") e.eightBitMime = true;
        if (kw == "REQUIRETLS") e.requireTls = true;
        if (kw == "SIZE") {
            e.size = true;
            std::string_view v = l.size() > 5 ? l.substr(5) : std::string_view();
            if (!v.empty() && v.size() < 19 &&
                v.find_first_not_of("0123456789") == std::string_view::npos) {
                uint64_t n = 0;
                for (char c : v) n = n * 10 + static_cast<uint64_t>(c - '0');
                e.sizeLimit = n;
            }
        }
    }
    return e;
}

}  // namespace danerelay::relay
