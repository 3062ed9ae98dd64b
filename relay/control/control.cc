#include "relay/control/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "queue/utf8.h"
#include "relay/runtime/log.h"

namespace danerelay::relay {

namespace {

constexpr size_t kMaxRequest = 64 * 1024;
constexpr size_t kMaxConnections = 16;
constexpr unsigned kReadTimeout = 10;     // seconds for the whole request
constexpr unsigned kReplyTimeout = 3600;  // an action may wait for deliveries in flight

bool socketAddress(const std::string& path, sockaddr_un* sa) {
    std::memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa->sun_path) return false;
    std::memcpy(sa->sun_path, path.data(), path.size());
    return true;
}

nlohmann::json errorReply(const std::string& message) {
    return {{"version", kControlProtocolVersion}, {"ok", false}, {"error", message}};
}

}  // namespace

struct ControlServer::Conn {
    Conn(event_base* base, int fd, ControlServer* server)
        : sock(fd),
          readEv(base, fd, EV_READ | EV_PERSIST | EV_TIMEOUT,
                 [this, server](short what) {
                     if (what & EV_TIMEOUT) return server->close(*this);
                     server->onRead(*this);
                 }),
          writeEv(base, fd, EV_WRITE | EV_PERSIST | EV_TIMEOUT, [this, server](short what) {
              if (what & EV_TIMEOUT) return server->close(*this);
              server->onWrite(*this);
          }) {}
    UniqueFd sock;
    Event readEv;
    Event writeEv;
    std::string in, out;
    size_t written = 0;
    bool answered = false;
    std::string refusal;  // refused for its uid: the answer, once it has asked
};

ControlServer::ControlServer(event_base* base, std::string path, Handler handler)
    : base_(base), path_(std::move(path)), handler_(std::move(handler)) {}

ControlServer::~ControlServer() {
    conns_.clear();
    acceptEv_.reset();
    if (listening_) ::unlink(path_.c_str());
}

Status ControlServer::listen() {
    sockaddr_un sa;
    if (!socketAddress(path_, &sa)) return Error::permanent("control_socket: bad path " + path_);
    struct stat st;
    if (::lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return Error::permanent("control_socket " + path_ +
                                    ": exists and is not a socket; not replacing it");
        }
        ::unlink(path_.c_str());
    }
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_.valid())
        return Error::permanent("control_socket: socket: " + std::string(strerror(errno)));
    // Mode 0600 from the start: no moment where others could connect.
    mode_t old = ::umask(0177);
    int rc = ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    int e = errno;
    ::umask(old);
    if (rc != 0 || ::listen(fd_.get(), 16) != 0) {
        if (rc == 0) e = errno;
        return Error::permanent("control_socket " + path_ + ": " + std::strerror(e));
    }
    listening_ = true;
    acceptEv_ = std::make_unique<Event>(base_, fd_.get(), EV_READ | EV_PERSIST,
                                        [this](short) { onAccept(); });
    acceptEv_->add();
    logEvent("control-listen", {{"socket", path_}});
    return okStatus();
}

void ControlServer::onAccept() {
    for (int i = 0; i < 16; ++i) {
        int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        auto c = std::make_shared<Conn>(base_, fd, this);
        conns_[c.get()] = c;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            (cred.uid != 0 && cred.uid != ::geteuid())) {
            logEvent("control-refused", {{"uid", std::to_string(cred.uid)},
                                         {"reason", "not root or the daemon's user"}});
            // The refusal is the answer to its request: read that first, so
            // that closing with it unread does not reset the connection
            // before the client has read why.
            c->refusal = "permission denied: uid " + std::to_string(cred.uid) +
                         " is neither root nor the daemon's user";
            c->readEv.addSeconds(kReadTimeout);
            continue;
        }
        if (conns_.size() > kMaxConnections) {
            send(*c, errorReply("busy: too many control connections; try again"));
            continue;
        }
        c->readEv.addSeconds(kReadTimeout);
    }
}

void ControlServer::onRead(Conn& c) {
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(c.sock.get(), buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) return close(c);  // gone before asking
        c.in.append(buf, static_cast<size_t>(n));
        auto nl = c.in.find('\n');
        if (nl == std::string::npos) {
            if (c.in.size() > kMaxRequest) {
                c.readEv.del();
                return send(c, errorReply("request longer than 64 KiB"));
            }
            continue;
        }
        c.readEv.del();
        if (!c.refusal.empty()) return send(c, errorReply(c.refusal));
        auto request = nlohmann::json::parse(c.in.substr(0, nl), nullptr, false);
        if (request.is_discarded() || !request.is_object()) {
            return send(c, errorReply("request is not a JSON object on one line"));
        }
        // Compared as a JSON number: 4294967297 is not 1 (get<int>() would
        // have truncated it to 1).
        auto version = request.find("version");
        if (version == request.end() || !version->is_number_integer() ||
            *version != kControlProtocolVersion) {
            return send(c, errorReply("unsupported protocol version (this daemon speaks " +
                                      std::to_string(kControlProtocolVersion) + ")"));
        }
        std::weak_ptr<Conn> weak = conns_[&c];
        handler_(request, [this, weak](nlohmann::json reply) {
            if (auto conn = weak.lock()) send(*conn, reply);  // the client may have left
        });
        return;
    }
}

void ControlServer::send(Conn& c, const nlohmann::json& reply) {
    if (c.answered) return;
    c.answered = true;
    c.out = queue::dumpJson(reply) + "\n";
    c.writeEv.addSeconds(kReplyTimeout);
}

void ControlServer::onWrite(Conn& c) {
    while (c.written < c.out.size()) {
        ssize_t n =
            ::send(c.sock.get(), c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) return close(c);
        c.written += static_cast<size_t>(n);
    }
    close(c);
}

void ControlServer::close(Conn& c) {
    // Freed later on the loop: this may run inside one of c's own callbacks.
    auto it = conns_.find(&c);
    if (it == conns_.end()) return;
    auto keep = it->second;
    conns_.erase(it);
    keep->readEv.del();
    keep->writeEv.del();
    event_base_once(
        base_, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* p) { delete static_cast<std::shared_ptr<Conn>*>(p); },
        new std::shared_ptr<Conn>(std::move(keep)), nullptr);
}

Result<nlohmann::json> controlRequest(const std::string& path, const nlohmann::json& request,
                                      int timeoutSeconds) {
    sockaddr_un sa;
    if (!socketAddress(path, &sa)) return Error::permanent("bad control socket path: " + path);
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
    std::string line = queue::dumpJson(request) + "\n";
    for (size_t off = 0; off < line.size();) {
        ssize_t n = ::send(fd.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        // The daemon may have answered (refused) and closed before reading
        // the request: its answer is still there to read.
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) break;
        if (n <= 0) return Error::temporary(std::string("control socket: ") + std::strerror(errno));
        off += static_cast<size_t>(n);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
    std::string in;
    char buf[65536];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0)
            return Error::temporary("no reply from the daemon within " +
                                    std::to_string(timeoutSeconds) + " seconds");
        pollfd p{fd.get(), POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::temporary(std::string("control socket: ") + std::strerror(errno));
        if (n == 0) break;
        in.append(buf, static_cast<size_t>(n));
        if (in.size() > (256u << 20)) return Error::temporary("reply too large");
        // The reply is one line: a reset after it changes nothing.
        if (in.back() == '\n') break;
    }
    auto reply = nlohmann::json::parse(in, nullptr, false);
    if (reply.is_discarded() || !reply.is_object())
        return Error::temporary("the daemon's reply is not JSON" +
                                std::string(in.empty() ? " (it closed without a reply)" : ""));
    return reply;
}

}  // namespace danerelay::relay
