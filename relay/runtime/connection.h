// connection.h — the socket-or-TLS byte moving that the inbound session and
// the outbound client share: one read, one plaintext flush, the same
// outcomes for both. What an outcome means for the protocol (a 421, a
// deferral, which words go into the log) stays with the caller.
//
// readOnce() reads at most `size` bytes, through the TLS session when there
// is one, else from the socket (EINTR retried). flushPlain() sends all of
// `out` it can on a plaintext socket (MSG_NOSIGNAL; EINTR retried), erasing
// what went. Neither blocks: the socket is non-blocking.
#pragma once

#include <cstddef>
#include <string>

#include "tls/session.h"

namespace danerelay::relay {

enum class IoOutcome {
    Progress,     // bytes moved (read: `bytes` of them; flush: all of out sent)
    WouldBlock,   // nothing more now: wait for the socket (or TLS wants the other direction)
    Eof,          // the peer closed (read only)
    TlsError,     // the TLS layer failed; `error` says how
    SocketError,  // the socket failed; `error` is strerror(errno)
};

struct ReadOnce {
    IoOutcome outcome = IoOutcome::WouldBlock;
    size_t bytes = 0;
    std::string error;
};

ReadOnce readOnce(int fd, tls::Session* tls, char* buf, size_t size);

struct FlushOutcome {
    IoOutcome outcome = IoOutcome::Progress;  // Progress (all sent), WouldBlock, SocketError
    std::string error;
};

FlushOutcome flushPlain(int fd, std::string& out);

}  // namespace danerelay::relay
