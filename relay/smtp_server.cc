#include "relay/smtp_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "relay/cidr.h"
#include "relay/log.h"
#include "relay/smtp_session.h"

namespace danerelay::relay {

SmtpServer::SmtpServer(ServerContext ctx)
    : ctx_(std::move(ctx)), reaper_(ctx_.base, -1, 0, [this](short) { graveyard_.clear(); }) {}

SmtpServer::~SmtpServer() = default;

Status SmtpServer::listen(std::vector<UniqueFd> bound) {
    if (bound.size() != ctx_.config->listeners.size()) {
        return Error::internal("listen: " + std::to_string(bound.size()) + " sockets for " +
                               std::to_string(ctx_.config->listeners.size()) + " listeners");
    }
    for (size_t i = 0; i < bound.size(); ++i) {
        const auto& lc = ctx_.config->listeners[i];
        auto l = std::make_unique<Listener>();
        l->config = lc;
        l->fd = std::move(bound[i]);
        if (!l->fd.valid()) return Error::internal("listener " + lc.text + ": not bound");
        Listener* raw = l.get();
        l->ev = std::make_unique<Event>(ctx_.base, l->fd.get(), EV_READ | EV_PERSIST,
                                        [this, raw](short) { onAccept(*raw); });
        l->ev->add();
        logEvent("listen", {{"address", lc.text},
                            {"tls", lc.tls == ListenerTls::Implicit ? "implicit" : "starttls"}});
        listeners_.push_back(std::move(l));
    }
    return okStatus();
}

void SmtpServer::onAccept(Listener& l) {
    // Bounded: at most this many accepts per wake-up, so one busy listener
    // cannot starve the rest of the loop.
    for (int i = 0; i < 64; ++i) {
        sockaddr_storage peer{};
        socklen_t plen = sizeof peer;
        int fd = ::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&peer), &plen,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                logEvent("error", {{"listener", l.config.text},
                                   {"reason", std::string("accept: ") + std::strerror(errno)}});
            }
            return;
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::string client = addressToString(peer);
        const auto& lim = ctx_.config->limits;
        const char* refuse = nullptr;
        if (sessions_.size() >= lim.maxSessions) {
            refuse = "too many sessions";
        } else if (perClient_[client] >= lim.maxSessionsPerClient) {
            refuse = "too many sessions from this client";
        }
        if (refuse) {
            logEvent("reject", {{"client", client}, {"reason", refuse}});
            if (l.config.tls != ListenerTls::Implicit) {
                std::string msg =
                    "421 4.7.0 " + ctx_.config->hostname + " Error: " + refuse + "\r\n";
                [[maybe_unused]] auto n = ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL);
            }
            ::close(fd);
            if (perClient_[client] == 0) perClient_.erase(client);
            continue;
        }
        ++perClient_[client];
        uint64_t id = nextSessionId_++;
        auto s = std::make_shared<SmtpSession>(*this, fd, peer, l.config, id);
        sessions_.emplace(id, s);
        s->start();
    }
}

void SmtpServer::release(uint64_t sessionId, const std::string& client) {
    auto it = sessions_.find(sessionId);
    if (it == sessions_.end()) return;
    graveyard_.push_back(std::move(it->second));
    sessions_.erase(it);
    auto pc = perClient_.find(client);
    if (pc != perClient_.end() && --pc->second == 0) perClient_.erase(pc);
    timeval now{0, 0};
    reaper_.add(&now);
}

}  // namespace danerelay::relay
