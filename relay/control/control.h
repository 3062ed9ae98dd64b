// control.h — the daemon's control socket.
//
// A Unix stream socket (config "control_socket", default
// <spool_dir>/control.sock), created mode 0660: the file system lets in the
// daemon's user and group, and every connection's peer credentials decide
// what it may ask (SO_PEERCRED, SO_PEERGROUPS): root, the daemon's user and
// members of control_group get every verb (ControlAccess::Full); members of
// the daemon's own group the read-only ones (ReadOnly: status); anyone else
// gets a JSON error line once its request is read, then the close. One request per connection: a
// JSON object on one line (at most 64 KiB, within 10 seconds); one JSON reply on one line, then the
// daemon closes. At most 16 connections at once for Full peers, and 8 more
// shared by everyone else (read-only and refused peers), so that those
// cannot keep an administrator out; beyond, "busy" and the close. The
// verbs themselves live in control_verbs.h; danectl's side of the socket is
// control_client.h.
//
// A connection that has finished (answered, timed out, gone) is destroyed
// through the server's Dispatcher once the callback that finished it has
// returned, never from under it.
#pragma once

#include <sys/types.h>

#include <event2/event.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/dispatcher.h"
#include "common/event.h"
#include "common/result.h"
#include "common/unique_fd.h"

struct sockaddr_un;

namespace danerelay::relay {

// The "version" every request and reply carries.
constexpr int kControlProtocolVersion = 1;

enum class ControlAccess { None, ReadOnly, Full };

// Who may do what: the daemon's own uid and gid, and control_group's gid.
struct ControlRule {
    uid_t selfUid = 0;
    gid_t selfGid = 0;
    std::optional<gid_t> adminGid;
    // The access of a peer with this uid, primary gid and supplementary groups.
    ControlAccess accessOf(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) const;
};

// path as a Unix socket address; false if empty or too long for one.
bool controlSocketAddress(const std::string& path, sockaddr_un* sa);

class ControlServer {
  public:
    using Reply = std::function<void(nlohmann::json)>;
    // Runs on the loop; calls reply exactly once, now or later. access is
    // ReadOnly or Full (None never reaches it).
    using Handler =
        std::function<void(const nlohmann::json& request, ControlAccess access, Reply reply)>;

    ControlServer(event_base* base, std::string path, Handler handler, ControlRule rule);
    ~ControlServer();  // closes and unlinks the socket
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Replaces a stale socket left by a previous daemon (the spool lock says
    // none runs now); refuses to replace anything that is not a socket.
    Status listen();
    const std::string& path() const { return path_; }

    // Serve one connected stream socket (non-blocking) as if just accepted:
    // the peer-credential check, the connection limit, the request, the
    // reply. listen()'s accepts come here; a test may hand in a socketpair.
    void serve(UniqueFd conn);
    // Connections open now (not yet finished).
    size_t connections() const { return conns_.size(); }

  private:
    struct Conn;
    void onAccept();
    void onRead(Conn& c);
    void onRequest(Conn& c, const std::string& line);
    void send(Conn& c, const nlohmann::json& reply);
    void onWrite(Conn& c);
    void close(Conn& c);

    event_base* base_;
    Dispatcher dispatcher_;
    std::string path_;
    Handler handler_;
    ControlRule rule_;
    UniqueFd fd_;
    std::unique_ptr<Event> acceptEv_;
    std::map<Conn*, std::shared_ptr<Conn>> conns_;
    bool listening_ = false;
};

}  // namespace danerelay::relay
