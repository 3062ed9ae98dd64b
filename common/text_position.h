// text_position.h — "line:column" of a byte offset in a text, for error
// messages that point at the place a human must edit (configuration and
// policy files). 1-based, as editors count.
#pragma once

#include <cstddef>
#include <string>

namespace danerelay {

inline std::string lineColumn(const std::string& text, size_t byte) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < byte && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    return std::to_string(line) + ":" + std::to_string(col);
}

}  // namespace danerelay
