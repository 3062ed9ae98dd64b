#include "relay/inbound/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace danerelay::relay {

namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

ProxyParse needMore() {
    return {};
}

ProxyParse invalid(std::string why) {
    ProxyParse p;
    p.step = ProxyParse::Step::Invalid;
    p.error = std::move(why);
    return p;
}

ProxyParse done(ProxyHeader h) {
    ProxyParse p;
    p.step = ProxyParse::Step::Done;
    p.header = h;
    return p;
}

std::string hexByte(uint8_t b) {
    static constexpr char kHex[] = "0123456789abcdef";
    return std::string("0x") + kHex[b >> 4] + kHex[b & 0xf];
}

// ---------------------------------------------------------------- v1

// Decimal 0-65535, no sign, no leading zero (so one port has one spelling).
bool parsePort(std::string_view s, uint16_t* port) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
    uint32_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint32_t>(c - '0');
    }
    if (v > 65535) return false;
    *port = static_cast<uint16_t>(v);
    return true;
}

// A numeric address of `family` (inet_pton: no names, no leading zeros in
// IPv4) and a port, into ss.
bool v1Endpoint(int family, std::string_view addr, std::string_view port, sockaddr_storage* ss) {
    uint16_t p = 0;
    if (!parsePort(port, &p) || addr.size() >= INET6_ADDRSTRLEN) return false;
    std::string a(addr);
    *ss = {};
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(p);
        return ::inet_pton(AF_INET, a.c_str(), &sin->sin_addr) == 1;
    }
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(p);
    return ::inet_pton(AF_INET6, a.c_str(), &sin6->sin6_addr) == 1;
}

std::vector<std::string_view> splitSpaces(std::string_view line) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (true) {
        size_t sp = line.find(' ', start);
        out.push_back(line.substr(start, sp == std::string_view::npos ? sp : sp - start));
        if (sp == std::string_view::npos) return out;
        start = sp + 1;
    }
}

// The line without its CRLF, known to start with "PROXY " and hold only
// printable ASCII.
ProxyParse parseV1Line(std::string_view line, size_t length) {
    auto f = splitSpaces(line);
    ProxyHeader h;
    h.length = length;
    if (f.size() >= 2 && f[1] == "UNKNOWN") return done(h);  // the rest is ignored, as specified
    if (f.size() < 2 || (f[1] != "TCP4" && f[1] != "TCP6")) {
        return invalid("PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
    }
    if (f.size() != 6) return invalid("PROXY v1: expected 4 fields after " + std::string(f[1]));
    int family = f[1] == "TCP4" ? AF_INET : AF_INET6;
    if (!v1Endpoint(family, f[2], f[4], &h.source)) {
        return invalid("PROXY v1: bad source address or port for " + std::string(f[1]));
    }
    if (!v1Endpoint(family, f[3], f[5], &h.destination)) {
        return invalid("PROXY v1: bad destination address or port for " + std::string(f[1]));
    }
    h.hasAddress = true;
    return done(h);
}

ProxyParse parseV1(std::string_view in) {
    size_t cmp = std::min(in.size(), kV1Prefix.size());
    if (in.substr(0, cmp) != kV1Prefix.substr(0, cmp)) {
        return invalid("PROXY v1: the connection does not start with \"PROXY \"");
    }
    for (size_t i = 0; i < in.size(); ++i) {
        if (i + 2 > kProxyV1MaxLength) return invalid("PROXY v1: no CRLF within 107 bytes");
        auto c = static_cast<unsigned char>(in[i]);
        if (c == '\r') {
            if (i + 1 == in.size()) return needMore();
            if (in[i + 1] != '\n') return invalid("PROXY v1: CR without LF");
            return parseV1Line(in.substr(0, i), i + 2);
        }
        if (c < 0x20 || c > 0x7e) return invalid("PROXY v1: control or 8-bit byte " + hexByte(c));
    }
    return needMore();
}

// ---------------------------------------------------------------- v2

uint16_t be16(std::string_view s, size_t at) {
    return static_cast<uint16_t>((static_cast<uint8_t>(s[at]) << 8) |
                                 static_cast<uint8_t>(s[at + 1]));
}

// Type, 16-bit length, value; each must end within the payload. None is
// used, but a block that does not add up is not a header we trust.
bool tlvsFit(std::string_view tlvs) {
    size_t off = 0;
    while (off < tlvs.size()) {
        if (tlvs.size() - off < 3) return false;
        size_t len = be16(tlvs, off + 1);
        if (tlvs.size() - off - 3 < len) return false;
        off += 3 + len;
    }
    return true;
}

// The address block of a PROXY command over TCP: IPv4 (4+4+2+2 bytes) or
// IPv6 (16+16+2+2), then TLVs.
ProxyParse v2Addresses(uint8_t family, std::string_view payload, size_t length) {
    bool v4 = family == 0x11;
    size_t alen = v4 ? 4 : 16;
    size_t block = 2 * alen + 4;
    if (payload.size() < block) {
        return invalid("PROXY v2: length " + std::to_string(payload.size()) + " is short of the " +
                       std::to_string(block) + "-byte " + (v4 ? "TCP4" : "TCP6") +
                       " address block");
    }
    if (!tlvsFit(payload.substr(block))) return invalid("PROXY v2: a TLV overruns the header");
    ProxyHeader h;
    h.length = length;
    h.hasAddress = true;
    auto fill = [&](sockaddr_storage* ss, size_t addrAt, size_t portAt) {
        uint16_t port = htons(be16(payload, portAt));
        if (v4) {
            auto* sin = reinterpret_cast<sockaddr_in*>(ss);
            sin->sin_family = AF_INET;
            sin->sin_port = port;
            std::memcpy(&sin->sin_addr, payload.data() + addrAt, 4);
        } else {
            auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = port;
            std::memcpy(&sin6->sin6_addr, payload.data() + addrAt, 16);
        }
    };
    fill(&h.source, 0, 2 * alen);
    fill(&h.destination, alen, 2 * alen + 2);
    return done(h);
}

ProxyParse parseV2(std::string_view in) {
    size_t cmp = std::min(in.size(), kV2Signature.size());
    if (in.substr(0, cmp) != kV2Signature.substr(0, cmp)) {
        return invalid("PROXY v2: bad signature");
    }
    if (in.size() > 12 && (static_cast<uint8_t>(in[12]) >> 4) != 2) {
        return invalid("PROXY v2: version " + hexByte(static_cast<uint8_t>(in[12]) >> 4));
    }
    if (in.size() > 12 && (static_cast<uint8_t>(in[12]) & 0xf) > 1) {
        return invalid("PROXY v2: command " + hexByte(static_cast<uint8_t>(in[12]) & 0xf));
    }
    if (in.size() < kProxyV2HeaderFixed) return needMore();
    bool local = (static_cast<uint8_t>(in[12]) & 0xf) == 0;
    auto family = static_cast<uint8_t>(in[13]);
    size_t len = be16(in, 14);
    if (len > kProxyV2MaxPayload) {
        return invalid("PROXY v2: length " + std::to_string(len) + " over " +
                       std::to_string(kProxyV2MaxPayload));
    }
    // Family checks need no payload: refuse before waiting for it.
    if (!local && family != 0x00 && family != 0x11 && family != 0x21) {
        return invalid("PROXY v2: family/protocol " + hexByte(family) +
                       " (only TCP over IPv4 or IPv6)");
    }
    if (in.size() < kProxyV2HeaderFixed + len) return needMore();
    size_t total = kProxyV2HeaderFixed + len;
    std::string_view payload = in.substr(kProxyV2HeaderFixed, len);
    if (local || family == 0x00) {
        // The balancer speaking for itself (health check) or an unknown
        // client: the connection's own peer, as the spec requires.
        ProxyHeader h;
        h.length = total;
        return done(h);
    }
    return v2Addresses(family, payload, total);
}

}  // namespace

ProxyParse parseProxyHeader(ProxyProtocol version, std::string_view in) {
    switch (version) {
        case ProxyProtocol::V1:
            return parseV1(in);
        case ProxyProtocol::V2:
            return parseV2(in);
        case ProxyProtocol::None:
            break;
    }
    return invalid("PROXY: no protocol version configured");
}

size_t ProxyHeaderReader::offer(std::string_view peeked) {
    if (result_.step != ProxyParse::Step::NeedMore) return 0;
    std::string all = taken_;
    all.append(peeked);
    result_ = parseProxyHeader(version_, all);
    size_t take = 0;
    if (result_.step == ProxyParse::Step::Done) {
        take = result_.header.length - taken_.size();
    } else if (result_.step == ProxyParse::Step::NeedMore) {
        take = peeked.size();  // all header bytes: NeedMore's promise
    }
    taken_.append(peeked.substr(0, take));
    return take;
}

}  // namespace danerelay::relay
