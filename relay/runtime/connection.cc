#include "relay/runtime/connection.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace danerelay::relay {

ReadOnce readOnce(int fd, tls::Session* tls, char* buf, size_t size) {
    ReadOnce out;
    if (tls) {
        auto r = tls->read(buf, size);
        if (!r) {
            out.outcome = IoOutcome::TlsError;
            out.error = r.error().message;
        } else if (r->eof) {
            out.outcome = IoOutcome::Eof;
        } else if (r->state != tls::IoState::Done) {
            out.outcome = IoOutcome::WouldBlock;
        } else {
            out.outcome = IoOutcome::Progress;
            out.bytes = r->bytes;
        }
        return out;
    }
    for (;;) {
        ssize_t got = ::recv(fd, buf, size, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            out.outcome = IoOutcome::WouldBlock;
        } else if (got < 0) {
            out.outcome = IoOutcome::SocketError;
            out.error = std::strerror(errno);
        } else if (got == 0) {
            out.outcome = IoOutcome::Eof;
        } else {
            out.outcome = IoOutcome::Progress;
            out.bytes = static_cast<size_t>(got);
        }
        return out;
    }
}

FlushOutcome flushPlain(int fd, std::string& out) {
    while (!out.empty()) {
        ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoOutcome::WouldBlock, {}};
            return {IoOutcome::SocketError, std::strerror(errno)};
        }
        out.erase(0, static_cast<size_t>(n));
    }
    return {IoOutcome::Progress, {}};
}

}  // namespace danerelay::relay
