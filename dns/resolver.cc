#include "dns/resolver.h"

#include "dns/key_fetch.h"
#include "dns/response.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/event.h"
#include "common/unique_fd.h"

namespace danerelay::dns {

// Per-attempt deadlines run on real time, as libevent's timers do.
using Steady = std::chrono::steady_clock;

std::string ServerAddress::text() const {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(port);
}

Result<ServerAddress> parseServerAddress(const std::string& text) {
    ServerAddress s;
    std::string host = text, port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos) return Error::permanent("'" + text + "': missing ']'");
        host = text.substr(1, close - 1);
        if (close + 1 < text.size()) {
            if (text[close + 1] != ':') return Error::permanent("'" + text + "': expected ]:port");
            port = text.substr(close + 2);
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        host = text.substr(0, text.find(':'));
        port = text.substr(text.find(':') + 1);
    }
    unsigned char buf[16];
    bool v4 = inet_pton(AF_INET, host.c_str(), buf) == 1;
    bool v6 = !v4 && inet_pton(AF_INET6, host.c_str(), buf) == 1;
    if (!v4 && !v6) return Error::permanent("'" + text + "' is not an IP address");
    if (!port.empty()) {
        if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
            std::stoul(port) == 0 || std::stoul(port) > 65535) {
            return Error::permanent("'" + text + "': bad port");
        }
        s.port = static_cast<uint16_t>(std::stoul(port));
    }
    s.host = host;
    s.trusted = v4 ? buf[0] == 127 : std::memcmp(buf, in6addr_loopback.s6_addr, 16) == 0;
    return s;
}

// ------------------------------------------------------------------ Query

// One question, asked until answered or out of attempts: UDP, then TCP if
// truncated. Owned by the Resolver; reports through Resolver::finished().
class Resolver::Query {
  public:
    Query(Resolver& r, Key key, bool cd) : r_(r), key_(std::move(key)), cd_(cd) {}
    ~Query() = default;  // ev_ goes first, then the socket
    const Key& key() const { return key_; }
    bool checkingDisabled() const { return cd_; }
    const ServerAddress& server() const { return server_; }

    void begin() { attempt(); }

  private:
    // Closing happens inside the event's own callback (a timeout, TC, a
    // switch from writing to reading): the event is unregistered now and
    // destroyed once that callback has returned, then the socket is closed.
    void closeSocket() {
        if (ev_) {
            ev_->del();
            r_.dispatcher_.deferredDelete(std::move(ev_));
        }
        fd_.reset();
    }

    // Watch the socket for `what` (EV_READ or EV_WRITE), until the deadline.
    void watch(short what) {
        ev_ = std::make_unique<Event>(r_.base_, fd_.get(), what,
                                      [this](short w) { tcp_ ? onTcp(w) : onUdp(w); });
        arm();
    }

    bool buildWire() {
        uint16_t id = 0;
        if (getrandom(&id, sizeof id, 0) != sizeof id) return false;
        id_ = id;
        ldns_rdf* dname = ldns_dname_new_frm_str(key_.first.c_str());
        if (!dname) return false;
        Pkt pkt(ldns_pkt_query_new(dname, static_cast<ldns_rr_type>(key_.second), LDNS_RR_CLASS_IN,
                                   LDNS_RD | (cd_ || r_.opts_.validator ? LDNS_CD : 0)));
        if (!pkt) return false;
        ldns_pkt_set_id(pkt.get(), id_);
        ldns_pkt_set_edns_udp_size(pkt.get(), kEdnsUdpSize);
        ldns_pkt_set_edns_do(pkt.get(), true);
        return toWire(pkt.get(), &wire_);
    }

    bool sockaddrFor(sockaddr_storage* ss, socklen_t* len) const {
        std::memset(ss, 0, sizeof *ss);
        auto* sin = reinterpret_cast<sockaddr_in*>(ss);
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
        if (inet_pton(AF_INET, server_.host.c_str(), &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons(server_.port);
            *len = sizeof *sin;
            return true;
        }
        if (inet_pton(AF_INET6, server_.host.c_str(), &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(server_.port);
            *len = sizeof *sin6;
            return true;
        }
        return false;
    }

    void attempt() {
        closeSocket();
        if (attempt_ >= r_.opts_.attempts || r_.opts_.servers.empty()) {
            Answer a;
            a.qname = key_.first;
            a.qtype = key_.second;
            a.canonicalName = key_.first;
            a.outcome = Outcome::Timeout;
            a.detail = lastError_.empty() ? "no answer from any resolver" : lastError_;
            return r_.finished(this, std::move(a));
        }
        // Each query starts at the next server in turn and then walks the
        // list, so its attempts reach different servers even while other
        // queries take turns (a dead first resolver costs one attempt).
        if (attempt_ == 0) firstServer_ = r_.nextServer_++;
        server_ = r_.opts_.servers[(firstServer_ + attempt_) % r_.opts_.servers.size()];
        ++attempt_;
        tcp_ = false;
        if (!buildWire()) {
            Answer a;
            a.qname = key_.first;
            a.qtype = key_.second;
            a.outcome = Outcome::Error;
            a.detail = "cannot build a query for this name";
            return r_.finished(this, std::move(a));
        }
        sockaddr_storage ss;
        socklen_t len = 0;
        sockaddrFor(&ss, &len);
        fd_.reset(::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd_.valid() || ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
            ::send(fd_.get(), wire_.data(), wire_.size(), 0) < 0) {
            lastError_ = server_.text() + ": " + std::strerror(errno);
            return attempt();
        }
        ++r_.queriesSent_;
        if (r_.opts_.observer) r_.opts_.observer->querySent();
        deadline_ = Steady::now() + std::chrono::milliseconds(r_.opts_.timeoutMs);
        watch(EV_READ);
    }

    void arm() {
        auto left =
            std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - Steady::now());
        if (left.count() < 0) left = std::chrono::microseconds(0);
        timeval tv{static_cast<time_t>(left.count() / 1000000),
                   static_cast<suseconds_t>(left.count() % 1000000)};
        ev_->add(&tv);
    }

    void onUdp(short what) {
        if (what & EV_TIMEOUT) {
            lastError_ = server_.text() + ": timeout";
            return attempt();
        }
        uint8_t buf[65536];
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return arm();
            lastError_ = server_.text() + ": " + std::strerror(errno);  // e.g. ICMP refused
            return attempt();
        }
        auto response = acceptable(buf, static_cast<size_t>(n));
        if (!response) return arm();           // spoofed or stray: keep waiting
        if (buf[2] & 0x02) return startTcp();  // TC: ask again over TCP
        handle(std::move(response));
    }

    // Is this an answer to us at all: our ID, a response, our question?
    // Anything else (spoofed, stray, late) is null: dropped, and we keep
    // waiting. The packet is read once (response.h), here.
    std::shared_ptr<Response> acceptable(const uint8_t* buf, size_t n) const {
        if (n < 12) return nullptr;
        uint16_t id = static_cast<uint16_t>(buf[0] << 8 | buf[1]);
        if (id != id_ || !(buf[2] & 0x80)) return nullptr;
        auto response = readResponse(buf, n, key_.first, key_.second);
        return response->forUs ? response : nullptr;
    }

    // One reading of the packet (response.h): the resolver-mode answer and
    // the validator's proof are both made from this Response, so the
    // records delivery sees are exactly those the validator checked.
    void handle(std::shared_ptr<Response> response) {
        auto& validator = r_.opts_.validator;
        Answer a;
        if (validator) {
            a = answerFrom(*response, Security::Indeterminate);
        } else {
            Security s = server_.trusted ? (response->ad ? Security::Secure : Security::Insecure)
                                         : Security::Indeterminate;
            a = s == Security::Secure && !response->strays.empty() &&
                        response->outcome != Outcome::Error &&
                        response->outcome != Outcome::ServFail
                    ? withheld(*response, Security::Bogus, "DNSSEC: " + straysText(*response))
                    : answerFrom(*response, s);
        }
        auto from = " from " + server_.text();
        a.detail = a.detail.empty() ? from.substr(1) : a.detail + from;
        if (a.outcome == Outcome::Error && attempt_ < r_.opts_.attempts) {
            lastError_ = a.detail;
            return attempt();
        }
        bool answered = a.outcome == Outcome::Data || a.outcome == Outcome::NxDomain ||
                        a.outcome == Outcome::NoData;
        if (!validator || !answered) return r_.finished(this, std::move(a));
        // Local validation, off the loop: the validator may fetch keys. The
        // Response is read by the worker alone until done runs.
        auto result = std::make_shared<Answer>();
        int64_t now = r_.clock_->wallSeconds();
        std::weak_ptr<int> alive = r_.alive_;
        ResolverObserver* observer = r_.opts_.observer;
        r_.opts_.offload(
            [validator, response, result, now, observer] {
                Verdict v;
                auto started = Steady::now();
                *result = validator->answer(*response, now, &v);
                if (v.security == Security::Insecure) result->detail = v.reason;
                if (observer) {
                    observer->validated(
                        std::chrono::duration<double>(Steady::now() - started).count());
                    if (v.security == Security::Bogus) observer->bogus(toString(v.bogus));
                }
            },
            [this, alive, result, from] {
                if (alive.expired()) return;  // the resolver is gone
                Answer& v = *result;
                v.detail = v.detail.empty() ? from.substr(1) : v.detail + from;
                r_.finished(this, std::move(v));
            });
    }

    void startTcp() {
        closeSocket();
        tcp_ = true;
        sockaddr_storage ss;
        socklen_t len = 0;
        sockaddrFor(&ss, &len);
        fd_.reset(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd_.valid() || (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 &&
                             errno != EINPROGRESS)) {
            lastError_ = server_.text() + " (tcp): " + std::strerror(errno);
            return attempt();
        }
        tcpOut_.clear();
        tcpOut_.push_back(static_cast<char>(wire_.size() >> 8));
        tcpOut_.push_back(static_cast<char>(wire_.size() & 0xff));
        tcpOut_.append(reinterpret_cast<const char*>(wire_.data()), wire_.size());
        tcpIn_.clear();
        deadline_ = Steady::now() + std::chrono::milliseconds(r_.opts_.timeoutMs);
        watch(EV_WRITE);
    }

    void onTcp(short what) {
        if (what & EV_TIMEOUT) {
            lastError_ = server_.text() + " (tcp): timeout";
            return attempt();
        }
        if (!tcpOut_.empty()) {
            ssize_t n = ::send(fd_.get(), tcpOut_.data(), tcpOut_.size(), MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN) {
                lastError_ = server_.text() + " (tcp): " + std::strerror(errno);
                return attempt();
            }
            if (n > 0) tcpOut_.erase(0, static_cast<size_t>(n));
            if (!tcpOut_.empty()) return arm();
            ev_->del();
            r_.dispatcher_.deferredDelete(std::move(ev_));  // we are inside its callback
            return watch(EV_READ);
        }
        uint8_t buf[16384];
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return arm();
        if (n <= 0) {
            lastError_ = server_.text() + " (tcp): connection closed early";
            return attempt();
        }
        tcpIn_.insert(tcpIn_.end(), buf, buf + n);
        if (tcpIn_.size() < 2) return arm();
        size_t want = static_cast<size_t>(tcpIn_[0] << 8 | tcpIn_[1]);
        if (tcpIn_.size() < want + 2) return arm();
        auto response = acceptable(tcpIn_.data() + 2, want);
        if (!response) {
            lastError_ = server_.text() + " (tcp): wrong ID";
            return attempt();
        }
        handle(std::move(response));
    }

    Resolver& r_;
    Key key_;
    bool cd_;
    unsigned attempt_ = 0;
    size_t firstServer_ = 0;
    uint16_t id_ = 0;
    std::vector<uint8_t> wire_;
    ServerAddress server_;
    UniqueFd fd_;
    std::unique_ptr<Event> ev_;  // declared after fd_: gone before the socket closes
    bool tcp_ = false;
    std::string tcpOut_;
    std::vector<uint8_t> tcpIn_;
    Steady::time_point deadline_;
    std::string lastError_;
};

// ------------------------------------------------------------------ Resolver

Resolver::Resolver(event_base* base, ResolverOptions options, const Clock& clock)
    : base_(base), opts_(std::move(options)), clock_(&clock), dispatcher_(base, clock) {}

Resolver::~Resolver() = default;

void Resolver::later(Callback cb, Answer a) {
    dispatcher_.post([cb = std::move(cb), a = std::move(a)] { cb(a); });
}

void Resolver::lookup(const std::string& name, uint16_t type, Callback cb) {
    std::string norm;
    if (!normalizeName(name, &norm)) {
        Answer a;
        a.qname = name;
        a.qtype = type;
        a.outcome = Outcome::Error;
        a.detail = "'" + name + "' is not a valid DNS name";
        return later(std::move(cb), std::move(a));
    }
    Key key{norm, type};
    auto c = cache_.find(key);
    if (c != cache_.end()) {
        if (clock_->monotonic() < c->second.expires) {
            Answer a = c->second.answer;
            a.fromCache = true;
            if (opts_.observer) opts_.observer->answered(a.security, true);
            return later(std::move(cb), std::move(a));
        }
        cache_.erase(c);
    }
    auto& w = waiting_[key];
    w.push_back(std::move(cb));
    if (w.size() == 1) start(key, false);  // the first asker starts the query; others wait
}

void Resolver::start(const Key& key, bool checkingDisabled) {
    auto q = std::make_unique<Query>(*this, key, checkingDisabled);
    Query* raw = q.get();
    inFlight_.emplace(raw, std::move(q));
    raw->begin();
}

void Resolver::finished(Query* q, Answer a) {
    auto it = inFlight_.find(q);
    if (it == inFlight_.end()) return;
    std::unique_ptr<Query> owned = std::move(it->second);
    inFlight_.erase(it);
    Key key = owned->key();
    bool cd = owned->checkingDisabled();
    bool trusted = owned->server().trusted;
    dispatcher_.deferredDelete(std::move(owned));  // we may be inside its own callback

    // A SERVFAIL of the server's own: was it a validation failure? Ask with
    // CD. Not for our own Bogus verdict (records beside a signed answer): a
    // second answer could only lose that reason (issue 13).
    if (!cd && a.outcome == Outcome::ServFail && a.security != Security::Bogus && trusted &&
        !opts_.validator) {
        start(key, true);
        return;
    }
    if (cd) {
        if (a.outcome == Outcome::Data || a.outcome == Outcome::NxDomain ||
            a.outcome == Outcome::NoData) {
            // The data exists but the validating resolver refused it: bogus.
            a = withheld(a, Security::Bogus,
                         "DNSSEC validation failed (answer exists with checking disabled)");
        } else {
            a.outcome = Outcome::ServFail;
            a.security = Security::Indeterminate;
        }
    }
    if (opts_.observer) {
        opts_.observer->answered(a.security, false);
        // Local validation counted its own verdicts, with their reasons.
        if (a.security == Security::Bogus && !opts_.validator) opts_.observer->bogus("resolver");
    }
    store(key, a);
    deliver(key, a);
}

void Resolver::store(const Key& key, const Answer& a) {
    uint32_t ttl;
    switch (a.outcome) {
        case Outcome::Data:
            ttl = std::min(a.ttl, opts_.maxTtl);
            break;
        case Outcome::NxDomain:
        case Outcome::NoData:
            ttl = std::min(a.ttl, opts_.maxNegativeTtl);
            break;
        default:
            ttl = opts_.failureTtl;
            break;
    }
    if (a.security == Security::Bogus) ttl = opts_.failureTtl;
    if (ttl == 0) return;
    if (cache_.size() >= opts_.maxCacheEntries) {
        auto now = clock_->monotonic();
        std::erase_if(cache_, [&](const auto& e) { return e.second.expires <= now; });
        if (cache_.size() >= opts_.maxCacheEntries) cache_.clear();  // a hard cap, never unbounded
    }
    cache_[key] = CacheEntry{a, clock_->monotonic() + std::chrono::seconds(ttl)};
}

void Resolver::deliver(const Key& key, const Answer& a) {
    auto w = waiting_.find(key);
    if (w == waiting_.end()) return;
    auto callbacks = std::move(w->second);
    waiting_.erase(w);
    for (auto& cb : callbacks) cb(a);
}

void Resolver::probe(std::function<void(bool, const std::string&)> done) {
    if (opts_.probeSecureName.empty()) {
        validating_ = false;
        probeDetail_ = "no probe names configured";
        done(false, probeDetail_);
        return;
    }
    // The probe must not be answered from the cache.
    std::string s, b;
    normalizeName(opts_.probeSecureName, &s);
    normalizeName(opts_.probeBogusName, &b);
    cache_.erase({s, kTypeA});
    cache_.erase({b, kTypeA});
    lookup(opts_.probeSecureName, kTypeA, [this, done](const Answer& secure) {
        if (secure.security != Security::Secure) {
            validating_ = false;
            bool unanswered = secure.outcome == Outcome::Timeout ||
                              secure.outcome == Outcome::Error ||
                              (secure.outcome == Outcome::ServFail &&
                               secure.security == Security::Indeterminate && !opts_.validator);
            probeDetail_ =
                opts_.probeSecureName + " is " + toString(secure.security) + " (" +
                toString(secure.outcome) + ", " + secure.detail + "): " +
                (unanswered        ? "no usable answer from the resolvers"
                 : opts_.validator ? "local DNSSEC validation failed"
                                   : "the resolver does not validate, or is not trusted");
            done(false, probeDetail_);
            return;
        }
        if (opts_.probeBogusName.empty()) {
            validating_ = true;
            lastProbeSuccess_ = clock_->wallSeconds();
            probeDetail_ = opts_.probeSecureName + " validated";
            done(true, probeDetail_);
            return;
        }
        lookup(opts_.probeBogusName, kTypeA, [this, done](const Answer& bogus) {
            bool failed = bogus.outcome == Outcome::ServFail || bogus.security == Security::Bogus;
            validating_ = failed;
            if (failed) lastProbeSuccess_ = clock_->wallSeconds();
            probeDetail_ = failed
                               ? opts_.probeSecureName + " validated and " + opts_.probeBogusName +
                                     " was refused"
                               : opts_.probeBogusName + " was accepted (" +
                                     toString(bogus.security) + "): the resolver does not validate";
            done(validating_, probeDetail_);
        });
    });
}

}  // namespace danerelay::dns
