// control.h — the daemon's control socket, and danectl's side of it.
//
// A Unix stream socket (config "control_socket", default
// <spool_dir>/control.sock), created mode 0600; every connection's peer
// credentials are checked too (SO_PEERCRED): only root and the daemon's own
// user are served; anyone else gets a JSON error line once its request is
// read, then the close. One request per connection: a JSON object on one line
// (at most 64 KiB, within 10 seconds); one JSON reply on one line, then the
// daemon closes. At most 16 connections at once; more are refused. The
// verbs themselves live in control_verbs.h.
#pragma once

#include <event2/event.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "common/unique_fd.h"
#include "relay/runtime/event_loop.h"

namespace danerelay::relay {

constexpr int kControlProtocolVersion = 1;

class ControlServer {
  public:
    using Reply = std::function<void(nlohmann::json)>;
    // Runs on the loop; calls reply exactly once, now or later.
    using Handler = std::function<void(const nlohmann::json& request, Reply reply)>;

    ControlServer(event_base* base, std::string path, Handler handler);
    ~ControlServer();  // closes and unlinks the socket
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Replaces a stale socket left by a previous daemon (the spool lock says
    // none runs now); refuses to replace anything that is not a socket.
    Status listen();
    const std::string& path() const { return path_; }

  private:
    struct Conn;
    void onAccept();
    void onRead(Conn& c);
    void send(Conn& c, const nlohmann::json& reply);
    void onWrite(Conn& c);
    void close(Conn& c);

    event_base* base_;
    std::string path_;
    Handler handler_;
    UniqueFd fd_;
    std::unique_ptr<Event> acceptEv_;
    std::map<Conn*, std::shared_ptr<Conn>> conns_;
    bool listening_ = false;
};

// danectl: send one request, wait for the reply (at most timeoutSeconds).
Result<nlohmann::json> controlRequest(const std::string& path, const nlohmann::json& request,
                                      int timeoutSeconds);

}  // namespace danerelay::relay
