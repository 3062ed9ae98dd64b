#include "relay/inbound/smtp_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "relay/inbound/smtp_session.h"
#include "relay/runtime/log.h"
#include "relay/runtime/net_address.h"

namespace danerelay::relay {

std::string clientNetwork(const sockaddr_storage& peer) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (peer.ss_family == AF_INET6) {
        in6_addr a = reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            in_addr v4{};
            std::memcpy(&v4, &a.s6_addr[12], 4);
            v4.s_addr = htonl(ntohl(v4.s_addr) & 0xffffff00u);
            ::inet_ntop(AF_INET, &v4, buf, sizeof buf);
            return std::string(buf) + "/24";
        }
        std::memset(&a.s6_addr[8], 0, 8);
        ::inet_ntop(AF_INET6, &a, buf, sizeof buf);
        return std::string(buf) + "/64";
    }
    if (peer.ss_family == AF_INET) {
        in_addr v4 = reinterpret_cast<const sockaddr_in&>(peer).sin_addr;
        v4.s_addr = htonl(ntohl(v4.s_addr) & 0xffffff00u);
        ::inet_ntop(AF_INET, &v4, buf, sizeof buf);
        return std::string(buf) + "/24";
    }
    return "unknown";
}

SmtpServer::SmtpServer(ServerContext ctx)
    : ctx_(std::move(ctx)),
      ownDispatcher_(ctx_.dispatcher ? nullptr : std::make_unique<Dispatcher>(ctx_.base)),
      dispatcher_(ctx_.dispatcher ? ctx_.dispatcher : ownDispatcher_.get()),
      metrics_(metricsOrUnscraped(ctx_.metrics)),
      acceptResume_(ctx_.base, -1, 0, [this](short) {
          if (draining_) return;  // resumeAccepting() adds them again
          for (auto& l : listeners_) l->ev->add();
      }) {}

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
        UniqueFd fd(::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&peer), &plen,
                              SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd.valid()) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                pauseAccepting(errno);
                return;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                logEvent("error", {{"listener", l.config.text},
                                   {"reason", std::string("accept: ") + std::strerror(errno)}});
            }
            return;
        }
        if (acceptBackoffMs_ != 0) {
            logEvent("accept-resumed", {{"listener", l.config.text}});
            acceptBackoffMs_ = 0;
        }
        admit(l, std::move(fd), peer);
    }
}

const char* SmtpServer::overLimit(const sockaddr_storage& peer, const std::string& client,
                                  const std::string& network, size_t open) {
    const auto& lim = ctx_.config->limits;
    bool inside = anyContains(ctx_.config->relayNetworks, peer);
    if (open >= lim.maxSessions) return "too many sessions";
    if (!inside && !ctx_.config->relayNetworks.empty() &&
        open + lim.reservedSessions >= lim.maxSessions) {
        return "too many sessions";  // the rest are kept for relay_networks
    }
    auto pc = perClient_.find(client);
    if ((pc == perClient_.end() ? 0 : pc->second) >= lim.maxSessionsPerClient) {
        return "too many sessions from this client";
    }
    if (!network.empty()) {
        auto pn = perNetwork_.find(network);
        if (pn != perNetwork_.end() && pn->second >= lim.maxSessionsPerNetwork) {
            return "too many sessions from this network";
        }
    }
    return nullptr;
}

void SmtpServer::admit(Listener& l, UniqueFd fd, const sockaddr_storage& peer) {
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string client = addressToString(peer);
    bool proxied = l.config.proxy != ProxyProtocol::None;
    if (proxied && !anyContains(l.config.proxyFrom, peer)) {
        // Only a listed balancer may assert a client's address; anyone else
        // could claim to be inside relay_networks.
        logEvent("proxy-refused",
                 {{"peer", client}, {"listener", l.config.text}, {"reason", "not in proxy_from"}});
        return;  // fd closes here, nothing sent
    }
    // Proxied: the client is not known yet, only the slot is (admitProxied).
    std::string network = proxied ? "" : countedNetwork(peer);
    const char* refuse = nullptr;
    if (!proxied) {
        refuse = overLimit(peer, client, network, sessions_.size());
    } else if (sessions_.size() >= ctx_.config->limits.maxSessions) {
        refuse = "too many sessions";
    }
    if (refuse) {
        logEvent("reject", {{"client", client}, {"network", network}, {"reason", refuse}});
        metrics_->refuse(InboundMetrics::Refusal::Rate);
        if (l.config.tls != ListenerTls::Implicit) {
            std::string msg = "421 4.7.0 " + ctx_.config->hostname + " Error: " + refuse + "\r\n";
            [[maybe_unused]] auto n = ::send(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL);
        }
        return;  // fd closes here
    }
    if (!proxied) count(client, network);
    uint64_t id = nextSessionId_++;
    auto s = std::make_shared<SmtpSession>(*this, std::move(fd), peer, l.config, id, !proxied);
    sessions_.emplace(id, s);
    s->start();
}

const char* SmtpServer::admitProxied(const SmtpSession& s) {
    std::string network = countedNetwork(s.peer());
    // Itself excluded: at accept a direct client is not among the open ones.
    size_t others = sessions_.size() - (sessions_.count(s.id()) ? 1 : 0);
    if (const char* refuse = overLimit(s.peer(), s.client(), network, others)) return refuse;
    count(s.client(), network);
    return nullptr;
}

void SmtpServer::count(const std::string& client, const std::string& network) {
    ++perClient_[client];
    if (!network.empty()) ++perNetwork_[network];
}

void SmtpServer::pauseAccepting(int err) {
    // The connection stays in the kernel's backlog; a level-triggered
    // listener would wake us again at once, for ever. Pause every listener
    // (they share the descriptor table), 100 ms, doubling to 1 s while it
    // lasts; one log line per episode.
    if (acceptBackoffMs_ == 0) {
        logEvent("accept-paused", {{"reason", std::string("accept: ") + std::strerror(err)},
                                   {"sessions", std::to_string(sessions_.size())}});
        acceptBackoffMs_ = kAcceptBackoffMinMs;
    } else {
        acceptBackoffMs_ = std::min(acceptBackoffMs_ * 2, kAcceptBackoffMaxMs);
    }
    for (auto& l : listeners_) l->ev->del();
    acceptResume_.addMillis(acceptBackoffMs_);
}

std::string SmtpServer::countedNetwork(const sockaddr_storage& peer) const {
    // relay_networks are the clients this relay serves: capped per address
    // only (an inside /24 is often one application's servers).
    if (anyContains(ctx_.config->relayNetworks, peer)) return "";
    return clientNetwork(peer);
}

void SmtpServer::release(uint64_t sessionId, const std::string& client) {
    auto it = sessions_.find(sessionId);
    if (it == sessions_.end()) return;
    std::string network = countedNetwork(it->second->peer());
    bool counted = it->second->counted();
    // It is inside its own callback: destroyed once that has returned.
    dispatcher_->deferredDelete(std::move(it->second));
    sessions_.erase(it);
    if (counted) uncount(client, network);
}

void SmtpServer::uncount(const std::string& client, const std::string& network) {
    auto pc = perClient_.find(client);
    if (pc != perClient_.end() && --pc->second == 0) perClient_.erase(pc);
    if (!network.empty()) {
        auto pn = perNetwork_.find(network);
        if (pn != perNetwork_.end() && --pn->second == 0) perNetwork_.erase(pn);
    }
}

namespace {
// The backlog relay/runtime/startup.cc listens with.
constexpr int kResumeBacklog = 511;
}  // namespace

Status SmtpServer::stopAccepting() {
    if (draining_) return okStatus();
    draining_ = true;
    acceptResume_.del();
    acceptBackoffMs_ = 0;
    std::string failed;
    for (auto& l : listeners_) {
        l->ev->del();
        if (::shutdown(l->fd.get(), SHUT_RD) != 0)
            failed += (failed.empty() ? "" : "; ") + l->config.text +
                      ": shutdown: " + std::strerror(errno);
    }
    logEvent("drain", {{"listeners", std::to_string(listeners_.size())},
                       {"sessions", std::to_string(sessions_.size())},
                       {"result", failed.empty() ? "not accepting" : failed}});
    if (!failed.empty()) return Error::internal("drain: " + failed);
    return okStatus();
}

Status SmtpServer::resumeAccepting() {
    if (!draining_) return okStatus();
    std::string failed;
    for (auto& l : listeners_) {
        if (::listen(l->fd.get(), kResumeBacklog) != 0) {
            failed +=
                (failed.empty() ? "" : "; ") + l->config.text + ": listen: " + std::strerror(errno);
            continue;
        }
        l->ev->add();
    }
    draining_ = false;
    logEvent("resume", {{"listeners", std::to_string(listeners_.size())},
                        {"result", failed.empty() ? "accepting" : failed}});
    if (!failed.empty()) return Error::internal("resume: " + failed);
    return okStatus();
}

}  // namespace danerelay::relay
