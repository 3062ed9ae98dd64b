#include "sts/fetcher.h"

#include <arpa/inet.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "common/version.h"
#include "sts/text.h"

namespace danerelay::sts {

namespace {

struct EasyDeleter {
    void operator()(CURL* e) const { curl_easy_cleanup(e); }
};
struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

void globalInit() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

struct Fetcher::Transfer {
    uint64_t id = 0;
    std::string url;
    std::unique_ptr<CURL, EasyDeleter> easy;
    std::unique_ptr<curl_slist, SlistDeleter> resolve;
    std::string body;
    size_t maxBytes = 0;
    bool oversized = false;
    char errorBuf[CURL_ERROR_SIZE] = {};
    Callback cb;

    static size_t onWrite(char* data, size_t size, size_t n, void* self) {
        auto* t = static_cast<Transfer*>(self);
        size_t bytes = size * n;
        if (bytes > t->maxBytes - t->body.size()) {
            t->oversized = true;
            return 0;  // CURLE_WRITE_ERROR: the transfer stops here
        }
        t->body.append(data, bytes);
        return bytes;
    }
};

std::string policyUrl(const std::string& domain, uint16_t port) {
    std::string host = "mta-sts." + domain;
    if (port != 443) host += ":" + std::to_string(port);
    return "https://" + host + "/.well-known/mta-sts.txt";
}

bool isTextPlain(std::string_view ct) {
    constexpr std::string_view kType = "text/plain";
    while (!ct.empty() && isWsp(ct.front())) ct.remove_prefix(1);
    if (ct.size() < kType.size()) return false;
    for (size_t i = 0; i < kType.size(); ++i) {
        if (lower(ct[i]) != kType[i]) return false;
    }
    ct.remove_prefix(kType.size());
    while (!ct.empty() && isWsp(ct.front())) ct.remove_prefix(1);
    return ct.empty() || ct.front() == ';';
}

Fetcher::Fetcher(Dispatcher& dispatcher, FetchOptions options)
    : dispatcher_(dispatcher),
      options_(std::move(options)),
      timer_(dispatcher.base(), -1, 0, [this](short) { socketAction(CURL_SOCKET_TIMEOUT, 0); }) {
    globalInit();
    multi_.reset(curl_multi_init());
    if (!multi_) return;  // every fetch() then fails with an error
    CURLM* m = multi_.get();
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &Fetcher::onSocket);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &Fetcher::onTimer);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, this);
}

Fetcher::~Fetcher() {
    // Removing the handles makes libcurl close their sockets through
    // onSocket(REMOVE); the events go with the map afterwards.
    for (auto& [id, t] : transfers_) curl_multi_remove_handle(multi_.get(), t->easy.get());
    transfers_.clear();
    posted_->clear();  // finished ones whose callbacks are posted: withdrawn too
    multi_.reset();
    timer_.del();
    sockets_.clear();
}

int Fetcher::onTimer(CURLM*, long timeoutMs, void* self) {
    auto* f = static_cast<Fetcher*>(self);
    if (timeoutMs < 0) {
        f->timer_.del();
    } else {
        // Never socket_action from inside a libcurl callback: the loop
        // calls back, even for a zero timeout.
        f->timer_.addMillis(static_cast<unsigned>(std::min<long>(timeoutMs, 24L * 3600 * 1000)));
    }
    return 0;
}

int Fetcher::onSocket(CURL*, curl_socket_t fd, int what, void* self, void*) {
    auto* f = static_cast<Fetcher*>(self);
    auto it = f->sockets_.find(fd);
    if (it != f->sockets_.end()) {
        // Replaced or removed; this may run inside the event's own
        // callback, so it is destroyed later, never from under itself.
        it->second->del();
        f->dispatcher_.deferredDelete(std::move(it->second));
        f->sockets_.erase(it);
    }
    if (what == CURL_POLL_REMOVE) return 0;
    short events = EV_PERSIST;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EV_READ;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EV_WRITE;
    auto ev = std::make_unique<Event>(f->dispatcher_.base(), fd, events, [f, fd](short got) {
        int flags =
            ((got & EV_READ) ? CURL_CSELECT_IN : 0) | ((got & EV_WRITE) ? CURL_CSELECT_OUT : 0);
        f->socketAction(fd, flags);
    });
    ev->add();
    f->sockets_[fd] = std::move(ev);
    return 0;
}

void Fetcher::socketAction(int fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi_.get(), fd, flags, &running);
    finishDone();
}

void Fetcher::finishDone() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
        int code = msg->data.result;  // read before the handle goes
        if (t) complete(*t, code);
    }
}

void Fetcher::fail(Callback cb, std::string error) {
    callBack(nextId_++, std::move(cb), Error::temporary(std::move(error)));
}

void Fetcher::callBack(uint64_t id, Callback cb, Result<std::string> r) {
    // Posted, not run yet: cancel(id) or the destructor may still withdraw
    // it (the set outlives the Fetcher; the closure holds nothing else of it).
    posted_->insert(id);
    dispatcher_.post([posted = posted_, id, cb = std::move(cb), r = std::move(r)]() mutable {
        if (posted->erase(id) == 0) return;
        cb(std::move(r));
    });
}

void Fetcher::complete(Transfer& t, int code) {
    CURL* e = t.easy.get();
    long status = 0;
    char* ctype = nullptr;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ctype);
    std::string where = "MTA-STS policy fetch " + t.url + ": ";
    std::string error;
    if (t.oversized || code == CURLE_FILESIZE_EXCEEDED) {
        error = "larger than " + std::to_string(t.maxBytes) + " bytes, refused";
    } else if (code != CURLE_OK) {
        error = curl_easy_strerror(static_cast<CURLcode>(code));
        if (t.errorBuf[0]) error += std::string(" (") + t.errorBuf + ")";
    } else if (status >= 300 && status < 400) {
        error = "HTTP " + std::to_string(status) + ": redirects are not followed (RFC 8461 3.3)";
    } else if (status != 200) {
        error = "HTTP " + std::to_string(status);
    } else if (!ctype || !isTextPlain(ctype)) {
        error =
            "Content-Type " + (ctype ? quoted(ctype) : std::string("missing")) + ", not text/plain";
    }
    Callback cb = std::move(t.cb);
    std::string body = std::move(t.body);
    uint64_t id = t.id;
    curl_multi_remove_handle(multi_.get(), e);
    transfers_.erase(t.id);  // t is gone from here on
    if (!error.empty()) {
        callBack(id, std::move(cb), Error::temporary(where + error));
        return;
    }
    callBack(id, std::move(cb), std::move(body));
}

namespace {

bool isIpLiteral(const std::string& a, bool* v6) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, a.c_str(), buf) == 1) {
        *v6 = false;
        return true;
    }
    *v6 = true;
    return inet_pton(AF_INET6, a.c_str(), buf) == 1;
}

// Every option that makes this a strict RFC 8461 3.3 fetch, in one place.
bool configure(CURL* e, const FetchOptions& o) {
    bool ok = true;
    auto set = [&](CURLcode c) { ok = ok && c == CURLE_OK; };
    set(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https"));
    set(curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https"));
    set(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L));
    set(curl_easy_setopt(e, CURLOPT_MAXREDIRS, 0L));
    set(curl_easy_setopt(e, CURLOPT_PROXY, ""));  // and never $https_proxy
    set(curl_easy_setopt(e, CURLOPT_NOPROXY, "*"));
    set(curl_easy_setopt(e, CURLOPT_NETRC, static_cast<long>(CURL_NETRC_IGNORED)));
    // Each fetch on a connection of its own, to the addresses it was given:
    // never one pooled by an earlier fetch (pinned elsewhere, or resolved).
    set(curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L));
    set(curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L));
    set(curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L));
    set(curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L));
    set(curl_easy_setopt(e, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)));
    if (!o.caFile.empty()) {
        // A named store replaces the system's (libcurl's CA path) instead of
        // adding to it.
        set(curl_easy_setopt(e, CURLOPT_CAINFO, o.caFile.c_str()));
        set(curl_easy_setopt(e, CURLOPT_CAPATH, nullptr));
    }
    set(curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1)));
    set(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         static_cast<long>(o.connectTimeout.count())));
    set(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(o.totalTimeout.count())));
    set(curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(o.maxBytes)));
    std::string agent = std::string("danerelay/") + kVersion;
    set(curl_easy_setopt(e, CURLOPT_USERAGENT, agent.c_str()));  // libcurl copies strings
    return ok;
}

}  // namespace

uint64_t Fetcher::fetch(const FetchRequest& req, Callback cb) {
    std::string domain = normalizeName(req.domain);
    std::string host = "mta-sts." + domain;
    std::string url = policyUrl(domain, options_.port);
    if (!isDomainName(domain) || !isDomainName(host)) {
        fail(std::move(cb), "MTA-STS policy fetch: not a domain: " + quoted(req.domain));
        return 0;
    }
    auto t = std::make_unique<Transfer>();
    t->id = nextId_++;
    t->url = url;
    t->maxBytes = options_.maxBytes;
    t->easy.reset(curl_easy_init());
    if (!multi_ || !t->easy || !configure(t->easy.get(), options_)) {
        fail(std::move(cb), "MTA-STS policy fetch " + url + ": libcurl could not be set up");
        return 0;
    }
    // The multi handle's DNS cache is shared by its transfers and keeps a
    // CURLOPT_RESOLVE entry for ever: an unpinned fetch first drops any that
    // an earlier pinned fetch of the same host left (a pinned one replaces it).
    if (req.addresses.empty()) {
        t->resolve.reset(
            curl_slist_append(nullptr, ("-" + host + ":" + std::to_string(options_.port)).c_str()));
        curl_easy_setopt(t->easy.get(), CURLOPT_RESOLVE, t->resolve.get());
    } else {
        std::string entry = host + ":" + std::to_string(options_.port) + ":";
        for (size_t i = 0; i < req.addresses.size(); ++i) {
            bool v6 = false;
            if (!isIpLiteral(req.addresses[i], &v6)) {
                fail(std::move(cb), "MTA-STS policy fetch " + url +
                                        ": not an IP address: " + quoted(req.addresses[i]));
                return 0;
            }
            entry += (i ? "," : "") + (v6 ? "[" + req.addresses[i] + "]" : req.addresses[i]);
        }
        t->resolve.reset(curl_slist_append(nullptr, entry.c_str()));
        curl_easy_setopt(t->easy.get(), CURLOPT_RESOLVE, t->resolve.get());
    }
    CURL* e = t->easy.get();
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::onWrite);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errorBuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    t->cb = std::move(cb);
    if (curl_multi_add_handle(multi_.get(), e) != CURLM_OK) {
        fail(std::move(t->cb), "MTA-STS policy fetch " + url + ": libcurl refused the transfer");
        return 0;
    }
    uint64_t id = t->id;
    transfers_[id] = std::move(t);
    return id;
}

void Fetcher::cancel(uint64_t id) {
    posted_->erase(id);  // finished, its callback posted: withdrawn
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    curl_multi_remove_handle(multi_.get(), it->second->easy.get());
    transfers_.erase(it);
}

}  // namespace danerelay::sts
