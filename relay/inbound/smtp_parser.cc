#include "relay/inbound/smtp_parser.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "queue/utf8.h"

namespace danerelay::relay {

namespace {

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

bool iequalsPrefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
        if (std::toupper(static_cast<unsigned char>(s[i])) !=
            std::toupper(static_cast<unsigned char>(prefix[i]))) {
            return false;
        }
    }
    return true;
}

bool isDomainChar(unsigned char c, bool allow8bit) {
    return std::isalnum(c) || c == '-' || c == '.' || (allow8bit && c >= 0x80);
}

bool validDomain(std::string_view d, bool allow8bit) {
    if (d.empty() || d.size() > 255) return false;
    if (d.front() == '[') {  // address literal
        if (d.back() != ']' || d.size() < 3) return false;
        for (unsigned char c : d.substr(1, d.size() - 2)) {
            if (!(std::isalnum(c) || c == '.' || c == ':')) return false;
        }
        return true;
    }
    if (d.front() == '.' || d.back() == '.' || d.find("..") != std::string_view::npos) {
        return false;
    }
    return std::all_of(d.begin(), d.end(), [&](char c) {
        return isDomainChar(static_cast<unsigned char>(c), allow8bit);
    });
}

// Local part: dot-atom or quoted string (RFC 5321 4.1.2).
bool validLocalPart(std::string_view l, bool allow8bit) {
    if (l.empty() || l.size() > 64 * 4) return false;
    if (l.front() == '"') {
        if (l.size() < 2 || l.back() != '"') return false;
        for (size_t i = 1; i + 1 < l.size(); ++i) {
            auto c = static_cast<unsigned char>(l[i]);
            if (c < 0x20 || c == 0x7f || (c >= 0x80 && !allow8bit)) return false;
            if (c == '\\') {
                if (++i + 1 >= l.size()) return false;
            } else if (c == '"') {
                return false;
            }
        }
        return true;
    }
    if (l.front() == '.' || l.back() == '.' || l.find("..") != std::string_view::npos) return false;
    static const std::string_view kAtext = "!#$%&'*+-/=?^_`{|}~.";
    for (unsigned char c : l) {
        if (std::isalnum(c) || kAtext.find(static_cast<char>(c)) != std::string_view::npos)
            continue;
        if (c >= 0x80 && allow8bit) continue;
        return false;
    }
    return true;
}

Reply syntax(std::string text) {
    return {501, "5.5.4 " + std::move(text)};
}

// ---------------------------------------------------------------- paths

// Where the path that `arg` opens with '<' closes: the first '>' outside a
// quoted local part; npos if none.
size_t closingBracket(std::string_view arg) {
    bool quoted = false;
    for (size_t i = 1; i < arg.size(); ++i) {
        char c = arg[i];
        if (quoted && c == '\\') {
            ++i;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (c == '>' && !quoted) {
            return i;
        }
    }
    return std::string_view::npos;
}

// The mailbox between the brackets (a source route dropped), checked for shape.
bool parseMailbox(std::string_view path, bool allowEmpty, bool allow8bit, std::string* out,
                  Reply* err) {
    // Source route (RFC 5321 4.1.1.3): accepted and ignored.
    if (!path.empty() && path.front() == '@') {
        auto colon = path.find(':');
        if (colon == std::string_view::npos) {
            *err = syntax("Syntax: bad source route");
            return false;
        }
        path.remove_prefix(colon + 1);
    }
    if (path.empty()) {
        if (!allowEmpty) *err = syntax("Syntax: empty address");
        out->clear();
        return allowEmpty;
    }
    auto at = path.rfind('@');
    if (at == std::string_view::npos || !validLocalPart(path.substr(0, at), allow8bit) ||
        !validDomain(path.substr(at + 1), allow8bit)) {
        *err = {553, "5.1.3 Bad address syntax"};
        // 8-bit without SMTPUTF8 gets its own, clearer reply.
        if (!allow8bit && std::any_of(path.begin(), path.end(), [](char c) {
                return static_cast<unsigned char>(c) >= 0x80;
            })) {
            *err = {553, "5.6.7 Non-ASCII address requires SMTPUTF8"};
        }
        return false;
    }
    // RFC 6531 3.3: an 8-bit address is UTF-8; anything else is refused
    // here, before it can reach the spool, a log or a DSN.
    if (allow8bit && !queue::isValidUtf8(path)) {
        *err = {553, "5.6.7 Address is not valid UTF-8"};
        return false;
    }
    *out = std::string(path);
    return true;
}

// One "KEYWORD[=value]" (RFC 5321 4.1.2 esmtp-param).
bool parseParam(std::string_view p, bool allow8bit, Param* out, Reply* err) {
    auto eq = p.find('=');
    out->keyword = upper(p.substr(0, eq));
    if (out->keyword.empty() || !std::all_of(out->keyword.begin(), out->keyword.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
        })) {
        *err = {555, "5.5.4 Bad parameter keyword"};
        return false;
    }
    if (eq == std::string_view::npos) return true;
    out->value = std::string(p.substr(eq + 1));
    for (unsigned char c : out->value) {
        if (c < 0x21 || c == '=' || c == 0x7f || (c >= 0x80 && !allow8bit)) {
            *err = {555, "5.5.4 Bad parameter value for " + out->keyword};
            return false;
        }
    }
    return true;
}

// ESMTP parameters after the path, separated by spaces.
bool parseParams(std::string_view rest, bool allow8bit, std::vector<Param>* out, Reply* err) {
    out->clear();
    while (!rest.empty()) {
        if (rest.front() != ' ') {
            *err = syntax("Syntax: garbage after address");
            return false;
        }
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        if (rest.empty()) break;
        auto end = rest.find(' ');
        Param param;
        if (!parseParam(rest.substr(0, end), allow8bit, &param, err)) return false;
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
        out->push_back(std::move(param));
    }
    return true;
}

// ---------------------------------------------------------------- MAIL/RCPT parameters

using Refusal = std::optional<Reply>;

// What MAIL and RCPT refuse alike: parameters without EHLO, a keyword twice.
Refusal admitParam(const Param& prm, bool esmtp, std::vector<std::string>* seen) {
    if (!esmtp) return Reply{555, "5.5.4 Error: parameters need EHLO"};
    if (std::find(seen->begin(), seen->end(), prm.keyword) != seen->end()) {
        return Reply{501, "5.5.4 Error: duplicate " + prm.keyword + " parameter"};
    }
    seen->push_back(prm.keyword);
    return std::nullopt;
}

Reply unsupported(const std::string& keyword) {
    return {555, "5.5.4 Error: unsupported parameter " + keyword};
}

// RFC 1870: digits only; up to 19 of them always fit in 64 bits.
Refusal checkSize(const std::string& v, uint64_t maxMessageSize) {
    if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos) {
        return Reply{501, "5.5.4 Error: bad SIZE value"};
    }
    if (std::stoull(v) > maxMessageSize)
        return Reply{552, "5.3.4 Message size exceeds fixed limit"};
    return std::nullopt;
}

Refusal applyBody(const std::string& v, MailParams* out) {
    std::string b = upper(v);
    if (b == "8BITMIME") {
        out->eightBitMime = true;
    } else if (b != "7BIT") {
        return Reply{501, "5.5.4 Error: BODY must be 7BIT or 8BITMIME"};
    }
    return std::nullopt;
}

Refusal applyRet(const std::string& v, MailParams* out) {
    std::string r = upper(v);
    if (r == "FULL") {
        out->ret = queue::DsnRet::Full;
    } else if (r == "HDRS") {
        out->ret = queue::DsnRet::Headers;
    } else {
        return Reply{501, "5.5.4 Error: RET must be FULL or HDRS"};
    }
    return std::nullopt;
}

// RFC 3461 4.4: printable US-ASCII once decoded.
Refusal applyEnvid(const std::string& v, MailParams* out) {
    if (!decodeXtext(v, &out->envid) || out->envid.empty() || out->envid.size() > kMaxEnvid ||
        std::any_of(out->envid.begin(), out->envid.end(), [](char ch) {
            auto c = static_cast<unsigned char>(ch);
            return c < 0x20 || c > 0x7e;
        })) {
        return Reply{501, "5.5.4 Error: bad ENVID"};
    }
    return std::nullopt;
}

Refusal applyMailParam(const Param& prm, uint64_t maxMessageSize, MailParams* out) {
    const auto& k = prm.keyword;
    if (k == "SIZE") return checkSize(prm.value, maxMessageSize);
    if (k == "BODY") return applyBody(prm.value, out);
    if (k == "SMTPUTF8") {
        if (!prm.value.empty()) return Reply{501, "5.5.4 Error: SMTPUTF8 takes no value"};
        out->smtputf8 = true;
        return std::nullopt;
    }
    if (k == "REQUIRETLS") {
        if (!prm.value.empty()) return Reply{501, "5.5.4 Error: REQUIRETLS takes no value"};
        out->requireTls = true;
        return std::nullopt;
    }
    if (k == "RET") return applyRet(prm.value, out);
    if (k == "ENVID") return applyEnvid(prm.value, out);
    // RFC 4954 5: accepted; we do not trust a client's claim about others.
    if (k == "AUTH") return std::nullopt;
    return unsupported(k);
}

Refusal applyNotify(const std::string& value, RcptParams* out) {
    std::string v = upper(value) + ",";
    unsigned flags = 0;
    for (size_t pos = 0; pos < v.size();) {
        auto comma = v.find(',', pos);
        std::string item = v.substr(pos, comma - pos);
        pos = comma + 1;
        if (item == "NEVER") {
            flags |= queue::kNotifyNever;
        } else if (item == "SUCCESS") {
            flags |= queue::kNotifySuccess;
        } else if (item == "FAILURE") {
            flags |= queue::kNotifyFailure;
        } else if (item == "DELAY") {
            flags |= queue::kNotifyDelay;
        } else {
            return Reply{501, "5.5.4 Error: bad NOTIFY value"};
        }
    }
    if ((flags & queue::kNotifyNever) && flags != queue::kNotifyNever) {
        return Reply{501, "5.5.4 Error: NOTIFY=NEVER cannot be combined"};
    }
    out->notify = flags;
    return std::nullopt;
}

// Decoded: an address, UTF-8 at most (RFC 6533), no control bytes.
Refusal applyOrcpt(const std::string& value, RcptParams* out) {
    std::string decoded;
    auto semi = value.find(';');
    if (semi == std::string::npos || semi == 0 || !decodeXtext(value, &decoded) ||
        decoded.size() > kMaxOrcpt || !queue::isValidUtf8(decoded) ||
        std::any_of(decoded.begin(), decoded.end(), [](char ch) {
            auto c = static_cast<unsigned char>(ch);
            return c < 0x20 || c == 0x7f;
        })) {
        return Reply{501, "5.5.4 Error: bad ORCPT"};
    }
    out->orcpt = std::move(decoded);
    return std::nullopt;
}

Refusal applyRcptParam(const Param& prm, RcptParams* out) {
    if (prm.keyword == "NOTIFY") return applyNotify(prm.value, out);
    if (prm.keyword == "ORCPT") return applyOrcpt(prm.value, out);
    return unsupported(prm.keyword);
}

}  // namespace

Parsed<MailParams> parseMailParams(const PathArg& from, bool esmtp, uint64_t maxMessageSize) {
    MailParams out;
    std::vector<std::string> seen;
    for (const auto& prm : from.params) {
        if (auto r = admitParam(prm, esmtp, &seen)) return *r;
        if (auto r = applyMailParam(prm, maxMessageSize, &out)) return *r;
    }
    bool eightBit = std::any_of(from.address.begin(), from.address.end(),
                                [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; });
    if (eightBit && !out.smtputf8) return Reply{553, "5.6.7 Non-ASCII address requires SMTPUTF8"};
    return out;
}

Parsed<RcptParams> parseRcptParams(const std::vector<Param>& params, bool esmtp) {
    RcptParams out;
    std::vector<std::string> seen;
    for (const auto& prm : params) {
        if (auto r = admitParam(prm, esmtp, &seen)) return *r;
        if (auto r = applyRcptParam(prm, &out)) return *r;
    }
    return out;
}

Command parseCommand(std::string_view line) {
    auto sp = line.find(' ');
    Command c;
    c.verb = upper(line.substr(0, sp));
    if (sp != std::string_view::npos) c.arg = std::string(line.substr(sp + 1));
    return c;
}

bool parsePathArg(std::string_view arg, std::string_view prefix, bool allowEmpty, bool allow8bit,
                  PathArg* out, Reply* err) {
    if (!iequalsPrefix(arg, prefix)) {
        *err = syntax("Syntax: expected " + std::string(prefix) + "<address>");
        return false;
    }
    arg.remove_prefix(prefix.size());
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);  // tolerated, as Postfix does
    if (arg.empty() || arg.front() != '<') {
        *err = syntax("Syntax: address must be in angle brackets");
        return false;
    }
    size_t close = closingBracket(arg);
    if (close == std::string_view::npos) {
        *err = syntax("Syntax: missing '>'");
        return false;
    }
    return parseMailbox(arg.substr(1, close - 1), allowEmpty, allow8bit, &out->address, err) &&
           parseParams(arg.substr(close + 1), allow8bit, &out->params, err);
}

bool decodeXtext(std::string_view in, std::string* out) {
    out->clear();
    for (size_t i = 0; i < in.size(); ++i) {
        auto c = static_cast<unsigned char>(in[i]);
        if (c == '+') {
            if (i + 2 >= in.size()) return false;
            auto hex = [](char h) -> int {
                if (h >= '0' && h <= '9') return h - '0';
                if (h >= 'A' && h <= 'F') return h - 'A' + 10;
                return -1;
            };
            int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
            if (hi < 0 || lo < 0) return false;
            out->push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c >= 0x21 && c <= 0x7e && c != '=') {
            out->push_back(static_cast<char>(c));
        } else {
            return false;
        }
    }
    return true;
}

bool isValidHeloArg(std::string_view s) {
    if (s.empty() || s.size() > 255) return false;
    return std::all_of(s.begin(), s.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '[' || c == ']' ||
               c == ':';
    });
}

void DataReader::flag(Problem p) {
    if (problem_ == Problem::None) problem_ = p;
    std::string().swap(content_);  // a refused message keeps no bytes
}

void DataReader::append(char c) {
    if (problem_ != Problem::None) return;
    if (content_.size() >= maxSize_) {
        flag(Problem::TooBig);
        return;
    }
    content_.push_back(c);
}

size_t DataReader::feed(std::string_view in) {
    size_t i = 0;
    while (i < in.size() && !done_) {
        char c = in[i++];
        if (cr_) {
            cr_ = false;
            if (c == '\n') {
                if (line_ == LineState::Dot) {
                    done_ = true;  // <CRLF>.<CRLF>
                    break;
                }
                append('\r');
                append('\n');
                line_ = LineState::Start;
                lineLen_ = 0;
                continue;
            }
            flag(Problem::BareLineEnding);  // CR not followed by LF
            line_ = LineState::Body;
        }
        if (c == '\r') {
            cr_ = true;
            continue;
        }
        if (c == '\n') {
            // A bare LF never ends a line here, so "<LF>.<LF>" cannot end DATA.
            flag(Problem::BareLineEnding);
            line_ = LineState::Body;
            continue;
        }
        if (c == '\0') flag(Problem::Nul);
        if (++lineLen_ > kMaxTextLine - 2) flag(Problem::LineTooLong);
        if (line_ == LineState::Start && c == '.') {
            line_ = LineState::Dot;  // dropped: either the end marker or dot-stuffing
            continue;
        }
        line_ = LineState::Body;
        append(c);
    }
    return i;
}

Reply DataReader::refusal() const {
    switch (problem_) {
        case Problem::None:
            return {};
        case Problem::BareLineEnding:
            return {550, "5.6.0 Message refused: bare CR or LF; lines must end with CRLF"};
        case Problem::Nul:
            return {550, "5.6.0 Message refused: NUL character in message"};
        case Problem::LineTooLong:
            return {550, "5.6.0 Message refused: line longer than 1000 octets"};
        case Problem::TooBig:
            return {552, "5.3.4 Message size exceeds fixed limit"};
    }
    return {};
}

namespace {

bool nameIs(std::string_view name, std::string_view lowerWanted) {
    return name.size() == lowerWanted.size() &&
           std::equal(lowerWanted.begin(), lowerWanted.end(), name.begin(), [](char a, char b) {
               return a == std::tolower(static_cast<unsigned char>(b));
           });
}

std::string_view trimWsp(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

}  // namespace

HeaderFacts scanHeaderSection(std::string_view content) {
    HeaderFacts facts;
    size_t tlsRequiredFields = 0;
    constexpr size_t kMaxValue = 100;  // bytes of the TLS-Required value kept
    std::string tlsRequired;           // the value, unfolded, at most kMaxValue + 1
    bool inTlsRequired = false;        // the field being read is TLS-Required
    size_t pos = 0;
    while (pos < content.size()) {
        size_t eol = content.find('\n', pos);
        std::string_view line =
            content.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;  // end of the header section
        if (line[0] == ' ' || line[0] == '\t') {
            if (inTlsRequired && tlsRequired.size() <= kMaxValue)
                tlsRequired += line.substr(0, kMaxValue + 1 - tlsRequired.size());
        } else {
            // A field name: printable US-ASCII but ':', then WSP*, then ':'.
            size_t n = 0;
            while (n < line.size() && line[n] > 32 && line[n] < 127 && line[n] != ':') ++n;
            size_t colon = n;
            while (colon < line.size() && (line[colon] == ' ' || line[colon] == '\t')) ++colon;
            if (n == 0 || colon >= line.size() || line[colon] != ':') break;  // the body
            std::string_view name = line.substr(0, n);
            inTlsRequired = nameIs(name, "tls-required");
            if (nameIs(name, "received")) ++facts.received;
            if (inTlsRequired) {
                ++tlsRequiredFields;
                tlsRequired = std::string(line.substr(colon + 1, kMaxValue + 1));
            }
        }
        if (eol == std::string_view::npos) break;
        pos = eol + 1;
    }
    // A value cut at the cap is never "No", however it began.
    facts.tlsRequiredNo = tlsRequiredFields == 1 && tlsRequired.size() <= kMaxValue &&
                          nameIs(trimWsp(tlsRequired), "no");
    return facts;
}

}  // namespace danerelay::relay
