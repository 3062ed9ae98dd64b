// proxy_protocol.h — the PROXY protocol header a load balancer puts in front
// of a connection (haproxy.org/download/2.9/doc/proxy-protocol.txt), parsed
// without I/O: every byte is hostile until the whole header checks out.
//
// v1: one text line "PROXY TCP4|TCP6 src dst sport dport\r\n" or
// "PROXY UNKNOWN ...\r\n", at most 107 bytes with its CRLF; single spaces,
// printable ASCII, numeric addresses of the named family, decimal ports
// 0-65535 without leading zeros. v2: the 12-byte signature, version 2,
// command LOCAL or PROXY, family TCP over IPv4/IPv6 (or UNSPEC), a length
// that bounds the address block and the TLVs after it (each TLV must fit;
// none is read). Payloads over kProxyV2MaxPayload are refused, not buffered.
// LOCAL (a balancer's own health check), v1 UNKNOWN and v2 UNSPEC carry no
// client: the connection's own peer is the client. UDP and UNIX families are
// refused (a mail client is a TCP peer with an address).
//
// Refuses early: a byte that cannot begin or continue a header is an error
// at once, without waiting for more. Who may send a header at all (proxy_from)
// is the session's rule, not this file's.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "relay/runtime/config.h"

namespace danerelay::relay {

constexpr size_t kProxyV1MaxLength = 107;   // the spec's worst case, CRLF included
constexpr size_t kProxyV2HeaderFixed = 16;  // signature, version/command, family, length
// Address block (36 bytes for TCP6) and TLVs: what HAProxy sends (ALPN, SSL
// details, unique id) fits well; a 64 KiB "header" is refused, not read.
constexpr size_t kProxyV2MaxPayload = 1024;
constexpr size_t kProxyMaxHeader = kProxyV2HeaderFixed + kProxyV2MaxPayload;

struct ProxyHeader {
    // False: LOCAL, UNKNOWN or UNSPEC; the connection's peer is the client.
    bool hasAddress = false;
    sockaddr_storage source{};       // the client, with its port
    sockaddr_storage destination{};  // the address the client connected to
    size_t length = 0;               // header bytes; what follows is the client's
};

struct ProxyParse {
    // NeedMore promises that every byte given belongs to the header (none is
    // the client's), so a reader may take them all off the socket.
    enum class Step { NeedMore, Done, Invalid };
    Step step = Step::NeedMore;
    ProxyHeader header;  // Done
    std::string error;   // Invalid: what was wrong, for the log
};

// `in`: the connection's first bytes, possibly more than the header.
ProxyParse parseProxyHeader(ProxyProtocol version, std::string_view in);

// The header off a socket without ever taking a byte beyond it, so the
// client's first bytes (an SMTP command, a TLS ClientHello) stay in the
// socket for whoever reads next: the caller peeks (MSG_PEEK) at what the
// socket holds, offer()s it, and takes (recv) exactly the count returned.
class ProxyHeaderReader {
  public:
    explicit ProxyHeaderReader(ProxyProtocol version) : version_(version) {}
    // `peeked`: what the socket holds now, after the bytes taken before.
    // Returns how many of them are header bytes to take out.
    size_t offer(std::string_view peeked);
    const ProxyParse& result() const { return result_; }

  private:
    ProxyProtocol version_;
    std::string taken_;
    ProxyParse result_;
};

}  // namespace danerelay::relay
