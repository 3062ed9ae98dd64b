// text.h — small text helpers shared by the MTA-STS parsers: ABNF character
// classes, domain-name checks, and quoting of hostile bytes for error
// messages. Pure; nothing here allocates more than its input's size.
#pragma once

#include <string>
#include <string_view>

namespace danerelay::sts {

inline bool isAlpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool isDigit(char c) {
    return c >= '0' && c <= '9';
}
inline bool isAlnum(char c) {
    return isAlpha(c) || isDigit(c);
}
inline bool isWsp(char c) {
    return c == ' ' || c == '\t';
}

// An extension field name, the same in the TXT record and the policy:
// (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
bool isExtensionName(std::string_view s);

// An MTA-STS policy id (RFC 8461 3.1): 1*32(ALPHA / DIGIT).
bool isPolicyId(std::string_view s);

// A host name as RFC 5321's Domain: labels of letters, digits and inner
// hyphens, 1..63 octets each, 253 at most in all, no empty label. One
// trailing dot is NOT part of this syntax (callers strip it where allowed).
bool isDomainName(std::string_view s);

// ASCII lower case, one trailing dot removed: the form names are compared
// and stored in.
std::string normalizeName(std::string_view s);

// A value from the network, made safe to put in an error message: quoted,
// bytes outside printable ASCII as \xHH, cut after `max` input bytes ("...").
std::string quoted(std::string_view s, size_t max = 64);

}  // namespace danerelay::sts
