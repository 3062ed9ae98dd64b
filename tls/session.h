// session.h — GnuTLS sessions on non-blocking sockets.
//
// A Session never waits: handshake(), read() and write() return an IoState
// (Done, NeedRead, NeedWrite) and the event loop decides when to call again.
// Versions below TLS 1.2 are refused. The socket stays owned by the caller.
// GnuTLS handles live in unique_ptrs; nothing here calls a *_deinit by hand.
#pragma once

#include <gnutls/gnutls.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace danerelay::tls {

enum class IoState { Done, NeedRead, NeedWrite };

struct CredentialsDeleter {
    void operator()(gnutls_certificate_credentials_t c) const {
        gnutls_certificate_free_credentials(c);
    }
};
using CertCredentials =
    std::unique_ptr<std::remove_pointer_t<gnutls_certificate_credentials_t>, CredentialsDeleter>;

struct SessionDeleter {
    void operator()(gnutls_session_t s) const { gnutls_deinit(s); }
};
using SessionHandle = std::unique_ptr<std::remove_pointer_t<gnutls_session_t>, SessionDeleter>;

// A certificate chain and key for the server side. Loading errors name the files.
class ServerCredentials {
  public:
    static Result<std::shared_ptr<ServerCredentials>> load(const std::string& certFile,
                                                           const std::string& keyFile);
    gnutls_certificate_credentials_t get() const { return creds_.get(); }

  private:
    CertCredentials creds_;
};

// What one read() or write() call did.
struct IoResult {
    IoState state = IoState::Done;
    size_t bytes = 0;  // bytes transferred when state == Done
    bool eof = false;  // the peer closed (read only)
};

// Client-side credentials: no trust store, so the handshake verifies no
// chain (only the server's CertificateVerify signature, by the key of the
// leaf it sent). Authentication, where there is any, is DANE (verifyDane)
// or PKIX (verifyPkix) on the peer chain, decided by the caller.
class ClientCredentials {
  public:
    static Result<std::shared_ptr<ClientCredentials>> create();
    gnutls_certificate_credentials_t get() const { return creds_.get(); }

  private:
    CertCredentials creds_;
};

class Session {
  public:
    static Result<std::unique_ptr<Session>> server(int fd,
                                                   std::shared_ptr<ServerCredentials> creds);
    // sni may be empty (no server_name extension). A TLS 1.3 client hello
    // carries one key share, for the first group of kPriority (GnuTLS
    // would make one for each of two groups and throw one away); a server
    // that wants another group asks for it (HelloRetryRequest).
    static Result<std::unique_ptr<Session>> client(int fd, std::shared_ptr<ClientCredentials> creds,
                                                   const std::string& sni);
    // The certificates the peer presented, DER, leaf first.
    std::vector<std::vector<uint8_t>> peerChain() const;
    ~Session() = default;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    Result<IoState> handshake();
    Result<IoResult> read(char* buf, size_t len);
    Result<IoResult> write(const char* buf, size_t len);
    // Writes as much of `out` as the socket takes and erases what was sent.
    // Keeps GnuTLS's rule that a write interrupted by EAGAIN is resumed, not
    // restarted with other data. Done when `out` is empty.
    Result<IoState> drain(std::string& out);
    // Bytes already decrypted and buffered inside GnuTLS; the socket will not
    // signal readability for them, so the caller must drain them.
    size_t pending() const;
    // 12 for TLS 1.2, 13 for TLS 1.3, once the handshake is done.
    int protocolVersion() const;
    // "TLS1.3/AES-256-GCM" once the handshake is done.
    std::string description() const;
    // Best effort close_notify; never waits.
    void bye();

  private:
    Session() = default;
    // The one init path: gnutls_init with `flags` (GNUTLS_SERVER or
    // GNUTLS_CLIENT, non-blocking, no SIGPIPE), our priority string, the
    // certificate credentials (kept alive by `owner`), the socket.
    static Result<std::unique_ptr<Session>> make(int fd, unsigned flags,
                                                 gnutls_certificate_credentials_t creds,
                                                 std::shared_ptr<const void> owner);
    gnutls_session_t get() const { return s_.get(); }
    // Declared before s_: the credentials outlive the session that uses them.
    std::shared_ptr<const void> creds_;
    SessionHandle s_;
    size_t writeInFlight_ = 0;  // bytes of an interrupted record_send
};

// The priority string used on every session: TLS 1.2 and up, GnuTLS defaults otherwise.
extern const char* const kPriority;

}  // namespace danerelay::tls
