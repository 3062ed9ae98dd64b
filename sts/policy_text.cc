#include "sts/policy_text.h"

#include <optional>

#include "sts/text.h"

namespace danerelay::sts {

namespace {

// Length of the valid UTF-8 sequence (2..4 octets) starting at s[i], or 0.
size_t utf8Sequence(std::string_view s, size_t i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    auto cont = [&](size_t k) { return k < s.size() && (b(k) & 0xc0) == 0x80; };
    unsigned char c = b(i);
    if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (!cont(i + 1) || !cont(i + 2)) return 0;
        if (c == 0xe0 && b(i + 1) < 0xa0) return 0;   // overlong
        if (c == 0xed && b(i + 1) >= 0xa0) return 0;  // surrogates
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
        if (c == 0xf0 && b(i + 1) < 0x90) return 0;   // overlong
        if (c == 0xf4 && b(i + 1) >= 0x90) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}

// sts-policy-ext-value: visible ASCII or UTF-8, inner spaces (the caller has
// already cut the leading and trailing white space).
bool isExtValue(std::string_view v) {
    if (v.empty()) return false;
    for (size_t i = 0; i < v.size();) {
        auto c = static_cast<unsigned char>(v[i]);
        if (c == ' ' || (c >= 0x21 && c <= 0x7e)) {
            ++i;
        } else if (size_t n = utf8Sequence(v, i)) {
            i += n;
        } else {
            return false;
        }
    }
    return true;
}

std::optional<Mode> modeOf(std::string_view v) {
    if (v == "enforce") return Mode::Enforce;
    if (v == "testing") return Mode::Testing;
    if (v == "none") return Mode::None;
    return std::nullopt;
}

// An mx value: ["*."] Domain, one trailing dot tolerated. Normalized, or
// empty if malformed.
std::string mxPatternOf(std::string_view v) {
    std::string_view name = v;
    if (name.substr(0, 2) == "*.") name.remove_prefix(2);
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (!isDomainName(name)) return {};
    return normalizeName(v);
}

struct Parser {
    std::string_view domain;
    Policy policy;
    bool sawMode = false, sawMaxAge = false;

    Error bad(size_t line, const std::string& why) const {
        return Error::permanent("MTA-STS policy for " + std::string(domain) + ": line " +
                                std::to_string(line) + ": " + why);
    }
    Error bad(const std::string& why) const {
        return Error::permanent("MTA-STS policy for " + std::string(domain) + ": " + why);
    }

    Status maxAge(size_t n, std::string_view v) {
        if (v.empty() || v.size() > 10) {
            return bad(n, "max_age must be 1 to 10 digits: " + quoted(v));
        }
        int64_t seconds = 0;
        for (char c : v) {
            if (!isDigit(c)) return bad(n, "max_age must be 1 to 10 digits: " + quoted(v));
            seconds = seconds * 10 + (c - '0');
        }
        policy.maxAgeCapped = seconds > kMaxMaxAge;
        policy.maxAge = policy.maxAgeCapped ? kMaxMaxAge : seconds;
        sawMaxAge = true;
        return okStatus();
    }

    Status field(size_t n, std::string_view name, std::string_view value) {
        if (name == "mode") {
            if (sawMode) return okStatus();  // first wins
            auto m = modeOf(value);
            if (!m) return bad(n, "mode must be enforce, testing or none: " + quoted(value));
            policy.mode = *m;
            sawMode = true;
        } else if (name == "max_age") {
            if (sawMaxAge) return okStatus();
            return maxAge(n, value);
        } else if (name == "mx") {
            auto p = mxPatternOf(value);
            if (p.empty()) return bad(n, "mx must be a host name or *.name: " + quoted(value));
            policy.mx.push_back(std::move(p));
        }
        // version after line 1: a duplicate, ignored; others: extensions.
        return okStatus();
    }

    Status line(size_t n, std::string_view l) {
        if (l.empty()) return bad(n, "empty line");
        size_t colon = l.find(':');
        if (colon == std::string_view::npos) return bad(n, "no ':' in " + quoted(l));
        std::string_view name = l.substr(0, colon), value = l.substr(colon + 1);
        if (!isExtensionName(name)) return bad(n, "bad field name " + quoted(name));
        while (!value.empty() && isWsp(value.front())) value.remove_prefix(1);
        while (!value.empty() && isWsp(value.back())) value.remove_suffix(1);
        if (!isExtValue(value)) {
            return bad(n, "bad value for " + std::string(name) + ": " + quoted(value));
        }
        if (n == 1) {
            if (name != "version")
                return bad(n, "the first field must be version, not " + quoted(name));
            if (value != "STSv1") return bad(n, "unsupported version " + quoted(value));
            return okStatus();
        }
        return field(n, name, value);
    }

    Status finish() const {
        if (!sawMode) return bad("no mode field");
        if (!sawMaxAge) return bad("no max_age field");
        if (policy.mx.empty() && policy.mode != Mode::None) {
            return bad("no mx field (required unless mode is none)");
        }
        return okStatus();
    }
};

}  // namespace

const char* toString(Mode m) {
    switch (m) {
        case Mode::Enforce:
            return "enforce";
        case Mode::Testing:
            return "testing";
        case Mode::None:
            return "none";
    }
    return "?";
}

Result<Policy> parsePolicy(std::string_view domain, std::string_view text) {
    Parser p{domain, {}};
    if (text.size() > kMaxPolicyBytes) {
        return p.bad("larger than " + std::to_string(kMaxPolicyBytes) + " bytes");
    }
    if (text.empty()) return p.bad("empty");
    size_t start = 0, n = 0;
    while (start < text.size()) {
        ++n;
        size_t nl = text.find('\n', start);
        size_t end = nl == std::string_view::npos ? text.size() : nl;
        std::string_view l = text.substr(start, end - start);
        if (nl != std::string_view::npos && !l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (l.find('\r') != std::string_view::npos) return p.bad(n, "CR not followed by LF");
        if (auto s = p.line(n, l); !s) return s.error();
        start = nl == std::string_view::npos ? text.size() : nl + 1;
    }
    if (auto s = p.finish(); !s) return s.error();
    return std::move(p.policy);
}

bool mxPatternMatches(std::string_view pattern, std::string_view host) {
    std::string h = normalizeName(host);
    if (!isDomainName(h)) return false;
    std::string p = normalizeName(pattern);
    if (p.substr(0, 2) == "*.") {
        size_t dot = h.find('.');
        // isDomainName: the leftmost label is not empty.
        return dot != std::string::npos && std::string_view(h).substr(dot + 1) == p.substr(2);
    }
    return !p.empty() && h == p;
}

std::string Policy::mxText() const {
    std::string out;
    for (const auto& m : mx) out += (out.empty() ? "" : ", ") + m;
    return out;
}

bool Policy::matchesMx(std::string_view host) const {
    for (const auto& p : mx) {
        if (mxPatternMatches(p, host)) return true;
    }
    return false;
}

}  // namespace danerelay::sts
