#include "relay/runtime/base64.h"

#include <cstring>

namespace danerelay::relay {

static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::optional<std::string> base64Decode(std::string_view in) {
    if (in.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (size_t i = 0; i < in.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = in[i + static_cast<size_t>(k)];
            if (c == '=') {
                // Padding only at the very end, at most two.
                if (i + 4 != in.size() || k < 2) return std::nullopt;
                v[k] = 0;
                ++pad;
                continue;
            }
            if (pad) return std::nullopt;
            const char* p = c ? std::strchr(kB64, c) : nullptr;
            if (!p) return std::nullopt;
            v[k] = static_cast<int>(p - kB64);
        }
        int triple = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
        out.push_back(static_cast<char>((triple >> 16) & 0xff));
        if (pad < 2) out.push_back(static_cast<char>((triple >> 8) & 0xff));
        if (pad < 1) out.push_back(static_cast<char>(triple & 0xff));
    }
    return out;
}

std::string base64Encode(std::string_view in) {
    std::string out;
    for (size_t i = 0; i < in.size(); i += 3) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
        if (i + 2 < in.size()) v |= static_cast<unsigned char>(in[i + 2]);
        out.push_back(kB64[(v >> 18) & 63]);
        out.push_back(kB64[(v >> 12) & 63]);
        out.push_back(i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=');
        out.push_back(i + 2 < in.size() ? kB64[v & 63] : '=');
    }
    return out;
}

}  // namespace danerelay::relay
