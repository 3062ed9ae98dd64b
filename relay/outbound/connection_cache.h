// connection_cache.h — idle outbound SMTP sessions, kept for reuse.
//
// After a completed transaction a session may wait here, idle, for the next message to the same
// host, address, TLS mode, SNI, reference names, whole TLSA RRset and policy (RFC 7672: never
// across a change of policy); the key is a SHA-256 over all of them (cacheKey()). A session is
// parked only when nothing is pending in either direction: all of its output sent, no input unread
// (in our buffer, inside GnuTLS or in the socket) and no reply half assembled; a server that
// answers "." before the body is out, or says more than its reply, loses the connection. An idle
// session is closed after idleSeconds, or when the server speaks or hangs up (SmtpClient removes
// itself). Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace danerelay::relay {

class SmtpClient;

class ConnectionCache {
  public:
    ConnectionCache(unsigned idleSeconds, size_t maxIdle)
        : idleSeconds_(idleSeconds), maxIdle_(maxIdle) {}
    std::shared_ptr<SmtpClient> take(const std::string& key);
    bool put(const std::string& key, std::shared_ptr<SmtpClient> c);
    // Takes c out of the cache; the cache's reference to it (null if none).
    std::shared_ptr<SmtpClient> remove(const SmtpClient* c);
    unsigned idleSeconds() const { return idleSeconds_; }
    size_t size() const { return idle_.size(); }
    uint64_t reused() const { return reused_; }

  private:
    unsigned idleSeconds_;
    size_t maxIdle_;
    std::vector<std::pair<std::string, std::shared_ptr<SmtpClient>>> idle_;
    uint64_t reused_ = 0;
};

}  // namespace danerelay::relay
