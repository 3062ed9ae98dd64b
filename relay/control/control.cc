#include "relay/control/control.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "queue/utf8.h"
#include "relay/runtime/log.h"

namespace danerelay::relay {

namespace {

// A request is one line of at most this many bytes (the error reply says "64 KiB").
constexpr size_t kMaxRequest = 64 * 1024;
// Connections served at once for root, the daemon's user and control_group;
// one more is told "busy" and closed.
constexpr size_t kMaxConnections = 16;
// Everyone else (the daemon's group, read-only, and refused peers) shares
// slots of its own, so that holding connections open cannot keep an
// administrator out.
constexpr size_t kMaxLimitedConnections = 8;
// listen(2) backlog: connections the kernel holds until the loop accepts them.
constexpr int kListenBacklog = 16;
// Accepted per wake-up of the listening socket, so a flood cannot hold the loop.
constexpr int kAcceptsPerWakeup = 16;
// Bytes read from a connection per read(2).
constexpr size_t kReadChunk = 8192;
constexpr unsigned kReadTimeout = 10;     // seconds for the whole request
constexpr unsigned kReplyTimeout = 3600;  // an action may wait for deliveries in flight

nlohmann::json errorReply(const std::string& message) {
    return {{"version", kControlProtocolVersion}, {"ok", false}, {"error", message}};
}

}  // namespace

ControlAccess ControlRule::accessOf(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) const {
    auto member = [&](gid_t g) {
        return gid == g || std::find(groups.begin(), groups.end(), g) != groups.end();
    };
    if (uid == 0 || uid == selfUid) return ControlAccess::Full;
    if (adminGid && member(*adminGid)) return ControlAccess::Full;
    if (member(selfGid)) return ControlAccess::ReadOnly;
    return ControlAccess::None;
}

namespace {

// The peer's supplementary groups as the kernel saw them at connect
// (SO_PEERGROUPS, Linux 4.13); empty if it cannot say.
std::vector<gid_t> peerGroups(int fd) {
    std::vector<gid_t> groups(64);
    for (int tries = 0; tries < 4; ++tries) {
        socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
            groups.resize(len / sizeof(gid_t));
            return groups;
        }
        if (errno != ERANGE) break;
        groups.resize(len / sizeof(gid_t) + 1);
    }
    return {};
}

}  // namespace

bool controlSocketAddress(const std::string& path, sockaddr_un* sa) {
    std::memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa->sun_path) return false;
    std::memcpy(sa->sun_path, path.data(), path.size());
    return true;
}

struct ControlServer::Conn {
    Conn(event_base* base, UniqueFd fd, ControlServer* server)
        : sock(std::move(fd)),
          readEv(base, sock.get(), EV_READ | EV_PERSIST | EV_TIMEOUT,
                 [this, server](short what) {
                     if (what & EV_TIMEOUT) return server->close(*this);
                     server->onRead(*this);
                 }),
          writeEv(base, sock.get(), EV_WRITE | EV_PERSIST | EV_TIMEOUT, [this, server](short what) {
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
    ControlAccess access = ControlAccess::None;
};

ControlServer::ControlServer(event_base* base, std::string path, Handler handler, ControlRule rule)
    : base_(base),
      dispatcher_(base),
      path_(std::move(path)),
      handler_(std::move(handler)),
      rule_(rule) {}

ControlServer::~ControlServer() {
    conns_.clear();
    acceptEv_.reset();
    if (listening_) ::unlink(path_.c_str());
}

Status ControlServer::listen() {
    sockaddr_un sa;
    if (!controlSocketAddress(path_, &sa))
        return Error::permanent("control_socket: bad path " + path_);
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
    // Mode 0660 from the start: no moment where others could connect.
    mode_t old = ::umask(0117);
    int rc = ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    int e = errno;
    ::umask(old);
    if (rc != 0 || ::listen(fd_.get(), kListenBacklog) != 0) {
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
    for (int i = 0; i < kAcceptsPerWakeup; ++i) {
        UniqueFd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd.valid()) return;
        serve(std::move(fd));
    }
}

void ControlServer::serve(UniqueFd fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    bool credOk = ::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
    ControlAccess access =
        credOk ? rule_.accessOf(cred.uid, cred.gid, peerGroups(fd.get())) : ControlAccess::None;
    auto c = std::make_shared<Conn>(base_, std::move(fd), this);
    conns_[c.get()] = c;
    c->access = access;
    bool full = access == ControlAccess::Full;
    auto sameClass = static_cast<size_t>(std::count_if(conns_.begin(), conns_.end(), [&](auto& e) {
        return (e.second->access == ControlAccess::Full) == full;
    }));
    if (sameClass > (full ? kMaxConnections : kMaxLimitedConnections)) {
        send(*c, errorReply("busy: too many control connections; try again"));
        return;
    }
    if (access == ControlAccess::None) {
        logEvent("control-refused", {{"uid", std::to_string(cred.uid)},
                                     {"reason",
                                      "not root, the daemon's user or group, "
                                      "or control_group"}});
        // The refusal is the answer to its request: read that first, so
        // that closing with it unread does not reset the connection
        // before the client has read why.
        c->refusal = "permission denied: uid " + std::to_string(cred.uid) +
                     " is neither root, the daemon's user, in its group, nor in control_group";
        c->readEv.addSeconds(kReadTimeout);
        return;
    }
    c->readEv.addSeconds(kReadTimeout);
}

void ControlServer::onRead(Conn& c) {
    char buf[kReadChunk];
    for (;;) {
        ssize_t n = ::read(c.sock.get(), buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) return close(c);  // gone before asking
        c.in.append(buf, static_cast<size_t>(n));
        auto nl = c.in.find('\n');
        if (nl == std::string::npos) {
            if (c.in.size() > kMaxRequest) {
                c.readEv.del();
                return send(c, errorReply("request longer than " +
                                          std::to_string(kMaxRequest / 1024) + " KiB"));
            }
            continue;
        }
        c.readEv.del();
        if (!c.refusal.empty()) return send(c, errorReply(c.refusal));
        return onRequest(c, c.in.substr(0, nl));
    }
}

void ControlServer::onRequest(Conn& c, const std::string& line) {
    auto request = nlohmann::json::parse(line, nullptr, false);
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
    handler_(request, c.access, [this, weak](nlohmann::json reply) {
        if (auto conn = weak.lock()) send(*conn, reply);  // the client may have left
    });
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
    // This may run inside one of c's own callbacks: destroyed after it returns.
    auto it = conns_.find(&c);
    if (it == conns_.end()) return;
    auto keep = std::move(it->second);
    conns_.erase(it);
    keep->readEv.del();
    keep->writeEv.del();
    dispatcher_.deferredDelete(std::move(keep));
}

}  // namespace danerelay::relay
