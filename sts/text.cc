#include "sts/text.h"

namespace danerelay::sts {

bool isExtensionName(std::string_view s) {
    if (s.empty() || s.size() > 32 || !isAlnum(s[0])) return false;
    for (char c : s) {
        if (!isAlnum(c) && c != '_' && c != '-' && c != '.') return false;
    }
    return true;
}

bool isPolicyId(std::string_view s) {
    if (s.empty() || s.size() > 32) return false;
    for (char c : s) {
        if (!isAlnum(c)) return false;
    }
    return true;
}

bool isDomainName(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find('.', start);
        if (end == std::string_view::npos) end = s.size();
        std::string_view label = s.substr(start, end - start);
        if (label.empty() || label.size() > 63) return false;
        if (!isAlnum(label.front()) || !isAlnum(label.back())) return false;
        for (char c : label) {
            if (!isAlnum(c) && c != '-') return false;
        }
        start = end + 1;
    }
    return true;
}

std::string normalizeName(std::string_view s) {
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string quoted(std::string_view s, size_t max) {
    static const char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    for (size_t i = 0; i < s.size() && i < max; ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    out += '"';
    if (s.size() > max) out += "...";
    return out;
}

}  // namespace danerelay::sts
