// base64.h — RFC 4648 base64 with padding, as SMTP AUTH (RFC 4954) uses it,
// for the inbound AUTH exchange and the outbound AUTH PLAIN alike.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace danerelay::relay {

// Strict: length a multiple of 4, padding only at the end (at most two '='),
// no whitespace, no characters outside the alphabet. nullopt otherwise.
std::optional<std::string> base64Decode(std::string_view in);
std::string base64Encode(std::string_view in);

}  // namespace danerelay::relay
