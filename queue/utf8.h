// utf8.h — the one boundary where bytes from the network become text for
// JSON (spool envelope and state, control-socket replies, danectl output).
//
// Policy, the same everywhere: a byte string is made valid UTF-8 by replacing
// each maximal invalid subpart (Unicode 15, section 3.9, "substitution of
// maximal subparts") with U+FFFD; valid sequences, NUL and control characters
// included, pass unchanged (JSON escapes those). Validation is strict, as
// nlohmann::json's own check: overlong forms, surrogates (U+D800..U+DFFF)
// and code points above U+10FFFF are invalid. The replacement is lossy on
// purpose: JSON cannot carry raw bytes, and a reply or address that was not
// UTF-8 is only ever shown, never parsed back. (Log lines escape invalid
// bytes as \xHH instead, losslessly: see relay/log.h.)
//
// dumpJson() is how this code base turns JSON into text: json::dump with the
// replace error handler, so no byte a peer sent can make it throw.
// jsonTextFromDisk() makes raw JSON read from disk valid UTF-8 before it is
// parsed, so a spool file written with invalid bytes still loads.
// Nothing here throws (except std::bad_alloc) or allocates without bound:
// output is at most 3 bytes per input byte.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace danerelay::queue {

// The sequence starting at s[pos] (pos < s.size()): valid with its length
// (1..4), or invalid with the length of its maximal invalid subpart (1..3).
struct Utf8Sequence {
    bool valid = false;
    size_t length = 1;
};
Utf8Sequence utf8SequenceAt(std::string_view s, size_t pos);

bool isValidUtf8(std::string_view s);

// s with every maximal invalid subpart replaced by U+FFFD (EF BF BD).
std::string toValidUtf8(std::string_view s);

// The longest prefix of s of at most maxBytes that does not end inside a
// multi-byte sequence (for cutting text to a size without splitting a
// character).
std::string_view utf8Prefix(std::string_view s, size_t maxBytes);

// json.dump(indent) that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dumpJson(const nlohmann::json& j, int indent = -1);

// Raw JSON text from disk, made valid UTF-8 (unchanged if it already was).
std::string jsonTextFromDisk(std::string text);

}  // namespace danerelay::queue
