#include "relay/inbound/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "relay/runtime/net_address.h"

using namespace danerelay::relay;

namespace {

using Step = ProxyParse::Step;

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: command (0 LOCAL, 1 PROXY), family byte, payload.
std::string v2(uint8_t cmd, uint8_t family, const std::string& payload) {
    std::string h = kSig;
    h += static_cast<char>(0x20 | cmd);
    h += static_cast<char>(family);
    h += static_cast<char>(payload.size() >> 8);
    h += static_cast<char>(payload.size() & 0xff);
    return h + payload;
}

std::string tcp4Block(const char* src, const char* dst, uint16_t sport, uint16_t dport) {
    std::string b(12, '\0');
    ::inet_pton(AF_INET, src, &b[0]);
    ::inet_pton(AF_INET, dst, &b[4]);
    b[8] = static_cast<char>(sport >> 8);
    b[9] = static_cast<char>(sport & 0xff);
    b[10] = static_cast<char>(dport >> 8);
    b[11] = static_cast<char>(dport & 0xff);
    return b;
}

std::string tcp6Block(const char* src, const char* dst, uint16_t sport, uint16_t dport) {
    std::string b(36, '\0');
    ::inet_pton(AF_INET6, src, &b[0]);
    ::inet_pton(AF_INET6, dst, &b[16]);
    b[32] = static_cast<char>(sport >> 8);
    b[33] = static_cast<char>(sport & 0xff);
    b[34] = static_cast<char>(dport >> 8);
    b[35] = static_cast<char>(dport & 0xff);
    return b;
}

uint16_t portOf(const sockaddr_storage& ss) {
    return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(ss).sin_port
                                         : reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}

ProxyParse v1(std::string_view in) {
    return parseProxyHeader(ProxyProtocol::V1, in);
}
ProxyParse p2(std::string_view in) {
    return parseProxyHeader(ProxyProtocol::V2, in);
}

// ---------------------------------------------------------------- v1

TEST(ProxyV1, Tcp4) {
    std::string h = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n";
    auto r = v1(h + "EHLO x\r\n");
    ASSERT_EQ(r.step, Step::Done) << r.error;
    EXPECT_TRUE(r.header.hasAddress);
    EXPECT_EQ(r.header.length, h.size());  // the EHLO is the client's, not ours
    EXPECT_EQ(addressToString(r.header.source), "192.0.2.7");
    EXPECT_EQ(portOf(r.header.source), 40000);
    EXPECT_EQ(addressToString(r.header.destination), "198.51.100.1");
    EXPECT_EQ(portOf(r.header.destination), 25);
}

TEST(ProxyV1, Tcp6) {
    auto r = v1("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n");
    ASSERT_EQ(r.step, Step::Done) << r.error;
    EXPECT_EQ(addressToString(r.header.source), "2001:db8::7");
    EXPECT_EQ(portOf(r.header.source), 65535);
    EXPECT_EQ(portOf(r.header.destination), 0);
}

TEST(ProxyV1, UnknownMeansTheRealPeer) {
    for (const char* h : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
        auto r = v1(h);
        ASSERT_EQ(r.step, Step::Done) << h;
        EXPECT_FALSE(r.header.hasAddress);
        EXPECT_EQ(r.header.length, std::string(h).size());
    }
}

TEST(ProxyV1, EveryStrictPrefixNeedsMore) {
    std::string h = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n";
    for (size_t n = 0; n < h.size(); ++n) {
        EXPECT_EQ(v1(h.substr(0, n)).step, Step::NeedMore) << n;
    }
}

TEST(ProxyV1, MaximumLengthAcceptedOneMoreRefused) {
    // The spec's worst case: 107 bytes with CRLF (UNKNOWN's free text makes it).
    std::string h = "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n";
    ASSERT_EQ(h.size(), 107u);
    EXPECT_EQ(v1(h).step, Step::Done);
    std::string longer = "PROXY UNKNOWN " + std::string(107 - 15, 'x') + "\r\n";
    EXPECT_EQ(v1(longer).step, Step::Invalid);
    // No CRLF at all: refused once 107 bytes are in, not buffered for ever.
    EXPECT_EQ(v1(std::string("PROXY ") + std::string(200, 'A')).step, Step::Invalid);
    EXPECT_EQ(v1(std::string("PROXY ") + std::string(100, 'A')).step, Step::NeedMore);
}

TEST(ProxyV1, NotAHeaderIsRefusedAtOnce) {
    EXPECT_EQ(v1("EHLO").step, Step::Invalid);  // a client straight to the port
    EXPECT_EQ(v1("P").step, Step::NeedMore);
    EXPECT_EQ(v1("PROXX").step, Step::Invalid);
    EXPECT_EQ(v1("proxy TCP4 1.2.3.4 1.2.3.4 1 1\r\n").step, Step::Invalid);
    EXPECT_EQ(v1(kSig).step, Step::Invalid);  // v2 on a v1 listener
}

TEST(ProxyV1, BadPortsAndAddresses) {
    const char* bad[] = {
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 040000 25\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 25\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 +1 25\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 \r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 99999999999999999999 25\r\n",
        "PROXY TCP4 192.0.2.256 198.51.100.1 1 25\r\n",
        "PROXY TCP4 192.0.2 198.51.100.1 1 25\r\n",
        "PROXY TCP4 192.0.2.07 198.51.100.1 1 25\r\n",
        "PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n",  // family mismatch
        "PROXY TCP6 192.0.2.7 2001:db8::1 1 25\r\n",
        "PROXY TCP4 mail.example 198.51.100.1 1 25\r\n",
        "PROXY TCP4  192.0.2.7 198.51.100.1 1 25\r\n",  // double space
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 25 \r\n",  // trailing space
        "PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 25 6\r\n",
        "PROXY UDP4 192.0.2.7 198.51.100.1 1 25\r\n",
        "PROXY \r\n",
        "PROXY TCP4 192.0.2.7\t198.51.100.1 1 25\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 25\n",  // bare LF
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 25\rX",
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\xc3\xa9\r\n",
    };
    for (const char* h : bad) {
        auto r = v1(h);
        EXPECT_EQ(r.step, Step::Invalid) << h;
        EXPECT_FALSE(r.error.empty());
    }
    EXPECT_EQ(v1(std::string("PROXY TCP4 1.2.3.4\0 1.2.3.4 1 1\r\n", 34)).step, Step::Invalid);
}

// ---------------------------------------------------------------- v2

TEST(ProxyV2, Tcp4WithTlvsAndClientBytesAfter) {
    std::string tlv = std::string("\x01\x00\x04smtp", 7) + std::string("\x04\x00\x00", 3);
    std::string h = v2(1, 0x11, tcp4Block("192.0.2.9", "198.51.100.1", 1234, 25) + tlv);
    auto r = p2(h + "\x16\x03\x01");  // a TLS ClientHello begins right after
    ASSERT_EQ(r.step, Step::Done) << r.error;
    EXPECT_EQ(r.header.length, h.size());
    EXPECT_EQ(addressToString(r.header.source), "192.0.2.9");
    EXPECT_EQ(portOf(r.header.source), 1234);
    EXPECT_EQ(addressToString(r.header.destination), "198.51.100.1");
}

TEST(ProxyV2, Tcp6) {
    auto r = p2(v2(1, 0x21, tcp6Block("2001:db8::9", "2001:db8::1", 5, 587)));
    ASSERT_EQ(r.step, Step::Done) << r.error;
    EXPECT_EQ(addressToString(r.header.source), "2001:db8::9");
    EXPECT_EQ(portOf(r.header.destination), 587);
}

TEST(ProxyV2, LocalAndUnspecMeanTheRealPeer) {
    for (const auto& h : {v2(0, 0x00, ""), v2(0, 0x11, tcp4Block("1.2.3.4", "1.2.3.4", 1, 1)),
                          v2(1, 0x00, "abc")}) {
        auto r = p2(h);
        ASSERT_EQ(r.step, Step::Done) << r.error;
        EXPECT_FALSE(r.header.hasAddress);
        EXPECT_EQ(r.header.length, h.size());
    }
}

TEST(ProxyV2, SplitAtEveryByte) {
    std::string h = v2(1, 0x21, tcp6Block("2001:db8::9", "2001:db8::1", 5, 587));
    for (size_t n = 0; n < h.size(); ++n) EXPECT_EQ(p2(h.substr(0, n)).step, Step::NeedMore) << n;
}

TEST(ProxyV2, Refused) {
    std::string ok4 = tcp4Block("192.0.2.9", "198.51.100.1", 1, 25);
    std::string badSig = v2(1, 0x11, ok4);
    badSig[11] = 'X';
    std::string version1 = v2(1, 0x11, ok4);
    version1[12] = 0x11;
    std::string oversized = kSig + std::string("\x21\x11\xff\xff", 4);
    struct Case {
        const char* name;
        std::string in;
    } cases[] = {
        {"bad signature", badSig},
        {"bad signature, first byte", "X"},
        {"v1 text on a v2 listener", "PROXY TCP4 1.2.3.4 1.2.3.4 1 1\r\n"},
        {"version 1 in the binary header", version1},
        {"command 2", v2(2, 0x11, ok4)},
        {"oversized length", oversized},
        {"TCP4 block short", v2(1, 0x11, ok4.substr(0, 11))},
        {"TCP6 family with a TCP4 block", v2(1, 0x21, ok4)},
        {"UDP over IPv4", v2(1, 0x12, ok4)},
        {"UNIX stream", v2(1, 0x31, std::string(216, 'a'))},
        {"family 0xff", v2(1, 0xff, ok4)},
        {"TLV overruns", v2(1, 0x11, ok4 + std::string("\x01\x00\x09xy", 5))},
        {"TLV header cut", v2(1, 0x11, ok4 + std::string("\x01\x00", 2))},
    };
    for (const auto& c : cases) {
        auto r = p2(c.in);
        EXPECT_EQ(r.step, Step::Invalid) << c.name;
        EXPECT_FALSE(r.error.empty()) << c.name;
    }
    // Refused on the fixed part alone: an oversized length is never waited for.
    EXPECT_EQ(p2(oversized.substr(0, 16)).step, Step::Invalid);
}

TEST(ProxyV2, MaximumPayloadAccepted) {
    std::string ok4 = tcp4Block("192.0.2.9", "198.51.100.1", 1, 25);
    size_t pad = kProxyV2MaxPayload - ok4.size() - 3;
    std::string tlv = std::string("\x04", 1) + static_cast<char>(pad >> 8) +
                      static_cast<char>(pad & 0xff) + std::string(pad, '\0');
    auto r = p2(v2(1, 0x11, ok4 + tlv));
    ASSERT_EQ(r.step, Step::Done) << r.error;
    EXPECT_EQ(r.header.length, kProxyMaxHeader);
}

// ---------------------------------------------------------------- reader

// A socket as a string: the reader peeks `chunk` bytes at a time (what has
// arrived so far), takes what offer() says; what is left must be exactly
// the client's bytes, none lost, none taken twice.
std::string drive(ProxyProtocol v, const std::string& wire, size_t chunk, Step* step) {
    ProxyHeaderReader reader(v);
    size_t arrived = 0, taken = 0;
    while (reader.result().step == Step::NeedMore && arrived < wire.size()) {
        arrived = std::min(wire.size(), arrived + chunk);
        std::string_view peek(wire.data() + taken, arrived - taken);
        size_t take = reader.offer(peek);
        EXPECT_LE(take, peek.size());
        taken += take;
    }
    *step = reader.result().step;
    return wire.substr(taken);
}

TEST(ProxyReader, ClientBytesStayInTheSocketWhateverTheSplit) {
    const std::string client = "EHLO client.example\r\nMAIL FROM:<a@b>\r\n";
    std::string h1 = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n";
    std::string h2 = v2(
        1, 0x11, tcp4Block("192.0.2.9", "198.51.100.1", 1, 25) + std::string("\x04\x00\x02zz", 5));
    for (auto [v, h] : {std::pair{ProxyProtocol::V1, h1}, std::pair{ProxyProtocol::V2, h2}}) {
        for (size_t chunk = 1; chunk <= h.size() + client.size(); ++chunk) {
            Step step;
            EXPECT_EQ(drive(v, h + client, chunk, &step), client) << chunk;
            EXPECT_EQ(step, Step::Done);
        }
    }
}

TEST(ProxyReader, RefusalTakesNothingMoreAndStays) {
    ProxyHeaderReader r(ProxyProtocol::V1);
    EXPECT_EQ(r.offer("PROX"), 4u);
    EXPECT_EQ(r.offer("Y TCP4 garbage\r\nEHLO"), 0u);
    EXPECT_EQ(r.result().step, Step::Invalid);
    EXPECT_EQ(r.offer("PROXY UNKNOWN\r\n"), 0u);  // no second chance
    EXPECT_EQ(r.result().step, Step::Invalid);
}

TEST(ProxyReader, TruncatedThenClosedStaysIncomplete) {
    Step step;
    std::string h = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n";
    EXPECT_EQ(drive(ProxyProtocol::V1, h.substr(0, 20), 7, &step), "");
    EXPECT_EQ(step, Step::NeedMore);  // the session's EOF or timeout ends it
}

}  // namespace
