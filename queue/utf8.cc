#include "queue/utf8.h"

#include <nlohmann/json.hpp>

namespace danerelay::queue {

Utf8Sequence utf8SequenceAt(std::string_view s, size_t pos) {
    auto c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) return {true, 1};
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c == 0xE0) {
        need = 2;
        lo = 0xA0;  // no overlong forms
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need = 2;
    } else if (c == 0xED) {
        need = 2;
        hi = 0x9F;  // no surrogates
    } else if (c == 0xF0) {
        need = 3;
        lo = 0x90;  // no overlong forms
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
    } else if (c == 0xF4) {
        need = 3;
        hi = 0x8F;  // nothing above U+10FFFF
    } else {
        return {false, 1};  // 80..C1, F5..FF: never a lead byte
    }
    for (size_t k = 1; k <= need; ++k) {
        if (pos + k >= s.size()) return {false, k};
        auto b = static_cast<unsigned char>(s[pos + k]);
        if (b < lo || b > hi) return {false, k};
        lo = 0x80;
        hi = 0xBF;
    }
    return {true, need + 1};
}

bool isValidUtf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        auto q = utf8SequenceAt(s, i);
        if (!q.valid) return false;
        i += q.length;
    }
    return true;
}

std::string toValidUtf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        auto q = utf8SequenceAt(s, i);
        if (q.valid) {
            out.append(s.substr(i, q.length));
        } else {
            out += "\xEF\xBF\xBD";
        }
        i += q.length;
    }
    return out;
}

std::string_view utf8Prefix(std::string_view s, size_t maxBytes) {
    if (s.size() <= maxBytes) return s;
    size_t end = maxBytes;
    // Back off over continuation bytes to the start of the sequence that
    // straddles the cut (at most 3), and drop it if it does not fit.
    size_t start = end;
    while (start > 0 && end - start < 3 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
        --start;
    if (start < end) {
        auto q = utf8SequenceAt(s, start);
        if (q.valid && start + q.length > end) end = start;
    }
    return s.substr(0, end);
}

std::string dumpJson(const nlohmann::json& j, int indent) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string jsonTextFromDisk(std::string text) {
    if (isValidUtf8(text)) return text;
    return toValidUtf8(text);
}

}  // namespace danerelay::queue
