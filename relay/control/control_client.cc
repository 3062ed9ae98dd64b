#include "relay/control/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/unique_fd.h"
#include "queue/utf8.h"
#include "relay/control/control.h"

namespace danerelay::relay {

namespace {

// A status or queue action reply for a large queue runs to megabytes; more
// than this is not a reply but a fault.
constexpr size_t kMaxReply = size_t{256} << 20;
// Bytes read per read(2).
constexpr size_t kReadChunk = 64 * 1024;
// poll(2) wakes at least this often to check the deadline.
constexpr long long kPollSliceMs = 1000;

Result<UniqueFd> connectTo(const std::string& path) {
    sockaddr_un sa;
    if (!controlSocketAddress(path, &sa))
        return Error::permanent("bad control socket path: " + path);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::temporary(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        int e = errno;
        std::string hint = (e == ENOENT || e == ECONNREFUSED) ? " (is danerelayd running?)"
                           : e == EACCES ? " (run as root or the daemon's user)"
                                         : "";
        return Error::temporary("cannot reach the daemon at " + path + ": " + std::strerror(e) +
                                hint);
    }
    return fd;
}

Status sendLine(int fd, const std::string& line) {
    for (size_t off = 0; off < line.size();) {
        ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        // The daemon may have answered (refused) and closed before reading
        // the request: its answer is still there to read.
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) break;
        if (n <= 0) return Error::temporary(std::string("control socket: ") + std::strerror(errno));
        off += static_cast<size_t>(n);
    }
    return okStatus();
}

// Everything up to the reply's newline (or the close), within the timeout.
Result<std::string> readReply(int fd, int timeoutSeconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
    std::string in;
    std::string buf(kReadChunk, '\0');
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0)
            return Error::temporary("no reply from the daemon within " +
                                    std::to_string(timeoutSeconds) + " seconds");
        pollfd p{fd, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, kPollSliceMs)));
        if (r <= 0) continue;  // interrupted, or no data yet: check the deadline
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::temporary(std::string("control socket: ") + std::strerror(errno));
        if (n == 0) break;
        in.append(buf.data(), static_cast<size_t>(n));
        if (in.size() > kMaxReply) return Error::temporary("reply too large");
        // The reply is one line: a reset after it changes nothing.
        if (in.back() == '\n') break;
    }
    return in;
}

}  // namespace

Result<nlohmann::json> controlRequest(const std::string& path, const nlohmann::json& request,
                                      int timeoutSeconds) {
    auto fd = connectTo(path);
    if (!fd) return fd.error();
    if (auto st = sendLine(fd->get(), queue::dumpJson(request) + "\n"); !st) return st.error();
    auto in = readReply(fd->get(), timeoutSeconds);
    if (!in) return in.error();
    auto reply = nlohmann::json::parse(*in, nullptr, false);
    if (reply.is_discarded() || !reply.is_object())
        return Error::temporary("the daemon's reply is not JSON" +
                                std::string(in->empty() ? " (it closed without a reply)" : ""));
    return reply;
}

}  // namespace danerelay::relay
